"""Hypothesis properties of the core, on each core backend in float64.

Logits are drawn in [-1e4, 1e4] (Hypothesis favours the bounds, so +-1e4 appear often), class
counts from 2 to 6, batches from 1 to 6 examples. The "ci" profile (``CI`` set) is derandomised
and modest; ``HYPOTHESIS_PROFILE=long`` runs 2000 examples per property.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SOFTMAX_FAMILY, to_numpy
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xentropy

pytestmark = pytest.mark.dtypes("float64")

BOUND = 1e4
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size")


def finite_floats(low: float = -BOUND, high: float = BOUND):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def class_problems(draw, *, min_classes: int = 2):
    """(logits (N, C), class indices (N,), class weights (C,) or None, label smoothing)."""
    n = draw(st.integers(1, 6), label="N")
    c = draw(st.integers(min_classes, 6), label="C")
    logits = draw(hnp.arrays(np.float64, (n, c), elements=finite_floats()), label="logits")
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="labels")
    weight = draw(
        st.none() | hnp.arrays(np.float64, (c,), elements=finite_floats(0.0, 10.0)),
        label="class_weight",
    )
    smoothing = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]) | finite_floats(0.0, 1.0))
    return logits, labels, weight, smoothing


@st.composite
def distributions(draw, shape):
    """Rows of probabilities (zeros allowed), as an (N, C) float64 array."""
    raw = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0) | st.just(0.0)))
    raw[:, 0] += 1e-3  # no all-zero row
    return raw / np.sum(raw, axis=-1, keepdims=True)


def atol_for(logits: np.ndarray, weight: np.ndarray | None) -> float:
    """Absolute rounding budget of a float64 softmax-family loss: each ``z_c - lse`` carries an
    error of about ``eps * max|z|``, weighted by the class weights (the relative budget alone
    fails where two algebraically equal forms cancel differently to a tiny loss)."""
    total_weight = logits.shape[-1] if weight is None else float(np.sum(weight))
    return 1e-14 * (1.0 + total_weight) * (1.0 + float(np.max(np.abs(logits))))


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return (labels[:, None] == np.arange(num_classes)).astype(np.float64)


def options(to_backend, weight, smoothing):
    return {
        "class_weight": None if weight is None else to_backend(weight),
        "label_smoothing": smoothing,
    }


@given(problem=class_problems(), name=st.sampled_from(SOFTMAX_FAMILY[:1] + SOFTMAX_FAMILY[2:]))
def test_loss_is_non_negative(to_backend, problem, name):
    """Softmax CE, focal and poly-1 (epsilon >= 0) from logits: loss >= 0 for valid targets."""
    logits, labels, weight, smoothing = problem
    loss = getattr(xentropy, name)(
        to_backend(logits),
        to_backend(labels),
        reduction="none",
        **options(to_backend, weight, smoothing),
    )
    assert np.all(to_numpy(loss) >= 0.0)


@given(
    probs=hnp.arrays(np.float64, (3, 4), elements=st.floats(0.0, 1.0)),
    targets=hnp.arrays(np.float64, (3, 4), elements=st.floats(0.0, 1.0)),
    logits=hnp.arrays(np.float64, (3, 4), elements=finite_floats()),
)
def test_probability_losses_are_non_negative(to_backend, probs, targets, logits):
    """BCE, categorical CE and sigmoid CE / focal with targets in [0, 1]: loss >= 0."""
    losses = [
        xentropy.binary_cross_entropy(to_backend(probs), to_backend(targets), reduction="none"),
        xentropy.categorical_cross_entropy(
            to_backend(probs), to_backend(targets), reduction="none"
        ),
        xentropy.sigmoid_cross_entropy(to_backend(logits), to_backend(targets), reduction="none"),
        xentropy.sigmoid_focal_loss(to_backend(logits), to_backend(targets), reduction="none"),
    ]
    for loss in losses:
        assert np.all(to_numpy(loss) >= 0.0)


@given(problem=class_problems(), shift=hnp.arrays(np.float64, (6, 1), elements=finite_floats()))
def test_softmax_shift_invariance(to_backend, problem, shift):
    """Adding a constant to every logit of a row leaves softmax CE unchanged (up to the rounding
    of the shifted logits, at most 2 ulp of 2e4 per logit)."""
    logits, labels, weight, smoothing = problem
    opts = options(to_backend, weight, smoothing)
    shifted = logits + shift[: logits.shape[0]]
    plain = xentropy.softmax_cross_entropy(
        to_backend(logits), to_backend(labels), reduction="none", **opts
    )
    moved = xentropy.softmax_cross_entropy(
        to_backend(shifted), to_backend(labels), reduction="none", **opts
    )
    atol = atol_for(shifted, weight)
    np.testing.assert_allclose(to_numpy(moved), to_numpy(plain), rtol=1e-9, atol=atol)


@given(problem=class_problems(), name=st.sampled_from(SOFTMAX_FAMILY))
def test_sparse_equals_dense_one_hot(to_backend, problem, name):
    """Class indices == their one-hot probabilities, with class weights and label smoothing, for
    ``none`` and ``sum`` (``mean`` differs by design once class weights are given: the sparse
    form divides by the summed target weight, the dense form by N)."""
    logits, labels, weight, smoothing = problem
    if name == "categorical_cross_entropy":
        logits = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
        logits = logits / np.sum(logits, axis=-1, keepdims=True)
    dense = one_hot(labels, logits.shape[1])
    opts = options(to_backend, weight, smoothing)
    for reduction in ("none", "sum") if weight is not None else REDUCTIONS:
        fn = getattr(xentropy, name)
        sparse_loss = fn(to_backend(logits), to_backend(labels), reduction=reduction, **opts)
        dense_loss = fn(to_backend(logits), to_backend(dense), reduction=reduction, **opts)
        np.testing.assert_allclose(
            to_numpy(dense_loss),
            to_numpy(sparse_loss),
            rtol=1e-9,
            atol=atol_for(logits, weight),
            err_msg=reduction,
        )


@given(
    logits=hnp.arrays(np.float64, (4, 3), elements=finite_floats()),
    targets=hnp.arrays(np.float64, (4, 3), elements=st.floats(0.0, 1.0)),
    smoothing=finite_floats(0.0, 1.0),
)
def test_sigmoid_symmetry(to_backend, logits, targets, smoothing):
    """sigmoid_cross_entropy(z, t) == sigmoid_cross_entropy(-z, 1 - t)."""
    a = xentropy.sigmoid_cross_entropy(
        to_backend(logits), to_backend(targets), label_smoothing=smoothing, reduction="none"
    )
    b = xentropy.sigmoid_cross_entropy(
        to_backend(-logits), to_backend(1.0 - targets), label_smoothing=smoothing, reduction="none"
    )
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-9, atol=1e-12)


@given(
    probs=hnp.arrays(np.float64, (4, 3), elements=st.floats(0.0, 1.0)),
    targets=hnp.arrays(np.float64, (4, 3), elements=st.floats(0.0, 1.0)),
)
def test_binary_symmetry(to_backend, probs, targets):
    """binary_cross_entropy(p, t) == binary_cross_entropy(1 - p, 1 - t) (clip is symmetric)."""
    a = xentropy.binary_cross_entropy(to_backend(probs), to_backend(targets), reduction="none")
    b = xentropy.binary_cross_entropy(
        to_backend(1.0 - probs), to_backend(1.0 - targets), reduction="none"
    )
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-7, atol=1e-12)


@given(problem=class_problems(), ignore=st.booleans())
def test_softmax_gradient_rows_sum_to_zero(to_backend, problem, ignore):
    """d loss_i / d z_i = p_i sum(a_i) - a_i sums to 0 over the classes, whatever the options."""
    logits, labels, weight, smoothing = problem
    opts = options(to_backend, weight, smoothing)
    if ignore:
        labels = labels.copy()
        labels[0] = -100
        opts["ignore_index"] = -100
    _, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        to_backend(logits), to_backend(labels), reduction="none", **opts
    )
    total_weight = logits.shape[-1] if weight is None else float(np.sum(weight))
    row_sums = np.sum(to_numpy(grad), axis=-1)
    np.testing.assert_allclose(row_sums, 0.0, atol=1e-14 * (1.0 + total_weight))


@given(problem=class_problems(), name=st.sampled_from(SOFTMAX_FAMILY), ignore=st.booleans())
def test_mean_is_sum_over_total_weight(to_backend, problem, name, ignore):
    """mean == sum / sum_i w[y_i] over non-ignored examples (torch's weighted mean)."""
    logits, labels, weight, smoothing = problem
    if name == "categorical_cross_entropy":
        logits = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
        logits = logits / np.sum(logits, axis=-1, keepdims=True)
    opts = options(to_backend, weight, smoothing)
    if ignore:
        labels = labels.copy()
        labels[-1] = -100
        opts["ignore_index"] = -100
    kept = labels[labels != -100]
    total_weight = float(len(kept) if weight is None else np.sum(weight[kept]))
    assume(total_weight > 1e-3)
    fn = getattr(xentropy, name)
    total = to_numpy(fn(to_backend(logits), to_backend(labels), reduction="sum", **opts))
    mean = to_numpy(fn(to_backend(logits), to_backend(labels), reduction="mean", **opts))
    np.testing.assert_allclose(mean, total / total_weight, rtol=1e-12, atol=1e-300)


@given(problem=class_problems())
def test_full_label_smoothing_is_uniform_target(to_backend, problem):
    """label_smoothing=1 is the cross entropy against the uniform distribution."""
    logits, labels, weight, _ = problem
    opts = options(to_backend, weight, 1.0)
    smoothed = xentropy.softmax_cross_entropy(
        to_backend(logits), to_backend(labels), reduction="none", **opts
    )
    uniform = np.full(logits.shape, 1.0 / logits.shape[1])
    opts["label_smoothing"] = 0.0
    against_uniform = xentropy.softmax_cross_entropy(
        to_backend(logits), to_backend(uniform), reduction="none", **opts
    )
    np.testing.assert_allclose(
        to_numpy(smoothed), to_numpy(against_uniform), rtol=1e-9, atol=atol_for(logits, weight)
    )


@given(data=st.data(), n=st.integers(1, 5), c=st.integers(2, 6))
def test_cross_entropy_is_entropy_plus_kl(to_backend, data, n, c):
    p = data.draw(distributions((n, c)), label="p")
    q = data.draw(distributions((n, c)), label="q")
    assume(np.all((p == 0) | (q > 1e-300)))  # H(p, q) is +inf where q == 0 < p
    h_pq = to_numpy(xentropy.cross_entropy(to_backend(p), to_backend(q)))
    h_p = to_numpy(xentropy.entropy(to_backend(p)))
    kl = to_numpy(xentropy.kl_divergence(to_backend(p), to_backend(q)))
    np.testing.assert_allclose(h_pq, h_p + kl, rtol=1e-9, atol=1e-9)


@given(
    problem=class_problems(),
    name=st.sampled_from(SOFTMAX_FAMILY[:1] + SOFTMAX_FAMILY[2:]),
    data=st.data(),
)
def test_batch_permutation_equivariance(to_backend, problem, name, data):
    """reduction="none": permuting the batch permutes the losses, bit for bit."""
    logits, labels, weight, smoothing = problem
    perm = np.asarray(data.draw(st.permutations(range(logits.shape[0])), label="perm"))
    opts = options(to_backend, weight, smoothing)
    fn = getattr(xentropy, name)
    loss = to_numpy(fn(to_backend(logits), to_backend(labels), reduction="none", **opts))
    permuted = fn(to_backend(logits[perm]), to_backend(labels[perm]), reduction="none", **opts)
    np.testing.assert_array_equal(to_numpy(permuted), loss[perm])
