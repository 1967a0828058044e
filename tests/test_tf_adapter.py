"""``xentropy.backends.tensorflow``: parity with ``tf.nn``'s natives, in every execution mode.

Each ``nn`` function is compared with the ``tf.nn`` function of the same name on seeded random
cases (plain, extreme logits of +-1e4, extra dimensions, soft labels, ``pos_weight``): values and
the gradient of ``sum(cotangent * loss)`` with respect to ``logits`` (``tf.GradientTape``), run
eagerly, under ``tf.function`` with unknown (``None``) dimensions and under XLA. The places where
the adapter deliberately differs from ``tf.nn`` (documented in ``xentropy.backends.tensorflow.nn``)
have tests of their own.

Tracing is kept small: one ``tf.function`` per (function, mode, input signature), cached for the
whole module.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from tolerances import assert_close

import xentropy
from xentropy import ops

FUNCTIONS = (
    "softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits",
    "weighted_cross_entropy_with_logits",
)
SOFTMAX_FUNCTIONS = FUNCTIONS[:2]
CASES = ("plain", "extreme", "kdim")
MODES = ("eager", "function", "xla")

# Parity with tf.nn: (rtol, atol) per dtype.
PARITY_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-6),
    "float64": (1e-12, 1e-12),
}
# 16-bit floats. tf.nn computes the sigmoid functions and the sparse bfloat16 softmax in the 16-bit
# dtype (about 5 rounded ops), the adapter in float32 with one rounding at the end: measured
# differences reach 4 ulp of the 16-bit dtype on values and 2 ulp of 1 on small gradient entries
# (plain and K-dim cases). On extreme logits tf.nn's 16-bit sigmoid cancels catastrophically
# (x - x * z at |x| = 1e4: tens of units in bfloat16), so there both are compared with tf.nn
# evaluated in float32 on the same 16-bit inputs, within 1 ulp of the 16-bit dtype.
EPS16 = {"float16": 2.0**-10, "bfloat16": 2.0**-7}

# Logits of +-1e4 (exact in float16 and bfloat16), ties at the top, a near-tie 8 below the max.
EXTREME_SOFTMAX_LOGITS = np.array(
    [
        [1e4, -1e4, 0.0, 1.0, 1e4 - 8.0],
        [1e4, -1e4, 0.0, 1.0, 1e4 - 8.0],
        [-1e4, -1e4, -1e4, -1e4, -1e4],
        [1e4, 1e4, -1e4, -1e4, 1e4],
    ]
)
EXTREME_SPARSE_LABELS = np.array([0, 1, 2, 4])
# No exact 0 here: tf.nn.weighted_cross_entropy_with_logits has a wrong gradient at 0 (tested
# separately in test_weighted_gradient_at_zero).
EXTREME_SIGMOID_LOGITS = np.array(
    [
        [1e4, -1e4, 1e4 - 8.0, -(1e4 - 8.0), 30.0],
        [-1e4, 1e4, -30.0, 17.0, 0.5],
        [1e4, 1e4, -1e4, -1e4, -0.25],
    ]
)


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf() -> Any:
    return require_or_skip("tensorflow")


@pytest.fixture(scope="module")
def xtf(tf: Any) -> Any:
    return importlib.import_module("xentropy.backends.tensorflow")


def sample(function: str, case: str) -> dict[str, np.ndarray]:
    """Float64 inputs for ``function``: logits, labels, a cotangent and (weighted) pos_weight."""
    rng = rng_for(function, case)
    softmax = function in SOFTMAX_FUNCTIONS
    if case == "extreme":
        logits = EXTREME_SOFTMAX_LOGITS if softmax else EXTREME_SIGMOID_LOGITS
    elif case == "kdim":
        logits = rng.normal(scale=3.0, size=(2, 3, 4, 5))
    else:
        logits = rng.normal(scale=3.0, size=(6, 5))
    if function == "sparse_softmax_cross_entropy_with_logits":
        labels = (
            EXTREME_SPARSE_LABELS
            if case == "extreme"
            else rng.integers(0, logits.shape[-1], size=logits.shape[:-1])
        )
    elif softmax:
        labels = rng.dirichlet(np.ones(logits.shape[-1]), size=logits.shape[:-1])
    else:
        labels = rng.random(logits.shape)
        labels[..., 0] = np.round(labels[..., 0])  # some hard 0/1 labels too
    loss_shape = logits.shape[:-1] if softmax else logits.shape
    inputs = {"logits": logits, "labels": labels, "cotangent": rng.normal(size=loss_shape)}
    if function == "weighted_cross_entropy_with_logits":
        size = () if case == "plain" else (logits.shape[-1],)
        inputs["pos_weight"] = rng.uniform(0.2, 3.0, size=size)
    return inputs


def as_tensors(tf: Any, inputs: dict[str, np.ndarray], dtype: str) -> list[Any]:
    """(labels, logits, cotangent[, pos_weight]) as tensors; floats in ``dtype``."""
    labels = inputs["labels"]
    labels = tf.constant(labels) if labels.dtype.kind == "i" else tf.constant(labels, dtype)
    tensors = [
        labels,
        tf.constant(inputs["logits"], dtype),
        tf.constant(inputs["cotangent"], dtype),
    ]
    if "pos_weight" in inputs:
        tensors.append(tf.constant(inputs["pos_weight"], dtype))
    return tensors


def loss_and_grad(tf: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``(labels, logits, cotangent, *extra) -> (loss, d sum(cotangent * loss) / d logits)``."""

    def run(labels: Any, logits: Any, cotangent: Any, *extra: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = fn(labels, logits, *extra)
        return loss, tape.gradient(loss, logits, output_gradients=cotangent)

    return run


_COMPILED: dict[tuple[Any, ...], Any] = {}


def in_mode(tf: Any, fn: Callable[..., Any], mode: str, tensors: list[Any], *, key: str) -> Any:
    """``loss_and_grad(fn)`` eagerly, as a ``tf.function`` with every dimension unknown but the
    class axis, or under XLA; the traced functions are cached by (key, mode, signature)."""
    run = loss_and_grad(tf, fn)
    if mode == "eager":
        return run(*tensors)
    if mode == "function":
        logits_rank = tensors[1].shape.rank
        specs = []
        for i, t in enumerate(tensors):
            shape = [None] * t.shape.rank
            if i == 1 and key in SOFTMAX_FUNCTIONS:
                shape[-1] = t.shape[-1]  # the core needs the number of classes
            specs.append(tf.TensorSpec(shape, t.dtype))
        cache_key = (key, mode, logits_rank, *((s.dtype.name, s.shape.rank) for s in specs))
        if cache_key not in _COMPILED:
            _COMPILED[cache_key] = tf.function(run, input_signature=specs)
        return _COMPILED[cache_key](*tensors)
    cache_key = (key, mode)
    if cache_key not in _COMPILED:
        _COMPILED[cache_key] = tf.function(run, jit_compile=True)
    return _COMPILED[cache_key](*tensors)


def native(tf: Any, name: str) -> Callable[..., Any]:
    return getattr(tf.nn, name)


def numpy64(x: Any) -> np.ndarray:
    return np.asarray(x.numpy(), dtype=np.float64)


# --- parity with tf.nn -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_parity_with_tf_nn(tf, xtf, function, case, dtype, mode):
    """Values and gradients equal tf.nn's (eager) in every mode, in the logits dtype."""
    tensors = as_tensors(tf, sample(function, case), dtype)
    loss, grad = in_mode(tf, getattr(xtf.nn, function), mode, tensors, key=function)
    expected_loss, expected_grad = loss_and_grad(tf, native(tf, function))(*tensors)
    assert loss.dtype == tensors[1].dtype and grad.dtype == tensors[1].dtype
    assert loss.shape == expected_loss.shape
    rtol, atol = PARITY_TOLERANCES[dtype]
    assert_close(numpy64(loss), numpy64(expected_loss), dtype, rtol=rtol, atol=atol, msg="loss")
    assert_close(numpy64(grad), numpy64(expected_grad), dtype, rtol=rtol, atol=atol, msg="grad")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_parity_16bit(tf, xtf, function, case, dtype):
    """16-bit logits: the result in that dtype, close to tf.nn (see EPS16 for the tolerances)."""
    inputs = sample(function, case)
    tensors = as_tensors(tf, inputs, dtype)
    loss, grad = loss_and_grad(tf, getattr(xtf.nn, function))(*tensors)
    assert loss.dtype == tensors[1].dtype and grad.dtype == tensors[1].dtype
    eps = EPS16[dtype]
    # tf.nn in float32 on the same 16-bit inputs: we round its float32 answer once.
    upcast = [t if t.dtype.is_integer else tf.cast(t, tf.float32) for t in tensors]
    loss32, grad32 = loss_and_grad(tf, native(tf, function))(*upcast)
    assert_close(numpy64(loss), numpy64(loss32), dtype, rtol=eps, atol=eps * 2**-8, msg="loss")
    assert_close(numpy64(grad), numpy64(grad32), dtype, rtol=eps, atol=eps / 2, msg="grad")
    if case != "extreme":
        expected_loss, expected_grad = loss_and_grad(tf, native(tf, function))(*tensors)
        assert_close(numpy64(loss), numpy64(expected_loss), dtype, rtol=4 * eps, atol=2 * eps)
        assert_close(numpy64(grad), numpy64(expected_grad), dtype, rtol=4 * eps, atol=2 * eps)


def test_function_mode_traces_once_for_new_batch_sizes(tf, xtf):
    """Unknown batch dimensions: a second batch size reuses the trace."""
    fn = tf.function(
        loss_and_grad(tf, xtf.nn.sparse_softmax_cross_entropy_with_logits),
        input_signature=[
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None, 5], tf.float32),
            tf.TensorSpec([None], tf.float32),
        ],
    )
    for n in (3, 7):
        rng = rng_for("retrace", n)
        fn(
            tf.constant(rng.integers(0, 5, n)),
            tf.constant(rng.normal(size=(n, 5)), tf.float32),
            tf.ones([n]),
        )
    assert fn.experimental_get_tracing_count() == 1


