"""The torch dialect is differentiable exactly where native torch is (issue 10).

Every function and module of ``xentropy.backends.torch`` is checked in float64 against
``torch.nn.functional`` / ``torch.nn`` with the same inputs, each floating input that torch
differentiates requiring grad (probability targets, BCE targets, the projection of
``linear_cross_entropy``):

* ``torch.autograd.gradcheck`` and ``gradgradcheck`` (float64 finite differences), the gradient
  and a Hessian-vector product equal to native's, forward-mode AD (``torch.autograd.forward_ad``)
  equal to native's and to reverse mode;
* ``torch.func``: ``grad``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``, ``vmap`` (with
  ``validate`` True and False), ``functional_call`` on a small ``nn.Module`` and per-sample
  gradients ``vmap(grad(loss), in_dims=(None, 0, 0))``;
* class weights and ``pos_weight``, which torch does not differentiate (it refuses a weight that
  requires grad), get a gradient here, checked against finite differences only;
* the core called directly with tensors that require grad (probability targets, label smoothing,
  linear cross entropy), class indices of every integer dtype torch allows at class counts above
  the dtype's signed range, ``torch.autocast`` (dtype and value), ``torch.jit.script`` of the
  modules, and the routing: the analytic backward (``CoreLossBackward``) stays the fast path
  whenever only the prediction needs a gradient.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for

C = 5
F64 = (1e-10, 1e-12)  # (rtol, atol) of float64 parity with torch


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    return require_or_skip("torch")


@pytest.fixture(scope="module")
def X(torch) -> ModuleType:
    """The dialect: ``X.functional``, ``X.nn``, ``X.linear_cross_entropy``."""
    return require_or_skip("torch", "xentropy.backends.torch")


def close(torch: ModuleType, actual: Any, expected: Any, tol: tuple[float, float] = F64) -> None:
    torch.testing.assert_close(actual, expected, rtol=tol[0], atol=tol[1], equal_nan=True)


# --- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``ours(*inputs)`` and ``native(*inputs)`` (None: torch does not differentiate them all)."""

    ours: Callable[..., Any]
    native: Callable[..., Any] | None
    inputs: tuple[Any, ...]


def validating(module: Any, validate: bool) -> Any:
    """``module``'s losses (functions or classes) with ``validate`` given."""
    return SimpleNamespace(
        **{name: functools.partial(getattr(module, name), validate=validate) for name in LOSSES}
    )


LOSSES = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "linear_cross_entropy",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "LinearCrossEntropyLoss",
    "kl_div",
    "multilabel_soft_margin_loss",
    "KLDivLoss",
    "MultiLabelSoftMarginLoss",
)


