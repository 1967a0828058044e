r"""Negative log-likelihood of given log-probabilities, with its analytic backward.

The loss of PyTorch's ``nll_loss``: the prediction already holds log-probabilities (or any
scores), and the loss picks the entry of the target class,

.. math::

    \ell_i = -w_{y_i}\, x_{i y_i}, \qquad
    \frac{\partial \ell_i}{\partial x_{ic}} = -w_{y_i}\, [c = y_i],

with :math:`w` the class weights (ones by default). Nothing is normalised: this is
``softmax_cross_entropy`` only when each row of ``x`` is a normalised ``log_softmax``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import check_reduction, format_shape
from ._class_targets import (
    cast_weight,
    check_class_targets,
    gathered_weight,
    move_class_axis_back,
    move_class_axis_last,
    nan_where,
    sparse_targets,
)
from ._errors import ShapeMismatch
from ._evaluate import CheckedValues
from ._namespace import compute_dtype, device_of
from ._native import take_along_last_axis
from ._reduction import reduce_backward, reduce_losses


@dataclass(frozen=True)
class NegativeLogLikelihood(CheckedValues):
    r""":math:`\ell_i = -w_{y_i} x_{i y_i}` of scores ``x`` (classes along ``axis``).

    Targets are integer class indices only (the shape of ``x`` without ``axis``). An example whose
    target equals ``ignore_index`` has loss 0 and weight 0; ``"mean"`` divides by
    :math:`\sum_i w_{y_i}` over the other examples (NaN when that is 0). An index outside
    ``[0, C)`` raises eagerly and gives NaN (loss and gradient) under tracing.
    """

    axis: int = -1
    ignore_index: int | None = None
    reduction: str = "mean"

    def check(self, xp: Any, scores: Any, targets: Any, class_weight: Any, *, values: bool) -> None:
        check_reduction(self.reduction)
        if targets.ndim != scores.ndim - 1:
            squeeze = targets.ndim == scores.ndim and targets.shape[self.axis] == 1
            raise ShapeMismatch(
                f"{{targets}} of shape {format_shape(targets.shape)} must be class indices with "
                f"the shape of {{log-probabilities}} {format_shape(scores.shape)} without axis "
                f"{self.axis} (negative log-likelihood takes no probability targets)"
                + (f"; squeeze axis {self.axis} of {{targets}}" if squeeze else ""),
                prediction="log-probabilities",
                argument="targets",
                shape=tuple(targets.shape),
                form="class_indices",
            )
        check_class_targets(
            xp,
            scores,
            targets,
            prediction_name="log-probabilities",
            axis=self.axis,
            class_weight=class_weight,
            ignore_index=self.ignore_index,
            label_smoothing=0.0,
            values=values,
        )

    def _prepared(self, xp: Any, scores: Any, targets: Any, class_weight: Any | None) -> Any:
        dtype = compute_dtype(xp, scores.dtype)
        x = xp.astype(move_class_axis_last(xp, scores, self.axis), dtype, copy=False)
        w = cast_weight(xp, class_weight, dtype, checked=self.values_checked)
        sparse = sparse_targets(
            xp, targets, x.shape[-1], self.ignore_index, checked=self.values_checked
        )
        return x, sparse, gathered_weight(xp, sparse, w, dtype)

    def forward(
        self, xp: Any, scores: Any, targets: Any, class_weight: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        x, sparse, example_weight = self._prepared(xp, scores, targets, class_weight)
        picked = take_along_last_axis(xp, x, sparse.index)
        losses = -example_weight * picked
        losses = sparse.masked(xp, losses)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        return xp.astype(loss, scores.dtype), (scores, targets, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        scores, targets, class_weight, denominator = residuals
        x, sparse, example_weight = self._prepared(xp, scores, targets, class_weight)
        g = reduce_backward(xp, xp.astype(cotangent, x.dtype), denominator, self.reduction)
        classes = xp.arange(x.shape[-1], dtype=sparse.index.dtype, device=device_of(xp, x))
        onehot = classes == sparse.index[..., None]
        picked_weight = xp.where(onehot, -example_weight[..., None], xp.zeros_like(x))
        grad = nan_where(xp, sparse.invalid, picked_weight * g[..., None])
        return xp.astype(move_class_axis_back(xp, grad, self.axis), scores.dtype, copy=False)
