r"""The float64 reference checked in 80-digit arithmetic (mpmath).

Each loss is written here once more in its *definitional* form, e.g.
:math:`\log \sum_c e^{z_c} - z_y` with no shift by the maximum and
:math:`(1-t)x + L \log(1 + e^{-x})` as it stands: with 80 digits and mpmath's unbounded exponent
range neither overflows nor cancels, so no numerical trick can hide an error. Gradients are
central finite differences of that form with a step of :math:`10^{-20}` (absolute: softmax and
sigmoid bend on a scale of one unit of logit whatever the logit's size, and 80 digits still
resolve :math:`10^{30} \pm 10^{-20}`), on a few coordinates drawn per case (truncation error
about :math:`10^{-40}`).

:func:`check_reference` compares ``xentropy.conformance.reference`` with both, for the gradients
of the prediction and of the floating targets (``Case.target_grad_of``). This validates
the reference itself (its formulas and their float64 rounding), so that a failing cell of the
matrix can be blamed on the backend, not on the yardstick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from .cases import Case, case_rng
from .reference import reference, target_gradient_reference

DIGITS = 80
RTOL = 1e-10  # the float64 reference must be this close to the 80-digit value ...
ATOL = 1e-12  # ... or this close in absolute terms (entries that cancel to about 0)
STEP = mpmath.mpf(10) ** -20
COORDINATES = 3  # finite-difference coordinates per differentiated array

mp = mpmath.mp


def _elementwise(function: Any) -> Any:
    """``function`` applied to every element of an object array, always returning an array."""
    ufunc = np.frompyfunc(function, 1, 1)
    return lambda x: np.asarray(ufunc(x), dtype=object)


_exp = _elementwise(mp.exp)
_log = _elementwise(mp.log)
_tanh = _elementwise(mp.tanh)
_to_mp = _elementwise(mp.mpf)
_to_float = _elementwise(float)


def _sum(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.asarray(np.sum(x, axis=axis), dtype=object)


def _mp(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return x
    return _to_mp(x.astype(np.float64))


def _floats(x: Any) -> np.ndarray:
    return np.asarray(_to_float(np.asarray(x, dtype=object)), dtype=np.float64)


def _xlog(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a log x`` with ``0 log 0 = 0`` (mpmath gives NaN for ``0 * -inf``)."""
    return np.where(a == 0, mp.mpf(0), a * _log(np.where(a == 0, mp.mpf(1), x)))


def _reduce(loss: np.ndarray, reduction: str, total: Any = None) -> np.ndarray:
    if reduction == "none":
        return loss
    s = _sum(loss)
    if reduction == "sum":
        return np.asarray(s, dtype=object)
    n = loss.size if reduction == "sum_over_batch_size" or total is None else total
    return np.asarray(s / n, dtype=object)


def _weighted_reduce(loss: np.ndarray, arrays, reduction: str, e: Any = None) -> np.ndarray:
    r"""The reduction with ``sample_weight`` :math:`s` and ``where`` :math:`m` as written in
    ``xentropy._sample_weights``: :math:`f = s m`, ``none`` :math:`f \ell`, ``mean``
    :math:`\sum f \ell / \sum f e`, ``sum_over_batch_size`` :math:`\sum f \ell / \sum m`
    (``e``: per-example mean weights, default 1); without either, :func:`_reduce`."""
    if "sample_weight" not in arrays and "where" not in arrays:
        return _reduce(loss, reduction, None if e is None else _sum(e))
    loss = np.asarray(loss, dtype=object)
    shape = loss.shape
    one, zero = mp.mpf(1), mp.mpf(0)
    s = arrays.get("sample_weight")
    s = np.full(shape, one, dtype=object) if s is None else np.broadcast_to(s, shape)
    m = arrays.get("where")
    m = np.ones(shape, bool) if m is None else np.broadcast_to(np.asarray(m, bool), shape)
    f = np.where(m, s, zero)
    weighted = np.where(m, s * np.where(m, loss, zero), zero)
    if reduction == "none":
        return weighted
    total = _sum(weighted)
    if reduction == "sum":
        return np.asarray(total, dtype=object)
    if reduction == "mean":
        e = np.full(shape, one, dtype=object) if e is None else e
        return np.asarray(total / _sum(f * e), dtype=object)
    return np.asarray(total / int(np.sum(m)), dtype=object)


