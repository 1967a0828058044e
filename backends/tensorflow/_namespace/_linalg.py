"""The linear algebra functions of the main TensorFlow namespace (no ``linalg`` extension).

Integer dtypes without a TensorFlow ``MatMul`` kernel compute in int32 or int64 and are cast
back.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import tensorflow as tf

from ._conversion import _pair
from ._helpers import Array, AxisError, _api, _bits, _ndim


def _matmul_dtype(a: tf.Tensor) -> tf.DType:
    """TF's MatMul has no bool, 8/16-bit or unsigned kernels: compute those in int32/int64."""
    if a.dtype.is_integer and (a.dtype.is_unsigned or _bits(a.dtype) < 32):
        return tf.int64 if _bits(a.dtype) >= 32 else tf.int32
    return a.dtype


@_api
def matmul(x1: Array, x2: Array, /) -> Array:
    """Matrix product with batch broadcasting; 1-d operands as in NumPy."""
    a, b = _pair(x1, x2)
    out_dtype = a.dtype
    work = _matmul_dtype(a)
    a, b = tf.cast(a, work), tf.cast(b, work)
    a_vec = _ndim(a, "matmul") == 1
    b_vec = _ndim(b, "matmul") == 1
    if a_vec:
        a = a[None, :]
    if b_vec:
        b = b[:, None]
    out = tf.linalg.matmul(a, b)
    if a_vec:
        out = tf.squeeze(out, axis=-2)
    if b_vec:
        out = tf.squeeze(out, axis=-1)
    return tf.cast(out, out_dtype)


@_api
def tensordot(
    x1: Array, x2: Array, /, *, axes: int | tuple[Sequence[int], Sequence[int]] = 2
) -> Array:
    a, b = _pair(x1, x2)
    out_dtype = a.dtype
    work = _matmul_dtype(a)
    if not isinstance(axes, builtins.int):
        axes = [list(axes[0]), list(axes[1])]
    return tf.cast(tf.tensordot(tf.cast(a, work), tf.cast(b, work), axes=axes), out_dtype)


@_api
def vecdot(x1: Array, x2: Array, /, *, axis: int = -1) -> Array:
    r"""Dot products :math:`\sum_i \overline{a_i} b_i` along ``axis``, other axes broadcast.

    ``axis`` counts from the end (the standard asks for one in ``[-N, -1]``, ``N`` the smaller
    rank; a non-negative one is taken relative to the broadcast shape, as in NumPy). The
    contracted axis is not broadcast: sizes that differ raise ``ValueError`` (known sizes) or
    fail a run-time assertion (sizes unknown while tracing).
    """
    a, b = _pair(x1, x2)
    nd_a, nd_b = _ndim(a, "vecdot"), _ndim(b, "vecdot")
    nd = builtins.max(nd_a, nd_b)
    if axis >= 0:
        axis -= nd
    if not -builtins.min(nd_a, nd_b) <= axis <= -1:
        raise AxisError(
            f"vecdot: axis {axis} is out of range for arrays of shapes {a.shape} and {b.shape}"
        )
    size_a, size_b = a.shape[axis], b.shape[axis]
    if size_a is not None and size_b is not None:
        if size_a != size_b:
            raise ValueError(
                f"vecdot: the contracted axis {axis} has sizes {size_a} and {size_b} "
                f"(shapes {a.shape} and {b.shape}); it is not broadcast"
            )
    else:
        check = tf.debugging.assert_equal(
            tf.shape(a)[axis], tf.shape(b)[axis], message="vecdot: contracted axis sizes differ"
        )
        with tf.control_dependencies([check]):  # before the product can fail on the shapes
            a, b = tf.identity(a), tf.identity(b)
    if a.dtype.is_complex:
        a = tf.math.conj(a)
    return tf.math.reduce_sum(a * b, axis=axis)


__all__ = [
    "matmul",
    "tensordot",
    "vecdot",
]
