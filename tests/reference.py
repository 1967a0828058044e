r"""An independent float64 reference for every loss in xentropy, written plainly in NumPy/SciPy.

Each function follows ``docs/semantics.md`` line by line and shares no code with the core (in the
manner of ``cross_entropy_loss_reference`` in PyTorch's ``torch/testing/_internal/common_nn.py``).
Inputs are NumPy arrays that the caller has already rounded to the dtype under test; they are
promoted to float64 here. Results are float64 NumPy arrays (0-d for a reduced loss).

Conventions shared by every function below:

* the class axis is moved to the end first, so every formula reads ``x[..., c]``;
* a target weight of exactly 0 contributes 0, whatever its log-probability (``0 * log 0 = 0``,
  as :func:`scipy.special.xlogy`), so a ``-inf`` logit under a zero target is harmless;
* :func:`reduce` is the one place where ``none`` / ``sum`` / ``mean`` / ``sum_over_batch_size``
  are applied; ``mean`` divides by the total target weight, and 0 / 0 is NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit, log_expit, log_softmax, logsumexp, rel_entr, softmax, xlogy

REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size")


def _f64(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def reduce(loss: np.ndarray, reduction: str, total_weight: float | None = None) -> np.ndarray:
    """Reduce per-example ``loss``; ``total_weight`` is the ``mean`` denominator (default: size)."""
    loss = _f64(loss)
    if reduction == "none":
        return loss
    total = np.sum(loss)
    if reduction == "sum":
        return _f64(total)
    if reduction == "mean":
        denominator = loss.size if total_weight is None else total_weight
    elif reduction == "sum_over_batch_size":
        denominator = loss.size
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return _f64(np.float64(total) / np.float64(denominator))


def sample_weighted(losses, reduction, sample_weight=None, where=None, mean_weight=None):
    """Per-example ``losses`` weighted by ``sample_weight`` and masked by ``where`` (both
    broadcast to them), then reduced: ``mean`` divides by ``sum(s * m * mean_weight)``,
    ``sum_over_batch_size`` by the number of unmasked examples."""
    losses = _f64(losses)
    s = np.broadcast_to(1.0 if sample_weight is None else _f64(sample_weight), losses.shape)
    m = np.broadcast_to(True if where is None else np.asarray(where), losses.shape)
    e = np.broadcast_to(1.0 if mean_weight is None else _f64(mean_weight), losses.shape)
    weighted = np.where(m, s * losses, 0.0)
    if reduction == "none":
        return weighted
    total = np.sum(weighted)
    if reduction == "sum":
        return _f64(total)
    denominator = np.sum(np.where(m, s * e, 0.0)) if reduction == "mean" else np.sum(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _f64(total / np.float64(denominator))


def _weighted_sum(a: np.ndarray, log_terms: np.ndarray) -> np.ndarray:
    """``sum_c a_c * log_terms_c`` over the last axis, with ``0 * anything = 0``."""
    with np.errstate(invalid="ignore"):
        return np.sum(np.where(a == 0, 0.0, a * log_terms), axis=-1)


def target_weights(
    targets: np.ndarray,
    num_classes: int,
    *,
    sparse: bool,
    axis: int = -1,
    class_weight: np.ndarray | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Per-class target weights ``a[..., c]`` (class axis last) and the ``mean`` denominator.

    Integer targets ``y``: ``a_c = w_c ((1 - eps) [c == y] + eps / C)``, all zero where
    ``y == ignore_index``; the denominator is ``sum_i w[y_i]`` over non-ignored examples.
    Probability targets ``t``: ``a_c = w_c ((1 - eps) t_c + eps / C)``; the denominator is the
    number of examples (class weights only rescale the loss).
    """
    C = num_classes
    eps = float(label_smoothing)
    w = np.ones(C) if class_weight is None else _f64(class_weight)
    if sparse:
        y = np.asarray(targets).astype(np.int64)
        valid = np.ones(y.shape, dtype=bool) if ignore_index is None else y != ignore_index
        safe = np.where(valid, y, 0)
        onehot = (safe[..., None] == np.arange(C)).astype(np.float64)
        a = ((1.0 - eps) * onehot + eps / C) * w
        a = np.where(valid[..., None], a, 0.0)
        total = float(np.sum(np.where(valid, w[safe], 0.0)))
    else:
        t = np.moveaxis(_f64(targets), axis, -1)
        a = ((1.0 - eps) * t + eps / C) * w
        total = float(np.prod(t.shape[:-1]))
    return a, total


