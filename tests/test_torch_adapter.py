"""``xentropy.backends.torch``: parity with ``torch.nn.functional`` and ``torch.nn``.

Every function is compared with its ``torch.nn.functional`` namesake on seeded random cases over
its options (class weights, ``ignore_index`` including the default -100, label smoothing, K-dim
inputs, the no-batch ``(C,)`` layout, probability targets, ``pos_weight``, logits of +-1e4) and
every reduction: the value, and the gradient of ``sum(cotangent * loss)`` with respect to
``input`` for a random cotangent, so that the unreduced backward is checked entry by entry.
``torch.autograd.gradcheck`` checks the registered backward in float64, and one compiled call
per loss family checks ``torch.compile``. The places where the adapter deliberately differs from
PyTorch (listed in ``xentropy.backends.torch.functional``) are tested for our behaviour.
"""

from __future__ import annotations

import doctest
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import (
    CLASS_WEIGHT,
    EXTREME_INDEX,
    EXTREME_LOGITS,
    POS_WEIGHT,
    random_distributions,
    require_or_skip,
    rng_for,
)
from tolerances import assert_close

REDUCTIONS = ("none", "mean", "sum")

# Parity with torch in float32 / float64 (rtol, atol): the brief's bounds, met by every case.
PARITY_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-6),
    "float64": (1e-12, 1e-12),
}
# 16-bit inputs: torch's CPU kernels keep some intermediates (log_softmax, the BCE logs) in the
# 16-bit dtype, the core computes in float32 and rounds once, so the two differ by rounding of
# the 16-bit dtype. Measured worst cases over the cases below: 2 ulp of the result in float16 and
# bfloat16 (values), and 1 ulp of the largest gradient entry; the bounds leave a factor of 2.
# (eps: float16 2**-10, bfloat16 2**-7.)
LOW_PRECISION_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (4 * 2.0**-10, 2 * 2.0**-10),
    "bfloat16": (4 * 2.0**-7, 2 * 2.0**-7),
}


@pytest.fixture(scope="module")
def torch() -> Iterator[ModuleType]:
    torch = require_or_skip("torch")
    # the tensors here are tiny: an intra-op thread pool only adds contention (on a busy 2-core
    # machine it made every op ten times slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def adapter(torch: ModuleType) -> ModuleType:
    import xentropy.backends.torch as adapter

    return adapter


@pytest.fixture(scope="module")
def F(adapter: ModuleType) -> ModuleType:
    return adapter.functional


@pytest.fixture(scope="module")
def TF(torch: ModuleType) -> ModuleType:
    return torch.nn.functional


# --- running both sides ----------------------------------------------------------------------


def tensor(torch: ModuleType, array: Any, dtype: str | None = None) -> Any:
    t = torch.from_numpy(np.array(array))
    return t if dtype is None else t.to(getattr(torch, dtype))


