"""The type promotion rules of the TensorFlow namespace (TensorFlow itself never promotes).

:func:`_promote_strict` is the standard's table (plus ``bfloat16``: with ``float16`` it gives
``float32``); :func:`_promote` extends it to mixed kinds, leniently as PyTorch does (a number
beats bool, a float beats an integer); :func:`_scalar_dtype` is the dtype a Python scalar adopts
next to an array. :func:`~._dtypes.result_type`, :func:`~._dtypes.can_cast` and every function
that takes two or more arrays (through :func:`~._conversion._promote_all`) apply them.
"""

from __future__ import annotations

import builtins
from typing import Any

import tensorflow as tf

from ._helpers import (
    _DEFAULT_COMPLEX,
    _DEFAULT_FLOAT,
    _DEFAULT_INT,
    _LOW_PRECISION_FLOATS,
    _SIGNED_BY_BITS,
    _bits,
    _kind,
)


def _promote_strict(a: tf.DType, b: tf.DType) -> tf.DType | None:
    """The standard's promotion table (plus bfloat16); ``None`` for mixed kinds."""
    if a == b:
        return a
    ka, kb = _kind(a), _kind(b)
    if ka == "b" or kb == "b":
        return None
    if ka in "iu" and kb in "iu":
        if ka == kb:
            return a if _bits(a) >= _bits(b) else b
        signed, unsigned = (a, b) if ka == "i" else (b, a)
        if _bits(signed) > _bits(unsigned):
            return signed
        if _bits(unsigned) == 64:
            raise TypeError(f"no integer dtype can hold both {a.name} and {b.name}")
        return _SIGNED_BY_BITS[2 * _bits(unsigned)]
    if ka in "fc" and kb in "fc":
        if a in _LOW_PRECISION_FLOATS and b in _LOW_PRECISION_FLOATS:
            return tf.float32
        real_bits = builtins.max(_bits(a.real_dtype), _bits(b.real_dtype))
        if "c" in (ka, kb):
            return tf.complex128 if real_bits == 64 else tf.complex64
        return a if _bits(a) >= _bits(b) else b
    return None


def _promote(a: tf.DType, b: tf.DType) -> tf.DType:
    """Standard promotion, extended to mixed kinds (numbers beat bool, floats beat integers)."""
    out = _promote_strict(a, b)
    if out is not None:
        return out
    ka, kb = _kind(a), _kind(b)
    if ka == "b":
        return b
    if kb == "b":
        return a
    return a if ka in "fc" else b


def _scalar_dtype(value: Any, dtype: tf.DType) -> tf.DType:
    """The dtype a Python scalar takes next to an array of ``dtype`` (it adopts it when it can)."""
    kind = _kind(dtype)
    if isinstance(value, builtins.bool):
        return dtype
    if isinstance(value, builtins.int):
        return _DEFAULT_INT if kind == "b" else dtype
    if isinstance(value, builtins.float):
        return dtype if kind in "fc" else _DEFAULT_FLOAT
    # complex
    if kind == "c":
        return dtype
    return tf.complex128 if dtype == tf.float64 else _DEFAULT_COMPLEX
