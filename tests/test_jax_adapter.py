"""``xentropy.backends.jax`` against optax: signatures, values and gradients, transformations.

Parity: each case runs our function and optax's on the same inputs (under ``jax.jit``) and
compares the per-example losses and the vector-Jacobian product with a pseudo-random cotangent:
every case in float32 (rtol 1e-5, atol 1e-6), a subset covering every function and option set in
float64 under ``jax.enable_x64`` (rtol 1e-12, atol 1e-12). bfloat16 and float16 inputs are
compared with optax run in float32 on the same rounded inputs, with the per-dtype tolerances of
``tests/tolerances.py``: the core computes in float32 and rounds once, so the only error is that
rounding. One case (``integer-extreme``) is compared with optax in float64 even for float32
inputs, because optax's float32 answer loses the whole loss there (see the case). Where we
differ from optax on purpose (see the module docstring of ``xentropy.backends.jax``), the test
says so and checks both sides.
"""

from __future__ import annotations

import functools
import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import EXTREME_INDEX, EXTREME_LOGITS, random_distributions, require_or_skip, rng_for
from tolerances import assert_close, tolerance

import xentropy
from xentropy import ops

try:
    jax = require_or_skip("jax")
    jnp = require_or_skip("jax", "jax.numpy")
    optax = require_or_skip("jax", "optax")
    xjax = require_or_skip("jax", "xentropy.backends.jax")
except pytest.skip.Exception as exc:  # a module-level skip needs allow_module_level
    pytest.skip(str(exc), allow_module_level=True)

# the (4, 3) logits of the eager tests (one shape: eager primitives compile once per shape)
BAD_LOGITS = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [0.0, 3.0, -2.0]])
PARITY_TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-12)}
FUNCTIONS = (
    "softmax_cross_entropy",
    "safe_softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "poly_loss_cross_entropy",
)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def ours(name: str) -> Callable[..., Any]:
    return getattr(xjax, name)


def theirs(name: str) -> Callable[..., Any]:
    return getattr(optax.losses, name)


# --- cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    """Inputs (NumPy, float64 / int) for one of our functions and the optax function it mirrors."""

    function: str
    logits: np.ndarray
    labels: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None  # optax function (default: the same name)
    reference_options: dict[str, Any] | None = None  # (default: the same options)
    # optax loses the answer in float32: compare with optax in float64 instead
    optax_float32_inexact: bool = False


def _one_hot(index: np.ndarray, num_classes: int) -> np.ndarray:
    return (index[..., None] == np.arange(num_classes)).astype(np.float64)


def _softmax_cases() -> dict[str, Case]:
    rng = rng_for("jax-adapter", "softmax")
    nc = rng.normal(scale=2.0, size=(4, 5))
    ncd = rng.normal(scale=2.0, size=(3, 5, 4))
    ndd = rng.normal(scale=2.0, size=(2, 3, 5))
    n34 = rng.normal(scale=2.0, size=(2, 3, 4))
    rows = np.array([True, False, True, True])
    entries = rng.random((4, 5)) < 0.7
    entries[:, 0] = True  # every example keeps class 0 ...
    entries[1] = False  # ... but one, fully masked
    # -inf logits where the label is 0: 0 log 0 = 0 (optax's safe variant)
    masked_logits = nc.copy()
    masked_logits[0, 1] = masked_logits[2, [0, 3]] = -np.inf
    masked_labels = random_distributions(rng, (4, 5), -1)
    masked_labels[0, 1] = masked_labels[2, [0, 3]] = 0.0
    masked_labels /= masked_labels.sum(-1, keepdims=True)
    flat = random_distributions(rng, (2, 12), -1)
    cases = {
        "NC": Case("softmax_cross_entropy", nc, random_distributions(rng, (4, 5), -1)),
        "NddC": Case("softmax_cross_entropy", ndd, random_distributions(rng, (2, 3, 5), -1)),
        "NCd-axis=1": Case(
            "softmax_cross_entropy",
            ncd,
            random_distributions(rng, (3, 5, 4), 1),
            {"axis": 1},
        ),
        "axis=(1,2)": Case("softmax_cross_entropy", n34, flat.reshape(2, 3, 4), {"axis": (1, 2)}),
        "axis=None": Case(
            "softmax_cross_entropy",
            nc,
            random_distributions(rng, (20,), -1).reshape(4, 5),
            {"axis": None},
        ),
        "where=rows": Case(
            "softmax_cross_entropy", nc, random_distributions(rng, (4, 5), -1), {"where": rows}
        ),
        "where=entries": Case(
            "softmax_cross_entropy",
            nc,
            random_distributions(rng, (4, 5), -1),
            {"where": entries},
        ),
        "extreme-onehot": Case("softmax_cross_entropy", EXTREME_LOGITS, _one_hot(EXTREME_INDEX, 5)),
        "extreme-soft": Case(
            "softmax_cross_entropy", EXTREME_LOGITS, random_distributions(rng, (4, 5), -1)
        ),
        "minus-inf-under-zero-label": Case(
            "softmax_cross_entropy",
            masked_logits,
            masked_labels,
            reference="safe_softmax_cross_entropy",
        ),
        "safe-NC": Case("safe_softmax_cross_entropy", nc, random_distributions(rng, (4, 5), -1)),
        "safe-inf": Case("safe_softmax_cross_entropy", masked_logits, masked_labels),
    }
    return cases


