"""Every JAX derivative of ``xentropy.backends.jax``, against optax on the same inputs.

The dialect registers one ``jax.custom_jvp`` rule per operator (``_custom_derivative``), so
forward and reverse mode, every order, and every floating input (soft labels, weights, array
hyperparameters) are differentiable, as in optax. Each test compares with optax (the native
reference) or, for ``linear_cross_entropy`` and the core operators without an optax counterpart,
with an unfused ``jax.numpy`` reference and float64 finite differences
(``jax.test_util.check_grads``). Float64 tests run under ``jax.enable_x64``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import random_distributions, require_or_skip, rng_for
from tolerances import assert_close

import xentropy
from xentropy import ops

try:
    jax = require_or_skip("jax")
    jnp = require_or_skip("jax", "jax.numpy")
    optax = require_or_skip("jax", "optax")
    xjax = require_or_skip("jax", "xentropy.backends.jax")
    custom_derivative = require_or_skip("jax", "xentropy.backends.jax._custom_derivative")
    from jax.test_util import check_grads
except pytest.skip.Exception as exc:  # a module-level skip needs allow_module_level
    pytest.skip(str(exc), allow_module_level=True)

F64 = {"rtol": 1e-10, "atol": 1e-12}  # analytic against analytic, both in float64
F32 = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


# --- the optax functions ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One dialect function with options, its labels' kind, and its optax counterpart."""

    function: str
    labels: str  # "probabilities" (along `axis`), "binary" (in (0, 1)) or "indices"
    options: tuple[tuple[str, Any], ...] = ()
    axis: int = -1
    mask: bool = False  # pass a `where` mask with one masked entry per example

    @property
    def soft(self) -> bool:
        return self.labels != "indices"

    def kwargs(self, logits: Any) -> dict[str, Any]:
        kwargs = dict(self.options)
        if self.axis != -1:
            kwargs["axis"] = self.axis
        if self.mask:
            where = np.ones(logits.shape, dtype=bool)
            where[np.arange(logits.shape[0]), np.arange(logits.shape[0]) % logits.shape[1]] = False
            kwargs["where"] = jnp.asarray(where)
        return kwargs

    def ours(self, logits: Any) -> Callable[[Any, Any], Any]:
        fn, kwargs = getattr(xjax, self.function), self.kwargs(logits)
        return lambda z, y: fn(z, y, **kwargs)

    def theirs(self, logits: Any) -> Callable[[Any, Any], Any]:
        fn, kwargs = getattr(optax.losses, self.function), self.kwargs(logits)
        return lambda z, y: fn(z, y, **kwargs)


def optax_masked(case: Case, derivative: Any) -> Any:
    """optax's derivative with its NaN at masked entries as 0 (ours, the true derivative).

    With ``where``, optax's derivative by a masked label is ``0 * log_softmax = 0 * -inf``,
    NaN; the loss does not depend on that label, so ours is 0.
    """
    return jnp.nan_to_num(derivative, nan=0.0) if case.mask else derivative


CASES = {
    "softmax": Case("softmax_cross_entropy", "probabilities"),
    "softmax-axis0": Case("softmax_cross_entropy", "probabilities", axis=0),
    "softmax-where": Case("softmax_cross_entropy", "probabilities", mask=True),
    "safe-softmax": Case("safe_softmax_cross_entropy", "probabilities"),
    "integer": Case("softmax_cross_entropy_with_integer_labels", "indices"),
    "integer-axis0": Case("softmax_cross_entropy_with_integer_labels", "indices", axis=0),
    "integer-where": Case("softmax_cross_entropy_with_integer_labels", "indices", mask=True),
    "sigmoid": Case("sigmoid_binary_cross_entropy", "binary"),
    "focal": Case("sigmoid_focal_loss", "binary", (("alpha", 0.25), ("gamma", 2.0))),
    "focal-gamma1.5": Case("sigmoid_focal_loss", "binary", (("gamma", 1.5),)),
    "poly": Case("poly_loss_cross_entropy", "probabilities", (("epsilon", 1.5),)),
    "poly-where": Case("poly_loss_cross_entropy", "probabilities", (("epsilon", -0.5),), mask=True),
}
SOFT = [name for name, case in CASES.items() if case.soft]
ROWS = [name for name, case in CASES.items() if case.axis == -1 and not case.mask]  # (N, C)


