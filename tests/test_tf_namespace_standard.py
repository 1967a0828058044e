"""Hypothesis tests of the TensorFlow namespace against NumPy in float64.

They pin down what the standard's own test suite (data-apis/array-api-tests) found wrong in
``xentropy.backends.tensorflow.namespace``: Python floats rounded through float32 on their way to
float64 (``log2``, ``log10``, ``var``/``std``, ``linspace``) or refused beyond float32's range,
signed zeros from TensorFlow's scalar cache, ``squeeze(x, axis=())``, ``vecdot`` broadcasting its
contracted axis, ``expand_dims`` with a positional axis, ``asarray`` of mixed bools and ints,
``arange`` of small integer dtypes and empty ranges, ``remainder`` of signed zeros, complex
``log``; and they check every namespace function the core (``xentropy/*.py``) calls on random
data. The reference is NumPy on the same values, in float64 unless a test is about float32.
Subnormal inputs are left out: TensorFlow's CPU kernels flush them to zero (a documented
limitation), as its cast to float32 flushes a float64 value that would be subnormal there.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import required_backends
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

if "tensorflow" in required_backends():  # XENTROPY_REQUIRE_BACKENDS: fail instead of skipping
    import tensorflow as tf
else:
    tf = pytest.importorskip("tensorflow")

ns = importlib.import_module("xentropy.backends.tensorflow.namespace")

F64 = np.float64
FLOAT_DTYPES = {"float32": (tf.float32, np.float32), "float64": (tf.float64, np.float64)}

# +-inf and huge values; no subnormals, which TensorFlow flushes to zero on CPU (see the docs)
any_float = st.floats(allow_nan=False, allow_subnormal=False, width=64)
# moderate values stay normal in float32 too (casts flush float32 subnormals as well)
moderate = st.floats(-1e3, 1e3).filter(lambda v: v == 0 or abs(v) > 1e-30)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def arrays(shape: Any = shapes, elements: Any = moderate) -> Any:
    return hnp.arrays(F64, shape, elements=elements)


def special_arrays(shape: Any = nonempty_shapes) -> Any:
    """float64 arrays that also hold NaN, infinities and signed zeros."""
    return hnp.arrays(F64, shape, elements=st.floats(allow_subnormal=False, width=64))


def same_bits(actual: Any, expected: Any) -> None:
    """Equal values, dtypes and shapes; NaN equals NaN and ``-0.0`` differs from ``0.0``."""
    got = np.asarray(actual)
    want = np.asarray(expected)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(got, want)


def close_ulps(actual: Any, expected: Any, ulps: float) -> None:
    """Within ``ulps`` units in the last place of the float64 reference (NaN/inf must match)."""
    got = np.asarray(actual, F64)
    want = np.asarray(expected, F64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    err = np.abs(got[finite] - want[finite])
    assert np.all(err <= ulps * np.spacing(np.abs(want[finite]))), (got, want)


# ------------------------------------------------------------------------------------------
# Python scalars are rounded once, straight to the target dtype
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FLOAT_DTYPES))
@given(value=any_float)
def test_python_float_rounds_once_to_the_target_dtype(name: str, value: float) -> None:
    """asarray/full/full_like and a scalar operand all round ``value`` like NumPy (beyond the
    dtype's range to +-inf, as IEEE 754 rounding does); float64 keeps ``value`` exactly."""
    tf_dtype, np_dtype = FLOAT_DTYPES[name]
    with np.errstate(over="ignore"):
        want = np.asarray(value, np_dtype)
    same_bits(ns.asarray(value, dtype=tf_dtype), want)
    if name == "float64":
        assert float(ns.asarray(value, dtype=tf.float64)) == value
    same_bits(ns.full((2,), value, dtype=tf_dtype), np.full((2,), want))
    same_bits(ns.full_like(tf.zeros([2], tf_dtype), value), np.full((2,), want))
    same_bits(ns.where(tf.constant([True]), value, tf.zeros([1], tf_dtype)), np.asarray([want]))
    if 0 < abs(want) < np.finfo(np_dtype).smallest_normal:
        return  # arithmetic flushes subnormals to zero (TensorFlow on CPU)
    # a scalar beside an array adopts its dtype: -0.0 + value is value, bit for bit
    same_bits(
        ns.add(tf.constant([-0.0], tf_dtype), value), np.add(np.asarray([-0.0], np_dtype), want)
    )


@given(value=st.floats(min_value=float(np.finfo(np.float32).max) * 2, allow_infinity=False))
def test_float_beyond_float32_range(value: float) -> None:
    """Into float64 it is kept; with the default dtype (float32) it overflows to inf."""
    assert float(ns.asarray(value, dtype=tf.float64)) == value
    assert float(ns.asarray(np.float64(value), dtype=tf.float64)) == value
    default = ns.asarray(value)
    assert default.dtype == tf.float32 and np.isposinf(default.numpy())
    assert np.isneginf(ns.asarray([-value]).numpy()[0])


def test_signed_zero_survives_tensorflows_scalar_cache() -> None:
    """``tf.constant(0.0)`` returns a cached ``-0.0`` after ``tf.constant(-0.0)``; the
    namespace's scalars never do, whatever the dtype or the way they are made."""
    for dtype in (tf.float32, tf.float64, tf.float16, tf.complex64, tf.complex128, None):
        for first, second in ((-0.0, 0.0), (0.0, -0.0)):
            ns.asarray(first, dtype=dtype)
            out = ns.asarray(second, dtype=dtype).numpy()
            assert bool(np.signbit(np.real(out))) == (math.copysign(1.0, second) < 0), (
                dtype,
                second,
            )
        ns.full((), -0.0, dtype=tf.float64)
        assert not np.signbit(ns.full((), 0.0, dtype=tf.float64).numpy())
        ns.add(tf.constant(1.0, tf.float64), -0.0)
        assert not np.signbit(ns.multiply(tf.constant(1.0, tf.float64), 0.0).numpy())


@given(values=st.lists(st.one_of(st.booleans(), st.integers(-(2**40), 2**40)), min_size=1))
def test_asarray_of_mixed_bools_and_ints(values: list[Any]) -> None:
    """The default integer (int32, int64 when a value needs it), as the standard asks."""
    out = ns.asarray(values)
    wide = any(not -(2**31) <= int(v) < 2**31 for v in values)
    if all(isinstance(v, bool) for v in values):
        expected = np.asarray(values)
    else:
        expected = np.asarray([int(v) for v in values], np.int64 if wide else np.int32)
    same_bits(out, expected)


# ------------------------------------------------------------------------------------------
# log2 / log10, var / std, linspace: float64 constants computed in float64
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fn", "ref", "base"), [("log2", np.log2, 2), ("log10", np.log10, 10)])
@given(
    x=arrays(
        elements=st.floats(0, 1e300, allow_subnormal=False) | st.sampled_from([math.inf, -1.0])
    )
)
def test_log2_log10_float64(fn: str, ref: Callable[..., Any], base: int, x: np.ndarray) -> None:
    # log(x) / log(base): two roundings, each up to an ulp of the quotient's binade
    close_ulps(getattr(ns, fn)(tf.constant(x)), ref(x), ulps=4)


@pytest.mark.parametrize(("fn", "base", "top"), [("log2", 2, 1000), ("log10", 10, 22)])
@given(data=st.data())
def test_log2_log10_exact_at_powers(fn: str, base: int, top: int, data: Any) -> None:
    """``log2(8.0) == 3.0`` and ``log10(1e22) == 22.0`` exactly in float64 (the quotient
    ``log(x) / log(base)`` with a float32-rounded ``log(base)`` gave ``2.99999999``)."""
    k = data.draw(st.integers(-top, top), label="k")
    x = float(base) ** k
    assume(x > 0 and math.isfinite(x) and float(F64(base) ** F64(k)) == x)
    out = getattr(ns, fn)(tf.constant([x], tf.float64)).numpy()
    assert out[0] == k


@pytest.mark.parametrize("fn", ["var", "std"])
@given(
    x=arrays(shape=nonempty_shapes),
    correction=st.floats(0, 0.999) | st.integers(0, 1),
    data=st.data(),
)
def test_var_std_fractional_correction(
    fn: str, x: np.ndarray, correction: float, data: Any
) -> None:
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    n = x.size if axis is None else x.shape[axis]
    assume(n - correction > 0)
    out = getattr(ns, fn)(tf.constant(x), axis=axis, correction=correction, keepdims=keepdims)
    want = getattr(np, fn)(x, axis=axis, ddof=correction, keepdims=keepdims)
    assert out.dtype == tf.float64
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12 * (1 + np.abs(x).max()))