def cases(torch: ModuleType, X: ModuleType, validate: bool = True) -> dict[str, Case]:
    """Every function and module of the dialect, float64, inputs away from kinks and clamps."""
    rng = rng_for("torch-autodiff")
    TF, nn = torch.nn.functional, torch.nn
    F = xnn = validating(X, validate)

    def t(a: Any, dtype: Any = torch.float64) -> Any:
        return torch.tensor(np.asarray(a), dtype=dtype)

    def soft(shape: tuple[int, ...], axis: int) -> Any:
        e = np.exp(rng.normal(size=shape))
        return t(e / e.sum(axis=axis, keepdims=True))

    x_k = t(rng.normal(size=(3, C, 2)))
    y_k = t([[0, 4], [3, 2], [1, 1]], torch.int64)
    x = t(rng.normal(size=(4, C)))
    y = t([0, -100, 3, 4], torch.int64)
    w = t(rng.uniform(0.5, 2.0, size=C))
    p = t(rng.uniform(0.05, 0.95, size=(4, C)))
    tb = t(rng.uniform(0.0, 1.0, size=(4, C)))
    pw = t(rng.uniform(0.5, 2.0, size=C))
    bw = t(rng.uniform(0.5, 2.0, size=(4, C)))
    h = t(rng.normal(size=(4, 3)))
    lw = t(rng.normal(size=(C, 3)))
    lb = t(rng.normal(size=C))
    one = t(rng.normal(size=C))
    lq = torch.log_softmax(t(rng.normal(size=(4, C))), dim=1)
    pk = soft((4, C), 1)

    def both(fn: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
        return functools.partial(fn, F), functools.partial(fn, TF)

    lce_modules = []
    for module in (xnn.LinearCrossEntropyLoss, nn.LinearCrossEntropyLoss):
        with torch.random.fork_rng():
            torch.manual_seed(7)
            lce_modules.append(module(3, C, bias=True, label_smoothing=0.1, dtype=torch.float64))

    table: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None, tuple[Any, ...]]] = {
        "ce-index-weight-ignore-smoothing": (
            *both(lambda m, a: m.cross_entropy(a, y_k, w, ignore_index=1, label_smoothing=0.2)),
            (x_k,),
        ),
        "ce-index-default-ignore-none": (
            *both(lambda m, a: m.cross_entropy(a, y, reduction="none")),
            (x,),
        ),
        "ce-no-batch": (*both(lambda m, a: m.cross_entropy(a, t(2, torch.int64))), (one,)),
        "ce-prob-weight-smoothing-sum": (
            *both(
                lambda m, a, b, c: m.cross_entropy(a, b, c, reduction="sum", label_smoothing=0.1)
            ),
            (x_k, soft((3, C, 2), 1), w),
        ),
        "ce-prob-mean": (*both(lambda m, a, b: m.cross_entropy(a, b)), (x, soft((4, C), 1))),
        "nll-weight-ignore": (*both(lambda m, a: m.nll_loss(a, y_k, w, ignore_index=1)), (x_k,)),
        "nll-none": (*both(lambda m, a: m.nll_loss(a, y, reduction="none")), (x,)),
        "bce-weight": (*both(lambda m, a, b: m.binary_cross_entropy(a, b, bw)), (p, tb)),
        "bce-none": (
            *both(lambda m, a, b: m.binary_cross_entropy(a, b, reduction="none")),
            (p, tb),
        ),
        "bce-logits-pos-weight-weight-sum": (
            *both(
                lambda m, a, b: m.binary_cross_entropy_with_logits(
                    a, b, bw, reduction="sum", pos_weight=pw
                )
            ),
            (x, tb),
        ),
        "bce-logits-none": (
            *both(lambda m, a, b: m.binary_cross_entropy_with_logits(a, b, reduction="none")),
            (x, tb),
        ),
        "lce-bias-smoothing": (
            lambda a, b, c: F.linear_cross_entropy(a, b, y, linear_bias=c, label_smoothing=0.1),
            lambda a, b, c: TF.linear_cross_entropy(
                a, b, y, linear_bias=c, ignore_index=-100, label_smoothing=0.1
            ),
            (h, lw, lb),
        ),
        "lce-none": (
            lambda a, b: F.linear_cross_entropy(a, b, y, reduction="none"),
            lambda a, b: TF.linear_cross_entropy(a, b, y, ignore_index=-100, reduction="none"),
            (h, lw),
        ),
        # modules, with their weights as buffers
        "CrossEntropyLoss": (
            lambda a: xnn.CrossEntropyLoss(w, label_smoothing=0.1)(a, y),
            lambda a: nn.CrossEntropyLoss(w, label_smoothing=0.1)(a, y),
            (x,),
        ),
        "CrossEntropyLoss-prob": (
            lambda a, b: xnn.CrossEntropyLoss(w)(a, b),
            lambda a, b: nn.CrossEntropyLoss(w)(a, b),
            (x, soft((4, C), 1)),
        ),
        "NLLLoss": (lambda a: xnn.NLLLoss(w)(a, y), lambda a: nn.NLLLoss(w)(a, y), (x,)),
        "BCELoss": (
            lambda a, b: xnn.BCELoss(bw)(a, b),
            lambda a, b: nn.BCELoss(bw)(a, b),
            (p, tb),
        ),
        "BCEWithLogitsLoss": (
            lambda a, b: xnn.BCEWithLogitsLoss(bw, pos_weight=pw)(a, b),
            lambda a, b: nn.BCEWithLogitsLoss(bw, pos_weight=pw)(a, b),
            (x, tb),
        ),
        # its projection is a parameter: the same seed gives both modules the same one
        "LinearCrossEntropyLoss": (
            lambda a: lce_modules[0](a, y),
            lambda a: lce_modules[1](a, y),
            (h,),
        ),
        "kl_div-batchmean": (
            *both(lambda m, a, b: m.kl_div(a, b, reduction="batchmean")),
            (lq, pk),
        ),
        "kl_div-log_target-none": (
            *both(lambda m, a, b: m.kl_div(a, b, reduction="none", log_target=True)),
            (lq, pk.log()),
        ),
        "multilabel-weight-none": (
            *both(lambda m, a, b, c: m.multilabel_soft_margin_loss(a, b, c, reduction="none")),
            (x, tb, w),
        ),
        "KLDivLoss": (
            lambda a, b: xnn.KLDivLoss(reduction="sum")(a, b),
            lambda a, b: nn.KLDivLoss(reduction="sum")(a, b),
            (lq, pk),
        ),
        "MultiLabelSoftMarginLoss": (
            lambda a, b: xnn.MultiLabelSoftMarginLoss(w)(a, b),
            lambda a, b: nn.MultiLabelSoftMarginLoss(w)(a, b),
            (x, tb),
        ),
        # weights that torch refuses to differentiate: finite differences only
        "ce-index-class-weight": (lambda a, c: F.cross_entropy(a, y, c), None, (x, w)),
        "nll-class-weight": (lambda a, c: F.nll_loss(a, y, c), None, (x, w)),
        "bce-weight-grad": (lambda a, b, c: F.binary_cross_entropy(a, b, c), None, (p, tb, bw)),
        "bce-logits-weight-pos-weight": (
            lambda a, b, c, d: F.binary_cross_entropy_with_logits(a, b, c, pos_weight=d),
            None,
            (x, tb, bw, pw),
        ),
    }
    return {name: Case(ours, native, inputs) for name, (ours, native, inputs) in table.items()}


