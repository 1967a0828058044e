"""Fused linear cross entropy for JAX: the projection and the loss without the ``(N, V)`` logits.

optax has no such function; this one keeps the core's signature (``ignore_index`` has no
default sentinel) and registers the core's chunked backward for ``hidden``, ``weight`` and
``bias`` through the adapter's ``jax.custom_jvp``: ``jax.grad`` of a reduced loss (and of
``hidden`` for ``reduction="none"``) never materialises the ``(N, V)`` logits. Forward mode,
higher orders, the weight of a per-example loss and traced ``softcap`` / ``z_loss`` /
``label_smoothing`` are differentiated exactly, through the core's differentiable forward.
"""

from __future__ import annotations

from typing import Any

import jax

from xentropy.ops import LinearCrossEntropy

from ._custom_derivative import apply_op


def linear_cross_entropy(
    hidden: Any,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    chunk_size: int | None = None,
    softcap: float | None = None,
    z_loss: float = 0.0,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    validate: bool = True,
) -> jax.Array:
    """:func:`xentropy.linear_cross_entropy` on JAX arrays, under every JAX transform."""
    op = LinearCrossEntropy(
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    return apply_op(op, hidden, weight, targets, bias, validate=validate)
