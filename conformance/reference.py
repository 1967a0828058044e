r"""Float64 references for every loss: values and analytic gradients, in plain NumPy/SciPy.

Written from ``docs/semantics.md`` and sharing no code with ``xentropy`` (the core is never
called here). Each ``*_reference`` function takes the inputs of a case already rounded to the
dtype under test (as float64 arrays) and returns ``(value, gradients)``: the loss with the case's
reduction and the gradients of ``sum(value)`` with respect to the arrays ``Case.grad_of`` names,
in that order (what ``xentropy.value_and_grad`` returns).

Conventions every function keeps:

* the class axis is moved last first, so formulas read ``x[..., c]``, and gradients are moved
  back at the end;
* a target weight of exactly 0 contributes 0 whatever it multiplies (``0 log 0 = 0``, as
  :func:`scipy.special.xlogy`), so a ``-inf`` logit under a zero target is harmless;
* :func:`reduce` is the one place where ``none`` / ``sum`` / ``mean`` / ``sum_over_batch_size``
  are decided; :func:`reduction_scale` is its derivative; with ``sample_weight`` :math:`s` or
  ``where`` :math:`m`, :func:`weighted_reduce` replaces both (``docs/semantics.md``,
  ``xentropy._sample_weights``): with :math:`f_i = s_i m_i` and the per-example mean weights
  :math:`e_i` (:func:`mean_weights`),

  .. math::

      \text{none}: f_i \ell_i, \quad \text{sum}: \sum_i f_i \ell_i, \quad
      \text{mean}: \frac{\sum_i f_i \ell_i}{\sum_i f_i e_i}, \quad
      \text{sum\_over\_batch\_size}: \frac{\sum_i f_i \ell_i}{\sum_i m_i},

  a masked example selected away (its loss never multiplied);
* the clip bounds ``epsilon`` and ``1 - epsilon`` are rounded to the *compute* dtype
  (float32 for 16- and 32-bit inputs, per ``docs/semantics.md``), as every implementation that
  clips in that dtype must: ``1 - 1e-7`` is ``1 - 1.19e-7`` in float32, and ``log(1 - p)`` at the
  bound magnifies that difference ten million times. This is the only place the compute dtype
  enters.

The gradient formulas are checked against central finite differences in 50-digit arithmetic by
:mod:`xentropy.conformance.precise`.

Beyond the prediction's gradient:

* :func:`target_gradient_reference`: the analytic gradient of ``sum(loss)`` with respect to the
  floating targets (and ``p`` of the information measures), with a mask of the entries where it
  is defined: not where the loss is infinite on one side of the point (a target under a ``-inf``
  logit or a zero probability, ``d(t log q)/dt = log 0``); those entries are not compared. Also
  checked against 80-digit finite differences by :mod:`~xentropy.conformance.precise`.
* :func:`hvp_reference`: the Hessian-vector product ``H v`` of ``sum(loss)`` with respect to the
  prediction, by central differences of the analytic gradient along ``v`` with two Richardson
  steps (the step and its error in :mod:`~xentropy.conformance.tolerances`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit, log_expit, log_softmax, logsumexp, rel_entr, xlogy

Arrays = Mapping[str, np.ndarray]
Result = tuple[np.ndarray, tuple[np.ndarray, ...]]


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def reduce(loss: np.ndarray, reduction: str, total_weight: float | None = None) -> np.ndarray:
    """Reduce per-example ``loss``; ``total_weight`` is the ``mean`` denominator (default: size)."""
    if reduction == "none":
        return loss
    total = np.sum(loss)
    if reduction == "sum":
        return _f64(total)
    denominator = (
        loss.size if reduction == "sum_over_batch_size" or total_weight is None else (total_weight)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return _f64(total / np.float64(denominator))


def reduction_scale(size: int, reduction: str, total_weight: float | None = None) -> float:
    """``d sum(reduce(loss)) / d loss_i``: the same for every example."""
    if reduction in ("none", "sum"):
        return 1.0
    denominator = (
        size if reduction == "sum_over_batch_size" or total_weight is None else (total_weight)
    )
    return np.inf if denominator == 0 else 1.0 / denominator


def has_sample_weights(arrays: Arrays) -> bool:
    """Whether ``sample_weight`` or ``where`` is given."""
    return "sample_weight" in arrays or "where" in arrays


def weighted_reduce(
    loss: np.ndarray, arrays: Arrays, reduction: str, mean_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(value, scale)``: per-example ``loss`` reduced with the sample weights and mask of
    ``arrays`` (module docstring), and ``scale_i = d sum(value) / d loss_i``.

    ``mean_weight`` holds :math:`e_i` (default 1). A zero denominator gives NaN with a zero
    scale, as the core.
    """
    shape = loss.shape
    s = arrays.get("sample_weight")
    m = arrays.get("where")
    keep = np.ones(shape, bool) if m is None else np.broadcast_to(np.asarray(m, bool), shape)
    s = np.ones(shape) if s is None else np.broadcast_to(_f64(s), shape)
    factor = np.where(keep, s, 0.0)
    with np.errstate(invalid="ignore"):
        weighted = np.where(keep, s * loss, 0.0)
    if reduction == "none":
        return weighted, factor
    total = np.sum(weighted)
    if reduction == "sum":
        return _f64(total), factor
    if reduction == "mean":
        e = np.ones(shape) if mean_weight is None else np.broadcast_to(mean_weight, shape)
        denominator = float(np.sum(factor * e))
    else:
        denominator = float(np.sum(keep))
    if denominator == 0:
        return _f64(np.nan), np.zeros(shape)
    return _f64(total / denominator), factor / denominator