def _integer_cases() -> dict[str, Case]:
    rng = rng_for("jax-adapter", "integer")
    name = "softmax_cross_entropy_with_integer_labels"
    nc = rng.normal(scale=2.0, size=(4, 5))
    entries = rng.random((4, 5)) < 0.6
    entries[1] = False
    labels = np.array([0, 7, 0, 0])  # row 1 is fully masked: any label, even out of range
    for row in (0, 2, 3):  # a label on a kept class
        entries[row, 0] = True
        labels[row] = rng.choice(np.flatnonzero(entries[row]))
    return {
        "NC": Case(name, nc, rng.integers(0, 5, size=4)),
        "NddC": Case(name, rng.normal(size=(2, 3, 5)), rng.integers(0, 5, size=(2, 3))),
        "NCd-axis=1": Case(
            name, rng.normal(size=(3, 5, 4)), rng.integers(0, 5, size=(3, 4)), {"axis": 1}
        ),
        "axis=(1,2)": Case(
            name, rng.normal(size=(2, 3, 4)), rng.integers(0, 12, size=2), {"axis": (1, 2)}
        ),
        "axis=(2,1)": Case(
            name, rng.normal(size=(2, 3, 4)), rng.integers(0, 12, size=2), {"axis": (2, 1)}
        ),
        "where=rows": Case(
            name, nc, np.array([1, -1, 3, 4]), {"where": np.array([True, False, True, True])}
        ),
        "where=entries": Case(name, nc, labels, {"where": entries}),
        # optax computes logsumexp - z_target in float32: the e^-8 = 3.4e-4 loss of row 0 is
        # below the float32 spacing of 1e4 and comes out 0; the core splits the logsumexp exactly.
        # In float64 optax's error there is at most half a spacing of 1e4 (9.1e-13 < atol 1e-12)
        "extreme": Case(name, EXTREME_LOGITS, EXTREME_INDEX, optax_float32_inexact=True),
    }


def _sigmoid_cases() -> dict[str, Case]:
    rng = rng_for("jax-adapter", "sigmoid")
    nc = rng.normal(scale=3.0, size=(4, 5))
    hard = (rng.random((4, 5)) < 0.5).astype(np.float64)
    soft = rng.random((4, 5))
    bce, focal = "sigmoid_binary_cross_entropy", "sigmoid_focal_loss"
    return {
        "bce-soft": Case(bce, nc, soft),
        "bce-NdC": Case(bce, rng.normal(size=(2, 3, 5)), rng.random((2, 3, 5))),
        "bce-extreme": Case(bce, EXTREME_LOGITS, hard),
        "bce-bool": Case(bce, nc, hard.astype(bool)),
        "bce-int": Case(bce, nc, hard.astype(np.int32)),
        "focal-default": Case(focal, nc, hard),
        "focal-soft-alpha": Case(focal, nc, soft, {"alpha": 0.25}),
        "focal-gamma=0": Case(focal, nc, hard, {"gamma": 0.0, "alpha": 0.75}),
        "focal-gamma=1.5": Case(focal, nc, soft, {"gamma": 1.5}),
        "focal-gamma=0.5": Case(focal, nc, hard, {"gamma": 0.5, "alpha": 0.4}),
        "focal-extreme": Case(focal, EXTREME_LOGITS, hard, {"alpha": 0.25}),
    }


