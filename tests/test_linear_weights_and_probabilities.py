r"""Class weights and probability targets of the fused linear cross entropy.

The reference is PyTorch on the materialised logits ``z = cap(hidden @ weight.T + bias)``:
``torch.nn.functional.cross_entropy(z, targets, weight=class_weight, ignore_index=...,
label_smoothing=...)`` (checked below to be the unfused spelling
:math:`-\sum_c a_{ic} \log p_{ic}` with
:math:`a_{ic} = w_c ((1 - \varepsilon) t_{ic} + \varepsilon / V)`, whose autograd also gives the
gradients PyTorch's kernel refuses for ``weight``), plus the z-loss
:math:`\lambda_z \operatorname{lse}^2`, averaged over the non-ignored examples and not
class-weighted. The core is called with NumPy arrays (the analytic backward by
``xentropy.value_and_grad``, against float64 finite differences of the core's own forward), with
torch tensors (the torch adapter: the analytic backward for hidden, weight and bias, autograd of
the exact forward for class weights and probability targets, ``gradcheck`` and
``gradgradcheck``), with JAX arrays (``check_grads`` of order 2 in both modes) and with TF
tensors. ``V = 11`` with chunks of 3 and 4: the last chunk is short.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from reference import numerical_grad
from tolerances import FINITE_DIFFERENCE_TOLERANCE, assert_close

import xentropy

N, D, V = 5, 4, 11
IGNORE = 2
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size")

# name -> options; "probabilities" (else class indices), "bias", "class_weight", "leading" (the
# leading dims of hidden, default (N,)) are about the inputs, the rest go to the loss
CASES: dict[str, dict[str, Any]] = {
    "indices-weights": {"class_weight": True, "chunk_size": 4},
    "indices-weights-ignore-smoothing": {
        "class_weight": True,
        "ignore_index": IGNORE,
        "label_smoothing": 0.2,
        "chunk_size": 3,
        "bias": True,
    },
    "indices-weights-all": {
        "class_weight": True,
        "ignore_index": IGNORE,
        "label_smoothing": 0.1,
        "z_loss": 0.05,
        "softcap": 2.5,
        "chunk_size": 3,
        "bias": True,
    },
    "indices-weights-zloss-3d": {
        "class_weight": True,
        "ignore_index": IGNORE,
        "z_loss": 0.1,
        "leading": (2, 3),
        "chunk_size": 4,
    },
    "probabilities": {"probabilities": True, "chunk_size": 4},
    "probabilities-weights-smoothing": {
        "probabilities": True,
        "class_weight": True,
        "label_smoothing": 0.3,
        "chunk_size": 3,
        "bias": True,
    },
    "probabilities-all": {
        "probabilities": True,
        "class_weight": True,
        "label_smoothing": 0.1,
        "z_loss": 0.05,
        "softcap": 2.5,
        "bias": True,
        "chunk_size": 3,
    },
    "probabilities-zloss-3d": {
        "probabilities": True,
        "z_loss": 0.1,
        "leading": (2, 3),
        "chunk_size": 4,
    },
}
INPUT_KEYS = ("probabilities", "bias", "class_weight", "leading")
ARRAY_NAMES = ("hidden", "weight", "targets", "bias", "class_weight")


def loss_options(name: str, reduction: str) -> dict[str, Any]:
    options = {k: v for k, v in CASES[name].items() if k not in INPUT_KEYS}
    return {**options, "reduction": reduction}


def inputs(name: str) -> dict[str, np.ndarray | None]:
    """float64 NumPy inputs: ignored and zero-weight targets, soft rows with zeros and one row
    that does not sum to 1 (PyTorch does not require it)."""
    case = CASES[name]
    rng = rng_for("linear-weights-probabilities", name)
    leading = case.get("leading", (N,))
    count = int(np.prod(leading))
    if case.get("probabilities"):
        targets = rng.dirichlet(np.ones(V), size=count)
        targets[0, 1] = 0.0
        targets[0] /= targets[0].sum()
        targets[-1] *= 0.6
    else:
        targets = rng.integers(0, V, size=count)
        targets[1] = IGNORE
        targets[2] = 5  # class 5 has weight 0
    class_weight = rng.uniform(0.3, 2.0, size=V)
    class_weight[5] = 0.0
    return {
        "hidden": rng.normal(size=(*leading, D)),
        "weight": rng.normal(size=(V, D)) * 0.8,
        "targets": targets.reshape(*leading, *targets.shape[1:]),
        "bias": rng.normal(size=V) if case.get("bias") else None,
        "class_weight": class_weight if case.get("class_weight") else None,
    }


def interior(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without a zero class weight or probability: room for central differences
    (a negative one is invalid input)."""
    raw = dict(raw)
    if raw["class_weight"] is not None:
        raw["class_weight"] = np.maximum(raw["class_weight"], 0.1)
    if raw["targets"].dtype.kind == "f":
        raw["targets"] = np.clip(raw["targets"], 1e-3, None)
    return raw