def inputs(case: Case, dtype: Any = None, shape: tuple[int, int] = (4, 5)) -> tuple[Any, Any]:
    """Logits and labels for ``case`` (float64 NumPy values, cast to ``dtype``)."""
    rng = rng_for("jax-autodiff", case.function, case.labels, str(case.axis), str(shape))
    dtype = dtype or jnp.float64
    logits = jnp.asarray(rng.normal(scale=1.5, size=shape), dtype=dtype)
    if case.labels == "indices":
        num_classes = shape[case.axis]
        batch = shape[1 - case.axis % 2]
        labels = rng.integers(0, num_classes, size=batch)
        if case.mask:  # not on the masked class, where we give +inf and optax a finite loss
            masked = np.arange(batch) % num_classes
            labels = np.where(labels == masked, (labels + 1) % num_classes, labels)
        return logits, jnp.asarray(labels, dtype=jnp.int32)
    if case.labels == "binary":
        return logits, jnp.asarray(rng.uniform(0.1, 0.9, size=shape), dtype=dtype)
    labels = random_distributions(rng, shape, case.axis) * 0.8 + 0.2 / shape[case.axis]
    return logits, jnp.asarray(labels, dtype=dtype)


def argnums(case: Case) -> tuple[int, ...]:
    return (0, 1) if case.soft else (0,)