def _poly_cases() -> dict[str, Case]:
    rng = rng_for("jax-adapter", "poly")
    name = "poly_loss_cross_entropy"
    nc = rng.normal(scale=2.0, size=(4, 5))
    entries = rng.random((4, 5)) < 0.7
    entries[2] = False
    entries[:, 4] = entries[:, 4] | (np.arange(4) != 2)
    inf_logits = nc.copy()
    inf_logits[1, 2] = inf_logits[3, [0, 1]] = -np.inf
    inf_labels = random_distributions(rng, (4, 5), -1)
    inf_labels[1, 2] = inf_labels[3, [0, 1]] = 0.0
    return {
        "NC": Case(name, nc, random_distributions(rng, (4, 5), -1)),
        "onehot-eps=-1": Case(name, nc, _one_hot(rng.integers(0, 5, 4), 5), {"epsilon": -1.0}),
        "eps=0": Case(name, nc, random_distributions(rng, (4, 5), -1), {"epsilon": 0.0}),
        "NCd-axis=1": Case(
            name,
            rng.normal(size=(3, 5, 4)),
            random_distributions(rng, (3, 5, 4), 1),
            {"axis": 1, "epsilon": 3.0},
        ),
        "axis=(1,2)": Case(
            name,
            rng.normal(size=(2, 3, 4)),
            random_distributions(rng, (2, 12), -1).reshape(2, 3, 4),
            {"axis": (1, 2)},
        ),
        "where=entries": Case(name, nc, random_distributions(rng, (4, 5), -1), {"where": entries}),
        "extreme": Case(name, EXTREME_LOGITS, _one_hot(EXTREME_INDEX, 5)),
        # optax's poly loss gives NaN at a -inf logit; masking those entries out is 0 log 0 = 0
        "minus-inf-under-zero-label": Case(
            name, inf_logits, inf_labels, reference_options={"where": np.isfinite(inf_logits)}
        ),
    }


CASES: dict[str, Case] = {
    **{f"softmax-{k}": v for k, v in _softmax_cases().items()},
    **{f"integer-{k}": v for k, v in _integer_cases().items()},
    **{f"sigmoid-{k}": v for k, v in _sigmoid_cases().items()},
    **{f"poly-{k}": v for k, v in _poly_cases().items()},
}
# float64 checks the arithmetic at 1e-12 on every function and option set; the layouts (axis
# tuples, K-dim, where) are index plumbing that float32 already checks, and every case costs
# two XLA compilations
FLOAT64_CASES = (
    "softmax-NC",
    "softmax-NCd-axis=1",
    "softmax-where=entries",
    "softmax-extreme-onehot",
    "softmax-extreme-soft",
    "softmax-minus-inf-under-zero-label",
    "integer-NC",
    "integer-axis=(2,1)",
    "integer-extreme",
    "sigmoid-bce-soft",
    "sigmoid-bce-extreme",
    "sigmoid-focal-soft-alpha",
    "sigmoid-focal-gamma=0",
    "sigmoid-focal-gamma=0.5",
    "sigmoid-focal-extreme",
    "poly-NC",
    "poly-onehot-eps=-1",
    "poly-extreme",
    "poly-minus-inf-under-zero-label",
)
LOW_PRECISION_CASES = (
    "softmax-NC",
    "softmax-where=entries",
    "softmax-extreme-soft",
    "integer-NC",
    "integer-extreme",
    "sigmoid-bce-soft",
    "sigmoid-bce-extreme",
    "sigmoid-focal-soft-alpha",
    "poly-NC",
)


def _as_jax(value: Any, dtype: str) -> Any:
    """NumPy floating arrays in ``dtype``; other arrays and Python values unchanged."""
    if isinstance(value, np.ndarray):
        return jnp.asarray(value.astype(dtype) if value.dtype.kind == "f" else value)
    return value


@functools.partial(jax.jit, static_argnums=(0, 1))
def _value_and_vjp_jit(
    fn: Callable[..., Any],
    static: tuple[tuple[str, Any], ...],
    logits: Any,
    labels: Any,
    arrays: dict[str, Any],
    seed: Any,
) -> tuple[Any, Any]:
    loss, vjp = jax.vjp(lambda z: fn(z, labels, **arrays, **dict(static)), logits)
    # a pseudo-random cotangent in {-1, -3/4, ..., 1}: exact in every dtype, so both sides see
    # the same one (jax.random would add a slow-to-compile hash to every program)
    phase = jnp.arange(loss.size, dtype=jnp.float32) * 2.3 + seed
    cotangent = jnp.round(4.0 * jnp.sin(phase)).reshape(loss.shape) / 4.0
    return loss, vjp(cotangent.astype(loss.dtype))[0]