@given(
    start=moderate, stop=moderate, num=st.integers(0, 9),
    endpoint=st.booleans(),
)  # fmt: skip
def test_linspace_float64_matches_numpy(
    start: float, stop: float, num: int, endpoint: bool
) -> None:
    out = ns.linspace(start, stop, num, dtype=tf.float64, endpoint=endpoint)
    want = np.linspace(start, stop, num, endpoint=endpoint, dtype=np.float64)
    close_ulps(out, want, ulps=1)
    if num:
        assert out.numpy()[0] == start
    if endpoint and num > 1:
        assert out.numpy()[-1] == stop


def test_linspace_issue_example() -> None:
    out = ns.linspace(0.1, 0.7, 3, dtype=tf.float64).numpy()
    np.testing.assert_array_equal(out, np.linspace(0.1, 0.7, 3))
    assert out[1] == 0.4
    assert ns.linspace(0, 1, 5).dtype == tf.float32
    assert ns.linspace(1j, 2, 3).dtype == tf.complex64


# ------------------------------------------------------------------------------------------
# squeeze, expand_dims, vecdot
# ------------------------------------------------------------------------------------------


@given(x=arrays(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2)))
def test_squeeze_empty_axis_returns_x(x: np.ndarray) -> None:
    t = tf.constant(x)
    assert ns.squeeze(t, axis=()) is t
    ones = tuple(i for i, n in enumerate(x.shape) if n == 1)
    same_bits(ns.squeeze(t, axis=ones), np.squeeze(x, axis=ones))
    if ones:
        same_bits(ns.squeeze(t, ones[-1]), np.squeeze(x, axis=ones[-1]))
    wide = [i for i, n in enumerate(x.shape) if n != 1]
    if wide:
        with pytest.raises(ValueError):
            ns.squeeze(t, axis=wide[0])