def value_and_grad(
    torch: ModuleType,
    fn: Callable[..., Any],
    input: Any,
    *args: Any,
    seed: object,
    cotangent_dtype: str | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``fn(input, *args, **kwargs)`` and the gradient of ``sum(cotangent * loss)`` wrt input.

    The cotangent is drawn from ``seed``, rounded to ``cotangent_dtype`` (default: the loss's).
    """
    x = input.detach().clone().requires_grad_(True)
    loss = fn(x, *args, **kwargs)
    cotangent = rng_for("cotangent", seed).uniform(0.5, 1.5, size=tuple(loss.shape))
    cotangent = tensor(torch, cotangent, cotangent_dtype).to(loss.dtype)
    (grad,) = torch.autograd.grad(loss, x, cotangent)
    return loss.detach().double().numpy(), grad.double().numpy()


def compare(
    torch: ModuleType,
    ours: Callable[..., Any],
    theirs: Callable[..., Any],
    input: Any,
    *args: Any,
    dtype: str,
    seed: object,
    tolerances: dict[str, tuple[float, float]] = PARITY_TOLERANCES,
    **kwargs: Any,
) -> None:
    value, grad = value_and_grad(torch, ours, input, *args, seed=seed, **kwargs)
    expected_value, expected_grad = value_and_grad(torch, theirs, input, *args, seed=seed, **kwargs)
    rtol, atol = tolerances[dtype]
    assert_close(value, expected_value, dtype, rtol=rtol, atol=atol, msg="value")
    assert_close(grad, expected_grad, dtype, rtol=rtol, atol=atol, msg="gradient")


# --- sample inputs ---------------------------------------------------------------------------

C = 5
# torch layouts: name -> input shape (classes on axis 1, or axis 0 for the no-batch layout)
LAYOUTS: dict[str, tuple[int, ...]] = {
    "NC": (6, C),
    "C": (C,),
    "NCd": (3, C, 4),
    "NCdd": (2, C, 3, 2),
}


def index_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return () if len(shape) == 1 else shape[:1] + shape[2:]


def labels(rng: np.random.Generator, shape: tuple[int, ...], ignore_index: int | None) -> Any:
    """Class indices for an input of ``shape``; with ``ignore_index`` about a third of the
    examples hold it, but never all of them (a mean over nothing has its own test)."""
    y = rng.integers(0, C, size=index_shape(shape))
    if ignore_index is not None and y.size > 1:
        flat = y.reshape(-1)
        flat[rng.random(flat.size) < 0.35] = ignore_index
        flat[0] = ignore_index
        flat[-1] = (ignore_index + 1) % C
    return y


def probabilities(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return random_distributions(rng, shape, 0 if len(shape) == 1 else 1)


CE_INDEX_OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "weight": {"weight": CLASS_WEIGHT},
    "ignore=1": {"ignore_index": 1},
    "ignore=default": {"ignore_index": -100},
    "smoothing": {"label_smoothing": 0.15},
    "weight+smoothing": {"weight": CLASS_WEIGHT, "label_smoothing": 0.3},
    "weight+ignore+smoothing": {"weight": CLASS_WEIGHT, "ignore_index": 2, "label_smoothing": 0.2},
}
CE_PROB_OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "weight": {"weight": CLASS_WEIGHT},
    "smoothing": {"label_smoothing": 0.15},
    "weight+smoothing": {"weight": CLASS_WEIGHT, "label_smoothing": 0.3},
}
CE_CASES = [
    pytest.param(layout, kind, option, id=f"{layout}-{kind}-{option}")
    for layout in LAYOUTS
    for kind, options in (("index", CE_INDEX_OPTIONS), ("prob", CE_PROB_OPTIONS))
    for option in options
]


def ce_sample(torch: ModuleType, layout: str, kind: str, option: str, dtype: str) -> Any:
    rng = rng_for("cross_entropy", layout, kind, option)
    shape = LAYOUTS[layout]
    options = dict((CE_INDEX_OPTIONS if kind == "index" else CE_PROB_OPTIONS)[option])
    logits = tensor(torch, rng.normal(scale=3.0, size=shape), dtype)
    if kind == "index":
        # the default ignore_index is exercised by leaving it out and putting -100 in the labels
        ignore = options.pop("ignore_index", None)
        target = tensor(torch, labels(rng, shape, ignore))
        if ignore not in (None, -100):
            options["ignore_index"] = ignore
    else:
        target = tensor(torch, probabilities(rng, shape), dtype)
    if "weight" in options:
        options["weight"] = tensor(torch, options["weight"], dtype)
    return logits, target, options


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("layout", "kind", "option"), CE_CASES)
def test_cross_entropy_matches_torch(torch, F, TF, layout, kind, option, dtype, reduction):
    logits, target, options = ce_sample(torch, layout, kind, option, dtype)
    compare(
        torch,
        F.cross_entropy,
        TF.cross_entropy,
        logits,
        target,
        dtype=dtype,
        seed=(layout, kind, option, reduction),
        reduction=reduction,
        **options,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("option", ["plain", "weight+smoothing"])
def test_cross_entropy_extreme_logits(torch, F, TF, option, kind, dtype, reduction):
    """Logits of +-1e4 with ties and a near-tie 8 below the maximum (loss 3.4e-4 there)."""
    logits = tensor(torch, EXTREME_LOGITS, dtype)
    if kind == "index":
        target = tensor(torch, EXTREME_INDEX)
    else:
        target = tensor(
            torch, probabilities(rng_for("extreme", option), EXTREME_LOGITS.shape), dtype
        )
    options = dict(CE_PROB_OPTIONS[option])
    if "weight" in options:
        options["weight"] = tensor(torch, options["weight"], dtype)
    compare(
        torch,
        F.cross_entropy,
        TF.cross_entropy,
        logits,
        target,
        dtype=dtype,
        seed=("extreme", option, kind, reduction),
        reduction=reduction,
        **options,
    )


NLL_OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "weight": {"weight": CLASS_WEIGHT},
    "ignore=1": {"ignore_index": 1},
    "ignore=default": {"ignore_index": -100},
    "weight+ignore": {"weight": CLASS_WEIGHT, "ignore_index": 3},
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", NLL_OPTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_nll_loss_matches_torch(torch, F, TF, layout, option, dtype, reduction):
    """Unnormalised scores on purpose: nll_loss is ``-w[y] * input[y]``, normalising nothing."""
    rng = rng_for("nll_loss", layout, option)
    shape = LAYOUTS[layout]
    options = dict(NLL_OPTIONS[option])
    ignore = options.pop("ignore_index", None)
    if ignore not in (None, -100):
        options["ignore_index"] = ignore
    if "weight" in options:
        options["weight"] = tensor(torch, options["weight"], dtype)
    scores = tensor(torch, rng.normal(scale=3.0, size=shape), dtype)
    target = tensor(torch, labels(rng, shape, ignore))
    compare(
        torch,
        F.nll_loss,
        TF.nll_loss,
        scores,
        target,
        dtype=dtype,
        seed=(layout, option, reduction),
        reduction=reduction,
        **options,
    )


BINARY_SHAPES: dict[str, tuple[int, ...]] = {"N": (6,), "NC": (4, C), "NdC": (2, 3, C)}
BCE_OPTIONS = ("plain", "hard_targets", "weight=per_class", "weight=full")


def binary_sample(torch: ModuleType, name: str, shape_id: str, option: str, dtype: str) -> Any:
    rng = rng_for(name, shape_id, option)
    shape = BINARY_SHAPES[shape_id]
    hard = option in ("hard_targets", "extreme")
    target = (rng.random(shape) < 0.5).astype(np.float64) if hard else rng.random(shape)
    options: dict[str, Any] = {}
    per_class = np.resize(CLASS_WEIGHT, shape[-1])
    if option in ("weight=per_class", "pos_weight+weight"):
        options["weight"] = tensor(torch, per_class, dtype)
    if option == "weight=full":
        options["weight"] = tensor(torch, rng.uniform(0.0, 2.0, size=shape), dtype)
    if option in ("pos_weight", "pos_weight+weight"):
        pos = np.resize(POS_WEIGHT, shape[-1])
        options["pos_weight"] = tensor(torch, pos, dtype)
    return rng, shape, tensor(torch, target, dtype), options


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", BCE_OPTIONS)
@pytest.mark.parametrize("shape_id", BINARY_SHAPES)
def test_binary_cross_entropy_matches_torch(torch, F, TF, shape_id, option, dtype, reduction):
    rng, shape, target, options = binary_sample(torch, "bce", shape_id, option, dtype)
    probs = tensor(torch, rng.uniform(0.02, 0.98, size=shape), dtype)
    compare(
        torch,
        F.binary_cross_entropy,
        TF.binary_cross_entropy,
        probs,
        target,
        dtype=dtype,
        seed=("bce", shape_id, option, reduction),
        reduction=reduction,
        **options,
    )


BCE_LOGITS_OPTIONS = (*BCE_OPTIONS, "pos_weight", "pos_weight+weight", "extreme")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", BCE_LOGITS_OPTIONS)
@pytest.mark.parametrize("shape_id", BINARY_SHAPES)
def test_binary_cross_entropy_with_logits_matches_torch(
    torch, F, TF, shape_id, option, dtype, reduction
):
    rng, shape, target, options = binary_sample(torch, "bce_logits", shape_id, option, dtype)
    logits = rng.normal(scale=3.0, size=shape)
    if option == "extreme":
        logits = rng.choice([-1e4, 1e4, 30.0, -30.0, 1e4 - 8.0], size=shape)
    compare(
        torch,
        F.binary_cross_entropy_with_logits,
        TF.binary_cross_entropy_with_logits,
        tensor(torch, logits, dtype),
        target,
        dtype=dtype,
        seed=("bce_logits", shape_id, option, reduction),
        reduction=reduction,
        **options,
    )


def sample_16_bit(torch: ModuleType, F: ModuleType, TF: ModuleType, name: str, dtype: str) -> Any:
    """(our function, torch's, input, target, options) of a 16-bit case with every option."""
    rng = rng_for("16-bit", name)
    shape = (4, C, 3)
    weight = tensor(torch, CLASS_WEIGHT, dtype)
    if name == "cross_entropy":
        x = tensor(torch, rng.normal(scale=3.0, size=shape), dtype)
        target = tensor(torch, labels(rng, shape, 1))
        return F.cross_entropy, TF.cross_entropy, x, target, {"weight": weight, "ignore_index": 1}
    if name == "cross_entropy:prob":
        x = tensor(torch, rng.normal(scale=3.0, size=shape), dtype)
        target = tensor(torch, probabilities(rng, shape), dtype)
        options = {"weight": weight, "label_smoothing": 0.1}
        return F.cross_entropy, TF.cross_entropy, x, target, options
    if name == "nll_loss":
        x = TF.log_softmax(tensor(torch, rng.normal(scale=3.0, size=shape), dtype), dim=1)
        target = tensor(torch, labels(rng, shape, 1))
        return F.nll_loss, TF.nll_loss, x, target, {"weight": weight, "ignore_index": 1}
    shape = (4, 3, C)
    target = tensor(torch, rng.random(shape), dtype)
    if name == "bce":
        x = tensor(torch, rng.uniform(0.02, 0.98, size=shape), dtype)
        return F.binary_cross_entropy, TF.binary_cross_entropy, x, target, {"weight": weight}
    x = tensor(torch, rng.normal(scale=3.0, size=shape), dtype)
    options = {"weight": weight, "pos_weight": tensor(torch, POS_WEIGHT, dtype)}
    fns = (F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits)
    return *fns, x, target, options


# eps of the 16-bit dtypes (the spacing of floats in [1, 2))
EPS16 = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "name", ["cross_entropy", "cross_entropy:prob", "nll_loss", "bce", "bce_logits"]
)
def test_16_bit_inputs(torch, F, TF, name, dtype, reduction):
    """float16 / bfloat16: the result has the input's dtype and is the float32 computation
    rounded once, so it is within ``eps`` (relative) of torch in float64 on the same 16-bit
    inputs (measured worst: 0.5 eps on values, 0.7 eps of the largest entry on gradients).

    torch's own 16-bit kernels keep intermediates in the 16-bit dtype (``binary_cross_entropy``
    logs, ``binary_cross_entropy_with_logits`` with ``pos_weight``, the mean's division): they are
    up to 5.6 eps (values) and 1.6 eps (gradients) from that float64 result, and ours up to 5.5
    eps and 1.4 eps from theirs. Against torch's 16-bit result the bounds are 8 eps and 3 eps.
    """
    ours_fn, torch_fn, x, target, options = sample_16_bit(torch, F, TF, name, dtype)
    seed = ("16-bit", name, reduction)
    eps = EPS16[dtype]
    value, grad = value_and_grad(
        torch, ours_fn, x, target, seed=seed, reduction=reduction, **options
    )
    assert ours_fn(x, target, reduction=reduction, **options).dtype == x.dtype

    def wide(t: Any) -> Any:
        return t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t

    exact_value, exact_grad = value_and_grad(
        torch,
        torch_fn,
        wide(x),
        wide(target),
        seed=seed,
        cotangent_dtype=dtype,
        reduction=reduction,
        **{k: wide(v) for k, v in options.items()},
    )
    assert_close(value, exact_value, dtype, rtol=eps, atol=1e-6, msg="value vs float64")
    g_scale = float(np.max(np.abs(exact_grad)))
    assert_close(grad, exact_grad, dtype, rtol=0.0, atol=eps * g_scale, msg="gradient vs float64")

    their_value, their_grad = value_and_grad(
        torch, torch_fn, x, target, seed=seed, reduction=reduction, **options
    )
    assert_close(value, their_value, dtype, rtol=8 * eps, atol=1e-6, msg="value vs torch")
    assert_close(grad, their_grad, dtype, rtol=0.0, atol=3 * eps * g_scale, msg="gradient vs torch")


def test_mean_over_nothing_is_nan(torch, F, TF):
    """Empty batch and all-ignored batch: a NaN mean with a zero gradient, as in torch."""
    x = torch.zeros(0, C, requires_grad=True)
    assert torch.isnan(F.cross_entropy(x, torch.zeros(0, dtype=torch.int64)))
    assert torch.isnan(TF.cross_entropy(x, torch.zeros(0, dtype=torch.int64)))
    x = torch.randn(3, C, dtype=torch.float64, requires_grad=True)
    y = torch.full((3,), -100)
    for ours, theirs in ((F.cross_entropy, TF.cross_entropy), (F.nll_loss, TF.nll_loss)):
        loss = ours(x, y)
        assert torch.isnan(loss)
        (grad,) = torch.autograd.grad(loss, x)
        (their_grad,) = torch.autograd.grad(theirs(x, y), x)
        assert torch.equal(grad, torch.zeros_like(x))
        assert torch.equal(grad, their_grad)
    assert torch.equal(F.cross_entropy(x, y, reduction="sum"), torch.zeros((), dtype=x.dtype))


# --- gradients --------------------------------------------------------------------------------


def gradcheck_cases(torch: ModuleType, F: ModuleType) -> dict[str, tuple[Callable, Any]]:
    rng = rng_for("gradcheck")
    f64 = "float64"
    w = tensor(torch, CLASS_WEIGHT, f64)
    kdim = tensor(torch, rng.normal(size=(3, C, 2)), f64)
    y = tensor(torch, labels(rng, (3, C, 2), 1))
    soft = tensor(torch, probabilities(rng, (3, C, 2)), f64)
    flat = tensor(torch, rng.normal(size=(4, C)), f64)
    y_flat = tensor(torch, [0, -100, 3, 4])
    probs = tensor(torch, rng.uniform(0.05, 0.95, size=(4, C)), f64)
    t = tensor(torch, rng.random((4, C)), f64)
    pw = tensor(torch, POS_WEIGHT, f64)
    one = tensor(torch, rng.normal(size=(C,)), f64)
    return {
        "ce-index-weight-ignore-smoothing-mean": (
            lambda x: F.cross_entropy(x, y, w, ignore_index=1, label_smoothing=0.2),
            kdim,
        ),
        "ce-index-default-ignore-none": (
            lambda x: F.cross_entropy(x, y_flat, reduction="none"),
            flat,
        ),
        "ce-prob-weight-smoothing-sum": (
            lambda x: F.cross_entropy(x, soft, w, reduction="sum", label_smoothing=0.1),
            kdim,
        ),
        "ce-no-batch": (lambda x: F.cross_entropy(x, tensor(torch, 2)), one),
        "nll-weight-ignore-mean": (lambda x: F.nll_loss(x, y, w, ignore_index=1), kdim),
        "nll-none": (lambda x: F.nll_loss(x, y_flat, reduction="none"), flat),
        "bce-weight-mean": (lambda x: F.binary_cross_entropy(x, t, w), probs),
        "bce-none": (lambda x: F.binary_cross_entropy(x, t, reduction="none"), probs),
        "bce-logits-pos-weight-weight-sum": (
            lambda x: F.binary_cross_entropy_with_logits(x, t, w, reduction="sum", pos_weight=pw),
            flat,
        ),
        "bce-logits-none": (
            lambda x: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
            flat,
        ),
    }


GRADCHECK_IDS = (
    "ce-index-weight-ignore-smoothing-mean",
    "ce-index-default-ignore-none",
    "ce-prob-weight-smoothing-sum",
    "ce-no-batch",
    "nll-weight-ignore-mean",
    "nll-none",
    "bce-weight-mean",
    "bce-none",
    "bce-logits-pos-weight-weight-sum",
    "bce-logits-none",
)


@pytest.mark.parametrize("case", GRADCHECK_IDS)
def test_gradcheck(torch, F, case):
    fn, x = gradcheck_cases(torch, F)[case]
    assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(True),))