def _value_and_vjp(
    fn: Callable[..., Any], case: Case, options: dict[str, Any], dtype: str, seed: str
) -> tuple[Any, Any]:
    """The losses and their VJP with a pseudo-random cotangent, under ``jax.jit`` (one
    compilation per function, options and shapes, shared by the cases that have them in
    common; eager first calls compile every primitive and cost seconds on a CPU)."""
    arrays = {k: _as_jax(v, dtype) for k, v in options.items() if isinstance(v, np.ndarray)}
    static = tuple(sorted((k, v) for k, v in options.items() if not isinstance(v, np.ndarray)))
    logits, labels = _as_jax(case.logits, dtype), _as_jax(case.labels, dtype)
    phase = np.float32(zlib.crc32(seed.encode()) % 1000)
    return _value_and_vjp_jit(fn, static, logits, labels, arrays, phase)


def _compare(case_id: str, dtype: str, reference_dtype: str, rtol: float, atol: float) -> None:
    """Our function on inputs rounded to ``dtype`` against optax in ``reference_dtype`` on the
    same rounded inputs (optax in float64 where ``case.optax_float32_inexact``)."""
    case = CASES[case_id]
    if case.optax_float32_inexact and reference_dtype != "float64":
        with jax.enable_x64(True):
            _compare(case_id, dtype, "float64", rtol, atol)
        return
    reference = theirs(case.reference or case.function)
    reference_options = case.options if case.reference_options is None else case.reference_options
    rounded = Case(
        case.function,
        case.logits.astype(dtype).astype(np.float64),
        case.labels.astype(dtype).astype(np.float64)
        if case.labels.dtype.kind == "f"
        else case.labels,
        case.options,
    )
    loss, grad = _value_and_vjp(ours(case.function), rounded, case.options, dtype, case_id)
    assert loss.dtype == grad.dtype == jnp.dtype(dtype)
    ref_loss, ref_grad = _value_and_vjp(
        reference, rounded, reference_options, reference_dtype, case_id
    )
    assert loss.shape == ref_loss.shape
    assert_close(loss, ref_loss, reference_dtype, rtol=rtol, atol=atol, msg=f"{case_id} loss")
    assert_close(grad, ref_grad, reference_dtype, rtol=rtol, atol=atol, msg=f"{case_id} grad")


# --- signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_signature_is_optax_plus_validate(name):
    """Same parameter names, order, kinds and defaults as optax; keyword-only extras after them:
    the LLM options on the two softmax cross entropies, then ``validate``."""
    mine = list(inspect.signature(ours(name)).parameters.values())
    native = list(inspect.signature(theirs(name)).parameters.values())
    assert [(p.name, p.kind, p.default) for p in mine[: len(native)]] == [
        (p.name, p.kind, p.default) for p in native
    ]
    extra = mine[len(native) :]
    keyword = inspect.Parameter.KEYWORD_ONLY
    llm = [("softcap", keyword, None), ("z_loss", keyword, 0.0), ("return_lse", keyword, False)]
    with_llm = name in ("softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels")
    assert [(p.name, p.kind, p.default) for p in extra] == [
        *(llm if with_llm else []),
        ("validate", keyword, True),
    ]
    assert "optax" in (ours(name).__doc__ or "")


# --- parity with optax ------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", list(CASES))
def test_parity_float32(case_id):
    _compare(case_id, "float32", "float32", *PARITY_TOLERANCE["float32"])


@pytest.mark.parametrize("case_id", FLOAT64_CASES)
def test_parity_float64(case_id, x64):
    _compare(case_id, "float64", "float64", *PARITY_TOLERANCE["float64"])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case_id", LOW_PRECISION_CASES)
def test_parity_low_precision(case_id, dtype):
    """16-bit inputs against optax in float32 on the same rounded inputs; the result keeps the
    input dtype and differs from the float32 one by its final rounding only."""
    _compare(case_id, dtype, "float32", *tolerance(dtype))


# --- where: masked entries as in optax --------------------------------------------------------


@pytest.mark.parametrize(
    "case_id",
    [
        "softmax-where=rows",
        "softmax-where=entries",
        "integer-where=rows",
        "integer-where=entries",
        "poly-where=entries",
    ],
)
def test_masked_examples_match_optax_exactly(case_id):
    """A fully masked example gives optax's zero, sign included, and a zero gradient row; its
    label may be anything (the cases hold -1 or 7 there), even eagerly with validation."""
    case = CASES[case_id]
    logits, labels = _as_jax(case.logits, "float32"), _as_jax(case.labels, "float32")
    where = jnp.asarray(case.options["where"])
    kept = np.asarray(where.any(axis=-1) if where.ndim == logits.ndim else where)
    fn = ours(case.function)
    loss = np.asarray(fn(logits, labels, where=where))  # eager: validation runs
    grad = np.asarray(jax.jit(jax.grad(lambda z: fn(z, labels, where=where).sum()))(logits))
    ref = np.asarray(theirs(case.function)(logits, labels, where=where))
    assert not kept.all()
    np.testing.assert_array_equal(loss[~kept], ref[~kept])
    np.testing.assert_array_equal(np.signbit(loss[~kept]), np.signbit(ref[~kept]))
    np.testing.assert_array_equal(grad[~kept], 0.0)


