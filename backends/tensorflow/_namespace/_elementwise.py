"""Element-wise functions of the TensorFlow namespace.

Functions of two arrays promote them to a common dtype first (:mod:`._promotion`);
floating-point functions given integers compute in float32; :func:`maximum`, :func:`minimum`
and :func:`clip` propagate NaN from either operand, also under XLA.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import tensorflow as tf

from ._constants import inf
from ._conversion import _floating, _pair, _t
from ._helpers import (
    _DEFAULT_FLOAT,
    _SIGNED_BY_BITS,
    Array,
    _api,
    _bits,
    _const,
    _is_py_scalar,
    _to_bool,
)


@_api
def abs(x: Array, /) -> Array:
    """Absolute value (unsigned input returned as is: TF has no unsigned ``abs`` kernel)."""
    x = _t(x)
    return x if x.dtype.is_unsigned else tf.math.abs(x)


@_api
def negative(x: Array, /) -> Array:
    """``-x``; unsigned input wraps modulo ``2**bits`` (TF has no unsigned ``neg`` kernel)."""
    x = _t(x)
    if x.dtype.is_unsigned:
        return tf.zeros([], x.dtype) - x
    return tf.math.negative(x)


@_api
def positive(x: Array, /) -> Array:
    return _t(x)


@_api
def sign(x: Array, /) -> Array:
    """-1, 0 or 1 (NaN stays NaN; ``x / |x|`` for complex; 0 or 1 for unsigned)."""
    x = _t(x)
    if x.dtype.is_unsigned:
        return tf.cast(x > tf.zeros([], x.dtype), x.dtype)
    return tf.math.sign(x)


@_api
def square(x: Array, /) -> Array:
    return tf.math.square(_t(x))


@_api
def sqrt(x: Array, /) -> Array:
    return tf.math.sqrt(_floating(x))


@_api
def exp(x: Array, /) -> Array:
    return tf.math.exp(_floating(x))


@_api
def expm1(x: Array, /) -> Array:
    return tf.math.expm1(_floating(x))


@_api
def log(x: Array, /) -> Array:
    r"""Natural logarithm; complex :math:`\log z = \log|z| + i\arg z`.

    :math:`|z|` is taken without overflow (TF's complex ``Log`` gives NaN real parts for tiny or
    huge :math:`|z|`), and near :math:`|z| = 1`, where :math:`\log|z|` would lose its digits,
    :math:`\tfrac12\,\mathrm{log1p}((h - 1)(h + 1) + l^2)` is used instead, with
    :math:`h \ge l` the magnitudes of the two parts (:math:`h - 1` is exact there).
    """
    x = _floating(x)
    if not x.dtype.is_complex:
        return tf.math.log(x)
    re, im = tf.math.abs(tf.math.real(x)), tf.math.abs(tf.math.imag(x))
    hi, lo = tf.math.maximum(re, im), tf.math.minimum(re, im)
    modulus = tf.math.abs(x)
    near_one = (hi >= 0.5) & (hi <= 2.0) & (modulus <= 2.0)
    safe_hi = tf.where(near_one, hi, tf.ones_like(hi))
    safe_lo = tf.where(near_one, lo, tf.zeros_like(lo))
    close = 0.5 * tf.math.log1p((safe_hi - 1) * (safe_hi + 1) + safe_lo * safe_lo)
    real = tf.where(near_one, close, tf.math.log(modulus))
    return tf.complex(real, tf.math.angle(x))


@_api
def log1p(x: Array, /) -> Array:
    return tf.math.log1p(_floating(x))


def _log_base(x: tf.Tensor, base: builtins.int) -> tf.Tensor:
    r"""``log(x) / log(base)``, exact at integer powers of ``base``.

    The quotient alone can miss an exact power by an ulp (:math:`\ln 2^{29} / \ln 2` is
    ``29.000000000000004`` in float64), so where :math:`\mathrm{base}^{\mathrm{round}(y)} = x`
    holds exactly the integer is returned instead (with the gradient of the quotient).
    ``log(base)`` is rounded once to ``x``'s dtype (never through float32).
    """
    out = tf.math.log(x) / _const(math.log(base), x.dtype)
    if x.dtype.is_complex:
        return out
    power = tf.math.round(out)
    exact = tf.math.pow(_const(base, x.dtype), power) == x
    # out + (power - out) is power exactly (the difference of two close floats is exact) and
    # keeps the gradient of out, which tf.where(exact, power, out) would zero
    snapped = out + tf.stop_gradient(power - out)
    return tf.where(exact & tf.math.is_finite(power), snapped, out)


@_api
def log2(x: Array, /) -> Array:
    """Base-2 logarithm, ``log(x) / log(2)`` (TF has no ``log2``), exact at powers of two; may
    differ from NumPy by an ulp elsewhere."""
    return _log_base(_floating(x), 2)


@_api
def log10(x: Array, /) -> Array:
    """Base-10 logarithm, ``log(x) / log(10)``, exact at the powers of ten the dtype holds."""
    return _log_base(_floating(x), 10)


@_api
def sin(x: Array, /) -> Array:
    return tf.math.sin(_floating(x))


@_api
def cos(x: Array, /) -> Array:
    return tf.math.cos(_floating(x))


@_api
def tan(x: Array, /) -> Array:
    return tf.math.tan(_floating(x))


@_api
def asin(x: Array, /) -> Array:
    return tf.math.asin(_floating(x))


@_api
def acos(x: Array, /) -> Array:
    return tf.math.acos(_floating(x))


@_api
def atan(x: Array, /) -> Array:
    return tf.math.atan(_floating(x))


@_api
def sinh(x: Array, /) -> Array:
    return tf.math.sinh(_floating(x))


@_api
def cosh(x: Array, /) -> Array:
    return tf.math.cosh(_floating(x))


@_api
def tanh(x: Array, /) -> Array:
    return tf.math.tanh(_floating(x))


@_api
def asinh(x: Array, /) -> Array:
    return tf.math.asinh(_floating(x))


@_api
def acosh(x: Array, /) -> Array:
    return tf.math.acosh(_floating(x))


@_api
def atanh(x: Array, /) -> Array:
    return tf.math.atanh(_floating(x))


@_api
def reciprocal(x: Array, /) -> Array:
    return tf.math.reciprocal(_floating(x))


@_api
def floor(x: Array, /) -> Array:
    """Floor; integer input is returned unchanged (TF has no integer kernel)."""
    x = _t(x)
    return tf.math.floor(x) if x.dtype.is_floating else x


@_api
def ceil(x: Array, /) -> Array:
    """Ceiling; integer input is returned unchanged."""
    x = _t(x)
    return tf.math.ceil(x) if x.dtype.is_floating else x


@_api
def trunc(x: Array, /) -> Array:
    """Round towards zero (TF has no ``trunc``); integer input is returned unchanged."""
    x = _t(x)
    if not x.dtype.is_floating:
        return x
    return tf.where(x < 0, tf.math.ceil(x), tf.math.floor(x))


@_api
def round(x: Array, /) -> Array:
    """Round half to even; integer input is returned unchanged."""
    x = _t(x)
    return tf.math.round(x) if (x.dtype.is_floating or x.dtype.is_complex) else x


@_api
def isnan(x: Array, /) -> Array:
    """NaN test; all ``False`` for integer and bool input (TF raises for them)."""
    x = _t(x)
    if x.dtype.is_complex:
        return tf.math.is_nan(tf.math.real(x)) | tf.math.is_nan(tf.math.imag(x))
    return tf.math.is_nan(x) if x.dtype.is_floating else tf.zeros_like(x, dtype=tf.bool)


@_api
def isinf(x: Array, /) -> Array:
    """Infinity test; all ``False`` for integer and bool input."""
    x = _t(x)
    if x.dtype.is_complex:
        return tf.math.is_inf(tf.math.real(x)) | tf.math.is_inf(tf.math.imag(x))
    return tf.math.is_inf(x) if x.dtype.is_floating else tf.zeros_like(x, dtype=tf.bool)


@_api
def isfinite(x: Array, /) -> Array:
    """Finiteness test; all ``True`` for integer and bool input."""
    x = _t(x)
    if x.dtype.is_complex:
        return tf.math.is_finite(tf.math.real(x)) & tf.math.is_finite(tf.math.imag(x))
    return tf.math.is_finite(x) if x.dtype.is_floating else tf.ones_like(x, dtype=tf.bool)


@_api
def signbit(x: Array, /) -> Array:
    """Whether the sign bit is set (``True`` for ``-0.0`` and negative NaN), read via bitcast."""
    x = _t(x)
    if not x.dtype.is_floating:
        raise TypeError(f"signbit needs a real floating-point dtype, got {x.dtype.name}")
    return tf.bitcast(x, _SIGNED_BY_BITS[_bits(x.dtype)]) < 0


@_api
def real(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.real(x) if x.dtype.is_complex else x


@_api
def imag(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.imag(x) if x.dtype.is_complex else tf.zeros_like(x)


@_api
def conj(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.conj(x) if x.dtype.is_complex else x


@_api
def add(x1: Array, x2: Array, /) -> Array:
    """``x1 + x2`` after promotion to a common dtype."""
    a, b = _pair(x1, x2)
    return tf.math.add(a, b)


@_api
def subtract(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.subtract(a, b)


@_api
def multiply(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.multiply(a, b)


@_api
def divide(x1: Array, x2: Array, /) -> Array:
    """True division; integer operands give float32 (``tf.math.truediv`` would give float64)."""
    a, b = _pair(x1, x2)
    if not (a.dtype.is_floating or a.dtype.is_complex):
        a, b = tf.cast(a, _DEFAULT_FLOAT), tf.cast(b, _DEFAULT_FLOAT)
    return tf.math.divide(a, b)


@_api
def floor_divide(x1: Array, x2: Array, /) -> Array:
    """Floor division (integer division by zero raises on CPU)."""
    a, b = _pair(x1, x2)
    return tf.math.floordiv(a, b)


@_api
def remainder(x1: Array, x2: Array, /) -> Array:
    """Remainder with the sign of the divisor (Python's ``%``), zeros included (``-0.0 % 5`` is
    ``+0.0``; ``tf.math.floormod`` keeps the dividend's zero)."""
    a, b = _pair(x1, x2)
    out = tf.math.floormod(a, b)
    if a.dtype.is_floating:
        out = tf.where(out == 0, copysign(tf.zeros_like(out), b), out)
    return out


@_api
def pow(x1: Array, x2: Array, /) -> Array:
    """``x1 ** x2`` after promotion (unsigned integers compute in int64 and wrap)."""
    a, b = _pair(x1, x2)
    if a.dtype.is_unsigned:
        return tf.cast(tf.math.pow(tf.cast(a, tf.int64), tf.cast(b, tf.int64)), a.dtype)
    return tf.math.pow(a, b)


def _nan_max(a: tf.Tensor, b: tf.Tensor, largest: builtins.bool = True) -> tf.Tensor:
    """``tf.maximum``/``tf.minimum`` made to propagate NaN from either operand.

    Under XLA on CPU, ``tf.maximum(a, b)`` returns ``a`` where ``b`` is NaN (same-shape operands;
    a NaN in ``a`` does propagate), so the NaN positions are patched in explicitly.
    """
    out = tf.math.maximum(a, b) if largest else tf.math.minimum(a, b)
    if a.dtype.is_floating:
        out = tf.where(tf.math.is_nan(a) | tf.math.is_nan(b), a + b, out)
    return out


@_api
def maximum(x1: Array, x2: Array, /) -> Array:
    """Element-wise maximum; NaN in either operand propagates, also under XLA (where
    ``tf.maximum`` drops a NaN in its second operand)."""
    a, b = _pair(x1, x2)
    return _nan_max(a, b)


@_api
def minimum(x1: Array, x2: Array, /) -> Array:
    """Element-wise minimum; NaN in either operand propagates, also under XLA."""
    a, b = _pair(x1, x2)
    return _nan_max(a, b, largest=False)


@_api
def clip(x: Array, /, min: Any = None, max: Any = None) -> Array:
    """Clamp ``x`` to ``[min, max]``; bounds are cast to ``x``'s dtype and the result keeps it.

    NaN in ``x`` or in a bound gives NaN.
    """
    x = _t(x)
    out = x
    if min is not None:
        lo = _const(min, x.dtype) if _is_py_scalar(min) else tf.cast(_t(min), x.dtype)
        out = _nan_max(out, lo)
    if max is not None:
        hi = _const(max, x.dtype) if _is_py_scalar(max) else tf.cast(_t(max), x.dtype)
        out = _nan_max(out, hi, largest=False)
    return out


@_api
def atan2(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.atan2(_floating(a), _floating(b))


@_api
def hypot(x1: Array, x2: Array, /) -> Array:
    """``sqrt(x1**2 + x2**2)`` without overflow (TF has no ``hypot``); infinity beats NaN."""
    a, b = _pair(x1, x2)
    a, b = tf.math.abs(_floating(a)), tf.math.abs(_floating(b))
    hi = _nan_max(a, b)
    lo = _nan_max(a, b, largest=False)
    safe_hi = tf.where(hi == 0, tf.ones_like(hi), hi)
    ratio = lo / safe_hi
    out = hi * tf.math.sqrt(1 + ratio * ratio)
    out = tf.where(hi == 0, tf.zeros_like(out), out)
    return tf.where(
        tf.math.is_inf(a) | tf.math.is_inf(b), tf.fill(tf.shape(out), _const(inf, out.dtype)), out
    )


@_api
def copysign(x1: Array, x2: Array, /) -> Array:
    """``|x1|`` with the sign bit of ``x2`` (TF has no ``copysign``)."""
    a, b = _pair(x1, x2)
    a, b = _floating(a), _floating(b)
    magnitude = tf.math.abs(a)
    return tf.where(signbit(b), -magnitude, magnitude)


@_api
def nextafter(x1: Array, x2: Array, /) -> Array:
    """Next representable value after ``x1`` towards ``x2``.

    ``tf.math.nextafter`` only has float32/float64 kernels; float16 and bfloat16 step the bits.
    """
    a, b = _pair(x1, x2)
    if not a.dtype.is_floating:
        raise TypeError(f"nextafter needs a real floating-point dtype, got {a.dtype.name}")
    if a.dtype in (tf.float32, tf.float64):
        return tf.math.nextafter(a, b)
    bits = tf.bitcast(a, tf.int16)
    up = b > a
    step = tf.where(up == (bits >= 0), tf.ones_like(bits), -tf.ones_like(bits))
    out = tf.bitcast(bits + step, a.dtype)
    smallest = tf.where(
        b > 0,
        tf.bitcast(tf.constant(1, tf.int16), a.dtype),
        tf.bitcast(tf.constant(-32767, tf.int16), a.dtype),
    )
    out = tf.where(a == 0, smallest, out)
    out = tf.where(a == b, b, out)
    return tf.where(tf.math.is_nan(a) | tf.math.is_nan(b), a + b, out)


@_api
def logaddexp(x1: Array, x2: Array, /) -> Array:
    """``log(exp(x1) + exp(x2))`` computed stably (exact for equal infinities; NaN propagates)."""
    a, b = _pair(x1, x2)
    a, b = _floating(a), _floating(b)
    hi = _nan_max(a, b)
    delta = tf.where(a == b, tf.zeros_like(a), -tf.math.abs(a - b))
    return hi + tf.math.log1p(tf.math.exp(delta))


@_api
def equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.equal(a, b)


@_api
def not_equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.not_equal(a, b)


@_api
def less(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.less(a, b)


@_api
def less_equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.less_equal(a, b)


@_api
def greater(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.greater(a, b)


@_api
def greater_equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.greater_equal(a, b)


@_api
def logical_and(x1: Array, x2: Array, /) -> Array:
    """Logical and; non-bool input is compared with zero first."""
    return tf.math.logical_and(_to_bool(_t(x1)), _to_bool(_t(x2)))


@_api
def logical_or(x1: Array, x2: Array, /) -> Array:
    return tf.math.logical_or(_to_bool(_t(x1)), _to_bool(_t(x2)))


@_api
def logical_xor(x1: Array, x2: Array, /) -> Array:
    return tf.math.logical_xor(_to_bool(_t(x1)), _to_bool(_t(x2)))


@_api
def logical_not(x: Array, /) -> Array:
    return tf.math.logical_not(_to_bool(_t(x)))


@_api
def bitwise_and(x1: Array, x2: Array, /) -> Array:
    """Bitwise and (logical and for bool, which ``tf.bitwise`` rejects)."""
    a, b = _pair(x1, x2)
    return tf.math.logical_and(a, b) if a.dtype == tf.bool else tf.bitwise.bitwise_and(a, b)


@_api
def bitwise_or(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.logical_or(a, b) if a.dtype == tf.bool else tf.bitwise.bitwise_or(a, b)


@_api
def bitwise_xor(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.logical_xor(a, b) if a.dtype == tf.bool else tf.bitwise.bitwise_xor(a, b)


@_api
def bitwise_invert(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.logical_not(x) if x.dtype == tf.bool else tf.bitwise.invert(x)


@_api
def bitwise_left_shift(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.bitwise.left_shift(a, b)


@_api
def bitwise_right_shift(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.bitwise.right_shift(a, b)


@_api
def where(condition: Array, x1: Any, x2: Any, /) -> Array:
    """Select from ``x1`` where ``condition`` else ``x2``, broadcasting all three, with promotion.

    Both branches are computed: mask the *inputs* of functions that can produce NaN/inf in the
    unused branch, or their gradients become NaN.
    """
    a, b = _pair(x1, x2)
    return tf.where(_to_bool(_t(condition)), a, b)


__all__ = [
    "abs",
    "acos",
    "acosh",
    "add",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "bitwise_and",
    "bitwise_invert",
    "bitwise_left_shift",
    "bitwise_or",
    "bitwise_right_shift",
    "bitwise_xor",
    "ceil",
    "clip",
    "conj",
    "copysign",
    "cos",
    "cosh",
    "divide",
    "equal",
    "exp",
    "expm1",
    "floor",
    "floor_divide",
    "greater",
    "greater_equal",
    "hypot",
    "imag",
    "isfinite",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "log",
    "log1p",
    "log2",
    "log10",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "maximum",
    "minimum",
    "multiply",
    "negative",
    "nextafter",
    "not_equal",
    "positive",
    "pow",
    "real",
    "reciprocal",
    "remainder",
    "round",
    "sign",
    "signbit",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "subtract",
    "tan",
    "tanh",
    "trunc",
    "where",
]