def _class_weights(arrays, options, x, sparse):
    C = x.shape[-1]
    w = (
        np.full(C, mp.mpf(1), dtype=object)
        if "class_weight" not in arrays
        else arrays["class_weight"]
    )
    eps = mp.mpf(options.get("label_smoothing", 0.0))
    axis = int(options.get("axis", -1))
    if sparse:
        y = arrays["targets"]
        ignore = options.get("ignore_index")
        a = np.empty((*y.shape, C), dtype=object)
        e = np.empty(y.shape, dtype=object)  # the mean weights: w[y], 0 if ignored
        for index in np.ndindex(y.shape):
            kept = ignore is None or y[index] != ignore
            for c in range(C):
                hit = 1 if c == y[index] else 0
                a[(*index, c)] = (1 - eps) * hit * w[c] + eps / C * w[c] if kept else mp.mpf(0)
            e[index] = w[int(y[index])] if kept else mp.mpf(0)
        return a, e
    t = np.moveaxis(arrays["targets"], axis, -1)
    return ((1 - eps) * t + eps / C) * w, np.full(t.shape[:-1], mp.mpf(1), dtype=object)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - _log(_sum(_exp(z), axis=-1))[..., None]


def _class_loss(variant: str, arrays, options) -> np.ndarray:
    axis = int(options.get("axis", -1))
    name = "probs" if variant == "categorical_cross_entropy" else "logits"
    x = np.moveaxis(arrays[name], axis, -1)
    sparse = np.ndim(arrays["targets"]) == x.ndim - 1
    a, e = _class_weights(arrays, options, x, sparse)
    reduction = options.get("reduction", "mean")
    if variant == "categorical_cross_entropy":
        q = x / _sum(x, axis=-1)[..., None] if options.get("normalize") else x
        epsilon = options.get("epsilon", 1e-7)
        if epsilon:
            lo, hi = mp.mpf(epsilon), 1 - mp.mpf(epsilon)
            q = _elementwise(lambda v: min(max(v, lo), hi))(q)
        return _weighted_reduce(-_sum(_xlog(a, q), axis=-1), arrays, reduction, e)
    if options.get("softcap") is not None:  # Gemma 2: s tanh(z / s)
        cap = mp.mpf(options["softcap"])
        x = cap * _tanh(x / cap)
    logp = _log_softmax(x)
    p = _exp(logp)
    if variant == "softmax_focal_loss":
        alpha = arrays.get("alpha", options.get("alpha"))
        if alpha is not None:
            a = a * alpha
        gamma = mp.mpf(options.get("gamma", 2.0))
        modulated = a * (1 - p) ** gamma
        terms = np.where(a == 0, mp.mpf(0), modulated * np.where(a == 0, mp.mpf(0), logp))
        return _weighted_reduce(-_sum(terms, axis=-1), arrays, reduction, e)
    ce = -_sum(np.where(a == 0, mp.mpf(0), a * np.where(a == 0, mp.mpf(0), logp)), axis=-1)
    if variant == "poly1_cross_entropy":
        ce = ce + mp.mpf(options.get("epsilon", 2.0)) * _sum(a * (1 - p), axis=-1)
    if options.get("z_loss"):  # PaLM: lambda e_i lse^2, e_i = w[y_i] (0 if ignored) or 1
        lse = _log(_sum(_exp(x), axis=-1))
        ce = ce + mp.mpf(options["z_loss"]) * e * lse**2
    return _weighted_reduce(ce, arrays, reduction, e)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + _exp(-x))