def test_label_on_masked_class_is_infinite_unlike_optax():
    """Documented difference: the label has probability 0 under the masked softmax."""
    logits = jnp.asarray(BAD_LOGITS, dtype=jnp.float32)
    labels = jnp.array([0, 1, 2, 1])
    where = jnp.array([[False, True, True], [True, True, True], [True] * 3, [True] * 3])

    def losses(z):
        return xjax.softmax_cross_entropy_with_integer_labels(z, labels, where=where)

    loss, grad = losses(logits), jax.jit(jax.grad(lambda z: losses(z).sum()))(logits)
    ref = optax.softmax_cross_entropy_with_integer_labels(logits, labels, where=where)
    assert float(loss[0]) == np.inf and np.isfinite(ref[0])  # optax: lse(2, 3) - 1
    assert_close(loss[1:], ref[1:], "float32")
    assert float(grad[0, 0]) == 0.0  # the masked-out class gets no gradient


def test_poly_accepts_a_per_example_mask():
    """optax's poly loss raises on a per-example ``where``; ours covers all classes with it."""
    case = CASES["poly-NC"]
    logits, labels = _as_jax(case.logits, "float32"), _as_jax(case.labels, "float32")
    rows = jnp.array([True, False, True, False])
    with pytest.raises(ValueError):
        optax.losses.poly_loss_cross_entropy(logits, labels, where=rows)
    full = jnp.broadcast_to(rows[:, None], logits.shape)
    assert_close(
        xjax.poly_loss_cross_entropy(logits, labels, where=rows),
        optax.losses.poly_loss_cross_entropy(logits, labels, where=full),
        "float32",
    )


def test_minus_inf_logit_under_zero_label_is_finite_unlike_optax():
    """D07: optax's plain softmax_cross_entropy and poly loss give NaN; we give 0 log 0 = 0."""
    case = CASES["softmax-minus-inf-under-zero-label"]
    logits, labels = _as_jax(case.logits, "float32"), _as_jax(case.labels, "float32")
    assert np.isnan(optax.softmax_cross_entropy(logits, labels)).any()
    assert np.isnan(optax.losses.poly_loss_cross_entropy(logits, labels)).any()
    assert np.isfinite(xjax.softmax_cross_entropy(logits, labels)).all()
    assert np.isfinite(xjax.poly_loss_cross_entropy(logits, labels)).all()


# --- jit, vmap, grad --------------------------------------------------------------------------


def _sample(name: str) -> tuple[Any, Any, dict[str, Any]]:
    """(logits, labels, options) for each function, on the (4, 3) shape of the eager tests."""
    rng = rng_for("jax-adapter", "transforms", name)
    logits = jnp.asarray(rng.normal(scale=2.0, size=(4, 3)), dtype=jnp.float32)
    if name == "softmax_cross_entropy_with_integer_labels":
        return logits, jnp.asarray(rng.integers(0, 3, size=4)), {}
    if name in ("sigmoid_binary_cross_entropy", "sigmoid_focal_loss"):
        options = {"alpha": 0.25} if name == "sigmoid_focal_loss" else {}
        return logits, jnp.asarray(rng.random((4, 3)), dtype=jnp.float32), options
    labels = jnp.asarray(random_distributions(rng, (4, 3), -1), dtype=jnp.float32)
    options = {"epsilon": 1.5} if name == "poly_loss_cross_entropy" else {}
    return logits, labels, options


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_vmap_grad(name):
    fn = ours(name)
    logits, labels, options = _sample(name)

    def losses(z, y):
        return fn(z, y, **options)

    def total(z, y):
        return losses(z, y).sum()

    eager = losses(logits, labels)
    assert_close(jax.jit(losses)(logits, labels), eager, "float32")
    # vmap over the examples: per-example losses do not mix examples
    assert_close(jax.vmap(losses)(logits, labels), eager, "float32")
    grad = jax.grad(total)(logits, labels)
    ref_grad = jax.jit(jax.grad(lambda z, y: theirs(name)(z, y, **options).sum()))(logits, labels)
    assert_close(grad, ref_grad, "float32", rtol=1e-5, atol=1e-6)
    value, jit_grad = jax.jit(jax.value_and_grad(total))(logits, labels)
    assert_close(value, eager.sum(), "float32")
    assert_close(jit_grad, grad, "float32", rtol=1e-6, atol=1e-7)
    per_example = jax.jit(jax.vmap(jax.grad(total)))(logits, labels)
    assert_close(per_example, grad, "float32", rtol=1e-6, atol=1e-7)


