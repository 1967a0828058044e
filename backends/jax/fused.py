"""Fused linear cross entropy for JAX: the projection and the loss without the ``(N, V)`` logits.

optax has no such function; this one keeps the core's signature (``ignore_index`` has no
default sentinel) and registers the core's chunked backward for ``hidden``, ``weight`` and
``bias`` through the adapter's ``jax.custom_jvp``: ``jax.grad`` of a reduced loss (and of
``hidden`` for ``reduction="none"``) never materialises the ``(N, V)`` logits. Forward mode,
higher orders, the weight of a per-example loss, ``class_weight``, probability targets and traced
``softcap`` / ``z_loss`` / ``label_smoothing`` are differentiated exactly, through the core's
differentiable forward.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

import xentropy


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
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: bool = False,
    validate: bool = True,
) -> Any:
    """:func:`xentropy.linear_cross_entropy` on JAX arrays (NumPy inputs are converted), under
    every JAX transform; ``return_lse=True`` gives ``(loss, lse)``."""

    def as_jax(x: Any) -> Any:
        return None if x is None else jnp.asarray(x)

    return xentropy.linear_cross_entropy(
        jnp.asarray(hidden),
        jnp.asarray(weight),
        jnp.asarray(targets),
        bias=as_jax(bias),
        class_weight=as_jax(class_weight),
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        sample_weight=as_jax(sample_weight),
        where=as_jax(where),
        return_lse=return_lse,
        validate=validate,
    )