@pytest.mark.parametrize("case", ["ce-index-weight-ignore-smoothing-mean", "bce-logits-none"])
def test_double_backward(torch, F, case):
    """A gradient penalty differentiates the gradient: ``gradgradcheck`` passes (the backward
    recomputes the gradient by autograd of the exact forward when ``create_graph=True``)."""
    fn, x = gradcheck_cases(torch, F)[case]
    x = x.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_gradient_goes_through_the_core(torch, F):
    x = torch.randn(3, C, requires_grad=True)
    loss = F.cross_entropy(x, torch.tensor([0, 1, 2]))
    assert type(loss.grad_fn).__name__ == "CoreLossBackward"


@pytest.mark.parametrize("argument", ["target", "weight"])
def test_gradient_for_target_or_weight(torch, F, argument):
    """Probability targets and class weights are differentiated, as torch differentiates them."""
    TF = torch.nn.functional
    x = torch.randn(3, C, dtype=torch.float64, requires_grad=True)
    target = torch.softmax(torch.randn(3, C, dtype=torch.float64), dim=1)
    weight = torch.rand(C, dtype=torch.float64) + 0.5
    differentiated = {"target": target, "weight": weight}[argument].requires_grad_(True)
    ours = torch.autograd.grad(F.cross_entropy(x, target, weight), (x, differentiated))
    theirs = torch.autograd.grad(TF.cross_entropy(x, target, weight), (x, differentiated))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# --- documented differences from torch: our behaviour -----------------------------------------


