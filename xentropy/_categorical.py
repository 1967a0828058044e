"""Categorical cross entropy from probabilities, with its analytic backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import (
    CLIP_EPSILON,
    Hyperparameter,
    check_in_domain,
    check_range,
    check_reduction,
    is_number,
    may_be_nonzero,
)
from ._class_targets import (
    SparseTargets,
    as_weight_array,
    cast_weight,
    check_class_targets,
    dense_target_weights,
    gathered_weight,
    hyperparameter_parts,
    is_sparse,
    label_smoothing_in,
    move_class_axis_back,
    move_class_axis_last,
    nan_rows_outside,
    nan_where,
    sparse_targets,
    xlogy,
)
from ._evaluate import CheckedValues, hyperparameter
from ._namespace import compute_dtype, namespace_of
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import class_index_mean_weight, evaluate_weighted
from ._types import ArrayT, Reduction


def clip_probabilities(
    xp: Any, p: Any, epsilon: Hyperparameter | None, *, checked: bool = False
) -> tuple[Any, Any | None]:
    r"""``clip(p, epsilon, 1 - epsilon)`` and where the gradient passes (None: everywhere).

    An array ``epsilon`` (traced or differentiated) is cast to ``p``'s dtype and the clip is
    spelled with ``maximum`` and ``minimum`` (derivative :math:`\pm 1` by ``epsilon`` where the
    clip is active); outside ``[0, 0.5)`` the clipped values are NaN unless ``checked``.
    """
    if not may_be_nonzero(epsilon):
        return p, None
    eps, factor = hyperparameter_parts(xp, epsilon, p, CLIP_EPSILON, checked=checked)
    passes = ~((p < eps) | (p > 1.0 - eps))  # NaN passes: its gradient stays NaN
    if is_number(eps):
        return xp.clip(p, eps, 1.0 - eps), passes
    clipped = xp.minimum(xp.maximum(p, eps), 1.0 - eps)
    return clipped if factor is None else clipped * factor, passes


def check_epsilon(epsilon: Hyperparameter | None, *, xp: Any = None, values: bool = True) -> None:
    """``epsilon`` of the probability clip: None, or a number (or 0-d array) in ``[0, 0.5)``."""
    if epsilon is not None:
        expected = "None or a number in [0, 0.5)"
        check_in_domain(xp, "epsilon", epsilon, CLIP_EPSILON, expected, values=values)


@dataclass(frozen=True)
class CategoricalCrossEntropy(CheckedValues):
    r"""Cross entropy of given class probabilities :math:`q` against targets.

    :math:`\ell_i = -\sum_c a_{ic} \log \tilde q_{ic}` with :math:`\tilde q` the (optionally
    renormalised, then clipped) probabilities; :math:`\partial \ell_i / \partial \tilde q_{ic} =
    -a_{ic} / \tilde q_{ic}`, zero where the clip is active, chained through the normalisation.
    """

    axis: int = -1
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    epsilon: Hyperparameter | None = hyperparameter(1e-7)
    normalize: bool = False
    reduction: str = "mean"

    def check(self, xp: Any, probs: Any, targets: Any, class_weight: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_epsilon(self.epsilon, xp=xp, values=values)
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
        if values:
            check_range(xp, probs, "probs", low=0.0, high=None if self.normalize else 1.0)

    def forward(
        self, xp: Any, probs: Any, targets: Any, class_weight: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        p = prepare_probabilities(self, xp, probs, targets, class_weight)
        losses = -xp.sum(xlogy(xp, p.a, p.clipped), axis=-1)
        example_weight = None
        if p.sparse is not None:
            example_weight = gathered_weight(xp, p.sparse, p.class_weight, p.dtype)
            losses = nan_where(xp, p.sparse.invalid, losses)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        return xp.astype(loss, probs.dtype), (probs, targets, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        probs, targets, class_weight, denominator = residuals
        p = prepare_probabilities(self, xp, probs, targets, class_weight)
        g = reduce_backward(xp, xp.astype(cotangent, p.dtype), denominator, self.reduction)
        # d(a log q)/dq = a / q, and 0 where a == 0 (the forward's 0 log 0 = 0), also at q == 0
        zero_weight = p.a == 0
        safe = xp.where(zero_weight, xp.ones_like(p.clipped), p.clipped)
        grad = xp.where(zero_weight, xp.zeros_like(p.a), -p.a / safe)
        if p.passes is not None:
            grad = xp.where(p.passes, grad, xp.zeros_like(grad))
        if p.total is not None:
            grad = (grad - xp.sum(grad * p.q, axis=-1, keepdims=True)) / p.total
        grad = grad * g[..., None]
        if p.sparse is not None:
            grad = nan_where(xp, p.sparse.invalid, grad)
        return xp.astype(move_class_axis_back(xp, grad, self.axis), probs.dtype, copy=False)


def categorical_cross_entropy(
    probs: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    epsilon: Hyperparameter | None = 1e-7,
    normalize: bool = False,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Cross entropy of predicted class probabilities against class indices or probabilities.

    .. math::

        \ell_i = -\sum_c a_{ic} \log \operatorname{clip}(\hat q_{ic}, \epsilon, 1-\epsilon),
        \qquad \hat q_i = q_i / \textstyle\sum_c q_{ic} \text{ if normalize else } q_i

    with the target weights :math:`a_{ic}` of :func:`softmax_cross_entropy`. Prefer
    :func:`softmax_cross_entropy` on logits: it is exact where this one must clip.

    Args:
        probs: predicted probabilities in ``[0, 1]``, classes along ``axis``.
        targets, axis, class_weight, ignore_index, label_smoothing, reduction, sample_weight,
            where, validate: as in :func:`softmax_cross_entropy`.
        epsilon: clip probabilities into ``[epsilon, 1 - epsilon]`` before the log (Keras's
            ``1e-7`` by default; ``None`` or 0 for no clipping). The gradient is 0 where the clip
            is active, as in Keras. ``label_smoothing`` and ``epsilon`` may be 0-d arrays
            (traced or differentiated), as in :func:`softmax_cross_entropy`.
        normalize: divide ``probs`` by their sum along ``axis`` first (what Keras always does);
            off by default, so that probabilities that do not sum to 1 are never silently rescaled.

    >>> import numpy as np, xentropy
    >>> float(xentropy.categorical_cross_entropy(np.array([[0.5, 0.25, 0.25]]), np.array([0])))
    0.6931471...
    """
    xp = namespace_of(probs, targets, names=("probs", "targets"))
    op = CategoricalCrossEntropy(
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        epsilon=epsilon,
        normalize=normalize,
        reduction=reduction,
    )
    weight = as_weight_array(xp, class_weight, probs)
    return evaluate_weighted(
        op,
        probs,
        targets,
        weight,
        prediction=probs,
        validate=validate,
        sample_weight=sample_weight,
        where=where,
        mean_weight=class_index_mean_weight(probs, targets, weight, axis, ignore_index),
    )