def _softmax_family_setup(predictions, targets, axis, class_weight, ignore_index, label_smoothing):
    x = np.moveaxis(_f64(predictions), axis, -1)
    sparse = np.ndim(targets) == np.ndim(predictions) - 1
    a, total = target_weights(
        targets,
        x.shape[-1],
        sparse=sparse,
        axis=axis,
        class_weight=class_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    return x, a, total


def softmax_cross_entropy(
    logits,
    targets,
    *,
    axis=-1,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    reduction="mean",
    softcap=None,
    z_loss=0.0,
):
    """``loss_i = -sum_c a_c log_softmax(x)_c`` (torch ``F.cross_entropy``, both target kinds),
    plus ``z_loss * w_{y_i} * lse(x_i)^2`` (``w_{y_i}``: 1 for probability targets, 0 for an
    ignored index), with ``x = softcap * tanh(logits / softcap)`` when ``softcap`` is set."""
    x, a, total = _softmax_family_setup(
        logits, targets, axis, class_weight, ignore_index, label_smoothing
    )
    if softcap is not None:
        x = softcap * np.tanh(x / softcap)
    loss = -_weighted_sum(a, log_softmax(x, axis=-1))
    if z_loss:
        lse = logsumexp(x, axis=-1)
        loss = loss + z_loss * _example_weight(targets, x, class_weight, ignore_index) * lse**2
    return reduce(loss, reduction, total)


def _example_weight(targets, x, class_weight, ignore_index):
    """Per-example weight of class indices (class weight, 0 if ignored); 1 for probabilities."""
    if np.ndim(targets) == x.ndim:
        return np.ones(x.shape[:-1])
    y = np.asarray(targets)
    weight = np.ones(x.shape[-1]) if class_weight is None else _f64(class_weight)
    kept = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
    return np.where(kept, weight[np.where(kept, y, 0)], 0.0)


def categorical_cross_entropy(
    probs,
    targets,
    *,
    axis=-1,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    epsilon=1e-7,
    normalize=False,
    reduction="mean",
):
    """Softmax CE with ``log_softmax(x)`` replaced by ``log(clip(q, eps, 1 - eps))`` (Keras)."""
    q, a, total = _softmax_family_setup(
        probs, targets, axis, class_weight, ignore_index, label_smoothing
    )
    if normalize:
        q = q / np.sum(q, axis=-1, keepdims=True)
    if epsilon:
        q = np.clip(q, epsilon, 1.0 - epsilon)
    with np.errstate(divide="ignore"):
        logq = np.log(q)
    loss = -_weighted_sum(a, logq)
    return reduce(loss, reduction, total)


def softmax_focal_loss(
    logits,
    targets,
    *,
    axis=-1,
    gamma=2.0,
    alpha=None,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    reduction="mean",
):
    """``loss_i = -sum_c alpha_c a_c (1 - p_c)^gamma log p_c`` with ``p = softmax(x)`` (Keras).

    ``alpha`` rescales the loss only; the ``mean`` denominator is softmax CE's.
    """
    x, a, total = _softmax_family_setup(
        logits, targets, axis, class_weight, ignore_index, label_smoothing
    )
    if alpha is not None:
        a = a * _f64(alpha)
    logp = log_softmax(x, axis=-1)
    modulator = (1.0 - np.exp(logp)) ** float(gamma)
    loss = -_weighted_sum(a * modulator, logp)
    return reduce(loss, reduction, total)


def poly1_cross_entropy(
    logits,
    targets,
    *,
    axis=-1,
    epsilon=2.0,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    reduction="mean",
):
    """``loss_i = sum_c a_c (-log p_c) + epsilon sum_c a_c (1 - p_c)``.

    optax ``poly_loss_cross_entropy``.
    """
    x, a, total = _softmax_family_setup(
        logits, targets, axis, class_weight, ignore_index, label_smoothing
    )
    logp = log_softmax(x, axis=-1)
    ce = -_weighted_sum(a, logp)
    one_minus_p = np.sum(a * (1.0 - softmax(x, axis=-1)), axis=-1)
    loss = ce + float(epsilon) * one_minus_p
    return reduce(loss, reduction, total)


def _smoothed_binary(targets, label_smoothing):
    return _f64(targets) * (1.0 - label_smoothing) + label_smoothing / 2.0


def _broadcast_weight(weight, shape):
    return np.ones(shape) if weight is None else np.broadcast_to(_f64(weight), shape)


def sigmoid_cross_entropy(
    logits, targets, *, pos_weight=None, class_weight=None, label_smoothing=0.0, reduction="mean"
):
    """``w [(1 - t) x + (1 + (pw - 1) t) softplus(-x)]`` (TF's weighted_cross_entropy_with_logits).

    Written in the equivalent form ``w [pw t (-log sigmoid(x)) + (1 - t) (-log sigmoid(-x))]``,
    which SciPy's ``log_expit`` evaluates without overflow.
    """
    x = _f64(logits)
    t = _smoothed_binary(targets, label_smoothing)
    pw = _broadcast_weight(pos_weight, x.shape)
    w = _broadcast_weight(class_weight, x.shape)
    with np.errstate(invalid="ignore"):
        positive = np.where(t == 0, 0.0, pw * t * -log_expit(x))
        negative = np.where(t == 1, 0.0, (1.0 - t) * -log_expit(-x))
    return reduce(w * (positive + negative), reduction)


def binary_cross_entropy(
    probs,
    targets,
    *,
    class_weight=None,
    label_smoothing=0.0,
    epsilon=1e-7,
    log_floor=None,
    reduction="mean",
):
    """``-w [t log p + (1 - t) log(1 - p)]``, ``p`` clipped to ``[eps, 1 - eps]``, logs floored."""
    p = _f64(probs)
    t = _smoothed_binary(targets, label_smoothing)
    w = _broadcast_weight(class_weight, p.shape)
    if epsilon:
        p = np.clip(p, epsilon, 1.0 - epsilon)
    with np.errstate(divide="ignore"):
        log_p, log_1mp = np.log(p), np.log1p(-p)
    if log_floor is not None:
        log_p, log_1mp = np.maximum(log_p, log_floor), np.maximum(log_1mp, log_floor)
    with np.errstate(invalid="ignore"):
        loss = -w * (np.where(t == 0, 0.0, t * log_p) + np.where(t == 1, 0.0, (1.0 - t) * log_1mp))
    return reduce(loss, reduction)


def sigmoid_focal_loss(
    logits, targets, *, gamma=2.0, alpha=None, label_smoothing=0.0, reduction="mean"
):
    """optax ``sigmoid_focal_loss``: ``ce (1 - p_t)^gamma``, times ``alpha_t`` if alpha is given."""
    x = _f64(logits)
    t = _smoothed_binary(targets, label_smoothing)
    ce = sigmoid_cross_entropy(x, t, reduction="none")
    p = expit(x)
    p_t = p * t + (1.0 - p) * (1.0 - t)
    loss = ce * (1.0 - p_t) ** float(gamma)
    if alpha is not None:
        loss = loss * (alpha * t + (1.0 - alpha) * (1.0 - t))
    return reduce(loss, reduction)


def entropy(p, *, axis=-1, reduction="none"):
    """``H(p) = -sum_c p_c log p_c`` (``0 log 0 = 0``)."""
    p = _f64(p)
    return reduce(-np.sum(xlogy(p, p), axis=axis), reduction)


def kl_divergence(p, q, *, axis=-1, reduction="none"):
    """``KL(p || q) = sum_c p_c log(p_c / q_c)`` (0 where ``p_c == 0``)."""
    return reduce(np.sum(rel_entr(_f64(p), _f64(q)), axis=axis), reduction)


def cross_entropy(p, q, *, axis=-1, reduction="none"):
    """``H(p, q) = -sum_c p_c log q_c``."""
    return reduce(-np.sum(xlogy(_f64(p), _f64(q)), axis=axis), reduction)


def class_weights(counts, *, scheme="inverse", beta=0.999, normalize=False):
    """Per-class weights from class counts (the three schemes of ``docs/semantics.md``)."""
    counts = _f64(counts)
    total = np.sum(counts)
    if scheme == "inverse":
        w = total / counts
    elif scheme == "log_inverse":
        w = np.maximum(np.log(total / counts), 1.0)
    elif scheme == "effective_number":
        w = (1.0 - beta) / (1.0 - np.power(beta, counts))
        w = w * counts.size / np.sum(w)
    else:
        raise ValueError(f"unknown scheme {scheme!r}")
    return w / np.max(w) if normalize else w


def softmax_cross_entropy_grad(
    logits,
    targets,
    *,
    axis=-1,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    reduction="mean",
):
    """Analytic ``d sum(loss) / d logits`` of :func:`softmax_cross_entropy`: ``p sum(a) - a``."""
    x, a, total = _softmax_family_setup(
        logits, targets, axis, class_weight, ignore_index, label_smoothing
    )
    grad = softmax(x, axis=-1) * np.sum(a, axis=-1, keepdims=True) - a
    n = float(np.prod(x.shape[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = {"none": 1.0, "sum": 1.0, "mean": 1.0 / total, "sum_over_batch_size": 1.0 / n}
        return np.moveaxis(grad * scale[reduction], -1, axis)


def numerical_grad(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, step: float = 1e-6
) -> np.ndarray:
    """Central finite difference of ``sum(fn(x))`` with respect to ``x``, in float64.

    Each coordinate moves by ``step * max(1, |x|)``; the truncation error is O(step^2) and the
    rounding error O(1e-16 / step), so the default gives about 1e-9 relative accuracy for the
    smooth losses here. Keep ``x`` at least a few steps away from kinks (clips, log floors).
    """
    x = _f64(x)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        h = step * max(1.0, abs(float(x[index])))
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (np.sum(fn(up)) - np.sum(fn(down))) / (2.0 * h)
    return grad