def test_bad_label_raises_value_error(torch, F):
    x = torch.randn(4, C)
    with pytest.raises(ValueError, match="class index 7"):
        F.cross_entropy(x, torch.tensor([0, 7, 1, 2]))
    with pytest.raises(ValueError, match="class index -1"):
        F.nll_loss(x, torch.tensor([0, -1, 1, 2]))
    # the default ignore_index -100 is not a bad label
    assert torch.isfinite(F.cross_entropy(x, torch.tensor([0, -100, 1, 2])))


@pytest.mark.parametrize("label_smoothing", [-0.1, 1.5])
def test_label_smoothing_outside_unit_interval_raises(torch, F, label_smoothing):
    """torch silently accepts -0.1 (and raises RuntimeError for 1.5)."""
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(
            torch.randn(4, C), torch.tensor([0, 1, 2, 3]), label_smoothing=label_smoothing
        )


def test_negative_weights_raise(torch, F):
    """torch accepts negative class weights and pos_weight; we raise."""
    x = torch.randn(4, C)
    weight = torch.tensor([-1.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="weight must lie in"):
        F.cross_entropy(x, torch.tensor([0, 1, 2, 3]), weight)
    with pytest.raises(ValueError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(x, torch.rand(4, C), pos_weight=weight)


def test_bce_with_logits_targets_outside_unit_interval_raise(torch, F):
    """torch returns a negative loss for targets of 1.5."""
    with pytest.raises(ValueError, match="target must lie in"):
        F.binary_cross_entropy_with_logits(torch.randn(4), torch.tensor([1.5, 0.0, 1.0, 0.5]))


def test_bce_probability_outside_unit_interval_raises(torch, F):
    with pytest.raises(ValueError, match="input must lie in"):
        F.binary_cross_entropy(torch.tensor([1.5, 0.5]), torch.tensor([1.0, 0.0]))


def test_bce_at_zero_and_one(torch, F, TF):
    """Probabilities exactly 0 or 1: the value is torch's (each log clamped at -100). The gradient
    is that of the clamped loss: 0 through a clamped log (torch: about +-1e12), and the plain
    derivative of the other log where the target gives the clamped one no weight (torch: 0)."""
    p = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.5], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.25, 1.0], dtype=torch.float64)
    ours, grad = value_and_grad(torch, F.binary_cross_entropy, p, t, seed="01", reduction="sum")
    theirs, their_grad = value_and_grad(
        torch, TF.binary_cross_entropy, p, t, seed="01", reduction="sum"
    )
    cotangent = rng_for("cotangent", "01").uniform(0.5, 1.5)
    assert_close(ours, theirs, "float64", rtol=1e-12, atol=1e-12)
    assert np.all(np.abs(their_grad[[0, 1, 4]]) > 1e11)
    np.testing.assert_array_equal(their_grad[[2, 3]], [0.0, 0.0])
    # d/dp of -[t max(log p, -100) + (1 - t) max(log(1 - p), -100)]
    expected = cotangent * np.array([0.0, 0.0, 1.0, -1.0, 0.75])
    np.testing.assert_allclose(grad[:5], expected, rtol=1e-15, atol=0)
    assert_close(grad[5:], their_grad[5:], "float64", rtol=1e-12, atol=1e-12)


