"""Hyperparameters as arrays: NumPy scalars, 0-d arrays, traced and differentiated values.

Every hyperparameter of every operator (``label_smoothing``, ``gamma``, ``alpha``, ``epsilon``,
``log_floor``, ``z_loss``, ``softcap``) may be

* a NumPy scalar or a constant 0-d array: stored as a Python number, same result as the number;
* a traced 0-d array (``jax.jit``, ``tf.function``) or one that is differentiated (``jax.grad``,
  a torch tensor with ``requires_grad``, a ``tf.Variable``): the loss equals the float64 NumPy
  loss of the number, and its derivative by the hyperparameter equals a float64 central finite
  difference of that NumPy loss (the derivative by the prediction equals the analytic one);
* out of range: an eager, readable array raises ``ValueError`` naming the argument; a traced one
  gives NaN, loss and gradient.

The JAX, torch and TF cases call the core's public functions, which route operators with array
hyperparameters to the framework's autodiff of ``op.forward`` (``ops.differentiable_loss``);
``test_differentiable_loss_*`` checks that exact path directly too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip

import xentropy
from xentropy import ops

RNG_SEED = 20261201


def categorical_focal_loss(probs: Any, targets: Any, *, validate: bool = True, **options: Any):
    """Keras's categorical focal loss on probabilities (an operator without public function)."""
    op = ops.CategoricalFocalLoss(**options)
    return ops.evaluate(op, probs, targets, None, None, prediction=probs, validate=validate)


def binary_focal_loss(probs: Any, targets: Any, *, validate: bool = True, **options: Any):
    """Keras's binary focal loss on probabilities (an operator without public function)."""
    op = ops.BinaryFocalLoss(**options)
    return ops.evaluate(op, probs, targets, prediction=probs, validate=validate)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _class_inputs(kind: str) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(RNG_SEED)
    logits = 2.0 * rng.normal(size=(6, 5))
    labels = np.array([0, 2, 4, 1, 3, 2])
    if kind == "logits-labels":
        return logits, labels
    if kind == "logits-probs":
        return logits, _softmax(rng.normal(size=(6, 5)))
    if kind == "probs-labels":
        return _softmax(logits), labels
    raise AssertionError(kind)


def _binary_inputs(kind: str) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(RNG_SEED + 1)
    targets = np.array([1.0, 0.0, 1.0, 0.3, 0.0, 1.0, 0.8, 0.0])
    if kind == "logits":
        return 2.0 * rng.normal(size=targets.shape), targets
    # probabilities on both sides of every clip and floor the cases use, none near a kink
    probs = np.array([0.02, 0.97, 0.1, 0.45, 0.6, 0.85, 0.35, 0.013])
    return probs, targets


def _linear_inputs() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(RNG_SEED + 2)
    hidden = rng.normal(size=(5, 3))
    weight = rng.normal(size=(7, 3))
    return hidden, weight, np.array([0, 6, 3, 2, 6])


@dataclasses.dataclass(frozen=True)
class Case:
    """One hyperparameter of one loss: ``loss(*inputs, **options, name=value)``."""

    id: str
    loss: Callable[..., Any]
    inputs: Callable[[], tuple[np.ndarray, ...]]
    name: str
    value: float
    invalid: float
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def call(self, *arrays: Any, hyper: Any, **extra: Any) -> Any:
        return self.loss(*arrays, **self.options, **{self.name: hyper}, **extra)

    def reference(self, value: float) -> float:
        """The float64 NumPy loss with the hyperparameter a Python number."""
        return float(self.call(*self.inputs(), hyper=float(value)))

    def finite_difference(self) -> float:
        """Central difference of :meth:`reference` at ``value``."""
        step = 1e-6 * max(1.0, abs(self.value))
        up, down = self.reference(self.value + step), self.reference(self.value - step)
        return (up - down) / (2.0 * step)

    def prediction_gradient(self) -> np.ndarray:
        """The analytic gradient by the prediction (the hidden states for linear), number case."""
        fn = functools.partial(self.loss, **self.options, **{self.name: self.value})
        _, grad = xentropy.value_and_grad(fn)(*self.inputs())
        return grad[0] if isinstance(grad, tuple) else grad