def test_sigmoid_all_dimensions_unknown(tf, xtf):
    """The element-wise functions need no static dimension at all."""
    inputs = sample("weighted_cross_entropy_with_logits", "kdim")
    tensors = as_tensors(tf, inputs, "float32")
    specs = [tf.TensorSpec([None] * t.shape.rank, t.dtype) for t in tensors]
    fn = tf.function(
        loss_and_grad(tf, xtf.nn.weighted_cross_entropy_with_logits), input_signature=specs
    )
    loss, grad = fn(*tensors)
    expected_loss, expected_grad = loss_and_grad(tf, tf.nn.weighted_cross_entropy_with_logits)(
        *tensors
    )
    assert_close(numpy64(loss), numpy64(expected_loss), "float32", rtol=1e-5, atol=1e-6)
    assert_close(numpy64(grad), numpy64(expected_grad), "float32", rtol=1e-5, atol=1e-6)


# --- signatures and calling conventions ---------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_signature_matches_tf_nn(tf, xtf, function):
    """tf.nn's parameters (names, kinds, defaults, order), then one keyword-only extra."""
    ours = inspect.signature(getattr(xtf.nn, function)).parameters
    theirs = inspect.signature(native(tf, function)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        *((p.name, p.kind, p.default) for p in theirs.values()),
        ("validate", inspect.Parameter.KEYWORD_ONLY, True),
    ]


