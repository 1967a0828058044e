"""16-bit inputs over large vocabularies: within 1 ulp of the float64 reference, finite gradients.

The anchors' S25 case (16-bit logits over a large vocabulary): float16 and bfloat16 logits with
V = 50,000 and V = 128,256 classes, drawn from N(0, 4^2), N = 4 rows. The core computes in
float32 and rounds once, so each per-example loss (and the mean) must lie within 1 ulp of the
output dtype of the float64 reference evaluated on the same rounded logits (PyTorch, TF and optax
reach 0.5-0.8 ulp; Keras on torch 4.6). Gradients are checked with the per-dtype tolerance table,
and at extreme logits (+-1e4, and 6e4 near float16's largest finite 65504) they must be finite.

Backends: torch, jax, tensorflow (bfloat16 and float16) and numpy (float16 only: NumPy has no
bfloat16). The rows are large, so N stays at 4 and each (backend, dtype, V) runs once.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from scipy.special import log_softmax, softmax
from tolerances import assert_close, ulp

import xentropy

N = 4
VOCABULARIES = (50_000, 128_256)
NP_DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
CASES = [
    pytest.param(framework, dtype, id=f"{framework}-{dtype}")
    for framework in ("numpy", "torch", "jax", "tensorflow")
    for dtype in ("float16", "bfloat16")
    if not (framework == "numpy" and dtype == "bfloat16")
]


def to_backend(framework: str, array: np.ndarray, dtype: str | None = None) -> object:
    """``array`` in ``framework``; floats rounded to ``dtype`` in NumPy first (exactly)."""
    if dtype is not None:
        array = array.astype(NP_DTYPES[dtype])
    if framework == "numpy":
        return array
    if framework == "jax":
        return require_or_skip("jax", "jax.numpy").asarray(array)
    carrier = array.astype(np.float32) if dtype == "bfloat16" else array
    if framework == "torch":
        torch = require_or_skip("torch")
        tensor = torch.asarray(carrier)
        return tensor if dtype is None else tensor.to(getattr(torch, dtype))
    tf = require_or_skip("tensorflow")
    tensor = tf.constant(carrier)
    return tensor if dtype is None else tf.cast(tensor, dtype)


def to_float64(x: object) -> np.ndarray:
    module = type(x).__module__.partition(".")[0]
    if module == "torch":
        return x.detach().double().numpy()
    if module == "tensorflow":
        return np.asarray(x.numpy()).astype(np.float64)
    return np.asarray(x).astype(np.float64)


def dtype_of(x: object) -> str:
    name = getattr(x.dtype, "name", None)
    return name if isinstance(name, str) else str(x.dtype).rsplit(".", 1)[-1]


def loss_and_grad(framework: str, logits: np.ndarray, labels: np.ndarray, dtype: str, **options):
    """Per-example loss, mean loss and gradient of ``sum(loss)``, as float64 NumPy arrays."""
    z, y = to_backend(framework, logits, dtype), to_backend(framework, labels)
    value_and_grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)
    loss, grad = value_and_grad(z, y, reduction="none", **options)
    mean = xentropy.softmax_cross_entropy(z, y, **options)
    assert dtype_of(loss) == dtype_of(grad) == dtype_of(mean) == dtype
    return to_float64(loss), to_float64(mean), to_float64(grad)


def reference(logits: np.ndarray, labels: np.ndarray, dtype: str, label_smoothing: float = 0.0):
    """float64 per-example loss and gradient on the logits rounded to ``dtype``."""
    z = logits.astype(NP_DTYPES[dtype]).astype(np.float64)
    log_p = log_softmax(z, axis=-1)
    vocab = z.shape[-1]
    a = np.full(z.shape, label_smoothing / vocab)
    a[np.arange(len(labels)), labels] += 1.0 - label_smoothing
    loss = -np.sum(a * log_p, axis=-1)
    grad = softmax(z, axis=-1) - a
    return loss, grad


def assert_within_ulps(actual: np.ndarray, expected: np.ndarray, dtype: str, ulps: float = 1.0):
    error = np.abs(actual - expected) / ulp(expected, dtype)
    assert np.all(np.isfinite(actual)), actual
    assert np.max(error) <= ulps, f"{np.max(error):.2f} ulp of {dtype}: {actual} vs {expected}"


@pytest.mark.parametrize("vocab", VOCABULARIES)
@pytest.mark.parametrize(("framework", "dtype"), CASES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_large_vocabulary_within_one_ulp(framework, dtype, vocab, label_smoothing):
    rng = rng_for("precision", vocab)
    logits = rng.normal(scale=4.0, size=(N, vocab))
    labels = rng.integers(0, vocab, size=N)
    loss, mean, grad = loss_and_grad(
        framework, logits, labels, dtype, label_smoothing=label_smoothing
    )
    expected, expected_grad = reference(logits, labels, dtype, label_smoothing)
    assert_within_ulps(loss, expected, dtype)
    assert_within_ulps(mean, np.mean(expected), dtype)
    assert_close(grad, expected_grad, dtype, grad=True)


@pytest.mark.parametrize(("framework", "dtype"), CASES)
def test_gradients_at_extreme_logits_are_finite(framework, dtype):
    """+-1e4 and 6e4 logits (6e4 is near float16's largest finite value, 65504)."""
    vocab = VOCABULARIES[0]
    rng = rng_for("extreme", vocab)
    logits = rng.normal(scale=4.0, size=(N, vocab))
    labels = np.array([0, 1, 2, 3])
    logits[0, 0] = 1e4  # the target far ahead: loss 0
    logits[1, 5] = 1e4  # another class far ahead: loss about 1e4
    logits[2, 2] = -1e4  # the target far behind: loss about 1e4
    logits[3, 7] = 6e4  # near float16's limit: loss about 6e4, still finite in float16
    logits[3, 8] = -6e4
    loss, _, grad = loss_and_grad(framework, logits, labels, dtype)
    expected, expected_grad = reference(logits, labels, dtype)
    assert np.all(np.isfinite(grad)), grad
    assert_within_ulps(loss, expected, dtype)
    assert_close(grad, expected_grad, dtype, grad=True)
    # the rows of softmax - onehot sum to 0: only rounding of the 16-bit output remains
    np.testing.assert_allclose(np.sum(grad, axis=-1), 0.0, atol=1e-2)
