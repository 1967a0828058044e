"""The LLM options of plain softmax cross entropy: ``softcap``, ``z_loss`` and ``return_lse``.

Values and first-order gradients on every backend and dtype run in ``test_core_values`` /
``test_core_gradients`` (option sets ``softcap=2``, ``z_loss``, ``softcap+z_loss+...`` against
``reference.softmax_cross_entropy``); traced and differentiated ``softcap`` / ``z_loss`` in
``test_hyperparameters``. Here: higher orders and both modes in each framework, the returned
log-sum-exp and its derivative, and bad values.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CLASS_WEIGHT, require_or_skip, rng_for, rounded, to_numpy
from scipy.special import logsumexp, softmax
from tolerances import assert_close

import xentropy

N, C = 6, 5
OPTION_SETS = {
    "softcap": {"softcap": 2.5},
    "z_loss": {"z_loss": 0.05, "class_weight": CLASS_WEIGHT, "ignore_index": 1},
    "both+smoothing": {"softcap": 3.0, "z_loss": 0.02, "label_smoothing": 0.1},
}


def inputs(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = rng_for("llm-options", kind)
    logits = 3.0 * rng.normal(size=(N, C))
    if kind == "index":
        return logits, rng.integers(0, C, size=N)
    t = rng.random((N, C))
    return logits, t / t.sum(-1, keepdims=True)


def options_for(kind: str, name: str) -> dict:
    options = dict(OPTION_SETS[name])
    if kind == "prob":
        options.pop("ignore_index", None)
    return options


@pytest.fixture
def jax_x64():
    jax = require_or_skip("jax")
    with jax.enable_x64(True):
        yield jax


cases = pytest.mark.parametrize(
    ("kind", "name"), [(k, n) for k in ("index", "prob") for n in OPTION_SETS]
)


@cases
def test_torch_gradcheck_and_gradgradcheck(kind: str, name: str) -> None:
    torch = require_or_skip("torch")
    logits, targets = inputs(kind)
    x = torch.tensor(logits, requires_grad=True)
    t = torch.tensor(targets)
    options = options_for(kind, name)
    if "class_weight" in options:
        options["class_weight"] = torch.tensor(options["class_weight"])

    def loss(z):
        return xentropy.softmax_cross_entropy(z, t, **options)

    assert torch.autograd.gradcheck(loss, (x,))
    assert torch.autograd.gradgradcheck(loss, (x,))


@cases
def test_jax_check_grads_both_modes_second_order(kind: str, name: str, jax_x64) -> None:
    jax = require_or_skip("jax")
    from jax.test_util import check_grads

    logits, targets = inputs(kind)
    t = jax.numpy.asarray(targets)
    options = options_for(kind, name)

    def loss(z):  # check_grads' numerical side passes NumPy arrays
        return xentropy.softmax_cross_entropy(jax.numpy.asarray(z), t, **options)

    check_grads(loss, (jax.numpy.asarray(logits),), order=2, modes=("fwd", "rev"))


@cases
def test_tensorflow_second_order_matches_jax(kind: str, name: str, jax_x64) -> None:
    """Nested tapes in TF give the Hessian-vector product that JAX's forward-over-reverse does."""
    tf = require_or_skip("tensorflow")
    jax = require_or_skip("jax")
    logits, targets = inputs(kind)
    options = options_for(kind, name)
    v = rng_for("llm-options-v", kind).normal(size=logits.shape)

    def jax_loss(z):
        return xentropy.softmax_cross_entropy(z, jax.numpy.asarray(targets), **options)

    _, expected = jax.jvp(jax.grad(jax_loss), (jax.numpy.asarray(logits),), (jax.numpy.asarray(v),))
    x = tf.Variable(logits)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = xentropy.softmax_cross_entropy(x, tf.constant(targets), **options)
        grad = inner.gradient(loss, x)
        directional = tf.reduce_sum(grad * tf.constant(v))
    hvp = outer.gradient(directional, x)
    assert_close(hvp.numpy(), np.asarray(expected), "float64", grad=True)


@pytest.mark.parametrize("softcap", [None, 2.0])
def test_returned_lse_values_on_every_backend(dtype, to_backend, softcap) -> None:
    logits, targets = inputs("index")
    z, y = to_backend(logits, dtype), to_backend(targets)
    loss, lse = xentropy.softmax_cross_entropy(z, y, softcap=softcap, return_lse=True)
    capped = rounded(logits, dtype)
    if softcap is not None:
        capped = softcap * np.tanh(capped / softcap)
    assert tuple(lse.shape) == (N,)
    assert lse.dtype == z.dtype
    assert_close(to_numpy(lse), logsumexp(capped, axis=-1), dtype)
    plain = xentropy.softmax_cross_entropy(z, y, softcap=softcap)
    np.testing.assert_array_equal(to_numpy(loss), to_numpy(plain))


