"""``sample_weight=`` and ``where=`` on every loss of the core.

Values on every backend and dtype against ``reference.sample_weighted`` of the float64 reference's
per-example losses; gradients (NumPy's ``value_and_grad``) against float64 finite differences;
the sample weights' own gradient by each framework's autodiff; the semantics against the
frameworks that have them (Keras's ``sample_weight``, optax's ``where``); bad input.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import reference
from conftest import CLASS_WEIGHT, require_or_skip, rng_for, rounded, to_numpy
from tolerances import FINITE_DIFFERENCE_TOLERANCE, assert_close

import xentropy

N, T, C = 4, 3, 5
REDUCTIONS = reference.REDUCTIONS


def _probabilities(rng, shape):
    p = rng.random(shape) + 0.05
    return p / p.sum(-1, keepdims=True)


def _labels(rng):
    y = rng.integers(0, C, size=(N, T))
    y[0, 0] = 1  # ignored below
    return y


# name -> (inputs(rng) -> (prediction, targets), options, class-index mean weights or None)
def _class_inputs(prediction_kind, target_kind, rng):
    x = (
        rng.normal(size=(N, T, C)) * 2
        if prediction_kind == "logits"
        else _probabilities(rng, (N, T, C))
    )
    t = _labels(rng) if target_kind == "index" else _probabilities(rng, (N, T, C))
    return x, t


def _binary_inputs(prediction_kind, rng):
    x = rng.normal(size=(N, T)) * 2 if prediction_kind == "logits" else rng.random((N, T))
    return x, rng.random((N, T))


INDEX_OPTIONS = {"class_weight": CLASS_WEIGHT, "ignore_index": 1, "label_smoothing": 0.1}
CASES = {
    "softmax_cross_entropy-index": (
        functools.partial(_class_inputs, "logits", "index"), INDEX_OPTIONS),
    "softmax_cross_entropy-prob": (
        functools.partial(_class_inputs, "logits", "prob"), {"class_weight": CLASS_WEIGHT}),
    "categorical_cross_entropy-index": (
        functools.partial(_class_inputs, "probs", "index"), INDEX_OPTIONS),
    "softmax_focal_loss-index": (
        functools.partial(_class_inputs, "logits", "index"), {**INDEX_OPTIONS, "gamma": 1.5}),
    "poly1_cross_entropy-index": (
        functools.partial(_class_inputs, "logits", "index"), {**INDEX_OPTIONS, "epsilon": 1.0}),
    "sigmoid_cross_entropy": (
        functools.partial(_binary_inputs, "logits"), {"label_smoothing": 0.1}),
    "binary_cross_entropy": (functools.partial(_binary_inputs, "probs"), {}),
    "sigmoid_focal_loss": (functools.partial(_binary_inputs, "logits"), {"alpha": 0.25}),
    "kl_divergence": (
        lambda rng: (_probabilities(rng, (N, T, C)), _probabilities(rng, (N, T, C))), {}),
    "entropy": (lambda rng: (_probabilities(rng, (N, T, C)),), {}),
}  # fmt: skip
WEIGHTINGS = {
    "tokens": lambda rng: {"sample_weight": rng.random((N, T)) * 2},
    "per-example": lambda rng: {"sample_weight": rng.random((N, 1))},
    "where": lambda rng: {"where": rng.random((N, T)) < 0.6},
    "both": lambda rng: {"sample_weight": rng.random((T,)), "where": rng.random((N, T)) < 0.6},
}


def _function(case: str):
    return getattr(xentropy, case.partition("-")[0])


def _expected(case, arrays, options, weighting, reduction):
    fn = getattr(reference, case.partition("-")[0])
    losses = fn(*arrays, **options, reduction="none")
    mean_weight = None
    if case.endswith("-index"):
        x = np.asarray(arrays[0])
        mean_weight = reference._example_weight(
            arrays[1], x, options.get("class_weight"), options.get("ignore_index")
        )
    return reference.sample_weighted(losses, reduction, **weighting, mean_weight=mean_weight)


def _sample(case, weighting_name, key=()):
    rng = rng_for("sample-weights", case, weighting_name, *key)
    make, options = CASES[case]
    arrays = make(rng)
    weighting = WEIGHTINGS[weighting_name](rng)
    return arrays, options, weighting


def _reduction_for(case: str, reduction: str) -> bool:
    return not (case in ("kl_divergence", "entropy") and reduction == "sum_over_batch_size")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighting_name", WEIGHTINGS)
@pytest.mark.parametrize("case", CASES)
def test_values_on_every_backend(xp, dtype, to_backend, case, weighting_name, reduction):
    arrays, options, weighting = _sample(case, weighting_name)
    inputs = tuple(to_backend(a, dtype) if a.dtype.kind == "f" else to_backend(a) for a in arrays)
    backend_options = {
        k: to_backend(v, dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }
    backend_weighting = {
        k: to_backend(v, dtype) if v.dtype.kind == "f" else to_backend(v)
        for k, v in weighting.items()
    }
    value = _function(case)(*inputs, **backend_options, **backend_weighting, reduction=reduction)
    ref_arrays = tuple(rounded(a, dtype) if a.dtype.kind == "f" else a for a in arrays)
    ref_options = {
        k: rounded(v, dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }
    ref_weighting = {
        k: rounded(v, dtype) if v.dtype.kind == "f" else v for k, v in weighting.items()
    }
    expected = _expected(case, ref_arrays, ref_options, ref_weighting, reduction)
    assert value.dtype == inputs[0].dtype
    assert_close(to_numpy(value), expected, dtype, msg=f"{case} {weighting_name} {reduction}")


@pytest.mark.parametrize("reduction", ["mean", "sum_over_batch_size", "none"])
@pytest.mark.parametrize("weighting_name", WEIGHTINGS)
@pytest.mark.parametrize("case", CASES)
def test_numpy_gradient_matches_finite_differences(case, weighting_name, reduction):
    arrays, options, weighting = _sample(case, weighting_name, ("grad",))
    wrt = 1 if case == "kl_divergence" else 0
    fn = functools.partial(_function(case), **options, **weighting, reduction=reduction)
    _, grad = xentropy.value_and_grad(fn)(*arrays)

    def loss_of(x):
        moved = list(arrays)
        moved[wrt] = x
        return np.sum(_expected(case, tuple(moved), options, weighting, reduction))

    expected = reference.numerical_grad(loss_of, arrays[wrt])
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    assert_close(grad, expected, "float64", rtol=rtol, atol=atol, grad=True)


def test_sample_weight_gradient_in_torch_jax_and_tensorflow():
    """d mean / d s_i = (l_i - mean * e_i) / sum(s e), by each framework's autodiff."""
    arrays, options, weighting = _sample("softmax_cross_entropy-index", "tokens")
    s = weighting["sample_weight"]
    losses = reference.softmax_cross_entropy(*arrays, **options, reduction="none")
    e = reference._example_weight(arrays[1], arrays[0], CLASS_WEIGHT, 1)
    mean = np.sum(s * losses) / np.sum(s * e)
    expected = (losses - mean * e) / np.sum(s * e)
    torch = require_or_skip("torch")
    sw = torch.tensor(s, requires_grad=True)
    loss = xentropy.softmax_cross_entropy(
        *(torch.tensor(a) for a in arrays),
        **{**options, "class_weight": torch.tensor(CLASS_WEIGHT)},
        sample_weight=sw,
    )
    (grad,) = torch.autograd.grad(loss, sw)
    assert_close(grad.numpy(), expected, "float64", grad=True)
    jax = require_or_skip("jax")
    with jax.enable_x64(True):
        jarrays = tuple(jax.numpy.asarray(a) for a in arrays)
        jgrad = jax.grad(
            lambda w: xentropy.softmax_cross_entropy(*jarrays, **options, sample_weight=w)
        )(jax.numpy.asarray(s))
    assert_close(np.asarray(jgrad), expected, "float64", grad=True)
    tf = require_or_skip("tensorflow")
    tw = tf.Variable(s)
    with tf.GradientTape() as tape:
        tloss = xentropy.softmax_cross_entropy(
            *(tf.constant(a) for a in arrays), **options, sample_weight=tw
        )
    assert_close(tape.gradient(tloss, tw).numpy(), expected, "float64", grad=True)