CASE_IDS = (
    "ce-index-weight-ignore-smoothing",
    "ce-index-default-ignore-none",
    "ce-no-batch",
    "ce-prob-weight-smoothing-sum",
    "ce-prob-mean",
    "nll-weight-ignore",
    "nll-none",
    "bce-weight",
    "bce-none",
    "bce-logits-pos-weight-weight-sum",
    "bce-logits-none",
    "lce-bias-smoothing",
    "lce-none",
    "CrossEntropyLoss",
    "CrossEntropyLoss-prob",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "LinearCrossEntropyLoss",
    "kl_div-batchmean",
    "kl_div-log_target-none",
    "multilabel-weight-none",
    "KLDivLoss",
    "MultiLabelSoftMarginLoss",
    "ce-index-class-weight",
    "nll-class-weight",
    "bce-weight-grad",
    "bce-logits-weight-pos-weight",
)
NATIVE_IDS = tuple(i for i in CASE_IDS if "weight-grad" not in i and "class-weight" not in i)
NATIVE_IDS = tuple(i for i in NATIVE_IDS if i != "bce-logits-weight-pos-weight")


@pytest.fixture(scope="module")
def all_cases(torch, X) -> dict[str, Case]:
    return cases(torch, X)


@pytest.fixture(scope="module")
def unvalidated_cases(torch, X) -> dict[str, Case]:
    return cases(torch, X, validate=False)


def leaves(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.detach().clone().requires_grad_(True) for a in inputs)


def cotangent(torch: ModuleType, like: Any, seed: str) -> Any:
    rng = rng_for("cotangent", seed, tuple(like.shape))
    return torch.tensor(rng.normal(size=tuple(like.shape)), dtype=like.dtype)


def tangents(torch: ModuleType, inputs: tuple[Any, ...], seed: str) -> tuple[Any, ...]:
    return tuple(cotangent(torch, a, f"{seed}-{i}") for i, a in enumerate(inputs))


def test_case_list_is_complete(all_cases):
    assert set(all_cases) == set(CASE_IDS)


def test_dialect_covered(X):
    """A new function or module of the dialect must get a case here."""
    covered = {
        "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
        "linear_cross_entropy", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
        "LinearCrossEntropyLoss", "kl_div", "multilabel_soft_margin_loss", "KLDivLoss",
        "MultiLabelSoftMarginLoss",
    }  # fmt: skip
    assert set(X.__all__) - {"functional", "nn", "LinearCrossEntropyOptions"} == covered


# --- reverse mode: gradcheck, gradgradcheck, native values -----------------------------------


@pytest.mark.parametrize("case", CASE_IDS)
def test_gradcheck(torch, X, all_cases, case):
    c = all_cases[case]
    assert torch.autograd.gradcheck(c.ours, leaves(c.inputs))


@pytest.mark.parametrize("case", CASE_IDS)
def test_gradgradcheck(torch, X, all_cases, case):
    c = all_cases[case]
    assert torch.autograd.gradgradcheck(c.ours, leaves(c.inputs))


@pytest.mark.parametrize("case", NATIVE_IDS)
def test_gradient_and_hessian_vector_product_match_native(torch, X, all_cases, case):
    """First derivatives of ``<c, loss>`` and the derivative of ``<v, gradient>`` (the
    Hessian-vector product of a gradient penalty) equal torch's."""
    c = all_cases[case]
    results = []
    for fn in (c.ours, c.native):
        inputs = leaves(c.inputs)
        loss = fn(*inputs)
        weight = cotangent(torch, loss, case)
        grads = torch.autograd.grad((loss * weight).sum(), inputs, create_graph=True)
        vs = tangents(torch, inputs, case)
        penalty = sum((g * v).sum() for g, v in zip(grads, vs, strict=True))
        if penalty.requires_grad:
            hvp = torch.autograd.grad(penalty, inputs, allow_unused=True, materialize_grads=True)
        else:  # nll_loss is linear in its input: a constant gradient
            hvp = tuple(torch.zeros_like(a) for a in inputs)
        results.append((loss.detach(), [g.detach() for g in grads], hvp))
    (loss, grads, hvp), (n_loss, n_grads, n_hvp) = results
    close(torch, loss, n_loss)
    for a, b in zip(grads, n_grads, strict=True):
        close(torch, a, b)
    for a, b in zip(hvp, n_hvp, strict=True):
        close(torch, a, b)