@given(x=arrays(), data=st.data())
def test_expand_dims_positional_axis(x: np.ndarray, data: Any) -> None:
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim), label="axis")
    same_bits(ns.expand_dims(tf.constant(x), axis), np.expand_dims(x, axis))
    same_bits(ns.expand_dims(tf.constant(x), axis=axis), np.expand_dims(x, axis))


@given(
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
    n=st.integers(1, 4),
    data=st.data(),
)
def test_vecdot_matches_numpy(batch: Any, n: int, data: Any) -> None:
    s1, s2 = (*batch.input_shapes[0], n), (*batch.input_shapes[1], n)
    a = data.draw(arrays(shape=s1), label="a")
    b = data.draw(arrays(shape=s2), label="b")
    out = ns.vecdot(tf.constant(a), tf.constant(b))
    want = np.sum(a * b, axis=-1)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-9)
    assert tuple(out.shape) == want.shape
    # complex: the first argument is conjugated
    ca, cb = a + 1j * b, b - 0.5j * a
    outc = ns.vecdot(tf.constant(ca), tf.constant(cb)).numpy()
    np.testing.assert_allclose(outc, np.sum(np.conj(ca) * cb, axis=-1), rtol=1e-12, atol=1e-9)


@given(n1=st.integers(1, 4), n2=st.integers(1, 4), rows=st.integers(1, 3))
def test_vecdot_does_not_broadcast_the_contracted_axis(n1: int, n2: int, rows: int) -> None:
    assume(n1 != n2)
    a = tf.ones([rows, n1], tf.float64)
    b = tf.ones([rows, n2], tf.float64)
    with pytest.raises(ValueError, match="contracted axis"):
        ns.vecdot(a, b)
    with pytest.raises(ValueError, match="contracted axis"):
        ns.vecdot(a[:, None, :], b, axis=-1)