def test_gradient_comes_from_the_core_backward():
    """The custom_jvp calls ``op.backward``: the gradient is the core's value_and_grad."""
    rng = rng_for("jax-adapter", "core-backward")
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=4)
    grad = jax.grad(
        lambda z: xjax.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(labels)).sum()
    )(jnp.asarray(logits))
    _, expected = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        logits, labels, reduction="none"
    )
    assert_close(grad, expected, "float32", rtol=1e-6, atol=1e-7)


# --- out-of-range labels (anchors S02-S05) ----------------------------------------------------


@pytest.mark.parametrize("bad", [3, 7, -1, -100])
def test_out_of_range_label_raises_eagerly(bad):
    logits = jnp.asarray(BAD_LOGITS, dtype=jnp.float32)
    labels = jnp.array([0, bad, 2, 1])
    with pytest.raises(ValueError, match=f"class index {bad}"):
        xjax.softmax_cross_entropy_with_integer_labels(logits, labels)
    with pytest.raises(ValueError, match=f"class index {bad}"):  # an eager jax.grad too
        jax.grad(lambda z: xjax.softmax_cross_entropy_with_integer_labels(z, labels).sum())(logits)


@pytest.mark.parametrize(
    ("transform", "bad"), [("jit", 3), ("jit", -1), ("jit", -100), ("vmap", 3)]
)
def test_out_of_range_label_is_nan_when_traced(transform, bad):
    """Under jit / vmap the bad example's loss and gradient row are NaN, the others exact.

    optax returns a finite gradient row for it (and for -1 a finite loss, the last class's).
    """
    logits = jnp.asarray(BAD_LOGITS, dtype=jnp.float32)
    labels = jnp.array([0, bad, 2, 1])

    def losses(z, y):
        return xjax.softmax_cross_entropy_with_integer_labels(z, y)

    if transform == "jit":
        loss = jax.jit(losses)(logits, labels)
        grad = jax.jit(jax.grad(lambda z, y: losses(z, y).sum()))(logits, labels)
    else:  # eager vmap: the labels cannot be read, so they are not validated
        loss = jax.vmap(losses)(logits, labels)
        grad = jax.vmap(jax.grad(losses))(logits, labels)
    loss, grad = np.asarray(loss), np.asarray(grad)

    def reference(z, y):
        value = optax.softmax_cross_entropy_with_integer_labels(z, y)
        return value, jax.grad(
            lambda z: optax.softmax_cross_entropy_with_integer_labels(z, y).sum()
        )(z)

    ref, ref_grad = jax.jit(reference)(logits, labels)
    good = np.array([True, False, True, True])
    assert np.isnan(loss[1]) and np.isnan(grad[1]).all()
    assert_close(loss[good], np.asarray(ref)[good], "float32")
    assert_close(grad[good], np.asarray(ref_grad)[good], "float32", rtol=1e-5, atol=1e-6)
    assert np.isfinite(ref_grad).all()  # optax: a finite, wrong gradient row


def test_validate_false_skips_the_check_eagerly():
    """No error (the labels are not read back); the bad example's loss is NaN, the others equal
    the validated loss on valid labels."""
    logits = jnp.asarray(BAD_LOGITS, dtype=jnp.float32)
    loss = xjax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.array([0, 3, 2, 1]), validate=False
    )
    expected = xjax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1, 2, 1]))
    good = np.array([True, False, True, True])
    assert np.isnan(loss[1]) and np.isfinite(np.asarray(loss)[good]).all()
    assert_close(np.asarray(loss)[good], np.asarray(expected)[good], "float32")
    labels = jnp.array([[0.0, 1.5, 0.0]] * 4)
    with pytest.raises(ValueError, match=r"got 1\.5"):
        xjax.sigmoid_binary_cross_entropy(logits, labels)
    loss = np.asarray(xjax.sigmoid_binary_cross_entropy(logits, labels, validate=False))
    assert np.isnan(loss[:, 1]).all() and np.isfinite(loss[:, [0, 2]]).all()


