"""``linear_cross_entropy`` / ``LinearCrossEntropyLoss`` with PyTorch 2.13's own signatures.

``xentropy.backends.torch.functional.linear_cross_entropy`` (also in ``.fused``) and
``xentropy.backends.torch.nn.LinearCrossEntropyLoss`` against ``torch.nn.functional
.linear_cross_entropy`` and ``torch.nn.LinearCrossEntropyLoss``:

* signatures: torch's parameters (names, kinds, defaults, order), then xentropy's keyword-only
  ``chunk_size``, ``softcap``, ``z_loss``, ``validate``; ``LinearCrossEntropyOptions`` is torch's
  own dataclass, and the stand-in for older PyTorch has its fields, defaults and validation;
* values and gradients (``input``, ``linear_weight``, ``linear_bias``, probability targets) on
  seeded cases over every option (the ``ignore_index=None`` default, an explicit index, label
  smoothing, class weights, probability targets, a K-dimensional ``linear_weight``, unbatched
  input, ``options`` with and without ``batch_chunk_size``) x every reduction x float16 /
  bfloat16 / float32 / float64, against torch, and below float64 also against torch in float64
  on the rounded inputs (the reference); the gradient is that of ``sum(cotangent * loss)`` for a
  random cotangent, so the unreduced backward is checked entry by entry;
* ``gradcheck`` / ``gradgradcheck`` of ours in float64, class weights and the extras included;
* the chunk mapping of ``options.batch_chunk_size``, exception classes of torch's structural
  checks, the deliberate differences, and the module: same seed -> same parameters and
  ``state_dict`` as torch's, the same training gradients, ``torch.jit.script``.
"""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import random_distributions, require_or_skip, rng_for
from tolerances import assert_close

N, D, V = 6, 4, 7
DTYPES = ("float16", "bfloat16", "float32", "float64")
REDUCTIONS = ("none", "mean", "sum")
# xentropy's keyword-only extras, after torch's parameters
EXTRAS = (("chunk_size", None), ("softcap", None), ("z_loss", 0.0), ("validate", True))
# the function also returns the log-sum-exp on request (a module returns the loss alone)
FUNCTION_EXTRAS = (*EXTRAS[:-1], ("return_lse", False), EXTRAS[-1])
# 16-bit: torch rounds the logits to the 16-bit dtype (F.linear) before the loss, the core
# computes them in float32 and rounds once; measured worst cases over the cases below: 1.4e-3
# (float16) and 7.6e-3 (bfloat16) of the largest entry, about 2 ulp. (As test_torch_adapter.)
LOW_PRECISION: dict[str, tuple[float, float]] = {
    "float16": (4 * 2.0**-10, 2 * 2.0**-10),
    "bfloat16": (4 * 2.0**-7, 2 * 2.0**-7),
}


@dataclass(frozen=True)
class Spec:
    bias: bool = False
    weight: bool = False  # class weights
    probabilities: bool = False
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    out_features: tuple[int, ...] = ()
    unbatched: bool = False
    options: bool = False
    batch_chunk_size: int | None = None
    extras: tuple[tuple[str, Any], ...] = ()  # ours only (no torch counterpart)


CASES: dict[str, Spec] = {
    "plain": Spec(),
    "bias": Spec(bias=True),
    "ignore-index": Spec(bias=True, ignore_index=2),
    "smoothing": Spec(bias=True, label_smoothing=0.1),
    "class-weight": Spec(weight=True),
    "class-weight-smoothing": Spec(bias=True, weight=True, label_smoothing=0.2),
    "probabilities": Spec(probabilities=True),
    "probabilities-smoothing-weight": Spec(
        bias=True, probabilities=True, weight=True, label_smoothing=0.1
    ),
    "k-dim": Spec(bias=True, out_features=(2,)),
    "k-dim-probabilities-weight": Spec(out_features=(2,), probabilities=True, weight=True),
    "unbatched": Spec(bias=True, unbatched=True),
    "unbatched-probabilities": Spec(unbatched=True, probabilities=True),
    "options-default": Spec(options=True),
    "options-batch-chunk": Spec(bias=True, options=True, batch_chunk_size=4),
}
EXTRA_CASES: dict[str, Spec] = {
    "softcap-zloss-chunks": Spec(
        bias=True,
        label_smoothing=0.1,
        extras=(("softcap", 2.5), ("z_loss", 1e-2), ("chunk_size", 3)),
    ),
}


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    torch = require_or_skip("torch")
    if not hasattr(torch.nn.functional, "linear_cross_entropy"):
        pytest.skip(f"torch {torch.__version__} has no F.linear_cross_entropy to compare with")
    return torch


