"""Binary cross entropy from probabilities, with its analytic backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._categorical import check_epsilon, clip_probabilities
from ._checks import (
    NOT_NAN,
    Hyperparameter,
    check_in_domain,
    check_range,
    check_reduction,
    is_number,
)
from ._class_targets import (
    cast_weight,
    hyperparameter_parts,
    label_smoothing_in,
    nan_outside,
    safe_weighted_log,
)
from ._elementwise_targets import (
    as_broadcast_weight,
    check_elementwise_targets,
    smoothed_targets,
)
from ._evaluate import CheckedValues, hyperparameter
from ._namespace import compute_dtype, namespace_of
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import evaluate_weighted
from ._types import ArrayT, Reduction


@dataclass(frozen=True)
class BinaryCrossEntropy(CheckedValues):
    r"""Element-wise :math:`-[t \log p + (1-t) \log(1-p)]` of probabilities :math:`p`.

    Both logs are taken of the clipped probability and optionally floored (PyTorch floors at
    -100); the gradient :math:`-t/p + (1-t)/(1-p)` is zero wherever the clip or the floor is active.
    ``label_smoothing``, ``epsilon`` and ``log_floor`` may be 0-d arrays (see ``_evaluate``).
    """

    label_smoothing: Hyperparameter = hyperparameter(0.0)
    epsilon: Hyperparameter | None = hyperparameter(1e-7)
    log_floor: Hyperparameter | None = hyperparameter(None)
    reduction: str = "mean"

    def check(self, xp: Any, probs: Any, targets: Any, class_weight: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_epsilon(self.epsilon, xp=xp, values=values)
        if self.log_floor is not None:
            check_in_domain(xp, "log_floor", self.log_floor, NOT_NAN, "a number", values=values)
        check_elementwise_targets(
            xp,
            probs,
            targets,
            prediction_name="probs",
            label_smoothing=self.label_smoothing,
            weights={"class_weight": class_weight},
            values=values,
        )
        if values:
            check_range(xp, probs, "probs", low=0.0, high=1.0)

    def _logs(self, xp: Any, probs: Any) -> tuple[Any, Any, Any, Any | None]:
        dtype = compute_dtype(xp, probs.dtype)
        p = nan_outside(
            xp, xp.astype(probs, dtype, copy=False), 0.0, 1.0, checked=self.values_checked
        )
        p, passes = clip_probabilities(xp, p, self.epsilon, checked=self.values_checked)
        return p, xp.log(p), xp.log1p(-p), passes

    def _log_floor(self, xp: Any, like: Any) -> tuple[Any, Any | None]:
        return hyperparameter_parts(xp, self.log_floor, like, NOT_NAN, checked=self.values_checked)

    def _targets(self, xp: Any, targets: Any, p: Any) -> Any:
        eps = label_smoothing_in(xp, self.label_smoothing, p, checked=self.values_checked)
        return smoothed_targets(xp, targets, eps, p.dtype, checked=self.values_checked)

    def forward(
        self, xp: Any, probs: Any, targets: Any, class_weight: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        p, log_p, log_q, _ = self._logs(xp, probs)
        if self.log_floor is not None:
            floor, factor = self._log_floor(xp, log_p)
            if is_number(floor):
                floor = xp.full_like(log_p, floor)
            log_p = xp.maximum(log_p, floor)
            log_q = xp.maximum(log_q, floor)
            if factor is not None:  # NaN for a bad traced floor, also in the gradient
                log_p, log_q = log_p * factor, log_q * factor
        t = self._targets(xp, targets, p)
        losses = -(safe_weighted_log(xp, t, log_p) + safe_weighted_log(xp, 1.0 - t, log_q))
        if class_weight is not None:
            losses = losses * cast_weight(xp, class_weight, p.dtype, checked=self.values_checked)
        loss, denominator = reduce_losses(xp, losses, None, self.reduction)
        return xp.astype(loss, probs.dtype), (probs, targets, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        probs, targets, class_weight, denominator = residuals
        p, log_p, log_q, passes = self._logs(xp, probs)
        t = self._targets(xp, targets, p)
        zero = xp.zeros_like(p)
        d_log_p = xp.where(t == 0, zero, -t / xp.where(p == 0, xp.ones_like(p), p))
        d_log_q = xp.where(t == 1, zero, (1.0 - t) / xp.where(p == 1, xp.ones_like(p), 1.0 - p))
        d_log_p = xp.where(p == 0, xp.where(t == 0, zero, -xp.full_like(p, float("inf"))), d_log_p)
        d_log_q = xp.where(p == 1, xp.where(t == 1, zero, xp.full_like(p, float("inf"))), d_log_q)
        if self.log_floor is not None:
            floor, _ = self._log_floor(xp, log_p)
            d_log_p = xp.where(log_p < floor, zero, d_log_p)
            d_log_q = xp.where(log_q < floor, zero, d_log_q)
        grad = d_log_p + d_log_q
        if passes is not None:
            grad = xp.where(passes, grad, zero)
        if class_weight is not None:
            grad = grad * cast_weight(xp, class_weight, p.dtype, checked=self.values_checked)
        grad = grad * reduce_backward(
            xp, xp.astype(cotangent, p.dtype), denominator, self.reduction
        )
        return xp.astype(grad, probs.dtype, copy=False)


def binary_cross_entropy(
    probs: ArrayT,
    targets: Any,
    *,
    class_weight: Any | None = None,
    label_smoothing: Hyperparameter = 0.0,
    epsilon: Hyperparameter | None = 1e-7,
    log_floor: Hyperparameter | None = None,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Binary cross entropy of probabilities against targets in [0, 1].

    .. math::

        \ell = -w \big[t \log \hat p + (1 - t) \log(1 - \hat p)\big], \qquad
        \hat p = \operatorname{clip}(p, \epsilon, 1 - \epsilon)

    Prefer :func:`sigmoid_cross_entropy` on logits: it is exact where this one must clip.

    Args:
        probs: probabilities in [0, 1], any shape.
        targets: the same shape exactly; values in [0, 1] (bool and integer are cast).
        class_weight: weight of each element's loss, broadcast against ``probs``.
        label_smoothing: :math:`\varepsilon`, targets become :math:`t(1-\varepsilon)+\varepsilon/2`.
        epsilon: clip into ``[epsilon, 1 - epsilon]`` (Keras's ``1e-7`` by default; ``None`` or
            0: no clip). The gradient is 0 where the clip is active.
        log_floor: clamp each log below at this value (PyTorch: ``-100`` with ``epsilon=None``).
            ``label_smoothing``, ``epsilon`` and ``log_floor`` may be 0-d arrays (traced or
            differentiated), as in :func:`softmax_cross_entropy`.
        reduction, sample_weight, where, validate: as in :func:`sigmoid_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.binary_cross_entropy(np.array([0.5]), np.array([1.0])))
    0.6931471...
    """
    xp = namespace_of(probs, targets, names=("probs", "targets"))
    op = BinaryCrossEntropy(
        label_smoothing=label_smoothing, epsilon=epsilon, log_floor=log_floor, reduction=reduction
    )
    w = as_broadcast_weight(xp, class_weight, probs)
    return evaluate_weighted(
        op,
        probs,
        targets,
        w,
        prediction=probs,
        validate=validate,
        sample_weight=sample_weight,
        where=where,
    )
