"""Devices, laziness and inspection: :func:`device`, :func:`to_device`, :func:`is_lazy_array`
and ``__array_namespace_info__()``.
"""

from __future__ import annotations

import builtins
from typing import Any

import tensorflow as tf

from ._conversion import _t
from ._dtypes import isdtype
from ._helpers import (
    _DEFAULT_COMPLEX,
    _DEFAULT_FLOAT,
    _DEFAULT_INDEX,
    _DEFAULT_INT,
    Array,
    Device,
    _api,
)

_MAX_DIMENSIONS = 254  # tf.zeros([1] * 255) raises InvalidArgumentError
_STANDARD_DTYPES = (
    tf.bool, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16, tf.uint32, tf.uint64,
    tf.float32, tf.float64, tf.complex64, tf.complex128,
)  # fmt: skip


def _canonical_device(name: str) -> Device:
    spec = tf.DeviceSpec.from_string(name)
    if spec.device_type is None:
        return name
    return f"/device:{spec.device_type}:{spec.device_index or 0}"


def _default_device() -> Device:
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "/device:CPU:0"


@_api
def device(x: Array, /) -> Device:
    """Device of ``x`` as ``"/device:CPU:0"``-style string; while tracing, where a tensor has no
    placement yet, the default device."""
    name = getattr(x, "device", "") or ""
    return _canonical_device(name) if name else _default_device()


@_api
def to_device(x: Array, device: Device, /, *, stream: Any = None) -> Array:
    """A copy of ``x`` placed on ``device`` (``tf.identity`` under ``tf.device``)."""
    if stream is not None:
        raise ValueError("to_device: TensorFlow has no streams")
    with tf.device(device):
        return tf.identity(_t(x))


@_api
def is_lazy_array(x: Any) -> builtins.bool:
    """Whether values computed from ``x`` are symbolic (``bool(...)`` on them is impossible).

    ``True`` for graph tensors and for any TF tensor or variable used while a ``tf.function``
    (XLA included) is being traced; ``False`` for eager tensors and for non-TF objects.
    """
    if not isinstance(x, (tf.Tensor, tf.Variable)):
        return False
    return tf.is_symbolic_tensor(x) or not tf.executing_eagerly()


class _Info:
    """What ``__array_namespace_info__()`` returns."""

    def capabilities(self) -> dict[str, Any]:
        """Boolean indexing and data-dependent shapes are reported only eagerly: they also work
        in graph mode, but not reliably under XLA, and a traced function cannot tell which."""
        eager = tf.executing_eagerly()
        return {
            "boolean indexing": eager,
            "data-dependent shapes": eager,
            "max dimensions": _MAX_DIMENSIONS,
        }

    def default_device(self) -> Device:
        return _default_device()

    def default_dtypes(self, *, device: Device | None = None) -> dict[str, tf.DType]:
        return {
            "real floating": _DEFAULT_FLOAT,
            "complex floating": _DEFAULT_COMPLEX,
            "integral": _DEFAULT_INT,
            "indexing": _DEFAULT_INDEX,
        }

    def devices(self) -> list[Device]:
        return [d.name for d in tf.config.list_logical_devices()]

    def dtypes(
        self, *, device: Device | None = None, kind: str | tuple[str, ...] | None = None
    ) -> dict[str, tf.DType]:
        """The standard dtypes of ``kind`` (``float16`` and ``bfloat16`` work throughout but are
        not the standard's, so are not listed)."""
        return {d.name: d for d in _STANDARD_DTYPES if kind is None or isdtype(d, kind)}


_INFO = _Info()


def __array_namespace_info__() -> _Info:
    return _INFO


__all__ = ["__array_namespace_info__", "device", "is_lazy_array", "to_device"]
