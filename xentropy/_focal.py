"""Focal losses (Lin et al. 2017) over softmax and sigmoid, with their analytic backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import check_finite_number, check_reduction
from ._class_targets import (
    as_weight_array,
    cast_weight,
    check_class_targets,
    check_class_weight,
    move_class_axis_back,
    nan_where,
    safe_weighted_log,
)
from ._elementwise_targets import check_elementwise_targets, smoothed_targets
from ._evaluate import CheckedValues, evaluate
from ._namespace import compute_dtype, namespace_of
from ._reduction import reduce_backward, reduce_losses
from ._sigmoid import sigmoid, sigmoid_cross_entropy_grad, sigmoid_cross_entropy_terms
from ._softmax import softmax_inputs


def _power_or_zero(xp: Any, base: Any, exponent: float) -> Any:
    """``base ** exponent``, but 0 where ``base == 0`` even for a negative exponent.

    It scales the derivative of the modulating factor, whose other factor vanishes faster
    wherever ``base`` (the probability of a miss) is exactly 0, so the product's limit is 0.
    """
    zero = base == 0
    return xp.where(zero, xp.zeros_like(base), xp.where(zero, xp.ones_like(base), base) ** exponent)


@dataclass(frozen=True)
class SoftmaxFocalLoss(CheckedValues):
    r""":math:`\ell_i = -\sum_c \alpha_c a_{ic} (1 - p_{ic})^\gamma \log p_{ic}`, p = softmax(z).

    With :math:`g_c = \alpha_c a_c\,[\gamma p_c (1-p_c)^{\gamma-1} \log p_c - (1-p_c)^\gamma]`,
    :math:`\partial \ell / \partial z_j = g_j - p_j \sum_c g_c`.
    """

    axis: int = -1
    gamma: float = 2.0
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    reduction: str = "mean"

    def check(
        self, xp: Any, logits: Any, targets: Any, alpha: Any, class_weight: Any, *, values: bool
    ) -> None:
        check_reduction(self.reduction)
        check_finite_number("gamma", self.gamma, minimum=0.0)
        check_class_targets(
            xp,
            logits,
            targets,
            prediction_name="logits",
            axis=self.axis,
            class_weight=class_weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            values=values,
        )
        if alpha is not None and alpha.ndim > 0:
            check_class_weight(xp, alpha, logits.shape[self.axis], values=values, name="alpha")

    def _inputs(self, xp: Any, logits: Any, targets: Any, alpha: Any, class_weight: Any) -> Any:
        inputs = softmax_inputs(
            xp,
            logits,
            targets,
            class_weight,
            axis=self.axis,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            checked=self.values_checked,
        )
        a = (
            inputs.a
            if alpha is None
            else inputs.a * cast_weight(xp, alpha, inputs.a.dtype, checked=self.values_checked)
        )
        log_p = inputs.log_p
        one_minus_p = -xp.expm1(log_p)
        return inputs, a, log_p, one_minus_p

    def forward(
        self,
        xp: Any,
        logits: Any,
        targets: Any,
        alpha: Any | None = None,
        class_weight: Any | None = None,
    ) -> tuple[Any, tuple[Any, ...]]:
        inputs, a, log_p, one_minus_p = self._inputs(xp, logits, targets, alpha, class_weight)
        modulated = a * one_minus_p**self.gamma
        losses = nan_where(
            xp, inputs.invalid, -xp.sum(safe_weighted_log(xp, modulated, log_p), axis=-1)
        )
        loss, denominator = reduce_losses(xp, losses, inputs.example_weight, self.reduction)
        return xp.astype(loss, logits.dtype), (logits, targets, alpha, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        logits, targets, alpha, class_weight, denominator = residuals
        inputs, a, log_p, one_minus_p = self._inputs(xp, logits, targets, alpha, class_weight)
        p = xp.exp(log_p)
        zero = xp.zeros_like(p)
        p_log_p = xp.where(p == 0, zero, p * log_p)
        slope = self.gamma * _power_or_zero(xp, one_minus_p, self.gamma - 1.0) * p_log_p
        g = a * (slope - one_minus_p**self.gamma)
        g = xp.where(a == 0, zero, g)
        grad = g - p * xp.sum(g, axis=-1, keepdims=True)
        dtype = p.dtype
        upstream = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        grad = nan_where(xp, inputs.invalid, grad * upstream[..., None])
        return xp.astype(move_class_axis_back(xp, grad, self.axis), logits.dtype, copy=False)


def softmax_focal_loss(
    logits: Any,
    targets: Any,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: Any | None = None,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Any:
    r"""Focal loss over ``softmax(logits)``: cross entropy down-weighted on easy examples.

    .. math::

        \ell_i = -\sum_c \alpha_c\, a_{ic}\, (1 - p_{ic})^\gamma \log p_{ic},
        \qquad p_i = \operatorname{softmax}(z_i)

    with the target weights :math:`a_{ic}` of :func:`softmax_cross_entropy` (Keras's
    ``CategoricalFocalCrossentropy`` on logits). ``gamma = 0`` and no ``alpha`` give
    :func:`softmax_cross_entropy`.

    Args:
        gamma: focusing exponent :math:`\gamma \ge 0`.
        alpha: ``None`` (1), a number, or ``(C,)`` per-class balancing weights; unlike
            ``class_weight`` it does not enter the denominator of ``"mean"``.
        logits, targets, axis, class_weight, ignore_index, label_smoothing, reduction, validate:
            as in :func:`softmax_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.softmax_focal_loss(np.array([[0.0, 0.0]]), np.array([0]), gamma=2.0))
    0.1732867...
    """
    xp = namespace_of(logits, targets)
    op = SoftmaxFocalLoss(
        axis=axis,
        gamma=gamma,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    alpha_array = as_weight_array(xp, alpha, logits)
    weight = as_weight_array(xp, class_weight, logits)
    return evaluate(op, logits, targets, alpha_array, weight, prediction=logits, validate=validate)


@dataclass(frozen=True)
class SigmoidFocalLoss(CheckedValues):
    r""":math:`\ell = \alpha_t\, \mathrm{ce}(x, t)\, m^\gamma` with the miss probability
    :math:`m = t\sigma(-x) + (1-t)\sigma(x)`.

    .. math::

        \frac{\partial \ell}{\partial x} = \alpha_t \big[(\sigma(x) - t)\, m^\gamma
            + \gamma\, \mathrm{ce}\, m^{\gamma-1} (1 - 2t)\, \sigma(x) \sigma(-x)\big]
    """

    gamma: float = 2.0
    alpha: float | None = None
    label_smoothing: float = 0.0
    reduction: str = "mean"

    def check(self, xp: Any, logits: Any, targets: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_finite_number("gamma", self.gamma, minimum=0.0)
        if self.alpha is not None:
            check_finite_number("alpha", self.alpha, minimum=0.0)
        check_elementwise_targets(
            xp,
            logits,
            targets,
            prediction_name="logits",
            label_smoothing=self.label_smoothing,
            weights={},
            values=values,
        )

    def _parts(self, xp: Any, logits: Any, targets: Any) -> tuple[Any, ...]:
        dtype = compute_dtype(xp, logits.dtype)
        x = xp.astype(logits, dtype, copy=False)
        t = smoothed_targets(xp, targets, self.label_smoothing, dtype, checked=self.values_checked)
        miss = t * sigmoid(xp, -x) + (1.0 - t) * sigmoid(xp, x)
        balance = None if self.alpha is None else self.alpha * t + (1.0 - self.alpha) * (1.0 - t)
        return x, t, miss, balance

    def forward(self, xp: Any, logits: Any, targets: Any) -> tuple[Any, tuple[Any, ...]]:
        x, t, miss, balance = self._parts(xp, logits, targets)
        losses = sigmoid_cross_entropy_terms(xp, x, t, None) * miss**self.gamma
        if balance is not None:
            losses = losses * balance
        loss, denominator = reduce_losses(xp, losses, None, self.reduction)
        return xp.astype(loss, logits.dtype), (logits, targets, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        logits, targets, denominator = residuals
        x, t, miss, balance = self._parts(xp, logits, targets)
        ce = sigmoid_cross_entropy_terms(xp, x, t, None)
        slope = (1.0 - 2.0 * t) * sigmoid(xp, x) * sigmoid(xp, -x)
        grad = sigmoid_cross_entropy_grad(xp, x, t, None) * miss**self.gamma
        grad = grad + self.gamma * ce * _power_or_zero(xp, miss, self.gamma - 1.0) * slope
        if balance is not None:
            grad = grad * balance
        grad = grad * reduce_backward(
            xp, xp.astype(cotangent, x.dtype), denominator, self.reduction
        )
        return xp.astype(grad, logits.dtype, copy=False)


def sigmoid_focal_loss(
    logits: Any,
    targets: Any,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Any:
    r"""Focal loss over ``sigmoid(logits)`` (Lin et al. 2017; optax's ``sigmoid_focal_loss``).

    .. math::

        \ell = \alpha_t\, \mathrm{ce}(x, t)\, (1 - p_t)^\gamma, \qquad
        p_t = t\,\sigma(x) + (1-t)(1-\sigma(x)), \qquad
        \alpha_t = \alpha t + (1-\alpha)(1-t)

    where :math:`\mathrm{ce}` is :func:`sigmoid_cross_entropy` element-wise and
    :math:`\alpha_t = 1` when ``alpha`` is None.

    Args:
        gamma: focusing exponent :math:`\gamma \ge 0`.
        alpha: weight of the positive class in [0, 1], or None for no balancing.
        logits, targets, label_smoothing, reduction, validate: as in
            :func:`sigmoid_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.sigmoid_focal_loss(np.array([0.0]), np.array([1.0])))
    0.1732867...
    """
    namespace_of(logits, targets)  # fail early on mixed array types
    op = SigmoidFocalLoss(
        gamma=gamma, alpha=alpha, label_smoothing=label_smoothing, reduction=reduction
    )
    return evaluate(op, logits, targets, prediction=logits, validate=validate)