def test_targets_any_integer_dtype_and_bool(torch, F, TF):
    x = torch.randn(4, C, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 4])
    expected = TF.cross_entropy(x, y)
    for dtype in (torch.int32, torch.uint8, torch.int16):
        assert_close(F.cross_entropy(x, y.to(dtype)), expected, "float64", rtol=1e-12, atol=1e-12)
    onehot = TF.one_hot(y, C)
    assert_close(F.cross_entropy(x, onehot.bool()), expected, "float64", rtol=1e-12, atol=1e-12)
    t = torch.rand(4, C) < 0.5
    assert_close(
        F.binary_cross_entropy_with_logits(x, t),
        TF.binary_cross_entropy_with_logits(x, t.double()),
        "float64",
        rtol=1e-12,
        atol=1e-12,
    )


def test_nll_operator_without_value_checks_gives_nan(torch):
    """What ``nll_loss`` does where value checks are skipped (``torch.compile``): an index outside
    ``[0, C)`` makes its example's loss and gradient NaN, the others are untouched."""
    from xentropy import ops

    op = ops.NegativeLogLikelihood(axis=1, ignore_index=-100, reduction="none")
    x = torch.randn(3, C, 2, dtype=torch.float64)
    y = torch.tensor([[0, -100], [4, 7], [2, 2]])
    xp = ops.check_inputs(op, x, y, None, prediction=x, validate=False)
    loss, residuals = op.forward(xp, x, y, None)
    grad = op.backward(xp, residuals, torch.ones_like(loss))
    assert torch.isnan(loss[1, 1]) and torch.isnan(grad[1, :, 1]).all()
    assert loss[0, 1] == 0 and torch.equal(grad[0, :, 1], torch.zeros(C, dtype=x.dtype))
    assert torch.isfinite(loss[[0, 1, 2], [0, 0, 0]]).all()