def mean_weights(
    targets: np.ndarray,
    num_classes: int,
    *,
    sparse: bool,
    class_weight: np.ndarray | None,
    ignore_index: int | None,
) -> np.ndarray:
    """Per-example mean weights :math:`e_i`: :math:`w_{y_i}` (0 if ignored) for class indices,
    1 for probability targets (class axis last)."""
    if not sparse:
        return np.ones(np.shape(targets)[:-1])
    w = np.ones(num_classes) if class_weight is None else _f64(class_weight)
    y = np.asarray(targets).astype(np.int64)
    keep = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
    return np.where(keep, w[np.where(keep, y, 0)], 0.0)


def _weighted_sum(a: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """``sum_c a_c * terms_c`` over the last axis with ``0 * anything = 0``."""
    with np.errstate(invalid="ignore"):
        return np.sum(np.where(a == 0, 0.0, a * terms), axis=-1)


def target_weights(
    targets: np.ndarray,
    num_classes: int,
    *,
    sparse: bool,
    class_weight: np.ndarray | None,
    ignore_index: int | None,
    label_smoothing: float,
) -> tuple[np.ndarray, float]:
    """Per-class target weights ``a[..., c]`` (targets' class axis already last) and the
    ``mean`` denominator.

    Integer targets ``y``: ``a_c = w_c ((1 - eps) [c == y] + eps / C)``, zero for an ignored
    example; the denominator is ``sum_i w[y_i]`` over the others. Probability targets ``t``:
    ``a_c = w_c ((1 - eps) t_c + eps / C)``; the denominator is the number of examples.
    """
    w = np.ones(num_classes) if class_weight is None else _f64(class_weight)
    eps = float(label_smoothing)
    if sparse:
        y = np.asarray(targets).astype(np.int64)
        keep = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
        safe = np.where(keep, y, 0)
        onehot = (safe[..., None] == np.arange(num_classes)).astype(np.float64)
        a = np.where(keep[..., None], ((1.0 - eps) * onehot + eps / num_classes) * w, 0.0)
        return a, float(np.sum(np.where(keep, w[safe], 0.0)))
    t = _f64(targets)
    return ((1.0 - eps) * t + eps / num_classes) * w, float(np.prod(t.shape[:-1]))


def clip_bounds(epsilon: float, compute_dtype: str) -> tuple[float, float]:
    """``(epsilon, 1 - epsilon)`` as ``compute_dtype`` holds them (see the module docstring)."""
    cast = np.dtype(compute_dtype).type
    return float(cast(epsilon)), float(cast(1.0 - epsilon))


def _class_setup(arrays: Arrays, name: str, options: Mapping[str, Any]):
    """``x`` (class axis last), the target weights ``a``, the per-example mean weights ``e``
    and the class axis."""
    axis = int(options.get("axis", -1))
    x = np.moveaxis(_f64(arrays[name]), axis, -1)
    targets = arrays["targets"]
    sparse = np.ndim(targets) == np.ndim(x) - 1
    if not sparse:
        targets = np.moveaxis(_f64(targets), axis, -1)
    a, _ = target_weights(
        targets,
        x.shape[-1],
        sparse=sparse,
        class_weight=arrays.get("class_weight"),
        ignore_index=options.get("ignore_index"),
        label_smoothing=options.get("label_smoothing", 0.0),
    )
    e = mean_weights(
        targets,
        x.shape[-1],
        sparse=sparse,
        class_weight=arrays.get("class_weight"),
        ignore_index=options.get("ignore_index"),
    )
    return x, a, e, axis


def _reduced(
    loss: np.ndarray, arrays: Arrays, options: Mapping[str, Any], e: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | float]:
    """``(value, d sum(value) / d loss_i)`` by the case's reduction (``e``: the mean weights,
    default 1), with the sample weights and mask of ``arrays`` when given."""
    reduction = options.get("reduction", "mean")
    if has_sample_weights(arrays):
        return weighted_reduce(loss, arrays, reduction, e)
    total = None if e is None else float(np.sum(e))
    return reduce(loss, reduction, total), reduction_scale(loss.size, reduction, total)


def _row_scale(scale: np.ndarray | float) -> np.ndarray | float:
    """A per-example scale broadcast over the trailing class axis."""
    return scale[..., None] if isinstance(scale, np.ndarray) else scale


def _finish(loss, grad, e, axis, options, arrays) -> Result:
    value, scale = _reduced(loss, arrays, options, e)
    with np.errstate(invalid="ignore"):
        grad = np.moveaxis(grad * _row_scale(scale), -1, axis)
    return value, (grad,)


def _soft_capped(z: np.ndarray, options: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(s tanh(z / s), d/dz = 1 - tanh^2)`` with ``softcap`` s; ``(z, 1)`` without."""
    softcap = options.get("softcap")
    if softcap is None:
        return z, np.ones_like(z)
    capped = np.tanh(z / softcap)
    return softcap * capped, 1.0 - capped**2


def softmax_cross_entropy_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``l_i = -sum_c a_c log softmax(z~)_c + lambda e_i lse(z~)^2`` with ``z~ = s tanh(z/s)``
    under a soft-cap; ``dl/dz~ = softmax(z~) (sum(a) + 2 lambda e_i lse) - a``, times
    ``1 - tanh^2(z/s)``."""
    z, a, e, axis = _class_setup(arrays, "logits", options)
    z, cap_slope = _soft_capped(z, options)
    logp = log_softmax(z, axis=-1)
    loss = -_weighted_sum(a, logp)
    row = np.sum(a, axis=-1)
    z_loss = float(options.get("z_loss", 0.0))
    if z_loss:
        lse = logsumexp(z, axis=-1)
        loss = loss + z_loss * e * lse**2
        row = row + 2.0 * z_loss * e * lse
    grad = (np.exp(logp) * row[..., None] - a) * cap_slope
    return _finish(loss, grad, e, axis, options, arrays)


def categorical_cross_entropy_reference(
    arrays: Arrays, options: Mapping[str, Any], compute_dtype: str = "float64"
) -> Result:
    """``l_i = -sum_c a_c log clip(q_c)`` with ``q`` optionally divided by its row sum first.

    ``dl/dclip(q)_c = -a_c / clip(q)_c``, 0 where the clip is active; through the
    normalisation ``q = r / s``: ``dl/dr_j = (g_j - sum_c g_c q_c) / s``.
    """
    r, a, e, axis = _class_setup(arrays, "probs", options)
    s = np.sum(r, axis=-1, keepdims=True) if options.get("normalize") else np.ones_like(r[..., :1])
    q = r / s
    epsilon = options.get("epsilon", 1e-7)
    passes = np.ones(q.shape, bool)
    if epsilon:
        low, high = clip_bounds(epsilon, compute_dtype)
        passes = (q >= low) & (q <= high)
        q_clipped = np.clip(q, low, high)
    else:
        q_clipped = q
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -_weighted_sum(a, np.log(q_clipped))
        g = np.where(a == 0, 0.0, -a / q_clipped)
    g = np.where(passes, g, 0.0)
    if options.get("normalize"):
        g = (g - np.sum(g * q, axis=-1, keepdims=True)) / s
    return _finish(loss, g, e, axis, options, arrays)


def _focal_terms(logp: np.ndarray, a: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``-a (1-p)^gamma log p`` and its derivative with respect to ``log p``."""
    p = np.exp(logp)
    miss = -np.expm1(logp)  # 1 - p without cancellation
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where(a == 0, 0.0, -a * miss**gamma * logp)
        p_logp = np.where(p == 0, 0.0, p * logp)
        # gamma (1-p)^(gamma-1) p log p -> 0 as p -> 1 for gamma > 0
        slope = np.where((miss == 0) | (gamma == 0), 0.0, gamma * miss ** (gamma - 1.0) * p_logp)
        g = np.where(a == 0, 0.0, a * (slope - miss**gamma))
    return loss, g


def softmax_focal_loss_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``l_i = -sum_c alpha_c a_c (1 - p_c)^gamma log p_c``; with ``g_c`` the derivative of the
    ``c`` term with respect to ``log p_c``, ``dl/dz_j = g_j - p_j sum_c g_c``."""
    z, a, e, axis = _class_setup(arrays, "logits", options)
    alpha = arrays.get("alpha", options.get("alpha"))
    if alpha is not None:
        a = a * _f64(alpha)
    logp = log_softmax(z, axis=-1)
    terms, g = _focal_terms(logp, a, float(options.get("gamma", 2.0)))
    loss = np.sum(terms, axis=-1)
    grad = g - np.exp(logp) * np.sum(g, axis=-1, keepdims=True)
    return _finish(loss, grad, e, axis, options, arrays)


def poly1_cross_entropy_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``l_i = -sum_c a_c log p_c + eps sum_c a_c (1 - p_c)``;
    ``dl/dz = p sum(a) - a + eps p (sum_c a_c p_c - a)``."""
    z, a, e, axis = _class_setup(arrays, "logits", options)
    epsilon = float(options.get("epsilon", 2.0))
    logp = log_softmax(z, axis=-1)
    p = np.exp(logp)
    loss = -_weighted_sum(a, logp) + epsilon * np.sum(a * -np.expm1(logp), axis=-1)
    grad = p * np.sum(a, axis=-1, keepdims=True) - a
    grad = grad + epsilon * p * (np.sum(a * p, axis=-1, keepdims=True) - a)
    return _finish(loss, grad, e, axis, options, arrays)


def _smoothed(targets: np.ndarray, label_smoothing: float) -> np.ndarray:
    return _f64(targets) * (1.0 - label_smoothing) + label_smoothing / 2.0


def _broadcast(weight: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape) if weight is None else np.broadcast_to(_f64(weight), shape)


def _elementwise_finish(
    loss: np.ndarray, grad: np.ndarray, options: Mapping[str, Any], arrays: Arrays
) -> Result:
    value, scale = _reduced(loss, arrays, options)
    return value, (grad * scale,)


def _sigmoid_ce(x: np.ndarray, t: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """``pw t softplus(-x) + (1 - t) softplus(x)`` = TF's weighted form, overflow-free."""
    with np.errstate(invalid="ignore"):
        positive = np.where(t == 0, 0.0, pw * t * -log_expit(x))
        negative = np.where(t == 1, 0.0, (1.0 - t) * -log_expit(-x))
    return positive + negative


def sigmoid_cross_entropy_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``l = w [(1-t) x + (1 + (pw-1) t) softplus(-x)]``;
    ``dl/dx = w [(1-t) s(x) - pw t s(-x)]`` with ``s`` the sigmoid."""
    x = _f64(arrays["logits"])
    t = _smoothed(arrays["targets"], options.get("label_smoothing", 0.0))
    pw = _broadcast(arrays.get("pos_weight", options.get("pos_weight")), x.shape)
    w = _broadcast(arrays.get("class_weight"), x.shape)
    loss = w * _sigmoid_ce(x, t, pw)
    grad = w * ((1.0 - t) * expit(x) - pw * t * expit(-x))
    return _elementwise_finish(loss, grad, options, arrays)


def binary_cross_entropy_reference(
    arrays: Arrays, options: Mapping[str, Any], compute_dtype: str = "float64"
) -> Result:
    """``l = -w [t log p + (1-t) log(1-p)]``, ``p`` clipped, each log floored when asked.

    The derivative of a log is 0 where its floor or the clip is active.
    """
    p = _f64(arrays["probs"])
    t = _smoothed(arrays["targets"], options.get("label_smoothing", 0.0))
    w = _broadcast(arrays.get("class_weight"), p.shape)
    epsilon = options.get("epsilon", 1e-7)
    floor = options.get("log_floor")
    passes = np.ones(p.shape, bool)
    if epsilon:
        low, high = clip_bounds(epsilon, compute_dtype)
        passes = (p >= low) & (p <= high)
        p = np.clip(p, low, high)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p, log_q = np.log(p), np.log1p(-p)
        d_log_p = np.where(t == 0, 0.0, -t / p)
        d_log_q = np.where(t == 1, 0.0, (1.0 - t) / (1.0 - p))
        if floor is not None:
            d_log_p = np.where(log_p < floor, 0.0, d_log_p)
            d_log_q = np.where(log_q < floor, 0.0, d_log_q)
            log_p, log_q = np.maximum(log_p, floor), np.maximum(log_q, floor)
        loss = -w * (np.where(t == 0, 0.0, t * log_p) + np.where(t == 1, 0.0, (1.0 - t) * log_q))
        grad = w * np.where(passes, d_log_p + d_log_q, 0.0)
    return _elementwise_finish(loss, grad, options, arrays)


def _sigmoid_focal_parts(arrays: Arrays, options: Mapping[str, Any]) -> tuple[Any, ...]:
    """``x, t, gamma, alpha, ce, s(x), s(-x), m, alpha_t`` of the sigmoid focal loss."""
    x = _f64(arrays["logits"])
    t = _smoothed(arrays["targets"], options.get("label_smoothing", 0.0))
    gamma = float(options.get("gamma", 2.0))
    alpha = options.get("alpha")
    ce = _sigmoid_ce(x, t, np.ones_like(x))
    s_pos, s_neg = expit(x), expit(-x)
    miss = t * s_neg + (1.0 - t) * s_pos
    balance = 1.0 if alpha is None else alpha * t + (1.0 - alpha) * (1.0 - t)
    return x, t, gamma, alpha, ce, s_pos, s_neg, miss, balance


def sigmoid_focal_loss_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``l = alpha_t ce m^gamma`` with the miss probability ``m = t s(-x) + (1-t) s(x)``;
    ``dl/dx = alpha_t [(s(x) - t) m^gamma + gamma ce m^(gamma-1) (1-2t) s(x) s(-x)]``."""
    _, t, gamma, _, ce, s_pos, s_neg, miss, balance = _sigmoid_focal_parts(arrays, options)
    loss = balance * ce * miss**gamma
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(
            (miss == 0) | (gamma == 0),
            0.0,
            gamma * ce * miss ** (gamma - 1.0) * (1.0 - 2.0 * t) * s_pos * s_neg,
        )
    grad = balance * ((s_pos - t) * miss**gamma + slope)
    return _elementwise_finish(loss, grad, options, arrays)


def _information(arrays: Arrays, options: Mapping[str, Any], measure: str) -> Result:
    axis = int(options.get("axis", -1))
    p = np.moveaxis(_f64(arrays["p"]), axis, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "entropy":
            loss = -np.sum(xlogy(p, p), axis=-1)
            grad = -(np.log(p) + 1.0)
        else:
            q = np.moveaxis(_f64(arrays["q"]), axis, -1)
            if measure == "kl_divergence":
                loss = np.sum(rel_entr(p, q), axis=-1)
            else:
                loss = -np.sum(xlogy(p, q), axis=-1)
            grad = np.where(p == 0, 0.0, -p / q)
    reduction = options.get("reduction", "none")
    grad = np.moveaxis(grad * reduction_scale(loss.size, reduction), -1, axis)
    return reduce(loss, reduction), (grad,)


def entropy_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``H(p) = -sum p log p``; ``dH/dp = -(log p + 1)`` (``+inf`` at ``p = 0``)."""
    return _information(arrays, options, "entropy")


def kl_divergence_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``KL(p||q) = sum p log(p/q)``; ``d/dq = -p/q`` (0 where ``p = 0``)."""
    return _information(arrays, options, "kl_divergence")


def cross_entropy_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``H(p, q) = -sum p log q``; ``d/dq = -p/q`` (0 where ``p = 0``)."""
    return _information(arrays, options, "cross_entropy")


def _divergence_parts(arrays: Arrays, options: Mapping[str, Any]):
    """``x = log q``, ``p``, ``log p`` of ``kl_div_log`` (targets given as ``p`` or ``log p``)."""
    x = _f64(arrays["log_predictions"])
    targets = _f64(arrays["targets"])
    with np.errstate(divide="ignore"):
        if options.get("log_target"):
            return x, np.exp(targets), targets
        return x, targets, np.log(targets)


def _divergence_scale(shape: tuple[int, ...], axis: Any, reduction: str) -> float:
    """``d sum(reduce(losses)) / d losses_i`` for terms of ``shape`` summed along ``axis`` (None:
    not summed); ``batchmean`` divides by the first dimension."""
    if reduction == "batchmean":
        return 1.0 / shape[0] if shape else 1.0
    size = int(np.prod(shape))
    if axis is not None:
        size //= max(shape[int(axis)], 1)
    return reduction_scale(size, reduction)


def _divergence_reduce(shape: tuple[int, ...], losses: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "batchmean":
        total = np.sum(losses)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _f64(total / np.float64(shape[0]) if shape else total)
    return reduce(losses, reduction)


def kl_div_log_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """``d = p (log p - x)`` per element (``0 log 0 = 0``), ``+ e^x - p`` generalized, summed
    along ``axis`` if given; ``dd/dx = -p (+ e^x)``."""
    x, p, log_p = _divergence_parts(arrays, options)
    generalized = bool(options.get("generalized"))
    with np.errstate(invalid="ignore"):
        terms = np.where(p == 0, 0.0, p * (log_p - x))
    grad = -p
    if generalized:
        terms = terms + np.exp(x) - p
        grad = grad + np.exp(x)
    axis = options.get("axis")
    losses = terms if axis is None else np.sum(terms, axis=int(axis))
    reduction = options.get("reduction", "none")
    scale = _divergence_scale(x.shape, axis, reduction)
    return _divergence_reduce(x.shape, losses, reduction), (grad * scale,)


def _linear_parts(arrays: Arrays, options: Mapping[str, Any]) -> tuple[Any, ...]:
    """``h`` (rows), the capped logits ``z``, ``d z / d (h W^T + b)``, the target weights
    ``a``, the mean weights ``e`` and whether the targets are probabilities."""
    hidden, weight = _f64(arrays["hidden"]), _f64(arrays["weight"])
    bias = arrays.get("bias")
    vocab = weight.shape[0]
    h = hidden.reshape(-1, hidden.shape[-1])
    targets = arrays["targets"]
    dense = np.ndim(targets) == hidden.ndim
    t = _f64(targets).reshape(-1, vocab) if dense else np.asarray(targets).reshape(-1)
    z = h @ weight.T + (0.0 if bias is None else _f64(bias))
    z, cap_slope = _soft_capped(z, options)
    weights = {"class_weight": arrays.get("class_weight"), "sparse": not dense}
    ignore = options.get("ignore_index")
    a, _ = target_weights(
        t,
        vocab,
        **weights,
        ignore_index=ignore,
        label_smoothing=options.get("label_smoothing", 0.0),
    )
    e = mean_weights(t, vocab, **weights, ignore_index=ignore)
    return h, z, cap_slope, a, e, dense


def linear_cross_entropy_reference(arrays: Arrays, options: Mapping[str, Any]) -> Result:
    """Softmax CE of ``z = cap(h W^T + b)``, ``cap(x) = s tanh(x/s)``, plus ``lambda e lse^2``.

    With the target weights ``a_c = w_c ((1-eps) t_c + eps/V)`` (``t`` one-hot or
    probabilities; 0 for an ignored target) and the mean weights ``e`` (``w_y``, 0 ignored; 1
    for probabilities): ``dl/dz_c = p_c (sum(a) + 2 lambda e lse) - a_c``, times
    ``1 - tanh^2`` under the cap; then ``dh = dz W``, ``dW = dz^T h``, ``db = sum dz``.
    """
    hidden, weight = _f64(arrays["hidden"]), _f64(arrays["weight"])
    h, z, cap_slope, a, e, _ = _linear_parts(arrays, options)
    z_loss = float(options.get("z_loss", 0.0))
    logp = log_softmax(z, axis=-1)
    lse = logsumexp(z, axis=-1)
    loss = -_weighted_sum(a, logp) + z_loss * e * lse**2
    rows = hidden.shape[:-1]
    value, scale = _reduced(loss.reshape(rows), arrays, options, e.reshape(rows))
    scale = np.reshape(scale, (-1, 1)) if isinstance(scale, np.ndarray) else scale
    row = np.sum(a, axis=-1) + 2.0 * z_loss * e * lse
    dz = (np.exp(logp) * row[:, None] - a) * scale * cap_slope
    grads = [(dz @ weight).reshape(hidden.shape), dz.T @ h]
    if arrays.get("bias") is not None:
        grads.append(np.sum(dz, axis=0))
    return value, tuple(grads)


# --- gradients with respect to the targets ---------------------------------------------------

Targets = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (gradient, where it is defined)


def _class_target_gradient(
    arrays: Arrays, name: str, options: Mapping[str, Any], per_class: Callable[..., np.ndarray]
) -> Targets:
    """``d sum(loss) / d t`` for the softmax family with probability targets ``t``.

    The loss is ``sum_c a_c f_c(x)`` with ``a_c = w_c ((1 - eps) t_c + eps / C)`` and a ``mean``
    denominator (the number of examples) that does not depend on ``t``, so
    ``dl/dt_c = (1 - eps) w_c f_c`` times the reduction's scale; ``per_class(x)`` gives ``f_c``
    with the class axis last.
    """
    axis = int(options.get("axis", -1))
    x = np.moveaxis(_f64(arrays[name]), axis, -1)
    eps = float(options.get("label_smoothing", 0.0))
    scale = _row_scale(_reduced(np.zeros(x.shape[:-1]), arrays, options)[1])
    weight = arrays.get("class_weight")
    w = np.ones(x.shape[-1]) if weight is None else _f64(weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = (1.0 - eps) * w * per_class(x) * scale
    return {"targets": (np.moveaxis(grad, -1, axis), np.moveaxis(np.isfinite(grad), -1, axis))}


def softmax_cross_entropy_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``dl/dt_c = -(1 - eps) w_c log softmax(z~)_c`` (the z-loss of probability targets
    weighs 1: it does not depend on them)."""

    def per_class(z: np.ndarray) -> np.ndarray:
        return -log_softmax(_soft_capped(z, options)[0], axis=-1)

    return _class_target_gradient(arrays, "logits", options, per_class)


def categorical_cross_entropy_target_gradient(
    arrays: Arrays, options: Mapping[str, Any], compute_dtype: str = "float64"
) -> Targets:
    """``dl/dt_c = -(1 - eps) w_c log clip(q_c)``, ``q`` normalised first when asked."""
    epsilon = options.get("epsilon", 1e-7)

    def per_class(r: np.ndarray) -> np.ndarray:
        q = r / np.sum(r, axis=-1, keepdims=True) if options.get("normalize") else r
        if epsilon:
            q = np.clip(q, *clip_bounds(epsilon, compute_dtype))
        return -np.log(q)

    return _class_target_gradient(arrays, "probs", options, per_class)


def softmax_focal_loss_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``dl/dt_c = -(1 - eps) w_c alpha_c (1 - p_c)^gamma log p_c``."""
    alpha = arrays.get("alpha", options.get("alpha"))
    gamma = float(options.get("gamma", 2.0))

    def per_class(z: np.ndarray) -> np.ndarray:
        logp = log_softmax(z, axis=-1)
        term = -((-np.expm1(logp)) ** gamma) * logp
        return term if alpha is None else _f64(alpha) * term

    return _class_target_gradient(arrays, "logits", options, per_class)


def poly1_cross_entropy_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``dl/dt_c = (1 - eps) w_c (-log p_c + epsilon (1 - p_c))``."""
    epsilon = float(options.get("epsilon", 2.0))

    def per_class(z: np.ndarray) -> np.ndarray:
        logp = log_softmax(z, axis=-1)
        return -logp + epsilon * -np.expm1(logp)

    return _class_target_gradient(arrays, "logits", options, per_class)


def _elementwise_target(grad: np.ndarray, options: Mapping[str, Any], arrays: Arrays) -> Targets:
    """``dl/dt`` (``grad``, with respect to the smoothed targets) through the smoothing
    ``t (1 - eps) + eps / 2`` and the reduction."""
    eps = float(options.get("label_smoothing", 0.0))
    scale = _reduced(np.zeros(grad.shape), arrays, options)[1]
    grad = grad * (1.0 - eps) * scale
    return {"targets": (grad, np.isfinite(grad))}


def sigmoid_cross_entropy_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``dl/dt = w [pw softplus(-x) - softplus(x)]``."""
    x = _f64(arrays["logits"])
    pw = _broadcast(arrays.get("pos_weight", options.get("pos_weight")), x.shape)
    w = _broadcast(arrays.get("class_weight"), x.shape)
    return _elementwise_target(w * (pw * -log_expit(x) + log_expit(-x)), options, arrays)


def binary_cross_entropy_target_gradient(
    arrays: Arrays, options: Mapping[str, Any], compute_dtype: str = "float64"
) -> Targets:
    """``dl/dt = -w (log p - log(1 - p))`` with the clip and the log floor of the value."""
    p = _f64(arrays["probs"])
    w = _broadcast(arrays.get("class_weight"), p.shape)
    epsilon = options.get("epsilon", 1e-7)
    floor = options.get("log_floor")
    if epsilon:
        p = np.clip(p, *clip_bounds(epsilon, compute_dtype))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p, log_q = np.log(p), np.log1p(-p)
        if floor is not None:
            log_p, log_q = np.maximum(log_p, floor), np.maximum(log_q, floor)
        return _elementwise_target(-w * (log_p - log_q), options, arrays)


def sigmoid_focal_loss_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``l = b ce m^gamma`` with ``b = alpha t + (1 - alpha)(1 - t)``, ``d ce/dt = -x`` and
    ``dm/dt = s(-x) - s(x)``:

    ``dl/dt = (2 alpha - 1) ce m^gamma - b x m^gamma + b ce gamma m^(gamma-1) (s(-x) - s(x))``;

    the last term is 0 where ``m = 0`` (``ce`` vanishes there as fast as ``m``).
    """
    x, _, gamma, alpha, ce, s_pos, s_neg, miss, balance = _sigmoid_focal_parts(arrays, options)
    d_balance = 0.0 if alpha is None else 2.0 * alpha - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(
            (miss == 0) | (gamma == 0),
            0.0,
            gamma * ce * miss ** (gamma - 1.0) * (s_neg - s_pos),
        )
    grad = d_balance * ce * miss**gamma + balance * (-x * miss**gamma + slope)
    return _elementwise_target(grad, options, arrays)


def _information_target(arrays: Arrays, options: Mapping[str, Any], measure: str) -> Targets:
    """``d KL(p||q)/dp = log p - log q + 1``; ``d H(p, q)/dp = -log q``."""
    axis = int(options.get("axis", -1))
    p = np.moveaxis(_f64(arrays["p"]), axis, -1)
    q = np.moveaxis(_f64(arrays["q"]), axis, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = -np.log(q)
        if measure == "kl_divergence":
            grad = grad + np.log(p) + 1.0
    grad = grad * reduction_scale(int(np.prod(p.shape[:-1])), options.get("reduction", "none"))
    grad = np.moveaxis(grad, -1, axis)
    return {"p": (grad, np.isfinite(grad))}


def linear_cross_entropy_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """Probability targets: ``dl/dt_c = -(1 - eps) w_c log softmax(z)_c`` (their z-loss
    weighs 1, independent of ``t``)."""
    hidden = _f64(arrays["hidden"])
    _, z, _, _, _, _ = _linear_parts(arrays, options)
    eps = float(options.get("label_smoothing", 0.0))
    weight = arrays.get("class_weight")
    w = np.ones(z.shape[-1]) if weight is None else _f64(weight)
    rows = hidden.shape[:-1]
    scale = _row_scale(_reduced(np.zeros(rows), arrays, options)[1])
    grad = -(1.0 - eps) * w * log_softmax(z, axis=-1).reshape(*rows, -1) * scale
    return {"targets": (grad, np.isfinite(grad))}


def kl_divergence_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``d KL(p||q) / dp = log p - log q + 1`` (undefined at ``p = 0``)."""
    return _information_target(arrays, options, "kl_divergence")


def cross_entropy_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``d H(p, q) / dp = -log q``."""
    return _information_target(arrays, options, "cross_entropy")


def kl_div_log_target_gradient(arrays: Arrays, options: Mapping[str, Any]) -> Targets:
    """``dd/dp = log p + 1 - x`` (``- 1`` generalized; undefined at ``p = 0``, where the loss is
    infinite on one side); with log targets ``t = log p``: ``dd/dt = p (t - x + 1)`` (``- p``
    generalized), 0 at ``t = -inf``."""
    x, p, log_p = _divergence_parts(arrays, options)
    minus = 1.0 if options.get("generalized") else 0.0
    with np.errstate(invalid="ignore"):
        if options.get("log_target"):
            grad = np.where(p == 0, 0.0, p * (log_p - x + 1.0 - minus))
        else:
            grad = log_p + 1.0 - x - minus
    grad = grad * _divergence_scale(x.shape, options.get("axis"), options.get("reduction", "none"))
    return {"targets": (grad, np.isfinite(grad))}


TARGET_GRADIENTS: dict[str, Callable[..., Targets]] = {
    "softmax_cross_entropy": softmax_cross_entropy_target_gradient,
    "categorical_cross_entropy": categorical_cross_entropy_target_gradient,
    "softmax_focal_loss": softmax_focal_loss_target_gradient,
    "poly1_cross_entropy": poly1_cross_entropy_target_gradient,
    "sigmoid_cross_entropy": sigmoid_cross_entropy_target_gradient,
    "binary_cross_entropy": binary_cross_entropy_target_gradient,
    "sigmoid_focal_loss": sigmoid_focal_loss_target_gradient,
    "kl_divergence": kl_divergence_target_gradient,
    "cross_entropy": cross_entropy_target_gradient,
    "kl_div_log": kl_div_log_target_gradient,
    "linear_cross_entropy": linear_cross_entropy_target_gradient,
}


REFERENCES: dict[str, Callable[..., Result]] = {
    "softmax_cross_entropy": softmax_cross_entropy_reference,
    "categorical_cross_entropy": categorical_cross_entropy_reference,
    "softmax_focal_loss": softmax_focal_loss_reference,
    "poly1_cross_entropy": poly1_cross_entropy_reference,
    "sigmoid_cross_entropy": sigmoid_cross_entropy_reference,
    "binary_cross_entropy": binary_cross_entropy_reference,
    "sigmoid_focal_loss": sigmoid_focal_loss_reference,
    "entropy": entropy_reference,
    "kl_divergence": kl_divergence_reference,
    "cross_entropy": cross_entropy_reference,
    "linear_cross_entropy": linear_cross_entropy_reference,
    "kl_div_log": kl_div_log_reference,
}


CLIPPING = ("categorical_cross_entropy", "binary_cross_entropy")


def compute_dtype(dtype: str) -> str:
    """The dtype the core computes in for inputs of ``dtype`` (float32 below 64 bits)."""
    return "float64" if dtype == "float64" else "float32"


def reference(
    variant: str, arrays: Arrays, options: Mapping[str, Any], dtype: str = "float64"
) -> Result:
    """``(value, gradients)`` of ``variant`` in float64 on ``arrays`` (already rounded to
    ``dtype``, whose compute dtype places the clip bounds)."""
    if variant in CLIPPING:
        return REFERENCES[variant](arrays, options, compute_dtype(dtype))
    return REFERENCES[variant](arrays, options)


def target_gradient_reference(
    variant: str,
    arrays: Arrays,
    options: Mapping[str, Any],
    names: Sequence[str],
    dtype: str = "float64",
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """``(gradients, defined)``: ``d sum(loss) / d arrays[name]`` for each of ``names`` (the
    case's ``target_grad_of``) in float64 on ``arrays``, and the masks of the entries where that
    derivative exists (the others are not compared).

    Raises:
        KeyError: for a variant without floating targets.
    """
    found: Targets = {}
    if any(n != "sample_weight" for n in names):
        if variant in CLIPPING:
            found = TARGET_GRADIENTS[variant](arrays, options, compute_dtype(dtype))
        else:
            found = TARGET_GRADIENTS[variant](arrays, options)
    if "sample_weight" in names:
        found["sample_weight"] = sample_weight_gradient(variant, arrays, options, dtype)
    return tuple(found[n][0] for n in names), tuple(found[n][1] for n in names)


CLASS_FAMILY = (
    "softmax_cross_entropy",
    "categorical_cross_entropy",
    "softmax_focal_loss",
    "poly1_cross_entropy",
)


def sample_weight_gradient(
    variant: str, arrays: Arrays, options: Mapping[str, Any], dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray]:
    r"""``(d sum(loss) / d s, defined)`` for the sample weights ``s``, from the per-example
    losses :math:`\ell_i` (``reduction="none"``, no weights, no mask).

    With :math:`f_i = s_i m_i`: ``none`` and ``sum`` give :math:`m_i \ell_i`;
    ``mean`` (:math:`L = \sum f \ell / D`, :math:`D = \sum f e`) gives
    :math:`m_i (\ell_i - e_i L) / D`; ``sum_over_batch_size`` :math:`m_i \ell_i / \sum m`.
    Summed over the axes along which ``s`` broadcasts.
    """
    plain = {k: v for k, v in arrays.items() if k not in ("sample_weight", "where")}
    losses, _ = reference(variant, plain, {**options, "reduction": "none"}, dtype)
    shape = losses.shape
    keep = arrays.get("where")
    keep = np.ones(shape, bool) if keep is None else np.broadcast_to(np.asarray(keep, bool), shape)
    reduction = options.get("reduction", "mean")
    with np.errstate(invalid="ignore", divide="ignore"):
        grad = np.where(keep, losses, 0.0)
        if reduction == "mean":
            e = None
            if variant in CLASS_FAMILY:
                name = "probs" if variant == "categorical_cross_entropy" else "logits"
                e = _class_setup(arrays, name, options)[2]
            elif variant == "linear_cross_entropy":
                e = _linear_parts(arrays, options)[4].reshape(shape)
            e = np.ones(shape) if e is None else e
            s = np.broadcast_to(_f64(arrays["sample_weight"]), shape)
            factor = np.where(keep, s, 0.0)
            denominator = np.sum(factor * e)
            value = np.sum(np.where(keep, s * losses, 0.0)) / denominator
            grad = np.where(keep, losses - e * value, 0.0) / denominator
        elif reduction == "sum_over_batch_size":
            grad = grad / np.sum(keep)
    weight_shape = np.shape(arrays["sample_weight"])
    grad = _unbroadcast(grad, weight_shape)
    return grad, np.isfinite(grad)


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``grad`` summed over the axes along which an array of ``shape`` was broadcast to it."""
    lead = grad.ndim - len(shape)
    grad = np.sum(grad, axis=tuple(range(lead))) if lead else grad
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    return np.sum(grad, axis=axes, keepdims=True) if axes else grad


def hvp_reference(
    variant: str,
    arrays: Arrays,
    options: Mapping[str, Any],
    wrt: Sequence[str],
    directions: Mapping[str, np.ndarray],
    step: float,
    dtype: str = "float64",
) -> tuple[np.ndarray, ...]:
    r"""``H v`` of ``sum(loss)`` with respect to the arrays ``wrt`` (the case's ``grad_of``,
    whose gradients :func:`reference` returns) along ``v = directions``.

    The central difference :math:`D(h) = (g(x + h v) - g(x - h v)) / 2h` has the error
    :math:`c_2 h^2 + c_4 h^4 + \dots`; two Richardson steps over :math:`h, h/2, h/4` cancel the
    :math:`h^2` and :math:`h^4` terms: :math:`R_k = (4 D(h/2^k) - D(h/2^{k-1})) / 3`, then
    :math:`(16 R_2 - R_1) / 15`.
    """

    def gradient(s: float) -> tuple[np.ndarray, ...]:
        shifted = {**arrays, **{n: _f64(arrays[n]) + s * _f64(directions[n]) for n in wrt}}
        return reference(variant, shifted, options, dtype)[1]

    def central(h: float) -> list[np.ndarray]:
        ahead, behind = gradient(h), gradient(-h)
        return [(a - b) / (2.0 * h) for a, b in zip(ahead, behind, strict=True)]

    d0, d1, d2 = central(step), central(step / 2.0), central(step / 4.0)
    products = []
    for a, b, c in zip(d0, d1, d2, strict=True):
        r1, r2 = (4.0 * b - a) / 3.0, (4.0 * c - b) / 3.0
        products.append((16.0 * r2 - r1) / 15.0)
    return tuple(products)
