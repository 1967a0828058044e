"""The gradient computed in the forward pass of linear cross entropy.

``LinearCrossEntropy.forward_and_backward`` computes the loss and, for a reduced loss, the
gradients of ``hidden``, ``weight`` and ``bias`` in one pass over blocks of rows (three matrix
products); the torch adapter calls it when autograd records the call and hands the stored
gradients to the first backward. Checked here:

* the two paths of the core operator agree (``forward`` + the recomputing ``backward`` against
  ``forward_and_backward`` + ``stored_backward``), to rounding, for every reduction and option
  set that takes the new path, on NumPy and PyTorch, float64 / float32 / bfloat16, with blocks
  that split the batch unevenly;
* the torch adapter's gradients against ``F.linear`` + ``F.cross_entropy`` (float64), so that
  the path the adapter takes is checked against the framework itself;
* the adapter calls ``forward_and_backward`` only when autograd records the call and some
  gradient position needs it, computes only the gradients needed, hands the stored gradient
  to autograd without a copy, and a second backward (``retain_graph=True``) gives the same bits;
* ``reduction="none"`` and double backward keep their paths;
* the block-size rule of :func:`xentropy._linear.gradient_rows`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import rng_for
from tolerances import assert_close

from xentropy._linear import GRADIENT_BLOCK_LOGITS, LinearCrossEntropy, gradient_rows

N, D, V = 23, 6, 13
IGNORE = 4
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "bias-small-blocks": {"bias": True, "chunk_size": 3},  # 6 rows a block: 4 blocks, 5 last
    "ignore": {"ignore_index": IGNORE, "chunk_size": 2},
    "class-weight-smoothing": {"class_weight": True, "label_smoothing": 0.2, "ignore_index": 0},
    "softcap-zloss": {"softcap": 2.5, "z_loss": 1e-2, "bias": True, "chunk_size": 5},
    "probabilities": {"probabilities": True, "chunk_size": 4},
    "probabilities-weighted-smoothed": {
        "probabilities": True,
        "class_weight": True,
        "label_smoothing": 0.1,
        "z_loss": 1e-3,
        "softcap": 3.0,
        "bias": True,
    },
}
REDUCTIONS = ("mean", "sum", "sum_over_batch_size")
# Both paths compute in float32 for bfloat16 and round once: at most one bfloat16 ulp apart.
PATH_TOLERANCES = {"float64": (1e-12, 1e-14), "float32": (2e-5, 2e-7), "bfloat16": (8e-3, 1e-6)}


def _arrays(name: str) -> dict[str, np.ndarray | None]:
    options = OPTIONS[name]
    rng = rng_for("linear-grad-in-forward", name)
    targets: np.ndarray = rng.integers(0, V, size=N)
    targets[[1, 7]] = IGNORE
    if options.get("probabilities"):
        logits = rng.normal(size=(N, V)) * 2.0
        targets = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return {
        "hidden": rng.normal(size=(N, D)),
        "weight": rng.normal(size=(V, D)) * 0.8,
        "targets": targets,
        "bias": rng.normal(size=V) if options.get("bias") else None,
        "class_weight": rng.uniform(0.2, 2.0, size=V) if options.get("class_weight") else None,
    }


def _operator(name: str, reduction: str) -> LinearCrossEntropy:
    options = {k: v for k, v in OPTIONS[name].items() if k not in ("bias", "class_weight")}
    options.pop("probabilities", None)
    return LinearCrossEntropy(**options, reduction=reduction)


def _namespace(backend: str, dtype: str) -> tuple[Any, Any]:
    """``(xp, convert)`` for ``backend``, ``convert`` casting floating arrays to ``dtype``."""
    if backend == "numpy":
        import array_api_compat.numpy as xp

        def convert(a: np.ndarray | None) -> Any:
            if a is None or a.dtype.kind != "f":
                return a
            return np.asarray(a, dtype=dtype)

        return xp, convert
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp

    def convert_tensor(a: np.ndarray | None) -> Any:
        if a is None:
            return None
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.to(getattr(torch, dtype)) if t.is_floating_point() else t

    return xp, convert_tensor


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().float().numpy() if x.dtype.is_floating_point else x.numpy()
    return np.asarray(x, dtype=np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize(
    "library, precision",
    [("numpy", "float64"), ("numpy", "float32"), ("torch", "float64"), ("torch", "float32"),
     ("torch", "bfloat16")],
)  # fmt: skip
def test_gradient_in_forward_matches_the_recomputing_backward(
    library: str, precision: str, name: str, reduction: str
) -> None:
    xp, convert = _namespace(library, precision)
    arrays = [convert(a) for a in _arrays(name).values()]
    hidden = arrays[0]
    op = _operator(name, reduction)
    cotangent = xp.asarray(0.75, dtype=hidden.dtype)
    loss, residuals = op.forward(xp, *arrays)
    recomputed = op.backward(xp, residuals, cotangent)
    fused_loss, fused_residuals, stored = op.forward_and_backward(xp, *arrays)
    assert stored is not None
    in_forward = op.stored_backward(xp, fused_residuals, stored, cotangent)
    tolerances = dict(zip(("rtol", "atol"), PATH_TOLERANCES[precision], strict=True))
    assert_close(_to_numpy(fused_loss), _to_numpy(loss), precision, **tolerances, msg="loss")
    labels = ("hidden", "weight", "bias")
    for label, got, expected in zip(labels, in_forward, recomputed, strict=True):
        if expected is None:
            assert got is None, label
            continue
        assert got.dtype == expected.dtype, label
        assert_close(_to_numpy(got), _to_numpy(expected), precision, **tolerances, msg=label)
    # the residuals serve the recomputing backward as well (the torch adapter's second backward)
    again = op.backward(xp, fused_residuals, cotangent)
    for got, expected in zip(again, recomputed, strict=True):
        if expected is not None:
            assert_close(_to_numpy(got), _to_numpy(expected), precision, **tolerances)


def test_only_the_needed_gradients_are_computed() -> None:
    import array_api_compat.numpy as xp

    arrays = list(_arrays("bias-small-blocks").values())
    op = _operator("bias-small-blocks", "mean")
    for needs in [(True, False, False), (False, True, False), (False, False, True)]:
        _, _, stored = op.forward_and_backward(xp, *arrays, needs=needs)
        assert stored is not None
        assert [g is not None for g in stored] == list(needs)
    *_, stored = op.forward_and_backward(xp, *arrays, needs=(False, False, False))
    assert stored is None


def test_unreduced_loss_keeps_the_recomputing_backward() -> None:
    import array_api_compat.numpy as xp

    arrays = list(_arrays("ignore").values())
    op = _operator("ignore", "none")
    loss, _, stored = op.forward_and_backward(xp, *arrays)
    assert stored is None
    expected, _ = op.forward(xp, *arrays)
    np.testing.assert_array_equal(loss, expected)


# --- the torch adapter ------------------------------------------------------------------------


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Per call of ``forward_and_backward`` (the real method runs), the data pointers of the
    gradients it returned (None: none computed), not the arrays: a reference kept here would
    make autograd copy a gradient it could otherwise take over."""
    seen: list[tuple[Any, ...]] = []
    original = LinearCrossEntropy.forward_and_backward

    def recording(self: LinearCrossEntropy, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        gradients = result[2]
        if gradients is not None:
            gradients = tuple(None if g is None else g.data_ptr() for g in gradients)
        seen.append(gradients)
        return result

    monkeypatch.setattr(LinearCrossEntropy, "forward_and_backward", recording)
    return seen


def _torch_inputs(torch: Any, name: str, dtype: str = "float64") -> dict[str, Any]:
    converted = {}
    for key, value in _arrays(name).items():
        if value is None:
            converted[key] = None
            continue
        t = torch.from_numpy(value)
        converted[key] = t.to(getattr(torch, dtype)) if t.is_floating_point() else t
    return converted


def _fused(torch: Any, a: dict[str, Any], reduction: str, name: str) -> Any:
    from xentropy.backends.torch import functional as XF

    options = OPTIONS[name]
    return XF.linear_cross_entropy(
        a["hidden"],
        a["weight"],
        a["targets"],
        linear_bias=a["bias"],
        weight=a["class_weight"],
        reduction=reduction,
        ignore_index=None if options.get("probabilities") else options.get("ignore_index", -100),
        label_smoothing=options.get("label_smoothing", 0.0),
        softcap=options.get("softcap"),
        z_loss=options.get("z_loss", 0.0),
        chunk_size=options.get("chunk_size"),
    )


def _native(torch: Any, a: dict[str, Any], reduction: str, name: str) -> Any:
    """``F.linear`` + ``F.cross_entropy``, with the cap and the z-loss (weighted as its example,
    PyTorch's mean divisor) spelled out."""
    F = torch.nn.functional
    options = OPTIONS[name]
    z = F.linear(a["hidden"], a["weight"], a["bias"])
    if options.get("softcap"):
        z = options["softcap"] * torch.tanh(z / options["softcap"])
    y, weight = a["targets"], a["class_weight"]
    if options.get("probabilities"):
        kwargs, e = {}, torch.ones(N, dtype=z.dtype)
    else:
        ignore = options.get("ignore_index", -100)
        kwargs, keep = {"ignore_index": ignore}, (y != ignore).to(z.dtype)
        e = keep if weight is None else keep * weight[y.clamp(0, V - 1)]
    smoothing = options.get("label_smoothing", 0.0)
    losses = F.cross_entropy(z, y, weight, reduction="none", label_smoothing=smoothing, **kwargs)
    z_loss = options.get("z_loss", 0.0)
    if z_loss:
        losses = losses + z_loss * e * torch.logsumexp(z, dim=-1) ** 2
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / e.sum()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_adapter_gradients_match_native(
    torch: Any, calls: list[Any], name: str, reduction: str
) -> None:
    a = _torch_inputs(torch, name)
    leaves = [a["hidden"], a["weight"]] + ([a["bias"]] if a["bias"] is not None else [])
    for leaf in leaves:
        leaf.requires_grad_(True)
    upstream = torch.tensor(1.3, dtype=torch.float64)
    expected = torch.autograd.grad(_native(torch, a, reduction, name), leaves, upstream)
    loss = _fused(torch, a, reduction, name)
    assert len(calls) == 1 and calls[0] is not None  # the forward computed the gradients
    got = torch.autograd.grad(loss, leaves, upstream)
    assert len(calls) == 1  # the first backward took them
    assert_close(loss.detach(), _native(torch, a, reduction, name).detach(), "float64")
    for g, e in zip(got, expected, strict=True):
        assert_close(g, e, "float64", grad=True)


def test_forward_only_calls_do_no_backward_work(torch: Any, calls: list[Any]) -> None:
    a = _torch_inputs(torch, "bias-small-blocks")
    loss = _fused(torch, a, "mean", "bias-small-blocks")  # nothing requires grad
    assert loss.grad_fn is None and calls == []
    a["hidden"].requires_grad_(True)
    a["weight"].requires_grad_(True)
    with torch.no_grad():
        _fused(torch, a, "mean", "bias-small-blocks")
    with torch.inference_mode():
        _fused(torch, a, "mean", "bias-small-blocks")
    assert calls == []


def test_only_required_gradients_are_computed(torch: Any, calls: list[Any]) -> None:
    a = _torch_inputs(torch, "bias-small-blocks")
    a["hidden"].requires_grad_(True)  # a frozen projection: no weight or bias gradient
    loss = _fused(torch, a, "mean", "bias-small-blocks")
    (grad_hidden, grad_weight, grad_bias) = calls[0]
    assert grad_hidden is not None and grad_weight is None and grad_bias is None
    (got,) = torch.autograd.grad(loss, a["hidden"])
    assert got.data_ptr() == grad_hidden  # handed on without a copy


def test_stored_weight_gradient_becomes_grad_without_a_copy(torch: Any, calls: list[Any]) -> None:
    a = _torch_inputs(torch, "plain", "float32")
    a["weight"].requires_grad_(True)
    _fused(torch, a, "mean", "plain").backward()
    stored_weight_gradient = calls[0][1]
    assert a["weight"].grad.data_ptr() == stored_weight_gradient


def test_second_backward_recomputes_the_same_bits(torch: Any, calls: list[Any]) -> None:
    a = _torch_inputs(torch, "softcap-zloss", "float32")
    leaves = [a["hidden"].requires_grad_(True), a["weight"].requires_grad_(True)]
    loss = _fused(torch, a, "mean", "softcap-zloss")
    first = torch.autograd.grad(loss, leaves, retain_graph=True)
    second = torch.autograd.grad(loss, leaves)
    assert len(calls) == 2  # the second backward found the stored gradients taken
    for f, s in zip(first, second, strict=True):
        torch.testing.assert_close(f, s, rtol=0, atol=0)


def test_unreduced_loss_and_double_backward_keep_their_paths(torch: Any, calls: list[Any]) -> None:
    a = _torch_inputs(torch, "softcap-zloss")
    h = a["hidden"].requires_grad_(True)
    upstream = torch.linspace(0.5, 1.5, N, dtype=torch.float64)
    (got,) = torch.autograd.grad(_fused(torch, a, "none", "softcap-zloss"), h, upstream)
    assert calls == [None]  # forward_and_backward declined: the recomputing backward ran
    (expected,) = torch.autograd.grad(_native(torch, a, "none", "softcap-zloss"), h, upstream)
    assert_close(got, expected, "float64", grad=True)

    (g,) = torch.autograd.grad(_fused(torch, a, "mean", "softcap-zloss"), h, create_graph=True)
    (gg,) = torch.autograd.grad((g * g).sum(), h)
    native = _native(torch, a, "mean", "softcap-zloss")
    (g_native,) = torch.autograd.grad(native, h, create_graph=True)
    (gg_native,) = torch.autograd.grad((g_native * g_native).sum(), h)
    assert_close(gg, gg_native, "float64", grad=True)


# --- the block rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows, vocab, features, chunk_size, expected",
    [
        (1024, 128256, 256, None, 3 * 256 // 8),  # 3/8 of the weight gradient: 3 D / 8 rows
        (8192, 128256, 2048, None, 3 * 2048 // 8),
        (4096, 32000, 64, None, GRADIENT_BLOCK_LOGITS // 32000),  # 32 MiB of logits: 262 rows
        (6, 11, 5, None, 6),  # a small batch: one block
        (1024, 128256, 256, 4096, 33),  # as many logits as a vocabulary chunk: ceil(4096 N / V)
        (6, 11, 5, 3, 2),
        (6, 11, 5, 1000, 6),
        (0, 11, 5, None, 1),
    ],
)
def test_gradient_rows(
    rows: int, vocab: int, features: int, chunk_size: int | None, expected: int
) -> None:
    assert gradient_rows(rows, vocab, features, chunk_size) == expected
