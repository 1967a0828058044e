"""Bad input gets a clear, eager error; the NaN contract where no error can be raised.

Each error must be the exception class of ``docs/semantics.md`` (ValueError / TypeError), and its
message must name the argument and show the offending shape or value. Under ``validate=False``
(what tracing does) an out-of-range class index makes that example's loss and gradient NaN and
leaves the others untouched.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import reference
from conftest import ALL_LOSSES, SOFTMAX_FAMILY, random_distributions, rng_for, to_numpy
from tolerances import assert_close

import xentropy
from xentropy.ops import is_lazy

N, C = 4, 3
LABEL_SMOOTHING_LOSSES = ALL_LOSSES


def mentions(*parts: str) -> str:
    """A ``match=`` pattern requiring every one of ``parts``, literally, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(part)})" for part in parts)


def prediction_for(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A valid float prediction of ``shape`` for loss ``name`` (probabilities where needed)."""
    rng = rng_for("errors", name, shape)
    if name in ("categorical_cross_entropy", "binary_cross_entropy"):
        return rng.uniform(0.1, 0.9, size=shape).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32)


def assert_nan_only_at(loss: np.ndarray, where: tuple[int, ...]) -> None:
    """The unvalidated contract: NaN at ``where``, finite everywhere else."""
    expected = np.zeros(loss.shape, dtype=bool)
    expected[where] = True
    np.testing.assert_array_equal(np.isnan(loss), expected)


def valid_targets(name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name in SOFTMAX_FAMILY:
        return np.arange(shape[0]) % shape[-1]
    return (np.arange(math.prod(shape)).reshape(shape) % 2).astype(np.float32)


# --- shapes: never broadcast, and both shapes in the message ----------------------------------

# (loss, prediction shape, targets: shape and dtype, the offending and the expected shape text)
SHAPE_CASES = [
    ("softmax_cross_entropy", (N, C), ((5,), "int64"), "(5,)", "(4, 3)"),
    ("softmax_cross_entropy", (N, C), ((N, 1), "int64"), "(4, 1)", "(4, 3)"),
    ("softmax_cross_entropy", (N, C), ((1,), "int64"), "(1,)", "(4, 3)"),
    ("softmax_cross_entropy", (N, C), ((N, 5), "float32"), "(4, 5)", "(4, 3)"),
    ("softmax_cross_entropy", (N, C), ((5, C), "float32"), "(5, 3)", "(4, 3)"),
    ("softmax_cross_entropy", (N, C), ((N, 1), "float32"), "(4, 1)", "(4, 3)"),
    ("softmax_cross_entropy", (N, C), ((N, 2, 2), "int64"), "(4, 2, 2)", "(4, 3)"),
    ("categorical_cross_entropy", (N, C), ((N, 1), "float32"), "(4, 1)", "(4, 3)"),
    ("categorical_cross_entropy", (N, C), ((1,), "int64"), "(1,)", "(4, 3)"),
    ("softmax_focal_loss", (N, C), ((5,), "int64"), "(5,)", "(4, 3)"),
    ("poly1_cross_entropy", (N, C), ((N, 1), "float32"), "(4, 1)", "(4, 3)"),
    ("sigmoid_cross_entropy", (N,), ((N, 1), "float32"), "(4, 1)", "(4,)"),
    ("sigmoid_cross_entropy", (N, 1), ((N,), "float32"), "(4,)", "(4, 1)"),
    ("sigmoid_cross_entropy", (N, C), ((1, C), "float32"), "(1, 3)", "(4, 3)"),
    ("binary_cross_entropy", (N,), ((N, 1), "float32"), "(4, 1)", "(4,)"),
    ("binary_cross_entropy", (N, 1), ((N,), "float32"), "(4,)", "(4, 1)"),
    ("sigmoid_focal_loss", (N,), ((N, 1), "float32"), "(4, 1)", "(4,)"),
]


@pytest.mark.parametrize(
    ("name", "shape", "targets", "offending", "expected"),
    [pytest.param(*case, id=f"{case[0]}-{case[3]}-vs-{case[4]}") for case in SHAPE_CASES],
)
def test_target_shape_mismatch(to_backend, name, shape, targets, offending, expected):
    target_shape, target_dtype = targets
    logits = to_backend(prediction_for(name, shape))
    bad = to_backend(np.zeros(target_shape, dtype=target_dtype))
    with pytest.raises(ValueError, match=mentions("targets", offending, expected)):
        getattr(xentropy, name)(logits, bad)


@pytest.mark.parametrize("name", ["kl_divergence", "cross_entropy"])
def test_distribution_shape_mismatch(to_backend, name):
    p = to_backend(random_distributions(rng_for(name), (N, C), -1).astype(np.float32))
    q = to_backend(random_distributions(rng_for(name), (N, 5), -1).astype(np.float32))
    with pytest.raises(ValueError, match=mentions("q", "(4, 5)", "(4, 3)")):
        getattr(xentropy, name)(p, q)


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_class_weight_length(to_backend, name):
    logits = to_backend(prediction_for(name, (N, C)))
    targets = to_backend(valid_targets(name, (N, C)))
    weight = to_backend(np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match=mentions("class_weight", "(2,)")):
        getattr(xentropy, name)(logits, targets, class_weight=weight)


# --- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_float_class_indices(to_backend, name):
    """Float targets of the class-index shape are refused, not truncated (the Keras trap)."""
    logits = to_backend(prediction_for(name, (N, C)))
    targets = to_backend(np.array([0.0, 1.0, 2.0, 1.5]), "float32")
    with pytest.raises(TypeError, match=mentions("targets", "float32")):
        getattr(xentropy, name)(logits, targets)


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("prediction_dtype", ["int32", "int64"])
def test_integer_predictions(to_backend, name, prediction_dtype):
    argument = (
        "probs" if name in ("categorical_cross_entropy", "binary_cross_entropy") else "logits"
    )
    prediction = to_backend(np.ones((N, C)), prediction_dtype)
    targets = to_backend(valid_targets(name, (N, C)))
    with pytest.raises(TypeError, match=mentions(argument, prediction_dtype)):
        getattr(xentropy, name)(prediction, targets)


@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "cross_entropy"])
def test_integer_distributions(to_backend, name):
    p = to_backend(np.ones((N, C), dtype=np.int64))
    args = (p,) if name == "entropy" else (to_backend(np.full((N, C), 0.5, np.float32)), p)
    argument = "p" if name == "entropy" else "q"
    with pytest.raises(TypeError, match=mentions(argument, "int64")):
        getattr(xentropy, name)(*args)


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
@pytest.mark.parametrize(
    ("label", "ignore_index"),
    [(C, None), (7, None), (-1, None), (-1, -100), (-100, None), (C, 1)],
    ids=["C", "7", "-1", "-1,ignore=-100", "-100,no_ignore", "C,ignore=1"],
)
def test_class_index_out_of_range(to_backend, name, label, ignore_index):
    logits = to_backend(prediction_for(name, (N, C)))
    targets = to_backend(np.array([0, label, 2, 1]))
    if is_lazy(logits):  # Dask: values are not read, as under tracing; the row is NaN
        loss = getattr(xentropy, name)(logits, targets, ignore_index=ignore_index, reduction="none")
        assert_nan_only_at(to_numpy(loss), (1,))
        return
    with pytest.raises(ValueError, match=mentions("targets", f"index {label}")):
        getattr(xentropy, name)(logits, targets, ignore_index=ignore_index)


@pytest.mark.parametrize("name", LABEL_SMOOTHING_LOSSES)
@pytest.mark.parametrize("label_smoothing", [1.5, -0.1])
def test_label_smoothing_out_of_range(to_backend, name, label_smoothing):
    prediction = to_backend(prediction_for(name, (N, C)))
    targets = to_backend(valid_targets(name, (N, C)))
    with pytest.raises(ValueError, match=mentions("label_smoothing", str(label_smoothing))):
        getattr(xentropy, name)(prediction, targets, label_smoothing=label_smoothing)


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("reduction", ["avg", "MEAN", "batch"])
def test_unknown_reduction(to_backend, name, reduction):
    prediction = to_backend(prediction_for(name, (N, C)))
    targets = to_backend(valid_targets(name, (N, C)))
    with pytest.raises(ValueError, match=mentions("reduction", reduction)):
        getattr(xentropy, name)(prediction, targets, reduction=reduction)


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_ignore_index_with_probability_targets(to_backend, name):
    prediction = to_backend(prediction_for(name, (N, C)))
    targets = to_backend(random_distributions(rng_for(name), (N, C), -1).astype(np.float32))
    with pytest.raises(ValueError, match=mentions("ignore_index")):
        getattr(xentropy, name)(prediction, targets, ignore_index=1)


@pytest.mark.parametrize("name", ["categorical_cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("bad", [1.5, -0.5])
def test_probabilities_out_of_range(to_backend, name, bad):
    probs = prediction_for(name, (N, C))
    probs[1, 2] = bad
    targets = to_backend(valid_targets(name, (N, C)))
    if is_lazy(targets):  # Dask: values are not read, as under tracing; the entry's row is NaN
        loss = getattr(xentropy, name)(to_backend(probs), targets, reduction="none")
        assert_nan_only_at(to_numpy(loss), (1,) if name == "categorical_cross_entropy" else (1, 2))
        return
    with pytest.raises(ValueError, match=mentions("probs", str(bad))):
        getattr(xentropy, name)(to_backend(probs), targets)


# --- the NaN contract --------------------------------------------------------------------------

# reductions of an empty batch, and of a batch whose every target is ignored
EMPTY = {"none": None, "sum": 0.0, "mean": math.nan, "sum_over_batch_size": math.nan}
ALL_IGNORED = {"none": np.zeros(3), "sum": 0.0, "mean": math.nan, "sum_over_batch_size": 0.0}


def _empty_inputs(name):
    """(prediction, targets, shape of the unreduced loss) with a batch of 0 examples."""
    if name in SOFTMAX_FAMILY:
        return np.full((0, 5), 0.2), np.zeros((0,), dtype=np.int64), (0,)
    return np.full((0, 5), 0.5), np.zeros((0, 5)), (0, 5)


@pytest.mark.parametrize("reduction", reference.REDUCTIONS)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_empty_batch(xp, dtype, split_inputs, name, reduction):
    """Empty batch: none -> empty, sum -> 0, mean and sum_over_batch_size -> 0-d NaN."""
    prediction, targets, shape = _empty_inputs(name)
    (args, _), (ref_args, _) = split_inputs(prediction, targets)
    result = getattr(xentropy, name)(*args, reduction=reduction)
    expected = getattr(reference, name)(*ref_args, reduction=reduction)
    assert result.dtype == getattr(xp, dtype)
    assert tuple(result.shape) == (shape if reduction == "none" else ())
    if reduction != "none":
        np.testing.assert_array_equal(expected, EMPTY[reduction])
    np.testing.assert_array_equal(to_numpy(result), expected)


@pytest.mark.parametrize("reduction", reference.REDUCTIONS)
@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_all_ignored(xp, dtype, split_inputs, name, reduction):
    """Every target ignored: none -> zeros, sum -> 0, mean -> 0-d NaN (torch);
    sum_over_batch_size -> 0 (the ignored examples count in its denominator)."""
    prediction = random_distributions(rng_for("all_ignored", name), (3, 5), -1)
    (args, kwargs), (ref_args, ref_kwargs) = split_inputs(
        prediction, np.full((3,), -100), ignore_index=-100
    )
    result = getattr(xentropy, name)(*args, **kwargs, reduction=reduction)
    expected = getattr(reference, name)(*ref_args, **ref_kwargs, reduction=reduction)
    assert result.dtype == getattr(xp, dtype)
    np.testing.assert_array_equal(expected, ALL_IGNORED[reduction])
    np.testing.assert_array_equal(to_numpy(result), ALL_IGNORED[reduction])


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
@pytest.mark.parametrize("label", [C, -1, 7])
def test_unvalidated_out_of_range_label_is_nan(xp, dtype, split_inputs, name, label):
    """validate=False (as under tracing): NaN loss and gradient on that row only."""
    prediction = prediction_for(name, (N, C)).astype(np.float64)
    targets = np.array([0, label, 2, 1])
    (args, _), (ref_args, _) = split_inputs(prediction, targets)
    value_and_grad = xentropy.value_and_grad(getattr(xentropy, name))
    loss, grad = value_and_grad(*args, reduction="none", validate=False)
    loss, grad = to_numpy(loss), to_numpy(grad)
    assert np.isnan(loss[1])
    assert np.all(np.isnan(grad[1]))
    good = [0, 2, 3]
    expected = getattr(reference, name)(ref_args[0][good], ref_args[1][good], reduction="none")
    assert_close(loss[good], expected, dtype)
    assert np.all(np.isfinite(grad[good]))
    mean = getattr(xentropy, name)(*args, reduction="mean", validate=False)
    assert np.isnan(to_numpy(mean))