CLASS_WEIGHT = np.array([1.0, 0.5, 2.0, 1.5, 0.8])

CASES = [
    Case(
        "softmax-ls",
        xentropy.softmax_cross_entropy,
        functools.partial(_class_inputs, "logits-labels"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "softmax-ls-weighted-ignore",
        xentropy.softmax_cross_entropy,
        functools.partial(_class_inputs, "logits-labels"),
        "label_smoothing",
        0.3,
        -0.1,
        {"class_weight": CLASS_WEIGHT, "ignore_index": 3},
    ),
    Case(
        "softmax-ls-dense",
        xentropy.softmax_cross_entropy,
        functools.partial(_class_inputs, "logits-probs"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "softmax-z_loss-weighted-ignore",
        xentropy.softmax_cross_entropy,
        functools.partial(_class_inputs, "logits-labels"),
        "z_loss",
        0.1,
        -0.1,
        {"class_weight": CLASS_WEIGHT, "ignore_index": 3},
    ),
    Case(
        "softmax-softcap-dense",
        xentropy.softmax_cross_entropy,
        functools.partial(_class_inputs, "logits-probs"),
        "softcap",
        3.0,
        0.0,
        {"z_loss": 0.05},
    ),
    Case(
        "categorical-ls",
        xentropy.categorical_cross_entropy,
        functools.partial(_class_inputs, "probs-labels"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "categorical-epsilon",
        xentropy.categorical_cross_entropy,
        functools.partial(_class_inputs, "probs-labels"),
        "epsilon",
        0.05,
        0.6,
    ),
    Case(
        "sigmoid-ls",
        xentropy.sigmoid_cross_entropy,
        functools.partial(_binary_inputs, "logits"),
        "label_smoothing",
        0.2,
        1.5,
        {"pos_weight": np.array(1.7)},
    ),
    Case(
        "binary-ls",
        xentropy.binary_cross_entropy,
        functools.partial(_binary_inputs, "probs"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "binary-epsilon",
        xentropy.binary_cross_entropy,
        functools.partial(_binary_inputs, "probs"),
        "epsilon",
        0.05,
        0.5,
    ),
    Case(
        "binary-log_floor",
        xentropy.binary_cross_entropy,
        functools.partial(_binary_inputs, "probs"),
        "log_floor",
        -1.5,
        math.nan,
        {"epsilon": None},
    ),
    Case(
        "softmax_focal-gamma",
        xentropy.softmax_focal_loss,
        functools.partial(_class_inputs, "logits-labels"),
        "gamma",
        1.7,
        -1.0,
    ),
    Case(
        "softmax_focal-ls",
        xentropy.softmax_focal_loss,
        functools.partial(_class_inputs, "logits-probs"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "sigmoid_focal-gamma",
        xentropy.sigmoid_focal_loss,
        functools.partial(_binary_inputs, "logits"),
        "gamma",
        1.7,
        -1.0,
        {"alpha": 0.25},
    ),
    Case(
        "sigmoid_focal-alpha",
        xentropy.sigmoid_focal_loss,
        functools.partial(_binary_inputs, "logits"),
        "alpha",
        0.3,
        -0.5,
    ),
    Case(
        "sigmoid_focal-ls",
        xentropy.sigmoid_focal_loss,
        functools.partial(_binary_inputs, "logits"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "poly1-epsilon",
        xentropy.poly1_cross_entropy,
        functools.partial(_class_inputs, "logits-labels"),
        "epsilon",
        1.5,
        math.inf,
    ),
    Case(
        "poly1-ls",
        xentropy.poly1_cross_entropy,
        functools.partial(_class_inputs, "logits-labels"),
        "label_smoothing",
        0.2,
        1.5,
        {"epsilon": -0.5},
    ),
    Case(
        "linear-z_loss",
        xentropy.linear_cross_entropy,
        _linear_inputs,
        "z_loss",
        0.1,
        -0.1,
        {"chunk_size": 3},
    ),
    Case(
        "linear-softcap",
        xentropy.linear_cross_entropy,
        _linear_inputs,
        "softcap",
        3.0,
        0.0,
        {"chunk_size": 3},
    ),
    Case(
        "linear-ls",
        xentropy.linear_cross_entropy,
        _linear_inputs,
        "label_smoothing",
        0.1,
        1.5,
        {"chunk_size": 4, "z_loss": 0.01},
    ),
    Case(
        "categorical_focal-gamma",
        categorical_focal_loss,
        functools.partial(_class_inputs, "probs-labels"),
        "gamma",
        1.7,
        -1.0,
    ),
    Case(
        "categorical_focal-epsilon",
        categorical_focal_loss,
        functools.partial(_class_inputs, "probs-labels"),
        "epsilon",
        0.05,
        0.5,
        {"normalize": True},
    ),
    Case(
        "categorical_focal-ls",
        categorical_focal_loss,
        functools.partial(_class_inputs, "probs-labels"),
        "label_smoothing",
        0.2,
        1.5,
    ),
    Case(
        "binary_focal-gamma",
        binary_focal_loss,
        functools.partial(_binary_inputs, "probs"),
        "gamma",
        1.7,
        -1.0,
    ),
    Case(
        "binary_focal-alpha",
        binary_focal_loss,
        functools.partial(_binary_inputs, "probs"),
        "alpha",
        0.3,
        -0.5,
    ),
    Case(
        "binary_focal-epsilon",
        binary_focal_loss,
        functools.partial(_binary_inputs, "probs"),
        "epsilon",
        0.05,
        0.5,
    ),
    Case(
        "binary_focal-ls",
        binary_focal_loss,
        functools.partial(_binary_inputs, "probs"),
        "label_smoothing",
        0.2,
        1.5,
    ),
]

CASES_BY_ID = {c.id: c for c in CASES}
# gamma = 1.7 and label smoothing 0.2 together, each case varying one (torch.compile test)
GAMMA_DENSE = dataclasses.replace(
    CASES_BY_ID["softmax_focal-gamma"],
    inputs=functools.partial(_class_inputs, "logits-probs"),
    options={"label_smoothing": 0.2},
)
SMOOTHING_DENSE = dataclasses.replace(CASES_BY_ID["softmax_focal-ls"], options={"gamma": 1.7})

by_case = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])

# float64 loss values through another evaluation order; derivatives against central differences
VALUE_RTOL = 1e-10
FD_RTOL, FD_ATOL = 1e-6, 1e-8


def assert_close(actual: Any, expected: Any, rtol: float, atol: float = 0.0) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol, atol)


# ------------------------------------------------------------------------------------------------
# NumPy: numbers, NumPy scalars and constant 0-d arrays
# ------------------------------------------------------------------------------------------------


@by_case
@pytest.mark.parametrize("wrap", [np.float32, np.float64, np.asarray], ids=["f32", "f64", "0d"])
def test_numpy_scalar_is_the_number(case: Case, wrap: Callable[[float], Any]) -> None:
    """A NumPy scalar or 0-d array gives exactly the loss of the Python number it holds."""
    hyper = wrap(case.value)
    expected = case.reference(float(hyper))
    assert float(case.call(*case.inputs(), hyper=hyper)) == expected


@by_case
def test_numpy_scalar_out_of_range_raises(case: Case) -> None:
    with pytest.raises(ValueError, match=case.name):
        case.call(*case.inputs(), hyper=np.float64(case.invalid))


@by_case
def test_non_scalar_array_raises(case: Case) -> None:
    with pytest.raises(ValueError, match=rf"{case.name}.*0-d array.*\(1,\)"):
        case.call(*case.inputs(), hyper=np.array([case.value]))


def test_constant_hyperparameters_become_numbers() -> None:
    """Constant 0-d values are stored as Python numbers: the operator stays hashable."""
    op = ops.Poly1CrossEntropy(epsilon=np.float32(1.5), label_smoothing=np.asarray(0.25))
    assert op == ops.Poly1CrossEntropy(epsilon=1.5, label_smoothing=0.25)
    assert isinstance(op.epsilon, float) and isinstance(op.label_smoothing, float)
    hash(op)
    assert ops.array_hyperparameters(op) == {}


@pytest.mark.parametrize(
    "case",
    [CASES_BY_ID[i] for i in ("poly1-epsilon", "binary-log_floor", "linear-softcap")],
    ids=lambda c: c.id,
)
def test_array_api_strict_0d_hyperparameter(case: Case) -> None:
    """A 0-d array of a library without autodiff: read, checked, and cast like a number."""
    xps = require_or_skip("array_api_strict")
    arrays = tuple(xps.asarray(a) for a in case.inputs())
    value = case.call(*arrays, hyper=xps.asarray(case.value))
    assert_close(float(value), case.reference(case.value), VALUE_RTOL)
    with pytest.raises(ValueError, match=case.name):
        case.call(*arrays, hyper=xps.asarray(case.invalid))


def test_string_hyperparameter_raises() -> None:
    x, y = _class_inputs("logits-labels")
    with pytest.raises(ValueError, match="label_smoothing must be a number in"):
        xentropy.softmax_cross_entropy(x, y, label_smoothing="0.1")


# ------------------------------------------------------------------------------------------------
# JAX: jit-traced and differentiated hyperparameters
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def jax_x64():
    jax = require_or_skip("jax")
    with jax.enable_x64(True):
        yield jax


def _jax_inputs(case: Case) -> tuple[Any, ...]:
    import jax.numpy as jnp

    return tuple(jnp.asarray(a) for a in case.inputs())


@by_case
def test_jax_jit_traced(case: Case, jax_x64: Any) -> None:
    """Under ``jax.jit`` with the hyperparameter traced: the float64 NumPy loss, its derivative
    by the hyperparameter (finite differences) and by the prediction (analytic backward); a
    value outside the allowed range gives NaN, loss and both gradients."""
    jax = jax_x64
    first, *rest = _jax_inputs(case)

    def loss(prediction: Any, hyper: Any) -> Any:
        return case.call(prediction, *rest, hyper=hyper)

    run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    value, (d_prediction, d_hyper) = run(first, jax.numpy.float64(case.value))
    assert_close(value, case.reference(case.value), VALUE_RTOL)
    assert_close(d_hyper, case.finite_difference(), FD_RTOL, FD_ATOL)
    assert_close(d_prediction, case.prediction_gradient(), 1e-10, 1e-12)
    value, (d_prediction, d_hyper) = run(first, jax.numpy.float64(case.invalid))
    assert np.isnan(float(value)) and np.isnan(float(d_hyper))
    assert np.all(np.isnan(np.asarray(d_prediction)))


# eager (op-by-op) JAX is slow: one case per kind of use of a hyperparameter
EAGER_CASES = [
    c for c in CASES if c.id in ("sigmoid_focal-alpha", "poly1-epsilon", "binary-log_floor")
]


@pytest.mark.parametrize("case", EAGER_CASES, ids=[c.id for c in EAGER_CASES])
def test_jax_eager_grad_by_hyperparameter(case: Case, jax_x64: Any) -> None:
    """``jax.grad`` without ``jit`` (a learned hyperparameter, differentiated eagerly)."""
    jax = jax_x64
    arrays = _jax_inputs(case)
    grad = jax.value_and_grad(lambda h: case.call(*arrays, hyper=h))
    value, d_hyper = grad(jax.numpy.float64(case.value))
    assert_close(value, case.reference(case.value), VALUE_RTOL)
    assert_close(d_hyper, case.finite_difference(), FD_RTOL, FD_ATOL)


@pytest.mark.parametrize(
    "case", [c for c in EAGER_CASES if c.id != "binary-log_floor"], ids=lambda c: c.id
)
def test_jax_eager_grad_out_of_range(case: Case, jax_x64: Any) -> None:
    """Out of range under an eager ``jax.grad``: the tracer cannot be read by the checks, so
    NaN (loss and gradient), or ``ValueError`` naming the argument where the value is read."""
    jax = jax_x64
    arrays = _jax_inputs(case)
    grad = jax.value_and_grad(lambda h: case.call(*arrays, hyper=h))
    try:
        value, d_hyper = grad(jax.numpy.float64(case.invalid))
    except ValueError as error:
        assert case.name in str(error)
    else:
        assert np.isnan(float(value)) and np.isnan(float(d_hyper))


def test_jax_concrete_arrays_become_numbers(jax_x64: Any) -> None:
    jnp = jax_x64.numpy
    x, y = (jnp.asarray(a) for a in _class_inputs("logits-labels"))
    op = ops.SoftmaxFocalLoss(gamma=jnp.asarray(1.5), label_smoothing=jnp.float32(0.25))
    assert (op.gamma, op.label_smoothing) == (1.5, 0.25)
    with pytest.raises(ValueError, match="gamma"):
        xentropy.softmax_focal_loss(x, y, gamma=jnp.asarray(-1.0))


def test_jax_integer_traced_gamma(jax_x64: Any) -> None:
    """An integer tracer is cast to the compute dtype (TensorFlow and JAX never mix them)."""
    jax = jax_x64
    x, y = (jax.numpy.asarray(a) for a in _class_inputs("logits-labels"))
    traced = jax.jit(lambda g: xentropy.softmax_focal_loss(x, y, gamma=g))(jax.numpy.asarray(2))
    assert_close(traced, float(xentropy.softmax_focal_loss(x, y, gamma=2.0)), VALUE_RTOL)


def test_jax_traced_zero_still_differentiates(jax_x64: Any) -> None:
    """A traced 0 keeps the term it scales (the static test treats arrays as non-zero): the
    derivative at ``label_smoothing = 0`` is the exact slope (the loss is linear in it)."""
    jax = jax_x64
    x, y = _class_inputs("logits-labels")
    jx, jy = jax.numpy.asarray(x), jax.numpy.asarray(y)
    loss = jax.jit(lambda e: xentropy.softmax_cross_entropy(jx, jy, label_smoothing=e))
    zero = jax.numpy.float64(0.0)
    assert_close(loss(zero), float(xentropy.softmax_cross_entropy(x, y)), VALUE_RTOL)
    slope = float(xentropy.softmax_cross_entropy(x, y, label_smoothing=1.0)) - float(
        xentropy.softmax_cross_entropy(x, y)
    )
    assert_close(jax.grad(loss)(zero), slope, 1e-9)


def test_jax_traced_gamma_zero_derivative(jax_x64: Any) -> None:
    """d/dgamma at the domain's end gamma = 0 (one-sided second-order difference)."""
    jax = jax_x64
    x, y = _class_inputs("logits-labels")
    jx, jy = jax.numpy.asarray(x), jax.numpy.asarray(y)
    grad = jax.grad(lambda g: xentropy.softmax_focal_loss(jx, jy, gamma=g))(0.0)
    step = 1e-5

    def at(g: float) -> float:
        return float(xentropy.softmax_focal_loss(x, y, gamma=g))

    expected = (-3.0 * at(0.0) + 4.0 * at(step) - at(2.0 * step)) / (2.0 * step)
    assert_close(grad, expected, 1e-6)


def test_jax_vmap_over_hyperparameter(jax_x64: Any) -> None:
    jax = jax_x64
    x, y = _class_inputs("logits-labels")
    jx, jy = jax.numpy.asarray(x), jax.numpy.asarray(y)
    epsilons = np.array([-0.5, 0.0, 1.0, 2.0])
    values = jax.vmap(lambda e: xentropy.poly1_cross_entropy(jx, jy, epsilon=e))(epsilons)
    expected = [float(xentropy.poly1_cross_entropy(x, y, epsilon=float(e))) for e in epsilons]
    assert_close(values, expected, VALUE_RTOL)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.id in ("poly1-epsilon", "linear-softcap", "binary-epsilon")],
    ids=lambda c: c.id,
)
def test_differentiable_loss_directly(case: Case, jax_x64: Any) -> None:
    """The exact path itself: ``ops.differentiable_loss`` under ``jax.grad``."""
    jax = jax_x64
    arrays = _jax_inputs(case)
    signature = {
        "poly1-epsilon": lambda h: (ops.Poly1CrossEntropy(epsilon=h), (*arrays, None)),
        "linear-softcap": lambda h: (
            ops.LinearCrossEntropy(softcap=h, chunk_size=3),
            (*arrays, None),
        ),
        "binary-epsilon": lambda h: (ops.BinaryCrossEntropy(epsilon=h), (*arrays, None)),
    }[case.id]

    def loss(h: Any) -> Any:
        op, inputs = signature(h)
        xp, op = ops.checked_operator(op, *inputs, prediction=inputs[0], validate=False)
        return ops.differentiable_loss(op, xp, *inputs)

    value, grad = jax.jit(jax.value_and_grad(loss))(jax.numpy.float64(case.value))
    assert_close(value, case.reference(case.value), VALUE_RTOL)
    assert_close(grad, case.finite_difference(), FD_RTOL, FD_ATOL)


# ------------------------------------------------------------------------------------------------
# PyTorch: 0-d tensors that require grad
# ------------------------------------------------------------------------------------------------


def _torch_inputs(case: Case) -> tuple[Any, ...]:
    torch = require_or_skip("torch")
    return tuple(torch.asarray(a) for a in case.inputs())


@by_case
def test_torch_requires_grad_hyperparameter(case: Case) -> None:
    """A 0-d tensor requiring grad: float64 NumPy loss, derivative by it (finite differences)
    and by the prediction (the analytic one)."""
    import torch

    first, *rest = _torch_inputs(case)
    first.requires_grad_(True)
    hyper = torch.tensor(case.value, dtype=torch.float64, requires_grad=True)
    loss = case.call(first, *rest, hyper=hyper)
    assert ops.array_hyperparameters(ops.Poly1CrossEntropy(epsilon=hyper))
    assert_close(loss.detach(), case.reference(case.value), VALUE_RTOL)
    d_prediction, d_hyper = torch.autograd.grad(loss, (first, hyper))
    assert_close(d_hyper, case.finite_difference(), FD_RTOL, FD_ATOL)
    assert_close(d_prediction, case.prediction_gradient(), 1e-10, 1e-12)


@by_case
def test_torch_eager_out_of_range_raises(case: Case) -> None:
    """An eager tensor is read and checked, with the argument's name in the message."""
    import torch

    arrays = _torch_inputs(case)
    hyper = torch.tensor(case.invalid, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=case.name):
        case.call(*arrays, hyper=hyper)


@by_case
def test_torch_unvalidated_out_of_range_is_nan(case: Case) -> None:
    """With ``validate=False`` nothing is read: NaN loss and NaN gradient instead."""
    import torch

    arrays = _torch_inputs(case)
    hyper = torch.tensor(case.invalid, dtype=torch.float64, requires_grad=True)
    loss = case.call(*arrays, hyper=hyper, validate=False)
    assert torch.isnan(loss)
    (grad,) = torch.autograd.grad(loss, hyper)
    assert torch.isnan(grad)


def test_torch_float32_logits_with_float64_hyperparameter() -> None:
    """The hyperparameter is cast to the compute dtype: the loss keeps the logits' dtype."""
    torch = require_or_skip("torch")
    x, y = _class_inputs("logits-labels")
    gamma = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    loss = xentropy.softmax_focal_loss(
        torch.asarray(x, dtype=torch.float32), torch.asarray(y), gamma=gamma
    )
    assert loss.dtype == torch.float32
    assert_close(loss.detach(), float(xentropy.softmax_focal_loss(x, y, gamma=1.5)), 1e-6)
    (grad,) = torch.autograd.grad(loss, gamma)
    assert grad.dtype == torch.float64


@pytest.mark.slow
def test_torch_compile_traced_hyperparameters() -> None:
    """Under ``torch.compile`` the hyperparameters are graph inputs: values, derivatives by both
    (finite differences), and NaN for an out-of-range one (the check cannot read it there)."""
    torch = require_or_skip("torch")
    x, y = _class_inputs("logits-probs")
    loss = torch.compile(
        lambda x, y, g, e: xentropy.softmax_focal_loss(x, y, gamma=g, label_smoothing=e)
    )
    gamma = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    smoothing = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    value = loss(torch.asarray(x), torch.asarray(y), gamma, smoothing)
    d_gamma, d_smoothing = torch.autograd.grad(value, (gamma, smoothing))
    for case, grad in ((SMOOTHING_DENSE, d_smoothing), (GAMMA_DENSE, d_gamma)):
        assert_close(value.detach(), case.reference(case.value), VALUE_RTOL)
        assert_close(grad, case.finite_difference(), FD_RTOL, FD_ATOL)
    bad = torch.tensor(-1.0, dtype=torch.float64)
    assert torch.isnan(loss(torch.asarray(x), torch.asarray(y), bad, smoothing.detach()))


def test_mixed_libraries_raise() -> None:
    torch = require_or_skip("torch")
    x, y = _class_inputs("logits-labels")
    epsilon = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="epsilon is an array of torch"):
        xentropy.poly1_cross_entropy(x, y, epsilon=epsilon)