def test_double_backward_through_the_fast_path(torch, X):
    """``create_graph=True`` on the fast path (only the logits require grad): the gradient
    penalty's gradient is torch's."""
    TF = torch.nn.functional
    rng = rng_for("penalty")
    x0 = torch.tensor(rng.normal(size=(4, C)), dtype=torch.float64)
    y = torch.tensor([1, 0, -100, 4])
    results = []
    for fn in (X.functional.cross_entropy, TF.cross_entropy):
        x = x0.clone().requires_grad_(True)
        loss = fn(x, y, label_smoothing=0.1)
        if fn is X.functional.cross_entropy:
            assert type(loss.grad_fn).__name__ == "CoreLossBackward"
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        (loss + g.pow(2).sum()).backward()
        results.append(x.grad)
    close(torch, *results)


# --- forward mode ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASE_IDS)
def test_forward_ad(torch, X, all_cases, case):
    """Dual numbers: primal and tangent equal torch's (where torch differentiates every input)
    and ``<c, tangent>`` equals ``sum_i <grad_i, v_i>`` of reverse mode."""
    fwad = torch.autograd.forward_ad
    c = all_cases[case]
    vs = tangents(torch, c.inputs, case)
    outputs = {}
    for name, fn in (("ours", c.ours), ("native", c.native)):
        if fn is None:
            continue
        with fwad.dual_level():
            duals = [fwad.make_dual(a, v) for a, v in zip(c.inputs, vs, strict=True)]
            primal, tangent = fwad.unpack_dual(fn(*duals))
        outputs[name] = (primal, tangent)
    primal, tangent = outputs["ours"]
    if "native" in outputs:
        close(torch, primal, outputs["native"][0])
        close(torch, tangent, outputs["native"][1])
    inputs = leaves(c.inputs)
    loss = c.ours(*inputs)
    weight = cotangent(torch, loss, case)
    grads = torch.autograd.grad((loss * weight).sum(), inputs)
    expected = sum((g * v).sum() for g, v in zip(grads, vs, strict=True))
    close(torch, (tangent * weight).sum(), expected)


# --- torch.func -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", NATIVE_IDS)
def test_func_transforms_match_native(torch, X, all_cases, case):
    """``grad``, ``jvp``, ``jacrev``, ``jacfwd`` and ``hessian`` (first input) as torch's."""
    func = torch.func
    c = all_cases[case]
    argnums = tuple(range(len(c.inputs)))
    vs = tangents(torch, c.inputs, case)

    def summed(fn):
        return lambda *a: fn(*a).sum()

    def first(fn):
        return lambda a: summed(fn)(a, *c.inputs[1:])

    for transform in (
        lambda fn: func.grad(summed(fn), argnums=argnums)(*c.inputs),
        lambda fn: func.jvp(fn, c.inputs, vs),
        lambda fn: func.jacrev(fn, argnums=argnums)(*c.inputs),
        lambda fn: func.jacfwd(fn, argnums=argnums)(*c.inputs),
        lambda fn: func.hessian(first(fn))(c.inputs[0]),
    ):
        close(torch, transform(c.ours), transform(c.native))


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("case", CASE_IDS)
def test_vmap(torch, X, all_cases, unvalidated_cases, case, validate):
    """``vmap`` over a batch of two inputs equals a Python loop (and torch), both ``validate``
    settings: the value checks step aside under ``vmap``."""
    c = (all_cases if validate else unvalidated_cases)[case]
    # the second copy moved a little, staying in the domain (probabilities and weights)
    batch = tuple(torch.stack([a, a * 0.9 + 0.05 * a.mean()]) for a in c.inputs)
    got = torch.func.vmap(c.ours)(*batch)
    loop = torch.stack([c.ours(*(b[i] for b in batch)) for i in range(2)])
    close(torch, got, loop)
    if c.native is not None:
        close(torch, got, torch.func.vmap(c.native)(*batch))


@pytest.mark.parametrize("validate", [True, False])
def test_vmap_bad_label_gives_nan(torch, X, validate):
    """Under ``vmap`` a bad class index gives NaN for its example, loss and gradient, even with
    ``validate=True`` (eagerly it raises)."""
    F = X.functional
    x = torch.randn(2, 3, C, dtype=torch.float64)
    y = torch.tensor([[0, 1, 2], [3, C, 4]])

    def loss(a, b):
        return F.cross_entropy(a, b, reduction="none", validate=validate)

    if validate:
        with pytest.raises(ValueError, match="class index"):
            loss(x[1], y[1])
    values = torch.func.vmap(loss)(x, y)
    assert torch.isnan(values[1, 1]) and torch.isfinite(values[0]).all()
    grads = torch.func.vmap(torch.func.grad(lambda a, b: loss(a, b).sum()))(x, y)
    assert torch.isnan(grads[1, 1]).all() and torch.isfinite(grads[0]).all()


# per-sample gradients of a small model ---------------------------------------------------------