def test_returned_lse_is_differentiable_in_torch() -> None:
    """d lse / d z is the softmax (times the cap's derivative), and the loss keeps its own."""
    torch = require_or_skip("torch")
    logits, targets = inputs("index")
    x = torch.tensor(logits, requires_grad=True)
    loss, lse = xentropy.softmax_cross_entropy(
        x, torch.tensor(targets), softcap=2.0, z_loss=0.1, ignore_index=0, return_lse=True
    )
    (grad,) = torch.autograd.grad(lse.sum(), x)
    capped = np.tanh(logits / 2.0)
    assert_close(grad.numpy(), softmax(2.0 * capped, axis=-1) * (1 - capped**2), "float64")
    (loss_grad,) = torch.autograd.grad(loss, x)
    _, expected = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
        logits, targets, softcap=2.0, z_loss=0.1, ignore_index=0
    )
    assert_close(loss_grad.numpy(), expected, "float64", grad=True)


def test_value_and_grad_refuses_return_lse() -> None:
    logits, targets = inputs("index")
    with pytest.raises(TypeError, match="loss alone"):
        xentropy.value_and_grad(xentropy.softmax_cross_entropy)(logits, targets, return_lse=True)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"z_loss": -0.1}, "z_loss"),
        ({"z_loss": float("nan")}, "z_loss"),
        ({"softcap": 0.0}, "softcap"),
        ({"softcap": -1.0}, "softcap"),
        ({"softcap": float("inf")}, "softcap"),
    ],
)
def test_bad_values_raise_naming_the_argument(options: dict, name: str) -> None:
    logits, targets = inputs("index")
    with pytest.raises(ValueError, match=name):
        xentropy.softmax_cross_entropy(logits, targets, **options)


def test_soft_cap_bounds_the_logits_seen() -> None:
    """Logits far beyond the cap give the loss of logits at the cap, not an overflow."""
    targets = np.array([0, 1])
    huge = np.array([[1e4, -1e4, 0.0], [3e38, 0.0, -3e38]], dtype=np.float32)
    loss = xentropy.softmax_cross_entropy(huge, targets, softcap=5.0, reduction="none")
    capped = 5.0 * np.tanh(huge.astype(np.float64) / 5.0)
    expected = logsumexp(capped, axis=-1) - capped[[0, 1], targets]
    assert_close(np.asarray(loss), expected, "float32")


# --- linear cross entropy: return_lse, and the dialect extras --------------------------------

D, V = 4, 7


def linear_inputs(kind: str):
    rng = rng_for("llm-options-linear", kind)
    hidden, weight, bias = rng.normal(size=(N, D)), rng.normal(size=(V, D)), rng.normal(size=V)
    if kind == "index":
        return hidden, weight, bias, rng.integers(0, V, size=N)
    t = rng.random((N, V))
    return hidden, weight, bias, t / t.sum(-1, keepdims=True)


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("softcap", [None, 2.0])
def test_linear_return_lse_value_and_gradients(kind: str, softcap) -> None:
    """lse of the (capped) logits, and autograd's gradients of it equal those of
    ``torch.logsumexp`` of the materialised logits (hidden, weight and bias)."""
    torch = require_or_skip("torch")
    hidden, weight, bias, targets = linear_inputs(kind)
    leaves = [torch.tensor(a, requires_grad=True) for a in (hidden, weight, bias)]
    t = torch.tensor(targets)
    options = {"softcap": softcap, "chunk_size": 3, "z_loss": 0.01}
    loss, lse = xentropy.linear_cross_entropy(
        leaves[0], leaves[1], t, bias=leaves[2], return_lse=True, **options
    )
    z = leaves[0] @ leaves[1].T + leaves[2]
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    expected = torch.logsumexp(z, dim=-1)
    assert_close(lse.detach().numpy(), expected.detach().numpy(), "float64")
    probe = torch.tensor(rng_for("llm-lse-probe", kind).normal(size=N))
    ours = torch.autograd.grad((lse * probe).sum(), leaves)
    theirs = torch.autograd.grad((expected * probe).sum(), leaves)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a.numpy(), b.numpy(), "float64", grad=True)
    plain = xentropy.linear_cross_entropy(leaves[0], leaves[1], t, bias=leaves[2], **options)
    assert float(loss.detach()) == float(plain.detach())


def test_linear_sample_weights_equal_the_unfused_loss() -> None:
    """``sample_weight`` / ``where`` on the fused loss equal them on ``softmax_cross_entropy`` of
    the materialised logits (every reduction, class weights and an ignored index included)."""
    hidden, weight, bias, targets = linear_inputs("index")
    targets[1] = 2
    rng = rng_for("llm-linear-weights")
    s, m = rng.random(N), rng.random(N) < 0.7
    options = {"class_weight": np.linspace(0.5, 2.0, V)}
    options.update(ignore_index=2, label_smoothing=0.1, z_loss=0.01)
    logits = hidden @ weight.T + bias
    for reduction in ("none", "sum", "mean", "sum_over_batch_size"):
        for weighting in ({"sample_weight": s}, {"where": m}, {"sample_weight": s, "where": m}):
            fused = xentropy.linear_cross_entropy(
                hidden, weight, targets, bias=bias, chunk_size=3, reduction=reduction,
                **options, **weighting,
            )  # fmt: skip
            unfused = xentropy.softmax_cross_entropy(
                logits, targets, reduction=reduction, **options, **weighting
            )
            assert_close(np.asarray(fused), np.asarray(unfused), "float64", msg=reduction)