# ------------------------------------------------------------------------------------------------
# TensorFlow: tf.Variable and tf.function-traced hyperparameters
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def tf():
    return require_or_skip("tensorflow")


@by_case
def test_tf_variable_hyperparameter(case: Case, tf: Any) -> None:
    arrays = tuple(tf.constant(a) for a in case.inputs())
    hyper = tf.Variable(case.value, dtype=tf.float64)
    with tf.GradientTape() as tape:
        loss = case.call(*arrays, hyper=hyper)
    assert_close(loss, case.reference(case.value), VALUE_RTOL)
    assert_close(tape.gradient(loss, hyper), case.finite_difference(), FD_RTOL, FD_ATOL)
    hyper.assign(case.invalid)
    with pytest.raises(ValueError, match=case.name):
        case.call(*arrays, hyper=hyper)


@by_case
def test_tf_function_traced_hyperparameter(case: Case, tf: Any) -> None:
    """Traced by ``tf.function``: value and derivative (a tape inside the graph); NaN, loss and
    derivative, out of range."""
    arrays = tuple(tf.constant(a) for a in case.inputs())

    @tf.function
    def value_and_grad(hyper: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(hyper)
            value = case.call(*arrays, hyper=hyper)
        return value, tape.gradient(value, hyper)

    value, grad = value_and_grad(tf.constant(case.value, tf.float64))
    assert_close(value, case.reference(case.value), VALUE_RTOL)
    assert_close(grad, case.finite_difference(), FD_RTOL, FD_ATOL)
    value, grad = value_and_grad(tf.constant(case.invalid, tf.float64))
    assert np.isnan(float(value)) and np.isnan(float(grad))