def test_positional_arguments_and_python_inputs(tf, xtf):
    """labels first, logits second, as in tf.nn; lists, NumPy arrays and Python numbers work."""
    labels, logits = [[0.0, 1.0], [1.0, 0.0]], [[1.0, -1.0], [0.5, 2.0]]
    for name in ("softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits"):
        ours = getattr(xtf.nn, name)(labels, logits)
        expected = native(tf, name)(labels, logits)
        assert ours.dtype == tf.float32
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-6)
    sparse = xtf.nn.sparse_softmax_cross_entropy_with_logits(np.array([1, 0]), np.array(logits))
    assert sparse.dtype == tf.float64
    ours = xtf.nn.weighted_cross_entropy_with_logits(labels, logits, 2.5)
    expected = tf.nn.weighted_cross_entropy_with_logits(labels, logits, 2.5)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-6)


def test_name_scope(tf, xtf):
    graph = (
        tf.function(lambda z: xtf.nn.sigmoid_cross_entropy_with_logits(z, z, name="my_xent"))
        .get_concrete_function(tf.TensorSpec([2], tf.float32))
        .graph
    )
    assert any(op.name.startswith("my_xent/") for op in graph.get_operations())


def test_gradient_reaches_a_variable(tf, xtf):
    logits = tf.Variable([[1.0, 2.0, 0.5]])
    with tf.GradientTape() as tape:
        loss = xtf.nn.sparse_softmax_cross_entropy_with_logits([1], logits)
    grad = tape.gradient(loss, logits)
    p = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(grad.numpy(), p - [[0.0, 1.0, 0.0]], rtol=1e-6)


