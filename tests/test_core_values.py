"""Every loss x option set x reduction against the float64 reference, per core backend and dtype.

The reference (``tests/reference.py``) is evaluated on the inputs rounded to the tested dtype, so
the comparison measures only the core's own arithmetic; tolerances come from
``tests/tolerances.py``. Each test also checks the result's dtype (the prediction's) and shape.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
from conftest import (
    CLASS_AXIS_LAYOUTS,
    ELEMENTWISE_SHAPES,
    EXTREME_INDEX,
    EXTREME_LOGITS,
    SIGMOID_FAMILY_OPTIONS,
    batch_shape,
    binary_targets,
    random_distributions,
    rng_for,
    softmax_cases,
    softmax_options,
    softmax_sample,
    to_numpy,
)
from tolerances import assert_close

import xentropy

REDUCTIONS = reference.REDUCTIONS


def check_loss(xp, dtype, name, core, ref, reduction, per_example_shape):
    """Run ``xentropy.<name>`` and the reference; compare value, dtype and shape."""
    (args, kwargs), (ref_args, ref_kwargs) = core, ref
    result = getattr(xentropy, name)(*args, **kwargs, reduction=reduction)
    expected = getattr(reference, name)(*ref_args, **ref_kwargs, reduction=reduction)
    assert result.dtype == getattr(xp, dtype)
    assert tuple(result.shape) == (per_example_shape if reduction == "none" else ())
    assert_close(to_numpy(result), expected, dtype, msg=f"{name} reduction={reduction}")
    return result


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("variant", "layout", "kind", "option"), list(softmax_cases()))
def test_softmax_family(xp, dtype, split_inputs, variant, layout, kind, option, reduction):
    prediction, targets, axis = softmax_sample(variant, layout, kind, option)
    core, ref = split_inputs(prediction, targets, axis=axis, **softmax_options(variant, option))
    check_loss(xp, dtype, variant, core, ref, reduction, batch_shape(prediction.shape, axis))


def _elementwise_cases():
    """Every option set with soft and hard targets on (N, C), bool and int targets plain; the
    other shapes the plain case and the last (richest) option set with soft targets."""
    for variant, options in SIGMOID_FAMILY_OPTIONS.items():
        richest = list(options)[-1]
        for layout in ELEMENTWISE_SHAPES:
            for kind in ("soft", "hard", "bool", "int"):
                for option in options:
                    if layout == "NC":
                        wanted = kind in ("soft", "hard") or option == "plain"
                    else:
                        wanted = kind == "soft" and option in ("plain", richest)
                    if wanted:
                        yield pytest.param(
                            variant, layout, kind, option, id=f"{variant}-{layout}-{kind}-{option}"
                        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("variant", "layout", "kind", "option"), list(_elementwise_cases()))
def test_elementwise_family(xp, dtype, split_inputs, variant, layout, kind, option, reduction):
    rng = rng_for(variant, layout, kind, option)
    shape = ELEMENTWISE_SHAPES[layout]
    if variant == "binary_cross_entropy":
        prediction = rng.uniform(0.01, 0.99, size=shape)
    else:
        prediction = rng.normal(scale=2.0, size=shape)
    targets = binary_targets(rng, shape, kind)
    core, ref = split_inputs(prediction, targets, **SIGMOID_FAMILY_OPTIONS[variant][option])
    check_loss(xp, dtype, variant, core, ref, reduction, shape)


INFORMATION_LAYOUTS = ("NC", "C", "NCd")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", INFORMATION_LAYOUTS)
@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "cross_entropy"])
def test_information_measures(xp, dtype, split_inputs, name, layout, reduction):
    rng = rng_for(name, layout)
    shape, axis = CLASS_AXIS_LAYOUTS[layout]
    p = random_distributions(rng, shape, axis)
    # a zero probability in p (0 log 0 = 0), renormalised
    first = (0,) * (len(shape) - 1)
    p[(*first[:axis], 0, *first[axis:])] = 0.0
    p = p / np.sum(p, axis=axis, keepdims=True)
    q = random_distributions(rng, shape, axis)
    arrays = (p,) if name == "entropy" else (p, q)
    core, ref = split_inputs(*arrays, axis=axis)
    check_loss(xp, dtype, name, core, ref, reduction, batch_shape(shape, axis))


# --- Extreme inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize(
    "variant", ["softmax_cross_entropy", "softmax_focal_loss", "poly1_cross_entropy"]
)
def test_extreme_logits_softmax_family(
    xp, dtype, split_inputs, variant, label_smoothing, reduction
):
    """Logits of +-1e4 (exact in float16): finite losses, equal to the reference."""
    core, ref = split_inputs(EXTREME_LOGITS, EXTREME_INDEX, label_smoothing=label_smoothing)
    result = check_loss(xp, dtype, variant, core, ref, reduction, (4,))
    assert np.all(np.isfinite(to_numpy(result)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("variant", ["sigmoid_cross_entropy", "sigmoid_focal_loss"])
def test_extreme_logits_sigmoid_family(xp, dtype, split_inputs, variant, reduction):
    logits = np.array([[1e4, -1e4, 1e4, -1e4, 0.0], [-1e4, 1e4, 30.0, -30.0, 1e4 - 8.0]])
    targets = np.array([[1.0, 0.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 0.0, 0.25]])
    core, ref = split_inputs(logits, targets)
    result = check_loss(xp, dtype, variant, core, ref, reduction, logits.shape)
    assert np.all(np.isfinite(to_numpy(result)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_neg_inf_logits_under_zero_targets(xp, dtype, split_inputs, kind, reduction):
    """A -inf logit (a masked class) under a zero target contributes 0, not NaN."""
    logits = np.array([[-np.inf, 1.0, 0.5, -np.inf, 2.0], [0.0, -np.inf, 0.0, 1.0, -1.0]])
    if kind == "index":
        targets = np.array([1, 4])
    else:
        targets = np.array([[0.0, 0.5, 0.25, 0.0, 0.25], [0.5, 0.0, 0.25, 0.25, 0.0]])
    core, ref = split_inputs(logits, targets)
    result = check_loss(xp, dtype, "softmax_cross_entropy", core, ref, reduction, (2,))
    assert np.all(np.isfinite(to_numpy(result)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_zero_probabilities_without_clip(xp, dtype, split_inputs, reduction):
    """categorical_cross_entropy(epsilon=None): q == 0 under a zero target contributes 0."""
    probs = np.array([[0.0, 0.5, 0.25, 0.0, 0.25], [0.25, 0.0, 0.5, 0.25, 0.0]])
    targets = np.array([[0.0, 1.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.25, 0.25, 0.0]])
    core, ref = split_inputs(probs, targets, epsilon=None)
    result = check_loss(xp, dtype, "categorical_cross_entropy", core, ref, reduction, (2,))
    assert np.all(np.isfinite(to_numpy(result)))


BINARY_EDGE_CASES = {  # option -> (targets for probs [0, 1, 0, 1, 0.5], options)
    "default": (np.array([1.0, 1.0, 0.0, 1.0, 0.0]), {}),
    "clip=2**-16": (np.array([1.0, 0.0, 0.0, 1.0, 1.0]), {"epsilon": 2.0**-16}),
    "torch": (np.array([1.0, 0.0, 0.0, 1.0, 1.0]), {"epsilon": None, "log_floor": -100.0}),
}


# torch's way (no clip, logs floored at -100) takes log(0) = -inf first: NumPy warns, rightly
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", list(BINARY_EDGE_CASES))
def test_binary_cross_entropy_at_zero_and_one(xp, dtype, split_inputs, option, reduction):
    """p exactly 0 or 1: the clip or torch's log floor of -100 keeps the loss finite.

    With the default epsilon=1e-7 the upper bound 1 - 1e-7 is not a float32 number (the core
    clips at float32's 1 - 2**-23, as Keras), so p = 1 is only paired with t = 1 there; the
    exact bounds of epsilon=2**-16 test both ends.
    """
    probs = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    targets, options = BINARY_EDGE_CASES[option]
    core, ref = split_inputs(probs, targets, **options)
    result = check_loss(xp, dtype, "binary_cross_entropy", core, ref, reduction, (5,))
    assert np.all(np.isfinite(to_numpy(result)))
