"""Fused linear cross entropy for PyTorch: ``F.linear`` and ``F.cross_entropy`` in one op.

Not a ``torch.nn.functional`` name (PyTorch has none); the arguments follow ``F.linear``
(``input, weight, bias``) then ``F.cross_entropy`` (``target``, ``ignore_index=-100``,
``label_smoothing``, ``reduction``), plus the core's ``chunk_size``, ``softcap``, ``z_loss`` and
``validate``. The ``(N, V)`` logits are never materialised; the gradients of ``input``,
``weight`` and ``bias`` come from the core's chunked backward through the adapter's autograd
Function.
"""

from __future__ import annotations

import torch

from xentropy.ops import LinearCrossEntropy

from ._autograd import apply


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
    return apply(op, names, input, weight, target, bias, validate=validate)