def _elementwise_loss(variant: str, arrays, options) -> np.ndarray:
    eps = mp.mpf(options.get("label_smoothing", 0.0))
    t = arrays["targets"]
    t = (np.asarray(t, dtype=np.float64) if t.dtype.kind in "biu" else t).astype(object)
    t = t * (1 - eps) + eps / 2
    reduction = options.get("reduction", "mean")
    if variant == "binary_cross_entropy":
        p = arrays["probs"]
        epsilon = options.get("epsilon", 1e-7)
        if epsilon:
            lo, hi = mp.mpf(epsilon), 1 - mp.mpf(epsilon)
            p = _elementwise(lambda v: min(max(v, lo), hi))(p)
        log_p = _log(p)
        log_q = _log(1 - p)
        floor = options.get("log_floor")
        if floor is not None:
            clamp = _elementwise(lambda v: max(v, mp.mpf(floor)))
            log_p, log_q = clamp(log_p), clamp(log_q)
        loss = -(
            np.where(t == 0, mp.mpf(0), t * log_p) + np.where(t == 1, mp.mpf(0), (1 - t) * log_q)
        )
    else:
        x = arrays["logits"]
        pw = arrays.get("pos_weight", options.get("pos_weight"))
        pw = mp.mpf(1) if pw is None else pw
        # TF's definition as written: (1 - t) x + (1 + (pw - 1) t) log(1 + e^-x)
        loss = (1 - t) * x + (1 + (pw - 1) * t) * _log(1 + _exp(-x))
        if variant == "sigmoid_focal_loss":
            p = _sigmoid(x)
            miss = 1 - (p * t + (1 - p) * (1 - t))
            loss = loss * miss ** mp.mpf(options.get("gamma", 2.0))
            alpha = options.get("alpha")
            if alpha is not None:
                loss = loss * (mp.mpf(alpha) * t + (1 - mp.mpf(alpha)) * (1 - t))
    if "class_weight" in arrays:
        loss = loss * arrays["class_weight"]
    return _weighted_reduce(loss, arrays, reduction)


def _information_loss(variant: str, arrays, options) -> np.ndarray:
    axis = int(options.get("axis", -1))
    p = np.moveaxis(arrays["p"], axis, -1)
    if variant == "entropy":
        loss = -_sum(_xlog(p, p), axis=-1)
    else:
        q = np.moveaxis(arrays["q"], axis, -1)
        loss = -_sum(_xlog(p, q), axis=-1)
        if variant == "kl_divergence":
            loss = loss + _sum(_xlog(p, p), axis=-1)
    return _reduce(loss, options.get("reduction", "none"))


def _divergence_loss(arrays, options) -> np.ndarray:
    """``kl_div_log``: ``p (log p - x)`` per element (``0 log 0 = 0``), ``+ e^x - p``
    generalized, summed along ``axis`` if given."""
    x, targets = arrays["log_predictions"], arrays["targets"]
    if options.get("log_target"):
        p = _exp(targets)
        terms = np.where(p == 0, mp.mpf(0), p * (targets - np.where(p == 0, mp.mpf(0), x)))
    else:
        p = targets
        terms = _xlog(p, p) - np.where(p == 0, mp.mpf(0), p * x)
    if options.get("generalized"):
        terms = terms + _exp(x) - p
    axis = options.get("axis")
    loss = terms if axis is None else _sum(terms, axis=int(axis))
    reduction = options.get("reduction", "none")
    if reduction == "batchmean":
        return np.asarray(_sum(loss) / (x.shape[0] if x.ndim else 1), dtype=object)
    return _reduce(loss, reduction)