def test_linear_cross_entropy_validate():
    """The fused loss: ValueError naming the index by default, a NaN row with validate=False."""
    hidden = jnp.asarray(BAD_LOGITS, dtype=jnp.float32)
    weight = jnp.asarray(rng_for("jax-adapter", "lce-validate").normal(size=(5, 3)), jnp.float32)
    labels = jnp.array([0, 5, 2, -100])
    with pytest.raises(ValueError, match="class index 5"):
        xjax.linear_cross_entropy(hidden, weight, labels, ignore_index=-100, reduction="none")
    loss = xjax.linear_cross_entropy(
        hidden, weight, labels, ignore_index=-100, reduction="none", validate=False
    )
    expected = xjax.linear_cross_entropy(
        hidden, weight, jnp.array([0, 1, 2, -100]), ignore_index=-100, reduction="none"
    )
    assert np.isnan(loss[1])
    assert_close(np.asarray(loss)[[0, 2, 3]], np.asarray(expected)[[0, 2, 3]], "float32")


# --- cotangents of the labels -----------------------------------------------------------------


def test_integer_labels_get_float0_cotangents():
    logits = jnp.asarray(BAD_LOGITS, dtype=jnp.float32)
    labels = jnp.array([0, 1, 2, 1])
    fn = xjax.softmax_cross_entropy_with_integer_labels
    _, vjp = jax.vjp(fn, logits, labels)
    grad_logits, grad_labels = vjp(jnp.ones(4, dtype=jnp.float32))
    assert grad_labels.dtype == jax.dtypes.float0 and grad_labels.shape == labels.shape
    _, allow_int = jax.grad(lambda z, y: fn(z, y).sum(), argnums=(0, 1), allow_int=True)(
        logits, labels
    )
    assert allow_int.dtype == jax.dtypes.float0
    assert_close(grad_logits, jax.grad(lambda z: fn(z, labels).sum())(logits), "float32")


@pytest.mark.parametrize(
    "name", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "poly_loss_cross_entropy"]
)
def test_float_labels_are_differentiated_unless_stopped(name):
    """Soft labels have optax's gradient (see tests/test_jax_autodiff.py); stop_gradient keeps
    the logits' gradient and gives the labels a zero one."""
    fn = ours(name)
    logits, labels, options = _sample(name)
    grad, label_grad = jax.jit(
        jax.grad(lambda z, y: fn(z, jax.lax.stop_gradient(y), **options).sum(), argnums=(0, 1))
    )(logits, labels)
    expected = jax.jit(jax.grad(lambda z, y: fn(z, y, **options).sum()))(logits, labels)
    assert_close(grad, expected, "float32")
    assert not np.asarray(label_grad).any()

    def label_gradient(loss):
        return jax.jit(jax.grad(lambda z, y: loss(z, y, **options).sum(), argnums=1))(
            logits, labels
        )

    ref_label_grad, label_grad = label_gradient(theirs(name)), label_gradient(fn)
    assert np.abs(np.asarray(ref_label_grad)).max() > 0.1
    assert_close(label_grad, ref_label_grad, "float32", rtol=1e-5, atol=1e-6)


# --- apply_op: the generic entry point --------------------------------------------------------


def test_apply_op_with_reduction_and_class_weights():
    rng = rng_for("jax-adapter", "apply_op")
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    labels = np.array([2, -100, 0, 1])
    weight = np.array([0.5, 2.0, 1.5], dtype=np.float32)
    options = {"ignore_index": -100, "label_smoothing": 0.1, "reduction": "mean"}
    op = ops.SoftmaxCrossEntropy(**options)
    # NumPy labels and weights are converted; value checks run eagerly
    value, grad = jax.value_and_grad(lambda z: xjax.apply_op(op, z, labels, weight))(
        jnp.asarray(logits)
    )
    ref_value, ref_grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        logits, labels, class_weight=weight, **options
    )
    assert value.shape == ()
    assert_close(value, ref_value, "float32", rtol=1e-6, atol=1e-7)
    assert_close(grad, ref_grad, "float32", rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="class_weight"):
        xjax.apply_op(op, logits, labels, -weight)


def test_apply_op_linear_cross_entropy_gradients():
    """``LinearCrossEntropy`` differentiates hidden, weight and bias (positions 0, 1, 3)."""
    rng = rng_for("jax-adapter", "linear")
    hidden = jnp.asarray(rng.normal(size=(6, 4)), dtype=jnp.float32)
    weight = jnp.asarray(rng.normal(size=(7, 4)), dtype=jnp.float32)
    bias = jnp.asarray(rng.normal(size=7), dtype=jnp.float32)
    targets = jnp.asarray(rng.integers(0, 7, size=6))
    op = ops.LinearCrossEntropy(chunk_size=3)
    assert ops.op_gradient_positions(op, 4) == (0, 1, 3)
    argnums = (0, 1, 2)
    grads = jax.jit(jax.grad(lambda h, w, b: xjax.apply_op(op, h, w, targets, b), argnums))(
        hidden, weight, bias
    )

    def reference(h, w, b):
        return optax.softmax_cross_entropy_with_integer_labels(h @ w.T + b, targets).mean()

    expected = jax.jit(jax.grad(reference, argnums))(hidden, weight, bias)
    for got, want in zip(grads, expected, strict=True):
        assert_close(got, want, "float32", rtol=1e-5, atol=1e-6)