# --- deliberate differences from tf.nn -------------------------------------------------------


def test_out_of_range_labels_raise_eagerly(tf, xtf):
    logits = tf.zeros([4, 3])
    for bad in (3, -1, 7):
        with pytest.raises(ValueError, match=f"class index {bad}, outside"):
            xtf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([0, bad, 1, 2]), logits)


@pytest.mark.parametrize("mode", ["function", "xla"])
def test_out_of_range_labels_give_nan_rows_when_traced(tf, xtf, mode):
    """Under tf.function (where tf.nn raises on CPU) and XLA: NaN loss and gradient rows."""
    inputs = sample("sparse_softmax_cross_entropy_with_logits", "plain")
    labels = inputs["labels"].copy()
    bad = np.array([False, True, False, False, True, False])
    labels[bad] = [5, -1]
    labels_t, logits, cotangent = as_tensors(tf, {**inputs, "labels": labels}, "float32")
    name = "sparse_softmax_cross_entropy_with_logits"
    loss, grad = in_mode(
        tf,
        xtf.nn.sparse_softmax_cross_entropy_with_logits,
        mode,
        [labels_t, logits, cotangent],
        key=name,
    )
    valid = tf.constant(np.where(bad, 0, labels))
    expected_loss, expected_grad = loss_and_grad(tf, native(tf, name))(valid, logits, cotangent)
    expected_loss = np.where(bad, np.nan, numpy64(expected_loss))
    expected_grad = np.where(bad[:, None], np.nan, numpy64(expected_grad))
    assert_close(numpy64(loss), expected_loss, "float32", rtol=1e-5, atol=1e-6)
    assert_close(numpy64(grad), expected_grad, "float32", rtol=1e-5, atol=1e-6)


# --- validate: the eager value checks, on by default -----------------------------------------


def validate_case(
    tf: Any, xtf: Any, function: str
) -> tuple[Callable[..., Any], list[Any], Any, Any, np.ndarray, str]:
    """(fn(labels, logits, *extra, **kwargs), [logits, cotangent, *extra], bad labels, the same
    labels with valid values, bad entries of the per-example loss, what the error names)."""
    rng = rng_for("validate", function)
    if function == "linear_cross_entropy":
        hidden = tf.constant(rng.normal(size=(4, 3)))
        projection = tf.constant(rng.normal(size=(5, 3)))

        def fn(labels: Any, logits: Any, **kwargs: Any) -> Any:
            return xtf.linear_cross_entropy(logits, projection, labels, reduction="none", **kwargs)

        bad, good = tf.constant([0, 5, 1, 2]), tf.constant([0, 4, 1, 2])
        rows = np.array([False, True, False, False])
        return fn, [hidden, tf.constant(rng.normal(size=4))], bad, good, rows, "class index 5"
    fn = getattr(xtf.nn, function)
    logits = tf.constant(rng.normal(scale=3.0, size=(4, 5)))
    rows = np.array([False, True, False, False])
    if function == "sparse_softmax_cross_entropy_with_logits":
        bad, good, match = tf.constant([0, 7, 1, 2]), tf.constant([0, 4, 1, 2]), "class index 7"
    elif function == "softmax_cross_entropy_with_logits":
        labels = rng.dirichlet(np.ones(5), size=4)
        good = tf.constant(labels.copy())
        labels[1, 2] = -0.5
        bad, match = tf.constant(labels), r"got -0\.5"
    else:
        labels = rng.random((4, 5))
        good = tf.constant(labels.copy())
        labels[1, 2] = 1.5
        bad, match = tf.constant(labels), r"got 1\.5"
        rows = np.zeros((4, 5), dtype=bool)
        rows[1, 2] = True
    cotangent = tf.constant(rng.normal(size=rows.shape))
    extra = [tf.constant([2.0, 0.5, 1.0, 3.0, 1.25], tf.float64)]
    extra = extra if function == "weighted_cross_entropy_with_logits" else []
    return fn, [logits, cotangent, *extra], bad, good, rows, match


