"""Focal losses (Lin et al. 2017) over softmax and sigmoid, with their analytic backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import (
    NON_NEGATIVE,
    Hyperparameter,
    check_finite_number,
    check_reduction,
    is_number,
)
from ._class_targets import (
    as_weight_array,
    cast_weight,
    check_class_targets,
    check_class_weight,
    hyperparameter_in,
    label_smoothing_in,
    move_class_axis_back,
    nan_where,
    safe_weighted_log,
)
from ._elementwise_targets import check_elementwise_targets, smoothed_targets
from ._evaluate import CheckedValues, hyperparameter
from ._namespace import compute_dtype, namespace_of
from ._native import is_differentiable_spelling
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import class_index_mean_weight, evaluate_weighted
from ._sigmoid import sigmoid, sigmoid_cross_entropy_grad, sigmoid_cross_entropy_terms
from ._softmax import softmax_inputs
from ._types import ArrayT, Reduction


def gamma_in(xp: Any, gamma: Hyperparameter, like: Any, *, checked: bool) -> Any:
    """The focusing exponent ready for arithmetic with ``like`` (``_class_targets``'s
    ``hyperparameter_in``): NaN unless finite and non-negative."""
    return hyperparameter_in(xp, gamma, like, NON_NEGATIVE, checked=checked)


def _power_at_zero(xp: Any, base: Any, exponent: Hyperparameter, at_zero: Any) -> Any:
    """``base ** exponent`` with ``at_zero`` where ``base == 0``, the power taken of a safe base
    there (so that neither the value nor any autodiff derivative meets ``0 ** negative``)."""
    zero = base == 0
    return xp.where(zero, at_zero, xp.where(zero, xp.ones_like(base), base) ** exponent)


def _power_or_zero(xp: Any, base: Any, exponent: Hyperparameter) -> Any:
    """``base ** exponent``, but 0 where ``base == 0`` even for a negative exponent.

    It scales the derivative of the modulating factor, whose other factor vanishes faster
    wherever ``base`` (the probability of a miss) is exactly 0, so the product's limit is 0.
    """
    return _power_at_zero(xp, base, exponent, xp.zeros_like(base))


def modulating_factor(xp: Any, base: Any, exponent: Hyperparameter) -> Any:
    r""":math:`b^\gamma` for :math:`b \in [0, 1]`, whose autodiff derivatives are finite at
    :math:`b = 0` (there :math:`\gamma b^{\gamma - 1}` is :math:`0 \cdot \infty` for
    :math:`\gamma < 1`, and the focal loss's true derivative, a product with a factor that
    vanishes faster, is 0).

    A plain power outside ``differentiable_spelling``, where nothing differentiates it.
    """
    if not is_differentiable_spelling():
        return base**exponent
    if is_number(exponent):
        at_zero = xp.full_like(base, 1.0 if exponent == 0 else 0.0)  # 0 ** 0 = 1
    else:
        at_zero = xp.where(exponent == 0, xp.ones_like(base), xp.zeros_like(base))
    return _power_at_zero(xp, base, exponent, at_zero)


def balance_of(xp: Any, alpha: Hyperparameter | None, t: Any, *, checked: bool) -> Any | None:
    r""":math:`\alpha_t = \alpha t + (1 - \alpha)(1 - t)`, or None when ``alpha`` is None."""
    if alpha is None:
        return None
    a = hyperparameter_in(xp, alpha, t, NON_NEGATIVE, checked=checked)
    return a * t + (1.0 - a) * (1.0 - t)


@dataclass(frozen=True)
class SoftmaxFocalLoss(CheckedValues):
    r""":math:`\ell_i = -\sum_c \alpha_c a_{ic} (1 - p_{ic})^\gamma \log p_{ic}`, p = softmax(z).

    With :math:`g_c = \alpha_c a_c\,[\gamma p_c (1-p_c)^{\gamma-1} \log p_c - (1-p_c)^\gamma]`,
    :math:`\partial \ell / \partial z_j = g_j - p_j \sum_c g_c`.
    ``gamma`` and ``label_smoothing`` may be 0-d arrays (traced or differentiated).
    """

    axis: int = -1
    gamma: Hyperparameter = hyperparameter(2.0)
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"

    def check(
        self, xp: Any, logits: Any, targets: Any, alpha: Any, class_weight: Any, *, values: bool
    ) -> None:
        check_reduction(self.reduction)
        check_finite_number("gamma", self.gamma, minimum=0.0, xp=xp, values=values)
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
        gamma = gamma_in(xp, self.gamma, log_p, checked=self.values_checked)
        return inputs, a, log_p, one_minus_p, gamma

    def forward(
        self,
        xp: Any,
        logits: Any,
        targets: Any,
        alpha: Any | None = None,
        class_weight: Any | None = None,
    ) -> tuple[Any, tuple[Any, ...]]:
        inputs, a, log_p, one_minus_p, gamma = self._inputs(
            xp, logits, targets, alpha, class_weight
        )
        modulated = a * modulating_factor(xp, one_minus_p, gamma)
        losses = nan_where(
            xp, inputs.invalid, -xp.sum(safe_weighted_log(xp, modulated, log_p), axis=-1)
        )
        loss, denominator = reduce_losses(xp, losses, inputs.example_weight, self.reduction)
        return xp.astype(loss, logits.dtype), (logits, targets, alpha, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        logits, targets, alpha, class_weight, denominator = residuals
        inputs, a, log_p, one_minus_p, gamma = self._inputs(
            xp, logits, targets, alpha, class_weight
        )
        p = xp.exp(log_p)
        zero = xp.zeros_like(p)
        p_log_p = xp.where(p == 0, zero, p * log_p)
        slope = gamma * _power_or_zero(xp, one_minus_p, gamma - 1.0) * p_log_p
        g = a * (slope - one_minus_p**gamma)
        g = xp.where(a == 0, zero, g)
        grad = g - p * xp.sum(g, axis=-1, keepdims=True)
        dtype = p.dtype
        upstream = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        grad = nan_where(xp, inputs.invalid, grad * upstream[..., None])
        return xp.astype(move_class_axis_back(xp, grad, self.axis), logits.dtype, copy=False)


def softmax_focal_loss(
    logits: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    gamma: Hyperparameter = 2.0,
    alpha: Any | None = None,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Focal loss over ``softmax(logits)``: cross entropy down-weighted on easy examples.

    .. math::

        \ell_i = -\sum_c \alpha_c\, a_{ic}\, (1 - p_{ic})^\gamma \log p_{ic},
        \qquad p_i = \operatorname{softmax}(z_i)

    with the target weights :math:`a_{ic}` of :func:`softmax_cross_entropy` (Keras's
    ``CategoricalFocalCrossentropy`` on logits). ``gamma = 0`` and no ``alpha`` give
    :func:`softmax_cross_entropy`.

    Args:
        gamma: focusing exponent :math:`\gamma \ge 0`: a number, or a 0-d array (traced or
            differentiated; a traced value outside the range gives NaN).
        alpha: ``None`` (1), a number, or ``(C,)`` per-class balancing weights; unlike
            ``class_weight`` it does not enter the denominator of ``"mean"``. An array input:
            differentiable where the framework's autodiff differentiates the loss.
        logits, targets, axis, class_weight, ignore_index, label_smoothing, reduction,
            sample_weight, where, validate: as in :func:`softmax_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.softmax_focal_loss(np.array([[0.0, 0.0]]), np.array([0]), gamma=2.0))
    0.1732867...
    """
    xp = namespace_of(logits, targets, names=("logits", "targets"))
    op = SoftmaxFocalLoss(
        axis=axis,
        gamma=gamma,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    alpha_array = as_weight_array(xp, alpha, logits)
    weight = as_weight_array(xp, class_weight, logits)
    return evaluate_weighted(
        op,
        logits,
        targets,
        alpha_array,
        weight,
        prediction=logits,
        validate=validate,
        sample_weight=sample_weight,
        where=where,
        mean_weight=class_index_mean_weight(logits, targets, weight, axis, ignore_index),
    )


@dataclass(frozen=True)
class SigmoidFocalLoss(CheckedValues):
    r""":math:`\ell = \alpha_t\, \mathrm{ce}(x, t)\, m^\gamma` with the miss probability
    :math:`m = t\sigma(-x) + (1-t)\sigma(x)`.

    .. math::

        \frac{\partial \ell}{\partial x} = \alpha_t \big[(\sigma(x) - t)\, m^\gamma
            + \gamma\, \mathrm{ce}\, m^{\gamma-1} (1 - 2t)\, \sigma(x) \sigma(-x)\big]

    ``gamma``, ``alpha`` and ``label_smoothing`` may be 0-d arrays (traced or differentiated).
    """

    gamma: Hyperparameter = hyperparameter(2.0)
    alpha: Hyperparameter | None = hyperparameter(None)
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"

    def check(self, xp: Any, logits: Any, targets: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_finite_number("gamma", self.gamma, minimum=0.0, xp=xp, values=values)
        if self.alpha is not None:
            check_finite_number("alpha", self.alpha, minimum=0.0, xp=xp, values=values)
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
        checked = self.values_checked
        eps = label_smoothing_in(xp, self.label_smoothing, x, checked=checked)
        t = smoothed_targets(xp, targets, eps, dtype, checked=checked)
        miss = t * sigmoid(xp, -x) + (1.0 - t) * sigmoid(xp, x)
        balance = balance_of(xp, self.alpha, t, checked=checked)
        return x, t, miss, balance, gamma_in(xp, self.gamma, x, checked=checked)

    def forward(self, xp: Any, logits: Any, targets: Any) -> tuple[Any, tuple[Any, ...]]:
        x, t, miss, balance, gamma = self._parts(xp, logits, targets)
        losses = sigmoid_cross_entropy_terms(xp, x, t, None) * modulating_factor(xp, miss, gamma)
        if balance is not None:
            losses = losses * balance
        loss, denominator = reduce_losses(xp, losses, None, self.reduction)
        return xp.astype(loss, logits.dtype), (logits, targets, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        logits, targets, denominator = residuals
        x, t, miss, balance, gamma = self._parts(xp, logits, targets)
        ce = sigmoid_cross_entropy_terms(xp, x, t, None)
        slope = (1.0 - 2.0 * t) * sigmoid(xp, x) * sigmoid(xp, -x)
        grad = sigmoid_cross_entropy_grad(xp, x, t, None) * miss**gamma
        grad = grad + gamma * ce * _power_or_zero(xp, miss, gamma - 1.0) * slope
        if balance is not None:
            grad = grad * balance
        grad = grad * reduce_backward(
            xp, xp.astype(cotangent, x.dtype), denominator, self.reduction
        )
        return xp.astype(grad, logits.dtype, copy=False)


def sigmoid_focal_loss(
    logits: ArrayT,
    targets: Any,
    *,
    gamma: Hyperparameter = 2.0,
    alpha: Hyperparameter | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
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
            ``gamma``, ``alpha`` and ``label_smoothing`` may be 0-d arrays (traced or
            differentiated), as in :func:`softmax_cross_entropy`.
        logits, targets, label_smoothing, reduction, sample_weight, where, validate: as in
            :func:`sigmoid_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.sigmoid_focal_loss(np.array([0.0]), np.array([1.0])))
    0.1732867...
    """
    namespace_of(logits, targets, names=("logits", "targets"))  # fail early on mixed types
    op = SigmoidFocalLoss(
        gamma=gamma, alpha=alpha, label_smoothing=label_smoothing, reduction=reduction
    )
    return evaluate_weighted(
        op,
        logits,
        targets,
        prediction=logits,
        validate=validate,
        sample_weight=sample_weight,
        where=where,
    )