@pytest.mark.parametrize("name", CASES)
def test_check_grads_order_2_both_modes(name, x64):
    """Forward and reverse mode, first and second order, against float64 finite differences,
    with respect to the logits and the soft labels."""
    case = CASES[name]
    logits, labels = inputs(case)
    fn = case.ours(logits)
    if case.soft:
        check_grads(fn, (logits, labels), order=2, modes=("fwd", "rev"))
    else:
        check_grads(lambda z: fn(z, labels), (logits,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", CASES)
def test_jvp_jacobians_and_hessian_match_optax(name, x64):
    case = CASES[name]
    logits, labels = inputs(case)
    ours, theirs = case.ours(logits), case.theirs(logits)
    nums = argnums(case)
    rng = rng_for("jax-autodiff", "tangents", name)
    tangents = (
        jnp.asarray(rng.normal(size=logits.shape)),
        jnp.asarray(rng.normal(size=logits.shape)),
    )
    primals = (logits, labels)

    def along(fn: Callable) -> Callable:
        return lambda *diff: fn(*[diff[nums.index(i)] if i in nums else primals[i] for i in (0, 1)])

    diff_primals = tuple(primals[i] for i in nums)
    diff_tangents = tangents[: len(nums)]
    value, tangent = jax.jvp(along(ours), diff_primals, diff_tangents)
    ref_value, ref_tangent = jax.jvp(along(theirs), diff_primals, diff_tangents)
    assert_close(value, ref_value, "float64", **F64)
    assert_close(tangent, optax_masked(case, ref_tangent), "float64", **F64)
    for transform in (jax.jacfwd, jax.jacrev):
        got = transform(along(ours), argnums=tuple(range(len(nums))))(*diff_primals)
        want = transform(along(theirs), argnums=tuple(range(len(nums))))(*diff_primals)
        for g, w in zip(got, want, strict=True):
            assert_close(g, optax_masked(case, w), "float64", **F64, msg=transform.__name__)

    def total(fn: Callable) -> Callable:
        return lambda *diff: along(fn)(*diff).sum()

    got = jax.hessian(total(ours), argnums=tuple(range(len(nums))))(*diff_primals)
    want = jax.hessian(total(theirs), argnums=tuple(range(len(nums))))(*diff_primals)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert_close(g, optax_masked(case, w), "float64", **F64, msg="hessian")


@pytest.mark.parametrize("name", SOFT)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_label_gradient_matches_optax_float32(name, jit):
    case = CASES[name]
    logits, labels = inputs(case, jnp.float32)

    def grads(fn: Callable) -> Any:
        g = jax.grad(lambda z, y: fn(z, y).sum(), argnums=(0, 1))
        return (jax.jit(g) if jit else g)(logits, labels)

    got = grads(case.ours(logits))
    want = tuple(optax_masked(case, w) for w in grads(case.theirs(logits)))
    assert np.abs(np.asarray(want[1])).max() > 0.1  # a gradient that could be missed
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float32", **F32)


@pytest.mark.parametrize("name", ROWS)
def test_vmap_checkpoint_scan_jit_match_optax(name):
    """Per-example gradients (``vmap(grad)``), ``checkpoint``, ``lax.scan`` over batches, and
    ``jit`` give optax's numbers (float32)."""
    case = CASES[name]
    logits, labels = inputs(case, jnp.float32, shape=(6, 5))
    nums = argnums(case)

    kwargs = dict(case.options)  # one example: (C,) logits, a scalar loss
    ours = functools.partial(getattr(xjax, case.function), **kwargs)
    theirs = functools.partial(getattr(optax.losses, case.function), **kwargs)

    def per_example(fn: Callable) -> Any:
        return jax.jit(jax.vmap(jax.grad(lambda z, y: jnp.sum(fn(z, y)), argnums=nums)))(
            logits, labels
        )

    for g, w in zip(per_example(ours), per_example(theirs), strict=True):
        assert_close(g, w, "float32", **F32, msg="vmap(grad)")

    def remat(fn: Callable) -> Any:
        return jax.grad(jax.checkpoint(lambda z, y: fn(z, y).sum()), argnums=nums)(logits, labels)

    for g, w in zip(remat(ours), remat(theirs), strict=True):
        assert_close(g, w, "float32", **F32, msg="checkpoint")

    projection = jnp.asarray(rng_for("jax-autodiff", "scan", name).normal(size=(5, 5)), jnp.float32)

    def scanned(fn: Callable) -> Any:
        def total(w: Any) -> Any:
            def step(carry: Any, batch: tuple[Any, Any]) -> tuple[Any, None]:
                z, y = batch
                return carry + fn(z @ w, y).sum(), None

            batches = (logits.reshape(3, 2, 5), labels.reshape(3, 2, *labels.shape[1:]))
            return jax.lax.scan(step, jnp.zeros((), jnp.float32), batches)[0]

        return jax.jit(jax.value_and_grad(total))(projection)

    for g, w in zip(scanned(ours), scanned(theirs), strict=True):
        assert_close(g, w, "float32", **F32, msg="scan")


# --- linear cross entropy, against an unfused reference ---------------------------------------


def unfused_linear_cross_entropy(
    hidden, weight, targets, bias=None, *, softcap=None, z_loss=0.0, ignore_index=None,
    label_smoothing=0.0, reduction="mean",
):  # fmt: skip
    """The same loss from the full ``(N, V)`` logits, in plain ``jax.numpy``."""
    z = hidden @ weight.T + (0.0 if bias is None else bias)
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    keep = jnp.ones(targets.shape, bool) if ignore_index is None else targets != ignore_index
    index = jnp.where(keep, targets, 0)
    lse = jax.nn.logsumexp(z, axis=-1)
    target_logit = jnp.take_along_axis(z, index[..., None], axis=-1)[..., 0]
    losses = (1.0 - label_smoothing) * (lse - target_logit)
    losses = losses + label_smoothing * (lse - jnp.mean(z, axis=-1)) + z_loss * lse**2
    losses = jnp.where(keep, losses, 0.0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return jnp.sum(losses)
    return jnp.sum(losses) / jnp.sum(keep)


LINEAR_OPTIONS = {
    "mean": {},
    "sum-bias-ignore": {"reduction": "sum", "ignore_index": -100, "bias": True},
    "none-softcap": {"reduction": "none", "softcap": 3.0, "bias": True},
    "mean-zloss-smoothing": {"z_loss": 0.1, "label_smoothing": 0.2, "ignore_index": -100},
}


def linear_inputs(dtype: Any = None) -> tuple[Any, Any, Any, Any]:
    rng = rng_for("jax-autodiff", "linear")
    dtype = dtype or jnp.float64
    hidden = jnp.asarray(rng.normal(size=(5, 3)), dtype)
    weight = jnp.asarray(rng.normal(size=(7, 3)), dtype)
    bias = jnp.asarray(rng.normal(size=7), dtype)
    targets = jnp.asarray([3, -100, 0, 6, 2], dtype=jnp.int32)
    return hidden, weight, bias, targets


def linear_losses(name: str, targets: Any) -> tuple[Callable, Callable, int]:
    """Ours and the reference as functions of (hidden, weight[, bias])."""
    options = dict(LINEAR_OPTIONS[name])
    with_bias = options.pop("bias", False)
    if options.get("ignore_index") is None:
        targets = jnp.where(targets < 0, 1, targets)
    options = {"chunk_size": 3, **options}
    reference_options = {k: v for k, v in options.items() if k != "chunk_size"}

    def ours(h, w, b=None):
        return xjax.linear_cross_entropy(h, w, targets, bias=b, **options)

    def reference(h, w, b=None):
        return unfused_linear_cross_entropy(h, w, targets, b, **reference_options)

    return ours, reference, 3 if with_bias else 2


@pytest.mark.parametrize("name", LINEAR_OPTIONS)
def test_linear_cross_entropy_check_grads_and_reference(name, x64):
    hidden, weight, bias, targets = linear_inputs()
    ours, reference, num = linear_losses(name, targets)
    args = (hidden, weight, bias)[:num]
    check_grads(jax.jit(ours), args, order=2, modes=("fwd", "rev"))  # jit: one compile per mode
    nums = tuple(range(num))
    assert_close(ours(*args), reference(*args), "float64", **F64)
    for transform in (jax.jacfwd, jax.jacrev):
        got = jax.jit(transform(ours, nums))(*args)
        want = transform(reference, nums)(*args)
        for g, w in zip(got, want, strict=True):
            assert_close(g, w, "float64", **F64, msg=transform.__name__)

    def total(loss):
        return lambda *x: jnp.sum(loss(*x))

    got = jax.jit(jax.hessian(total(ours), nums))(*args)
    want = jax.hessian(total(reference), nums)(*args)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert_close(g, w, "float64", **F64, msg="hessian")


def test_linear_cross_entropy_per_sample_weight_gradients():
    """DP-SGD's ``vmap(grad(loss), in_axes=(None, 0, 0))``: per-example weight gradients."""
    hidden, weight, _, targets = linear_inputs(jnp.float32)
    targets = jnp.abs(targets) % 7

    def per_example(loss: Callable) -> Any:
        def one(w, h, t):
            return loss(h[None], w, t[None])

        return jax.jit(jax.vmap(jax.grad(one), in_axes=(None, 0, 0)))(weight, hidden, targets)

    got = per_example(lambda h, w, t: xjax.linear_cross_entropy(h, w, t, chunk_size=3))
    want = per_example(lambda h, w, t: unfused_linear_cross_entropy(h, w, t))
    assert got.shape == (5, 7, 3)
    assert_close(got, want, "float32", **F32)


# --- every core operator through apply_op: exact derivatives of every floating input -------


def _operator_cases() -> dict[str, tuple[Any, Callable[[np.random.Generator], tuple]]]:
    def logits(rng, shape=(3, 4)):
        return rng.normal(size=shape)

    def probs(rng, shape=(3, 4)):
        return random_distributions(rng, shape, -1) * 0.8 + 0.05

    def unit(rng, shape=(3, 4)):
        return rng.uniform(0.1, 0.9, size=shape)

    def weight(rng):
        return rng.uniform(0.5, 2.0, size=4)

    def indices(rng):
        return np.array([0, 3, 1])

    return {
        "softmax-indices-weight-smoothing": (
            ops.SoftmaxCrossEntropy(label_smoothing=0.1, reduction="mean"),
            lambda r: (logits(r), indices(r), weight(r)),
        ),
        "softmax-probabilities-weight": (
            ops.SoftmaxCrossEntropy(reduction="sum"),
            lambda r: (logits(r), probs(r), weight(r)),
        ),
        "categorical": (
            ops.CategoricalCrossEntropy(reduction="none"),
            lambda r: (probs(r), probs(r), weight(r)),
        ),
        "binary": (ops.BinaryCrossEntropy(reduction="none"), lambda r: (unit(r), unit(r), None)),
        "sigmoid-pos-weight": (
            ops.SigmoidCrossEntropy(reduction="mean"),
            lambda r: (logits(r), unit(r), weight(r), weight(r)),
        ),
        "sigmoid-focal": (
            ops.SigmoidFocalLoss(gamma=2.0, alpha=0.3, reduction="none"),
            lambda r: (logits(r), unit(r)),
        ),
        "softmax-focal": (
            ops.SoftmaxFocalLoss(gamma=2.0, reduction="none"),
            lambda r: (logits(r), probs(r), None, weight(r)),
        ),
        "poly1-indices": (
            ops.Poly1CrossEntropy(epsilon=1.0, reduction="mean"),
            lambda r: (logits(r), indices(r), weight(r)),
        ),
        "nll": (
            ops.NegativeLogLikelihood(reduction="mean"),
            lambda r: (np.log(probs(r)), indices(r), weight(r)),
        ),
        "categorical-focal": (
            ops.CategoricalFocalLoss(gamma=2.0, reduction="none"),
            lambda r: (probs(r), probs(r), None, weight(r)),
        ),
        "binary-focal": (
            ops.BinaryFocalLoss(gamma=2.0, alpha=0.25, reduction="none"),
            lambda r: (unit(r), unit(r)),
        ),
        "entropy": (ops.InformationMeasure(measure="entropy"), lambda r: (probs(r),)),
        "kl": (ops.InformationMeasure(measure="kl_divergence"), lambda r: (probs(r), probs(r))),
        "cross-entropy": (
            ops.InformationMeasure(measure="cross_entropy"),
            lambda r: (probs(r), probs(r)),
        ),
    }


OPERATORS = _operator_cases()


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_check_grads_every_floating_input(name, x64):
    op, make = OPERATORS[name]
    arrays = tuple(None if a is None else jnp.asarray(a) for a in make(rng_for("jax-ops", name)))
    positions = ops.op_differentiable_positions(op, arrays)
    assert ops.op_prediction_position(op, len(arrays)) in positions

    def loss(*diff):
        full = list(arrays)
        for position, value in zip(positions, diff, strict=True):
            full[position] = value
        return xjax.apply_op(op, *full)

    check_grads(loss, tuple(arrays[p] for p in positions), order=2, modes=("fwd", "rev"))


# --- array hyperparameters --------------------------------------------------------------------


def test_traced_hyperparameter_through_apply_op(x64):
    """A traced ``label_smoothing`` is a dynamic argument: jit retraces nothing, and its
    derivative (any order) matches finite differences and a ``jax.numpy`` reference."""
    case = CASES["sigmoid"]
    logits, labels = inputs(case)

    def ours(z, y, eps):
        op = ops.SigmoidCrossEntropy(label_smoothing=eps, reduction="none")
        return xjax.apply_op(op, z, y, None, None)

    def reference(z, y, eps):
        return optax.sigmoid_binary_cross_entropy(z, y * (1.0 - eps) + 0.5 * eps)

    eps = jnp.asarray(0.2)
    assert_close(
        jax.jit(ours)(logits, labels, eps), reference(logits, labels, eps), "float64", **F64
    )
    check_grads(ours, (logits, labels, eps), order=2, modes=("fwd", "rev"))
    got = jax.jit(jax.grad(lambda *a: ours(*a).sum(), argnums=(0, 1, 2)))(logits, labels, eps)
    want = jax.grad(lambda *a: reference(*a).sum(), argnums=(0, 1, 2))(logits, labels, eps)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float64", **F64)


@pytest.mark.parametrize(
    ("function", "option", "value"),
    [
        ("poly_loss_cross_entropy", "epsilon", 1.5),
        ("sigmoid_focal_loss", "gamma", 1.5),
        ("sigmoid_focal_loss", "alpha", 0.3),
    ],
)
def test_traced_option_matches_optax(function, option, value, x64):
    """optax's idiom ``jax.jit(loss)(x, y, epsilon=e)``, and the option's gradient."""
    case = next(c for c in CASES.values() if c.function == function)
    logits, labels = inputs(case)

    def loss(module: Any) -> Callable:
        return lambda z, y, v: getattr(module, function)(z, y, **{option: v}).sum()

    v = jnp.asarray(value)
    reference = loss(optax.losses)
    assert_close(jax.jit(loss(xjax))(logits, labels, v), reference(logits, labels, v), "float64")
    got = jax.jit(jax.grad(loss(xjax), argnums=(0, 1, 2)))(logits, labels, v)
    want = jax.grad(reference, argnums=(0, 1, 2))(logits, labels, v)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float64", **F64)


def test_linear_cross_entropy_traced_options(x64):
    """``softcap``, ``z_loss`` and ``label_smoothing`` as traced arrays: values and gradients
    (hidden, weight and the three options) match the unfused reference."""
    hidden, weight, _, targets = linear_inputs()
    targets = jnp.abs(targets) % 7

    def ours(h, w, cap, zl, ls):
        return xjax.linear_cross_entropy(
            h, w, targets, chunk_size=3, softcap=cap, z_loss=zl, label_smoothing=ls
        )

    def reference(h, w, cap, zl, ls):
        return unfused_linear_cross_entropy(
            h, w, targets, softcap=cap, z_loss=zl, label_smoothing=ls
        )

    args = (hidden, weight, jnp.asarray(2.5), jnp.asarray(0.1), jnp.asarray(0.2))
    assert_close(jax.jit(ours)(*args), reference(*args), "float64", **F64)
    got = jax.jit(jax.grad(ours, argnums=tuple(range(5))))(*args)
    want = jax.grad(reference, argnums=tuple(range(5)))(*args)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float64", **F64)


# --- NaN rows, integer label dtypes -----------------------------------------------------------


def test_core_called_with_jax_arrays_gives_nan_loss_and_gradient_rows():
    """Issue 10, 5c: the core's own public function on JAX arrays, under ``jit(grad)``: an
    out-of-range label gives a NaN loss row and a NaN gradient row; the other rows are optax's."""
    rng = rng_for("jax-autodiff", "core-nan")
    logits = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    labels = jnp.array([0, 3, 2, -1])

    def core(z, y):
        return xentropy.softmax_cross_entropy(z, y, reduction="none")

    loss = np.asarray(jax.jit(core)(logits, labels))
    grad = np.asarray(jax.jit(jax.grad(lambda z, y: core(z, y).sum()))(logits, labels))
    assert np.isnan(loss[[1, 3]]).all() and np.isnan(grad[[1, 3]]).all()
    good = np.array([True, False, True, False])
    valid = jnp.where(jnp.asarray(good), labels, 0)
    ref = optax.softmax_cross_entropy_with_integer_labels(logits, valid)
    ref_grad = jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(z, valid).sum())
    assert_close(loss[good], np.asarray(ref)[good], "float32")
    assert_close(grad[good], np.asarray(ref_grad(logits))[good], "float32", **F32)
    hidden, weight = logits, jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    lce_grad = jax.jit(
        jax.grad(lambda h: xentropy.linear_cross_entropy(h, weight, labels + 2, reduction="sum"))
    )(hidden)  # labels + 2 = [2, 5, 4, 1]: row 1 is out of range
    lce_grad = np.asarray(lce_grad)
    assert np.isnan(lce_grad[1]).all() and np.isfinite(lce_grad[[0, 2, 3]]).all()


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_small_integer_label_dtypes_at_200_classes(dtype, jit):
    """200 classes: above int8's range, and 156 is what -100 wraps to in uint8."""
    rng = rng_for("jax-autodiff", "int-dtypes")
    logits = jnp.asarray(rng.normal(size=(4, 200)), jnp.float32)
    values = [156, 3, 199, 0] if dtype != "int8" else [100, 3, 127, 0]
    labels = jnp.asarray(np.array(values, dtype=dtype))
    wide = jnp.asarray(values, dtype=jnp.int32)
    maybe_jit = jax.jit if jit else lambda f: f

    def both(fn: Callable, y: Any) -> tuple[Any, Any]:
        return maybe_jit(jax.value_and_grad(lambda z: fn(z, y).sum()))(logits)

    got = both(xjax.softmax_cross_entropy_with_integer_labels, labels)
    want = both(optax.softmax_cross_entropy_with_integer_labels, wide)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float32", **F32)
    hidden = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    weight = jnp.asarray(rng.normal(size=(200, 3)), jnp.float32)

    def linear(h, y):
        return xjax.linear_cross_entropy(h, weight, y, ignore_index=-100, reduction="none")

    got = maybe_jit(jax.value_and_grad(lambda h: linear(h, labels).sum()))(hidden)
    want = jax.value_and_grad(
        lambda h: unfused_linear_cross_entropy(h, weight, wide, reduction="none").sum()
    )(hidden)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float32", **F32)


# --- the fast path ----------------------------------------------------------------------------


def _counting(monkeypatch, owner: Any, name: str) -> dict[str, int]:
    calls = {"n": 0}
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.mark.parametrize(
    ("op_type", "loss"),
    [
        (
            ops.SoftmaxCrossEntropy,
            lambda z, y, w: xjax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
        ),
        (
            ops.SoftmaxCrossEntropy,
            lambda z, y, w: xjax.softmax_cross_entropy(z, jax.nn.one_hot(y, 5)).sum(),
        ),
        (
            ops.SigmoidFocalLoss,
            lambda z, y, w: xjax.sigmoid_focal_loss(z, (z > 0).astype(z.dtype)).mean(),
        ),
        (ops.LinearCrossEntropy, lambda z, y, w: xjax.linear_cross_entropy(z, w, y)),
    ],
    ids=["integer-mean", "probabilities-sum", "focal-mean", "linear"],
)
def test_jit_grad_of_the_prediction_uses_the_analytic_backward(monkeypatch, op_type, loss):
    """``jax.jit(jax.value_and_grad)`` with respect to the prediction (and the linear weight)
    calls ``op.backward`` once while tracing and never differentiates the exact path."""
    backward = _counting(monkeypatch, op_type, "backward")
    exact = _counting(monkeypatch, ops, "differentiable_loss")
    rng = rng_for("jax-autodiff", "fast-path")
    logits = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, size=6))
    weight = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    targets = labels % 4 if op_type is ops.LinearCrossEntropy else labels
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))(logits, targets, weight)
    assert backward["n"] == 1 and exact["n"] == 0
    assert np.isfinite(np.asarray(value)) and np.isfinite(np.asarray(grads[0])).all()