# --- the reference: PyTorch on the materialised logits ------------------------------------------


def unfused(torch: Any, arrays: dict[str, Any], options: dict[str, Any]) -> Any:
    """The loss from the full logits in torch ops, differentiable in every floating input."""
    F = torch.nn.functional
    h, w, t, b, cw = (arrays[k] for k in ARRAY_NAMES)
    z = F.linear(h, w, b)
    softcap = options.get("softcap")
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    eps = options.get("label_smoothing", 0.0)
    weights = torch.ones(V, dtype=z.dtype) if cw is None else cw
    if t.is_floating_point():
        keep = torch.ones(t.shape[:-1], dtype=z.dtype)
        onehot, example_weight = t, keep
    else:
        kept = t != options.get("ignore_index", -12345)
        index = torch.where(kept, t, 0)
        keep = kept.to(z.dtype)
        onehot = F.one_hot(index, V).to(z.dtype) * keep[..., None]
        example_weight = weights[index] * keep
    a = weights * ((1.0 - eps) * onehot + eps / V * keep[..., None])
    ce = -(a * torch.log_softmax(z, dim=-1)).sum(-1)
    zl = options.get("z_loss", 0.0) * torch.logsumexp(z, dim=-1) ** 2 * example_weight
    reduction = options.get("reduction", "mean")
    if reduction == "none":
        return ce + zl
    if reduction == "sum":
        return (ce + zl).sum()
    if reduction == "sum_over_batch_size":
        return (ce + zl).sum() / ce.numel()
    return (ce + zl).sum() / example_weight.sum()


def torch_arrays(torch: Any, raw: dict[str, Any], dtype: Any, grad: tuple[str, ...] = ()):
    out = {}
    for name, value in raw.items():
        if value is None:
            out[name] = None
        elif value.dtype.kind == "f":
            out[name] = torch.tensor(value, dtype=dtype, requires_grad=name in grad)
        else:
            out[name] = torch.tensor(value)
    return out


def core(arrays: dict[str, Any], options: dict[str, Any]) -> Any:
    h, w, t, b, cw = (arrays[k] for k in ARRAY_NAMES)
    return xentropy.linear_cross_entropy(h, w, t, bias=b, class_weight=cw, **options)


def floating_names(arrays: dict[str, Any]) -> tuple[str, ...]:
    """The arrays with a derivative: every floating input (probability targets included)."""
    return tuple(
        k for k in ARRAY_NAMES if arrays[k] is not None and np.asarray(arrays[k]).dtype.kind == "f"
    )


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_is_torch_cross_entropy(name: str, reduction: str) -> None:
    """The unfused spelling without z-loss is ``F.cross_entropy`` itself, float64."""
    torch = require_or_skip("torch")
    options = {k: v for k, v in loss_options(name, reduction).items() if k != "z_loss"}
    arrays = torch_arrays(torch, inputs(name), torch.float64)
    z = torch.nn.functional.linear(arrays["hidden"], arrays["weight"], arrays["bias"])
    if options.get("softcap") is not None:
        z = options["softcap"] * torch.tanh(z / options["softcap"])
    t = arrays["targets"]
    if z.ndim > 2:  # PyTorch's class axis is 1
        z, t = z.reshape(-1, V), t.reshape(-1, *t.shape[z.ndim - 1 :])
    native = torch.nn.functional.cross_entropy(
        z,
        t,
        weight=arrays["class_weight"],
        ignore_index=options.get("ignore_index", -100),
        label_smoothing=options.get("label_smoothing", 0.0),
        reduction=reduction,
    )
    ours = unfused(torch, arrays, options).reshape(native.shape)
    assert_close(ours, native, "float64", rtol=1e-13, atol=1e-14)