def model_losses(torch: ModuleType, X: ModuleType) -> dict[str, tuple[Callable, Callable]]:
    """Loss of a model output ``z`` (N, C) against per-sample targets, ours and torch's."""
    TF, F = torch.nn.functional, X.functional
    return {
        "cross_entropy": (
            lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1),
            lambda z, y: TF.cross_entropy(z, y, label_smoothing=0.1),
        ),
        "cross_entropy-prob": (
            lambda z, y: F.cross_entropy(z, torch.softmax(y, -1)),
            lambda z, y: TF.cross_entropy(z, torch.softmax(y, -1)),
        ),
        "nll_loss": (
            lambda z, y: F.nll_loss(torch.log_softmax(z, -1), y),
            lambda z, y: TF.nll_loss(torch.log_softmax(z, -1), y),
        ),
        "binary_cross_entropy": (
            lambda z, y: F.binary_cross_entropy(torch.sigmoid(z), torch.sigmoid(y)),
            lambda z, y: TF.binary_cross_entropy(torch.sigmoid(z), torch.sigmoid(y)),
        ),
        "binary_cross_entropy_with_logits": (
            lambda z, y: F.binary_cross_entropy_with_logits(z, torch.sigmoid(y)),
            lambda z, y: TF.binary_cross_entropy_with_logits(z, torch.sigmoid(y)),
        ),
    }


MODEL_LOSSES = (
    "cross_entropy",
    "cross_entropy-prob",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
)


@pytest.mark.parametrize("name", MODEL_LOSSES)
def test_per_sample_gradients(torch, X, name):
    """``vmap(grad(loss), in_dims=(None, 0, 0))`` over ``functional_call`` of an ``nn.Module``
    (Opacus-style DP-SGD) equals torch's, and the batch gradient of ``functional_call`` too."""
    func = torch.func
    ours, native = model_losses(torch, X)[name]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, C))
    model = model.double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    xs = torch.randn(6, 3, dtype=torch.float64)
    if name in ("cross_entropy", "nll_loss"):
        ys = torch.randint(0, C, (6,))
    else:
        ys = torch.randn(6, C, dtype=torch.float64)

    def per_sample(loss):
        def fn(p, x, y):
            return loss(func.functional_call(model, p, (x[None],)), y[None])

        return func.vmap(func.grad(fn), in_dims=(None, 0, 0))(params, xs, ys)

    def batch(loss):
        return func.grad(lambda p: loss(func.functional_call(model, p, (xs,)), ys))(params)

    for transform in (per_sample, batch):
        got, expected = transform(ours), transform(native)
        assert got.keys() == expected.keys()
        for key in got:
            close(torch, got[key], expected[key])


def test_per_sample_gradients_linear_cross_entropy(torch, X):
    func = torch.func
    TF = torch.nn.functional
    rng = rng_for("per-sample-lce")
    params = {
        "weight": torch.tensor(rng.normal(size=(C, 3))),
        "bias": torch.tensor(rng.normal(size=C)),
    }
    hs = torch.tensor(rng.normal(size=(6, 3)))
    ys = torch.tensor([0, 1, 2, 3, 4, 0])

    def per_sample(loss):
        def fn(p, h, y):
            return loss(h[None], p["weight"], y[None], linear_bias=p["bias"])

        return func.vmap(func.grad(fn), in_dims=(None, 0, 0))(params, hs, ys)

    got = per_sample(X.linear_cross_entropy)
    expected = per_sample(TF.linear_cross_entropy)
    for key in got:
        close(torch, got[key], expected[key])


# --- the core called directly -------------------------------------------------------------------


def test_core_with_probability_targets_requiring_grad(torch):
    """``xentropy.softmax_cross_entropy`` / ``sigmoid_cross_entropy`` on tensors that require
    grad, probability targets and label smoothing included: no "modified by an inplace
    operation", gradients of logits and targets equal torch's."""
    import xentropy

    TF = torch.nn.functional
    rng = rng_for("core-direct")
    x0 = torch.tensor(rng.normal(size=(4, C)))
    t0 = torch.softmax(torch.tensor(rng.normal(size=(4, C))), -1)
    b0 = torch.tensor(rng.uniform(size=(4, C)))
    pairs = (
        (
            lambda x, t: xentropy.softmax_cross_entropy(x, t, axis=1, label_smoothing=0.1),
            lambda x, t: TF.cross_entropy(x, t, label_smoothing=0.1),
            t0,
        ),
        (
            lambda x, t: xentropy.sigmoid_cross_entropy(x, t),
            lambda x, t: TF.binary_cross_entropy_with_logits(x, t),
            b0,
        ),
    )
    for ours, native, target in pairs:
        results = []
        for fn in (ours, native):
            x, t = leaves((x0, target))
            loss = fn(x, t)
            results.append((loss.detach(), *torch.autograd.grad(loss, (x, t))))
        for a, b in zip(*results, strict=True):
            close(torch, a, b)