VALIDATE_FUNCTIONS = (*FUNCTIONS, "linear_cross_entropy")


@pytest.mark.parametrize("function", VALIDATE_FUNCTIONS)
def test_validate_is_on_by_default(tf, xtf, function):
    """An invalid label value raises ValueError naming it, by default and with validate=True."""
    fn, (logits, _, *extra), bad, _, _, match = validate_case(tf, xtf, function)
    with pytest.raises(ValueError, match=match):
        fn(bad, logits, *extra)
    with pytest.raises(ValueError, match=match):
        fn(bad, logits, *extra, validate=True)


@pytest.mark.parametrize("function", VALIDATE_FUNCTIONS)
def test_validate_false_gives_nan_for_the_bad_examples_only(tf, xtf, function):
    """validate=False: no error eagerly (the labels are not read back); the affected example's
    loss and gradient are NaN, the others equal the validated result on valid labels."""
    fn, (logits, cotangent, *extra), bad, good, rows, _ = validate_case(tf, xtf, function)
    unchecked = loss_and_grad(tf, lambda *a: fn(*a, validate=False))
    loss, grad = (numpy64(t) for t in unchecked(bad, logits, cotangent, *extra))
    expected, expected_grad = (
        numpy64(t) for t in loss_and_grad(tf, fn)(good, logits, cotangent, *extra)
    )
    assert np.isnan(loss[rows]).all() and np.isfinite(loss[~rows]).all()
    np.testing.assert_allclose(loss[~rows], expected[~rows], rtol=1e-12, atol=1e-15)
    grad_rows = rows if grad.shape == rows.shape else np.broadcast_to(rows[:, None], grad.shape)
    assert np.isnan(grad[grad_rows]).all()
    np.testing.assert_allclose(grad[~grad_rows], expected_grad[~grad_rows], rtol=1e-12, atol=1e-15)


def test_validate_is_keyword_only_and_static_checks_stay(tf, xtf):
    logits = tf.zeros([2, 3])
    with pytest.raises(TypeError):
        xtf.nn.sparse_softmax_cross_entropy_with_logits([0, 1], logits, None, False)
    with pytest.raises(ValueError, match="rank 1"):
        xtf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.zeros([2, 3], tf.int32), logits, validate=False
        )


def test_dense_labels_are_not_broadcast(tf, xtf):
    """Anchor D04: tf.nn broadcasts (N, 1) labels against (N, C) logits; we raise."""
    labels, logits = tf.ones([4, 1]), tf.zeros([4, 3])
    assert tf.nn.softmax_cross_entropy_with_logits(labels, logits).shape == (4,)
    with pytest.raises(ValueError, match="never broadcast"):
        xtf.nn.softmax_cross_entropy_with_logits(labels, logits)


def test_rank_mismatches_raise(tf, xtf):
    logits = tf.zeros([4, 3])
    with pytest.raises(ValueError, match="rank 1"):
        xtf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros([4, 3], tf.int32), logits)
    with pytest.raises(ValueError, match="rank 2"):
        xtf.nn.softmax_cross_entropy_with_logits(tf.constant([0, 1, 2, 0]), logits)
    with pytest.raises(ValueError, match="scalar"):
        xtf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(0), tf.constant(1.0))
    with pytest.raises(ValueError, match=r"same shape|shape of logits"):
        xtf.nn.sigmoid_cross_entropy_with_logits(tf.zeros([4, 1]), tf.zeros([4]))


def test_unknown_class_dimension_raises(tf, xtf):
    fn = tf.function(
        xtf.nn.sparse_softmax_cross_entropy_with_logits,
        input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None])],
    )
    with pytest.raises(ValueError, match="class dimension"):
        fn.get_concrete_function()


