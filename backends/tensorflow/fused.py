"""Fused linear cross entropy for TensorFlow: the projection and the loss without the logits.

``tf.nn`` has no such function; this one keeps the core's signature and registers the core's
chunked backward for ``hidden``, ``weight`` and ``bias`` through ``tf.custom_gradient`` as the
first-order gradient; higher orders (nested tapes, ``tf.gradients`` of ``tf.gradients``)
differentiate the core's forward, as for an unfused loss.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from xentropy.ops import LinearCrossEntropy

from ._custom_gradient import apply_op


def linear_cross_entropy(
    hidden: Any,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    class_weight: Any | None = None,
    chunk_size: int | None = None,
    softcap: float | None = None,
    z_loss: float = 0.0,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    validate: bool = True,
) -> tf.Tensor:
    """:func:`xentropy.linear_cross_entropy` on tensors, differentiable with ``tf.GradientTape``.

    The leading dimensions of ``hidden`` must be known (the chunks are sliced statically).
    ``validate`` checks target values on eager inputs, which reads them back (a device sync on
    GPU); False skips the check, and invalid values then give NaN for the affected examples
    instead of an error. Never checked while tracing.
    """
    op = LinearCrossEntropy(
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    names = ("hidden", "weight", "targets", "bias", "class_weight")
    return apply_op(op, hidden, weight, targets, bias, class_weight, validate=validate, names=names)
