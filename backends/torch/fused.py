"""Fused linear cross entropy for PyTorch: ``F.linear`` and ``F.cross_entropy`` in one op.

The arguments follow ``F.linear`` (``input, weight, bias``) then ``F.cross_entropy``
(``target``, ``ignore_index=-100``, ``label_smoothing``, ``reduction``), plus the core's
``chunk_size``, ``softcap``, ``z_loss`` and ``validate``. (PyTorch 2.13's own
``torch.nn.functional.linear_cross_entropy`` spells them differently: ``linear_weight``, a
keyword-only ``linear_bias``, ``weight`` for class weights, ``ignore_index=None``.) The ``(N, V)``
logits are never materialised; the gradients of ``input``, ``weight`` and ``bias`` come from the
core's chunked backward through the adapter's autograd Function (or, for higher orders and
transforms, from autograd of the core's exact forward).

Under ``torch.autocast`` it follows the policy of the unfused pair: the inputs of the projection
are cast to autocast's dtype (``F.linear`` is on its lower-precision list) and the loss is
computed and returned in float32 (``F.cross_entropy`` is on its float32 list).
"""

from __future__ import annotations

import torch

from xentropy.ops import LinearCrossEntropy

from ._autograd import apply, autocast_dtype, without_autocast


def linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    chunk_size: int | None = None,
    softcap: float | None = None,
    z_loss: float = 0.0,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """``F.cross_entropy(F.linear(input, weight, bias), target, ...)`` without the logits.

    Args:
        input: ``(..., D)`` hidden states.
        weight: ``(V, D)``, as ``nn.Linear(D, V).weight``.
        target: ``(...)`` class indices; ``ignore_index`` (-100, as PyTorch) is skipped.
        bias: optional ``(V,)``.
        chunk_size, softcap, z_loss, label_smoothing, reduction: as
            :func:`xentropy.linear_cross_entropy`.
        validate: check target values on eager inputs, which reads them back (a device sync
            on GPU); False skips the check, and invalid values then give NaN for the affected
            examples instead of an error. Skipped under ``torch.compile``.
    """
    op = LinearCrossEntropy(
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    names = ("input", "weight", "target", "bias")
    dtype = autocast_dtype(input)
    if dtype is None:
        return apply(op, names, input, weight, target, bias, validate=validate)
    # autocast: the projection in autocast's dtype (as F.linear), the loss in float32 (as
    # F.cross_entropy); the core computes 16-bit inputs in float32, and float32 hidden states
    # make its result float32
    h, w, b = (_autocast_cast(a, dtype) for a in (input, weight, bias))
    with without_autocast(input):
        return apply(op, names, h.float(), w, target, b, validate=validate)


def _autocast_cast(x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Autocast's cast of a ``lower_precision_fp`` op's input: floating, not float64."""
    if x is None or not x.is_floating_point() or x.dtype == torch.float64:
        return x
    return x.to(dtype)
