"""``xentropy.class_weights`` against the documented example and direct formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference
from conftest import to_numpy
from tolerances import assert_close

import xentropy
from xentropy.ops import is_lazy

DOC_COUNTS = [1000, 2300, 20310, 6700]
SCHEMES = ("inverse", "log_inverse", "effective_number")


def test_documented_log_inverse_example(to_backend):
    """docs/semantics.md: counts [1000, 2300, 20310, 6700] -> ~[3.41, 2.57, 1.00, 1.50],
    normalised ~[1.00, 0.755, 0.293, 0.442] (the documented figures are truncated)."""
    total = sum(DOC_COUNTS)
    expected = [max(math.log(total / n), 1.0) for n in DOC_COUNTS]
    expected_normalised = [w / max(expected) for w in expected]
    np.testing.assert_allclose(expected, [3.41, 2.57, 1.00, 1.50], atol=0.01)
    np.testing.assert_allclose(expected_normalised, [1.00, 0.755, 0.293, 0.442], atol=0.001)

    counts = to_backend(np.array(DOC_COUNTS))
    weights = xentropy.class_weights(counts, scheme="log_inverse")
    normalised = xentropy.class_weights(counts, scheme="log_inverse", normalize=True)
    np.testing.assert_allclose(to_numpy(weights), expected, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(normalised), expected_normalised, rtol=1e-6)


def test_sequence_counts_are_accepted():
    expected = [sum(DOC_COUNTS) / n for n in DOC_COUNTS]
    np.testing.assert_allclose(np.asarray(xentropy.class_weights(DOC_COUNTS)), expected)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_against_reference(xp, dtype, to_backend, scheme, normalize):
    """Float counts in each dtype: the reference on the dtype-rounded counts, same dtype out."""
    counts = np.array([3.0, 120.0, 47.0, 1000.0, 9.0])
    weights = xentropy.class_weights(to_backend(counts, dtype), scheme=scheme, normalize=normalize)
    expected = reference.class_weights(
        counts.astype(dtype).astype(np.float64), scheme=scheme, normalize=normalize
    )
    assert weights.dtype == getattr(xp, dtype)
    assert tuple(weights.shape) == counts.shape
    assert_close(to_numpy(weights), expected, dtype)


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999, 0.9999])
def test_effective_number_direct_formula(to_backend, beta):
    """Cui et al. 2019: effective number E_n = (1 - beta**n) / (1 - beta), weight 1 / E_n,
    rescaled to sum to the number of classes (beta = 0 gives equal weights)."""
    counts = [5, 50, 500, 5000]
    inverse_effective = [(1.0 - beta) / (1.0 - beta**n) for n in counts]
    scale = len(counts) / math.fsum(inverse_effective)
    expected = [w * scale for w in inverse_effective]
    weights = to_numpy(
        xentropy.class_weights(to_backend(np.array(counts)), scheme="effective_number", beta=beta)
    )
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    np.testing.assert_allclose(np.sum(weights), len(counts), rtol=1e-6)
    if beta == 0.0:
        np.testing.assert_allclose(weights, np.ones(len(counts)), rtol=1e-6)


def test_inverse_weights_balance_the_classes(to_backend):
    """inverse: weight * count is the same (the total) for every class."""
    counts = np.array([7, 70, 700, 1])
    weights = to_numpy(xentropy.class_weights(to_backend(counts), scheme="inverse"))
    np.testing.assert_allclose(weights * counts, np.full(4, counts.sum()), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"scheme": "sqrt_inverse"}, "sqrt_inverse"),
        ({"scheme": "effective_number", "beta": 1.0}, "beta"),
        ({"scheme": "effective_number", "beta": -0.5}, "beta"),
    ],
    ids=["unknown-scheme", "beta=1", "beta=-0.5"],
)
def test_bad_options(to_backend, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        xentropy.class_weights(to_backend(np.array(DOC_COUNTS)), **kwargs)


@pytest.mark.parametrize(
    ("counts", "pattern"),
    [([10, 0, 5], "counts"), ([10, -1, 5], "counts"), ([[1, 2], [3, 4]], r"\(2, 2\)")],
    ids=["zero-count", "negative-count", "2-d"],
)
def test_bad_counts(to_backend, counts, pattern):
    counts = to_backend(np.array(counts))
    if is_lazy(counts) and counts.ndim == 1:
        # the values of lazy (Dask) counts are not read: every weight is NaN instead
        assert np.all(np.isnan(to_numpy(xentropy.class_weights(counts))))
        return
    with pytest.raises(ValueError, match=pattern):
        xentropy.class_weights(counts)
