"""Keras's ``sample_weight``, masks and reductions in ``xentropy.backends.keras``, by the core.

Parity with ``keras.losses`` on the backend loaded in this process (each case of
``keras_fit_script.CASES`` is also compared with sample weights on every Keras backend, in
``tests/test_keras_adapter.py``'s subprocesses): token weights, Keras masks on ``y_pred``,
masks combined with ``ignore_class``, the trailing-1 rank rule, unreduced scalar and empty
losses, the gradient by the sample weights, and the deliberate differences (negative weights,
weights that do not broadcast).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # read by Keras at its first import only
import keras_fit_script as script

try:
    keras = require_or_skip("keras")
    xkeras = require_or_skip("keras", "xentropy.backends.keras")
except pytest.skip.Exception as exc:
    pytest.skip(str(exc), allow_module_level=True)

BACKEND: str = keras.backend.backend()
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", None)


def numpy(x: Any) -> np.ndarray:
    return script.to_numpy(x)


def with_mask(x: np.ndarray, mask: np.ndarray) -> Any:
    """``x`` as a tensor carrying Keras's mask (as a masking layer's output does)."""
    from keras.src.backend import set_keras_mask

    tensor = keras.ops.convert_to_tensor(x)
    set_keras_mask(tensor, keras.ops.convert_to_tensor(mask))
    return tensor


def both(name: str, reduction: str | None, **options: Any) -> tuple[Any, Any]:
    return (
        getattr(xkeras, name)(reduction=reduction, **options),
        getattr(keras.losses, name)(reduction=reduction, **options),
    )


def assert_same(ours: Any, theirs: Any) -> None:
    assert script.max_error(numpy(ours), numpy(theirs)) <= 1.0, (numpy(ours), numpy(theirs))


@pytest.fixture
def tokens() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits ``(4, 7, 5)``, class indices ``(4, 7)`` and token weights ``(4, 7)``."""
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(4, 7, 5)).astype("f4")
    labels = rng.integers(0, 5, size=(4, 7))
    weights = rng.uniform(0.0, 2.0, size=(4, 7)).astype("f4")
    weights[0, :3] = 0.0
    return logits, labels, weights


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights_shape", ["tokens", "examples"])
def test_token_and_example_weights(tokens: Any, reduction: str | None, weights_shape: str) -> None:
    logits, labels, weights = tokens
    sample_weight = weights if weights_shape == "tokens" else weights[:, :1]  # (4, 1)
    ours, theirs = both("SparseCategoricalCrossentropy", reduction, from_logits=True)
    assert_same(
        ours(labels, logits, sample_weight=sample_weight),
        theirs(labels, logits, sample_weight=sample_weight),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", ["none", "tokens", "examples"])
def test_keras_mask_with_ignore_class(tokens: Any, reduction: str | None, weighted: str) -> None:
    """A padding mask on ``y_pred`` and ``ignore_class`` on the labels, both honoured."""
    logits, labels, weights = tokens
    labels = labels.copy()
    labels[1, :2] = 3
    mask = np.ones((4, 7), bool)
    mask[:, 5:] = False
    sample_weight = {"none": None, "tokens": weights, "examples": weights[:, :1]}[weighted]
    # with a mask, Keras multiplies the weights by it (broadcasting (4, 1) weights), which
    # its PyTorch backend does in place and cannot broadcast: Keras gets them broadcast
    keras_weight = None if sample_weight is None else np.broadcast_to(sample_weight, (4, 7))
    ours, theirs = both(
        "SparseCategoricalCrossentropy", reduction, from_logits=True, ignore_class=3
    )
    assert_same(
        ours(labels, with_mask(logits, mask), sample_weight=sample_weight),
        theirs(labels, with_mask(logits, mask), sample_weight=keras_weight),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_losses_weight_the_averaged_examples(reduction: str | None) -> None:
    """Binary losses average over the last axis first; the weights are per example."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 4)).astype("f4")
    targets = (rng.random((6, 4)) < 0.5).astype("f4")
    weights = rng.uniform(0.0, 2.0, size=6).astype("f4")
    for name in ("BinaryCrossentropy", "BinaryFocalCrossentropy"):
        ours, theirs = both(name, reduction, from_logits=True)
        assert_same(
            ours(targets, logits, sample_weight=weights),
            theirs(targets, logits, sample_weight=weights),
        )


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "sum"])
def test_scalar_and_empty_losses_are_not_reduced(reduction: str) -> None:
    """One example (1-d logits) gives a scalar loss, weighted but not divided, as in Keras;
    an empty batch gives an empty result."""
    logits = np.array([1.0, -0.5, 2.0], "f4")
    ours, theirs = both("SparseCategoricalCrossentropy", reduction, from_logits=True)
    assert_same(ours(2, logits, sample_weight=0.5), theirs(2, logits, sample_weight=0.5))
    empty = np.zeros((0, 3), "f4")
    labels = np.zeros((0,), "i8")
    assert numpy(ours(labels, empty)).shape == numpy(theirs(labels, empty)).shape == (0,)


def test_gradient_by_the_sample_weights_is_keras_own() -> None:
    """The weighting is plain arithmetic: the backend's autodiff gives d loss / d weights."""
    if BACKEND != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    rng = np.random.default_rng(5)
    logits = tf.constant(rng.normal(size=(5, 4)).astype("f4"))
    labels = tf.constant(rng.integers(0, 4, size=5))
    grads = []
    for module in (xkeras, keras.losses):
        weights = tf.Variable(rng.uniform(0.5, 1.5, size=5).astype("f4"))
        weights.assign(np.linspace(0.5, 1.5, 5, dtype="f4"))
        loss = module.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )
        with tf.GradientTape() as tape:
            value = loss(labels, logits, sample_weight=weights)
        grads.append(tape.gradient(value, weights).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-7)
    # and the reference: d/ds sum(s l) / sum(s) = (l - mean) / sum(s)
    losses = numpy(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    s = np.linspace(0.5, 1.5, 5)
    expected = (losses - (s * losses).sum() / s.sum()) / s.sum()
    np.testing.assert_allclose(grads[0], expected, rtol=1e-5, atol=1e-7)


def test_16_bit_losses_are_weighted_in_float32() -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(64, 3)).astype("f4")
    labels = rng.integers(0, 3, size=64)
    weights = rng.uniform(0.0, 3.0, size=64).astype("f4")
    half = xkeras.SparseCategoricalCrossentropy(from_logits=True, dtype="float16")
    value = numpy(half(labels, logits, sample_weight=weights))
    assert value.dtype == np.float16
    # float64 reference on the float16-rounded inputs, rounded once
    z = logits.astype(np.float16).astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    per_example = -log_p[np.arange(64), labels]
    s = weights.astype(np.float16).astype(np.float64)
    assert value == np.float16((s * per_example).sum() / 64)


def test_negative_sample_weight_raises_eagerly() -> None:
    """A deliberate difference: Keras multiplies by a negative weight."""
    logits = np.array([[1.0, 0.0], [0.0, 1.0]], "f4")
    loss = xkeras.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match="sample_weight"):
        loss([0, 1], logits, sample_weight=np.array([1.0, -1.0], "f4"))
    unchecked = xkeras.SparseCategoricalCrossentropy(from_logits=True, validate=False)
    value = numpy(unchecked([0, 1], logits, sample_weight=np.array([1.0, -1.0], "f4")))
    assert np.isnan(value)
    per_example = xkeras.SparseCategoricalCrossentropy(
        from_logits=True, validate=False, reduction=None
    )
    values = numpy(per_example([0, 1], logits, sample_weight=np.array([1.0, -1.0], "f4")))
    assert np.isfinite(values[0]) and np.isnan(values[1])