def test_core_linear_cross_entropy_requiring_grad(torch, X):
    import xentropy

    TF = torch.nn.functional
    rng = rng_for("core-lce")
    inputs = (
        torch.tensor(rng.normal(size=(4, 3))),
        torch.tensor(rng.normal(size=(C, 3))),
        torch.tensor(rng.normal(size=C)),
    )
    y = torch.tensor([0, -100, 3, 4])
    results = []
    for fn in (
        lambda h, w, b: xentropy.linear_cross_entropy(
            h, w, y, bias=b, ignore_index=-100, label_smoothing=0.1
        ),
        lambda h, w, b: TF.linear_cross_entropy(
            h, w, y, linear_bias=b, ignore_index=-100, label_smoothing=0.1
        ),
    ):
        args = leaves(inputs)
        loss = fn(*args)
        (g,) = torch.autograd.grad(loss, args[0], create_graph=True)
        results.append((loss.detach(), *torch.autograd.grad(g.pow(2).sum() + loss, args)))
    for a, b in zip(*results, strict=True):
        close(torch, a, b)


# --- integer class indices ----------------------------------------------------------------------


INDEX_DTYPES = ("uint8", "int8", "int16", "int32", "int64")


def index_case(torch: ModuleType, dtype: str) -> tuple[Any, list[int]]:
    """A class count above the signed range of ``dtype`` (where it has room) and labels that a
    wrap-around comparison with -100 would misread (156 is -100 in uint8)."""
    if dtype == "uint8":
        return 200, [156, 3, 199, 0]
    if dtype == "int8":
        return 200, [100, -100, 127, 0]
    if dtype == "int16":
        return 40_000, [32_000, -100, 32_767, 156]
    return 200, [156, -100, 199, 3]


@pytest.mark.parametrize("dtype", INDEX_DTYPES)
@pytest.mark.parametrize("function", ["cross_entropy", "nll_loss"])
def test_integer_class_indices(torch, X, dtype, function):
    num_classes, labels = index_case(torch, dtype)
    rng = rng_for("index-dtypes", dtype)
    x0 = torch.tensor(rng.normal(size=(len(labels), num_classes)))
    y = torch.tensor(labels, dtype=getattr(torch, dtype))
    ours = getattr(X.functional, function)
    native = getattr(torch.nn.functional, function)
    for reduction in ("none", "mean"):
        results = []
        for fn, target in ((ours, y), (native, y.to(torch.int64))):
            x = x0.clone().requires_grad_(True)
            loss = fn(x, target, reduction=reduction)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            results.append((loss.detach(), grad))
        for a, b in zip(*results, strict=True):
            close(torch, a, b)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int64"])
def test_integer_class_indices_linear(torch, X, dtype):
    num_classes, labels = index_case(torch, dtype)
    rng = rng_for("index-dtypes-lce", dtype)
    h0 = torch.tensor(rng.normal(size=(len(labels), 3)))
    w0 = torch.tensor(rng.normal(size=(num_classes, 3)))
    y = torch.tensor(labels, dtype=getattr(torch, dtype))
    TF = torch.nn.functional
    results = []
    for fn, target in (
        (X.linear_cross_entropy, y),
        (lambda h, w, t: TF.linear_cross_entropy(h, w, t, ignore_index=-100), y.to(torch.int64)),
    ):
        h, w = leaves((h0, w0))
        loss = fn(h, w, target)
        results.append((loss.detach(), *torch.autograd.grad(loss, (h, w))))
    for a, b in zip(*results, strict=True):
        close(torch, a, b)


# --- torch.autocast ------------------------------------------------------------------------------


def autocast_calls(torch: ModuleType, X: ModuleType, dtype: Any) -> dict[str, tuple]:
    """(inputs, ours, native) in float32 (and one in the autocast dtype itself)."""
    rng = rng_for("autocast")
    TF, F = torch.nn.functional, X.functional

    def t(a):
        return torch.tensor(a, dtype=torch.float32)

    x = t(rng.normal(scale=3.0, size=(8, C)))
    y = torch.tensor([0, 1, 2, 3, 4, -100, 1, 2])
    soft = torch.softmax(t(rng.normal(size=(8, C))), -1)
    p = t(rng.uniform(0.05, 0.95, size=(8, C)))
    tb = t(rng.uniform(size=(8, C)))
    pw, w = t(rng.uniform(0.5, 2, size=C)), t(rng.uniform(0.5, 2, size=C))
    h, lw = t(rng.normal(size=(8, 4))), t(rng.normal(size=(C, 4)))
    return {
        "cross_entropy": (
            (x,),
            lambda a: F.cross_entropy(a, y, w, label_smoothing=0.1, reduction="sum"),
            lambda a: TF.cross_entropy(a, y, w, label_smoothing=0.1, reduction="sum"),
        ),
        "cross_entropy-16bit-input": (
            (x.to(dtype),),
            lambda a: F.cross_entropy(a, y, reduction="none"),
            lambda a: TF.cross_entropy(a, y, reduction="none"),
        ),
        "cross_entropy-prob": (
            (x, soft),
            lambda a, b: F.cross_entropy(a, b),
            lambda a, b: TF.cross_entropy(a, b),
        ),
        "nll_loss": ((x,), lambda a: F.nll_loss(a, y, w), lambda a: TF.nll_loss(a, y, w)),
        "binary_cross_entropy": (
            (p, tb),
            lambda a, b: F.binary_cross_entropy(a, b),
            lambda a, b: TF.binary_cross_entropy(a, b),
        ),
        "binary_cross_entropy_with_logits": (
            (x, tb),
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=pw),
            lambda a, b: TF.binary_cross_entropy_with_logits(a, b, pos_weight=pw),
        ),
        "CrossEntropyLoss": (
            (x,),
            lambda a: X.nn.CrossEntropyLoss(w)(a, y),
            lambda a: torch.nn.CrossEntropyLoss(w)(a, y),
        ),
        "linear_cross_entropy": (
            (h, lw),
            lambda a, b: X.linear_cross_entropy(a, b, y),
            lambda a, b: TF.linear_cross_entropy(a, b, y, ignore_index=-100),
        ),
    }


