"""The TensorFlow adapter's fused paths: what they compute, and that they are taken.

* eager ``sparse_softmax_cross_entropy_with_logits`` under a tape: TensorFlow's fused kernel,
  which checks the labels' range itself (a label out of range falls back to the core's checks and
  their error), so loss and gradient are ``tf.nn``'s bit for bit, in fewer ops;
* the sigmoid under XLA keeps ``exp(-|x|)`` for the backward: one exponential in the HLO of
  forward+backward, and values within rounding of ``tf.nn`` and of a float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from tf_op_log import executed_ops  # noqa: E402
from xentropy.backends.tensorflow import nn  # noqa: E402


def _logits_and_labels(n: int = 64, c: int = 10) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((n, c)).astype(np.float32) * 3
    return tf.constant(logits), tf.constant(rng.integers(0, c, n))


def _loss_and_grad(fn, logits, labels, weights):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(fn(labels=labels, logits=logits) * weights)
    return loss, tape.gradient(loss, logits)


def test_eager_sparse_gradient_is_the_fused_kernels_bit_for_bit():
    logits, labels = _logits_and_labels()
    weights = tf.constant(np.linspace(0.5, 2.0, 64, dtype=np.float32))  # a non-uniform cotangent
    ours = _loss_and_grad(nn.sparse_softmax_cross_entropy_with_logits, logits, labels, weights)
    native = _loss_and_grad(tf.nn.sparse_softmax_cross_entropy_with_logits, logits, labels, weights)
    np.testing.assert_array_equal(ours[0].numpy(), native[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), native[1].numpy())
    ops = executed_ops(
        lambda: _loss_and_grad(nn.sparse_softmax_cross_entropy_with_logits, logits, labels, weights)
    )
    assert "SparseSoftmaxCrossEntropyWithLogits" in ops
    assert "LogSoftmax" not in ops and "OneHot" not in ops


@pytest.mark.parametrize("label_dtype", [tf.uint8, tf.int16])
def test_eager_sparse_kernel_takes_other_index_dtypes(label_dtype):
    logits, labels = _logits_and_labels(16, 5)
    ones = tf.ones([16])
    ours = _loss_and_grad(
        nn.sparse_softmax_cross_entropy_with_logits, logits, tf.cast(labels, label_dtype), ones
    )
    native = _loss_and_grad(tf.nn.sparse_softmax_cross_entropy_with_logits, logits, labels, ones)
    np.testing.assert_array_equal(ours[1].numpy(), native[1].numpy())


def test_without_a_tape_or_validation_the_core_runs():
    logits, labels = _logits_and_labels()
    ops = executed_ops(lambda: nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    assert "SparseSoftmaxCrossEntropyWithLogits" not in ops
    bad = tf.constant([0, 3])  # out of range for 3 classes: NaN rows, not the kernel's error
    x = tf.zeros([2, 3])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = nn.sparse_softmax_cross_entropy_with_logits(bad, x, validate=False)
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(loss.numpy()[0]) and np.isnan(loss.numpy()[1])
    assert np.isfinite(grad[0]).all() and np.isnan(grad[1]).all()


def test_eager_sparse_second_order_is_exact():
    logits, labels = _logits_and_labels(8, 4)
    with tf.GradientTape() as outer:
        outer.watch(logits)
        with tf.GradientTape() as inner:
            inner.watch(logits)
            loss = tf.reduce_sum(nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grad = inner.gradient(loss, logits)
        total = tf.reduce_sum(grad * grad)
    ours = outer.gradient(total, logits).numpy()
    with tf.GradientTape() as outer:
        outer.watch(logits)
        with tf.GradientTape() as inner:
            inner.watch(logits)
            p = tf.nn.softmax(logits)
            loss = tf.reduce_sum(-tf.math.log(tf.gather(p, labels, batch_dims=1)))
        grad = inner.gradient(loss, logits)
        total = tf.reduce_sum(grad * grad)
    np.testing.assert_allclose(ours, outer.gradient(total, logits).numpy(), rtol=1e-5, atol=1e-6)


def test_xla_sigmoid_keeps_one_exponential():
    rng = np.random.default_rng(5)
    x64 = rng.standard_normal(4096) * 4
    x64[:4] = [0.0, -0.0, 30.0, -30.0]
    t64 = (rng.random(4096) < 0.5).astype(np.float64)
    t64[4:8] = [0.25, 0.5, 1.0, 0.0]
    x, t = tf.constant(x64, tf.float32), tf.constant(t64, tf.float32)

    def loss_and_grad(fn):
        def run(x, t):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_mean(fn(labels=t, logits=x))
            return loss, tape.gradient(loss, x)

        return tf.function(run, jit_compile=True, autograph=False)

    ours = loss_and_grad(nn.sigmoid_cross_entropy_with_logits)
    hlo = ours.experimental_get_compiler_ir(x, t)(stage="optimized_hlo")
    assert hlo.count(" exponential(") == 1
    loss, grad = (v.numpy() for v in ours(x, t))
    xr, tr = x.numpy().astype(np.float64), t.numpy().astype(np.float64)
    ref_loss = np.mean(np.maximum(xr, 0) - xr * tr + np.log1p(np.exp(-np.abs(xr))))
    ref_grad = (1 / (1 + np.exp(-xr)) - tr) / xr.size
    # sigma(x) - t cancels where sigma(x) is near t: a few float32 ulp of sigma, over n
    ulps = 4 * np.finfo(np.float32).eps / xr.size
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=ulps)
    native = [v.numpy() for v in loss_and_grad(tf.nn.sigmoid_cross_entropy_with_logits)(x, t)]
    np.testing.assert_allclose(grad, native[1], rtol=0, atol=ulps)
