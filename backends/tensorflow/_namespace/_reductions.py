"""Reductions of the TensorFlow namespace: the statistical functions, ``any``/``all``/
``count_nonzero``, the cumulative sums and products, and ``diff``.

Bool and narrow integers accumulate in int32 (uint32 when unsigned); :func:`mean`, :func:`var`
and :func:`std` refuse integers and accumulate float16/bfloat16 in float32; :func:`max` and
:func:`min` give NaN for a slice holding one, also under XLA.
"""

from __future__ import annotations

import builtins
from typing import Any

import tensorflow as tf

from ._constants import nan
from ._conversion import _promote_all, _t
from ._helpers import (
    _DEFAULT_INDEX,
    _DEFAULT_INT,
    _LOW_PRECISION_FLOATS,
    _UNSIGNED_BY_BITS,
    Array,
    _api,
    _axes,
    _axis,
    _bits,
    _const,
    _dtype,
    _is_py_scalar,
    _ndim,
    _to_bool,
)


def _sum_dtype(dtype: tf.DType) -> tf.DType:
    """Default accumulator of sum/prod: at least the default integer's width for integers."""
    if dtype == tf.bool:
        return _DEFAULT_INT
    if dtype.is_integer and _bits(dtype) < _bits(_DEFAULT_INT):
        return _UNSIGNED_BY_BITS[32] if dtype.is_unsigned else _DEFAULT_INT
    return dtype


def _reduce_setup(x: Any, axis: Any, name: str) -> tuple[tf.Tensor, list[int] | None]:
    x = _t(x)
    return x, _axes(axis, _ndim(x, name))


def _count(x: tf.Tensor, axes: list[int] | None) -> tf.Tensor:
    """Number of elements reduced over ``axes``, as a 0-d int32 tensor (works with None dims)."""
    if axes is None:
        return tf.size(x)
    return tf.reduce_prod(tf.gather(tf.shape(x), tf.constant(axes, tf.int32)))


