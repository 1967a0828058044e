"""The loss operators behind the public functions, for framework adapters.

Each operator is a frozen (hashable) dataclass of static options with ``check``, ``forward`` and
``backward`` (see ``xentropy._evaluate.LossOperator``). An adapter builds the operator, calls
:func:`checked_operator` (the checks; it returns the operator to run), and registers
``forward``/``backward`` with its framework's autodiff. The gradient is taken with respect to
``arrays[op_prediction_position(op)]`` (the logits or probabilities; ``q`` of the information
measures; ``LinearCrossEntropy.backward`` returns the gradients of ``(hidden, weight, bias)``).
"""

from __future__ import annotations

from typing import Any

from ._binary import BinaryCrossEntropy
from ._categorical import CategoricalCrossEntropy
from ._class_targets import as_weight_array
from ._divergence import PointwiseKLDivergence
from ._elementwise_targets import as_broadcast_weight
from ._evaluate import (
    LossOperator,
    array_hyperparameters,
    check_inputs,
    checked_operator,
    differentiable_loss,
    evaluate,
)
from ._focal import SigmoidFocalLoss, SoftmaxFocalLoss
from ._information import InformationMeasure
from ._linear import LinearCrossEntropy
from ._namespace import compute_dtype, is_lazy, namespace_of
from ._nll import NegativeLogLikelihood
from ._poly import Poly1CrossEntropy
from ._probability_focal import BinaryFocalLoss, CategoricalFocalLoss
from ._sample_weights import reduce_weighted
from ._sigmoid import SigmoidCrossEntropy
from ._softmax import SoftmaxCrossEntropy


def op_prediction_position(op: LossOperator, num_arrays: int) -> int:
    """Index, among the arrays given to ``op.forward``, of the prediction."""
    if isinstance(op, InformationMeasure) and op.measure != "entropy":
        return 1
    return 0


def op_gradient_positions(op: LossOperator, num_arrays: int) -> tuple[int, ...]:
    """Indices, among the arrays given to ``op.forward``, that ``op.backward`` differentiates.

    One position (the prediction) for every operator but ``LinearCrossEntropy``, whose backward
    returns the tuple of gradients of ``(hidden, weight, bias)``: positions 0, 1 and 3 of
    ``(hidden, weight, targets, bias)``. ``op.backward`` returns a tuple exactly when there
    is more than one position.
    """
    if isinstance(op, LinearCrossEntropy):
        return (0, 1, 3)
    return (op_prediction_position(op, num_arrays),)


def op_differentiable_positions(op: LossOperator, arrays: tuple[Any, ...]) -> tuple[int, ...]:
    """Indices of the inputs with a derivative: every floating array among ``arrays``.

    Integer and bool inputs (class indices, masks) have none, as in the frameworks. Those of
    ``op_gradient_positions`` get theirs from ``op.backward``; the rest (probability targets,
    weights) from the framework's autodiff of :func:`differentiable_loss`.
    """
    xp = namespace_of(*arrays)
    return tuple(
        i
        for i, a in enumerate(arrays)
        if a is not None
        and not isinstance(a, (bool, int, float))
        and xp.isdtype(a.dtype, "real floating")
    )


__all__ = [
    "BinaryCrossEntropy",
    "BinaryFocalLoss",
    "CategoricalCrossEntropy",
    "CategoricalFocalLoss",
    "InformationMeasure",
    "LinearCrossEntropy",
    "LossOperator",
    "NegativeLogLikelihood",
    "PointwiseKLDivergence",
    "Poly1CrossEntropy",
    "SigmoidCrossEntropy",
    "SigmoidFocalLoss",
    "SoftmaxCrossEntropy",
    "SoftmaxFocalLoss",
    "array_hyperparameters",
    "as_broadcast_weight",
    "as_weight_array",
    "check_inputs",
    "checked_operator",
    "compute_dtype",
    "differentiable_loss",
    "evaluate",
    "is_lazy",
    "namespace_of",
    "op_differentiable_positions",
    "op_gradient_positions",
    "op_prediction_position",
    "reduce_weighted",
]