# --- NumPy: values against the reference, the analytic backward against finite differences --


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_core_value_and_finite_differences(name: str, reduction: str) -> None:
    torch = require_or_skip("torch")
    options = loss_options(name, reduction)
    raw = inputs(name)
    value, grads = xentropy.value_and_grad(xentropy.linear_cross_entropy)(
        raw["hidden"],
        raw["weight"],
        raw["targets"],
        bias=raw["bias"],
        class_weight=raw["class_weight"],
        **options,
    )
    expected = unfused(torch, torch_arrays(torch, raw, torch.float64), options)
    assert_close(value, expected.numpy(), "float64", rtol=1e-12, atol=1e-13)
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    for name_, grad in zip(("hidden", "weight", "bias"), grads, strict=True):
        if raw[name_] is None:
            assert grad is None
            continue

        def loss_of(x: np.ndarray, which: str = name_) -> np.ndarray:
            return core({**raw, which: x}, options)

        assert_close(grad, numerical_grad(loss_of, raw[name_]), "float64", rtol=rtol, atol=atol)


# --- torch: every gradient against autograd of the unfused spelling ---------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_core_matches_unfused(name: str, reduction: str, dtype: str) -> None:
    """The fast path (hidden, weight, bias need grad) and the exact one (everything does)."""
    torch = require_or_skip("torch")
    options = loss_options(name, reduction)
    raw = inputs(name)
    tdtype = getattr(torch, dtype)
    everything = floating_names(raw)
    for wanted in (tuple(n for n in everything if n in ("hidden", "weight", "bias")), everything):
        results = []
        for fn in (core, lambda a, o: unfused(torch, a, o)):
            arrays = torch_arrays(torch, raw, tdtype, grad=wanted)
            loss = fn(arrays, options)
            weights = torch.linspace(0.5, 1.5, loss.numel(), dtype=tdtype).reshape(loss.shape)
            grads = torch.autograd.grad((loss * weights).sum(), [arrays[n] for n in wanted])
            results.append((loss.detach(), *(g.detach() for g in grads)))
        if wanted != everything:  # the analytic backward: no other input needs a gradient
            assert (
                "CoreLoss"
                in type(core(torch_arrays(torch, raw, tdtype, wanted), options).grad_fn).__name__
            )
        for label, got, want in zip(("loss", *wanted), *results, strict=True):
            assert_close(got.numpy(), want.numpy(), dtype, grad=label != "loss", msg=label)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["indices-weights-all", "probabilities-all"])
def test_torch_16_bit_computes_in_float32(name: str, dtype: str) -> None:
    """16-bit inputs: the float32 reference on the rounded inputs, then rounded to 16 bits."""
    torch = require_or_skip("torch")
    options = loss_options(name, "mean")
    raw = inputs(name)
    tdtype = getattr(torch, dtype)
    names = floating_names(raw)
    low = torch_arrays(torch, raw, tdtype, grad=names)
    loss = core(low, options)
    assert loss.dtype == tdtype
    grads = torch.autograd.grad(loss, [low[n] for n in names])
    widened = {
        k: v if v is None or not v.is_floating_point() else v.detach().float().requires_grad_()
        for k, v in low.items()
    }
    expected = unfused(torch, widened, options)
    expected_grads = torch.autograd.grad(expected, [widened[n] for n in names])
    assert_close(loss.float().detach(), expected.to(tdtype).float().detach(), dtype)
    for label, got, want in zip(names, grads, expected_grads, strict=True):
        assert got.dtype == tdtype, label
        assert_close(got.float(), want.to(tdtype).float(), dtype, grad=True, msg=label)


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_exact_gradients_equal_finite_differences(name: str) -> None:
    """Class weights and probability targets: autograd through the core against central
    differences of the core's own NumPy forward (float64)."""
    torch = require_or_skip("torch")
    options = loss_options(name, "mean")
    raw = interior(inputs(name))
    names = [n for n in ("class_weight", "targets") if n in floating_names(raw)]
    if not names:
        pytest.skip("no class weight and no probability targets")
    arrays = torch_arrays(torch, raw, torch.float64, grad=tuple(names))
    grads = torch.autograd.grad(core(arrays, options), [arrays[n] for n in names])
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    for which, grad in zip(names, grads, strict=True):

        def loss_of(x: np.ndarray, which: str = which) -> np.ndarray:
            return core({**raw, which: x}, options)

        expected = numerical_grad(loss_of, raw[which])
        assert_close(grad.numpy(), expected, "float64", rtol=rtol, atol=atol, msg=which)


