r"""Kullback-Leibler divergence term by term, of a prediction given in log space (or clipped).

With :math:`\ell = \log q` the log-probabilities of the prediction and :math:`p` the target
(given as probabilities, or as :math:`\log p` with ``log_target``), each element contributes

.. math::

    d = p\,(\log p - \ell) \;\big[+\; e^{\ell} - p\big]_{\text{generalized}}

with :math:`0 \log 0 = 0`: a zero target contributes nothing, whatever its prediction (a
``-inf`` log-probability included; a NaN still propagates). The bracket makes it the
generalized KL divergence of unnormalised measures (the Bregman divergence of
:math:`x \log x - x`). The terms are returned as they are (PyTorch's ``kl_div``), or summed
along ``axis`` (optax's ``kl_divergence``), then reduced. Keras's ``kl_divergence`` takes the
prediction as probabilities and clips both sides into :math:`[\epsilon, 1]` first
(``probability_clip``):

.. math::

    d = \hat p\,(\log \hat p - \log \hat q), \qquad
    \hat p = \operatorname{clip}(p, \epsilon, 1),\; \hat q = \operatorname{clip}(q, \epsilon, 1)

Derivatives. By the prediction: :math:`-p` (:math:`+ e^{\ell}` generalized), or
:math:`-\hat p / \hat q` where the clip passes (0 where it is active). By a probability target
:math:`p > 0`: :math:`\log p + 1 - \ell` (:math:`-1` generalized); at :math:`p = 0` the
one-sided derivative is :math:`-\infty`, and the derivative of :math:`p \log p` is taken as 0
there, as in ``xentropy.kl_divergence`` (so :math:`-\ell`, or 0 under a ``-inf`` prediction).
By a log target: :math:`p\,(\log p - \ell + 1)`, 0 at :math:`\log p = -\infty` (its limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import (
    REDUCTIONS,
    check_floating,
    check_range,
    check_same_shape,
    normalize_axis,
)
from ._class_targets import nan_outside
from ._evaluate import CheckedValues, evaluate
from ._namespace import compute_dtype, namespace_of
from ._reduction import reduce_backward, reduce_losses
from ._types import ArrayT, KLReduction

# PyTorch's reduction for KL divergence: the sum divided by the size of the first dimension
BATCHMEAN = "batchmean"


@dataclass(frozen=True)
class PointwiseKLDivergence(CheckedValues):
    r"""KL divergence terms :math:`p (\log p - \log q)` of ``(prediction, targets, where)``.

    Attributes:
        axis: None: one loss per element; an int: the terms summed along that axis.
        log_target: the targets are :math:`\log p` (else :math:`p \ge 0`).
        generalized: add :math:`e^{\ell} - p` (optax's ``convex_kl_divergence``).
        probability_clip: None: the prediction is :math:`\log q`. A number :math:`\epsilon`:
            the prediction is :math:`q`, and both sides lie in [0, 1] and are clipped into
            :math:`[\epsilon, 1]` (Keras); not with ``log_target`` or ``generalized``.
        reduction: one of the core's reductions, or ``"batchmean"`` (the sum divided by the
            prediction's first dimension; the sum for a 0-d prediction).
        prediction_name, target_name: the caller's argument names, for error messages.

    ``where`` (optional, bool, the prediction's shape) keeps the entries that count; the others
    contribute 0 and get zero derivatives, whatever they hold.
    """

    axis: int | None = None
    log_target: bool = False
    generalized: bool = False
    probability_clip: float | None = None
    reduction: str = "none"
    prediction_name: str = "log_predictions"
    target_name: str = "targets"

    def check(
        self, xp: Any, prediction: Any, targets: Any, where: Any = None, *, values: bool
    ) -> None:
        if self.reduction != BATCHMEAN and self.reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {(*REDUCTIONS, BATCHMEAN)}; got {self.reduction!r}"
            )
        clip = self.probability_clip
        if clip is not None:
            if self.log_target or self.generalized:
                raise ValueError(
                    "probability_clip is for predictions given as probabilities: it takes "
                    "neither log_target nor generalized"
                )
            if not 0.0 < clip < 1.0:
                raise ValueError(f"probability_clip must lie in (0, 1); got {clip!r}")
        check_floating(xp, prediction, self.prediction_name)
        if self.log_target:
            check_floating(xp, targets, self.target_name)
        elif xp.isdtype(targets.dtype, "complex floating"):
            raise TypeError(f"{self.target_name} must be real; got dtype {targets.dtype}")
        shape = tuple(prediction.shape)
        check_same_shape(
            self.target_name, targets, shape, f"it must have the shape of {self.prediction_name}"
        )
        if self.axis is not None:
            normalize_axis(self.axis, prediction.ndim)
        if self.reduction == BATCHMEAN and prediction.ndim and shape[0] is None:
            raise ValueError("reduction='batchmean' needs a known size of the first dimension")
        if where is not None:
            if not xp.isdtype(where.dtype, "bool"):
                raise TypeError(f"where must be a bool array; got dtype {where.dtype}")
            check_same_shape(
                "where", where, shape, f"it must have the shape of {self.prediction_name}"
            )
        if values:
            self._check_values(xp, prediction, targets, where)

    def _check_values(self, xp: Any, prediction: Any, targets: Any, where: Any) -> None:
        if self.log_target:
            return
        high = None if self.probability_clip is None else 1.0
        if where is not None:  # masked-out entries may hold anything
            targets = xp.where(where, targets, xp.zeros_like(targets))
        check_range(xp, targets, self.target_name, low=0.0, high=high)
        if self.probability_clip is not None:
            if where is not None:
                prediction = xp.where(where, prediction, xp.zeros_like(prediction))
            check_range(xp, prediction, self.prediction_name, low=0.0, high=1.0)

    # --- the terms ------------------------------------------------------------------------

    def _kept(self, xp: Any, x: Any, where: Any, fill: float) -> Any:
        return x if where is None else xp.where(where, x, xp.full_like(x, fill))

    def _target(self, xp: Any, targets: Any, where: Any, dtype: Any) -> tuple[Any, Any]:
        r"""(:math:`p`, :math:`\log p` with :math:`\log 0 = 0`): the factor and the log of each
        term (a zero target's term is then :math:`0 \cdot (0 - \ell)`)."""
        fill = -float("inf") if self.log_target else 0.0  # a masked-out entry has p = 0
        t = self._kept(xp, xp.astype(targets, dtype, copy=False), where, fill)
        if self.log_target:
            p = xp.exp(t)
            return p, xp.where(t == -float("inf"), xp.zeros_like(t), t)
        high = None if self.probability_clip is None else 1.0
        p = nan_outside(xp, t, 0.0, high, checked=self.values_checked)
        if self.probability_clip is not None:
            p = _clip(xp, p, self.probability_clip)
            return p, xp.log(p)
        return p, xp.log(xp.where(p == 0, xp.ones_like(p), p))

    def _log_prediction(self, xp: Any, prediction: Any, where: Any, dtype: Any) -> Any:
        x = self._kept(xp, xp.astype(prediction, dtype, copy=False), where, 0.0)
        if self.probability_clip is None:
            return x
        x = nan_outside(xp, x, 0.0, 1.0, checked=self.values_checked)
        return xp.log(_clip(xp, x, self.probability_clip))

    def _terms(self, xp: Any, prediction: Any, targets: Any, where: Any) -> Any:
        dtype = compute_dtype(xp, prediction.dtype)
        p, log_p = self._target(xp, targets, where, dtype)
        log_q = self._log_prediction(xp, prediction, where, dtype)
        # 0 * (0 - (-inf)) is NaN: a zero target's term is 0 whatever it predicts
        log_q_safe = xp.where((p == 0) & (log_q == -float("inf")), xp.zeros_like(log_q), log_q)
        terms = p * (log_p - log_q_safe)
        if self.generalized:
            terms = terms + (xp.exp(log_q) - p)
        if where is not None:
            terms = xp.where(where, terms, xp.zeros_like(terms))
        return terms

    # --- the operator -----------------------------------------------------------------------

    def forward(
        self, xp: Any, prediction: Any, targets: Any, where: Any = None
    ) -> tuple[Any, tuple[Any, ...]]:
        losses = self._terms(xp, prediction, targets, where)
        if self.axis is not None:
            losses = xp.sum(losses, axis=self.axis)
        loss, denominator = self._reduce(xp, losses, prediction)
        return xp.astype(loss, prediction.dtype), (prediction, targets, where, denominator)

    def _reduction_of(self, prediction: Any) -> str:
        """The core reduction that ``batchmean`` is for this prediction (``"sum"`` for 0-d)."""
        if self.reduction != BATCHMEAN:
            return self.reduction
        return "sum" if prediction.ndim == 0 else "mean"

    def _reduce(self, xp: Any, losses: Any, prediction: Any) -> tuple[Any, Any]:
        reduction = self._reduction_of(prediction)
        if self.reduction != BATCHMEAN or reduction == "sum" or prediction.shape[0] == 0:
            # an empty batch: the core's mean over nothing, NaN with a zero gradient
            return reduce_losses(xp, losses, None, reduction)
        batch = int(prediction.shape[0])
        total, _ = reduce_losses(xp, losses, None, "sum")
        return total / batch, batch

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        prediction, targets, where, denominator = residuals
        dtype = compute_dtype(xp, prediction.dtype)
        p, _ = self._target(xp, targets, where, dtype)
        if self.probability_clip is None:
            grad = -p
            if self.generalized:
                grad = grad + xp.exp(self._log_prediction(xp, prediction, where, dtype))
        else:
            q = self._kept(xp, xp.astype(prediction, dtype, copy=False), where, 1.0)
            q = nan_outside(xp, q, 0.0, 1.0, checked=self.values_checked)
            passes = (q >= self.probability_clip) & (q <= 1.0)
            clipped = _clip(xp, q, self.probability_clip)
            grad = xp.where(passes, -p / clipped, xp.zeros_like(q))
            grad = xp.where(xp.isnan(q), q, grad)  # NaN where the value check would raise
        if where is not None:
            grad = xp.where(where, grad, xp.zeros_like(grad))
        upstream = reduce_backward(
            xp, xp.astype(cotangent, dtype), denominator, self._reduction_of(prediction)
        )
        if self.axis is not None and upstream.ndim:  # one cotangent per row: along the axis
            upstream = xp.expand_dims(upstream, axis=self.axis % prediction.ndim)
        return xp.astype(grad * upstream, prediction.dtype, copy=False)


def _clip(xp: Any, x: Any, low: float) -> Any:
    """``clip(x, low, 1)`` whose derivative is 1 on the closed interval, 0 outside (NaN stays)."""
    low_value = xp.full_like(x, low)
    return xp.where(x < low, low_value, xp.where(x > 1.0, xp.ones_like(x), x))


def kl_div_log(
    log_predictions: ArrayT,
    targets: Any,
    *,
    axis: int | None = None,
    log_target: bool = False,
    generalized: bool = False,
    reduction: KLReduction = "none",
    validate: bool = True,
) -> ArrayT:
    r"""KL divergence of predictions given as log-probabilities, term by term or along ``axis``.

    .. math::

        d = p\,(\log p - \ell) \;\big[+\; e^{\ell} - p\big]_{\text{generalized}},
        \qquad \ell = \log q

    with :math:`0 \log 0 = 0`. This is ``torch.nn.functional.kl_div`` (``axis=None``: no sum)
    and, with ``axis``, optax's ``kl_divergence``, ``kl_divergence_with_log_targets`` and
    ``convex_kl_divergence``.

    Args:
        log_predictions: :math:`\log q`, real floating, any shape (``-inf`` allowed).
        targets: :math:`p \ge 0` (bool and integer are cast), or :math:`\log p` with
            ``log_target``; the shape of ``log_predictions`` exactly.
        axis: None for one value per element; an int to sum the terms along it.
        log_target: ``targets`` hold :math:`\log p`.
        generalized: add :math:`e^{\ell} - p` (the KL divergence of unnormalised measures).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (over the per-element or per-``axis``
            values), ``"sum_over_batch_size"``, or ``"batchmean"`` (the sum divided by the size of
            the first dimension, PyTorch's).
        validate: check on eager arrays that probability targets are non-negative.

    >>> import numpy as np, xentropy._divergence as d
    >>> float(d.kl_div_log(np.log(np.array([0.5, 0.5])), np.array([1.0, 0.0]), axis=-1))
    0.6931471...
    """
    namespace_of(log_predictions, targets, names=("log_predictions", "targets"))
    op = PointwiseKLDivergence(
        axis=axis, log_target=log_target, generalized=generalized, reduction=reduction
    )
    return evaluate(
        op, log_predictions, targets, None, prediction=log_predictions, validate=validate
    )