def test_torch_prediction_gradient_and_double_backward():
    torch = require_or_skip("torch")
    arrays, options, weighting = _sample("softmax_cross_entropy-index", "both")
    x = torch.tensor(arrays[0], requires_grad=True)
    y = torch.tensor(arrays[1])
    kw = {
        **options,
        "class_weight": torch.tensor(CLASS_WEIGHT),
        "sample_weight": torch.tensor(weighting["sample_weight"]),
        "where": torch.tensor(weighting["where"]),
    }

    def loss(z):
        return xentropy.softmax_cross_entropy(z, y, **kw)

    assert torch.autograd.gradcheck(loss, (x,))
    assert torch.autograd.gradgradcheck(loss, (x,))


def test_keras_sample_weight_semantics():
    """Keras's ``Loss(..., sample_weight=s)`` with its default reduction is our
    ``"sum_over_batch_size"``; its ``"mean_with_sample_weight"`` is our ``"mean"``."""
    keras = require_or_skip("keras")
    rng = rng_for("sample-weights", "keras")
    probs = _probabilities(rng, (N, C))
    y = rng.integers(0, C, size=N)
    s = rng.random(N)
    for reduction, ours in (
        ("sum_over_batch_size", "sum_over_batch_size"),
        ("mean_with_sample_weight", "mean"),
        ("sum", "sum"),
    ):
        native = keras.losses.SparseCategoricalCrossentropy(reduction=reduction, dtype="float64")
        expected = float(keras.ops.convert_to_numpy(native(y, probs, sample_weight=s)))
        value = xentropy.categorical_cross_entropy(probs, y, sample_weight=s, reduction=ours)
        assert_close(np.asarray(value), expected, "float64", msg=reduction)


