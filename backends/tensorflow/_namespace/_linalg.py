"""The linear algebra functions of the main TensorFlow namespace (no ``linalg`` extension).

Integer dtypes without a TensorFlow ``MatMul`` kernel compute in int32 or int64 and are cast
back.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import tensorflow as tf

from ._conversion import _pair
from ._helpers import Array, _api, _bits, _ndim


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
    """``sum(conj(x1) * x2, axis)`` with broadcasting."""
    a, b = _pair(x1, x2)
    if a.dtype.is_complex:
        a = tf.math.conj(a)
    return tf.math.reduce_sum(a * b, axis=axis)


__all__ = [
    "matmul",
    "tensordot",
    "vecdot",
]