AUTOCAST_IDS = (
    "cross_entropy",
    "cross_entropy-16bit-input",
    "cross_entropy-prob",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "CrossEntropyLoss",
    "linear_cross_entropy",
)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", AUTOCAST_IDS)
def test_autocast_cpu(torch, X, name, dtype):
    """Under CPU autocast the loss is float32, as torch's (its fp32 list), with torch's value
    and gradients (in the inputs' dtypes)."""
    dtype = getattr(torch, dtype)
    inputs, ours, native = autocast_calls(torch, X, dtype)[name]
    results = []
    for fn in (ours, native):
        args = leaves(inputs)
        with torch.autocast("cpu", dtype=dtype):
            loss = fn(*args)
        grads = torch.autograd.grad(loss.sum(), args)
        results.append((loss, grads))
    (loss, grads), (n_loss, n_grads) = results
    assert loss.dtype == n_loss.dtype == torch.float32
    # linear_cross_entropy: torch rounds the logits to 16 bits, the core keeps them in float32
    tol = (2e-2, 2e-2) if name == "linear_cross_entropy" else (1e-5, 1e-5)
    close(torch, loss.detach(), n_loss.detach(), tol)
    for g, n in zip(grads, n_grads, strict=True):
        assert g.dtype == n.dtype
        close(torch, g, n, tol)


def test_autocast_off_keeps_dtypes(torch, X):
    """Outside autocast a bfloat16 input gives a bfloat16 loss (as torch)."""
    x = torch.randn(4, C, dtype=torch.bfloat16)
    y = torch.tensor([0, 1, 2, 3])
    assert X.functional.cross_entropy(x, y).dtype == torch.bfloat16


# --- torch.jit.script -----------------------------------------------------------------------------


def script_modules(torch: ModuleType, X: ModuleType) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    rng = rng_for("script")
    x = torch.tensor(rng.normal(size=(4, C)), dtype=torch.float32)
    y = torch.tensor([0, 1, -100, 4])
    t = torch.tensor(rng.uniform(size=(4, C)), dtype=torch.float32)
    p = torch.tensor(rng.uniform(0.05, 0.95, size=(4, C)), dtype=torch.float32)
    w = torch.tensor(rng.uniform(0.5, 2, size=C), dtype=torch.float32)
    return {
        "CrossEntropyLoss": (X.nn.CrossEntropyLoss(w, label_smoothing=0.1), (x, y)),
        "CrossEntropyLoss-default": (X.nn.CrossEntropyLoss(), (x, y)),
        "NLLLoss": (X.nn.NLLLoss(w, reduction="sum"), (x, y)),
        "BCELoss": (X.nn.BCELoss(), (p, t)),
        "BCEWithLogitsLoss": (X.nn.BCEWithLogitsLoss(pos_weight=w), (x, t)),
        "BCEWithLogitsLoss-validate": (X.nn.BCEWithLogitsLoss(validate=False), (x, t)),
    }


SCRIPT_IDS = (
    "CrossEntropyLoss",
    "CrossEntropyLoss-default",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BCEWithLogitsLoss-validate",
)


