"""Each framework's own gradient checker on every core operator, in float64, through each adapter.

* PyTorch: ``torch.autograd.gradcheck`` and ``gradgradcheck`` through
  ``xentropy.backends.torch._autograd.apply`` (the generic entry point of the torch dialect; a
  double backward recomputes the gradient by autograd of the core's exact forward).
* JAX: ``jax.test_util.check_grads(order=1, modes=["rev"])`` under ``jax.enable_x64`` through
  ``xentropy.backends.jax.apply_op``.
* TensorFlow: ``tf.test.compute_gradient`` (theoretical against numerical Jacobian) through
  ``xentropy.backends.tensorflow.apply_op``.

``LinearCrossEntropy`` is checked with respect to all three of its differentiated inputs (hidden
states, weight, bias) on each framework.

Inputs stay away from the clip points and kinks (probabilities in [0.05, 0.95], logits of moderate
size), so that finite differences are meaningful.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from scipy.special import log_softmax, softmax

from xentropy import ops

N, C, D = 3, 4, 5
WEIGHT = np.array([0.5, 2.0, 1.0, 1.5])
ALPHA = np.array([0.25, 0.5, 0.75, 1.0])


@dataclass(frozen=True)
class Case:
    id: str
    op: Any
    arrays: Callable[[np.random.Generator], tuple[Any, ...]]  # float64 NumPy (None: absent)

    def inputs(self) -> tuple[Any, ...]:
        return self.arrays(rng_for("gradient-checks", self.id))

    @property
    def positions(self) -> tuple[int, ...]:
        """The arrays the operator's backward differentiates (LinearCrossEntropy: hidden, weight
        and bias)."""
        return ops.op_gradient_positions(self.op, len(self.inputs()))


def logits(rng):
    return rng.normal(scale=1.5, size=(N, C))


def labels(rng):
    return np.array([0, 3, 1])


def distributions(rng):
    return softmax(rng.normal(size=(N, C)), axis=-1) * 0.9 + 0.1 / C  # entries >= 0.025


def probabilities(rng):
    return rng.uniform(0.05, 0.95, size=(N, C))


def soft_targets(rng):
    return rng.uniform(0.0, 1.0, size=(N, C))


CASES = [
    Case(
        "softmax-sparse",
        ops.SoftmaxCrossEntropy(ignore_index=2, label_smoothing=0.1),
        lambda r: (logits(r), np.array([0, 2, 3]), WEIGHT),
    ),
    Case(
        "softmax-dense",
        ops.SoftmaxCrossEntropy(label_smoothing=0.2, reduction="none"),
        lambda r: (logits(r), distributions(r), WEIGHT),
    ),
    Case(
        "categorical-sparse",
        ops.CategoricalCrossEntropy(label_smoothing=0.1),
        lambda r: (distributions(r), labels(r), WEIGHT),
    ),
    Case(
        "categorical-dense-normalize",
        ops.CategoricalCrossEntropy(normalize=True, reduction="none"),
        lambda r: (probabilities(r), distributions(r), None),
    ),
    Case(
        "sigmoid",
        ops.SigmoidCrossEntropy(label_smoothing=0.1, reduction="sum_over_batch_size"),
        lambda r: (logits(r), soft_targets(r), ALPHA * 4, WEIGHT),
    ),
    Case(
        "binary",
        ops.BinaryCrossEntropy(label_smoothing=0.1, reduction="none"),
        lambda r: (probabilities(r), soft_targets(r), WEIGHT),
    ),
    Case(
        "softmax-focal",
        ops.SoftmaxFocalLoss(gamma=2.0, label_smoothing=0.1),
        lambda r: (logits(r), labels(r), ALPHA, WEIGHT),
    ),
    Case(
        "sigmoid-focal",
        ops.SigmoidFocalLoss(gamma=2.0, alpha=0.25, reduction="none"),
        lambda r: (logits(r), soft_targets(r)),
    ),
    Case(
        "poly1",
        ops.Poly1CrossEntropy(epsilon=2.0, reduction="none"),
        lambda r: (logits(r), distributions(r), WEIGHT),
    ),
    Case(
        "entropy",
        ops.InformationMeasure(measure="entropy"),
        lambda r: (distributions(r),),
    ),
    Case(
        "kl_divergence",
        ops.InformationMeasure(measure="kl_divergence", reduction="mean"),
        lambda r: (distributions(r), distributions(r)),
    ),
    Case(
        "cross_entropy",
        ops.InformationMeasure(measure="cross_entropy"),
        lambda r: (distributions(r), distributions(r)),
    ),
    Case(
        "kl_div-batchmean",
        ops.PointwiseKLDivergence(reduction="batchmean"),
        lambda r: (log_softmax(logits(r), axis=-1), distributions(r), None),
    ),
    Case(
        "kl_div-log_target-generalized",
        ops.PointwiseKLDivergence(axis=-1, log_target=True, generalized=True),
        lambda r: (log_softmax(logits(r), axis=-1), np.log(distributions(r)), None),
    ),
    Case(
        "kl_div-probability_clip",
        ops.PointwiseKLDivergence(axis=-1, probability_clip=1e-7, reduction="sum"),
        lambda r: (probabilities(r), probabilities(r), None),
    ),
    Case(
        "nll",
        ops.NegativeLogLikelihood(ignore_index=1),
        lambda r: (log_softmax(logits(r), axis=-1), np.array([0, 1, 3]), WEIGHT),
    ),
    Case(
        "categorical-focal",
        ops.CategoricalFocalLoss(gamma=2.0, normalize=True, reduction="none"),
        lambda r: (probabilities(r), distributions(r), ALPHA, None),
    ),
    Case(
        "binary-focal",
        ops.BinaryFocalLoss(gamma=2.0, alpha=0.25),
        lambda r: (probabilities(r), soft_targets(r)),
    ),
    Case(
        "linear",
        ops.LinearCrossEntropy(chunk_size=3, softcap=5.0, z_loss=1e-2, label_smoothing=0.1),
        lambda r: (
            r.normal(size=(N, D)),
            r.normal(scale=0.5, size=(7, D)),
            np.array([0, 6, 3]),
            r.normal(scale=0.1, size=(7,)),
        ),
    ),
]
PARAMS = [pytest.param(case, id=case.id) for case in CASES]


def test_every_operator_is_covered():
    covered = {type(case.op).__name__ for case in CASES}
    operators = {
        name
        for name in ops.__all__
        if isinstance(getattr(ops, name), type) and name != "LossOperator" and name[0].isupper()
    }
    assert operators <= covered, operators - covered


# --- PyTorch -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return require_or_skip("torch")


@pytest.fixture(scope="module")
def autograd(torch):
    return require_or_skip("torch", "xentropy.backends.torch._autograd")


def torch_loss(torch, autograd, case: Case) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """(loss as a function of the differentiated inputs, those inputs), in float64."""
    arrays = [None if a is None else torch.asarray(a) for a in case.inputs()]
    positions = case.positions
    names = tuple(f"array{i}" for i in range(len(arrays)))
    differentiated = tuple(arrays[p].clone().requires_grad_(True) for p in positions)

    def loss(*xs):
        full = list(arrays)
        for position, x in zip(positions, xs, strict=True):
            full[position] = x
        return autograd.apply(case.op, names, *full)

    return loss, differentiated


@pytest.mark.parametrize("case", PARAMS)
def test_torch_gradcheck(torch, autograd, case):
    loss, inputs = torch_loss(torch, autograd, case)
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", PARAMS)
def test_torch_gradgradcheck(torch, autograd, case):
    loss, inputs = torch_loss(torch, autograd, case)
    assert torch.autograd.gradgradcheck(loss, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


# --- JAX ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax():
    return require_or_skip("jax")


@pytest.mark.parametrize("case", PARAMS)
def test_jax_check_grads(jax, case):
    jnp = require_or_skip("jax", "jax.numpy")
    xjax = require_or_skip("jax", "xentropy.backends.jax")
    check_grads = require_or_skip("jax", "jax.test_util").check_grads
    with jax.enable_x64(True):
        arrays = [None if a is None else jnp.asarray(a) for a in case.inputs()]
        positions = case.positions

        def loss(*differentiated):
            full = list(arrays)
            for position, x in zip(positions, differentiated, strict=True):
                full[position] = x
            return xjax.apply_op(case.op, *full)

        assert arrays[positions[0]].dtype == jnp.float64
        check_grads(loss, tuple(arrays[p] for p in positions), order=1, modes=["rev"])


@pytest.mark.parametrize("case", [p for p in PARAMS if p.id in ("softmax-sparse", "nll", "linear")])
def test_jax_vjp_takes_a_numpy_cotangent(jax, case):
    jnp = require_or_skip("jax", "jax.numpy")
    xjax = require_or_skip("jax", "xentropy.backends.jax")
    arrays = [None if a is None else jnp.asarray(a, dtype=jnp.float32) for a in case.inputs()]
    if isinstance(case.op, ops.LinearCrossEntropy):
        arrays[2] = jnp.asarray(case.inputs()[2])
    else:
        arrays[1] = jnp.asarray(case.inputs()[1])
    position = case.positions[0]

    def loss(x):
        full = list(arrays)
        full[position] = x
        return xjax.apply_op(case.op, *full)

    out, vjp = jax.vjp(loss, arrays[position])
    (grad,) = vjp(np.ones(out.shape, dtype=np.float32))
    (expected,) = vjp(jnp.ones_like(out))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(expected))


# --- TensorFlow --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf():
    return require_or_skip("tensorflow")


@pytest.mark.parametrize("case", PARAMS)
def test_tf_compute_gradient(tf, case):
    xtf = require_or_skip("tensorflow", "xentropy.backends.tensorflow")
    arrays = [None if a is None else tf.constant(a) for a in case.inputs()]
    positions = case.positions

    def loss(*xs):
        full = list(arrays)
        for position, x in zip(positions, xs, strict=True):
            full[position] = x
        return xtf.apply_op(case.op, *full)

    theoretical, numerical = tf.test.compute_gradient(
        loss, [arrays[p] for p in positions], delta=1e-6
    )
    for t, n in zip(theoretical, numerical, strict=True):
        assert t.dtype == np.float64
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-7)