GRADCHECK_CASES = ["indices-weights-all", "probabilities-all", "probabilities-zloss-3d"]


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("name", GRADCHECK_CASES)
def test_torch_gradcheck_and_gradgradcheck(name: str, reduction: str) -> None:
    torch = require_or_skip("torch")
    options = loss_options(name, reduction)
    raw = interior(inputs(name))
    names = floating_names(raw)
    arrays = torch_arrays(torch, raw, torch.float64, grad=names)

    def loss(*values: Any) -> Any:
        return core({**arrays, **dict(zip(names, values, strict=True))}, options)

    leaves = tuple(arrays[n] for n in names)
    assert torch.autograd.gradcheck(loss, leaves)
    assert torch.autograd.gradgradcheck(loss, leaves)


# --- JAX: check_grads of order 2, both modes, through the core --------------------------------


@pytest.mark.parametrize(
    "name", ["probabilities-all", pytest.param("indices-weights-all", marks=pytest.mark.slow)]
)
def test_jax_check_grads_second_order(name: str) -> None:
    """Every floating input, both modes, order 2 (two chunks, 6 and 5 classes: each derivative
    of the chunked graph compiles anew, and fewer chunks compile faster)."""
    jax = require_or_skip("jax")
    jnp = require_or_skip("jax", "jax.numpy")
    from jax.test_util import check_grads

    options = {**loss_options(name, "mean"), "chunk_size": 6}
    raw = interior(inputs(name))
    names = floating_names(raw)
    with jax.enable_x64(True):
        fixed = {k: None if v is None else jnp.asarray(v) for k, v in raw.items()}

        def loss(*values: Any) -> Any:
            return core({**fixed, **dict(zip(names, values, strict=True))}, options)

        args = tuple(fixed[n] for n in names)
        check_grads(jax.jit(loss), args, order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("name", ["indices-weights-all", "probabilities-all"])
def test_jax_gradients_match_torch_reference(name: str, reduction: str) -> None:
    """float32 JAX (analytic for hidden, weight, bias; exact for the rest) vs torch float64."""
    torch = require_or_skip("torch")
    jax = require_or_skip("jax")
    jnp = require_or_skip("jax", "jax.numpy")
    options = loss_options(name, reduction)
    raw = inputs(name)
    names = floating_names(raw)
    rounded = {
        k: None if v is None else v.astype(np.float32) if v.dtype.kind == "f" else v
        for k, v in raw.items()
    }
    fixed = {k: None if v is None else jnp.asarray(v) for k, v in rounded.items()}

    def loss(*values: Any) -> Any:
        return jnp.sum(core({**fixed, **dict(zip(names, values, strict=True))}, options))

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(names)))))(
        *(fixed[n] for n in names)
    )
    widened = {
        k: None if v is None else v.astype(np.float64) if v.dtype.kind == "f" else v
        for k, v in rounded.items()
    }
    arrays = torch_arrays(torch, widened, torch.float64, grad=names)
    expected = unfused(torch, arrays, options).sum()
    expected_grads = torch.autograd.grad(expected, [arrays[n] for n in names])
    assert_close(np.asarray(value), expected.detach().numpy(), "float32")
    for label, got, want in zip(names, grads, expected_grads, strict=True):
        assert_close(np.asarray(got), want.numpy(), "float32", grad=True, msg=label)