# torch 2.13 deprecates TorchScript; native modules still script, so ours must
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.save` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", SCRIPT_IDS)
def test_jit_script(torch, X, name, tmp_path):
    """``torch.jit.script`` of a module: same value and gradient as eager, also inside a scripted
    parent module. Saving it is not possible (the loss is a Python call into the core)."""
    module, (prediction, target) = script_modules(torch, X)[name]
    scripted = torch.jit.script(module)

    class Head(torch.nn.Module):
        def __init__(self, loss: torch.nn.Module) -> None:
            super().__init__()
            self.loss = loss

        def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.loss(z * 1.0, t)

    parent = torch.jit.script(Head(module))
    results = []
    for fn in (module, scripted, parent):
        (x,) = leaves((prediction,))
        loss = fn(x, target)
        results.append((loss.detach(), *torch.autograd.grad(loss.sum(), x)))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="Python function"):
        torch.jit.save(scripted, str(tmp_path / "loss.pt"))


# --- routing: the fast path stays the fast path -----------------------------------------------


def routed_calls(torch: ModuleType, X: ModuleType) -> dict[str, tuple[Callable, tuple]]:
    rng = rng_for("routing")
    x = torch.tensor(rng.normal(size=(4, C)))
    y = torch.tensor([0, 1, -100, 4])
    t = torch.tensor(rng.uniform(size=(4, C)))
    p = torch.tensor(rng.uniform(0.05, 0.95, size=(4, C)))
    w = torch.tensor(rng.uniform(0.5, 2, size=C))
    soft = torch.softmax(x, -1)
    h, lw = torch.tensor(rng.normal(size=(4, 3))), torch.tensor(rng.normal(size=(C, 3)))
    F = X.functional
    return {
        "cross_entropy": (lambda a, b: F.cross_entropy(a, b, w), (x, y)),
        "cross_entropy-prob": (lambda a, b: F.cross_entropy(a, b, w), (x, soft)),
        "nll_loss": (lambda a, b: F.nll_loss(a, b, w), (x, y)),
        "binary_cross_entropy": (lambda a, b: F.binary_cross_entropy(a, b, w), (p, t)),
        "binary_cross_entropy_with_logits": (
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, pos_weight=w),
            (x, t),
        ),
        "linear_cross_entropy": (lambda a, b: X.linear_cross_entropy(a, lw, b), (h, y)),
        "CrossEntropyLoss": (lambda a, b: X.nn.CrossEntropyLoss(w)(a, b), (x, y)),
    }


ROUTED_IDS = (
    "cross_entropy",
    "cross_entropy-prob",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "linear_cross_entropy",
    "CrossEntropyLoss",
)


@pytest.mark.parametrize("name", ROUTED_IDS)
def test_fast_path_when_only_the_prediction_requires_grad(torch, X, name):
    """Only the prediction requires grad: the analytic backward (``CoreLossBackward``)."""
    fn, (prediction, target) = routed_calls(torch, X)[name]
    loss = fn(prediction.clone().requires_grad_(True), target)
    assert type(loss.grad_fn).__name__ == "CoreLossBackward"


@pytest.mark.parametrize("name", ["cross_entropy-prob", "binary_cross_entropy"])
def test_exact_path_when_a_target_requires_grad(torch, X, name):
    fn, (prediction, target) = routed_calls(torch, X)[name]
    loss = fn(prediction.clone().requires_grad_(True), target.clone().requires_grad_(True))
    assert type(loss.grad_fn).__name__ != "CoreLossBackward"
    loss = fn(prediction, target.clone().requires_grad_(True))  # target only
    assert loss.requires_grad and type(loss.grad_fn).__name__ != "CoreLossBackward"


def test_exact_path_under_forward_mode(torch, X):
    fwad = torch.autograd.forward_ad
    fn, (x, y) = routed_calls(torch, X)["cross_entropy"]
    with fwad.dual_level():
        loss = fn(fwad.make_dual(x, torch.ones_like(x)), y)
        assert fwad.unpack_dual(loss).tangent is not None


@pytest.mark.parametrize("targets", ["indices", "probabilities"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_inplace_edit_of_the_logits_after_the_forward(torch, X, smoothing, targets):
    """Both torch and ours keep the log-softmax, not the logits: an in-place edit between the
    forward and the backward leaves the gradient that of the original logits."""
    x = torch.randn(4, C, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    if targets == "probabilities":
        y = torch.softmax(torch.randn(4, C, dtype=torch.float64), -1)
        y[0, 1] = 0.0  # a zero target beside a finite log p
    kwargs = {"label_smoothing": smoothing}
    (expected,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x * 1.0, y, **kwargs), x)
    z = x * 1.0
    loss = X.functional.cross_entropy(z, y, **kwargs)
    assert loss.grad_fn.name() == "CoreLossBackward"
    z.add_(1.0)
    (grad,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(grad, expected)


def test_inplace_edit_before_a_double_backward_raises(torch, X):
    """The exact path needs the inputs as they were: an edit in place raises, never a silently
    wrong second derivative (the other losses keep their input for the first order too, and
    autograd's own version check raises there, as for torch's nll_loss)."""
    x = torch.randn(4, C, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    z = x * 1.0
    loss = X.functional.cross_entropy(z, y)
    z.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, x, create_graph=True)
    z2 = x * 1.0
    loss = X.functional.binary_cross_entropy_with_logits(z2, torch.rand(4, C, dtype=x.dtype))
    z2.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_no_warning_for_weights_requiring_grad(torch, X):
    """A weight that requires grad is converted without ``torch.asarray`` (whose requires_grad
    notice would fire) and stays connected to the graph."""
    x = torch.randn(4, C, dtype=torch.float64)
    t = torch.softmax(torch.randn(4, C, dtype=torch.float64), -1)
    w = torch.rand(C, dtype=torch.float64).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = X.functional.cross_entropy(x, t, w)
    (grad,) = torch.autograd.grad(loss, w)
    (expected,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x, t, w), w)
    close(torch, grad, expected)