def test_vecdot_checks_unknown_sizes_at_run_time() -> None:
    traced = tf.function(ns.vecdot, input_signature=[tf.TensorSpec([None, None], tf.float64)] * 2)
    a = tf.ones([2, 3], tf.float64)
    np.testing.assert_allclose(traced(a, a).numpy(), [3.0, 3.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="contracted axis"):
        traced(a, tf.ones([2, 4], tf.float64))


def test_vecdot_axis() -> None:
    a = np.arange(24.0).reshape(2, 3, 4)
    b = np.arange(12.0).reshape(3, 4) - 5
    want = np.sum(a * b, axis=-2)
    np.testing.assert_allclose(ns.vecdot(tf.constant(a), tf.constant(b), axis=-2).numpy(), want)
    with pytest.raises(ValueError):
        ns.vecdot(tf.constant(a), tf.constant(b), axis=-3)  # beyond the smaller rank


# ------------------------------------------------------------------------------------------
# Shapes and containers the namespace returns
# ------------------------------------------------------------------------------------------


@given(x=arrays(shape=nonempty_shapes, elements=st.integers(-2, 2).map(float)))
def test_returned_containers_are_the_standards(x: np.ndarray) -> None:
    """Tuples where the standard returns tuples (``nonzero``, ``unstack``, the ``unique_*``
    results), lists for ``meshgrid`` and ``broadcast_arrays`` (2024.12); each shape read with
    ``tuple(...)`` is NumPy's."""
    t = tf.constant(x)
    nz = ns.nonzero(t)
    assert isinstance(nz, tuple) and len(nz) == x.ndim
    for got, want in zip(nz, np.nonzero(x), strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    parts = ns.unstack(t)
    assert isinstance(parts, tuple) and len(parts) == x.shape[0]
    assert tuple(parts[0].shape) == x.shape[1:]
    u = ns.unique_all(t)
    assert isinstance(u, tuple)
    np.testing.assert_array_equal(u.values.numpy(), np.unique(x))
    assert tuple(u.inverse_indices.shape) == x.shape
    grids = ns.meshgrid(tf.constant(x.ravel()), tf.constant(x.ravel()[:2]))
    assert isinstance(grids, list)
    assert [tuple(g.shape) for g in grids] == [
        g.shape for g in np.meshgrid(x.ravel(), x.ravel()[:2])
    ]
    assert isinstance(ns.broadcast_arrays(t, t), list)


# ------------------------------------------------------------------------------------------
# remainder, complex log, arange: other fixes the standard's suite asked for
# ------------------------------------------------------------------------------------------


@given(
    a=arrays(shape=(6,), elements=st.floats(-50, 50, allow_subnormal=False)),
    b=st.floats(0.5, 7) | st.floats(-7, -0.5),
)
def test_remainder_takes_the_divisors_sign_also_for_zero(a: np.ndarray, b: float) -> None:
    a = np.concatenate([a, [0.0, -0.0, 2 * b, -2 * b]])
    same_bits(ns.remainder(tf.constant(a), b), np.remainder(a, b))


@given(
    re=st.floats(-1e300, 1e300, allow_subnormal=False) | st.sampled_from([1e-300, -3e-305, 0.6]),
    im=st.floats(-1e300, 1e300, allow_subnormal=False) | st.sampled_from([2e-300, -1e-307, 0.8]),
)
@example(re=1e300, im=-1e300)  # |z|^2 overflows: TF's own complex Log gives NaN
@example(re=0.0, im=-1e-253)  # |z|^2 underflows: NaN from TF's Log too
@example(re=1.0, im=0.0625)  # log|z| = 0.00195 from |z| = 1.00195: digits lost without log1p
def test_complex_log_without_overflow(re: float, im: float) -> None:
    z = np.full(8, complex(re, im))  # 8 values: TF's vectorised complex Log is the one that fails
    assume(z[0] != 0)
    out = ns.log(tf.constant(z)).numpy()
    want = np.log(z)
    # near |z| = 1 the real part is a difference: an absolute error of a few ulps of 1
    np.testing.assert_allclose(out.real, want.real, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out.imag, want.imag, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dtype", [tf.uint8, tf.int8, tf.int16, tf.int32, tf.uint16, tf.int64])
@given(start=st.integers(0, 50), stop=st.integers(0, 100), step=st.integers(1, 7))
def test_arange_integer_dtypes(dtype: Any, start: int, stop: int, step: int) -> None:
    out = ns.arange(start, stop, step, dtype=dtype)
    same_bits(out, np.arange(start, stop, step, dtype=dtype.as_numpy_dtype))


# ------------------------------------------------------------------------------------------
# Every namespace function the core calls, on random float64 data
# ------------------------------------------------------------------------------------------

UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "isfinite": np.isfinite,
    "isinf": np.isinf,
    "isnan": np.isnan,
}


@pytest.mark.parametrize("fn", sorted(UNARY))
@given(x=special_arrays())
def test_core_unary(fn: str, x: np.ndarray) -> None:
    with np.errstate(all="ignore"):
        want = UNARY[fn](x)
    out = getattr(ns, fn)(tf.constant(x))
    if want.dtype == np.bool_:
        same_bits(out, want)
    else:
        assert out.dtype == tf.float64
        close_ulps(out, want, ulps=4)


BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "maximum": np.maximum,
    "minimum": np.minimum,
    "logaddexp": np.logaddexp,
}


@pytest.mark.parametrize("fn", sorted(BINARY))
@given(xy=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), data=st.data())
def test_core_binary_nan_propagates(fn: str, xy: Any, data: Any) -> None:
    a = data.draw(special_arrays(xy.input_shapes[0]), label="a")
    b = data.draw(special_arrays(xy.input_shapes[1]), label="b")
    with np.errstate(all="ignore"):
        want = BINARY[fn](a, b)
    out = getattr(ns, fn)(tf.constant(a), tf.constant(b))
    if fn == "logaddexp":
        close_ulps(out, want, ulps=4)
    else:
        # +0.0 and -0.0 compare equal: either may come back for max(0.0, -0.0)
        np.testing.assert_array_equal(out.numpy(), want)