# --- TensorFlow: tape gradients of every input, and a nested tape ------------------------------


@pytest.mark.parametrize("name", ["indices-weights-all", "probabilities-all"])
def test_tensorflow_gradients_match_torch_reference(name: str) -> None:
    torch = require_or_skip("torch")
    tf = require_or_skip("tensorflow")
    options = loss_options(name, "mean")
    raw = inputs(name)
    names = floating_names(raw)
    fixed = {k: None if v is None else tf.constant(v) for k, v in raw.items()}
    variables = [tf.Variable(raw[n]) for n in names]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = core({**fixed, **dict(zip(names, variables, strict=True))}, options)
        grads = inner.gradient(loss, variables)
        # a Hessian-vector product along a ones direction, by the class weight / targets
        directional = tf.add_n([tf.reduce_sum(g) for g in grads])
    second = outer.gradient(directional, variables)
    arrays = torch_arrays(torch, raw, torch.float64, grad=names)
    expected = unfused(torch, arrays, options)
    first = torch.autograd.grad(expected, [arrays[n] for n in names], create_graph=True)
    expected_second = torch.autograd.grad(sum(g.sum() for g in first), [arrays[n] for n in names])
    assert_close(loss.numpy(), expected.detach().numpy(), "float64", rtol=1e-12, atol=1e-13)
    for label, got, want in zip(names, grads, first, strict=True):
        assert_close(got.numpy(), want.detach().numpy(), "float64", grad=True, msg=label)
    for label, got, want in zip(names, second, expected_second, strict=True):
        assert_close(got.numpy(), want.numpy(), "float64", grad=True, msg=f"second {label}")


# --- semantics --------------------------------------------------------------------------------


def test_mean_is_the_weighted_mean_of_the_per_example_losses() -> None:
    """With class weights and the z-loss, ``"mean"`` is the sum of the ``"none"`` losses over the
    summed class weight of the kept targets: the z-loss carries its example's weight (dividing
    it by the count instead, as Liger does, would break this identity)."""
    raw = inputs("indices-weights-all")
    options = loss_options("indices-weights-all", "mean")
    assert options.get("z_loss") and raw["class_weight"] is not None
    mean = core(raw, options)
    per_example = core(raw, {**options, "reduction": "none"})
    kept = raw["targets"] != options["ignore_index"]
    total = np.sum(raw["class_weight"][np.where(kept, raw["targets"], 0)] * kept)
    np.testing.assert_allclose(mean, np.sum(per_example) / total, rtol=1e-13)
    without = core({**raw, "class_weight": None}, options)
    assert abs(float(without) - float(mean)) > 1e-3  # the weights do matter


def test_unit_class_weights_equal_no_class_weights() -> None:
    for name in ("indices-weights-all", "probabilities-all"):
        raw = inputs(name)
        for reduction in REDUCTIONS:
            options = loss_options(name, reduction)
            ones = core({**raw, "class_weight": np.ones(V)}, options)
            np.testing.assert_allclose(
                ones, core({**raw, "class_weight": None}, options), rtol=1e-13
            )


def test_one_hot_probabilities_equal_class_indices() -> None:
    """Per example, without the z-loss: that carries the example's mean weight, w_y for a class
    index and 1 for probabilities (whose mean divides by N, as PyTorch's)."""
    raw = inputs("indices-weights-all")
    options = {**loss_options("indices-weights-all", "none"), "ignore_index": None, "z_loss": 0.0}
    indices = np.where(raw["targets"] == IGNORE, 0, raw["targets"])
    dense = np.eye(V)[indices]
    np.testing.assert_allclose(
        core({**raw, "targets": dense}, options),
        core({**raw, "targets": indices}, options),
        rtol=1e-12,
    )


def test_class_weight_as_a_list_and_with_torch_tensors() -> None:
    torch = require_or_skip("torch")
    raw = inputs("indices-weights")
    options = loss_options("indices-weights", "mean")
    expected = core(raw, options)
    arrays = torch_arrays(torch, {**raw, "class_weight": None}, torch.float64)
    got = core({**arrays, "class_weight": raw["class_weight"].tolist()}, options)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13)


