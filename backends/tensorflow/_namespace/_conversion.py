"""Array conversion: :func:`asarray` and the input conversions every namespace function starts
with.

``_t`` turns any array-like into a ``tf.Tensor`` through :func:`asarray`; ``_floating`` adds the
float32 fallback of the floating-point functions; ``_promote_all`` and ``_pair`` convert several
operands to their promoted common dtype. :func:`asarray` lives here rather than in
:mod:`._creation` because these conversions are built on it and the creation functions on them.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import tensorflow as tf

from ._helpers import (
    _DEFAULT_COMPLEX,
    _DEFAULT_FLOAT,
    _DEFAULT_INT,
    Array,
    Device,
    _api,
    _const,
    _dtype,
    _is_py_scalar,
    _on,
)
from ._promotion import _promote, _scalar_dtype


@_api
def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    device: Device | None = None,
    copy: builtins.bool | None = None,
) -> Array:
    """Convert ``obj`` to a ``tf.Tensor``.

    Tensors keep their dtype unless ``dtype`` is given. NumPy arrays keep theirs (float64 stays
    float64). Python scalars and nested sequences take the default dtypes: bool, int32 (int64 if a
    value does not fit), float32, complex64. Python floats are rounded once, straight to the
    target dtype: ``asarray(1e300, dtype=float64)`` is ``1e300`` and ``asarray(1e300)`` is
    float32 ``inf``, as IEEE 754 rounding gives; ``0.0`` stays ``+0.0`` whatever TensorFlow's
    scalar cache holds. ``copy=False`` raises ``ValueError`` when a new tensor must be made (a
    dtype change, a ``tf.Variable``, a Python sequence); NumPy input is always converted.
    Tensors are immutable, so a tensor of the right dtype is returned as is, whatever ``copy``
    says.
    """
    dtype = _dtype(dtype)
    with _on(device):
        if isinstance(obj, tf.Tensor):
            if dtype is not None and dtype != obj.dtype:
                if copy is False:
                    raise ValueError(f"asarray: copy=False but {obj.dtype.name} -> {dtype.name}")
                return tf.cast(obj, dtype)
            return obj if device is None else tf.identity(obj)
        if isinstance(obj, tf.Variable):
            if copy is False:
                raise ValueError("asarray: copy=False is impossible for a tf.Variable")
            value = tf.convert_to_tensor(obj)
            return value if dtype is None or dtype == value.dtype else tf.cast(value, dtype)
        if isinstance(obj, (np.ndarray, np.generic)) or (
            hasattr(obj, "__array__") and not isinstance(obj, (list, tuple))
        ):
            value = tf.convert_to_tensor(np.asarray(obj))
            return value if dtype is None or dtype == value.dtype else tf.cast(value, dtype)
        if copy is False:
            raise ValueError(f"asarray: copy=False needs an array, got {type(obj).__name__}")
        if dtype is None:
            dtype = _python_data_dtype(obj)
        if dtype is not None:
            return _const(obj, dtype)
        value = tf.constant(obj)
        if value.dtype == tf.complex128:
            return tf.cast(value, _DEFAULT_COMPLEX)
        return value


def _python_data_dtype(obj: Any) -> tf.DType | None:
    """The default dtype of Python data: float32, complex64, int32 (int64 when a value needs
    it, also for sequences mixing bool and int, which ``tf.constant`` refuses); ``None`` for
    scalars and data ``tf.constant`` infers alone (bool, Python ints)."""
    if isinstance(obj, builtins.float):
        return _DEFAULT_FLOAT
    if isinstance(obj, builtins.complex):
        return _DEFAULT_COMPLEX
    if not isinstance(obj, (list, tuple)):
        return None
    try:
        values = np.asarray(obj)
    except (TypeError, ValueError, OverflowError, NotImplementedError):
        return None
    if values.dtype.kind == "i" and values.size:
        wide = values.min() < np.iinfo(np.int32).min or values.max() > np.iinfo(np.int32).max
        return tf.int64 if wide else _DEFAULT_INT
    return {"f": _DEFAULT_FLOAT, "c": _DEFAULT_COMPLEX}.get(values.dtype.kind)


def _t(x: Any) -> tf.Tensor:
    """Any array-like input as a ``tf.Tensor`` (variables are read; others go through asarray)."""
    if isinstance(x, tf.Tensor):
        return x
    if isinstance(x, tf.Variable):
        return tf.convert_to_tensor(x)
    return asarray(x)


def _floating(x: Any) -> tf.Tensor:
    """Input for a floating-point function: bool and integer tensors compute in float32."""
    x = _t(x)
    if x.dtype.is_floating or x.dtype.is_complex:
        return x
    return tf.cast(x, _DEFAULT_FLOAT)


def _promote_all(*args: Any) -> list[tf.Tensor]:
    """Tensors (and Python scalars) converted to one common dtype."""
    tensors = [None if _is_py_scalar(a) else _t(a) for a in args]
    present = [t for t in tensors if t is not None]
    if not present:
        tensors = [asarray(a) for a in args]
        present = tensors
    dtype = present[0].dtype
    for t in present[1:]:
        dtype = _promote(dtype, t.dtype)
    for a in args:
        if _is_py_scalar(a):
            dtype = _promote(dtype, _scalar_dtype(a, dtype))
    return [
        _const(a, dtype) if t is None else (t if t.dtype == dtype else tf.cast(t, dtype))
        for a, t in zip(args, tensors, strict=True)
    ]


def _pair(x1: Any, x2: Any) -> tuple[tf.Tensor, tf.Tensor]:
    a, b = _promote_all(x1, x2)
    return a, b


__all__ = ["asarray"]