# --- validate: the eager value checks, on by default --------------------------------------------


def validate_cases(
    torch: ModuleType, adapter: ModuleType
) -> dict[str, tuple[Callable[..., Any], Any, Any, Any, np.ndarray, str]]:
    """name -> (fn, input, bad target, the same target with valid values, bad entries of the
    per-example loss, what the error names). Float64 throughout."""
    F = adapter.functional
    rng = rng_for("validate")
    f64 = "float64"
    x = tensor(torch, rng.normal(size=(4, C)), f64)
    w = tensor(torch, CLASS_WEIGHT, f64)
    probs = tensor(torch, rng.uniform(0.05, 0.95, size=(4, 3)), f64)
    t_bad = tensor(
        torch, [[1.0, 0.0, 0.5], [0.0, 1.5, 1.0], [0.25, 0.0, 1.0], [1.0, 1.0, 0.0]], f64
    )
    t_good = t_bad.clone()
    t_good[1, 1] = 1.0
    bad_entry = np.zeros((4, 3), dtype=bool)
    bad_entry[1, 1] = True
    bad_row = np.array([False, True, False, False])
    hidden = tensor(torch, rng.normal(size=(4, 3)), f64)
    projection = tensor(torch, rng.normal(size=(C, 3)), f64)

    def ce(input: Any, target: Any, **kwargs: Any) -> Any:
        return F.cross_entropy(input, target, w, label_smoothing=0.1, **kwargs)

    def lce(input: Any, target: Any, **kwargs: Any) -> Any:
        return adapter.linear_cross_entropy(input, projection, target, **kwargs)

    return {
        "cross_entropy": (
            ce,
            x,
            torch.tensor([0, 7, 1, -100]),
            torch.tensor([0, 4, 1, -100]),
            bad_row,
            "class index 7",
        ),
        "nll_loss": (
            F.nll_loss,
            torch.log_softmax(x, dim=1),
            torch.tensor([0, -1, 1, 2]),
            torch.tensor([0, 3, 1, 2]),
            bad_row,
            "class index -1",
        ),
        "binary_cross_entropy": (
            F.binary_cross_entropy,
            probs,
            t_bad,
            t_good,
            bad_entry,
            r"got 1\.5",
        ),
        "binary_cross_entropy_with_logits": (
            F.binary_cross_entropy_with_logits,
            probs.logit(),
            t_bad,
            t_good,
            bad_entry,
            r"got 1\.5",
        ),
        "linear_cross_entropy": (
            lce,
            hidden,
            torch.tensor([0, 5, 1, 2]),
            torch.tensor([0, 4, 1, 2]),
            bad_row,
            "class index 5",
        ),
    }


VALIDATE_IDS = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "linear_cross_entropy",
)


@pytest.mark.parametrize("case", VALIDATE_IDS)
def test_validate_is_on_by_default(torch, adapter, case):
    """An invalid target value raises ValueError naming it, by default and with validate=True."""
    fn, x, bad_target, _, _, match = validate_cases(torch, adapter)[case]
    with pytest.raises(ValueError, match=match):
        fn(x, bad_target, reduction="none")
    with pytest.raises(ValueError, match=match):
        fn(x, bad_target, reduction="mean", validate=True)