def test_optax_where_semantics():
    """optax's ``where`` of examples leaves masked examples out of its per-example loss (0)."""
    optax = require_or_skip("optax")
    jax = require_or_skip("jax")
    rng = rng_for("sample-weights", "optax")
    logits, labels = rng.normal(size=(N, C)), _probabilities(rng, (N, C))
    where = np.array([True, False, True, True])
    with jax.enable_x64(True):
        native = optax.softmax_cross_entropy(logits, labels, where=jax.numpy.asarray(where))
        ours = xentropy.softmax_cross_entropy(
            jax.numpy.asarray(logits), jax.numpy.asarray(labels), where=jax.numpy.asarray(where),
            reduction="none",
        )  # fmt: skip
        assert_close(np.asarray(ours), np.asarray(native), "float64")


def test_masked_examples_do_not_reach_the_value():
    """A masked example is selected away: its NaN loss does not reach the result, and the other
    examples' gradients stay finite (its own is 0 times a NaN derivative: NaN, not hidden)."""
    logits = np.array([[0.0, 1.0], [np.inf, np.nan]])
    loss, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        logits, np.array([0, 1]), where=np.array([True, False]), validate=False
    )
    expected = reference.softmax_cross_entropy(logits[:1], np.array([0]))
    assert_close(np.asarray(loss), expected, "float64")
    assert np.all(np.isfinite(grad[0]))


def test_all_masked_mean_is_nan_with_zero_gradient():
    logits = np.zeros((2, 3))
    loss, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        logits, np.array([0, 1]), sample_weight=np.zeros(2)
    )
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize(
    ("weighting", "error", "match"),
    [
        ({"sample_weight": np.ones(N)}, ValueError, r"shape \(4,\) .*\(4, 3\).*\(4, 1\)"),
        ({"sample_weight": -np.ones((N, T))}, ValueError, "sample_weight must lie in"),
        ({"sample_weight": np.full((N, T), np.nan)}, ValueError, "sample_weight"),
        ({"where": np.ones((N, T))}, TypeError, "where must be a boolean array"),
        ({"where": np.ones((2, T), bool)}, ValueError, "where of shape"),
    ],
)  # fmt: skip
def test_bad_input(weighting, error, match):
    rng = rng_for("sample-weights", "bad")
    logits, labels = _class_inputs("logits", "index", rng)
    with pytest.raises(error, match=match):
        xentropy.softmax_cross_entropy(logits, labels, **weighting)