def test_negative_sample_weight_is_nan_under_tracing() -> None:
    if BACKEND != "tensorflow":
        pytest.skip("uses tf.function")
    import tensorflow as tf

    loss = xkeras.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    traced = tf.function(lambda z, w: loss(tf.constant([0, 1]), z, sample_weight=w))
    values = traced(tf.constant([[1.0, 0.0], [0.0, 1.0]]), tf.constant([2.0, -1.0])).numpy()
    assert np.isfinite(values[0]) and np.isnan(values[1])


def test_weights_that_do_not_broadcast_raise_naming_sample_weight(tokens: Any) -> None:
    """``(N,)`` weights against ``(N, T)`` losses: ours says to add a trailing axis."""
    logits, labels, weights = tokens
    loss = xkeras.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\).*\(4, 1\)"):
        loss(labels, logits, sample_weight=weights[:, 0])


def test_kl_divergence_weights() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(4), size=6).astype("f4")
    q = rng.dirichlet(np.ones(4), size=6).astype("f4")
    weights = rng.uniform(0.0, 2.0, size=6).astype("f4")
    for reduction in REDUCTIONS:
        ours, theirs = both("KLDivergence", reduction)
        assert_same(ours(p, q, sample_weight=weights), theirs(p, q, sample_weight=weights))


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight"])
def test_a_mean_over_nothing_is_zero_as_in_keras(reduction: str) -> None:
    """Every token masked (a padding-only batch): loss 0 and gradient 0, as Keras's
    ``divide_no_nan`` gives (the core's own mean of nothing is NaN)."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 4)).astype("f4")
    labels = rng.integers(0, 4, size=(2, 3))
    mask = np.zeros((2, 3), bool)
    weights = np.ones((2, 3), "f4")

    def masked_loss(loss: Any) -> Any:
        def fn(z: Any) -> Any:
            from keras.src.backend import set_keras_mask

            set_keras_mask(z, keras.ops.convert_to_tensor(mask))
            return loss(labels, z, sample_weight=weights)

        return fn

    for module in (xkeras, keras.losses):
        loss = module.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
        value, grad = script.value_and_vjp(masked_loss(loss), logits, np.ones)
        assert value == 0.0 and np.all(grad == 0.0), module
        zero_weights = numpy(loss(labels, logits, sample_weight=weights * 0))
        assert zero_weights == 0.0, module


def test_a_masked_nan_does_not_reach_the_result() -> None:
    """A deliberate difference: Keras multiplies a masked loss by 0, so a NaN there (an
    infinite logit in a padded position) makes the whole loss NaN; ours leaves it out."""
    logits = np.array([[1.0, 0.0], [np.inf, -np.inf]], "f4")
    mask = np.array([True, False])
    ours = xkeras.CategoricalCrossentropy(from_logits=True)
    theirs = keras.losses.CategoricalCrossentropy(from_logits=True)
    targets = np.eye(2, dtype="f4")
    kept = numpy(ours(targets[:1], logits[:1]))
    assert numpy(ours(targets, with_mask(logits, mask))) == kept
    assert np.isnan(numpy(theirs(targets, with_mask(logits, mask))))


def test_16_bit_weighted_mean_is_rounded_once() -> None:
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(32, 3)).astype("f4")
    labels = rng.integers(0, 3, size=32)
    weights = rng.uniform(0.0, 3.0, size=32).astype("f4")
    half = xkeras.SparseCategoricalCrossentropy(
        from_logits=True, dtype="float16", reduction="mean_with_sample_weight"
    )
    value = numpy(half(labels, logits, sample_weight=weights))
    z = logits.astype(np.float16).astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    s = weights.astype(np.float16).astype(np.float64)
    expected = (s * -log_p[np.arange(32), labels]).sum() / s.sum()
    assert value.dtype == np.float16 and value == np.float16(expected)


def test_model_fit_hands_its_sample_weights_to_the_core() -> None:
    """``model.fit(sample_weight=...)`` reaches our ``__call__``: run eagerly, a negative weight
    is refused by the core's check (on JAX, whose trainer differentiates by tracing even when
    run eagerly, the loss is NaN instead, as under any tracing)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("f4")
    y = rng.integers(0, 4, size=16)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    loss = xkeras.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss, run_eagerly=True)
    weights = np.ones(16, "f4")
    weights[3] = -1.0
    if BACKEND == "jax":
        history = model.fit(x, y, sample_weight=weights, epochs=1, verbose=0)
        assert np.isnan(history.history["loss"][0])
        return
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(x, y, sample_weight=weights, epochs=1, verbose=0)
