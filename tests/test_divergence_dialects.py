"""The KL divergence family and the multi-label soft margin loss in every dialect, against native.

* PyTorch: ``F.kl_div`` (every reduction, ``batchmean`` included, ``log_target``, the no-batch
  and K-dimensional layouts), ``F.multilabel_soft_margin_loss`` (``weight`` per class and per
  element) and the ``nn`` modules ``KLDivLoss`` / ``MultiLabelSoftMarginLoss``: values and the
  gradients of ``input``, ``target`` (and ``weight``) against ``torch.nn.functional`` in all four
  dtypes (16-bit against torch in float32 on the rounded inputs: the core computes in float32
  and rounds once, torch in the 16-bit dtype), float64 finite differences, ``gradcheck`` and
  ``gradgradcheck``, forward mode against native's, the ``"mean"`` warning, autocast and
  TorchScript.
* JAX: optax's ``kl_divergence``, ``kl_divergence_with_log_targets``,
  ``generalized_kl_divergence`` and ``convex_kl_divergence`` (its deprecation warning) over
  ``axis`` (int, tuple, None) and ``where``: values and vector-Jacobian products of both inputs
  against optax, ``check_grads(order=2, modes=("fwd", "rev"))``, ``jit`` and ``vmap``.
* Keras (the backend this process loaded, TensorFlow by default): ``kl_divergence`` and
  ``KLDivergence`` against ``keras.losses`` (values, reductions, the clip into ``[eps, 1]``,
  gradients of ``y_pred`` and ``y_true``), configuration and serialisation, ``model.fit``.
* The core operator on NumPy (``kl_div_log``) against a float64 formula and finite differences.

The places where the dialects deliberately differ (listed in the ``_divergence`` module
docstrings of each dialect) are tested for our behaviour, beside native's.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from reference import numerical_grad
from tolerances import FINITE_DIFFERENCE_TOLERANCE, assert_close

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # read by Keras at its first import only

# parity in float32 / float64 (rtol, atol), as the other dialect tests
PARITY = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-12)}
LOW_PRECISION = ("float16", "bfloat16")
DTYPES = (*LOW_PRECISION, "float32", "float64")
C = 5
VALIDATE = ("validate", True, inspect.Parameter.KEYWORD_ONLY)


def parity(dtype: str) -> dict[str, float]:
    rtol, atol = PARITY[dtype]
    return {"rtol": rtol, "atol": atol}


def log_softmax_rows(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def divergence_inputs(key: object, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(log-probabilities, probabilities) rows along the last axis, entries away from 0."""
    rng = rng_for("divergence", key, shape)
    if not shape:
        return np.array(np.log(0.3)), np.array(0.6)
    log_q = log_softmax_rows(rng.normal(scale=1.5, size=shape))
    p = np.exp(log_softmax_rows(rng.normal(size=shape)))
    return log_q, p