@pytest.fixture(scope="module")
def X(torch: ModuleType) -> ModuleType:
    return require_or_skip("torch", "xentropy.backends.torch")


def as_tensor(torch: ModuleType, array: Any, dtype: str) -> Any:
    return torch.tensor(np.asarray(array, dtype=np.float64)).to(getattr(torch, dtype))


def sample(torch: ModuleType, X: ModuleType, name: str, dtype: str) -> tuple[dict, dict]:
    """(floating inputs torch differentiates, by argument name; the other arguments)."""
    spec = {**CASES, **EXTRA_CASES}[name]
    rng = rng_for("lce-signature", name)
    rows = () if spec.unbatched else (N,)
    logits_shape = (*rows, V, *spec.out_features)
    leaves = {
        "input": rng.normal(size=(*rows, D)),
        "linear_weight": 0.7 * rng.normal(size=(V, *spec.out_features, D)),
    }
    if spec.bias:
        leaves["linear_bias"] = rng.normal(size=(V, *spec.out_features))
    others: dict[str, Any] = {}
    if spec.probabilities:
        leaves["target"] = random_distributions(rng, logits_shape, axis=len(rows))
    else:
        labels = rng.integers(0, V, size=(*rows, *spec.out_features))
        if not spec.unbatched:  # one target ignored (the default -100, or the index given)
            labels.flat[1] = -100 if spec.ignore_index is None else spec.ignore_index
        others["target"] = torch.tensor(labels)
    if spec.weight:
        others["weight"] = as_tensor(torch, rng.uniform(0.5, 2.0, size=V), dtype)
    if spec.ignore_index is not None:
        others["ignore_index"] = spec.ignore_index
    if spec.label_smoothing:
        others["label_smoothing"] = spec.label_smoothing
    if spec.options:
        others["options"] = X.LinearCrossEntropyOptions(batch_chunk_size=spec.batch_chunk_size)
    others.update(spec.extras)
    return {k: as_tensor(torch, v, dtype) for k, v in leaves.items()}, others


def call(fn: Callable[..., Any], leaves: dict, others: dict, reduction: str) -> Any:
    arguments = {**others, **leaves}
    head = [arguments.pop(k) for k in ("input", "linear_weight", "target")]
    return fn(*head, reduction=reduction, **arguments)


def run(
    torch: ModuleType, fn: Callable[..., Any], leaves: dict, others: dict, reduction: str, seed: str
) -> list[np.ndarray]:
    """The loss and the gradients of ``sum(cotangent * loss)`` for every leaf, in float64."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
    loss = call(fn, leaves, others, reduction)
    cotangent = rng_for("lce-cotangent", seed).uniform(0.5, 1.5, size=tuple(loss.shape))
    cotangent = torch.tensor(cotangent).to(loss.dtype)
    grads = torch.autograd.grad(loss, list(leaves.values()), cotangent)
    return [t.detach().double().numpy() for t in (loss, *grads)]


def check_all(actual: list, expected: list, names: list[str], dtype: str, what: str) -> None:
    rtol, atol = LOW_PRECISION.get(dtype, (None, None))
    for name, a, e in zip(["loss", *names], actual, expected, strict=True):
        assert a.shape == e.shape, (what, name)
        assert_close(a, e, dtype, rtol=rtol, atol=atol, grad=True, msg=f"{what}: {name}")


def upcast(torch: ModuleType, others: dict) -> dict:
    return {
        k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in others.items()
    }


# --- signatures ---------------------------------------------------------------------------


def parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_function_signature_is_torchs_plus_extras(torch, X) -> None:
    native = parameters(torch.nn.functional.linear_cross_entropy)
    extras = [(name, inspect.Parameter.KEYWORD_ONLY, default) for name, default in FUNCTION_EXTRAS]
    assert parameters(X.functional.linear_cross_entropy) == native + extras
    assert X.functional.linear_cross_entropy is X.fused.linear_cross_entropy
    assert X.linear_cross_entropy is X.fused.linear_cross_entropy


def test_module_signature_is_torchs_plus_extras(torch, X) -> None:
    native = parameters(torch.nn.LinearCrossEntropyLoss.__init__)
    extras = [(name, inspect.Parameter.KEYWORD_ONLY, default) for name, default in EXTRAS]
    assert parameters(X.nn.LinearCrossEntropyLoss.__init__) == native + extras
    assert issubclass(X.nn.LinearCrossEntropyLoss, torch.nn.Module)


def test_old_positional_bias_is_gone(torch, X) -> None:
    """PyTorch's signature: everything after ``target`` is keyword-only (``linear_bias``)."""
    h, w, b = torch.ones(2, 3), torch.zeros(5, 3), torch.zeros(5)
    y = torch.tensor([0, 4])
    for fn in (X.functional.linear_cross_entropy, torch.nn.functional.linear_cross_entropy):
        with pytest.raises(TypeError):
            fn(h, w, y, b)
        with pytest.raises(TypeError):
            fn(h, w, y, bias=b)