@_api
def sum(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Array:
    """Sum; bool and narrow integers accumulate in int32 (uint32 for narrow unsigned)."""
    x, axes = _reduce_setup(x, axis, "sum")
    dt = _dtype(dtype) or _sum_dtype(x.dtype)
    return tf.math.reduce_sum(tf.cast(x, dt), axis=axes, keepdims=keepdims)


@_api
def prod(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Array:
    """Product; accumulator dtypes as in :func:`sum`."""
    x, axes = _reduce_setup(x, axis, "prod")
    dt = _dtype(dtype) or _sum_dtype(x.dtype)
    return tf.math.reduce_prod(tf.cast(x, dt), axis=axes, keepdims=keepdims)


def _require_floating(x: tf.Tensor, name: str, complex_ok: builtins.bool = True) -> None:
    if not (x.dtype.is_floating or (complex_ok and x.dtype.is_complex)):
        raise TypeError(
            f"{name} needs a floating-point array, got dtype {x.dtype.name} "
            f"(tf.reduce_mean would do integer division); cast with astype first"
        )


@_api
def mean(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Arithmetic mean. ``TypeError`` for integer/bool input; float16/bfloat16 accumulate in
    float32 (``tf.reduce_mean`` sums in float16 and overflows past 65504)."""
    x, axes = _reduce_setup(x, axis, "mean")
    _require_floating(x, "mean")
    if x.dtype in _LOW_PRECISION_FLOATS:
        return tf.cast(
            tf.math.reduce_mean(tf.cast(x, tf.float32), axis=axes, keepdims=keepdims), x.dtype
        )
    return tf.math.reduce_mean(x, axis=axes, keepdims=keepdims)


def _var(x: Any, axis: Any, correction: float, keepdims: builtins.bool, name: str) -> tf.Tensor:
    x, axes = _reduce_setup(x, axis, name)
    _require_floating(x, name, complex_ok=False)
    work = tf.float32 if x.dtype in _LOW_PRECISION_FLOATS else x.dtype
    xw = tf.cast(x, work)
    centred = xw - tf.math.reduce_mean(xw, axis=axes, keepdims=True)
    total = tf.math.reduce_sum(tf.math.square(centred), axis=axes, keepdims=keepdims)
    correction_t = (
        _const(correction, work) if _is_py_scalar(correction) else tf.cast(correction, work)
    )
    dof = tf.cast(_count(xw, axes), work) - correction_t
    return total / dof


@_api
def var(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: float = 0.0,
    keepdims: builtins.bool = False,
) -> Array:
    """Variance with ``correction`` degrees of freedom removed (TypeError for integers)."""
    x = _t(x)
    return tf.cast(_var(x, axis, correction, keepdims, "var"), x.dtype)


@_api
def std(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: float = 0.0,
    keepdims: builtins.bool = False,
) -> Array:
    """Standard deviation (see :func:`var`)."""
    x = _t(x)
    return tf.cast(tf.math.sqrt(_var(x, axis, correction, keepdims, "std")), x.dtype)


def _extreme(x: Any, axis: Any, keepdims: builtins.bool, largest: builtins.bool) -> tf.Tensor:
    x, axes = _reduce_setup(x, axis, "max" if largest else "min")
    if x.dtype == tf.bool:
        op = tf.math.reduce_any if largest else tf.math.reduce_all
        return op(x, axis=axes, keepdims=keepdims)
    op = tf.math.reduce_max if largest else tf.math.reduce_min
    out = op(x, axis=axes, keepdims=keepdims)
    if x.dtype.is_floating and not _propagates_nan(x):
        has_nan = tf.math.reduce_any(tf.math.is_nan(x), axis=axes, keepdims=keepdims)
        out = tf.where(has_nan, tf.constant(nan, x.dtype), out)
    return out


def _propagates_nan(x: tf.Tensor) -> builtins.bool:
    """Whether TensorFlow's own ``reduce_min``/``reduce_max`` of ``x`` already give NaN for a
    slice holding one: its eager CPU kernels do (Eigen's NaN-propagating reducers), so the
    ``isnan`` pass, its ``(N,)`` bool array and the ``any`` are spared (the eager value checks
    of the losses take a minimum and a maximum of the targets: six passes become two). XLA
    skips NaN, and other devices are not relied on."""
    return tf.executing_eagerly() and x.device.endswith("CPU:0")


@_api
def max(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Maximum; a slice containing NaN gives NaN, also under XLA (``tf.reduce_max`` then skips
    NaN). Bool input gives ``any``."""
    return _extreme(x, axis, keepdims, largest=True)


@_api
def min(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Minimum; NaN propagates as in :func:`max`. Bool input gives ``all``."""
    return _extreme(x, axis, keepdims, largest=False)


@_api
def any(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Logical or over ``axis`` (non-bool input is compared with zero; NaN counts as true)."""
    x, axes = _reduce_setup(x, axis, "any")
    return tf.math.reduce_any(_to_bool(x), axis=axes, keepdims=keepdims)


@_api
def all(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    x, axes = _reduce_setup(x, axis, "all")
    return tf.math.reduce_all(_to_bool(x), axis=axes, keepdims=keepdims)


@_api
def count_nonzero(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Number of non-zero elements, as int64."""
    x, axes = _reduce_setup(x, axis, "count_nonzero")
    return tf.math.reduce_sum(tf.cast(_to_bool(x), _DEFAULT_INDEX), axis=axes, keepdims=keepdims)


def _cumulative(
    x: Any, axis: int | None, dtype: Any, include_initial: builtins.bool, product: builtins.bool
) -> tf.Tensor:
    name = "cumulative_prod" if product else "cumulative_sum"
    x = _t(x)
    ndim = _ndim(x, name)
    if axis is None:
        if ndim != 1:
            raise ValueError(f"{name}: axis is required for a {ndim}-d array")
        axis = 0
    ax = _axis(axis, ndim)
    dt = _dtype(dtype) or _sum_dtype(x.dtype)
    # XLA has no cumsum/cumprod kernels for unsigned or 8/16-bit integers: compute in int64
    # (wrap-around arithmetic gives the same bits) and cast back.
    work = tf.int64 if dt.is_integer and (dt.is_unsigned or _bits(dt) < 32) else dt
    xw = tf.cast(x, work)
    out = tf.math.cumprod(xw, axis=ax) if product else tf.math.cumsum(xw, axis=ax)
    if include_initial:
        paddings = [[0, 0]] * ndim
        paddings[ax] = [1, 0]
        out = tf.pad(out, paddings, constant_values=1 if product else 0)
    return tf.cast(out, dt)


@_api
def cumulative_sum(
    x: Array,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Array:
    """Cumulative sum along ``axis`` (required unless ``x`` is 1-d); dtypes as in :func:`sum`."""
    return _cumulative(x, axis, dtype, include_initial, product=False)


@_api
def cumulative_prod(
    x: Array,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Array:
    """Cumulative product along ``axis``; dtypes as in :func:`sum`."""
    return _cumulative(x, axis, dtype, include_initial, product=True)


@_api
def diff(
    x: Array,
    /,
    *,
    axis: int = -1,
    n: int = 1,
    prepend: Array | None = None,
    append: Array | None = None,
) -> Array:
    """``n``-th forward difference along ``axis`` (``not_equal`` for bool, as NumPy)."""
    parts = [p for p in (prepend, x, append) if p is not None]
    parts = _promote_all(*parts)
    ndim = _ndim(parts[0], "diff")
    ax = _axis(axis, ndim)
    out = parts[0] if len(parts) == 1 else tf.concat(parts, axis=ax)
    head = (slice(None),) * ax
    for _ in range(n):
        hi = out[(*head, slice(1, None))]
        lo = out[(*head, slice(None, -1))]
        out = tf.math.not_equal(hi, lo) if out.dtype == tf.bool else hi - lo
    return out


__all__ = [
    "all",
    "any",
    "count_nonzero",
    "cumulative_prod",
    "cumulative_sum",
    "diff",
    "max",
    "mean",
    "min",
    "prod",
    "std",
    "sum",
    "var",
]