def _linear_loss(arrays, options) -> np.ndarray:
    """``sum_c a_ic (lse_i - z_ic) + lambda e_i lse_i^2`` of ``z = cap(h W^T + b)``, with
    ``a_ic = w_c ((1 - eps) t_ic + eps / V)`` for the one-hot or given targets ``t`` (0 for an
    ignored index) and ``e_i = w_{y_i}`` (0 if ignored) or 1 for probabilities; ``mean``
    divides by ``sum e``."""
    hidden, weight = arrays["hidden"], arrays["weight"]
    h = hidden.reshape(-1, hidden.shape[-1])
    vocab = weight.shape[0]
    dense = arrays["targets"].ndim == hidden.ndim
    t = arrays["targets"].reshape(-1, vocab) if dense else arrays["targets"].reshape(-1)
    z = h.dot(weight.T)
    if "bias" in arrays:
        z = z + arrays["bias"]
    if options.get("softcap") is not None:
        s = mp.mpf(options["softcap"])
        z = s * _tanh(z / s)
    one = mp.mpf(1)
    w = arrays["class_weight"] if "class_weight" in arrays else np.full(vocab, one, dtype=object)
    eps = mp.mpf(options.get("label_smoothing", 0.0))
    lse = _log(_sum(_exp(z), axis=-1))
    ignore = options.get("ignore_index")
    loss = np.empty(len(t), dtype=object)
    e = np.empty(len(t), dtype=object)
    for i in range(len(t)):
        if dense:
            target, e[i] = t[i], one
        elif ignore is not None and t[i] == ignore:
            loss[i] = e[i] = mp.mpf(0)
            continue
        else:
            target = np.array([one if c == t[i] else mp.mpf(0) for c in range(vocab)])
            e[i] = w[int(t[i])]
        a = w * ((1 - eps) * target + eps / vocab)
        loss[i] = (
            _sum(a * (lse[i] - z[i])) + mp.mpf(options.get("z_loss", 0.0)) * e[i] * lse[i] ** 2
        )
    rows = hidden.shape[:-1]
    return _weighted_reduce(
        loss.reshape(rows), arrays, options.get("reduction", "mean"), e.reshape(rows)
    )