def test_apply_op_kl_divergence_differentiates_p_and_q():
    rng = rng_for("jax-adapter", "kl")
    p = jnp.asarray(random_distributions(rng, (4, 3), -1), dtype=jnp.float32)
    q = jnp.asarray(random_distributions(rng, (4, 3), -1), dtype=jnp.float32)
    op = ops.InformationMeasure(measure="kl_divergence")
    assert ops.op_gradient_positions(op, 2) == (1,)
    grad = jax.jit(jax.grad(lambda q: xjax.apply_op(op, p, q).sum()))(q)
    expected = jax.jit(jax.grad(lambda q: jnp.sum(p * (jnp.log(p) - jnp.log(q)))))(q)
    assert_close(grad, expected, "float32", rtol=1e-5, atol=1e-6)
    grad = jax.jit(jax.grad(lambda p: xjax.apply_op(op, p, q).sum()))(p)
    expected = jax.jit(jax.grad(lambda p: jnp.sum(p * (jnp.log(p) - jnp.log(q)))))(p)
    assert_close(grad, expected, "float32", rtol=1e-5, atol=1e-6)


# --- bad input --------------------------------------------------------------------------------


def test_labels_are_never_broadcast():
    """Anchors B02 / B03 / D04 / S10: optax broadcasts these into a silently wrong result."""
    logits = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match="never broadcast"):
        xjax.softmax_cross_entropy(logits, jnp.array([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        xjax.sigmoid_binary_cross_entropy(jnp.zeros(4), jnp.ones((4, 1)))
    assert optax.sigmoid_binary_cross_entropy(jnp.zeros(4), jnp.ones((4, 1))).shape == (4, 4)
    with pytest.raises(ValueError):
        xjax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0]))


def test_label_kinds_are_not_mixed_up():
    logits = jnp.zeros((3, 3))
    with pytest.raises(ValueError, match="softmax_cross_entropy for one-hot"):
        xjax.softmax_cross_entropy_with_integer_labels(logits, jnp.eye(3, dtype=jnp.int32))
    with pytest.raises(ValueError, match="with_integer_labels"):
        xjax.softmax_cross_entropy(logits, jnp.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        xjax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="'axis' must be of type"):
        xjax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1, 2]), axis=None)


def test_label_values_are_validated_eagerly():
    """B04 / D06: optax computes with labels outside their range (negative losses)."""
    with pytest.raises(ValueError, match="labels must lie in"):
        xjax.sigmoid_binary_cross_entropy(jnp.zeros(2), jnp.array([1.5, -0.5]))
    with pytest.raises(ValueError, match="labels must lie in"):
        xjax.softmax_cross_entropy(jnp.zeros((1, 2)), jnp.array([[-0.5, 1.5]]))
    assert float(optax.sigmoid_binary_cross_entropy(jnp.array(2.0), jnp.array(1.5))) < 0


def test_options_may_be_numbers_or_0d_arrays():
    """NumPy scalars, 0-d arrays and traced 0-d values are accepted (optax's idiom
    ``jax.jit(loss)(x, y, gamma=g)``; their gradients are in tests/test_jax_autodiff.py);
    optax's per-element ``alpha`` is not (ValueError, a deliberate difference)."""
    logits, labels = jnp.array([-1.0, 0.5, 2.0]), jnp.array([1.0, 0.0, 0.3])
    expected = optax.sigmoid_focal_loss(logits, labels, alpha=0.25, gamma=1.0)
    assert_close(
        xjax.sigmoid_focal_loss(logits, labels, alpha=jnp.array(0.25), gamma=np.float32(1.0)),
        expected,
        "float32",
    )
    traced = jax.jit(lambda a, g: xjax.sigmoid_focal_loss(logits, labels, alpha=a, gamma=g))
    assert_close(traced(0.25, 1.0), expected, "float32")
    poly = jax.jit(lambda e: xjax.poly_loss_cross_entropy(logits[None], labels[None], epsilon=e))
    reference = optax.losses.poly_loss_cross_entropy(logits[None], labels[None], epsilon=1.5)
    assert_close(poly(1.5), reference, "float32")
    with pytest.raises(ValueError, match="alpha must be"):
        xjax.sigmoid_focal_loss(logits, labels, alpha=jnp.array([0.25, 0.5, 0.75]))
