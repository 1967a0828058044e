r"""Focal losses of given probabilities (clipped like Keras), with their analytic backward.

The focal losses of :mod:`._focal` take logits and are exact. Keras's
``CategoricalFocalCrossentropy`` and ``BinaryFocalCrossentropy`` with ``from_logits=False`` take
probabilities, renormalise (categorical) and clip them into ``[epsilon, 1 - epsilon]`` before
the log; these operators are that computation, so that the Keras adapter needs no numerics of
its own. Prefer the logit forms: they need no clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._categorical import check_epsilon, clip_probabilities, prepare_probabilities
from ._checks import (
    Hyperparameter,
    check_finite_number,
    check_range,
    check_reduction,
    may_be_nonzero,
)
from ._class_targets import (
    cast_weight,
    check_class_targets,
    check_class_weight,
    gathered_weight,
    label_smoothing_in,
    move_class_axis_back,
    nan_outside,
    nan_where,
    safe_weighted_log,
    xlogy,
)
from ._elementwise_targets import check_elementwise_targets, smoothed_targets
from ._evaluate import CheckedValues, hyperparameter
from ._focal import _power_or_zero, balance_of, gamma_in, modulating_factor
from ._namespace import compute_dtype
from ._reduction import reduce_backward, reduce_losses


@dataclass(frozen=True)
class CategoricalFocalLoss(CheckedValues):
    r"""Focal loss of class probabilities :math:`q` (Keras's ``CategoricalFocalCrossentropy``).

    .. math::

        \ell_i = -\sum_c \alpha_c\, a_{ic}\, (1 - \tilde q_{ic})^\gamma \log \tilde q_{ic},
        \qquad \tilde q_i = \operatorname{clip}(\hat q_i, \epsilon, 1 - \epsilon),
        \qquad \hat q_i = q_i / \textstyle\sum_c q_{ic} \text{ if normalize else } q_i

    with the target weights :math:`a_{ic}` of ``softmax_cross_entropy`` (class indices or class
    probabilities, label smoothing, class weights) and :math:`\alpha` ``None`` (1), a 0-d array
    or a ``(C,)`` array. Keras computes ``normalize=True, epsilon=1e-7``. With
    :math:`g_c = \alpha_c a_c [\gamma (1-\tilde q_c)^{\gamma-1} \log \tilde q_c
    - (1-\tilde q_c)^\gamma / \tilde q_c]` (0 where the clip is active),
    :math:`\partial \ell / \partial q_j = (g_j - \sum_c g_c \hat q_c) / \sum_c q_c` when
    normalising, else :math:`g_j`. ``gamma = 0`` gives ``CategoricalCrossEntropy``.
    ``gamma``, ``label_smoothing`` and ``epsilon`` may be 0-d arrays (traced or differentiated).

    Arrays: ``forward(xp, probs, targets, alpha=None, class_weight=None)``.
    """

    axis: int = -1
    gamma: Hyperparameter = hyperparameter(2.0)
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    epsilon: Hyperparameter | None = hyperparameter(1e-7)
    normalize: bool = False
    reduction: str = "mean"

    def check(
        self, xp: Any, probs: Any, targets: Any, alpha: Any, class_weight: Any, *, values: bool
    ) -> None:
        check_reduction(self.reduction)
        check_epsilon(self.epsilon, xp=xp, values=values)
        check_finite_number("gamma", self.gamma, minimum=0.0, xp=xp, values=values)
        check_class_targets(
            xp,
            probs,
            targets,
            prediction_name="probs",
            axis=self.axis,
            class_weight=class_weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            values=values,
        )
        if alpha is not None and alpha.ndim > 0:
            check_class_weight(xp, alpha, probs.shape[self.axis], values=values, name="alpha")
        if values:
            check_range(xp, probs, "probs", low=0.0, high=None if self.normalize else 1.0)

    def _prepared(
        self, xp: Any, probs: Any, targets: Any, alpha: Any | None, class_weight: Any | None
    ) -> tuple[Any, ...]:
        p = prepare_probabilities(self, xp, probs, targets, class_weight)
        a = p.a
        if alpha is not None:
            a = a * cast_weight(xp, alpha, p.dtype, checked=self.values_checked)
        sparse = p.sparse
        example_weight = (
            None if sparse is None else gathered_weight(xp, sparse, p.class_weight, p.dtype)
        )
        invalid = None if sparse is None else sparse.invalid
        gamma = gamma_in(xp, self.gamma, p.clipped, checked=self.values_checked)
        return p.q, p.total, p.clipped, p.passes, a, example_weight, invalid, gamma

    def forward(
        self,
        xp: Any,
        probs: Any,
        targets: Any,
        alpha: Any | None = None,
        class_weight: Any | None = None,
    ) -> tuple[Any, tuple[Any, ...]]:
        _, _, clipped, _, a, example_weight, invalid, gamma = self._prepared(
            xp, probs, targets, alpha, class_weight
        )
        modulated = a * modulating_factor(xp, 1.0 - clipped, gamma)
        losses = nan_where(xp, invalid, -xp.sum(xlogy(xp, modulated, clipped), axis=-1))
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        return xp.astype(loss, probs.dtype), (probs, targets, alpha, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        probs, targets, alpha, class_weight, denominator = residuals
        q, total, clipped, passes, a, _, invalid, gamma = self._prepared(
            xp, probs, targets, alpha, class_weight
        )
        zero = xp.zeros_like(clipped)
        unused = a == 0
        safe = xp.where(unused, xp.ones_like(clipped), clipped)  # no log 0 or 1/0 it would drop
        one_minus = 1.0 - safe
        grad = -(one_minus**gamma) / safe
        if may_be_nonzero(gamma):  # the modulating factor's slope (skipped: 0 * log 0 is NaN)
            grad = grad + gamma * _power_or_zero(xp, one_minus, gamma - 1.0) * xp.log(safe)
        grad = xp.where(unused, zero, a * grad)
        if passes is not None:
            grad = xp.where(passes, grad, zero)
        if total is not None:
            grad = (grad - xp.sum(grad * q, axis=-1, keepdims=True)) / total
        upstream = reduce_backward(
            xp, xp.astype(cotangent, clipped.dtype), denominator, self.reduction
        )
        grad = nan_where(xp, invalid, grad * upstream[..., None])
        return xp.astype(move_class_axis_back(xp, grad, self.axis), probs.dtype, copy=False)


@dataclass(frozen=True)
class BinaryFocalLoss(CheckedValues):
    r"""Element-wise focal loss of probabilities :math:`p` (Keras's ``BinaryFocalCrossentropy``).

    .. math::

        \ell = \alpha_t\, m^\gamma\, \big(-t \log \tilde p - (1 - t) \log(1 - \tilde p)\big),
        \qquad m = t (1 - p) + (1 - t)\, p, \qquad
        \tilde p = \operatorname{clip}(p, \epsilon, 1 - \epsilon)

    with :math:`t` the smoothed target :math:`t(1-\varepsilon) + \varepsilon/2` and
    :math:`\alpha_t = \alpha t + (1 - \alpha)(1 - t)` (1 when ``alpha`` is None). As in Keras
    the modulating factor :math:`m^\gamma` uses the unclipped :math:`p`, the cross entropy the
    clipped one. With :math:`b` the cross entropy term,

    .. math::

        \frac{\partial \ell}{\partial p} = \alpha_t \Big[m^\gamma
            \Big(\frac{1-t}{1-\tilde p} - \frac{t}{\tilde p}\Big) [\text{clip inactive}]
            + \gamma\, m^{\gamma-1} (1 - 2t)\, b\Big].

    ``gamma``, ``alpha``, ``label_smoothing`` and ``epsilon`` may be 0-d arrays (traced or
    differentiated).

    Arrays: ``forward(xp, probs, targets)``.
    """

    gamma: Hyperparameter = hyperparameter(2.0)
    alpha: Hyperparameter | None = hyperparameter(None)
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    epsilon: Hyperparameter | None = hyperparameter(1e-7)
    reduction: str = "mean"

    def check(self, xp: Any, probs: Any, targets: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_epsilon(self.epsilon, xp=xp, values=values)
        check_finite_number("gamma", self.gamma, minimum=0.0, xp=xp, values=values)
        if self.alpha is not None:
            check_finite_number("alpha", self.alpha, minimum=0.0, xp=xp, values=values)
        check_elementwise_targets(
            xp,
            probs,
            targets,
            prediction_name="probs",
            label_smoothing=self.label_smoothing,
            weights={},
            values=values,
        )
        if values:
            check_range(xp, probs, "probs", low=0.0, high=1.0)

    def _parts(self, xp: Any, probs: Any, targets: Any) -> tuple[Any, ...]:
        dtype = compute_dtype(xp, probs.dtype)
        p = nan_outside(
            xp, xp.astype(probs, dtype, copy=False), 0.0, 1.0, checked=self.values_checked
        )
        checked = self.values_checked
        eps = label_smoothing_in(xp, self.label_smoothing, p, checked=checked)
        t = smoothed_targets(xp, targets, eps, dtype, checked=checked)
        clipped, passes = clip_probabilities(xp, p, self.epsilon, checked=checked)
        cross_entropy = -(
            safe_weighted_log(xp, t, xp.log(clipped))
            + safe_weighted_log(xp, 1.0 - t, xp.log1p(-clipped))
        )
        miss = t * (1.0 - p) + (1.0 - t) * p
        balance = balance_of(xp, self.alpha, t, checked=checked)
        gamma = gamma_in(xp, self.gamma, p, checked=checked)
        return t, clipped, passes, cross_entropy, miss, balance, gamma

    def forward(self, xp: Any, probs: Any, targets: Any) -> tuple[Any, tuple[Any, ...]]:
        _, _, _, cross_entropy, miss, balance, gamma = self._parts(xp, probs, targets)
        losses = cross_entropy * modulating_factor(xp, miss, gamma)
        if balance is not None:
            losses = losses * balance
        loss, denominator = reduce_losses(xp, losses, None, self.reduction)
        return xp.astype(loss, probs.dtype), (probs, targets, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        probs, targets, denominator = residuals
        t, c, passes, cross_entropy, miss, balance, gamma = self._parts(xp, probs, targets)
        zero = xp.zeros_like(c)
        one = xp.ones_like(c)
        inf = xp.full_like(c, float("inf"))
        # d(cross entropy)/dp, with the limits at p = 0 or 1 when nothing is clipped
        d_log_p = xp.where(t == 0, zero, -t / xp.where(c == 0, one, c))
        d_log_q = xp.where(t == 1, zero, (1.0 - t) / xp.where(c == 1, one, 1.0 - c))
        d_log_p = xp.where(c == 0, xp.where(t == 0, zero, -inf), d_log_p)
        d_log_q = xp.where(c == 1, xp.where(t == 1, zero, inf), d_log_q)
        d_cross_entropy = d_log_p + d_log_q
        if passes is not None:
            d_cross_entropy = xp.where(passes, d_cross_entropy, zero)
        grad = d_cross_entropy * miss**gamma
        if may_be_nonzero(gamma):  # the modulating factor's slope (skipped: 0 * inf is NaN)
            slope = (1.0 - 2.0 * t) * cross_entropy
            grad = grad + gamma * _power_or_zero(xp, miss, gamma - 1.0) * slope
        if balance is not None:
            grad = grad * balance
        grad = grad * reduce_backward(
            xp, xp.astype(cotangent, c.dtype), denominator, self.reduction
        )
        return xp.astype(grad, probs.dtype, copy=False)