@given(x=special_arrays(), data=st.data())
def test_core_where_and_clip(x: np.ndarray, data: Any) -> None:
    t = tf.constant(x)
    cond = np.isfinite(x)
    fill = data.draw(any_float, label="fill")
    same_bits(ns.where(tf.constant(cond), t, fill), np.where(cond, x, fill))
    same_bits(ns.where(tf.constant(cond), fill, t), np.where(cond, fill, x))
    lo = data.draw(st.floats(-10, 0, allow_subnormal=False), label="lo")
    hi = data.draw(st.floats(0, 10, allow_subnormal=False), label="hi")
    np.testing.assert_array_equal(ns.clip(t, lo, hi).numpy(), np.clip(x, lo, hi))
    np.testing.assert_array_equal(ns.clip(t, min=lo).numpy(), np.where(x < lo, lo, x))


REDUCTIONS = ("sum", "max", "min", "all", "argmax")


@pytest.mark.parametrize("fn", REDUCTIONS)
@given(x=arrays(shape=nonempty_shapes, elements=moderate | st.just(math.nan)), data=st.data())
def test_core_reductions(fn: str, x: np.ndarray, data: Any) -> None:
    t = tf.constant(x)
    if fn == "argmax":
        axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1), label="axis")
        keepdims = data.draw(st.booleans(), label="keepdims")
        out = ns.argmax(t, axis=axis, keepdims=keepdims)
        assert out.dtype == tf.int64
        np.testing.assert_array_equal(out.numpy(), np.argmax(x, axis=axis, keepdims=keepdims))
        return
    axis = data.draw(
        st.none() | st.lists(st.integers(0, x.ndim - 1), unique=True).map(tuple), label="axis"
    )
    keepdims = data.draw(st.booleans(), label="keepdims")
    if fn == "all":
        x = x > 0
        t = tf.constant(x)
    out = getattr(ns, fn)(t, axis=axis, keepdims=keepdims)
    want = getattr(np, {"all": "all", "sum": "sum", "max": "max", "min": "min"}[fn])(
        x, axis=axis, keepdims=keepdims
    )
    assert tuple(out.shape) == np.shape(want)
    if fn == "sum":
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-9)
    else:
        np.testing.assert_array_equal(out.numpy(), want)


