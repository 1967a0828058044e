"""Searching, sorting, set and indexing functions of the TensorFlow namespace.

Indices come back as int64. :func:`argmax` and :func:`argmin` return the first NaN of a slice,
as NumPy does; :func:`take` and :func:`take_along_axis` wrap negative indices around. The set
functions and :func:`nonzero` have data-dependent shapes (eager and graph mode only).
"""

from __future__ import annotations

import builtins
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from ._conversion import _pair, _t
from ._helpers import _DEFAULT_INDEX, Array, _api, _axis, _ndim, _to_bool

# --------------------------------------------------------------------------------------------
# Searching and sorting
# --------------------------------------------------------------------------------------------


def _arg_extreme(
    x: Any, axis: int | None, keepdims: builtins.bool, largest: builtins.bool
) -> tf.Tensor:
    x = _t(x)
    ndim = _ndim(x, "argmax" if largest else "argmin")
    if axis is None:
        flat, ax = tf.reshape(x, [-1]), 0
    else:
        flat, ax = x, _axis(axis, ndim)
    op = tf.math.argmax if largest else tf.math.argmin
    idx = op(flat, axis=ax, output_type=_DEFAULT_INDEX)
    if x.dtype.is_floating:  # tf.argmax skips NaN; return the first NaN, as NumPy does
        nan_mask = tf.math.is_nan(flat)
        first_nan = tf.math.argmax(nan_mask, axis=ax, output_type=_DEFAULT_INDEX)
        idx = tf.where(tf.math.reduce_any(nan_mask, axis=ax), first_nan, idx)
    if keepdims:
        idx = tf.reshape(idx, [1] * ndim) if axis is None else tf.expand_dims(idx, ax)
    return idx


