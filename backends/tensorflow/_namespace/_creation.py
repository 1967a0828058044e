"""Creation functions of the TensorFlow namespace (:func:`~._conversion.asarray` aside).

Shapes may hold 0-d integer tensors for sizes known only at run time; the ``*_like`` functions
take the shape of their argument with ``tf.shape``, so they also work on unknown dimensions.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
import tensorflow as tf

from ._conversion import _promote_all, _t
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
    _shape_arg,
)


def _fill_value(value: Any, dtype: tf.DType) -> tf.Tensor:
    return _const(value, dtype) if _is_py_scalar(value) else tf.cast(_t(value), dtype)


def _fill_dtype(value: Any) -> tf.DType:
    if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
        return tf.as_dtype(value.dtype)
    if isinstance(value, builtins.bool):
        return tf.bool
    if isinstance(value, builtins.int):
        return _DEFAULT_INT
    if isinstance(value, builtins.float):
        return _DEFAULT_FLOAT
    if isinstance(value, builtins.complex):
        return _DEFAULT_COMPLEX
    raise TypeError(f"unsupported fill value {value!r}")


@_api
def zeros(shape: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """Zeros of ``shape`` (ints, or 0-d int tensors for dynamic sizes); default float32."""
    with _on(device):
        return tf.zeros(_shape_arg(shape), dtype=_dtype(dtype) or _DEFAULT_FLOAT)


@_api
def ones(shape: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """Ones of ``shape``; default float32."""
    with _on(device):
        return tf.ones(_shape_arg(shape), dtype=_dtype(dtype) or _DEFAULT_FLOAT)


@_api
def empty(shape: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """Same as :func:`zeros` (TF has no uninitialised tensors)."""
    return zeros(shape, dtype=dtype, device=device)


@_api
def zeros_like(x: Array, /, *, dtype: Any = None, device: Device | None = None) -> Array:
    with _on(device):
        return tf.zeros_like(_t(x), dtype=_dtype(dtype))


@_api
def ones_like(x: Array, /, *, dtype: Any = None, device: Device | None = None) -> Array:
    with _on(device):
        return tf.ones_like(_t(x), dtype=_dtype(dtype))


@_api
def empty_like(x: Array, /, *, dtype: Any = None, device: Device | None = None) -> Array:
    return zeros_like(x, dtype=dtype, device=device)


@_api
def full(shape: Any, fill_value: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """``shape`` filled with ``fill_value``; the dtype defaults to the value's default dtype."""
    dt = _dtype(dtype) or _fill_dtype(fill_value)
    with _on(device):
        value = _fill_value(fill_value, dt)
        return tf.fill(_shape_arg(shape), value)


@_api
def full_like(
    x: Array, /, fill_value: Any, *, dtype: Any = None, device: Device | None = None
) -> Array:
    """``x``'s shape (also when dynamic) filled with ``fill_value``, in ``x``'s dtype by default."""
    x = _t(x)
    dt = _dtype(dtype) or x.dtype
    with _on(device):
        value = _fill_value(fill_value, dt)
        return tf.fill(tf.shape(x), value)


@_api
def arange(
    start: Any,
    /,
    stop: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: Device | None = None,
) -> Array:
    """``tf.range`` with the standard's dtype inference (int32, or float32 if any bound is float).

    Floating ranges are computed in float64 and then cast, so the length matches NumPy's; an
    empty range (``stop`` before ``start`` in the direction of ``step``) gives a 0-length array
    for Python bounds (``tf.range`` raises for it, and still does for tensor bounds).
    """
    if stop is None:
        start, stop = 0, start
    dt = _dtype(dtype)
    if dt is None:
        is_float = builtins.any(
            isinstance(v, builtins.float)
            or (hasattr(v, "dtype") and tf.as_dtype(v.dtype).is_floating)
            for v in (start, stop, step)
        )
        dt = _DEFAULT_FLOAT if is_float else _DEFAULT_INT
    if builtins.all(_is_py_scalar(v) for v in (start, stop, step)):
        if step == 0:
            raise ValueError("arange: step must not be zero")
        if math.ceil((stop - start) / step) <= 0:  # tf.range raises for an empty range
            with _on(device):
                return tf.zeros([0], dt)
    with _on(device):
        if dt.is_floating:
            return tf.cast(tf.range(start, stop, step, dtype=tf.float64), dt)
        if dt not in (tf.int32, tf.int64):  # the CPU Range kernels: int32, int64, floats
            return tf.cast(tf.range(start, stop, step, dtype=tf.int64), dt)
        return tf.range(start, stop, step, dtype=dt)