# --- bad input ----------------------------------------------------------------------------------


def bad_input_cases() -> list[tuple[str, dict[str, Any], dict[str, Any], str]]:
    rng = rng_for("linear-weights-probabilities", "bad")
    probabilities = inputs("probabilities")
    indices = inputs("indices-weights")
    over = probabilities["targets"].copy()
    over[1, 2] = 1.5
    under = probabilities["targets"].copy()
    under[0, 0] = -0.1
    negative = indices["class_weight"].copy()
    negative[3] = -1.0
    return [
        ("class_weight long", indices, {"class_weight": rng.uniform(size=V + 1)}, "class_weight"),
        ("class_weight 2-d", indices, {"class_weight": rng.uniform(size=(1, V))}, "class_weight"),
        ("class_weight < 0", indices, {"class_weight": negative}, "class_weight"),
        ("classes", probabilities, {"targets": rng.uniform(size=(N, V + 1))}, "targets"),
        ("leading dims", probabilities, {"targets": rng.uniform(size=(N + 1, V))}, "targets"),
        ("probability > 1", probabilities, {"targets": over}, "targets"),
        ("probability < 0", probabilities, {"targets": under}, "targets"),
        ("indices shape", indices, {"targets": np.zeros(N + 1, dtype=np.int64)}, "targets"),
    ]


@pytest.mark.parametrize(
    ("raw", "change", "argument"),
    [pytest.param(r, c, a, id=i) for i, r, c, a in bad_input_cases()],
)
def test_bad_input_raises_value_error_naming_the_argument(raw, change, argument) -> None:
    with pytest.raises(ValueError, match=argument):
        core({**raw, **change}, {"reduction": "mean"})


def test_ignore_index_with_probabilities_raises() -> None:
    raw = inputs("probabilities")
    with pytest.raises(ValueError, match="ignore_index"):
        core(raw, {"ignore_index": -100})


def test_floating_class_index_shaped_targets_raise_type_error() -> None:
    raw = inputs("indices-weights")
    with pytest.raises(TypeError, match="targets"):
        core({**raw, "targets": raw["targets"].astype(np.float64)}, {})


@pytest.mark.parametrize("where", ["validate=False", "jax.jit"])
def test_unchecked_bad_values_give_nan_rows(where: str) -> None:
    """A probability outside [0, 1] (row 1) and a negative class weight (the class of row 3):
    NaN loss and gradient in the rows they reach, finite elsewhere."""
    probs, indices = inputs("probabilities-all"), inputs("indices-weights")
    probs["targets"][1, 2] = 1.5
    negative = indices["class_weight"].copy()
    negative[indices["targets"][3]] = -1.0
    same_class = indices["targets"] == indices["targets"][3]
    for raw, bad in (
        (probs, np.arange(N) == 1),
        ({**indices, "class_weight": negative}, same_class),
    ):
        options = {"reduction": "none", "chunk_size": 4}
        if raw is probs:
            options["z_loss"] = 0.01
        if where == "validate=False":
            loss, (grad, _, _) = xentropy.value_and_grad(xentropy.linear_cross_entropy)(
                raw["hidden"],
                raw["weight"],
                raw["targets"],
                bias=raw["bias"],
                class_weight=raw["class_weight"],
                validate=False,
                **options,
            )
        else:
            jax = require_or_skip("jax")
            jnp = require_or_skip("jax", "jax.numpy")
            fixed = {k: None if v is None else jnp.asarray(v) for k, v in raw.items()}

            def per_example(h: Any, fixed: dict = fixed, options: dict = options) -> Any:
                return core({**fixed, "hidden": h}, options)

            loss = jax.jit(per_example)(fixed["hidden"])
            grad = jax.jit(jax.grad(lambda h, f=per_example, s=jnp.sum: s(f(h))))(fixed["hidden"])
        loss, grad = np.asarray(loss), np.asarray(grad)
        rows = bad
        assert np.all(np.isnan(loss[rows])) and np.all(np.isfinite(loss[~rows]))
        assert np.all(np.isnan(grad[rows])) and np.all(np.isfinite(grad[~rows]))
