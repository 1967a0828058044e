"""Running any core loss operator with its analytic backward registered via ``tf.custom_gradient``.

The core (``xentropy.ops``) describes each loss as an operator with ``check``, ``forward`` and
``backward``. :func:`apply_op` runs the checks, then evaluates ``forward`` inside a
``tf.custom_gradient`` function whose gradient is ``backward``: TensorFlow's autodiff
(``tf.GradientTape``, ``tf.function``, XLA) then uses the core's analytic gradient instead of
differentiating through the forward's ops. This module holds no numerics.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from xentropy.ops import (
    LossOperator,
    checked_operator,
    op_gradient_positions,
    op_prediction_position,
)


@tf.autograph.experimental.do_not_convert
def apply_op(op: LossOperator, *arrays: Any, validate: bool = True) -> tf.Tensor:
    """The loss ``op.forward(xp, *arrays)``, differentiable for TensorFlow's autodiff.

    The gradient is registered for the inputs of ``op_gradient_positions(op)``: the prediction
    (the logits or probabilities; ``q`` of the information measures), or the hidden states,
    weight and bias of ``LinearCrossEntropy``; every other input (targets, weights) gets
    ``None``, i.e. no gradient.

    Args:
        op: a loss operator of ``xentropy.ops``.
        *arrays: the operator's ``forward`` arguments in order; ``None`` for an absent optional
            array. Anything else is converted with ``tf.convert_to_tensor`` (a ``tf.Variable``
            is read, so that the tape still reaches it).
        validate: check target values when the prediction is eager. While tracing
            (``tf.function``, XLA) values are never checked; bad rows become NaN instead.

    Returns:
        The loss, a ``tf.Tensor`` in the prediction's dtype.
    """
    tensors = [None if a is None else tf.convert_to_tensor(a) for a in arrays]
    prediction = tensors[op_prediction_position(op, len(tensors))]
    positions = op_gradient_positions(op, len(tensors))
    xp, op = checked_operator(op, *tensors, prediction=prediction, validate=validate)
    # tf.custom_gradient takes tensors only: the absent (None) arrays are put back inside.
    present = [i for i, t in enumerate(tensors) if t is not None]

    @tf.custom_gradient
    def loss_with_gradient(*given: tf.Tensor) -> tuple[tf.Tensor, Any]:
        full = list(tensors)
        for i, t in zip(present, given, strict=True):
            full[i] = t
        loss, residuals = op.forward(xp, *full)

        def gradient(upstream: tf.Tensor) -> list[tf.Tensor | None]:
            computed = op.backward(xp, residuals, upstream)
            grads = (computed,) if len(positions) == 1 else computed
            by_position = dict(zip(positions, grads, strict=True))
            return [by_position.get(i) for i in present]

        return loss, gradient

    return loss_with_gradient(*(tensors[i] for i in present))
