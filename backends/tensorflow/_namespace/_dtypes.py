"""Data types and the data type functions of the TensorFlow namespace.

The dtype names are ``tf.DType`` objects; the functions accept NumPy dtypes and strings as well.
:func:`result_type` and :func:`can_cast` follow the promotion rules of :mod:`._promotion`.
"""

from __future__ import annotations

import builtins
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
import tensorflow as tf

from ._conversion import _t
from ._helpers import Array, Device, _api, _bits, _is_py_scalar, _kind, _on
from ._promotion import _promote, _promote_strict, _scalar_dtype

bool = tf.bool
int8 = tf.int8
int16 = tf.int16
int32 = tf.int32
int64 = tf.int64
uint8 = tf.uint8
uint16 = tf.uint16
uint32 = tf.uint32
uint64 = tf.uint64
float16 = tf.float16
bfloat16 = tf.bfloat16
float32 = tf.float32
float64 = tf.float64
complex64 = tf.complex64
complex128 = tf.complex128


@_api
def isdtype(dtype: Any, kind: Any) -> builtins.bool:
    """Whether ``dtype`` is of ``kind`` (a kind name, a dtype, or a tuple of them).

    ``bfloat16`` counts as ``"real floating"``. NumPy dtypes are accepted for both arguments.
    """
    dtype = tf.as_dtype(dtype)
    if isinstance(kind, tuple):
        return builtins.any(isdtype(dtype, k) for k in kind)
    if not isinstance(kind, str):
        return dtype == tf.as_dtype(kind)
    k = _kind(dtype)
    checks = {
        "bool": k == "b",
        "signed integer": k == "i",
        "unsigned integer": k == "u",
        "integral": k in "iu",
        "real floating": k == "f",
        "complex floating": k == "c",
        "numeric": k in "iufc",
    }
    if kind not in checks:
        raise ValueError(f"unknown dtype kind {kind!r}")
    return checks[kind]


class finfo_object(NamedTuple):
    """Machine limits of a floating-point dtype (``dtype`` is the real dtype for complex ones)."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: tf.DType


class iinfo_object(NamedTuple):
    """Machine limits of an integer dtype."""

    bits: int
    max: int
    min: int
    dtype: tf.DType


@_api
def finfo(type: Any, /) -> finfo_object:
    """Limits of a floating-point dtype or of an array's dtype (``bfloat16`` included)."""
    dtype = tf.as_dtype(type.dtype if hasattr(type, "dtype") else type)
    if not (dtype.is_floating or dtype.is_complex):
        raise TypeError(f"finfo needs a floating-point dtype, got {dtype.name}")
    real = dtype.real_dtype
    info = ml_dtypes.finfo(real.as_numpy_dtype)
    return finfo_object(
        bits=_bits(real),
        eps=builtins.float(info.eps),
        max=builtins.float(info.max),
        min=builtins.float(info.min),
        smallest_normal=builtins.float(info.smallest_normal),
        dtype=real,
    )


@_api
def iinfo(type: Any, /) -> iinfo_object:
    """Limits of an integer dtype or of an array's dtype."""
    dtype = tf.as_dtype(type.dtype if hasattr(type, "dtype") else type)
    if not dtype.is_integer:
        raise TypeError(f"iinfo needs an integer dtype, got {dtype.name}")
    info = np.iinfo(dtype.as_numpy_dtype)
    return iinfo_object(
        bits=_bits(dtype), max=builtins.int(info.max), min=builtins.int(info.min), dtype=dtype
    )


@_api
def result_type(*arrays_and_dtypes: Any) -> tf.DType:
    """The promoted dtype of arrays, dtypes and Python scalars (scalars adopt the array dtype)."""
    dtypes: list[tf.DType] = []
    scalars: list[Any] = []
    for a in arrays_and_dtypes:
        if _is_py_scalar(a):
            scalars.append(a)
        elif isinstance(a, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
            dtypes.append(tf.as_dtype(a.dtype))
        else:
            dtypes.append(tf.as_dtype(a))
    if not dtypes:
        raise ValueError("result_type needs at least one array or dtype")
    out = dtypes[0]
    for d in dtypes[1:]:
        out = _promote(out, d)
    for s in scalars:
        out = _promote(out, _scalar_dtype(s, out))
    return out


@_api
def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Whether the standard's promotion rules allow ``from_ -> to`` (mixed kinds: ``False``)."""
    src = tf.as_dtype(from_.dtype if hasattr(from_, "dtype") else from_)
    dst = tf.as_dtype(to)
    try:
        return _promote_strict(src, dst) == dst
    except TypeError:
        return False


@_api
def astype(
    x: Array, dtype: Any, /, *, copy: builtins.bool = True, device: Device | None = None
) -> Array:
    """``tf.cast`` to ``dtype`` (NumPy dtypes accepted).

    Tensors are immutable, so ``x`` itself is returned when the dtype already matches, whatever
    ``copy`` says (no op is added to the graph). Float-to-integer casts of NaN, infinities and
    out-of-range values give different results on CPU and under XLA (TF leaves them undefined);
    complex-to-real casts drop the imaginary part.
    """
    x = _t(x)
    dtype = tf.as_dtype(dtype)
    with _on(device):
        if x.dtype == dtype:
            return x if device is None else tf.identity(x)
        return tf.cast(x, dtype)


__all__ = [
    "astype",
    "bfloat16",
    "bool",
    "can_cast",
    "complex64",
    "complex128",
    "finfo",
    "finfo_object",
    "float16",
    "float32",
    "float64",
    "iinfo",
    "iinfo_object",
    "int8",
    "int16",
    "int32",
    "int64",
    "isdtype",
    "result_type",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]
