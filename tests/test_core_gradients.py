"""``xentropy.value_and_grad`` against float64 central finite differences of the reference.

In float64 the analytic gradient must match ``reference.numerical_grad`` of the reference loss
(gradcheck-style); in float32 / float16 it must match the same float64 finite-difference gradient,
evaluated on the dtype-rounded inputs, within the gradient tolerance of the dtype.
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
    FEW_OPTIONS,
    SIGMOID_FAMILY_OPTIONS,
    random_distributions,
    rng_for,
    softmax_cases,
    softmax_options,
    softmax_sample,
    to_numpy,
)
from tolerances import FINITE_DIFFERENCE_TOLERANCE, assert_close

import xentropy

REDUCTIONS = reference.REDUCTIONS


def check_gradient(xp, dtype, name, core, ref, reduction, *, wrt=0, tol=None):
    """Compare the value and gradient of ``value_and_grad(xentropy.<name>)`` with the reference:
    the value directly, the gradient with a float64 finite difference wrt argument ``wrt``."""
    (args, kwargs), (ref_args, ref_kwargs) = core, ref
    fn = getattr(xentropy, name)
    value, grad = xentropy.value_and_grad(fn)(*args, **kwargs, reduction=reduction)
    ref_fn = getattr(reference, name)

    def loss_of(x):
        moved = list(ref_args)
        moved[wrt] = x
        return ref_fn(*moved, **ref_kwargs, reduction=reduction)

    expected_grad = reference.numerical_grad(loss_of, ref_args[wrt])
    assert grad.dtype == getattr(xp, dtype)
    assert tuple(grad.shape) == tuple(args[wrt].shape)
    plain = fn(*args, **kwargs, reduction=reduction)
    np.testing.assert_array_equal(to_numpy(value), to_numpy(plain))
    assert_close(to_numpy(value), loss_of(ref_args[wrt]), dtype, msg=f"{name} value")
    rtol, atol = tol if tol is not None else (None, None)
    assert_close(
        to_numpy(grad), expected_grad, dtype, rtol=rtol, atol=atol, grad=True, msg=f"{name} grad"
    )


def _with_reductions(cases):
    """Each case with reductions "none" and "mean"; the plain and the all-options cases with
    every reduction (a reduction scales the gradient the same way whatever the options)."""
    for case in cases:
        option = case.values[-1]
        everything = option in ("plain", "all", *FEW_OPTIONS)
        for reduction in REDUCTIONS if everything else ("none", "mean"):
            yield pytest.param(*case.values, reduction, id=f"{case.id}-{reduction}")


def _gradient_softmax_cases():
    """Every option set on (N, C); the common ones on (N, C, d) with axis=1."""
    for case in softmax_cases():
        _, layout, _, option = case.values
        if layout == "NC" or (layout == "NCd" and option in FEW_OPTIONS):
            yield case


def _gradient_elementwise_cases(kinds=("soft", "hard")):
    for variant, options in SIGMOID_FAMILY_OPTIONS.items():
        for kind in kinds:
            for option in options:
                yield pytest.param(variant, kind, option, id=f"{variant}-{kind}-{option}")


def _elementwise_sample(variant, kind, option):
    rng = rng_for("grad", variant, kind, option)
    shape = ELEMENTWISE_SHAPES["NC"]
    if variant == "binary_cross_entropy":
        prediction = rng.uniform(0.01, 0.99, size=shape)
        # keep clear of the kinks of the clip at epsilon=0.05 (gradient 0 outside [0.05, 0.95])
        prediction = np.where(np.abs(prediction - 0.05) < 0.01, 0.07, prediction)
        prediction = np.where(np.abs(prediction - 0.95) < 0.01, 0.93, prediction)
    else:
        prediction = rng.normal(scale=2.0, size=shape)
    targets = rng.random(shape) if kind == "soft" else (rng.random(shape) < 0.5) * 1.0
    return prediction, targets


def _information_sample(name, layout):
    rng = rng_for("grad", name, layout)
    shape, axis = CLASS_AXIS_LAYOUTS[layout]
    return random_distributions(rng, shape, axis), random_distributions(rng, shape, axis), axis


# --- float64: analytic gradient == finite differences -----------------------------------------


@pytest.mark.dtypes("float64")
@pytest.mark.parametrize(
    ("variant", "layout", "kind", "option", "reduction"),
    list(_with_reductions(_gradient_softmax_cases())),
)
def test_softmax_family_finite_differences(
    xp, dtype, split_inputs, variant, layout, kind, option, reduction
):
    prediction, targets, axis = softmax_sample(variant, layout, kind, option)
    core, ref = split_inputs(prediction, targets, axis=axis, **softmax_options(variant, option))
    check_gradient(xp, dtype, variant, core, ref, reduction, tol=FINITE_DIFFERENCE_TOLERANCE)


@pytest.mark.dtypes("float64")
@pytest.mark.parametrize(
    ("variant", "kind", "option", "reduction"),
    list(_with_reductions(_gradient_elementwise_cases())),
)
def test_elementwise_family_finite_differences(
    xp, dtype, split_inputs, variant, kind, option, reduction
):
    prediction, targets = _elementwise_sample(variant, kind, option)
    core, ref = split_inputs(prediction, targets, **SIGMOID_FAMILY_OPTIONS[variant][option])
    check_gradient(xp, dtype, variant, core, ref, reduction, tol=FINITE_DIFFERENCE_TOLERANCE)


@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["NC", "NCd"])
@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "cross_entropy"])
def test_information_measures_finite_differences(xp, dtype, split_inputs, name, layout, reduction):
    """Gradient wrt ``p`` for entropy, wrt ``q`` (the second argument) for the other two."""
    p, q, axis = _information_sample(name, layout)
    arrays, wrt = ((p,), 0) if name == "entropy" else ((p, q), 1)
    core, ref = split_inputs(*arrays, axis=axis)
    check_gradient(xp, dtype, name, core, ref, reduction, wrt=wrt, tol=FINITE_DIFFERENCE_TOLERANCE)


# --- float32 / float16: analytic gradient == float64 reference within the dtype's tolerance ----

LOW_PRECISION = pytest.mark.dtypes("float16", "float32")


def _low_precision_softmax_cases():
    for case in softmax_cases():
        _, layout, _, option = case.values
        if layout == "NC" and option in (*FEW_OPTIONS, "class_weight"):
            yield case


@LOW_PRECISION
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(
    ("variant", "layout", "kind", "option"), list(_low_precision_softmax_cases())
)
def test_softmax_family_low_precision(
    xp, dtype, split_inputs, variant, layout, kind, option, reduction
):
    prediction, targets, axis = softmax_sample(variant, layout, kind, option)
    core, ref = split_inputs(prediction, targets, axis=axis, **softmax_options(variant, option))
    check_gradient(xp, dtype, variant, core, ref, reduction)


@LOW_PRECISION
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(("variant", "kind", "option"), list(_gradient_elementwise_cases(["soft"])))
def test_elementwise_family_low_precision(
    xp, dtype, split_inputs, variant, kind, option, reduction
):
    prediction, targets = _elementwise_sample(variant, kind, option)
    core, ref = split_inputs(prediction, targets, **SIGMOID_FAMILY_OPTIONS[variant][option])
    check_gradient(xp, dtype, variant, core, ref, reduction)


@LOW_PRECISION
@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "cross_entropy"])
def test_information_measures_low_precision(xp, dtype, split_inputs, name):
    p, q, axis = _information_sample(name, "NC")
    arrays, wrt = ((p,), 0) if name == "entropy" else ((p, q), 1)
    core, ref = split_inputs(*arrays, axis=axis)
    check_gradient(xp, dtype, name, core, ref, "none", wrt=wrt)


# --- extreme logits: finite differences are useless there, the analytic formula is exact ------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_softmax_gradient_at_extreme_logits(xp, dtype, split_inputs, label_smoothing, reduction):
    """At +-1e4 the gradient is finite and equals ``softmax * sum(a) - a`` of the reference."""
    core, ref = split_inputs(EXTREME_LOGITS, EXTREME_INDEX, label_smoothing=label_smoothing)
    (args, kwargs), (ref_args, ref_kwargs) = core, ref
    _, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        *args, **kwargs, reduction=reduction
    )
    expected = reference.softmax_cross_entropy_grad(*ref_args, **ref_kwargs, reduction=reduction)
    grad = to_numpy(grad)
    assert np.all(np.isfinite(grad))
    assert_close(grad, expected, dtype, grad=True)
