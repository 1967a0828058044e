r"""Keras's ``sample_weight``, masks and reductions, computed by the core.

``keras.losses.Loss.__call__`` computes the per-example losses :math:`\ell_i` (``call``), merges
the Keras mask of ``y_pred`` with that of the losses into :math:`m_i`, multiplies by the sample
weights :math:`s_i` and reduces. :class:`CoreWeighting` keeps the first two steps and hands the
rest to the core's :func:`xentropy.ops.reduce_weighted`, so the weights are checked as every
core loss checks them, 16-bit losses are weighted in float32 and rounded once, and the formulas
are the core's. Keras's reductions map onto the core's:

=============================  =====================================================
Keras ``reduction``            result
=============================  =====================================================
``"sum_over_batch_size"``,     core ``"sum_over_batch_size"``: :math:`\sum_i s_i m_i \ell_i /
``"mean"``                     \sum_i m_i` (every example counted when unmasked)
``"mean_with_sample_weight"``  core ``"sum"`` over Keras's weight sum :math:`\sum s m` (the
                               weights summed as given, so ``(N, 1)`` weights of ``(N, T)``
                               losses divide by :math:`\sum_i s_i`, as in Keras)
``"sum"``                      core ``"sum"``: :math:`\sum_i s_i m_i \ell_i`
``None``, ``"none"``           core ``"none"``: :math:`s_i m_i \ell_i`
=============================  =====================================================

A mean over nothing (every example masked, or every weight 0) is 0 with a zero gradient, as
Keras's ``divide_no_nan`` gives. As in Keras: the sample weights (and the mask) gain or lose a
trailing dimension of 1 to match the losses' rank (``squeeze_or_expand_to_same_rank``), a scalar
or empty loss is returned weighted but unreduced, and the mean reductions are divided by the
number of replicas of a ``tf.distribute`` strategy. Where Keras differs: a negative or NaN sample
weight raises ValueError naming ``sample_weight`` on eager inputs (NaN for the affected examples
under tracing or with ``validate=False``; Keras multiplies by it); sample weights that do not
broadcast to the losses' shape raise ValueError (Keras's product may broadcast the losses up
instead); a masked example is left out, not multiplied by 0, so a NaN loss there does not reach
the result (Keras's product gives NaN).
"""

from __future__ import annotations

from typing import Any

import keras

from xentropy import ops

from ._dispatch import same_rank

# Keras's reduction -> the core's, when nothing weighs (mean_with_sample_weight then divides by
# the size; with weights or a mask it is the core's sum over Keras's weight sum)
CORE_REDUCTIONS: dict[str | None, str] = {
    "sum_over_batch_size": "sum_over_batch_size",
    "mean": "sum_over_batch_size",
    "mean_with_sample_weight": "sum_over_batch_size",
    "sum": "sum",
    "none": "none",
    None: "none",
}
MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def reduce_like_keras(
    losses: Any,
    sample_weight: Any | None,
    mask: Any | None,
    reduction: str | None,
    dtype: Any,
    *,
    validate: bool = True,
) -> Any:
    """What ``keras.losses.Loss`` does with per-example ``losses``, by the core's formulas."""
    from keras.src.losses.loss import scale_loss_for_distribution, standardize_reduction

    reduction = standardize_reduction(reduction)
    losses = keras.ops.convert_to_tensor(losses, dtype=dtype)
    if sample_weight is not None:
        sample_weight = keras.ops.convert_to_tensor(sample_weight, dtype=dtype)
        losses, sample_weight = same_rank(losses, sample_weight)
    if mask is not None:
        mask = keras.ops.cast(mask, "bool")
        losses, mask = same_rank(losses, mask)
    if tuple(losses.shape) in ((), (0,)):
        return ops.reduce_weighted(
            losses, reduction="none", sample_weight=sample_weight, where=mask, validate=validate
        )
    weighted_mean = reduction == "mean_with_sample_weight" and (
        sample_weight is not None or mask is not None
    )
    # a weighted mean is the core's sum, divided below by Keras's own sum of the weights
    core = "sum" if weighted_mean else CORE_REDUCTIONS[reduction]
    wide = ops.compute_dtype(ops.namespace_of(losses), losses.dtype)
    result = ops.reduce_weighted(
        losses,
        reduction=core,
        sample_weight=sample_weight,
        where=mask,
        validate=validate,
        out_dtype=wide,
        if_empty=0.0,
    )
    if weighted_mean:
        result = keras.ops.divide_no_nan(result, _weight_sum(sample_weight, mask, wide))
    result = keras.ops.cast(result, losses.dtype)
    if reduction in MEAN_REDUCTIONS:
        result = scale_loss_for_distribution(result)
    return result


def _weight_sum(sample_weight: Any | None, mask: Any | None, dtype: Any) -> Any:
    """Keras's divisor of ``mean_with_sample_weight``: the sum of the merged weights as Keras
    holds them (the mask times the sample weights, each at its own shape)."""
    weights = None if mask is None else keras.ops.cast(mask, dtype)
    if sample_weight is not None:
        s = keras.ops.cast(sample_weight, dtype)
        if weights is None:
            weights = s
        else:
            weights, s = same_rank(weights, s)
            weights = weights * s
    return keras.ops.sum(weights)


def _keras_mask(x: Any) -> Any | None:
    from keras.src.backend import get_keras_mask

    return get_keras_mask(x)


class CoreWeighting(keras.losses.Loss):
    """``keras.losses.Loss`` whose ``__call__`` weights, masks and reduces through the core.

    ``call`` (the subclass's) gives the per-example losses, as in Keras; a ``validate``
    attribute, when the subclass has one, also governs the check of the sample weights.
    """

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any | None = None) -> Any:
        in_mask = _keras_mask(y_pred)
        with keras.name_scope(self.name):
            y_pred = keras.ops.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = keras.ops.convert_to_tensor(y_true, dtype=self.dtype)
            losses = self.call(y_true, y_pred)
            out_mask = _keras_mask(losses)
            if in_mask is not None and out_mask is not None:
                mask = keras.ops.logical_and(in_mask, out_mask)
            else:
                mask = in_mask if out_mask is None else out_mask
            return reduce_like_keras(
                losses,
                sample_weight,
                mask,
                self.reduction,
                self.dtype,
                validate=getattr(self, "validate", True),
            )