def test_doctests(X) -> None:
    result = doctest.testmod(X.fused, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- options ------------------------------------------------------------------------------


def test_options_is_torchs_own_dataclass(torch, X) -> None:
    assert X.LinearCrossEntropyOptions is torch.nn.LinearCrossEntropyOptions
    assert X.nn.LinearCrossEntropyOptions is torch.nn.LinearCrossEntropyOptions


OPTION_VALUES = [
    {},
    {"batch_chunk_size": 3},
    {"batch_chunk_size": 0},
    {"batch_chunk_size": -2},
    {"batch_chunk_size": 2.5},
    {"chunking_method": None},
    {"chunking_method": "aspect_ratio"},
    {"chunking_method": "aspect_ratio:4"},
    {"chunking_method": "aspect_ratio:0"},
    {"chunking_method": "aspect_ratio:"},
    {"chunking_method": "ratio"},
    {"acc_policy": "compact"},
    {"acc_policy": "fast"},
    {"allow_retain_graph": True},
]


@pytest.mark.parametrize("values", OPTION_VALUES, ids=lambda v: repr(v))
def test_options_stand_in_matches_torch(torch, X, values) -> None:
    """The dataclass used where torch has none: torch's fields, defaults and ValueErrors."""
    stand_in = X.fused._Options
    native = torch.nn.LinearCrossEntropyOptions
    fields = [(f.name, f.default) for f in dataclasses.fields(native)]
    assert [(f.name, f.default) for f in dataclasses.fields(stand_in)] == fields
    outcomes = []
    for cls in (stand_in, native):
        try:
            made = cls(**values)
        except ValueError:
            outcomes.append("ValueError")
        else:
            outcomes.append(dataclasses.astuple(made))
            with pytest.raises(dataclasses.FrozenInstanceError):
                made.batch_chunk_size = 1
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("acc_dtype", ["float32", "bfloat16", "int32"])
def test_options_stand_in_acc_dtype(torch, X, acc_dtype) -> None:
    outcomes = []
    for cls in (X.fused._Options, torch.nn.LinearCrossEntropyOptions):
        try:
            outcomes.append(cls(acc_dtype=getattr(torch, acc_dtype)).acc_dtype)
        except ValueError:
            outcomes.append("ValueError")
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("batch_chunk_size", [1, 2, 3, 5, 6, 100])
def test_batch_chunk_size_becomes_as_many_logits_per_vocabulary_chunk(
    torch, X, batch_chunk_size
) -> None:
    """torch holds ``B`` rows of all ``C`` classes at once; ours all ``N`` rows of
    ``ceil(B C / N)`` classes (at most ``C``): the same number of logits."""
    options = X.LinearCrossEntropyOptions(batch_chunk_size=batch_chunk_size)
    chunk = X.fused._vocabulary_chunk(None, options, N, V)
    assert chunk == min(V, math.ceil(batch_chunk_size * V / N))
    assert X.fused._vocabulary_chunk(5, None, N, V) == 5
    assert X.fused._vocabulary_chunk(None, X.LinearCrossEntropyOptions(), N, V) is None
    # and the chunked result is torch's
    leaves, others = sample(torch, X, "bias", "float64")
    others["options"] = options
    expected = run(torch, torch.nn.functional.linear_cross_entropy, leaves, others, "mean", "bcs")
    actual = run(torch, X.functional.linear_cross_entropy, leaves, others, "mean", "bcs")
    check_all(actual, expected, list(leaves), "float64", "chunked")


def test_chunk_size_and_batch_chunk_size_together_raise(torch, X) -> None:
    leaves, others = sample(torch, X, "plain", "float64")
    others["options"] = X.LinearCrossEntropyOptions(batch_chunk_size=2)
    with pytest.raises(ValueError, match="not both"):
        call(X.functional.linear_cross_entropy, leaves, {**others, "chunk_size": 3}, "mean")


@pytest.mark.parametrize("case", ["k-dim"])
def test_chunking_request_on_the_unfused_path_warns(torch, X, case) -> None:
    leaves, others = sample(torch, X, case, "float64")
    for extra in ({"options": X.LinearCrossEntropyOptions()}, {"chunk_size": 2}):
        with pytest.warns(UserWarning, match="not applied"):
            call(X.functional.linear_cross_entropy, leaves, {**others, **extra}, "mean")


def test_second_backward_works_whatever_allow_retain_graph(torch, X) -> None:
    """Our backward consumes nothing (as allow_retain_graph=True); torch's chunked one does."""
    leaves, others = sample(torch, X, "bias", "float64")
    others["options"] = X.LinearCrossEntropyOptions(allow_retain_graph=False)
    h = leaves["input"].requires_grad_(True)
    loss = call(X.functional.linear_cross_entropy, leaves, others, "mean")
    (first,) = torch.autograd.grad(loss, h, retain_graph=True)
    (second,) = torch.autograd.grad(loss, h)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    native = call(torch.nn.functional.linear_cross_entropy, leaves, others, "mean")
    torch.autograd.grad(native, h, retain_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(native, h)


# --- values and gradients against torch ---------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(torch, X, dtype, case, reduction) -> None:
    leaves, others = sample(torch, X, case, dtype)
    seed = f"{case}-{reduction}"
    ours = run(torch, X.functional.linear_cross_entropy, leaves, others, reduction, seed)
    native = run(torch, torch.nn.functional.linear_cross_entropy, leaves, others, reduction, seed)
    check_all(ours, native, list(leaves), dtype, "against torch")
    if dtype != "float64":  # the reference: torch in float64 on the rounded inputs
        wide = {k: v.double() for k, v in leaves.items()}
        reference = run(
            torch, torch.nn.functional.linear_cross_entropy, wide, upcast(torch, others),
            reduction, seed,
        )  # fmt: skip
        check_all(ours, reference, list(leaves), dtype, "against the float64 reference")


def differentiable(torch: ModuleType, X: ModuleType, case: str, reduction: str) -> tuple:
    """(``fn(*inputs)``, inputs): every floating input ours differentiates, float64 (class
    weights too, which torch refuses to differentiate)."""
    leaves, others = sample(torch, X, case, "float64")
    names = list(leaves)
    if "weight" in others:
        names.append("weight")
        leaves["weight"] = others.pop("weight")

    def fn(*tensors: Any) -> Any:
        return call(
            X.functional.linear_cross_entropy,
            dict(zip(names, tensors, strict=True)),
            others,
            reduction,
        )

    return fn, tuple(leaves[n].detach().clone().requires_grad_(True) for n in names)


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("case", [*CASES, *EXTRA_CASES])
def test_gradcheck(torch, X, case, reduction) -> None:
    assert torch.autograd.gradcheck(*differentiable(torch, X, case, reduction))


@pytest.mark.parametrize("case", [*CASES, *EXTRA_CASES])
def test_gradgradcheck(torch, X, case) -> None:
    assert torch.autograd.gradgradcheck(*differentiable(torch, X, case, "mean"))


def test_class_weight_gets_a_gradient_where_torch_refuses(torch, X) -> None:
    leaves, others = sample(torch, X, "class-weight", "float64")
    weight = others.pop("weight").requires_grad_(True)
    loss = call(X.functional.linear_cross_entropy, leaves, {**others, "weight": weight}, "mean")
    (grad,) = torch.autograd.grad(loss, weight)
    assert grad.shape == weight.shape and torch.isfinite(grad).all()
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        call(torch.nn.functional.linear_cross_entropy, leaves, {**others, "weight": weight}, "mean")


# --- errors ---------------------------------------------------------------------------------


def mistakes(torch: ModuleType) -> dict[str, Callable[[Any], Any]]:
    """name -> call(F) with one mistake that torch's own structural checks catch."""
    rng = rng_for("lce-mistakes")
    h = torch.tensor(rng.normal(size=(N, D)))
    w = torch.tensor(rng.normal(size=(V, D)))
    w3 = torch.tensor(rng.normal(size=(V, 2, D)))
    b = torch.tensor(rng.normal(size=V))
    y = torch.tensor(rng.integers(0, V, size=N))
    p = torch.softmax(torch.tensor(rng.normal(size=(N, V))), dim=1)
    return {
        "input-3d": lambda F: F.linear_cross_entropy(h[None], w, y[None]),
        "linear-weight-1d": lambda F: F.linear_cross_entropy(h, w[0], y),
        "in-features": lambda F: F.linear_cross_entropy(h, w[:, :-1], y),
        "bias-shape": lambda F: F.linear_cross_entropy(h, w, y, linear_bias=b[:-1]),
        "k-dim-unbatched": lambda F: F.linear_cross_entropy(h[0], w3, y[:2]),
        "probabilities-with-ignore-index": lambda F: F.linear_cross_entropy(
            h, w, p, ignore_index=-100
        ),
        "reduction": lambda F: F.linear_cross_entropy(h, w, y, reduction="batchmean"),
        "linear-weight-dtype": lambda F: F.linear_cross_entropy(h, w.float(), y),
        "bias-dtype": lambda F: F.linear_cross_entropy(h, w, y, linear_bias=b.float()),
        "positional-bias": lambda F: F.linear_cross_entropy(h, w, y, b),
    }


MISTAKES = (
    "input-3d",
    "linear-weight-1d",
    "in-features",
    "bias-shape",
    "k-dim-unbatched",
    "probabilities-with-ignore-index",
    "reduction",
    "linear-weight-dtype",
    "bias-dtype",
    "positional-bias",
)


@pytest.mark.parametrize("mistake", MISTAKES)
def test_exception_class_is_torchs(torch, X, mistake) -> None:
    call_with = mistakes(torch)[mistake]
    with pytest.raises(Exception) as native:
        call_with(torch.nn.functional)
    with pytest.raises(Exception) as ours:
        call_with(X.functional)
    assert type(ours.value) is type(native.value), (ours.value, native.value)


def test_bad_class_index_is_a_value_error(torch, X) -> None:
    """Deliberate (as functional.cross_entropy): ValueError naming the index; torch IndexError."""
    leaves, others = sample(torch, X, "plain", "float64")
    others["target"] = others["target"].clone()
    others["target"][0] = V
    with pytest.raises(ValueError, match=f"class index {V}"):
        call(X.functional.linear_cross_entropy, leaves, others, "mean")
    with pytest.raises(IndexError):
        call(torch.nn.functional.linear_cross_entropy, leaves, others, "mean")


@pytest.mark.parametrize("case", ["class-weight-smoothing", "probabilities"])
def test_softcap_with_class_weights_or_probabilities(torch, X, case) -> None:
    """The soft-cap with class weights or probability targets (the fused path) equals torch's
    cross entropy of the capped logits."""
    leaves, others = sample(torch, X, case, "float64")
    softcap = 2.5

    def capped(input: Any, linear_weight: Any, target: Any, **kwargs: Any) -> Any:
        """torch's reference: the soft-capped logits, then torch's cross_entropy."""
        TF = torch.nn.functional
        z = TF.linear(input, linear_weight, kwargs.pop("linear_bias", None))
        return TF.cross_entropy(softcap * torch.tanh(z / softcap), target, **kwargs)

    def ours(*args: Any, **kwargs: Any) -> Any:
        return X.functional.linear_cross_entropy(*args, softcap=softcap, **kwargs)

    expected = run(torch, capped, leaves, others, "mean", case)
    check_all(run(torch, ours, leaves, others, "mean", case), expected, list(leaves), "float64", "")


@pytest.mark.parametrize("case", ["class-weight-smoothing", "probabilities"])
def test_class_weights_and_probabilities_take_the_fused_path(torch, X, case) -> None:
    """The first-order gradient of the hidden states is the core's chunked backward
    (``CoreLoss``): no (N, C) logits are recorded for autograd."""
    leaves, others = sample(torch, X, case, "float64")
    arguments = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in others.items()}
    arguments.update({k: v.detach() for k, v in leaves.items()})
    h = arguments.pop("input").requires_grad_(True)
    w, t = arguments.pop("linear_weight"), arguments.pop("target")
    loss = X.functional.linear_cross_entropy(h, w, t, **arguments)
    assert loss.grad_fn.name() == "CoreLossBackward"


# --- the module -----------------------------------------------------------------------------


MODULE_CONFIGS = {
    "plain": {},
    "bias-smoothing": {"bias": True, "label_smoothing": 0.1},
    "weight-ignore": {"bias": True, "weight": True, "ignore_index": 1},
    "k-dim": {"bias": True, "out_features": (2,)},
    "options": {"options": {"batch_chunk_size": 2}},
}


def make_modules(torch: ModuleType, X: ModuleType, config: dict, seed: int = 3) -> tuple:
    kwargs = dict(config)
    if kwargs.pop("weight", False):
        kwargs["weight"] = torch.tensor(rng_for("lce-module-weight").uniform(0.5, 2.0, size=V))
    if "options" in kwargs:
        kwargs["options"] = X.LinearCrossEntropyOptions(**kwargs["options"])
    modules = []
    for cls in (X.nn.LinearCrossEntropyLoss, torch.nn.LinearCrossEntropyLoss):
        torch.manual_seed(seed)
        modules.append(cls(D, V, dtype=torch.float64, **kwargs))
    return tuple(modules)


@pytest.mark.parametrize("config", list(MODULE_CONFIGS))
def test_module_same_seed_same_parameters_and_state_dict(torch, X, config) -> None:
    ours, native = make_modules(torch, X, MODULE_CONFIGS[config])
    ours_state, native_state = ours.state_dict(), native.state_dict()
    assert list(ours_state) == list(native_state)
    for key, value in native_state.items():
        torch.testing.assert_close(ours_state[key], value, rtol=0, atol=0, msg=key)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in native.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in native.named_buffers()]
    assert ours.extra_repr() == native.extra_repr()
    ours.load_state_dict(native_state)  # strict: the same keys and shapes


