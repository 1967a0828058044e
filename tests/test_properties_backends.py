"""Hypothesis properties of the losses on every backend: numpy, array_api_strict, torch, jax and
tensorflow (``tests/test_properties.py`` holds the float64 properties of the core on the core
backends).

Inputs are float32 with elements bounded by +-1e4 (Hypothesis favours the bounds), plus a float16
test that reaches float16's extremes (+-65504, the smallest normal and subnormal numbers).
Optional keyword arguments are drawn with a sentinel, so that each is sometimes left out (the
default path), sometimes given as None and sometimes given a value. Shapes come from a small set
so that JAX and TensorFlow compile each primitive for only a few shapes.

Properties: the loss is >= 0 for valid targets; softmax cross entropy is invariant under a shift
of the logits; class indices give the loss of their one-hot probabilities; sigmoid cross entropy
is symmetric, ``BCE(z, t) == BCE(-z, 1 - t)``; the gradient rows of softmax cross entropy sum to
0; ``mean == sum / total weight``; every backend gives the value and gradient NumPy gives.

Profiles come from ``tests/conftest.py`` (``HYPOTHESIS_PROFILE=ci|dev|long``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerances import assert_close

import xentropy

FRAMEWORKS = ("numpy", "array_api_strict", "torch", "jax", "tensorflow")
SIXTEEN_BIT_FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow")
BOUND = 1e4
SHAPES = ((1, 2), (4, 3))
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size")
OMIT = object()  # the sentinel of an optional keyword argument that is left out


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.just(OMIT) | strategy


def given_options(**drawn: Any) -> dict:
    """The drawn keyword arguments, without those left out."""
    return {k: v for k, v in drawn.items() if v is not OMIT}


# --- backends ----------------------------------------------------------------------------------


def namespace(framework: str) -> Any:
    module = {"jax": "jax.numpy", "tensorflow": "tensorflow"}.get(framework, framework)
    return require_or_skip(framework, module)


def to_backend(framework: str, array: Any) -> Any:
    array = np.asarray(array)
    xp = namespace(framework)
    if framework == "tensorflow":
        return xp.constant(array)
    return xp.asarray(array)


def to_float64(x: Any) -> np.ndarray:
    module = type(x).__module__.partition(".")[0]
    if module == "torch":
        return x.detach().double().numpy()
    if module == "tensorflow":
        return np.asarray(x.numpy()).astype(np.float64)
    if module == "array_api_strict":
        return np.from_dlpack(x).astype(np.float64)
    return np.asarray(x).astype(np.float64)


def run(framework: str, name: str, prediction, targets, **options) -> tuple[np.ndarray, np.ndarray]:
    """(loss, gradient of sum(loss)) of ``xentropy.<name>`` in ``framework``, as float64."""
    options = {
        k: to_backend(framework, v) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }
    value_and_grad = xentropy.value_and_grad(getattr(xentropy, name))
    loss, grad = value_and_grad(
        to_backend(framework, prediction), to_backend(framework, targets), **options
    )
    return to_float64(loss), to_float64(grad)


# --- strategies --------------------------------------------------------------------------------


def floats32(low: float = -BOUND, high: float = BOUND) -> st.SearchStrategy:
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=32)


# Weights are 0 or at least 2^-10: a subnormal total weight (< 1.2e-38) overflows the 1 / total
# of the mean's backward to inf, and the gradient becomes NaN (loud, but not the exact value).
WEIGHTS = st.just(0.0) | floats32(2.0**-10, 10.0)


@st.composite
def class_problem(draw, *, dense: bool | None = None, dtype=np.float32, elements=None):
    """(logits, targets, options) for the softmax family: class indices or probabilities."""
    n, c = draw(st.sampled_from(SHAPES), label="shape")
    logits = draw(
        hnp.arrays(dtype, (n, c), elements=floats32() if elements is None else elements),
        label="logits",
    )
    if dense is None:
        dense = draw(st.booleans(), label="dense")
    weight = draw(
        optional(st.none() | hnp.arrays(np.float32, (c,), elements=WEIGHTS)),
        label="class_weight",
    )
    smoothing = draw(
        optional(st.sampled_from([0.0, 1.0]) | floats32(0.0, 1.0)), label="label_smoothing"
    )
    if dense:
        raw = draw(hnp.arrays(np.float32, (n, c), elements=floats32(0.0, 1.0)), label="raw")
        raw[:, 0] += np.float32(1e-3)
        targets = (raw / np.sum(raw, axis=-1, keepdims=True)).astype(np.float32)
        ignore = OMIT
    else:
        targets = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="labels")
        ignore = draw(optional(st.none() | st.integers(0, c - 1)), label="ignore_index")
    options = given_options(class_weight=weight, label_smoothing=smoothing, ignore_index=ignore)
    return logits, targets, options


@st.composite
def binary_problem(draw):
    """(logits, targets in {0, 1/4, 1/2, 3/4, 1}: 1 - t is exact, options)."""
    n, c = draw(st.sampled_from(SHAPES), label="shape")
    logits = draw(hnp.arrays(np.float32, (n, c), elements=floats32()), label="logits")
    targets = draw(
        hnp.arrays(np.float32, (n, c), elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
        label="targets",
    )
    options = given_options(
        class_weight=draw(
            optional(st.none() | hnp.arrays(np.float32, (c,), elements=WEIGHTS)),
            label="class_weight",
        ),
        label_smoothing=draw(optional(floats32(0.0, 1.0)), label="label_smoothing"),
    )
    return logits, targets, options


reductions = optional(st.sampled_from(REDUCTIONS))
frameworks = pytest.mark.parametrize("framework", FRAMEWORKS)


def total_weight(targets: np.ndarray, options: dict) -> float:
    """The denominator of ``mean`` (``docs/semantics.md``)."""
    if targets.ndim == 2:
        return float(targets.shape[0])
    weight = options.get("class_weight")
    w = np.ones(100) if weight is None else np.asarray(weight, np.float64)
    keep = np.ones(targets.shape, bool)
    if options.get("ignore_index") is not None:
        keep = targets != options["ignore_index"]
    return float(np.sum(np.where(keep, w[targets], 0.0)))


# --- properties --------------------------------------------------------------------------------


@frameworks
@given(data=st.data())
def test_loss_is_nonnegative(framework, data):
    name = data.draw(
        st.sampled_from(["softmax_cross_entropy", "softmax_focal_loss", "sigmoid_cross_entropy"]),
        label="loss",
    )
    if name == "sigmoid_cross_entropy":
        logits, targets, options = data.draw(binary_problem(), label="problem")
    else:
        logits, targets, options = data.draw(class_problem(), label="problem")
    reduction = data.draw(reductions, label="reduction")
    options = {**options, **given_options(reduction=reduction)}
    loss, grad = run(framework, name, logits, targets, **options)
    note(f"loss {loss}")
    if options.get("reduction", "mean") == "mean" and total_weight(targets, options) == 0:
        assert np.isnan(loss)  # a mean over no weight
    else:
        assert np.all(loss >= 0)
    assert np.all(np.isfinite(grad))


@frameworks
@given(data=st.data())
def test_softmax_shift_invariance(framework, data):
    """CE(z + c) == CE(z): logits on a 1/8 grid and integer shifts keep every sum exact."""
    n, c = data.draw(st.sampled_from(SHAPES), label="shape")
    grid = hnp.arrays(np.int32, (n, c), elements=st.integers(-8000, 8000))
    logits = (data.draw(grid, label="eighths") / 8).astype(np.float32)
    shift = np.float32(data.draw(st.integers(-10_000, 10_000), label="shift"))
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="labels")
    reduction = data.draw(reductions, label="reduction")
    options = given_options(reduction=reduction)
    loss, grad = run(framework, "softmax_cross_entropy", logits, labels, **options)
    shifted, shifted_grad = run(
        framework, "softmax_cross_entropy", logits + shift, labels, **options
    )
    assert_close(shifted, loss, "float32", msg="loss")
    assert_close(shifted_grad, grad, "float32", grad=True, msg="gradient")


@frameworks
@given(problem=class_problem(dense=False), reduction=reductions)
def test_class_indices_equal_their_one_hot(framework, problem, reduction):
    logits, labels, options = problem
    options = {k: v for k, v in options.items() if k != "ignore_index"}  # indices only
    options.update(given_options(reduction=reduction))
    one_hot = np.eye(logits.shape[-1], dtype=np.float32)[labels]
    sparse, sparse_grad = run(framework, "softmax_cross_entropy", logits, labels, **options)
    dense, dense_grad = run(framework, "softmax_cross_entropy", logits, one_hot, **options)
    if options.get("reduction", "mean") == "mean":
        # class indices divide by their summed class weight, probabilities by the batch size
        scale = total_weight(labels, options) / logits.shape[0]
        if scale == 0:
            assert np.isnan(sparse)
            return
        sparse, sparse_grad = sparse * scale, sparse_grad * scale
    atol = 1e-5 * (1.0 + float(np.max(np.abs(logits))))
    assert_close(sparse, dense, "float32", atol=atol, msg="loss")
    assert_close(sparse_grad, dense_grad, "float32", grad=True, msg="gradient")


@frameworks
@given(problem=binary_problem(), reduction=reductions)
def test_sigmoid_cross_entropy_symmetry(framework, problem, reduction):
    """BCE(z, t) == BCE(-z, 1 - t), and the gradients are opposite."""
    logits, targets, options = problem
    options = {**options, **given_options(reduction=reduction)}
    loss, grad = run(framework, "sigmoid_cross_entropy", logits, targets, **options)
    mirrored, mirrored_grad = run(
        framework, "sigmoid_cross_entropy", -logits, 1 - targets, **options
    )
    # label smoothing rounds t' = t (1 - e) + e / 2 and its mirror 1 - t' separately in float32:
    # an absolute error of up to 2^-24 |z| per element, however small the loss
    weight = options.get("class_weight")
    largest = 1.0 if weight is None else max(1.0, float(np.max(weight)))
    atol = 1e-5 + 2.0**-23 * float(np.max(np.abs(logits))) * largest
    assert_close(mirrored, loss, "float32", atol=atol, msg="loss")
    assert_close(-mirrored_grad, grad, "float32", grad=True, msg="gradient")


@frameworks
@given(problem=class_problem(), reduction=reductions)
def test_softmax_gradient_rows_sum_to_zero(framework, problem, reduction):
    logits, targets, options = problem
    options = {**options, **given_options(reduction=reduction)}
    _, grad = run(framework, "softmax_cross_entropy", logits, targets, **options)
    # each entry p * sum(a) - a rounds at the scale of sum(a), times the reduction's 1 / total
    weight = options.get("class_weight")
    scale = 1.0 + (logits.shape[-1] if weight is None else float(np.sum(weight)))
    if options.get("reduction", "mean") == "mean":
        scale /= max(total_weight(targets, options), 1e-30)
    np.testing.assert_allclose(np.sum(grad, axis=-1), 0.0, atol=2e-6 * scale)


@frameworks
@given(problem=class_problem())
def test_mean_is_sum_over_total_weight(framework, problem):
    logits, targets, options = problem
    mean, mean_grad = run(framework, "softmax_cross_entropy", logits, targets, **options)
    total, total_grad = run(
        framework, "softmax_cross_entropy", logits, targets, reduction="sum", **options
    )
    weight = total_weight(targets, options)
    if weight == 0:
        assert np.isnan(mean)
        np.testing.assert_array_equal(mean_grad, 0.0)  # a mean over nothing: zero gradient
        return
    # compared at the scale of the sum: dividing by a small total weight magnifies the rounding
    # of the terms p * sum(a) and a, which cancel in the gradient
    class_weight = options.get("class_weight")
    scale = logits.shape[-1] if class_weight is None else float(np.sum(class_weight))
    assert_close(mean * weight, total, "float32", atol=1e-5 * (1 + np.abs(total)), msg="loss")
    assert_close(mean_grad * weight, total_grad, "float32", atol=2e-6 * (1 + scale), msg="grad")


@frameworks
@given(data=st.data())
def test_same_value_as_numpy(framework, data):
    name = data.draw(
        st.sampled_from(["softmax_cross_entropy", "poly1_cross_entropy", "sigmoid_cross_entropy"]),
        label="loss",
    )
    if name == "sigmoid_cross_entropy":
        logits, targets, options = data.draw(binary_problem(), label="problem")
        pos_weight = data.draw(optional(st.none() | floats32(0.0, 10.0)), label="pos_weight")
        options.update(given_options(pos_weight=pos_weight))
    else:
        logits, targets, options = data.draw(class_problem(), label="problem")
    options.update(given_options(reduction=data.draw(reductions, label="reduction")))
    loss, grad = run(framework, name, logits, targets, **options)
    expected, expected_grad = run("numpy", name, logits, targets, **options)
    atol = 1e-5 * (1.0 + float(np.max(np.abs(logits))))
    assert_close(loss, expected, "float32", atol=atol, msg="loss")
    assert_close(grad, expected_grad, "float32", grad=True, msg="gradient")


FLOAT16_EXTREMES = st.sampled_from([65504.0, -65504.0, 6.1035e-05, -6.1035e-05, 6e-08, 0.0])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")
@pytest.mark.parametrize("framework", SIXTEEN_BIT_FRAMEWORKS)
@given(data=st.data())
def test_float16_extremes(framework, data):
    """float16 logits up to +-65504: a loss >= 0 (+inf where it overflows float16, never NaN),
    finite gradients, and NumPy's value and gradient."""
    elements = st.floats(-65504, 65504, width=16) | FLOAT16_EXTREMES
    logits, targets, options = data.draw(
        class_problem(dtype=np.float16, elements=elements), label="problem"
    )
    options = {**options, "reduction": "none"}
    loss, grad = run(framework, "softmax_cross_entropy", logits, targets, **options)
    assert not np.any(np.isnan(loss)) and np.all(loss >= 0)
    assert np.all(np.isfinite(grad))
    expected, expected_grad = run("numpy", "softmax_cross_entropy", logits, targets, **options)
    assert_close(loss, expected, "float16")
    assert_close(grad, expected_grad, "float16", grad=True)