@pytest.mark.parametrize("case", VALIDATE_IDS)
def test_validate_false_gives_nan_for_the_bad_examples_only(torch, adapter, case):
    """validate=False: no error (no read-back of the values); the affected example's loss and
    gradient are NaN, the other examples equal the validated result on valid targets."""
    fn, x, bad_target, good_target, bad, _ = validate_cases(torch, adapter)[case]
    loss, grad = value_and_grad(
        torch, fn, x, bad_target, seed=case, reduction="none", validate=False
    )
    expected, expected_grad = value_and_grad(torch, fn, x, good_target, seed=case, reduction="none")
    assert np.isnan(loss[bad]).all() and np.isfinite(loss[~bad]).all()
    np.testing.assert_allclose(loss[~bad], expected[~bad], rtol=1e-12, atol=1e-15)
    grad_bad = bad if grad.shape == bad.shape else bad[:, None] & np.ones(grad.shape, bool)
    assert np.isnan(grad[grad_bad]).all()
    np.testing.assert_allclose(grad[~grad_bad], expected_grad[~grad_bad], rtol=1e-12, atol=1e-15)
    # a reduced loss is NaN, not an error
    assert torch.isnan(fn(x, bad_target, reduction="sum", validate=False))


def test_validate_false_still_checks_shapes_and_options(torch, F):
    """Only the value checks are skipped: static checks do not read values back."""
    x = torch.randn(4, C)
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, torch.tensor([0, 1, 2, 3]), label_smoothing=1.5, validate=False)
    with pytest.raises(ValueError):
        F.binary_cross_entropy_with_logits(x, torch.rand(4, 1), validate=False)
    with pytest.raises(TypeError, match="positional arguments"):  # validate is keyword-only
        F.cross_entropy(x, torch.tensor([0, 1, 2, 3]), None, None, -100, None, "mean", 0.0, False)


def test_nll_loss_takes_class_indices_only(torch, F):
    with pytest.raises(ValueError, match="class indices"):
        F.nll_loss(torch.randn(4, C), torch.rand(4, C))


def test_invalid_reduction_raises(torch, F):
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(torch.randn(4, C), torch.tensor([0, 1, 2, 3]), reduction="batchmean")


