"""Private helpers shared by the modules of the TensorFlow namespace.

The type aliases (``Array``, ``DType``, ``Device``), the default dtypes, :class:`AxisError`, the
``_api`` decorator every namespace function wears, and small functions that normalise dtype
spellings, axes, shapes and devices. Nothing here calls a namespace function, so every other
module may import from this one.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from xentropy._autograph import keep_out_of_autograph

keep_out_of_autograph()  # as tf.nn is: see xentropy._autograph

Array = tf.Tensor
DType = tf.DType
Device = str

_DEFAULT_FLOAT = tf.float32
_DEFAULT_COMPLEX = tf.complex64
_DEFAULT_INT = tf.int32
_DEFAULT_INDEX = tf.int64

_PY_SCALARS = (builtins.bool, builtins.int, builtins.float, builtins.complex)
_SIGNED_BY_BITS = {8: tf.int8, 16: tf.int16, 32: tf.int32, 64: tf.int64}
_UNSIGNED_BY_BITS = {8: tf.uint8, 16: tf.uint16, 32: tf.uint32, 64: tf.uint64}
_LOW_PRECISION_FLOATS = (tf.float16, tf.bfloat16)


class AxisError(ValueError, IndexError):
    """An axis outside ``[-ndim, ndim)``; a ``ValueError`` and an ``IndexError``, as NumPy's."""


def _api(func: Any) -> Any:
    """Keep AutoGraph out of the namespace functions: they have no tensor-dependent control flow,
    and converting them only slows tracing down."""
    return tf.autograph.experimental.do_not_convert(func)


def _dtype(dtype: Any) -> tf.DType | None:
    """Normalise any dtype spelling (``tf.DType``, NumPy dtype or type, string) to ``tf.DType``."""
    return None if dtype is None else tf.as_dtype(dtype)


def _is_py_scalar(x: Any) -> builtins.bool:
    return isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic)


def _ndim(x: tf.Tensor, name: str = "this function") -> int:
    rank = x.shape.rank
    if rank is None:
        raise ValueError(f"{name} needs an input of statically known rank, got shape {x.shape}")
    return rank


def _axis(axis: int, ndim: int) -> int:
    """A single axis normalised to ``[0, ndim)``."""
    if not -ndim <= axis < ndim:
        raise AxisError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim


def _axes(axis: int | Sequence[int] | None, ndim: int) -> list[int] | None:
    """``None`` (all axes) or a list of non-negative axes, checked for range and repeats."""
    if axis is None:
        return None
    axes = [_axis(a, ndim) for a in ((axis,) if isinstance(axis, builtins.int) else axis)]
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {axis}")
    return axes


_EXACT_FROM_PY_FLOAT = (tf.float32, tf.float64, tf.complex64, tf.complex128)


def _has_zero_part(value: Any) -> builtins.bool:
    """Whether a Python float or complex has a (signed) zero in it (see :func:`_const`)."""
    if isinstance(value, builtins.float):
        return value == 0
    if isinstance(value, builtins.complex):
        return value.real == 0 or value.imag == 0
    return False


def _const(value: Any, dtype: tf.DType) -> tf.Tensor:
    r"""A Python value (scalar or nested sequence) as a tensor of ``dtype``, rounded once.

    Floating values are rounded straight to ``dtype`` (never through ``float32``, as
    ``tf.cast(0.1, tf.float64)`` is, which is off by :math:`1.5\cdot 10^{-9}`); values beyond the
    dtype's range round to :math:`\pm\infty` as IEEE 754 does. ``tf.constant`` does this
    for float32/float64/complex scalars, but caches eager scalars by value, and ``0.0 == -0.0``:
    after a ``-0.0`` it returns ``-0.0`` for ``0.0``. Signed zeros, 16-bit floats and sequences
    therefore go through a NumPy array of ``dtype`` (not a NumPy scalar: ``np.float64`` is a
    ``float`` and is cached too).
    """
    if dtype in _EXACT_FROM_PY_FLOAT and _is_py_scalar(value) and not _has_zero_part(value):
        with contextlib.suppress(TypeError, ValueError):
            return tf.constant(value, dtype=dtype)
    if dtype.is_floating or dtype.is_complex:
        try:
            with np.errstate(over="ignore"):
                return tf.constant(np.asarray(value, dtype=dtype.as_numpy_dtype))
        except (TypeError, ValueError, OverflowError, NotImplementedError):
            pass  # complex into a real dtype, symbolic tensors in a list: tf decides below
    try:
        return tf.constant(value, dtype=dtype)
    except (TypeError, ValueError):
        return tf.cast(tf.constant(np.asarray(value)), dtype)


def _kind(dtype: tf.DType) -> str:
    if dtype == tf.bool:
        return "b"
    if dtype.is_unsigned:
        return "u"
    if dtype.is_integer:
        return "i"
    if dtype.is_complex:
        return "c"
    return "f"


def _bits(dtype: tf.DType) -> int:
    return dtype.size * 8


def _to_bool(x: tf.Tensor) -> tf.Tensor:
    return x if x.dtype == tf.bool else tf.not_equal(x, tf.zeros([], x.dtype))


@contextlib.contextmanager
def _on(device: Device | None) -> Iterator[None]:
    if device is None:
        yield
    else:
        with tf.device(device):
            yield


def _shape_arg(shape: Any) -> Any:
    if isinstance(shape, builtins.int) or (isinstance(shape, tf.Tensor) and shape.shape.rank == 0):
        return [shape]
    if isinstance(shape, tf.TensorShape):
        if not shape.is_fully_defined():
            raise ValueError(
                f"shape {shape} has unknown dimensions; inside tf.function use zeros_like/"
                "full_like or broadcast_to with tf.shape instead"
            )
        return shape.as_list()
    if isinstance(shape, (tuple, list)):
        if builtins.any(d is None for d in shape):
            raise ValueError(
                f"shape {tuple(shape)} has unknown (None) dimensions, as x.shape has while tracing "
                "with unknown sizes; use zeros_like/full_like, or -1 in reshape"
            )
        return list(shape)
    return shape


__all__ = ["Array", "AxisError", "DType", "Device"]