@dataclass(frozen=True)
class PreparedProbabilities:
    """What the losses over class probabilities (categorical, categorical focal) start from."""

    dtype: Any  # the compute dtype
    class_weight: Any | None  # (C,) in the compute dtype
    q: Any  # (..., C) probabilities, class axis last, renormalised if asked
    total: Any | None  # (..., 1) row sums before renormalising (``normalize=True``)
    clipped: Any  # q clipped into [epsilon, 1 - epsilon]
    passes: Any | None  # (..., C) bool: where the clip lets the gradient through
    sparse: SparseTargets | None  # class-index targets
    a: Any  # (..., C) per-class target weights


def prepare_probabilities(
    op: Any, xp: Any, probs: Any, targets: Any, class_weight: Any | None
) -> PreparedProbabilities:
    """Probabilities and targets of ``op`` (its ``axis``, ``normalize``, ``epsilon``,
    ``ignore_index``, ``label_smoothing`` and ``values_checked``) in the form both losses use.

    A row holding a probability outside ``[0, 1]`` (``[0, inf)`` with ``normalize``) is NaN
    unless the values were checked.
    """
    checked = op.values_checked
    dtype = compute_dtype(xp, probs.dtype)
    q = xp.astype(move_class_axis_last(xp, probs, op.axis), dtype, copy=False)
    q = nan_rows_outside(xp, q, 0.0, None if op.normalize else 1.0, checked=checked)
    w = cast_weight(xp, class_weight, dtype, checked=checked)
    num_classes = q.shape[-1]
    total = xp.sum(q, axis=-1, keepdims=True) if op.normalize else None
    if total is not None:
        q = q / total
    clipped, passes = clip_probabilities(xp, q, op.epsilon, checked=checked)
    sparse = None
    if is_sparse(probs, targets):
        sparse = sparse_targets(xp, targets, num_classes, op.ignore_index, checked=checked)
    a = dense_target_weights(
        xp,
        None if sparse is not None else move_class_axis_last(xp, targets, op.axis),
        sparse=sparse,
        num_classes=num_classes,
        class_weight=w,
        label_smoothing=label_smoothing_in(xp, op.label_smoothing, q, checked=checked),
        dtype=dtype,
        checked=checked,
    )
    return PreparedProbabilities(dtype, w, q, total, clipped, passes, sparse, a)
