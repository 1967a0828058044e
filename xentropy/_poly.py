"""Poly-1 cross entropy (Leng et al. 2022), with its analytic backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import FINITE, Hyperparameter, check_finite_number, check_reduction
from ._class_targets import (
    as_weight_array,
    check_class_targets,
    hyperparameter_in,
    move_class_axis_back,
    nan_where,
    safe_weighted_log,
)
from ._evaluate import CheckedValues, hyperparameter
from ._namespace import namespace_of
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import class_index_mean_weight, evaluate_weighted
from ._softmax import softmax_inputs
from ._types import ArrayT, Reduction


@dataclass(frozen=True)
class Poly1CrossEntropy(CheckedValues):
    r""":math:`\ell_i = \sum_c a_{ic}(-\log p_{ic}) + \epsilon \sum_c a_{ic}(1 - p_{ic})`.

    :math:`\partial \ell / \partial z_j
    = p_j \sum_c a_c - a_j + \epsilon\, p_j (\sum_c a_c p_c - a_j)`.
    ``epsilon`` and ``label_smoothing`` may be 0-d arrays (traced or differentiated).
    """

    axis: int = -1
    epsilon: Hyperparameter = hyperparameter(2.0)
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"

    def check(self, xp: Any, logits: Any, targets: Any, class_weight: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_finite_number("epsilon", self.epsilon, xp=xp, values=values)
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

    def _inputs(self, xp: Any, logits: Any, targets: Any, class_weight: Any) -> Any:
        return softmax_inputs(
            xp,
            logits,
            targets,
            class_weight,
            axis=self.axis,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            checked=self.values_checked,
        )

    def _epsilon(self, xp: Any, like: Any) -> Any:
        return hyperparameter_in(xp, self.epsilon, like, FINITE, checked=self.values_checked)

    def forward(
        self, xp: Any, logits: Any, targets: Any, class_weight: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        inputs = self._inputs(xp, logits, targets, class_weight)
        log_p, a = inputs.log_p, inputs.a
        cross_entropy = -xp.sum(safe_weighted_log(xp, a, log_p), axis=-1)
        one_minus_pt = xp.sum(a * -xp.expm1(log_p), axis=-1)
        epsilon = self._epsilon(xp, log_p)
        losses = nan_where(xp, inputs.invalid, cross_entropy + epsilon * one_minus_pt)
        loss, denominator = reduce_losses(xp, losses, inputs.example_weight, self.reduction)
        return xp.astype(loss, logits.dtype), (logits, targets, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        logits, targets, class_weight, denominator = residuals
        inputs = self._inputs(xp, logits, targets, class_weight)
        a = inputs.a
        p = xp.exp(inputs.log_p)
        grad = p * xp.sum(a, axis=-1, keepdims=True) - a
        grad = grad + self._epsilon(xp, p) * p * (xp.sum(a * p, axis=-1, keepdims=True) - a)
        upstream = reduce_backward(xp, xp.astype(cotangent, p.dtype), denominator, self.reduction)
        grad = nan_where(xp, inputs.invalid, grad * upstream[..., None])
        return xp.astype(move_class_axis_back(xp, grad, self.axis), logits.dtype, copy=False)


def poly1_cross_entropy(
    logits: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    epsilon: Hyperparameter = 2.0,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Poly-1 loss: cross entropy plus :math:`\epsilon` times the missed target probability.

    .. math::

        \ell_i = -\sum_c a_{ic} \log p_{ic} + \epsilon \sum_c a_{ic} (1 - p_{ic}),
        \qquad p_i = \operatorname{softmax}(z_i)

    with the target weights :math:`a_{ic}` of :func:`softmax_cross_entropy`; for one-hot targets
    the second term is :math:`\epsilon (1 - p_{i,y_i})`. This is optax's
    ``poly_loss_cross_entropy`` (whose default :math:`\epsilon = 2` is kept).

    Args:
        epsilon: weight of the poly-1 term (may be negative, down to -1 for a valid loss): a
            number, or a 0-d array, traced (optax's ``jax.jit(loss)(logits, labels,
            epsilon=e)``) or differentiated; a traced non-finite value gives NaN.
        logits, targets, axis, class_weight, ignore_index, label_smoothing, reduction,
            sample_weight, where, validate: as in :func:`softmax_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.poly1_cross_entropy(np.array([[0.0, 0.0]]), np.array([0]), epsilon=1.0))
    1.1931471...
    """
    xp = namespace_of(logits, targets, names=("logits", "targets"))
    op = Poly1CrossEntropy(
        axis=axis,
        epsilon=epsilon,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    weight = as_weight_array(xp, class_weight, logits)
    return evaluate_weighted(
        op,
        logits,
        targets,
        weight,
        prediction=logits,
        validate=validate,
        sample_weight=sample_weight,
        where=where,
        mean_weight=class_index_mean_weight(logits, targets, weight, axis, ignore_index),
    )
