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
    as_dtype,
    cast_weight,
    check_class_targets,
    move_class_axis_back,
    move_class_axis_last,
    nan_where,
    sparse_targets,
    target_weight,
    without_unused_ignore_index,
)
from ._errors import ShapeMismatch
from ._evaluate import CheckedValues
from ._namespace import compute_dtype
from ._native import add_at_index, take_along_last_axis
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

    def check(
        self, xp: Any, scores: Any, targets: Any, class_weight: Any, *, values: bool
    ) -> dict[str, Any] | None:
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
        unused = check_class_targets(
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
        return without_unused_ignore_index(unused)

    def _prepared(self, xp: Any, scores: Any, targets: Any, class_weight: Any | None) -> Any:
        """The scores with the class axis last in the compute dtype, the :class:`SparseTargets`
        and the per-example weights :math:`w_{y_i}` (None where every one is 1)."""
        dtype = compute_dtype(xp, scores.dtype)
        x = as_dtype(xp, move_class_axis_last(xp, scores, self.axis), dtype)
        w = cast_weight(xp, class_weight, dtype, checked=self.values_checked)
        sparse = sparse_targets(
            xp, targets, x.shape[-1], self.ignore_index, checked=self.values_checked
        )
        return x, sparse, target_weight(xp, sparse, w, dtype)

    def forward(
        self, xp: Any, scores: Any, targets: Any, class_weight: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        x, sparse, example_weight = self._prepared(xp, scores, targets, class_weight)
        picked = take_along_last_axis(xp, x, sparse.index)
        # (-1 * picked is -picked, bit for bit: no product where every weight is 1)
        losses = -picked if example_weight is None else -example_weight * picked
        losses = sparse.masked(xp, losses)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        return as_dtype(xp, loss, scores.dtype), (scores, targets, class_weight, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        r""":math:`-w_{y_i} \bar g_i` at :math:`(i, y_i)` and 0 elsewhere: a scatter into zeros
        (native's spelling), NaN rows for invalid indices."""
        scores, targets, class_weight, denominator = residuals
        x, sparse, example_weight = self._prepared(xp, scores, targets, class_weight)
        g = reduce_backward(xp, as_dtype(xp, cotangent, x.dtype), denominator, self.reduction)
        picked = -g if example_weight is None else -example_weight * g
        picked = xp.broadcast_to(picked, tuple(sparse.index.shape))
        grad = add_at_index(xp, xp.zeros_like(x), sparse.index, picked)
        grad = nan_where(xp, sparse.invalid, grad)
        return as_dtype(xp, move_class_axis_back(xp, grad, self.axis), scores.dtype)