def test_bad_label_values_raise_eagerly(tf, xtf):
    logits = tf.zeros([2, 3])
    with pytest.raises(ValueError, match="labels must lie"):
        xtf.nn.softmax_cross_entropy_with_logits(tf.constant([[1.5, -0.5, 0.0]] * 2), logits)
    with pytest.raises(ValueError, match="labels must lie"):
        xtf.nn.sigmoid_cross_entropy_with_logits(tf.fill([2, 3], 1.5), logits)
    with pytest.raises(ValueError, match="pos_weight must lie"):
        xtf.nn.weighted_cross_entropy_with_logits(tf.ones([2, 3]), logits, -1.0)
    with pytest.raises(TypeError, match="integer dtype"):
        xtf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([0.0, 1.0]), logits)
    with pytest.raises(TypeError, match="pos_weight"):
        xtf.nn.weighted_cross_entropy_with_logits(tf.ones([2, 3]), logits, None)
    with pytest.raises(ValueError, match="Both `labels` and `logits`"):
        xtf.nn.sigmoid_cross_entropy_with_logits(logits=logits)


def test_labels_of_other_dtypes_are_cast(tf, xtf):
    """tf.nn's sigmoid wants labels of the logits' dtype; here bool, int and float64 work."""
    logits = tf.constant([[0.5, -2.0, 3.0]])
    expected = tf.nn.sigmoid_cross_entropy_with_logits(tf.constant([[1.0, 0.0, 1.0]]), logits)
    for labels in ([[True, False, True]], [[1, 0, 1]], np.array([[1.0, 0.0, 1.0]])):
        ours = xtf.nn.sigmoid_cross_entropy_with_logits(tf.constant(labels), logits)
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-6)
    uint8 = xtf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([2], tf.uint8), logits)
    assert uint8.dtype == tf.float32