def test_torch_dialect_extras() -> None:
    """``F.cross_entropy(..., softcap=, z_loss=, return_lse=)`` is the core's, with the first-order
    gradient on the fast path, and torch's own where the extras are off."""
    torch = require_or_skip("torch")
    xF = require_or_skip("xentropy.backends.torch.functional")
    logits, targets = inputs("index")
    x = torch.tensor(logits, requires_grad=True)
    y = torch.tensor(targets)
    loss, lse = xF.cross_entropy(x, y, softcap=2.5, z_loss=0.05, return_lse=True)
    assert loss.grad_fn.name() == "CoreLossBackward"
    expected = xentropy.softmax_cross_entropy(logits, targets, softcap=2.5, z_loss=0.05)
    assert_close(loss.detach().numpy(), np.asarray(expected), "float64")
    assert_close(lse.detach().numpy(), logsumexp(2.5 * np.tanh(logits / 2.5), axis=-1), "float64")
    native = torch.nn.functional.cross_entropy(x, y, label_smoothing=0.1)
    ours = xF.cross_entropy(x, y, label_smoothing=0.1, softcap=None, z_loss=0.0)
    assert_close(ours.detach().numpy(), native.detach().numpy(), "float64")


def test_jax_dialect_extras_with_where(jax_x64) -> None:
    """optax's ``where`` masks the soft-capped logits (a masked class leaves the softmax), so
    the loss is that of the kept classes' capped logits, plus the z-loss of their lse."""
    jax = jax_x64
    xj = require_or_skip("xentropy.backends.jax")
    logits, targets = inputs("index")
    where = np.ones((N, C), bool)
    where[:, 4] = False
    targets = np.where(targets == 4, 0, targets)
    loss, lse = xj.softmax_cross_entropy_with_integer_labels(
        jax.numpy.asarray(logits), jax.numpy.asarray(targets), where=jax.numpy.asarray(where),
        softcap=2.0, z_loss=0.1, return_lse=True,
    )  # fmt: skip
    capped = 2.0 * np.tanh(logits[:, :4] / 2.0)
    expected_lse = logsumexp(capped, axis=-1)
    expected = expected_lse - capped[np.arange(N), targets] + 0.1 * expected_lse**2
    assert_close(np.asarray(lse), expected_lse, "float64")
    assert_close(np.asarray(loss), expected, "float64")
    unmasked = xj.softmax_cross_entropy_with_integer_labels(
        jax.numpy.asarray(logits), jax.numpy.asarray(targets), softcap=2.0, z_loss=0.1
    )
    core = xentropy.softmax_cross_entropy(
        logits, targets, softcap=2.0, z_loss=0.1, reduction="none"
    )
    assert_close(np.asarray(unmasked), np.asarray(core), "float64")
    with pytest.raises(ValueError, match="softcap"):
        xj.softmax_cross_entropy(
            jax.numpy.asarray(logits), jax.numpy.asarray(np.eye(C)[targets]),
            where=jax.numpy.asarray(where), softcap=-1.0,
        )  # fmt: skip


def test_linear_dialects_return_lse(jax_x64) -> None:
    """torch's ``F.linear_cross_entropy(..., return_lse=True)`` and the JAX dialect's give the
    core's pair (the fused path and the unfused K-dimensional one alike for torch)."""
    torch = require_or_skip("torch")
    xF = require_or_skip("xentropy.backends.torch.functional")
    xj = require_or_skip("xentropy.backends.jax")
    hidden, weight, bias, targets = linear_inputs("index")
    expected_loss, expected_lse = xentropy.linear_cross_entropy(
        hidden, weight, targets, bias=bias, softcap=3.0, return_lse=True
    )
    loss, lse = xF.linear_cross_entropy(
        torch.tensor(hidden), torch.tensor(weight), torch.tensor(targets),
        linear_bias=torch.tensor(bias), softcap=3.0, return_lse=True,
    )  # fmt: skip
    assert_close(loss.numpy(), np.asarray(expected_loss), "float64")
    assert_close(lse.numpy(), np.asarray(expected_lse), "float64")
    jloss, jlse = xj.linear_cross_entropy(
        hidden, weight, targets, bias=bias, softcap=3.0, return_lse=True
    )
    assert_close(np.asarray(jloss), np.asarray(expected_loss), "float64")
    assert_close(np.asarray(jlse), np.asarray(expected_lse), "float64")
