"""Fused linear cross entropy on every framework against the unfused path of that framework.

Each case computes ``loss(hidden @ weight.T + bias)`` the plain way, differentiated by the
framework's own autodiff (and by a float64 NumPy reference for the value), and compares the fused
adapter's value and its gradients for ``hidden``, ``weight`` and ``bias``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from tolerances import assert_close

N, D, V = 6, 5, 11
IGNORE = 3
OPTIONS = {
    "plain": {},
    "bias-chunks": {"chunk_size": 4, "with_bias": True},
    "softcap-zloss-smoothing": {
        "chunk_size": 3,
        "softcap": 2.5,
        "z_loss": 1e-2,
        "label_smoothing": 0.1,
        "with_bias": True,
    },
    "ignore-sum": {"chunk_size": 5, "ignore_index": IGNORE, "reduction": "sum"},
    "ignore-mean-none": {"ignore_index": IGNORE, "reduction": "none", "with_bias": True},
}


def _inputs(name: str) -> dict[str, np.ndarray]:
    rng = rng_for("linear", name)
    targets = rng.integers(0, V, size=N)
    targets[1] = IGNORE
    return {
        "hidden": rng.normal(size=(N, D)),
        "weight": rng.normal(size=(V, D)) * 0.7,
        "bias": rng.normal(size=V),
        "targets": targets,
    }


def _reference(inputs: dict[str, np.ndarray], options: dict[str, Any]) -> np.ndarray:
    """The unfused loss in float64 NumPy."""
    from scipy.special import logsumexp

    z = inputs["hidden"] @ inputs["weight"].T
    if options.get("with_bias"):
        z = z + inputs["bias"]
    if options.get("softcap"):
        z = options["softcap"] * np.tanh(z / options["softcap"])
    y = inputs["targets"]
    keep = y != options.get("ignore_index", -12345)
    lse = logsumexp(z, axis=-1)
    eps = options.get("label_smoothing", 0.0)
    losses = (1 - eps) * (lse - z[np.arange(N), y]) + eps * (lse - z.mean(axis=-1))
    losses = (losses + options.get("z_loss", 0.0) * lse**2) * keep
    reduction = options.get("reduction", "mean")
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / keep.sum()


def _core_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "with_bias"}


def _check(value: Any, grads: tuple[Any, ...], expected: tuple[Any, ...], dtype: str) -> None:
    names = ("loss", "d hidden", "d weight", "d bias")
    for name, got, want in zip(names, (value, *grads), expected, strict=True):
        if want is None:
            assert got is None, name
            continue
        assert_close(np.asarray(got, dtype=np.float64), np.asarray(want), dtype, grad=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_torch_fused_matches_unfused(case: str, dtype: str) -> None:
    torch = require_or_skip("torch")
    from xentropy.backends.torch import linear_cross_entropy

    options, inputs = OPTIONS[case], _inputs(case)
    tdtype = getattr(torch, dtype)

    def leaves() -> list[Any]:
        names = ["hidden", "weight"] + (["bias"] if options.get("with_bias") else [])
        return [torch.tensor(inputs[n], dtype=tdtype, requires_grad=True) for n in names]

    def run(fn: Any) -> tuple[Any, ...]:
        params = leaves()
        bias = params[2] if len(params) == 3 else None
        loss = fn(params[0], params[1], bias)
        grads = torch.autograd.grad(loss.sum(), params)
        return (loss.detach().numpy(), *(g.numpy() for g in grads), *([None] * (3 - len(grads))))

    y = torch.tensor(inputs["targets"])
    core = _core_options(options)

    def fused(h: Any, w: Any, b: Any) -> Any:
        return linear_cross_entropy(h, w, y, linear_bias=b, **{"ignore_index": -100, **core})

    def unfused(h: Any, w: Any, b: Any) -> Any:
        z = torch.nn.functional.linear(h, w, b)
        if options.get("softcap"):
            z = options["softcap"] * torch.tanh(z / options["softcap"])
        ignore = options.get("ignore_index", -100)
        losses = torch.nn.functional.cross_entropy(
            z,
            y,
            ignore_index=ignore,
            label_smoothing=options.get("label_smoothing", 0.0),
            reduction="none",
        )
        keep = (y != ignore).to(z.dtype)
        losses = losses + options.get("z_loss", 0.0) * torch.logsumexp(z, -1) ** 2 * keep
        reduction = options.get("reduction", "mean")
        if reduction == "none":
            return losses
        return losses.sum() if reduction == "sum" else losses.sum() / keep.sum()

    ours, theirs = run(fused), run(unfused)
    np.testing.assert_allclose(
        ours[0], _reference(inputs, options), rtol=1e-5 if dtype == "float32" else 1e-12
    )
    _check(ours[0], ours[1:], theirs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_jax_fused_matches_unfused(case: str, dtype: str) -> None:
    jax = require_or_skip("jax")
    import jax.numpy as jnp
    from xentropy.backends.jax import linear_cross_entropy

    options, inputs = OPTIONS[case], _inputs(case)
    core = _core_options(options)
    y = jnp.asarray(inputs["targets"])

    def unfused(h: Any, w: Any, b: Any) -> Any:
        z = h @ w.T + (0.0 if b is None else b)
        if options.get("softcap"):
            z = options["softcap"] * jnp.tanh(z / options["softcap"])
        lse = jax.nn.logsumexp(z, axis=-1)
        eps = options.get("label_smoothing", 0.0)
        picked = jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
        losses = (1 - eps) * (lse - picked) + eps * (lse - z.mean(-1))
        keep = (y != options.get("ignore_index", -12345)).astype(z.dtype)
        losses = (losses + options.get("z_loss", 0.0) * lse**2) * keep
        reduction = options.get("reduction", "mean")
        if reduction == "none":
            return losses
        return losses.sum() if reduction == "sum" else losses.sum() / keep.sum()

    with jax.enable_x64(dtype == "float64"):
        h = jnp.asarray(inputs["hidden"], dtype=dtype)
        w = jnp.asarray(inputs["weight"], dtype=dtype)
        b = jnp.asarray(inputs["bias"], dtype=dtype) if options.get("with_bias") else None

        def fused(h: Any, w: Any, b: Any) -> Any:
            return linear_cross_entropy(h, w, y, bias=b, **core)

        results = []
        for fn in (fused, unfused):
            value = fn(h, w, b)
            argnums = (0, 1, 2) if b is not None else (0, 1)
            grads = jax.grad(lambda *a, fn=fn: fn(*a).sum(), argnums)(h, w, b)
            results.append((np.asarray(value), *grads, *([None] * (3 - len(grads)))))
    ours, theirs = results
    np.testing.assert_allclose(
        ours[0], _reference(inputs, options), rtol=1e-5 if dtype == "float32" else 1e-12
    )
    _check(ours[0], ours[1:], theirs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_tensorflow_fused_matches_unfused(case: str, dtype: str) -> None:
    tf = require_or_skip("tensorflow")
    from xentropy.backends.tensorflow import linear_cross_entropy

    options, inputs = OPTIONS[case], _inputs(case)
    core = _core_options(options)
    y = tf.constant(inputs["targets"])

    def unfused(h: Any, w: Any, b: Any) -> Any:
        z = tf.matmul(h, w, transpose_b=True) + (0.0 if b is None else b)
        if options.get("softcap"):
            z = options["softcap"] * tf.tanh(z / options["softcap"])
        lse = tf.reduce_logsumexp(z, axis=-1)
        eps = options.get("label_smoothing", 0.0)
        picked = tf.gather(z, y, batch_dims=1)
        losses = (1 - eps) * (lse - picked) + eps * (lse - tf.reduce_mean(z, -1))
        keep = tf.cast(y != options.get("ignore_index", -12345), z.dtype)
        losses = (losses + options.get("z_loss", 0.0) * lse**2) * keep
        reduction = options.get("reduction", "mean")
        if reduction == "none":
            return losses
        total = tf.reduce_sum(losses)
        return total if reduction == "sum" else total / tf.reduce_sum(keep)

    def fused(h: Any, w: Any, b: Any) -> Any:
        return linear_cross_entropy(h, w, y, bias=b, **core)

    results = []
    for fn in (fused, unfused):
        params = [tf.Variable(inputs[n].astype(dtype)) for n in ("hidden", "weight")]
        if options.get("with_bias"):
            params.append(tf.Variable(inputs["bias"].astype(dtype)))
        with tf.GradientTape() as tape:
            value = fn(params[0], params[1], params[2] if len(params) == 3 else None)
            total = tf.reduce_sum(value)
        grads = [g.numpy() for g in tape.gradient(total, params)]
        results.append((value.numpy(), *grads, *([None] * (3 - len(grads)))))
    ours, theirs = results
    np.testing.assert_allclose(
        ours[0], _reference(inputs, options), rtol=1e-5 if dtype == "float32" else 1e-12
    )
    _check(ours[0], ours[1:], theirs, dtype)


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_core_on_numpy_matches_reference_and_finite_differences(case: str) -> None:
    """The core itself (float64 NumPy): value against the reference, the three gradients
    against central finite differences of that reference."""
    from reference import numerical_grad

    import xentropy

    options, inputs = OPTIONS[case], _inputs(case)
    core = _core_options(options)
    bias = inputs["bias"] if options.get("with_bias") else None
    value, grads = xentropy.value_and_grad(xentropy.linear_cross_entropy)(
        inputs["hidden"], inputs["weight"], inputs["targets"], bias=bias, **core
    )
    np.testing.assert_allclose(value, _reference(inputs, options), rtol=1e-12)
    names = ["hidden", "weight"] + (["bias"] if bias is not None else [])
    for name, grad in zip(names, grads, strict=False):

        def loss_of(x: np.ndarray, name: str = name) -> np.ndarray:
            return _reference({**inputs, name: x}, options)

        assert_close(grad, numerical_grad(loss_of, inputs[name]), "float64", rtol=1e-6, atol=1e-7)
    assert (grads[2] is None) == (bias is None)


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_core_on_array_api_strict_float32(case: str) -> None:
    """The core on array_api_strict (standard-only operations), float32, against the reference."""
    xp = require_or_skip("array_api_strict")
    import xentropy

    options, inputs = OPTIONS[case], _inputs(case)
    rounded = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in inputs.items()}
    value = xentropy.linear_cross_entropy(
        xp.asarray(rounded["hidden"]),
        xp.asarray(rounded["weight"]),
        xp.asarray(rounded["targets"]),
        bias=xp.asarray(rounded["bias"]) if options.get("with_bias") else None,
        **_core_options(options),
    )
    assert value.dtype == xp.float32
    widened = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in rounded.items()}
    expected = _reference(widened, options)
    assert_close(np.asarray(value), expected, "float32")