def precise_value(case: Case, arrays: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The loss of ``case`` (on ``arrays`` when given) in :data:`DIGITS`-digit arithmetic."""
    values = {k: _mp(v) for k, v in (arrays or case.arrays).items()}
    with mp.workdps(DIGITS):
        if case.variant == "linear_cross_entropy":
            return _linear_loss(values, case.options)
        if case.variant == "kl_div_log":
            return _divergence_loss(values, case.options)
        if case.variant in ("entropy", "kl_divergence", "cross_entropy"):
            return _information_loss(case.variant, values, case.options)
        if case.variant in ("sigmoid_cross_entropy", "binary_cross_entropy", "sigmoid_focal_loss"):
            return _elementwise_loss(case.variant, values, case.options)
        return _class_loss(case.variant, values, case.options)


def _kinks(case: Case, name: str) -> list[float]:
    """Points where the loss is not differentiable in input ``name`` (domain edges, clips).

    Targets count their ends 0 and 1 as edges: a focal loss's miss probability turns negative
    just past them (a complex power in mpmath).
    """
    if name == "targets":
        return [0.0, 1.0]
    if name not in ("probs", "p", "q"):
        return []
    points = [0.0, 1.0]
    epsilon = case.options.get("epsilon", 1e-7)
    if case.variant in ("categorical_cross_entropy", "binary_cross_entropy") and epsilon:
        points += [epsilon, 1.0 - epsilon]
    return points


def precise_gradient(case: Case, name: str, index: tuple[int, ...]) -> float | None:
    """``d sum(loss) / d arrays[name][index]`` by a central difference in 80 digits.

    None where the coordinate is infinite or within a few steps of a kink (a clip or the edge
    of ``[0, 1]``), where a difference quotient says nothing.
    """
    x = float(case.arrays[name][index])
    if not np.isfinite(x):
        return None
    with mp.workdps(DIGITS):
        h = STEP
        if any(abs(mp.mpf(x) - k) <= 4 * h for k in _kinks(case, name)):
            return None
        values = {k: _mp(v) for k, v in case.arrays.items()}
        total = []
        for sign in (1, -1):
            shifted = dict(values)
            shifted[name] = values[name].copy()
            shifted[name][index] = mp.mpf(x) + sign * h
            loss = _dispatch(case, shifted)
            total.append(_sum(loss))
        return float((total[0] - total[1]) / (2 * h))


def _dispatch(case: Case, values: Mapping[str, np.ndarray]) -> np.ndarray:
    if case.variant == "linear_cross_entropy":
        return _linear_loss(values, case.options)
    if case.variant == "kl_div_log":
        return _divergence_loss(values, case.options)
    if case.variant in ("entropy", "kl_divergence", "cross_entropy"):
        return _information_loss(case.variant, values, case.options)
    if case.variant in ("sigmoid_cross_entropy", "binary_cross_entropy", "sigmoid_focal_loss"):
        return _elementwise_loss(case.variant, values, case.options)
    return _class_loss(case.variant, values, case.options)


@dataclass(frozen=True)
class ReferenceCheck:
    """The float64 reference of one case against the 80-digit evaluation."""

    case: str
    passed: bool
    value_error: float  # worst |reference - precise| / (ATOL + RTOL |precise|), <= 1 passes
    gradient_error: float  # the same for the sampled gradient coordinates
    coordinates: int  # finite-difference coordinates checked
    detail: str = ""


def _scaled_error(approx: np.ndarray, exact: np.ndarray) -> tuple[float, str]:
    approx = np.asarray(approx, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    same = (approx == exact) | (np.isnan(approx) & np.isnan(exact))
    with np.errstate(invalid="ignore"):
        error = np.where(same, 0.0, np.abs(approx - exact) / (ATOL + RTOL * np.abs(exact)))
    error = np.where(np.isnan(error), np.inf, error)
    worst = float(np.max(error)) if error.size else 0.0
    detail = ""
    if worst > 1.0:
        i = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
        where = [int(k) for k in i]
        detail = f"reference {float(approx[i]):.17g} vs 80-digit {float(exact[i]):.17g} at {where}"
    return worst, detail


def check_reference(case: Case, seed: int = 0) -> ReferenceCheck:
    """Compare the float64 reference of ``case`` with its 80-digit value and with 80-digit
    finite differences on a few coordinates of each differentiated array."""
    value, grads = reference(case.variant, case.arrays, case.options)
    defined = [np.ones(g.shape, bool) for g in grads]
    if case.target_grad_of:
        target_grads, target_defined = target_gradient_reference(
            case.variant, case.arrays, case.options, case.target_grad_of
        )
        grads, defined = (*grads, *target_grads), [*defined, *target_defined]
    value_error, detail = _scaled_error(value, _floats(precise_value(case)))
    rng = case_rng(seed, "precise/" + case.id)
    gradient_error, coordinates = 0.0, 0
    names = (*case.grad_of, *case.target_grad_of)
    for name, grad, where in zip(names, grads, defined, strict=True):
        flat = rng.permutation(grad.size)[:COORDINATES]
        for k in flat:
            index = np.unravel_index(int(k), grad.shape)
            fd = precise_gradient(case, name, index) if where[index] else None
            if fd is None:
                continue
            coordinates += 1
            error, why = _scaled_error(grad[index], np.float64(fd))
            if error > gradient_error:
                gradient_error = error
                if error > 1.0:
                    detail = f"gradient of {name}{[int(k) for k in index]}: {why}"
    return ReferenceCheck(
        case=case.id,
        passed=value_error <= 1.0 and gradient_error <= 1.0,
        value_error=value_error,
        gradient_error=gradient_error,
        coordinates=coordinates,
        detail=detail,
    )


def sample_cases(cases: list[Case]) -> list[Case]:
    """The cases the mpmath check runs on: the first of each (variant, layout, range) group
    and every quick case."""
    seen: set[tuple[str, str, str]] = set()
    chosen = []
    for case in cases:
        group = (case.variant, case.layout, case.value_range)
        if group not in seen or case.quick:
            seen.add(group)
            chosen.append(case)
    return chosen
