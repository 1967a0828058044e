"""The TensorFlow adapter's third pass towards native speed: what each path computes, and that it
is taken (op counts, HLO and allocator peaks do not depend on the machine's load).

* eager ``sparse_softmax_cross_entropy_with_logits`` under one first-order tape on a CPU is
  TensorFlow's kernel alone (it checks the labels itself; an out-of-range label still raises
  the contract's error);
* under XLA the sparse backward adds the one-hot inside the softmax's fusion (no scatter);
* ``tf.function`` dense forward+backward peaks at the kept log-softmax and the gradient;
* the eager range check of the sigmoid's labels is one reduction.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from tf_op_log import executed_ops  # noqa: E402
from xentropy.backends.tensorflow import nn  # noqa: E402

from xentropy.errors import ClassIndexOutOfRange, ValueOutOfRange  # noqa: E402


def _sparse_inputs(n: int = 64, c: int = 10) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(7)
    logits = tf.constant(rng.standard_normal((n, c)).astype(np.float32) * 3)
    return logits, tf.constant(rng.integers(0, c, n))


def _loss_and_grad(fn, logits, labels):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_mean(fn(labels=labels, logits=logits))
    return loss, tape.gradient(loss, logits)


def test_eager_sparse_under_one_tape_is_the_kernel_alone():
    logits, labels = _sparse_inputs()
    ours = _loss_and_grad(nn.sparse_softmax_cross_entropy_with_logits, logits, labels)
    native = _loss_and_grad(tf.nn.sparse_softmax_cross_entropy_with_logits, logits, labels)
    np.testing.assert_array_equal(ours[0].numpy(), native[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), native[1].numpy())
    ops = executed_ops(
        lambda: _loss_and_grad(nn.sparse_softmax_cross_entropy_with_logits, logits, labels)
    )
    assert "SparseSoftmaxCrossEntropyWithLogits" in ops
    assert not {"Min", "Max", "Identity", "IdentityN"} & set(ops)


@pytest.mark.parametrize("bad", [[0, 10], [-1, 3]])
def test_eager_sparse_kernel_path_keeps_the_contracts_error(bad):
    logits = tf.zeros([2, 10])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        with pytest.raises(ClassIndexOutOfRange) as caught:
            nn.sparse_softmax_cross_entropy_with_logits(tf.constant(bad), logits)
    assert isinstance(caught.value, tf.errors.InvalidArgumentError)
    assert isinstance(caught.value, ValueError)
    assert str(bad[1] if bad[1] >= 10 else bad[0]) in str(caught.value)


def test_xla_sparse_few_classes_has_no_scatter_and_keeps_nan_rows():
    logits, labels = _sparse_inputs(8, 4)
    labels = tf.constant([0, 3, 4, -1, 2, 1, 0, 3])  # rows 2 and 3 out of range

    @tf.function(jit_compile=True, autograph=False)
    def run(logits, labels):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        return loss, tape.gradient(loss, logits)

    hlo = run.experimental_get_compiler_ir(logits, labels)(stage="optimized_hlo")
    assert " scatter(" not in hlo
    loss, grad = (v.numpy() for v in run(logits, labels))
    bad = np.array([False, False, True, True, False, False, False, False])
    assert np.isnan(loss[bad]).all() and np.isfinite(loss[~bad]).all()
    assert np.isnan(grad[bad]).all() and np.isfinite(grad[~bad]).all()
    good = np.flatnonzero(~bad)
    _, native = _loss_and_grad(
        tf.nn.sparse_softmax_cross_entropy_with_logits,
        tf.gather(logits, good),
        tf.gather(labels, good),
    )
    np.testing.assert_allclose(grad[good], native.numpy() * len(good), rtol=1e-5, atol=1e-6)


def _cpu_peak_mib(call) -> float | None:
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError:
        return None  # no allocator statistics on this build
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    for out in call():
        out.numpy()
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - base) / 2**20


def test_function_dense_backward_waits_for_the_forward():
    rng = np.random.default_rng(1)
    n, c = 2048, 1000  # 7.8 MiB per (N, C) float32 array
    logits = tf.constant(rng.standard_normal((n, c)).astype(np.float32))
    labels = tf.nn.softmax(tf.constant(rng.standard_normal((n, c)).astype(np.float32)))

    @tf.function(autograph=False)
    def run(logits, labels):
        return _loss_and_grad(nn.softmax_cross_entropy_with_logits, logits, labels)

    run(logits, labels)
    peak = _cpu_peak_mib(lambda: run(logits, labels))
    if peak is None:
        pytest.skip("TensorFlow keeps no allocator statistics on the CPU")
    array_mib = n * c * 4 / 2**20
    # the kept log-softmax and the gradient (the forward's product is freed before the backward)
    assert peak <= 2.2 * array_mib, peak
    loss, grad = run(logits, labels)
    native = _loss_and_grad(tf.nn.softmax_cross_entropy_with_logits, logits, labels)
    np.testing.assert_allclose(loss.numpy(), native[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), native[1].numpy(), rtol=1e-5, atol=1e-9)


def test_eager_sigmoid_label_check_is_one_reduction():
    x = tf.constant(np.linspace(-3, 3, 64, dtype=np.float32))
    t = tf.constant(np.r_[np.zeros(32), np.ones(31), -0.0].astype(np.float32))
    ops = executed_ops(lambda: nn.sigmoid_cross_entropy_with_logits(labels=t[:-1], logits=x[:-1]))
    assert ops.count("Max") == 1 and "Min" not in ops and "IsNan" not in ops
    # -0.0 fails the bit test, and the full check then accepts it
    np.testing.assert_allclose(
        nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x).numpy(),
        tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x).numpy(),
        rtol=1e-6,
    )
    for bad in (1.5, -0.5, float("nan"), float("inf")):
        labels = tf.tensor_scatter_nd_update(t, [[3]], [bad])
        with pytest.raises(ValueOutOfRange):
            nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=x)