@given(x=arrays(shape=(3,)))
def test_core_sum_dtype_argument(x: np.ndarray) -> None:
    ints = tf.constant(x.astype(np.int8))
    out = ns.sum(ints, dtype=tf.int64)
    assert out.dtype == tf.int64 and int(out) == int(x.astype(np.int8).astype(np.int64).sum())
    assert ns.sum(tf.constant(x > 0)).dtype == tf.int32


@given(
    mn=hnp.array_shapes(min_dims=2, max_dims=2, max_side=4),
    k=st.integers(1, 4),
    batch=st.integers(1, 3),
    data=st.data(),
)
def test_core_matmul_transpose_permute(mn: tuple[int, int], k: int, batch: int, data: Any) -> None:
    a = data.draw(arrays(shape=(batch, *mn)), label="a")
    b = data.draw(arrays(shape=(mn[1], k)), label="b")
    np.testing.assert_allclose(
        ns.matmul(tf.constant(a), tf.constant(b)).numpy(), a @ b, rtol=1e-12, atol=1e-9
    )
    same_bits(ns.matrix_transpose(tf.constant(a)), np.swapaxes(a, -1, -2))
    perm = data.draw(st.permutations(range(3)), label="perm")
    same_bits(ns.permute_dims(tf.constant(a), tuple(perm)), np.transpose(a, perm))
    same_bits(ns.reshape(tf.constant(a), (-1,)), a.reshape(-1))
    same_bits(ns.reshape(tf.constant(a), (batch, -1)), a.reshape(batch, -1))


@given(x=arrays(shape=(3, 4)), data=st.data())
def test_core_take_stack_concat(x: np.ndarray, data: Any) -> None:
    t = tf.constant(x)
    idx = data.draw(hnp.arrays(np.int64, (5,), elements=st.integers(-4, 3)), label="idx")
    same_bits(ns.take(t, tf.constant(idx), axis=1), np.take(x, idx, axis=1))
    same_bits(
        ns.take(t, tf.constant(idx.astype(np.int32) % 3), axis=0), np.take(x, idx % 3, axis=0)
    )
    axis = data.draw(st.integers(-3, 2), label="axis")
    same_bits(ns.stack([t, t + 1], axis=axis), np.stack([x, x + 1], axis=axis))
    # concat promotes: float32 with float64 gives float64
    same_bits(
        ns.concat([t, tf.constant(x.astype(np.float32))], axis=0),
        np.concatenate([x, x.astype(np.float32).astype(F64)], axis=0),
    )


@given(
    shapes_=hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3), data=st.data()
)
def test_core_broadcast_to(shapes_: Any, data: Any) -> None:
    x = data.draw(arrays(shape=shapes_.input_shapes[0]), label="x")
    same_bits(
        ns.broadcast_to(tf.constant(x), shapes_.result_shape),
        np.broadcast_to(x, shapes_.result_shape),
    )
    same_bits(
        ns.broadcast_to(tf.constant(x), tf.zeros(shapes_.result_shape).shape),
        np.broadcast_to(x, shapes_.result_shape),
    )  # a TensorShape (what x.shape is) is accepted as the shape too