def test_negative_weight_under_tracing_gives_nan_for_its_example():
    jax = require_or_skip("jax")
    rng = rng_for("sample-weights", "traced")
    logits, labels = _class_inputs("logits", "index", rng)
    s = np.ones((N, T))
    s[2, 1] = -1.0
    loss = jax.jit(
        lambda z, y, w: xentropy.softmax_cross_entropy(z, y, sample_weight=w, reduction="none")
    )(logits, labels, s)
    loss = np.asarray(loss)
    assert np.isnan(loss[2, 1]) and np.isfinite(np.delete(loss.reshape(-1), 2 * T + 1)).all()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sum_over_batch_size"])
def test_traced_shapes_of_unknown_size(reduction):
    """Under ``tf.function`` with an unknown batch size, the weighted reduction never builds
    an array of the (unknown) per-example shape itself: the same numbers as eagerly."""
    tf = require_or_skip("tensorflow")
    rng = rng_for("sample-weights", "unknown-sizes")
    logits, labels = _class_inputs("logits", "index", rng)
    s = rng.random((N, 1))
    mask = rng.random((N, T)) < 0.7

    def loss(z, y, w, m):
        return xentropy.softmax_cross_entropy(z, y, sample_weight=w, where=m, reduction=reduction)

    spec = [
        tf.TensorSpec([None, T, C], tf.float64),
        tf.TensorSpec([None, T], tf.int64),
        tf.TensorSpec([None, 1], tf.float64),
        tf.TensorSpec([None, T], tf.bool),
    ]
    arrays = [tf.constant(a) for a in (logits, labels, s, mask)]
    traced = tf.function(loss, input_signature=spec)(*arrays)
    assert_close(traced.numpy(), loss(*arrays).numpy(), "float64")
    expected = reference.sample_weighted(
        reference.softmax_cross_entropy(logits, labels, reduction="none"),
        reduction,
        sample_weight=s,
        where=mask,
    )
    assert_close(traced.numpy(), expected, "float64")


def test_sample_weight_of_another_library_raises():
    torch = require_or_skip("torch")
    rng = rng_for("sample-weights", "mixed")
    logits, labels = _class_inputs("logits", "index", rng)
    with pytest.raises(TypeError, match="sample_weight is a torch"):
        xentropy.softmax_cross_entropy(logits, labels, sample_weight=torch.ones(N, T))


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "sum"])
def test_keras_dialect_takes_keras_sample_weight(reduction):
    """The Keras dialect's classes weight through the core (``reduce_weighted``) by Keras's
    formulas, so a weighted call gives Keras's own number and the float64 reference's."""
    keras = require_or_skip("keras")
    xk = require_or_skip("xentropy.backends.keras")
    rng = rng_for("sample-weights", "keras-dialect")
    probs = _probabilities(rng, (N, T, C)).astype(np.float32)
    y = rng.integers(0, C, size=(N, T))
    s = rng.random((N, T)).astype(np.float32)
    ours = xk.SparseCategoricalCrossentropy(reduction=reduction)(y, probs, sample_weight=s)
    native = keras.losses.SparseCategoricalCrossentropy(reduction=reduction)(
        y, probs, sample_weight=s
    )
    core = "mean" if reduction == "mean_with_sample_weight" else reduction
    expected = reference.sample_weighted(
        reference.categorical_cross_entropy(probs, y, reduction="none"), core, sample_weight=s
    )
    assert_close(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(native), "float32")
    assert_close(keras.ops.convert_to_numpy(ours), expected, "float32")