def test_labels_and_pos_weight_get_tf_nn_gradients(tf, xtf):
    """As in tf.nn, labels and pos_weight are differentiated (detailed in test_tf_autodiff)."""
    logits, labels, pos_weight = tf.zeros([2, 3]), tf.fill([2, 3], 0.25), tf.constant(2.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([labels, pos_weight])
        soft = xtf.nn.softmax_cross_entropy_with_logits(labels, logits)
        weighted = xtf.nn.weighted_cross_entropy_with_logits(labels, logits, pos_weight)
        soft_tf = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        weighted_tf = tf.nn.weighted_cross_entropy_with_logits(labels, logits, pos_weight)
    np.testing.assert_allclose(
        tape.gradient(soft, labels).numpy(), tape.gradient(soft_tf, labels).numpy(), rtol=1e-6
    )
    for ours, theirs in zip(
        tape.gradient(weighted, [labels, pos_weight]),
        tape.gradient(weighted_tf, [labels, pos_weight]),
        strict=True,
    ):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_weighted_gradient_at_zero(tf, xtf):
    """At logits == 0 tf.nn.weighted's gradient is 1 - z (abs'(0) = 0); ours is the derivative
    (1 - z) sigmoid(0) - q z sigmoid(0)."""
    z, q = tf.constant([0.25, 1.0, 0.0]), 2.0
    logits = tf.zeros([3])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = xtf.nn.weighted_cross_entropy_with_logits(z, logits, q)
        theirs = tf.nn.weighted_cross_entropy_with_logits(z, logits, q)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    expected = 0.5 * (1.0 - z.numpy()) - 0.5 * q * z.numpy()
    np.testing.assert_allclose(tape.gradient(ours, logits).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(theirs, logits).numpy(), 1.0 - z.numpy())


def test_dense_gradient_for_unnormalised_labels(tf, xtf):
    """Rows summing to s != 1: same loss as tf.nn; the gradient is s softmax - t, where tf.nn's
    fused kernel returns softmax - t (its docs call that gradient incorrect)."""
    labels, logits = tf.constant([[1.0, 0.5, 0.5]]), tf.constant([[1.0, 2.0, -1.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = xtf.nn.softmax_cross_entropy_with_logits(labels, logits)
        theirs = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    p = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(tape.gradient(ours, logits).numpy(), 2.0 * p - labels, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(theirs, logits).numpy(), p - labels, rtol=1e-6)


# --- apply_op: any core operator ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_apply_op_matches_value_and_grad(tf, xtf, mode):
    """A reduced loss with optional arrays absent (None) in the middle: the core's NumPy value
    and gradient, eagerly and under XLA."""
    rng = rng_for("apply_op")
    logits, targets = rng.normal(size=(6, 5)), rng.integers(0, 5, 6)
    class_weight = np.array([0.5, 2.0, 1.0, 0.25, 1.5])
    expected, expected_grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        logits, targets, class_weight=class_weight, ignore_index=1, label_smoothing=0.1
    )
    op = ops.SoftmaxCrossEntropy(ignore_index=1, label_smoothing=0.1, reduction="mean")

    def run(logits: Any, targets: Any, weight: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = xtf.apply_op(op, logits, targets, weight)
        return loss, tape.gradient(loss, logits)

    if mode == "xla":
        run = tf.function(run, jit_compile=True)
    loss, grad = run(tf.constant(logits), tf.constant(targets), tf.constant(class_weight))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-12, atol=1e-15)

    sigmoid = ops.SigmoidCrossEntropy(reduction="sum")
    with tf.GradientTape() as tape:
        z = tf.constant(logits)
        tape.watch(z)
        loss = xtf.apply_op(
            sigmoid, z, tf.constant(rng.random((6, 5))), None, tf.ones([5], tf.float64)
        )
    assert tape.gradient(loss, z).shape == (6, 5)


def test_apply_op_gradient_for_second_argument(tf, xtf):
    """KL divergence: the analytic gradient is taken with respect to q, the second array; p
    gets its derivative too, log(p / q) + 1 per entry."""
    rng = rng_for("kl")
    p, q = rng.dirichlet(np.ones(4), size=3), rng.dirichlet(np.ones(4), size=3)
    expected, expected_grad = xentropy.value_and_grad(xentropy.kl_divergence)(p, q)
    p_t, q_t = tf.constant(p), tf.constant(q)
    with tf.GradientTape() as tape:
        tape.watch([p_t, q_t])
        loss = xtf.apply_op(ops.InformationMeasure(measure="kl_divergence"), p_t, q_t)
    grad_p, grad_q = tape.gradient(loss, [p_t, q_t])
    np.testing.assert_allclose(grad_p.numpy(), np.log(p / q) + 1.0, rtol=1e-12)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(grad_q.numpy(), expected_grad, rtol=1e-12)


def test_apply_op_validate_false_gives_nan_rows(tf, xtf):
    loss = xtf.apply_op(
        ops.SoftmaxCrossEntropy(reduction="none"),
        tf.zeros([2, 3]),
        tf.constant([0, 4]),
        None,
        validate=False,
    )
    assert np.isfinite(loss.numpy()[0]) and np.isnan(loss.numpy()[1])


def test_apply_op_differentiates_all_three_inputs_of_linear_cross_entropy(tf, xtf):
    """``LinearCrossEntropy`` gets gradients for hidden, weight and bias, none for targets."""
    hidden, weight, bias = tf.ones([2, 3]), tf.ones([4, 3]), tf.zeros([4])
    targets = tf.constant([0, 1])
    with tf.GradientTape() as tape:
        tape.watch([hidden, weight, targets, bias])
        loss = xtf.apply_op(ops.LinearCrossEntropy(), hidden, weight, targets, bias)
    grads = tape.gradient(loss, [hidden, weight, targets, bias])
    assert [g is None for g in grads] == [False, False, True, False]


# --- package ----------------------------------------------------------------------------------


def test_docstring_examples(tf, xtf):
    result = doctest.testmod(
        xtf.nn, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0 and result.failed == 0


def test_package_loads_nn_lazily(tf):
    """Importing the package (as the core does to reach ``namespace``) loads neither ``nn`` nor
    ``apply_op``'s module, nor TensorFlow itself."""
    code = (
        "import sys, xentropy.backends.tensorflow as m\n"
        "assert 'tensorflow' not in sys.modules\n"
        "assert 'xentropy.backends.tensorflow.nn' not in sys.modules\n"
        "assert set(m.__all__) == {'nn', 'losses', 'apply_op', 'linear_cross_entropy'}\n"
        "assert 'xentropy.backends.tensorflow.losses' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