@_api
def argmax(x: Array, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Array:
    """Index (int64) of the first maximum; the first NaN if the slice has one."""
    return _arg_extreme(x, axis, keepdims, largest=True)


@_api
def argmin(x: Array, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Array:
    """Index (int64) of the first minimum; the first NaN if the slice has one."""
    return _arg_extreme(x, axis, keepdims, largest=False)


def _sortable(x: tf.Tensor) -> tf.Tensor:
    """A dtype ``tf.sort`` can handle everywhere (no bool kernel, no uint16 under XLA)."""
    if x.dtype == tf.bool:
        return tf.cast(x, tf.int8)
    if x.dtype == tf.uint16:
        return tf.cast(x, tf.int32)
    return x


@_api
def sort(
    x: Array, /, *, axis: int = -1, descending: builtins.bool = False, stable: builtins.bool = True
) -> Array:
    """Sorted copy along ``axis``; NaN sorts last in both directions."""
    x = _t(x)
    direction = "DESCENDING" if descending else "ASCENDING"
    return tf.cast(tf.sort(_sortable(x), axis=axis, direction=direction), x.dtype)


@_api
def argsort(
    x: Array, /, *, axis: int = -1, descending: builtins.bool = False, stable: builtins.bool = True
) -> Array:
    """Sorting indices as int64 (``tf.argsort`` returns int32); always stable."""
    x = _t(x)
    direction = "DESCENDING" if descending else "ASCENDING"
    out = tf.argsort(_sortable(x), axis=axis, direction=direction, stable=True)
    return tf.cast(out, _DEFAULT_INDEX)


@_api
def searchsorted(
    x1: Array, x2: Array, /, *, side: str = "left", sorter: Array | None = None
) -> Array:
    """Insertion points (int64) of ``x2`` into the sorted 1-d ``x1`` (``x2`` of any shape)."""
    a, b = _pair(x1, x2)
    if _ndim(a, "searchsorted") != 1:
        raise ValueError(f"searchsorted needs a 1-d x1, got shape {a.shape}")
    if sorter is not None:
        a = take(a, sorter)
    out = tf.searchsorted(a[None, :], tf.reshape(b, [1, -1]), side=side, out_type=_DEFAULT_INDEX)
    return tf.reshape(out, tf.shape(b))


@_api
def nonzero(x: Array, /) -> tuple[Array, ...]:
    """Indices (int64) of non-zero elements, one array per axis. Data-dependent: not under XLA."""
    x = _t(x)
    ndim = _ndim(x, "nonzero")
    if ndim == 0:
        raise ValueError("nonzero needs an array of at least one dimension")
    coords = tf.where(_to_bool(x))
    return tuple(coords[:, i] for i in range(ndim))


# --------------------------------------------------------------------------------------------
# Set functions (data-dependent shapes: eager and graph mode; UniqueWithCounts has no XLA kernel)
# --------------------------------------------------------------------------------------------


class UniqueAllResult(NamedTuple):
    values: Array
    indices: Array
    inverse_indices: Array
    counts: Array


class UniqueCountsResult(NamedTuple):
    values: Array
    counts: Array


class UniqueInverseResult(NamedTuple):
    values: Array
    inverse_indices: Array


def _unique(x: Any) -> UniqueAllResult:
    """Sorted unique values of the flattened ``x`` (each NaN is distinct), with int64 indices."""
    x = _t(x)
    flat = tf.reshape(x, [-1])
    values, idx, counts = tf.unique_with_counts(flat, out_idx=_DEFAULT_INDEX)
    order = tf.argsort(_sortable(values), stable=True)
    inverse_order = tf.math.invert_permutation(order)
    first = tf.math.unsorted_segment_min(
        tf.range(tf.size(flat, out_type=_DEFAULT_INDEX)), idx, num_segments=tf.size(values)
    )
    return UniqueAllResult(
        values=tf.gather(values, order),
        indices=tf.gather(first, order),
        inverse_indices=tf.reshape(
            tf.gather(tf.cast(inverse_order, _DEFAULT_INDEX), idx), tf.shape(x)
        ),
        counts=tf.gather(counts, order),
    )


@_api
def unique_all(x: Array, /) -> UniqueAllResult:
    return _unique(x)


@_api
def unique_counts(x: Array, /) -> UniqueCountsResult:
    u = _unique(x)
    return UniqueCountsResult(u.values, u.counts)


@_api
def unique_inverse(x: Array, /) -> UniqueInverseResult:
    u = _unique(x)
    return UniqueInverseResult(u.values, u.inverse_indices)


@_api
def unique_values(x: Array, /) -> Array:
    x = _t(x)
    values, _ = tf.unique(tf.reshape(x, [-1]))
    return tf.cast(tf.sort(_sortable(values)), x.dtype)


# --------------------------------------------------------------------------------------------
# Indexing
# --------------------------------------------------------------------------------------------


def _index_tensor(indices: Any, name: str) -> tf.Tensor:
    idx = _t(indices)
    if not idx.dtype.is_integer:
        raise TypeError(f"{name} needs integer indices, got dtype {idx.dtype.name}")
    if idx.dtype not in (tf.int32, tf.int64):
        idx = tf.cast(idx, tf.int64)
    return idx


def _wrap_negative(idx: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Negative indices counted from the end (``-1`` is the last element)."""
    return tf.where(idx < 0, idx + size, idx)


@_api
def take(x: Array, indices: Array, /, *, axis: int | None = None) -> Array:
    """Elements of ``x`` at ``indices`` along ``axis`` (optional for 1-d ``x``).

    Negative indices wrap around; out-of-range indices are *not* checked (CPU raises, GPU stores 0,
    XLA clamps). int32 and int64 indices are both accepted; other integer dtypes are cast.
    """
    x = _t(x)
    idx = _index_tensor(indices, "take")
    ndim = _ndim(x, "take")
    if axis is None:
        if ndim != 1:
            raise ValueError(f"take: axis is required for a {ndim}-d array")
        axis = 0
    ax = _axis(axis, ndim)
    size = tf.shape(x, out_type=idx.dtype)[ax]
    return tf.gather(x, _wrap_negative(idx, size), axis=ax)


@_api
def take_along_axis(x: Array, indices: Array, /, *, axis: int = -1) -> Array:
    """``x`` gathered along ``axis`` at ``indices`` of the same rank (other axes broadcast).

    Negative indices wrap around; out-of-range indices are not checked (see :func:`take`).
    """
    x = _t(x)
    idx = _index_tensor(indices, "take_along_axis")
    ndim = _ndim(x, "take_along_axis")
    if _ndim(idx, "take_along_axis") != ndim:
        raise ValueError(
            f"take_along_axis: indices must have the rank of x, got {idx.shape} and {x.shape}"
        )
    ax = _axis(axis, ndim)
    idx = _wrap_negative(idx, tf.shape(x, out_type=idx.dtype)[ax])
    last = ndim - 1
    perm = None
    if ax != last:
        perm = [a for a in range(ndim) if a != ax] + [ax]
        x = tf.transpose(x, perm)
        idx = tf.transpose(idx, perm)
    xb, ib = x.shape[:-1], idx.shape[:-1]
    if not (xb.is_fully_defined() and ib.is_fully_defined() and xb == ib):
        batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(idx)[:-1])
        x = tf.broadcast_to(x, tf.concat([batch, tf.shape(x)[-1:]], axis=0))
        idx = tf.broadcast_to(idx, tf.concat([batch, tf.shape(idx)[-1:]], axis=0))
    out = tf.gather(x, idx, axis=last, batch_dims=last)
    if perm is not None:
        out = tf.transpose(out, np.argsort(perm).tolist())
    return out


__all__ = [
    "UniqueAllResult",
    "UniqueCountsResult",
    "UniqueInverseResult",
    "argmax",
    "argmin",
    "argsort",
    "nonzero",
    "searchsorted",
    "sort",
    "take",
    "take_along_axis",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
]
