"""NumPy's block kernels (``xentropy._numpy_blocks``) across block boundaries.

The benchmark shapes span hundreds of blocks, the other tests' small arrays one. Here the block
is shrunk to a few rows (or elements) that do not divide the array, so every kernel runs over
several full blocks and a partial last one; values and gradients must still match the float64
reference on the same inputs, non-finite logits included.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
from tolerances import assert_close

import xentropy
from xentropy import _numpy_blocks

# per-array block sizes in bytes: 3 float32 rows of 11 classes, or 37 float32 elements
BLOCK_BYTES = [3 * 11 * 4, 37 * 4]


@pytest.fixture(params=BLOCK_BYTES, ids=lambda b: f"block{b}B")
def small_blocks(request, monkeypatch):
    monkeypatch.setattr(_numpy_blocks, "BLOCK_BYTES", request.param)
    return request.param


def _logits(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32) * 4
    x.flat[::17] = -np.inf  # a class no row can pick: 0 * log 0 in the dense sum
    return x


def test_several_blocks_are_run(small_blocks):
    step, starts = _numpy_blocks.block_starts(29, 11 * 4)
    assert step < 29 and len(starts) > 2 and 29 % step != 0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sparse_softmax(small_blocks, reduction):
    rng = np.random.default_rng(0)
    x = _logits((29, 11), rng)
    x[:, 0] = np.maximum(x[:, 0], 0.0)  # the picked class stays finite
    y = np.zeros(29, dtype=np.int64)
    y[1::2] = rng.integers(1, 11, 14)
    y = np.where(np.isinf(x[np.arange(29), y]), 0, y)
    loss = xentropy.softmax_cross_entropy(x, y, reduction=reduction)
    assert_close(loss, reference.softmax_cross_entropy(x, y, reduction=reduction), "float32")
    if reduction == "mean":
        _, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(x, y)
        assert_close(grad, reference.softmax_cross_entropy_grad(x, y), "float32", grad=True)


def test_dense_softmax(small_blocks):
    rng = np.random.default_rng(1)
    x = _logits((29, 11), rng)
    t = rng.random((29, 11)).astype(np.float32)
    t[np.isinf(x)] = 0.0
    t /= t.sum(axis=-1, keepdims=True)
    loss, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(x, t)
    assert_close(loss, reference.softmax_cross_entropy(x, t), "float32")
    assert_close(grad, reference.softmax_cross_entropy_grad(x, t), "float32", grad=True)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid(small_blocks, reduction):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1001).astype(np.float32) * 8
    t = rng.random(1001).astype(np.float32)
    t[::5] = np.round(t[::5])
    loss = xentropy.sigmoid_cross_entropy(x, t, reduction=reduction)
    assert_close(loss, reference.sigmoid_cross_entropy(x, t, reduction=reduction), "float32")
    _, grad = xentropy.value_and_grad(xentropy.sigmoid_cross_entropy)(x, t)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    expected = (1.0 / (1.0 + np.exp(-x64)) - t64) / x.size  # d mean / dx = (sigmoid - t) / n
    assert_close(grad, expected, "float32", grad=True)