@pytest.mark.parametrize(
    ("size_average", "reduce"), [(False, None), (None, False), (True, True), (False, True)]
)
def test_legacy_size_average_and_reduce(torch, F, TF, adapter, size_average, reduce):
    """Mapped by torch's own rule (with its deprecation warning), in functions and modules."""
    x = torch.randn(4, C, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.warns(UserWarning, match="size_average and reduce"):
        ours = F.nll_loss(x, y, None, size_average, -100, reduce)
    with pytest.warns(UserWarning, match="size_average and reduce"):
        theirs = TF.nll_loss(x, y, None, size_average, -100, reduce)
    assert_close(ours, theirs, "float64", rtol=1e-12, atol=1e-12)
    with pytest.warns(UserWarning, match="size_average and reduce"):
        ours = adapter.CrossEntropyLoss(size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning, match="size_average and reduce"):
        theirs = torch.nn.CrossEntropyLoss(size_average=size_average, reduce=reduce)
    assert ours.reduction == theirs.reduction


# --- nn modules -------------------------------------------------------------------------------


def module_cases(torch: ModuleType) -> dict[str, tuple[str, dict[str, Any], Any, Any]]:
    rng = rng_for("modules")
    f64 = "float64"
    w = tensor(torch, CLASS_WEIGHT, f64)
    logits = tensor(torch, rng.normal(size=(3, C, 2)), f64)
    y = tensor(torch, labels(rng, (3, C, 2), 2))
    logp = torch.log_softmax(logits, dim=1)
    probs = tensor(torch, rng.uniform(0.05, 0.95, size=(4, C)), f64)
    t = tensor(torch, rng.random((4, C)), f64)
    pw = tensor(torch, POS_WEIGHT, f64)
    return {
        "CrossEntropyLoss-default": ("CrossEntropyLoss", {}, logits, y.clamp(min=0)),
        "CrossEntropyLoss-all": (
            "CrossEntropyLoss",
            {"weight": w, "ignore_index": 2, "reduction": "sum", "label_smoothing": 0.1},
            logits,
            y,
        ),
        "NLLLoss": ("NLLLoss", {"weight": w, "ignore_index": 2, "reduction": "none"}, logp, y),
        "BCELoss": ("BCELoss", {"weight": w}, probs, t),
        "BCEWithLogitsLoss": (
            "BCEWithLogitsLoss",
            {"weight": w, "pos_weight": pw, "reduction": "sum"},
            probs.logit(),
            t,
        ),
    }


MODULE_IDS = (
    "CrossEntropyLoss-default",
    "CrossEntropyLoss-all",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
)


@pytest.mark.parametrize("case", MODULE_IDS)
def test_module_matches_torch(torch, adapter, case):
    name, kwargs, x, target = module_cases(torch)[case]
    ours, theirs = getattr(adapter.nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert isinstance(ours, torch.nn.Module)
    assert ours.reduction == theirs.reduction
    assert dict(ours.named_buffers()).keys() == dict(theirs.named_buffers()).keys()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    compare(torch, ours, theirs, x, target, dtype="float64", seed=case)
    # buffers follow .to(): the float32 module works on float32 inputs
    ours32 = ours.to(torch.float32)
    for buffer in ours32.buffers():
        assert buffer.dtype == torch.float32
    compare(
        torch,
        ours32,
        theirs.to(torch.float32),
        x.float(),
        target_for(target),
        dtype="float32",
        seed=case,
    )


def target_for(target: Any) -> Any:
    return target.float() if target.is_floating_point() else target


@pytest.mark.parametrize(
    ("name", "case"),
    [
        ("CrossEntropyLoss", "cross_entropy"),
        ("NLLLoss", "nll_loss"),
        ("BCELoss", "binary_cross_entropy"),
        ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits"),
    ],
)
def test_module_validate(torch, adapter, name, case):
    """``validate`` is a keyword-only constructor argument, stored as an attribute, shown by
    ``repr`` only when False, never in ``state_dict``, and handed to the function."""
    _, x, bad_target, good_target, bad, match = validate_cases(torch, adapter)[case]
    cls = getattr(adapter.nn, name)
    checked, unchecked = cls(reduction="none"), cls(reduction="none", validate=False)
    assert checked.validate is True and unchecked.validate is False
    assert "validate" not in repr(checked)
    assert "validate=False" in repr(unchecked)
    assert checked.state_dict().keys() == unchecked.state_dict().keys()
    with pytest.raises(ValueError, match=match):
        checked(x, bad_target)
    loss = unchecked(x, bad_target).numpy()
    assert np.isnan(loss[bad]).all()
    np.testing.assert_allclose(loss[~bad], checked(x, good_target).numpy()[~bad], rtol=1e-12)
    # an attribute read at each call
    unchecked.validate = True
    with pytest.raises(ValueError, match=match):
        unchecked(x, bad_target)


def test_module_signatures_match_torch(torch, adapter):
    import inspect

    def check(ours: Any, theirs: Any, extras: tuple[tuple[str, Any], ...] = ()) -> None:
        """torch's parameters (names, kinds, defaults, order), then xentropy's keyword-only
        extras and validate."""
        mine = list(inspect.signature(ours).parameters.values())
        native = list(inspect.signature(theirs).parameters.values())
        keyword = inspect.Parameter.KEYWORD_ONLY
        assert [(p.name, p.kind, p.default) for p in mine] == [
            *((p.name, p.kind, p.default) for p in native),
            *((name, keyword, default) for name, default in extras),
            ("validate", keyword, True),
        ]

    for name in ("CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"):
        check(getattr(adapter.nn, name).__init__, getattr(torch.nn, name).__init__)
    for name in ("nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
        check(getattr(adapter.functional, name), getattr(torch.nn.functional, name))
    llm_extras = (("softcap", None), ("z_loss", 0.0), ("return_lse", False))
    check(adapter.functional.cross_entropy, torch.nn.functional.cross_entropy, llm_extras)


def test_doctests(adapter):
    for module in (adapter.functional,):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0


# --- torch.compile ----------------------------------------------------------------------------


# torch's own notices while compiling: dynamo tracing array-api-compat's cached helpers, and
# inductor's imports touching torch.jit
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`:UserWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile(torch, F):
    """One compiled graph (``fullgraph=True``, inductor) holding ``cross_entropy`` and
    ``binary_cross_entropy_with_logits`` (one compilation: it is slow on small machines): values
    and gradients as eager. Value checks are skipped under compilation, so a bad label gives NaN
    for its example (loss and gradient) where eager raises."""
    rng = rng_for("compile")
    x = tensor(torch, rng.normal(scale=3.0, size=(3, C, 4)), "float32")
    y = tensor(torch, labels(rng, (3, C, 4), -100))
    w = tensor(torch, CLASS_WEIGHT, "float32")
    t = tensor(torch, rng.random((3, C, 4)), "float32")
    pw = tensor(torch, POS_WEIGHT[:, None], "float32")

    def loss_fn(x, y):
        ce = F.cross_entropy(x, y, w, label_smoothing=0.1, reduction="none")
        bce = F.binary_cross_entropy_with_logits(x, t, pos_weight=pw)
        return ce + bce

    compiled = torch.compile(loss_fn, fullgraph=True)
    value, grad = value_and_grad(torch, compiled, x, y, seed="compile")
    expected_value, expected_grad = value_and_grad(torch, loss_fn, x, y, seed="compile")
    assert_close(value, expected_value, "float32", rtol=1e-5, atol=1e-6, msg="value")
    assert_close(grad, expected_grad, "float32", rtol=1e-5, atol=1e-6, msg="gradient")

    bad = y.clone()
    bad[1, 2] = C  # out of range; same shapes, so no recompilation
    with pytest.raises(ValueError, match="class index 5"):
        loss_fn(x, bad)
    value, grad = value_and_grad(torch, compiled, x, bad, seed="compile")
    assert np.isnan(value[1, 2]) and np.isnan(grad[1, :, 2]).all()
    assert np.isfinite(np.delete(value.reshape(-1), 1 * 4 + 2)).all()
