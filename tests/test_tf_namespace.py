"""Tests of the TensorFlow Array API namespace, ``xentropy.backends.tensorflow.namespace``.

Every case in ``CASES`` is written once against the standard and run three ways on the same data:
eagerly, inside ``tf.function`` with ``[None, None]`` input shapes, and with ``jit_compile=True``.
The reference is the same case evaluated by ``array_api_strict``. Each mode traces all cases in
one function (tracing is slow), and each case is then its own test.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import required_backends

if "tensorflow" in required_backends():  # XENTROPY_REQUIRE_BACKENDS: fail instead of skipping
    import tensorflow as tf
else:
    tf = pytest.importorskip("tensorflow")
xs = pytest.importorskip("array_api_strict")

# imported after the skip above: the namespace module imports TensorFlow
ns = importlib.import_module("xentropy.backends.tensorflow.namespace")

RNG = np.random.default_rng(20241211)
A = (RNG.standard_normal((4, 5)) * 2).astype(np.float32)
B = (RNG.standard_normal((4, 5)) * 2).astype(np.float32)
A[1, 3] = 2.5  # ties for argmax / sort stability
A[1, 4] = 2.5
MATRIX = tf.TensorSpec([None, None], tf.float32)
MODES = ("eager", "graph", "xla")

Case = Callable[[Any, Any, Any], Any]


def _pos(xp: Any, x: Any) -> Any:
    return xp.add(xp.abs(x), 0.5)


def _ints(xp: Any, x: Any) -> Any:
    return xp.astype(xp.floor(xp.multiply(x, 4.0)), xp.int32)


def _neg_index(xp: Any, x: Any) -> Any:
    """Indices in [-5, -1] (data-dependent), for the 5 columns."""
    idx = xp.astype(xp.floor(xp.multiply(xp.abs(x), 3.0)), xp.int64)
    return xp.subtract(xp.remainder(idx, 5), 5)


def _with_nan(xp: Any, x: Any) -> Any:
    """``x`` with its overall maximum replaced by NaN (one NaN, in one row)."""
    return xp.where(xp.equal(x, xp.max(x)), math.nan, x)


def _with_inf(xp: Any, a: Any, b: Any) -> Any:
    """Division by ``round(b)``, which is zero for some entries: gives +-inf there."""
    return xp.divide(a, xp.round(b))


CASES: dict[str, Case] = {
    # element-wise, unary
    "abs": lambda xp, a, b: xp.abs(a),
    "exp": lambda xp, a, b: xp.exp(a),
    "expm1": lambda xp, a, b: xp.expm1(a),
    "log": lambda xp, a, b: xp.log(_pos(xp, a)),
    "log1p": lambda xp, a, b: xp.log1p(_pos(xp, a)),
    "log2": lambda xp, a, b: xp.log2(_pos(xp, a)),
    "log10": lambda xp, a, b: xp.log10(_pos(xp, a)),
    "sqrt": lambda xp, a, b: xp.sqrt(_pos(xp, a)),
    "square": lambda xp, a, b: xp.square(a),
    "negative": lambda xp, a, b: xp.negative(a),
    "positive": lambda xp, a, b: xp.positive(a),
    "sign": lambda xp, a, b: xp.sign(_with_nan(xp, a)),
    "floor": lambda xp, a, b: xp.floor(a),
    "ceil": lambda xp, a, b: xp.ceil(a),
    "round": lambda xp, a, b: xp.round(xp.multiply(xp.round(xp.multiply(a, 2.0)), 0.5)),
    "trunc": lambda xp, a, b: xp.trunc(a),
    "sin": lambda xp, a, b: xp.sin(a),
    "cos": lambda xp, a, b: xp.cos(a),
    "tan": lambda xp, a, b: xp.tan(xp.clip(a, -1.2, 1.2)),
    "tanh": lambda xp, a, b: xp.tanh(a),
    "sinh": lambda xp, a, b: xp.sinh(a),
    "cosh": lambda xp, a, b: xp.cosh(a),
    "asin": lambda xp, a, b: xp.asin(xp.clip(a, -0.9, 0.9)),
    "acos": lambda xp, a, b: xp.acos(xp.clip(a, -0.9, 0.9)),
    "atan": lambda xp, a, b: xp.atan(a),
    "asinh": lambda xp, a, b: xp.asinh(a),
    "acosh": lambda xp, a, b: xp.acosh(xp.add(_pos(xp, a), 1.0)),
    "atanh": lambda xp, a, b: xp.atanh(xp.clip(a, -0.9, 0.9)),
    "reciprocal": lambda xp, a, b: xp.reciprocal(_pos(xp, a)),
    "signbit": lambda xp, a, b: xp.signbit(xp.trunc(a)),
    "isinf": lambda xp, a, b: xp.isinf(_with_inf(xp, a, b)),
    "isfinite": lambda xp, a, b: xp.isfinite(_with_inf(xp, a, b)),
    "isnan": lambda xp, a, b: xp.isnan(xp.multiply(_with_inf(xp, a, b), 0.0)),
    "isnan_int": lambda xp, a, b: xp.isnan(_ints(xp, a)),
    "floor_int": lambda xp, a, b: xp.floor(_ints(xp, a)),
    "abs_int": lambda xp, a, b: xp.abs(_ints(xp, a)),
    # element-wise, binary
    "add": lambda xp, a, b: xp.add(a, b),
    "add_scalar": lambda xp, a, b: xp.add(a, 3),
    "subtract": lambda xp, a, b: xp.subtract(a, b),
    "multiply": lambda xp, a, b: xp.multiply(a, b),
    "divide": lambda xp, a, b: xp.divide(a, _pos(xp, b)),
    "floor_divide": lambda xp, a, b: xp.floor_divide(a, _pos(xp, b)),
    "floor_divide_int": lambda xp, a, b: xp.floor_divide(_ints(xp, a), 3),
    "remainder": lambda xp, a, b: xp.remainder(a, _pos(xp, b)),
    "remainder_int": lambda xp, a, b: xp.remainder(_ints(xp, a), -3),
    "pow": lambda xp, a, b: xp.pow(_pos(xp, a), b),
    "maximum": lambda xp, a, b: xp.maximum(a, b),
    "minimum": lambda xp, a, b: xp.minimum(a, b),
    "maximum_nan": lambda xp, a, b: xp.maximum(_with_nan(xp, a), b),
    "minimum_nan": lambda xp, a, b: xp.minimum(b, _with_nan(xp, a)),
    "clip": lambda xp, a, b: xp.clip(a, -0.5, 0.5),
    "clip_arrays": lambda xp, a, b: xp.clip(a, xp.negative(xp.abs(b)), xp.abs(b)),
    "clip_nan": lambda xp, a, b: xp.clip(_with_nan(xp, a), min=0.0),
    "atan2": lambda xp, a, b: xp.atan2(a, b),
    "hypot": lambda xp, a, b: xp.hypot(a, b),
    "hypot_inf": lambda xp, a, b: xp.hypot(_with_inf(xp, a, b), b),
    "copysign": lambda xp, a, b: xp.copysign(a, b),
    "logaddexp": lambda xp, a, b: xp.logaddexp(a, b),
    "logaddexp_inf": lambda xp, a, b: xp.logaddexp(_with_inf(xp, a, b), _with_inf(xp, a, b)),
    "nextafter": lambda xp, a, b: xp.nextafter(a, b),
    "equal": lambda xp, a, b: xp.equal(xp.round(a), xp.round(b)),
    "not_equal": lambda xp, a, b: xp.not_equal(xp.round(a), xp.round(b)),
    "less": lambda xp, a, b: xp.less(a, b),
    "less_equal": lambda xp, a, b: xp.less_equal(xp.round(a), xp.round(b)),
    "greater": lambda xp, a, b: xp.greater(a, b),
    "greater_equal": lambda xp, a, b: xp.greater_equal(xp.round(a), xp.round(b)),
    "logical_and": lambda xp, a, b: xp.logical_and(xp.greater(a, 0.0), xp.greater(b, 0.0)),
    "logical_or": lambda xp, a, b: xp.logical_or(xp.greater(a, 0.0), xp.greater(b, 0.0)),
    "logical_xor": lambda xp, a, b: xp.logical_xor(xp.greater(a, 0.0), xp.greater(b, 0.0)),
    "logical_not": lambda xp, a, b: xp.logical_not(xp.greater(a, 0.0)),
    "bitwise_and": lambda xp, a, b: xp.bitwise_and(_ints(xp, a), _ints(xp, b)),
    "bitwise_or": lambda xp, a, b: xp.bitwise_or(_ints(xp, a), _ints(xp, b)),
    "bitwise_xor": lambda xp, a, b: xp.bitwise_xor(_ints(xp, a), _ints(xp, b)),
    "bitwise_invert": lambda xp, a, b: xp.bitwise_invert(_ints(xp, a)),
    "bitwise_shifts": lambda xp, a, b: xp.bitwise_right_shift(
        xp.bitwise_left_shift(xp.abs(_ints(xp, a)), 2), 1
    ),
    "where": lambda xp, a, b: xp.where(xp.greater(a, b), a, b),
    "where_scalar": lambda xp, a, b: xp.where(xp.greater(a, 0.0), a, 0.0),
    "promote_f64": lambda xp, a, b: xp.add(a, xp.astype(b, xp.float64)),
    # reductions and statistics
    "sum": lambda xp, a, b: xp.sum(a),
    "sum_axis0": lambda xp, a, b: xp.sum(a, axis=0),
    "sum_axis_tuple_keepdims": lambda xp, a, b: xp.sum(a, axis=(0, 1), keepdims=True),
    "sum_int8": lambda xp, a, b: xp.sum(xp.astype(_ints(xp, a), xp.int8), axis=1),
    "prod": lambda xp, a, b: xp.prod(xp.clip(a, 0.5, 1.5), axis=1),
    "mean": lambda xp, a, b: xp.mean(a, axis=-1, keepdims=True),
    "mean_all": lambda xp, a, b: xp.mean(a),
    "var": lambda xp, a, b: xp.var(a, axis=0),
    "std_corrected": lambda xp, a, b: xp.std(a, axis=1, correction=1),
    "max": lambda xp, a, b: xp.max(a, axis=1),
    "min_keepdims": lambda xp, a, b: xp.min(a, axis=0, keepdims=True),
    "max_nan": lambda xp, a, b: xp.max(_with_nan(xp, a), axis=1),
    "min_nan": lambda xp, a, b: xp.min(_with_nan(xp, a), axis=1),
    "max_nan_all": lambda xp, a, b: xp.max(_with_nan(xp, a)),
    "any": lambda xp, a, b: xp.any(xp.greater(a, 2.0), axis=1),
    "all": lambda xp, a, b: xp.all(xp.greater(a, -2.0), axis=0),
    "count_nonzero": lambda xp, a, b: xp.count_nonzero(xp.greater(a, 0.0), axis=1),
    "cumulative_sum": lambda xp, a, b: xp.cumulative_sum(a, axis=1),
    "cumulative_sum_initial": lambda xp, a, b: xp.cumulative_sum(a, axis=0, include_initial=True),
    "cumulative_sum_int8": lambda xp, a, b: xp.cumulative_sum(
        xp.astype(_ints(xp, a), xp.int8), axis=1
    ),
    "cumulative_prod": lambda xp, a, b: xp.cumulative_prod(xp.clip(a, 0.5, 1.5), axis=1),
    "diff": lambda xp, a, b: xp.diff(a, axis=1, n=2),
    "argmax": lambda xp, a, b: xp.argmax(a, axis=1),
    "argmax_flat": lambda xp, a, b: xp.argmax(a),
    "argmin_keepdims": lambda xp, a, b: xp.argmin(a, axis=0, keepdims=True),
    "argmax_nan": lambda xp, a, b: xp.argmax(_with_nan(xp, a), axis=1),
    "argmin_nan": lambda xp, a, b: xp.argmin(_with_nan(xp, a), axis=1),
    # searching, sorting
    "sort": lambda xp, a, b: xp.sort(a, axis=1),
    "sort_descending": lambda xp, a, b: xp.sort(a, axis=0, descending=True),
    "argsort": lambda xp, a, b: xp.argsort(a, axis=1),
    "argsort_descending": lambda xp, a, b: xp.argsort(a, axis=1, descending=True),
    "searchsorted": lambda xp, a, b: xp.searchsorted(xp.sort(xp.reshape(a, (-1,))), b),
    # indexing
    "take": lambda xp, a, b: xp.take(a, xp.asarray([0, -1, 2]), axis=1),
    "take_along_axis": lambda xp, a, b: xp.take_along_axis(a, _neg_index(xp, b), axis=1),
    "take_along_axis_axis0": lambda xp, a, b: xp.take_along_axis(
        a, xp.subtract(xp.remainder(_neg_index(xp, b[:3, :]), 4), 4), axis=0
    ),
    "take_along_axis_int32": lambda xp, a, b: xp.take_along_axis(
        a, xp.astype(_neg_index(xp, b[:, :1]), xp.int32), axis=-1
    ),
    # manipulation
    "reshape": lambda xp, a, b: xp.reshape(a, (-1,)),
    "reshape_2": lambda xp, a, b: xp.reshape(a, (2, -1)),
    "expand_squeeze": lambda xp, a, b: xp.squeeze(xp.expand_dims(a, axis=1), axis=1),
    "expand_dims_last": lambda xp, a, b: xp.expand_dims(a, axis=-1),
    "moveaxis": lambda xp, a, b: xp.moveaxis(xp.expand_dims(a, axis=0), 0, -1),
    "permute_dims": lambda xp, a, b: xp.permute_dims(a, (1, 0)),
    "matrix_transpose": lambda xp, a, b: xp.matrix_transpose(a),
    "broadcast_arrays": lambda xp, a, b: xp.broadcast_arrays(a[:, :1], b)[0],
    "concat": lambda xp, a, b: xp.concat([a, b], axis=1),
    "concat_none": lambda xp, a, b: xp.concat([a, b], axis=None),
    "concat_promote": lambda xp, a, b: xp.concat([a, xp.astype(b, xp.float64)], axis=0),
    "stack": lambda xp, a, b: xp.stack([a, b], axis=-1),
    "flip": lambda xp, a, b: xp.flip(a),
    "flip_axis": lambda xp, a, b: xp.flip(a, axis=1),
    "roll": lambda xp, a, b: xp.roll(a, 2, axis=1),
    "roll_flat": lambda xp, a, b: xp.roll(a, -3),
    "tile": lambda xp, a, b: xp.tile(a, (2, 1)),
    "tile_grow": lambda xp, a, b: xp.tile(a, (2, 1, 3)),
    "repeat": lambda xp, a, b: xp.repeat(a, 2, axis=0),
    # linear algebra
    "matmul": lambda xp, a, b: xp.matmul(a, xp.matrix_transpose(b)),
    "matmul_vector": lambda xp, a, b: xp.matmul(a, b[0, :]),
    "vecdot": lambda xp, a, b: xp.vecdot(a, b),
    "tensordot": lambda xp, a, b: xp.tensordot(a, b, axes=([1], [1])),
    # creation (shapes from data use the *_like functions)
    "zeros_like": lambda xp, a, b: xp.zeros_like(a),
    "ones_like_int": lambda xp, a, b: xp.ones_like(a, dtype=xp.int64),
    "full_like": lambda xp, a, b: xp.full_like(a, 2.5),
    "full": lambda xp, a, b: xp.full((2, 3), 7.0, dtype=xp.float32),
    "eye": lambda xp, a, b: xp.eye(3, 4, k=1, dtype=xp.float32),
    "arange": lambda xp, a, b: xp.arange(1, 10, 2),
    "arange_float": lambda xp, a, b: xp.arange(0.0, 1.0, 0.1, dtype=xp.float32),
    "linspace": lambda xp, a, b: xp.linspace(0.0, 1.0, 7, dtype=xp.float32),
    "linspace_open": lambda xp, a, b: xp.linspace(0.0, 1.0, 4, dtype=xp.float32, endpoint=False),
    "tril": lambda xp, a, b: xp.tril(a, k=-1),
    "triu": lambda xp, a, b: xp.triu(a, k=1),
    "asarray": lambda xp, a, b: xp.add(a, xp.asarray([1.5], dtype=xp.float32)),
}


# XLA compiles cost ~0.1 s per case, so only the cases where the namespace does something of its
# own, or where XLA is known to differ from TF's kernels, are compiled.
XLA_CASES = {
    "trunc", "round", "signbit", "isnan", "isnan_int", "floor_int", "sign", "remainder", "pow",
    "maximum_nan", "minimum_nan", "clip_nan", "hypot_inf", "copysign", "logaddexp_inf",
    "nextafter", "divide", "promote_f64", "sum_int8", "prod", "mean", "std_corrected", "max_nan",
    "min_nan", "max_nan_all", "count_nonzero", "cumulative_sum_initial", "cumulative_sum_int8",
    "cumulative_prod", "diff", "argmax", "argmax_flat", "argmin_keepdims", "argmax_nan",
    "argmin_nan", "sort_descending", "argsort", "argsort_descending", "searchsorted", "take",
    "take_along_axis", "take_along_axis_axis0", "take_along_axis_int32", "moveaxis",
    "broadcast_arrays", "concat_none", "roll_flat", "tile_grow", "matmul_vector", "tensordot",
    "full_like", "eye", "arange_float", "linspace_open", "tril", "triu",
}  # fmt: skip
PARAMS = [(name, mode) for name in CASES for mode in MODES if mode != "xla" or name in XLA_CASES]


def _run_all(xp: Any, a: Any, b: Any, names: Any = CASES) -> dict[str, Any]:
    return {name: CASES[name](xp, a, b) for name in names}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, np.ndarray]]:
    a, b = tf.constant(A), tf.constant(B)
    # autograph=False: AutoGraph would parse the source of every case lambda (~25 s); the
    # namespace functions themselves are never converted.
    graph = tf.function(
        lambda a, b: _run_all(ns, a, b), input_signature=[MATRIX, MATRIX], autograph=False
    )
    xla = tf.function(
        lambda a, b: _run_all(ns, a, b, sorted(XLA_CASES)),
        input_signature=[MATRIX, MATRIX],
        jit_compile=True,
        autograph=False,
    )
    runs = {"eager": _run_all(ns, a, b), "graph": graph(a, b), "xla": xla(a, b)}
    return {mode: {k: v.numpy() for k, v in out.items()} for mode, out in runs.items()}


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _run_all(xs, xs.asarray(A), xs.asarray(B))
    return {k: np.asarray(v) for k, v in out.items()}


def test_xla_cases_exist() -> None:
    assert not XLA_CASES - set(CASES)


@pytest.mark.parametrize(("name", "mode"), PARAMS)
def test_matches_array_api_strict(
    results: dict[str, dict[str, np.ndarray]], expected: dict[str, np.ndarray], mode: str, name: str
) -> None:
    got, want = results[mode][name], expected[name]
    assert got.shape == want.shape
    if want.dtype.kind in "fb":
        assert got.dtype == want.dtype  # integers may differ: int32 is our default, int64 theirs
    else:
        assert got.dtype.kind == want.dtype.kind
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# Pitfalls from reference/tensorflow-namespace-pitfalls.md
# --------------------------------------------------------------------------------------------


def test_max_min_propagate_nan_under_xla() -> None:
    # Under XLA (TF 2.21, CPU) tf.reduce_max([1, nan, 3]) is 3 and tf.maximum(y, x) drops a NaN
    # of x; the namespace patches both.
    x = tf.constant([[1.0, math.nan, 3.0], [1.0, 2.0, 3.0]])
    y = tf.fill([2, 3], 2.0)

    @tf.function(jit_compile=True)
    def f(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return (
            ns.max(x, axis=1),
            ns.min(x, axis=1),
            ns.argmax(x, axis=1),
            ns.maximum(y, x),
            ns.minimum(y, x),
            ns.clip(x, y, 2.5),
        )

    nan_max, nan_min, arg, maximum, minimum, clipped = (t.numpy() for t in f(x, y))
    np.testing.assert_array_equal(nan_max, [math.nan, 3.0])
    np.testing.assert_array_equal(nan_min, [math.nan, 1.0])
    np.testing.assert_array_equal(arg, [1, 2])
    np.testing.assert_array_equal(maximum, [[2.0, math.nan, 3.0], [2.0, 2.0, 3.0]])
    np.testing.assert_array_equal(minimum, [[1.0, math.nan, 2.0], [1.0, 2.0, 2.0]])
    np.testing.assert_array_equal(clipped, [[2.0, math.nan, 2.5], [2.0, 2.0, 2.5]])


@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64])
def test_take_along_axis_negative_indices(index_dtype: tf.DType) -> None:
    x = tf.constant([[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]])
    idx = tf.constant([[-1, 0], [1, -3]], index_dtype)
    want = np.array([[12.0, 10.0], [21.0, 20.0]])
    spec = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], index_dtype)]

    def f(x: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        return ns.take_along_axis(x, idx, axis=1)

    for run in (f, tf.function(f, input_signature=spec), tf.function(f, jit_compile=True)):
        np.testing.assert_array_equal(run(x, idx).numpy(), want)
    np.testing.assert_array_equal(ns.take(x, tf.constant([-1], index_dtype), axis=0), [x[1]])


def test_take_along_axis_broadcasts_other_axes() -> None:
    x = tf.reshape(tf.range(12.0), (3, 4))
    idx = tf.constant([[0, -1]])
    want = np.take_along_axis(np.arange(12.0).reshape(3, 4), np.array([[0, 3]]), axis=1)
    np.testing.assert_array_equal(ns.take_along_axis(x, idx, axis=1).numpy(), want)


def test_promotion() -> None:
    f32 = tf.constant([1.0], tf.float32)
    f64 = tf.constant([2.0], tf.float64)
    assert ns.add(f32, f64).dtype == tf.float64
    assert ns.multiply(f64, f32).dtype == tf.float64
    assert ns.add(tf.constant([1], tf.int8), tf.constant([1], tf.uint8)).dtype == tf.int16
    assert ns.add(tf.constant([1], tf.int32), tf.constant([1], tf.int64)).dtype == tf.int64
    assert (
        ns.add(tf.constant([1.0], tf.bfloat16), tf.constant([1.0], tf.float16)).dtype == tf.float32
    )
    assert ns.add(tf.constant([1], tf.int32), f32).dtype == tf.float32  # lenient mixed kinds
    assert ns.add(f32, 2).dtype == tf.float32  # Python scalars adopt the array dtype
    assert ns.multiply(tf.constant([1.0], tf.float16), 0.1).dtype == tf.float16
    assert ns.add(tf.constant([1], tf.int8), 1).dtype == tf.int8
    assert ns.add(tf.constant([1], tf.int32), 0.5).dtype == tf.float32
    assert ns.where(tf.constant([True]), f64, 0.0).dtype == tf.float64
    assert ns.result_type(tf.float32, np.float64) == tf.float64
    assert ns.result_type(f32, 1.0) == tf.float32
    assert ns.can_cast(tf.int8, tf.int32)
    assert not ns.can_cast(tf.float64, tf.float32)
    assert not ns.can_cast(tf.int32, tf.float32)
    with pytest.raises(TypeError):
        ns.add(tf.constant([1], tf.uint64), tf.constant([1], tf.int64))
    # the dunders are TensorFlow's: still no promotion (hence xp.astype in the core)
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
        f32 + f64


def test_mean_of_integers_raises() -> None:
    ints = tf.constant([1, 2], tf.int32)
    with pytest.raises(TypeError, match="mean"):
        ns.mean(ints)
    with pytest.raises(TypeError, match="var"):
        ns.var(ints)
    with pytest.raises(TypeError, match="mean"):
        tf.function(ns.mean)(ints)
    half = tf.constant([60000.0] * 4, tf.float16)
    assert ns.mean(half).numpy() == np.float16(60000.0)  # tf.reduce_mean gives inf here


def test_is_lazy_array() -> None:
    x = tf.constant([1.0, 2.0])
    seen = {}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def f(t: tf.Tensor) -> tf.Tensor:
        seen["arg"] = ns.is_lazy_array(t)
        seen["captured"] = ns.is_lazy_array(x)
        caps = ns.__array_namespace_info__().capabilities()
        seen["info"] = caps["data-dependent shapes"] or caps["boolean indexing"]
        return t

    f(x)
    assert seen == {"arg": True, "captured": True, "info": False}
    assert not ns.is_lazy_array(x)
    assert not ns.is_lazy_array(tf.Variable([1.0]))
    assert not ns.is_lazy_array(np.ones(2))
    assert ns.__array_namespace_info__().capabilities()["data-dependent shapes"] is True


def _cross_entropy(xp: Any, logits: Any, labels: Any) -> Any:
    """Mean sparse softmax cross entropy, only with namespace calls."""
    shifted = xp.subtract(logits, xp.max(logits, axis=-1, keepdims=True))
    log_norm = xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    log_probs = xp.subtract(shifted, log_norm)
    picked = xp.take_along_axis(log_probs, xp.expand_dims(labels, axis=-1), axis=-1)
    return xp.negative(xp.mean(picked))


def test_cross_entropy_eager_graph_xla() -> None:
    logits = RNG.standard_normal((6, 10)).astype(np.float32) * 3
    labels = RNG.integers(0, 10, size=6)
    z = logits.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    want = -logp[np.arange(6), labels].mean()

    spec = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int64)]

    def f(z: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return _cross_entropy(ns, z, y)

    args = (tf.constant(logits), tf.constant(labels, tf.int64))
    eager = f(*args).numpy()
    graph = tf.function(f, input_signature=spec)(*args).numpy()
    xla = tf.function(f, input_signature=spec, jit_compile=True)(*args).numpy()
    for got in (eager, graph, xla):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(graph, eager, rtol=1e-6)
    np.testing.assert_allclose(xla, eager, rtol=1e-6)

    z_var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = _cross_entropy(ns, z_var, args[1])
    grad = tape.gradient(loss, z_var).numpy()
    soft = np.exp(logp)
    soft[np.arange(6), labels] -= 1.0
    np.testing.assert_allclose(grad, soft / 6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Dtypes, creation, devices, info
# --------------------------------------------------------------------------------------------


def test_dtype_identity_and_numpy_dtypes() -> None:
    assert ns.float32 is tf.float32
    assert ns.zeros(3, dtype=np.float32).dtype is tf.float32
    assert ns.astype(tf.constant([1]), np.dtype("float64")).dtype is tf.float64
    assert ns.isdtype(np.float64, "real floating")
    assert ns.isdtype(tf.bfloat16, ("real floating", "complex floating"))
    assert ns.isdtype(tf.uint8, "integral") and not ns.isdtype(tf.uint8, "signed integer")
    assert ns.isdtype(tf.int32, tf.int32) and not ns.isdtype(tf.bool, "numeric")
    table = {ns.float32: "f32"}
    assert table[ns.asarray(np.ones(2, np.float32)).dtype] == "f32"
    fi = ns.finfo(tf.bfloat16)
    assert (fi.bits, fi.eps, fi.dtype) == (16, 2.0**-7, tf.bfloat16)
    assert ns.finfo(tf.constant(1.0, tf.float64)).eps == np.finfo(np.float64).eps
    assert ns.iinfo(tf.int8).min == -128 and ns.iinfo(tf.uint16).max == 65535


def test_asarray_and_creation() -> None:
    assert ns.asarray(1).dtype == tf.int32
    assert ns.asarray([1.0, 2]).dtype == tf.float32
    assert ns.asarray(np.ones(2)).dtype == tf.float64
    assert ns.asarray(True).dtype == tf.bool
    assert ns.asarray(1j).dtype == tf.complex64
    assert ns.asarray([1, 2], dtype=tf.float16).dtype == tf.float16
    x = tf.constant([1.0])
    assert ns.asarray(x) is x
    with pytest.raises(ValueError, match="copy=False"):
        ns.asarray(x, dtype=tf.float64, copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        ns.asarray([1.0], copy=False)
    assert ns.full((2,), True).dtype == tf.bool
    assert ns.full((2,), 3).dtype == tf.int32
    assert ns.arange(5).dtype == tf.int32
    assert ns.arange(5, dtype=tf.int64).dtype == tf.int64
    np.testing.assert_array_equal(ns.eye(3, k=-1).numpy(), np.eye(3, k=-1, dtype=np.float32))
    np.testing.assert_array_equal(ns.from_dlpack(np.arange(3.0)).numpy(), np.arange(3.0))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def dynamic(t: tf.Tensor) -> tf.Tensor:
        n = tf.shape(t)[0]
        return ns.add(ns.zeros((n, 2)), ns.reshape(ns.arange(n, dtype=ns.float32), (n, 1)))

    np.testing.assert_array_equal(dynamic(tf.zeros([3])).numpy(), [[0, 0], [1, 1], [2, 2]])
    with pytest.raises(ValueError, match="unknown dimensions"):
        tf.function(
            lambda t: ns.zeros(t.shape), input_signature=[tf.TensorSpec([None])]
        ).get_concrete_function()


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_dtype_workarounds(jit: bool) -> None:
    def f(u8: tf.Tensor, u16: tf.Tensor, i8: tf.Tensor, h: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "abs": ns.abs(u8),
            "negative": ns.negative(u8),
            "sign": ns.sign(u8),
            "cumsum_u8": ns.cumulative_sum(u8),
            "cumsum_i8": ns.cumulative_sum(i8, dtype=tf.int8),
            "sort_u16": ns.sort(u16),
            "sort_bool": ns.sort(ns.greater(i8, 0)),
            "matmul_i8": ns.matmul(i8, i8),
            "nextafter_f16": ns.nextafter(h, ns.full_like(h, 5.0)),
            "nextafter_f16_down": ns.nextafter(h, ns.full_like(h, -5.0)),
            "pow_u8": ns.pow(u8, 2),
        }

    u8 = np.array([0, 3, 200], np.uint8)
    u16 = np.array([300, 2, 65535], np.uint16)
    i8 = np.array([-2, 0, 5], np.int8)
    h = np.array([0.0, 1.0, -2.0], np.float16)
    run = tf.function(f, jit_compile=True) if jit else f
    out = {k: v.numpy() for k, v in run(*(tf.constant(v) for v in (u8, u16, i8, h))).items()}
    assert out["abs"].dtype == np.uint8
    np.testing.assert_array_equal(out["abs"], u8)
    np.testing.assert_array_equal(out["negative"], -u8)
    np.testing.assert_array_equal(out["sign"], [0, 1, 1])
    np.testing.assert_array_equal(out["cumsum_u8"], np.cumsum(u8, dtype=np.uint32))
    assert out["cumsum_u8"].dtype == np.uint32
    np.testing.assert_array_equal(out["cumsum_i8"], np.cumsum(i8, dtype=np.int8))
    np.testing.assert_array_equal(out["sort_u16"], np.sort(u16))
    np.testing.assert_array_equal(out["sort_bool"], [False, False, True])
    assert out["matmul_i8"] == np.int8(29)
    np.testing.assert_array_equal(out["nextafter_f16"], np.nextafter(h, np.float16(5)))
    np.testing.assert_array_equal(out["nextafter_f16_down"], np.nextafter(h, np.float16(-5)))
    np.testing.assert_array_equal(out["pow_u8"], u8**2)


def test_data_dependent_functions_eager() -> None:
    x = tf.constant([[3, 1, 0], [1, 0, 3]])
    rows, cols = ns.nonzero(x)
    np.testing.assert_array_equal(rows.numpy(), [0, 0, 1, 1])
    np.testing.assert_array_equal(cols.numpy(), [0, 1, 0, 2])
    u = ns.unique_all(x)
    want = np.unique(x.numpy(), return_index=True, return_inverse=True, return_counts=True)
    for got, ref in zip(u, want, strict=True):
        np.testing.assert_array_equal(got.numpy(), ref.reshape(got.shape))
    np.testing.assert_array_equal(ns.unique_values(x).numpy(), [0, 1, 3])
    np.testing.assert_array_equal(ns.unique_counts(x).counts.numpy(), [2, 2, 2])
    assert ns.unique_inverse(x).inverse_indices.shape == (2, 3)


def test_info_and_devices() -> None:
    info = ns.__array_namespace_info__()
    assert info.default_dtypes() == {
        "real floating": tf.float32,
        "complex floating": tf.complex64,
        "integral": tf.int32,
        "indexing": tf.int64,
    }
    assert info.capabilities()["boolean indexing"] is True  # eagerly; False while tracing
    assert set(info.dtypes(kind="unsigned integer")) == {"uint8", "uint16", "uint32", "uint64"}
    assert info.default_device() in info.devices()
    x = tf.constant([1.0])
    assert ns.device(x) in info.devices()
    moved = ns.to_device(x, "/device:CPU:0")
    assert ns.device(moved) == "/device:CPU:0"
    assert ns.device(ns.zeros(2, device="/device:CPU:0")) == "/device:CPU:0"
    assert ns.__array_api_version__ == "2024.12"


def test_axis_errors_are_clear() -> None:
    x = tf.zeros((2, 3))
    with pytest.raises(IndexError, match="out of bounds"):
        ns.sum(x, axis=2)
    with pytest.raises(ValueError, match="axis is required"):
        ns.cumulative_sum(x)
    with pytest.raises(ValueError, match="size 3"):
        ns.squeeze(x, axis=1)
    with pytest.raises(TypeError, match="integer indices"):
        ns.take(x, tf.constant([0.0]), axis=0)