@_api
def eye(
    n_rows: int,
    n_cols: int | None = None,
    /,
    *,
    k: int = 0,
    dtype: Any = None,
    device: Device | None = None,
) -> Array:
    """Identity-like matrix with ones on diagonal ``k`` (``tf.eye`` has no ``k``)."""
    n_cols = n_rows if n_cols is None else n_cols
    with _on(device):
        rows = tf.range(n_rows)[:, None]
        cols = tf.range(n_cols)[None, :]
        return tf.cast(tf.equal(cols - rows, k), _dtype(dtype) or _DEFAULT_FLOAT)


@_api
def linspace(
    start: Any,
    stop: Any,
    /,
    num: int,
    *,
    dtype: Any = None,
    device: Device | None = None,
    endpoint: builtins.bool = True,
) -> Array:
    r"""``num`` evenly spaced values from ``start`` to ``stop``, as NumPy computes them.

    :math:`y_i = \mathrm{start} + i \cdot (\mathrm{stop} - \mathrm{start}) / d` with
    :math:`d = \mathrm{num} - 1` (``endpoint``, whose last value is ``stop`` exactly) or
    :math:`d = \mathrm{num}`, computed in float64 (complex128 for complex bounds, which give
    complex64 by default) from the bounds rounded once to float64, then cast to ``dtype``
    (default float32).
    """
    is_complex = builtins.any(isinstance(v, builtins.complex) for v in (start, stop))
    dt = _dtype(dtype) or (_DEFAULT_COMPLEX if is_complex else _DEFAULT_FLOAT)
    work = tf.complex128 if (dt.is_complex or is_complex) else tf.float64
    num = builtins.int(num)
    div = num - 1 if endpoint else num
    with _on(device):
        lo = _fill_value(start, work)
        hi = _fill_value(stop, work)
        steps = tf.cast(tf.range(num), work)
        out = lo + steps * ((hi - lo) / _const(div, work)) if div > 0 else lo + steps
        if endpoint and num > 1:
            out = tf.concat([out[:-1], hi[None]], axis=0)
        return tf.cast(out, dt)


@_api
def meshgrid(*arrays: Array, indexing: str = "xy") -> list[Array]:
    if indexing not in ("xy", "ij"):
        raise ValueError(f"indexing must be 'xy' or 'ij', got {indexing!r}")
    return list(tf.meshgrid(*_promote_all(*arrays), indexing=indexing))


def _band_mask(x: tf.Tensor, k: int, lower: builtins.bool) -> tf.Tensor:
    shape = tf.shape(x)
    rows = tf.range(shape[-2])[:, None]
    cols = tf.range(shape[-1])[None, :]
    return (cols - rows <= k) if lower else (cols - rows >= k)


@_api
def tril(x: Array, /, *, k: int = 0) -> Array:
    """Lower triangle of the last two axes (any ``k``, unlike ``tf.linalg.band_part``)."""
    x = _t(x)
    return tf.where(_band_mask(x, k, lower=True), x, tf.zeros([], x.dtype))


@_api
def triu(x: Array, /, *, k: int = 0) -> Array:
    """Upper triangle of the last two axes."""
    x = _t(x)
    return tf.where(_band_mask(x, k, lower=False), x, tf.zeros([], x.dtype))


@_api
def from_dlpack(
    x: Any, /, *, device: Device | None = None, copy: builtins.bool | None = None
) -> Array:
    """A tensor from any object with ``__dlpack__`` (``tf.experimental.dlpack``)."""
    with _on(device):
        out = tf.experimental.dlpack.from_dlpack(x.__dlpack__())
        return tf.identity(out) if copy else out


__all__ = [
    "arange",
    "empty",
    "empty_like",
    "eye",
    "from_dlpack",
    "full",
    "full_like",
    "linspace",
    "meshgrid",
    "ones",
    "ones_like",
    "tril",
    "triu",
    "zeros",
    "zeros_like",
]