@pytest.mark.parametrize("config", list(MODULE_CONFIGS))
def test_module_matches_torch(torch, X, config) -> None:
    """Loss, input gradient and parameter gradients (``linear.weight``, ``linear.bias``)."""
    rng = rng_for("lce-module", config)
    spec = MODULE_CONFIGS[config]
    out = spec.get("out_features", ())
    x0 = torch.tensor(rng.normal(size=(N, D)))
    y = torch.tensor(rng.integers(0, V, size=(N, *out)))
    results = []
    for module in make_modules(torch, X, spec):
        x = x0.clone().requires_grad_(True)
        loss = module(x, y)
        params = [p for _, p in module.named_parameters()]
        results.append([loss, *torch.autograd.grad(loss, [x, *params])])
    for a, b in zip(*results, strict=True):
        assert_close(a.detach().numpy(), b.detach().numpy(), "float64", grad=True)


def test_module_extras_reach_the_function(torch, X) -> None:
    extras = {"chunk_size": 3, "softcap": 2.5, "z_loss": 1e-2}
    torch.manual_seed(0)
    module = X.nn.LinearCrossEntropyLoss(D, V, bias=True, dtype=torch.float64, **extras)
    assert "softcap=2.5" in module.extra_repr() and "validate" not in module.extra_repr()
    rng = rng_for("lce-module-extras")
    x = torch.tensor(rng.normal(size=(N, D)))
    y = torch.tensor(rng.integers(0, V, size=N))
    expected = X.functional.linear_cross_entropy(
        x, module.linear.weight, y, linear_bias=module.linear.bias, **extras
    )
    plain = X.functional.linear_cross_entropy(
        x, module.linear.weight, y, linear_bias=module.linear.bias
    )
    torch.testing.assert_close(module(x, y), expected, rtol=0, atol=0)
    assert not torch.allclose(expected, plain)  # the extras change the loss


@pytest.mark.parametrize(
    "kwargs",
    [{"weight": "short"}, {"label_smoothing": 1.5}, {"label_smoothing": -0.1}],
    ids=["weight-shape", "smoothing-above-1", "smoothing-below-0"],
)
def test_module_constructor_errors_are_torchs(torch, X, kwargs) -> None:
    if kwargs.get("weight") == "short":
        kwargs = {"weight": torch.ones(V - 1)}
    errors = []
    for cls in (X.nn.LinearCrossEntropyLoss, torch.nn.LinearCrossEntropyLoss):
        with pytest.raises(Exception) as raised:
            cls(D, V, **kwargs)
        errors.append(type(raised.value))
    assert errors[0] is errors[1] is RuntimeError


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_module_scripts(torch, X) -> None:
    torch.manual_seed(0)
    module = X.nn.LinearCrossEntropyLoss(D, V, bias=True, dtype=torch.float64)
    rng = rng_for("lce-module-script")
    x = torch.tensor(rng.normal(size=(N, D)))
    y = torch.tensor(rng.integers(0, V, size=N))
    torch.testing.assert_close(torch.jit.script(module)(x, y), module(x, y), rtol=0, atol=0)