def kl_terms(log_q: np.ndarray, p: np.ndarray, generalized: bool = False) -> np.ndarray:
    """Float64 reference: ``p (log p - log q)`` with ``0 log 0 = 0`` (``+ e^log_q - p``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p == 0, 0.0, p * (np.log(np.where(p == 0, 1.0, p)) - log_q))
    return terms + (np.exp(log_q) - p) if generalized else terms


def test_core_kl_div_log_matches_the_formula_and_finite_differences() -> None:
    from xentropy import value_and_grad
    from xentropy._divergence import kl_div_log

    log_q, p = divergence_inputs("core", (4, C))
    p = p * 1.3  # unnormalised: the generalized term does not vanish
    for options, reduce in [
        ({}, lambda t: t),
        ({"reduction": "batchmean"}, lambda t: t.sum() / 4),
        ({"axis": -1, "generalized": True}, lambda t: t.sum(-1)),
        ({"axis": 0, "reduction": "mean"}, lambda t: t.sum(0).mean()),
    ]:
        generalized = options.get("generalized", False)
        value, grad = value_and_grad(kl_div_log)(log_q, p, **options)
        assert_close(value, reduce(kl_terms(log_q, p, generalized)), "float64", msg=str(options))
        expected = numerical_grad(
            lambda x, reduce=reduce, generalized=generalized: reduce(kl_terms(x, p, generalized)),
            log_q,
        )
        assert_close(grad, expected, "float64", rtol=1e-6, atol=1e-7, msg=str(options))
    log_value = kl_div_log(log_q, np.log(p), log_target=True, axis=-1)
    assert_close(log_value, kl_terms(log_q, p).sum(-1), "float64")


# === PyTorch ===================================================================================


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    torch = require_or_skip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a thread pool only adds contention
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def F(torch: ModuleType) -> ModuleType:
    from xentropy.backends.torch import functional

    return functional


@pytest.fixture(scope="module")
def xnn(torch: ModuleType) -> ModuleType:
    from xentropy.backends.torch import nn

    return nn


def tensors(torch: ModuleType, dtype: str, *arrays: Any) -> list[Any]:
    return [
        None if a is None else torch.from_numpy(np.array(a)).to(getattr(torch, dtype))
        for a in arrays
    ]


def run_torch(
    torch: ModuleType, fn: Callable[..., Any], inputs: list[Any], seed: object
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``fn(*inputs)`` and the gradients of ``sum(cotangent * loss)`` w.r.t. every input."""
    leaves = [None if x is None else x.detach().clone().requires_grad_(True) for x in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning: tested on its own
        loss = fn(*leaves)
    cotangent = rng_for("cotangent", seed).uniform(0.5, 1.5, size=tuple(loss.shape))
    cotangent = torch.from_numpy(np.array(cotangent)).to(loss.dtype)
    wrt = [x for x in leaves if x is not None]
    grads = torch.autograd.grad(loss, wrt, cotangent)
    return loss.detach().double().numpy(), [g.double().numpy() for g in grads]


def compare_torch(
    torch: ModuleType,
    ours: Callable[..., Any],
    theirs: Callable[..., Any],
    arrays: list[Any],
    dtype: str,
    seed: object,
) -> None:
    """Ours in ``dtype`` against torch: in the same dtype for 32/64 bits, in float32 on the
    rounded inputs for 16 bits (with the tolerance of ``dtype``)."""
    mine = tensors(torch, dtype, *arrays)
    value, grads = run_torch(torch, ours, mine, seed)
    native_dtype = "float32" if dtype in LOW_PRECISION else dtype
    native = [None if x is None else x.to(getattr(torch, native_dtype)) for x in mine]
    expected_value, expected_grads = run_torch(torch, theirs, native, seed)
    rtol, atol = PARITY.get(dtype, (None, None))
    assert_close(value, expected_value, dtype, rtol=rtol, atol=atol, msg="value")
    for k, (g, e) in enumerate(zip(grads, expected_grads, strict=True)):
        assert_close(g, e, dtype, rtol=rtol, atol=atol, grad=True, msg=f"gradient {k}")


TORCH_LAYOUTS = {"NC": (6, C), "C": (C,), "NCd": (3, C, 4)}
KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")


def _kl_cases():
    for dtype in DTYPES:
        for reduction in KL_REDUCTIONS:
            for log_target in (False, True):
                yield pytest.param(
                    "NC",
                    dtype,
                    reduction,
                    log_target,
                    id=f"NC-{dtype}-{reduction}-log_target={log_target}",
                )
    for layout in ("C", "NCd"):
        for reduction in KL_REDUCTIONS:
            yield pytest.param(
                layout, "float64", reduction, True, id=f"{layout}-float64-{reduction}"
            )


@pytest.mark.parametrize(("layout", "dtype", "reduction", "log_target"), list(_kl_cases()))
def test_torch_kl_div_matches_native(
    torch: ModuleType, F: ModuleType, layout: str, dtype: str, reduction: str, log_target: bool
) -> None:
    log_q, p = divergence_inputs("torch", TORCH_LAYOUTS[layout])
    target = np.log(p) if log_target else p

    def kl(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda x, t: fn(x, t, reduction=reduction, log_target=log_target)

    seed = (layout, reduction, log_target)
    compare_torch(torch, kl(F.kl_div), kl(torch.nn.functional.kl_div), [log_q, target], dtype, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ("none", "mean", "sum"))
@pytest.mark.parametrize("weight", ("none", "per_class", "per_element"))
def test_torch_multilabel_soft_margin_matches_native(
    torch: ModuleType, F: ModuleType, dtype: str, reduction: str, weight: str
) -> None:
    rng = rng_for("multilabel", reduction, weight)
    x = rng.normal(scale=2.0, size=(6, C))
    t = rng.random((6, C))
    w = {
        "none": None,
        "per_class": rng.uniform(0.25, 2.0, C),
        "per_element": rng.uniform(0.25, 2.0, (6, C)),
    }[weight]

    def loss(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda a, b, c=None: fn(a, b, c, reduction=reduction)

    ours, theirs = (
        loss(F.multilabel_soft_margin_loss),
        loss(torch.nn.functional.multilabel_soft_margin_loss),
    )
    compare_torch(torch, ours, theirs, [x, t, w], dtype, (reduction, weight))


@pytest.mark.parametrize("shape", [(C,), (2, 3, C)], ids=["C", "NdC"])
@pytest.mark.parametrize("reduction", ("none", "mean", "sum"))
def test_torch_multilabel_soft_margin_layouts(
    torch: ModuleType, F: ModuleType, shape: tuple[int, ...], reduction: str
) -> None:
    rng = rng_for("multilabel-layout", shape, reduction)
    arrays = [
        rng.normal(size=shape),
        (rng.random(shape) < 0.5).astype(float),
        rng.uniform(0.5, 2.0, C),
    ]

    def loss(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda a, b, c: fn(a, b, weight=c, reduction=reduction)

    theirs = loss(torch.nn.functional.multilabel_soft_margin_loss)
    compare_torch(torch, loss(F.multilabel_soft_margin_loss), theirs, arrays, "float64", shape)


def test_torch_gradients_match_finite_differences(torch: ModuleType, F: ModuleType) -> None:
    log_q, p = divergence_inputs("fd", (4, C))
    x, t = tensors(torch, "float64", log_q, p)
    cases = {
        "kl_div batchmean": lambda a, b: F.kl_div(a, b, reduction="batchmean"),
        "kl_div log_target": lambda a, b: F.kl_div(a, b.log(), reduction="none", log_target=True),
        "multilabel": lambda a, b: F.multilabel_soft_margin_loss(a, b, reduction="none"),
    }
    for name, fn in cases.items():
        _, (gx, gt) = run_torch(torch, fn, [x, t], name)
        cot = rng_for("cotangent", name).uniform(0.5, 1.5, size=tuple(fn(x, t).shape))

        def weighted(which: int, fn: Callable[..., Any] = fn, cot: Any = cot) -> Any:
            def value(a: np.ndarray) -> np.ndarray:
                args = [x, t]
                args[which] = torch.from_numpy(a)
                return cot * fn(*args).numpy()

            return value

        rtol, atol = FINITE_DIFFERENCE_TOLERANCE
        assert_close(
            gx, numerical_grad(weighted(0), log_q), "float64", rtol=rtol, atol=atol, msg=name
        )
        assert_close(gt, numerical_grad(weighted(1), p), "float64", rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize(
    "case",
    ["kl_div-batchmean", "kl_div-log_target-none", "kl_div-mean", "multilabel-weight"],
)
def test_torch_gradcheck_and_gradgradcheck(torch: ModuleType, F: ModuleType, case: str) -> None:
    log_q, p = divergence_inputs("gradcheck", (3, 4))
    x, t = (a.requires_grad_(True) for a in tensors(torch, "float64", log_q, p))
    if case.startswith("multilabel"):
        w = torch.rand(4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        inputs = (x, t, (w + 0.5).requires_grad_(True))

        def fn(*a: Any) -> Any:
            return F.multilabel_soft_margin_loss(*a)
    else:
        log_target = "log_target" in case
        reduction = case.rsplit("-", 1)[-1]
        inputs = (x, t.detach().log().requires_grad_(True) if log_target else t)

        def fn(*a: Any) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return F.kl_div(*a, reduction=reduction, log_target=log_target)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("function", ["kl_div", "kl_div-log_target", "multilabel_soft_margin_loss"])
def test_torch_forward_mode_matches_native(torch: ModuleType, F: ModuleType, function: str) -> None:
    log_q, p = divergence_inputs("jvp", (4, C))
    x, t = tensors(torch, "float64", log_q, p)
    if function == "kl_div-log_target":
        t = t.log()
    dx, dt = tensors(torch, "float64", *rng_for("tangent", function).normal(size=(2, 4, C)))
    name = function.split("-")[0]
    options = (
        {"reduction": "sum"}
        if name == "multilabel_soft_margin_loss"
        else {"reduction": "batchmean", "log_target": function.endswith("log_target")}
    )

    def jvp(module: ModuleType) -> tuple[Any, Any]:
        return torch.func.jvp(lambda a, b: getattr(module, name)(a, b, **options), (x, t), (dx, dt))

    (value, tangent), (expected_value, expected_tangent) = jvp(F), jvp(torch.nn.functional)
    assert_close(value.numpy(), expected_value.numpy(), "float64", **parity("float64"))
    assert_close(tangent.numpy(), expected_tangent.numpy(), "float64", **parity("float64"))


@pytest.mark.parametrize("function", ["kl_div", "kl_div-log_target", "multilabel_soft_margin_loss"])
def test_torch_double_backward_matches_native(
    torch: ModuleType, F: ModuleType, function: str
) -> None:
    """The Hessian-vector product of every input (``create_graph=True``) equals native's."""
    log_q, p = divergence_inputs("hvp", (4, C))
    arrays = [log_q, np.log(p) if function.endswith("log_target") else p]
    options: dict[str, Any] = {"reduction": "sum"}
    if function.startswith("kl_div"):
        options["log_target"] = function.endswith("log_target")
    else:
        arrays.append(rng_for("weight", function).uniform(0.5, 2.0, C))
    name = function.split("-")[0]
    rng = rng_for("direction", function)
    directions = tensors(torch, "float64", *(rng.normal(size=np.shape(a)) for a in arrays))

    def hvp(module: ModuleType) -> list[np.ndarray]:
        leaves = [a.requires_grad_(True) for a in tensors(torch, "float64", *arrays)]
        loss = getattr(module, name)(*leaves, **options)
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        products = torch.autograd.grad(grads, leaves, directions)
        return [x.numpy() for x in products]

    for ours, theirs in zip(hvp(F), hvp(torch.nn.functional), strict=True):
        assert_close(ours, theirs, "float64", **parity("float64"))


def test_torch_mean_warning_is_torchs(torch: ModuleType, F: ModuleType, xnn: ModuleType) -> None:
    x, t = tensors(torch, "float32", *divergence_inputs("warn", (2, C)))

    def caught(fn: Callable[[], Any]) -> list[tuple[type, str]]:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            fn()
        return [(r.category, str(r.message)) for r in records]

    native = torch.nn.functional.kl_div
    for kwargs in (
        {},
        {"reduction": "mean"},
        {"reduction": "batchmean"},
        {"reduction": "sum"},
        {"size_average": False},
        {"reduce": False},
    ):
        ours = caught(lambda: F.kl_div(x, t, **kwargs))  # noqa: B023
        assert ours == caught(lambda: native(x, t, **kwargs)), kwargs  # noqa: B023
        assert bool(ours) == (
            kwargs.get("reduction", "mean") == "mean"
            or "size_average" in kwargs
            or "reduce" in kwargs
        )
    module = xnn.KLDivLoss()
    assert caught(lambda: module(x, t)) == caught(lambda: torch.nn.KLDivLoss()(x, t))
    assert caught(lambda: module(x, t))[0][0] is UserWarning


def test_torch_signatures_match(torch: ModuleType, F: ModuleType, xnn: ModuleType) -> None:
    for name in ("kl_div", "multilabel_soft_margin_loss"):
        ours = inspect.signature(getattr(F, name)).parameters.values()
        theirs = inspect.signature(getattr(torch.nn.functional, name)).parameters.values()
        assert [(p.name, p.default) for p in ours] == [
            *((p.name, p.default) for p in theirs),
            VALIDATE[:2],
        ]
    for name in ("KLDivLoss", "MultiLabelSoftMarginLoss"):
        ours = list(inspect.signature(getattr(xnn, name).__init__).parameters.values())
        theirs = inspect.signature(getattr(torch.nn, name).__init__).parameters.values()
        assert [(p.name, p.default) for p in ours[:-1]] == [(p.name, p.default) for p in theirs]
        assert (ours[-1].name, ours[-1].default, ours[-1].kind) == VALIDATE
        assert isinstance(getattr(xnn, name)(), torch.nn.Module)


def test_torch_modules_configuration_and_script(torch: ModuleType, xnn: ModuleType) -> None:
    log_q, p = divergence_inputs("modules", (3, C))
    x, t = tensors(torch, "float32", log_q, p)
    kl = xnn.KLDivLoss(reduction="batchmean", log_target=True)
    assert repr(kl) == "KLDivLoss(reduction='batchmean', log_target=True)"
    expected = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(x, t.log())
    assert torch.equal(torch.jit.script(kl)(x, t.log()), kl(x, t.log()))
    assert_close(kl(x, t.log()).numpy(), expected.numpy(), "float32", **parity("float32"))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert xnn.KLDivLoss(size_average=False).reduction == "sum"
    weight = torch.tensor([0.5, 2.0, 1.0, 0.25, 1.5])
    margin = xnn.MultiLabelSoftMarginLoss(weight=weight, reduction="sum", validate=False)
    assert repr(margin) == "MultiLabelSoftMarginLoss(reduction='sum', validate=False)"
    assert torch.equal(margin.state_dict()["weight"], weight)
    assert margin.double().weight.dtype == torch.float64
    native = torch.nn.MultiLabelSoftMarginLoss(weight=weight.double(), reduction="sum")
    scripted = torch.jit.script(margin)
    assert_close(
        scripted(x.double(), t.double()).numpy(),
        native(x.double(), t.double()).numpy(),
        "float64",
        **parity("float64"),
    )
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        xnn.KLDivLoss(reduction="elementwise_mean")


def test_torch_autocast_follows_torchs_policy(torch: ModuleType, F: ModuleType) -> None:
    log_q, p = divergence_inputs("autocast", (3, C))
    for dtype in ("float32", "bfloat16"):
        x, t = tensors(torch, dtype, log_q, p)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours = (F.kl_div(x, t, reduction="sum"), F.multilabel_soft_margin_loss(x, t))
            theirs = (
                torch.nn.functional.kl_div(x, t, reduction="sum"),
                torch.nn.functional.multilabel_soft_margin_loss(x, t),
            )
        assert [o.dtype for o in ours] == [n.dtype for n in theirs], dtype
        for o, n in zip(ours, theirs, strict=True):
            assert_close(o.float().numpy(), n.float().numpy(), "bfloat16")


def test_torch_kl_div_zero_targets_differ_from_native_on_purpose(
    torch: ModuleType, F: ModuleType
) -> None:
    inf = float("inf")
    x = torch.tensor([-inf, -1.0, -inf, -2.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64, requires_grad=True)
    ours = F.kl_div(x, t, reduction="none")
    native = torch.nn.functional.kl_div(x, t, reduction="none")
    # 0 log 0 = 0 under a -inf log-probability (torch: NaN); the rest is torch's
    assert ours[0].item() == 0.0 and torch.isnan(native[0])
    assert torch.equal(ours[1:], native[1:].detach())
    gx, gt = torch.autograd.grad(ours.sum(), (x, t))
    assert gx.tolist() == [-0.0, -0.0, -0.5, -0.5]
    # d/dt at t = 0: -x (0 under -inf); torch gives NaN there (0 / 0)
    assert gt[:2].tolist() == [0.0, 1.0]
    native_gt = torch.autograd.grad(native[1:].sum(), t)[0]
    assert torch.isnan(native_gt[1]) and torch.allclose(gt[2:], native_gt[2:])
    # log targets: -inf (probability 0) contributes 0, derivative 0 (torch: NaN, NaN)
    lt = torch.tensor([-inf, -inf, -0.5], dtype=torch.float64, requires_grad=True)
    ours = F.kl_div(x[:3], lt, reduction="sum", log_target=True)
    assert torch.isnan(torch.nn.functional.kl_div(x[:3], lt, reduction="sum", log_target=True))
    assert ours.item() == inf  # the last element: p = e^-0.5 under log q = -inf
    grad = torch.autograd.grad(F.kl_div(x[:2], lt[:2], reduction="sum", log_target=True), lt)[0]
    assert grad.tolist() == [0.0, 0.0, 0.0]


def test_torch_bad_input(torch: ModuleType, F: ModuleType, xnn: ModuleType) -> None:
    x, t = tensors(torch, "float32", *divergence_inputs("bad", (3, C)))
    with pytest.raises(
        ValueError, match=r"target has shape \(5,\) but it must have the shape of input \(3, 5\)"
    ):
        F.kl_div(x, t[0], reduction="sum")
    with pytest.raises(ValueError, match=r"target has shape \(3, 1\) .* input \(3, 5\)"):
        F.multilabel_soft_margin_loss(x, t[:, :1])
    with pytest.raises(ValueError, match="target must lie in"):
        F.kl_div(x, -t, reduction="sum")
    leaf = x.clone().requires_grad_(True)
    bad = t.clone()
    bad[0, 0] = -0.5
    loss = F.kl_div(leaf, bad, reduction="none", validate=False)
    (grad,) = torch.autograd.grad(loss.sum(), leaf)
    assert torch.isnan(loss[0, 0]) and torch.isnan(grad[0, 0]) and torch.isfinite(grad[1:]).all()
    with pytest.raises(ValueError, match="target must lie in"):
        F.multilabel_soft_margin_loss(x, t * 3)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.kl_div(x, t, reduction="sum_over_batch_size")
    with pytest.raises(ValueError):
        torch.nn.functional.kl_div(x, t, reduction="sum_over_batch_size")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.multilabel_soft_margin_loss(x, t, reduction="batchmean")
    with pytest.raises(TypeError, match="target must be a real floating-point array"):
        F.kl_div(x, torch.ones(3, C, dtype=torch.int64), reduction="sum", log_target=True)
    # batchmean of a 0-d input is the sum, of an empty batch NaN, as in torch
    for a, b in [(x[0, 0], t[0, 0]), (x[:0], t[:0])]:
        assert_close(
            F.kl_div(a, b, reduction="batchmean").numpy(),
            torch.nn.functional.kl_div(a, b, reduction="batchmean").numpy(),
            "float32",
        )


# === JAX / optax ===============================================================================

JAX_FUNCTIONS = (
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "generalized_kl_divergence",
    "convex_kl_divergence",
)


@pytest.fixture(scope="module")
def jx() -> Any:
    jax = require_or_skip("jax")
    require_or_skip("jax", "optax")
    from types import SimpleNamespace

    import optax
    import xentropy.backends.jax as xjax

    return SimpleNamespace(jax=jax, jnp=jax.numpy, optax=optax, ours=xjax)


@pytest.fixture
def x64(jx: Any) -> Any:
    with jx.jax.enable_x64(True):
        yield jx


def jax_inputs(function: str, key: object) -> tuple[np.ndarray, np.ndarray]:
    log_q, p = divergence_inputs(("jax", key), (3, 4, C))
    if function == "kl_divergence_with_log_targets":
        return log_q, np.log(p)
    if "generalized" in function or "convex" in function:
        return log_q + 0.2, p * 1.4
    return log_q, p


JAX_OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "axis=1": {"axis": 1},
    "axis=(1,2)": {"axis": (1, 2)},
    "axis=None": {"axis": None},
    "where": {"where": "entries"},
    "where=(C,)": {"where": "classes"},
    "axis=(2,0)+where": {"axis": (2, 0), "where": "entries"},
}


def jax_options(name: str) -> dict[str, Any]:
    options = dict(JAX_OPTIONS[name])
    rng = rng_for("where", name)
    if options.get("where") == "entries":
        options["where"] = rng.random((3, 4, C)) < 0.7
    elif options.get("where") == "classes":
        options["where"] = np.array([True, False, True, True, False])
    return options


def jax_value_and_vjp(jx: Any, fn: Callable[..., Any], args: tuple[Any, ...], seed: object):
    value, pullback = jx.jax.vjp(fn, *args)
    cotangent = rng_for("cotangent", seed).uniform(0.5, 1.5, size=value.shape)
    grads = pullback(jx.jnp.asarray(cotangent, dtype=value.dtype))
    return np.asarray(value, np.float64), [np.asarray(g, np.float64) for g in grads]


def native(jx: Any, function: str) -> Callable[..., Any]:
    fn = getattr(jx.optax.losses, function)

    def quiet(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return fn(*args, **kwargs)

    return quiet


def _jax_cases():
    """Every option set in float32; two per function in float64 (the arithmetic is the same)."""
    for dtype in ("float32", "float64"):
        for function in JAX_FUNCTIONS:
            for option in JAX_OPTIONS:
                if dtype == "float32" or option in ("default", "axis=(2,0)+where"):
                    yield pytest.param(dtype, function, option, id=f"{dtype}-{function}-{option}")


@pytest.mark.parametrize(("dtype", "function", "option"), list(_jax_cases()))
def test_jax_matches_optax(jx: Any, function: str, option: str, dtype: str) -> None:
    with jx.jax.enable_x64(dtype == "float64"):
        options = jax_options(option)
        args = tuple(jx.jnp.asarray(a, dtype=dtype) for a in jax_inputs(function, option))
        ours = getattr(jx.ours, function)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            value, grads = jax_value_and_vjp(jx, lambda a, b: ours(a, b, **options), args, option)
        expected, expected_grads = jax_value_and_vjp(
            jx, lambda a, b: native(jx, function)(a, b, **options), args, option
        )
    rtol, atol = PARITY[dtype]
    assert_close(value, expected, dtype, rtol=rtol, atol=atol, msg="value")
    for g, e in zip(grads, expected_grads, strict=True):
        assert_close(g, e, dtype, rtol=rtol, atol=atol, grad=True, msg="vjp")


@pytest.mark.parametrize("function", JAX_FUNCTIONS[:3])
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_jax_low_precision_is_optax_in_float32_rounded_once(
    jx: Any, function: str, dtype: str
) -> None:
    arrays = jax_inputs(function, "16-bit")
    args = tuple(jx.jnp.asarray(a, dtype=dtype) for a in arrays)
    ours = getattr(jx.ours, function)
    value, grads = jax_value_and_vjp(jx, lambda a, b: ours(a, b, axis=1), args, dtype)
    assert all(str(a.dtype) == dtype for a in (ours(*args),))
    wide = tuple(a.astype("float32") for a in args)
    expected, expected_grads = jax_value_and_vjp(
        jx, lambda a, b: native(jx, function)(a, b, axis=1), wide, dtype
    )
    assert_close(value, expected, dtype, msg="value")
    for g, e in zip(grads, expected_grads, strict=True):
        assert_close(g, e, dtype, grad=True, msg="vjp")


@pytest.mark.parametrize("function", JAX_FUNCTIONS[:3])
def test_jax_check_grads_second_order_both_modes(x64: Any, function: str) -> None:
    from jax.test_util import check_grads

    log_q, p = divergence_inputs(("check_grads", function), (3, C))
    p = np.clip(p, 0.05, None)  # finite differences need targets away from 0
    target = np.log(p) if function == "kl_divergence_with_log_targets" else p
    where = rng_for("where", function).random((3, C)) < 0.8
    ours = getattr(x64.ours, function)
    args = (x64.jnp.asarray(log_q), x64.jnp.asarray(target))
    # jitted: each transform of check_grads compiles once instead of op by op
    check_grads(x64.jax.jit(ours), args, order=2, modes=("fwd", "rev"))
    masked = x64.jax.jit(lambda a, b: ours(a, b, axis=None, where=where))
    check_grads(masked, args, order=2, modes=("fwd", "rev"))
    hessian = x64.jax.hessian(lambda a: ours(a, args[1]).sum())(args[0])
    expected = x64.jax.hessian(lambda a: native(x64, function)(a, args[1]).sum())(args[0])
    assert_close(np.asarray(hessian), np.asarray(expected), "float64", **parity("float64"))


def test_jax_transforms_and_deprecation(jx: Any) -> None:
    jax, jnp = jx.jax, jx.jnp
    log_q, p = (jnp.asarray(a, dtype="float32") for a in divergence_inputs("transforms", (3, 4, C)))
    where = jnp.asarray(rng_for("where", "jit").random((3, 4, C)) < 0.7)
    jitted = jax.jit(lambda a, b, w: jx.ours.kl_divergence(a, b, where=w))(log_q, p, where)
    eager = jx.optax.losses.kl_divergence(log_q, p, where=where)
    assert_close(np.asarray(jitted), np.asarray(eager), "float32", **parity("float32"))
    mapped = jax.vmap(jx.ours.kl_divergence_with_log_targets)(log_q, jnp.log(p))
    assert_close(
        np.asarray(mapped),
        np.asarray(jx.optax.losses.kl_divergence_with_log_targets(log_q, jnp.log(p))),
        "float32",
        **parity("float32"),
    )

    def caught(fn: Callable[..., Any]) -> list[tuple[type, str]]:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            fn(log_q, p)
        return [(r.category, str(r.message)) for r in records]

    assert caught(jx.ours.convex_kl_divergence) == caught(jx.optax.losses.convex_kl_divergence)
    assert caught(jx.ours.convex_kl_divergence)[0][0] is DeprecationWarning
    assert caught(jx.ours.generalized_kl_divergence) == []
    assert (
        jx.ours.losses.kl_divergence is jx.ours.kl_divergence
    )  # not optax's, through the fall-through


def test_jax_signatures_match_optax(jx: Any) -> None:
    for function in JAX_FUNCTIONS:
        ours = inspect.signature(getattr(jx.ours, function)).parameters.values()
        theirs = inspect.signature(getattr(jx.optax.losses, function)).parameters.values()
        assert [(p.name, p.default) for p in ours] == [
            *((p.name, p.default) for p in theirs),
            VALIDATE[:2],
        ]


def test_jax_zero_targets_and_bad_input(x64: Any) -> None:
    jax, jnp, ours = x64.jax, x64.jnp, x64.ours
    inf = jnp.inf
    log_q = jnp.array([[-inf, -1.0, -0.5], [-2.0, -0.3, -inf]])
    p = jnp.array([[0.0, 0.4, 0.6], [0.0, 1.0, 0.0]])
    value = ours.kl_divergence(log_q, p)
    assert np.isnan(np.asarray(x64.optax.losses.kl_divergence(log_q, p))).all()  # 0 * inf
    assert_close(np.asarray(value), kl_terms(np.asarray(log_q), np.asarray(p)).sum(-1), "float64")
    grad_p = jax.grad(lambda b: ours.kl_divergence(log_q, b).sum())(p)
    assert (
        np.asarray(grad_p)[1, 0] == 2.0 and np.asarray(grad_p)[0, 0] == 0.0
    )  # -log q; 0 under -inf
    log_value = ours.kl_divergence_with_log_targets(log_q, jnp.log(p))
    assert_close(np.asarray(log_value), np.asarray(value), "float64")
    assert (
        np.asarray(
            jax.grad(lambda b: ours.kl_divergence_with_log_targets(log_q, b).sum())(jnp.log(p))
        )[0, 0]
        == 0.0
    )
    with pytest.raises(ValueError, match="targets must lie in"):
        ours.kl_divergence(log_q, -p)
    traced = jax.jit(ours.kl_divergence)(log_q, p.at[0, 1].set(-0.4))
    assert np.isnan(np.asarray(traced)[0]) and np.isfinite(np.asarray(traced)[1])
    masked = ours.kl_divergence(log_q, p.at[0, 1].set(-0.4), where=jnp.array([True, False, True]))
    assert np.isfinite(np.asarray(masked)).all()  # a masked-out entry is never checked
    with pytest.raises(
        ValueError,
        match=r"log_targets has shape \(3,\) but it must have the shape of log_predictions",
    ):
        ours.kl_divergence_with_log_targets(log_q, log_q[0])
    with pytest.raises(ValueError, match="out of bounds"):
        ours.kl_divergence(jnp.array(0.0), jnp.array(1.0))
    with pytest.raises(TypeError, match="log_predictions must be a real floating-point array"):
        ours.kl_divergence(jnp.array([1, 2]), jnp.array([0.5, 0.5]))


# === Keras =====================================================================================


@pytest.fixture(scope="module")
def kx() -> Any:
    keras = require_or_skip("keras")
    from types import SimpleNamespace

    import xentropy.backends.keras as xkeras

    return SimpleNamespace(keras=keras, ours=xkeras, backend=keras.backend.backend())


@pytest.fixture(scope="module")
def tf(kx: Any) -> ModuleType:
    if kx.backend != "tensorflow":
        pytest.skip(f"gradients are taken with tf.GradientTape; Keras runs on {kx.backend}")
    return require_or_skip("tensorflow")


def keras_value_and_grads(
    tf: ModuleType, loss: Callable[..., Any], y_true: Any, y_pred: Any, seed: object
):
    y_true, y_pred = tf.constant(y_true), tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch([y_true, y_pred])
        value = loss(y_true, y_pred)
        cotangent = rng_for("cotangent", seed).uniform(0.5, 1.5, size=tuple(value.shape))
        weighted = tf.reduce_sum(value * tf.cast(cotangent, value.dtype))
    grads = tape.gradient(weighted, [y_pred, y_true])
    return tf.cast(value, tf.float64).numpy(), [tf.cast(g, tf.float64).numpy() for g in grads]


def keras_inputs(key: object, shape: tuple[int, ...] = (6, C)) -> tuple[np.ndarray, np.ndarray]:
    log_q, p = divergence_inputs(("keras", key), shape)
    return p, np.exp(log_q)  # (y_true, y_pred)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ("sum_over_batch_size", "sum", "mean", "none", None))
def test_keras_matches_native(tf: ModuleType, kx: Any, dtype: str, reduction: str | None) -> None:
    y_true, y_pred = keras_inputs(reduction)
    ours = kx.ours.KLDivergence(reduction=reduction, dtype=dtype)
    native_dtype = "float32" if dtype in LOW_PRECISION else dtype
    rounded = [tf.cast(tf.constant(a, dtype=dtype), native_dtype).numpy() for a in (y_true, y_pred)]
    theirs = kx.keras.losses.KLDivergence(reduction=reduction, dtype=native_dtype)
    value, grads = keras_value_and_grads(tf, ours, *rounded, reduction)
    expected, expected_grads = keras_value_and_grads(tf, theirs, *rounded, reduction)
    rtol, atol = PARITY.get(dtype, (None, None))
    assert_close(value, expected, dtype, rtol=rtol, atol=atol, msg="value")
    for name, g, e in zip(("y_pred", "y_true"), grads, expected_grads, strict=True):
        assert_close(g, e, dtype, rtol=rtol, atol=atol, grad=True, msg=name)


def test_keras_clip_is_keras(tf: ModuleType, kx: Any) -> None:
    """One-hot targets (0 and exactly 1), a prediction of 0 and one of 1: Keras's clip."""
    y_true = np.eye(C, dtype="float32")[[0, 3, 1, 4]]
    _, y_pred = keras_inputs("clip", (4, C))
    y_pred = y_pred.astype("float32")
    y_pred[0, 2], y_pred[1, 1] = 0.0, 1.0
    value, grads = keras_value_and_grads(tf, kx.ours.kl_divergence, y_true, y_pred, "clip")
    expected, expected_grads = keras_value_and_grads(
        tf, kx.keras.losses.kl_divergence, y_true, y_pred, "clip"
    )
    assert_close(value, expected, "float32", **parity("float32"))
    for g, e in zip(grads, expected_grads, strict=True):
        assert_close(g, e, "float32", **parity("float32"), grad=True)


def test_keras_surface_config_and_serialisation(kx: Any) -> None:
    keras, ours = kx.keras, kx.ours
    params = list(inspect.signature(ours.KLDivergence.__init__).parameters.values())
    native = inspect.signature(keras.losses.KLDivergence.__init__).parameters.values()
    assert [(p.name, p.default, p.kind) for p in params] == [
        *((p.name, p.default, p.kind) for p in native),
        VALIDATE,
    ]
    function = inspect.signature(ours.kl_divergence).parameters.values()
    assert [p.name for p in function] == [
        *inspect.signature(keras.losses.kl_divergence).parameters,
        "validate",
    ]
    assert (
        ours.losses.KLDivergence is ours.KLDivergence
        and ours.losses.kl_divergence is ours.kl_divergence
    )
    loss = ours.KLDivergence(reduction="sum", name="kl", dtype="float64", validate=False)
    assert isinstance(loss, keras.losses.Loss) and ours.KLDivergence().name == "kl_divergence"
    config = loss.get_config()
    reference = keras.losses.KLDivergence(reduction="sum", name="kl").get_config()
    assert {k: config[k] for k in reference} == reference
    assert config["validate"] is False and config["dtype"] == "float64"
    rebuilt = ours.KLDivergence.from_config(config)
    assert rebuilt.get_config() == config and rebuilt.validate is False
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is ours.KLDivergence and restored.get_config() == config


def test_keras_model_fit(kx: Any) -> None:
    keras = kx.keras
    y_true, x = keras_inputs("fit", (16, C))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((C,)), keras.layers.Dense(C, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx.ours.KLDivergence())
    before = model.evaluate(x, y_true, verbose=0)
    native = keras.models.clone_model(model)
    native.set_weights(model.get_weights())
    native.compile(loss=keras.losses.KLDivergence())
    assert_close(before, native.evaluate(x, y_true, verbose=0), "float32", **parity("float32"))
    history = model.fit(x, y_true, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.evaluate(x, y_true, verbose=0) < before


def test_keras_bad_input_and_shapes(kx: Any) -> None:
    ours = kx.ours
    y_true, y_pred = (a.astype("float32") for a in keras_inputs("bad"))
    with pytest.raises(
        ValueError, match=r"y_true has shape \(6, 5\) but it must have the shape of y_pred \(6, 3\)"
    ):
        ours.kl_divergence(y_true, y_pred[:, :3])
    with pytest.raises(ValueError, match="y_true must lie in"):
        ours.kl_divergence(y_true * 2, y_pred)
    with pytest.raises(ValueError, match="y_pred must lie in"):
        ours.kl_divergence(y_true, y_pred - 0.5)
    # a trailing dimension of 1 on one side is squeezed by the class, as in Keras
    expected = kx.keras.losses.KLDivergence()(y_true[..., None], y_pred)
    assert_close(
        np.asarray(ours.KLDivergence()(y_true[..., None], y_pred)),
        np.asarray(expected),
        "float32",
        **parity("float32"),
    )
