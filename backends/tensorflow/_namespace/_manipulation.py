"""Manipulation functions of the TensorFlow namespace (shapes, axes, joining and repeating).

Sizes are read with ``tf.shape``, so these work on dimensions unknown while tracing; the rank
must be known. :func:`concat` and :func:`stack` promote their arrays to a common dtype.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from ._conversion import _promote_all, _t
from ._helpers import Array, _api, _axes, _axis, _ndim, _shape_arg


@_api
def reshape(x: Array, /, shape: Any, *, copy: builtins.bool | None = None) -> Array:
    """``tf.reshape`` (``shape`` may hold one ``-1`` and 0-d int tensors)."""
    return tf.reshape(_t(x), _shape_arg(shape))


@_api
def expand_dims(x: Array, /, axis: int = 0) -> Array:
    """Insert a size-1 axis at ``axis`` (in ``[-ndim - 1, ndim]``; positional or keyword)."""
    x = _t(x)
    ndim = _ndim(x, "expand_dims")
    return tf.expand_dims(x, _axis(axis, ndim + 1))


@_api
def squeeze(x: Array, /, axis: int | tuple[int, ...]) -> Array:
    """Remove the given size-1 axes (checked at run time when the sizes are unknown).

    ``axis=()`` returns ``x`` unchanged (``tf.squeeze`` with no axes would drop every size-1
    axis).
    """
    x = _t(x)
    axes = _axes(axis, _ndim(x, "squeeze"))
    if not axes:
        return x
    for a in axes or ():
        size = x.shape[a]
        if size is not None and size != 1:
            raise ValueError(f"squeeze: axis {a} has size {size}, not 1")
    return tf.squeeze(x, axis=axes)


@_api
def permute_dims(x: Array, /, axes: tuple[int, ...]) -> Array:
    return tf.transpose(_t(x), perm=list(axes))


@_api
def matrix_transpose(x: Array, /) -> Array:
    return tf.linalg.matrix_transpose(_t(x))


@_api
def moveaxis(
    x: Array, source: int | tuple[int, ...], destination: int | tuple[int, ...], /
) -> Array:
    x = _t(x)
    ndim = _ndim(x, "moveaxis")
    src = _axes(source, ndim) or []
    dst = _axes(destination, ndim) or []
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination need the same number of axes")
    order = [a for a in range(ndim) if a not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return tf.transpose(x, perm=order)


@_api
def broadcast_to(x: Array, /, shape: Any) -> Array:
    return tf.broadcast_to(_t(x), _shape_arg(shape))


@_api
def broadcast_arrays(*arrays: Array) -> list[Array]:
    """Arrays broadcast to their common shape (computed with ``tf.shape``, so dynamic dims work)."""
    tensors = [_t(a) for a in arrays]
    if not tensors:
        return []
    static = tensors[0].shape
    for t in tensors[1:]:
        static = tf.broadcast_static_shape(static, t.shape)
    if static.is_fully_defined():
        return [t if t.shape == static else tf.broadcast_to(t, static) for t in tensors]
    shape = tf.shape(tensors[0])
    for t in tensors[1:]:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(t))
    return [tf.broadcast_to(t, shape) for t in tensors]


@_api
def concat(arrays: Sequence[Array], /, *, axis: int | None = 0) -> Array:
    """Join arrays (promoted to one dtype) along ``axis``; ``axis=None`` flattens them first."""
    tensors = _promote_all(*arrays)
    if axis is None:
        return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)
    return tf.concat(tensors, axis=_axis(axis, _ndim(tensors[0], "concat")))


@_api
def stack(arrays: Sequence[Array], /, *, axis: int = 0) -> Array:
    tensors = _promote_all(*arrays)
    return tf.stack(tensors, axis=_axis(axis, _ndim(tensors[0], "stack") + 1))


@_api
def unstack(x: Array, /, *, axis: int = 0) -> tuple[Array, ...]:
    """Split along ``axis`` (its size must be known statically)."""
    x = _t(x)
    return tuple(tf.unstack(x, axis=_axis(axis, _ndim(x, "unstack"))))


@_api
def flip(x: Array, /, *, axis: int | tuple[int, ...] | None = None) -> Array:
    x = _t(x)
    ndim = _ndim(x, "flip")
    axes = _axes(axis, ndim)
    return tf.reverse(x, axis=list(range(ndim)) if axes is None else axes)


@_api
def roll(
    x: Array,
    /,
    shift: int | tuple[int, ...],
    *,
    axis: int | tuple[int, ...] | None = None,
) -> Array:
    x = _t(x)
    if axis is None:
        return tf.reshape(tf.roll(tf.reshape(x, [-1]), shift, axis=0), tf.shape(x))
    return tf.roll(x, shift, axis=axis)


@_api
def tile(x: Array, repetitions: tuple[int, ...], /) -> Array:
    """Repeat ``x`` ``repetitions[i]`` times along each axis (rank mismatch padded with ones)."""
    x = _t(x)
    ndim = _ndim(x, "tile")
    reps = list(repetitions)
    if len(reps) < ndim:
        reps = [1] * (ndim - len(reps)) + reps
    elif len(reps) > ndim:
        x = tf.reshape(x, tf.concat([tf.ones([len(reps) - ndim], tf.int32), tf.shape(x)], 0))
    if x.dtype == tf.uint16:  # no uint16 Tile kernel on CPU
        return tf.bitcast(tf.tile(tf.bitcast(x, tf.int16), reps), tf.uint16)
    return tf.tile(x, reps)


@_api
def repeat(x: Array, repeats: int | Array, /, *, axis: int | None = None) -> Array:
    """``tf.repeat``; array ``repeats`` make the shape data-dependent."""
    x = _t(x)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    if x.dtype == tf.uint16:  # no uint16 Tile kernel on CPU
        return tf.bitcast(tf.repeat(tf.bitcast(x, tf.int16), repeats, axis=axis), tf.uint16)
    return tf.repeat(x, repeats, axis=axis)


__all__ = [
    "broadcast_arrays",
    "broadcast_to",
    "concat",
    "expand_dims",
    "flip",
    "matrix_transpose",
    "moveaxis",
    "permute_dims",
    "repeat",
    "reshape",
    "roll",
    "squeeze",
    "stack",
    "tile",
    "unstack",
]
