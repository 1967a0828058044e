"""The eager PyTorch fast paths of the dense softmax loss, against a float64 NumPy reference.

* the forward's weighted sum :math:`\\sum_c a_c \\log p_c` is one ``linalg.vecdot`` pass; rows where
  a zero target meets a ``-inf`` logit (``0 \\cdot -\\infty``) are summed again with the mask, so
  they keep ``0 \\log 0 = 0``, and a NaN logit keeps its row NaN;
* the backward is PyTorch's own log-softmax backward kernel fed the cotangent :math:`-a g`:
  :math:`p_c \\sum_k a_k g - a_c g`, NaN across a row holding a negative target
  (``validate=False``).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from xentropy.backends.torch import functional as F  # noqa: E402


def _reference(z: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row loss :math:`-\\sum_c a_c \\log p_c` (``0 \\log 0 = 0``) and its gradient by the
    logits, in float64."""
    m = np.max(z, axis=-1, keepdims=True)
    log_p = z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
    with np.errstate(invalid="ignore"):  # 0 * -inf, dropped by the where
        terms = np.where(a == 0, 0.0, a * log_p)
    grad = np.exp(log_p) * a.sum(axis=-1, keepdims=True) - a
    return -terms.sum(axis=-1), grad


def _targets(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    t = rng.random((n, c))
    t[:, 0] = 0.0  # a zero target in every row, where row 0 gets a -inf logit
    return t / t.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_minus_infinity_logit_with_zero_target(reduction: str) -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 5)) * 3
    z[0, 0] = -np.inf
    t = _targets(rng, 6, 5)
    logits = torch.tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, torch.tensor(t), reduction=reduction)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    rows, rows_grad = _reference(z, t)
    scale = 1 / 6 if reduction == "mean" else 1.0
    expected = rows if reduction == "none" else rows.sum() * scale
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(grad.numpy(), rows_grad * scale, rtol=1e-12, atol=1e-15)
    assert np.isfinite(loss.detach().numpy()).all()


def test_class_weights_and_label_smoothing_take_the_kernel_backward() -> None:
    rng = np.random.default_rng(1)
    z, t, w, eps = rng.standard_normal((7, 4)), _targets(rng, 7, 4), rng.random(4), 0.2
    logits = torch.tensor(z, requires_grad=True)
    loss = F.cross_entropy(
        logits, torch.tensor(t), weight=torch.tensor(w), label_smoothing=eps, reduction="sum"
    )
    (grad,) = torch.autograd.grad(loss, logits)
    a = (t * (1 - eps) + eps / 4) * w  # PyTorch's weighted, smoothed target weights
    rows, rows_grad = _reference(z, a)
    np.testing.assert_allclose(loss.item(), rows.sum(), rtol=1e-13)
    np.testing.assert_allclose(grad.numpy(), rows_grad, rtol=1e-12, atol=1e-15)


def test_nan_logit_and_negative_target_rows_stay_nan() -> None:
    rng = np.random.default_rng(2)
    z, t = rng.standard_normal((5, 3)), _targets(rng, 5, 3)
    z[1, 2] = np.nan
    t[3] = [0.5, 1.0, -0.5]
    logits = torch.tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, torch.tensor(t), reduction="none", validate=False)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    bad = np.array([False, True, False, True, False])
    assert np.isnan(loss.detach().numpy()[bad]).all()
    assert np.isnan(grad.numpy()[bad]).all()
    rows, rows_grad = _reference(z[~bad], t[~bad])
    np.testing.assert_allclose(loss.detach().numpy()[~bad], rows, rtol=1e-13)
    np.testing.assert_allclose(grad.numpy()[~bad], rows_grad, rtol=1e-12, atol=1e-15)