@given(
    shape=shapes,
    fill=any_float,
    data=st.data(),
)
def test_core_creation(shape: tuple[int, ...], fill: float, data: Any) -> None:
    like = tf.zeros(shape, tf.float64)
    same_bits(ns.zeros(shape, dtype=tf.float64), np.zeros(shape))
    same_bits(ns.ones(shape, dtype=tf.float64), np.ones(shape))
    same_bits(ns.full(shape, fill, dtype=tf.float64), np.full(shape, fill))
    assert tuple(ns.empty(shape, dtype=tf.float64).shape) == shape
    same_bits(ns.zeros_like(like), np.zeros(shape))
    same_bits(ns.ones_like(like, dtype=tf.int32), np.ones(shape, np.int32))
    same_bits(ns.full_like(like, fill), np.full(shape, fill))
    assert ns.zeros(shape).dtype == tf.float32  # the default float
    n = data.draw(st.integers(0, 20), label="n")
    same_bits(ns.arange(n, dtype=tf.int64), np.arange(n, dtype=np.int64))
    same_bits(ns.arange(0.5, n, 0.25, dtype=tf.float64), np.arange(0.5, n, 0.25))


@given(x=arrays(elements=any_float | st.just(math.nan)))
@example(x=np.array([1.4e-45, -1e-40, 1.2e-38]))  # subnormal once narrowed to float32
def test_core_asarray_astype(x: np.ndarray) -> None:
    same_bits(ns.asarray(x), x)  # NumPy arrays keep their dtype
    same_bits(ns.asarray(x.tolist(), dtype=tf.float64), np.asarray(x.tolist(), F64))
    t = tf.constant(x)
    assert ns.asarray(t) is t
    with np.errstate(all="ignore"):
        narrowed = x.astype(np.float32)
    # TensorFlow's CPU casts flush float32 subnormals to a zero of their sign, in their result
    # (a value normal in float64) and in their input (see the module docstring)
    tiny = np.finfo(np.float32).smallest_normal
    flushed = np.where(np.abs(narrowed) < tiny, np.copysign(np.float32(0), narrowed), narrowed)
    same_bits(ns.astype(t, tf.float32), flushed.astype(np.float32))
    same_bits(ns.astype(tf.constant(narrowed), tf.float64), flushed.astype(F64))
    finite = x[np.isfinite(x) & (np.abs(x) < 100)]
    same_bits(ns.astype(tf.constant(finite), tf.int8), finite.astype(np.int8))


def test_core_dtype_functions_and_info() -> None:
    for name in ("float32", "float64"):
        info, ref = ns.finfo(getattr(ns, name)), np.finfo(name)
        assert (info.bits, info.eps, info.max, info.min) == (ref.bits, ref.eps, ref.max, ref.min)
        assert info.smallest_normal == ref.smallest_normal
    for name in ("int8", "int32", "int64"):
        iinfo, iref = ns.iinfo(getattr(ns, name)), np.iinfo(name)
        assert (iinfo.bits, iinfo.min, iinfo.max) == (iref.bits, iref.min, iref.max)
    assert ns.isdtype(ns.float64, "real floating") and not ns.isdtype(ns.int32, "real floating")
    assert ns.isdtype(ns.int8, ("integral", "bool")) and not ns.isdtype(ns.float32, "integral")
    assert ns.isdtype(np.float64, ns.float64)
    info = ns.__array_namespace_info__()
    assert info.default_dtypes()["indexing"] == tf.int64
    listed = info.dtypes()
    assert set(listed) == {
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float32", "float64", "complex64", "complex128",
    }  # fmt: skip
    assert ns.__array_api_version__ == "2024.12"
