"""``torch.nn``'s cross-entropy loss modules over :mod:`.functional`.

Each class has the constructor of its ``torch.nn`` namesake (same arguments, order and
defaults) plus one keyword-only argument after them, ``validate=True``, holds only
configuration, and calls the function of the same loss in ``forward``:

========================  =============================================
``CrossEntropyLoss``       :func:`.functional.cross_entropy`
``NLLLoss``                :func:`.functional.nll_loss`
``BCELoss``                :func:`.functional.binary_cross_entropy`
``BCEWithLogitsLoss``      :func:`.functional.binary_cross_entropy_with_logits`
========================  =============================================

As in PyTorch, ``weight`` (and ``pos_weight``) are registered as buffers, so they follow
``.to(device)`` and appear in ``state_dict``; legacy ``size_average`` / ``reduce`` are turned into
``reduction`` at construction. ``validate`` is a plain attribute handed to the function at each
call: ``True`` checks target values and weights on eager inputs (a device synchronisation on
GPUs), ``False`` skips the check, and invalid values then give NaN for the affected examples
instead of an error; ``repr`` shows it only when False. The differences from PyTorch are those of
:mod:`.functional`.

``torch.jit.script`` accepts every module (alone or inside a scripted model) and the scripted
module gives the eager value and gradient: its ``forward`` calls the loss as a Python function
(``torch.jit.ignore``), since the core is Python. That also means a scripted module cannot be
saved (``torch.jit.save`` raises "Could not export Python function call") nor run without
Python; PyTorch's own modules can. (This file has no ``from __future__ import annotations``:
TorchScript reads the attribute annotations, and ``Optional``, not ``X | None``.)
"""

from typing import Optional

import torch

from . import functional as F

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]


class _Loss(torch.nn.Module):
    reduction: str
    validate: bool

    def __init__(
        self,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        *,
        validate: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = F.resolve_reduction(size_average, reduce, reduction)
        self.validate = validate

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + ("" if self.validate else ", validate=False")


class _WeightedLoss(_Loss):
    weight: Optional[torch.Tensor]  # noqa: UP045 (TorchScript reads no ``X | None``)

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(size_average, reduce, reduction, validate=validate)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """``torch.nn.CrossEntropyLoss``: :func:`.functional.cross_entropy` of ``(input, target)``."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction, validate=validate)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            validate=self.validate,
        )


class NLLLoss(_WeightedLoss):
    """``torch.nn.NLLLoss``: :func:`.functional.nll_loss` of ``(input, target)``."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction, validate=validate)
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            validate=self.validate,
        )


class BCELoss(_WeightedLoss):
    """``torch.nn.BCELoss``: :func:`.functional.binary_cross_entropy` of ``(input, target)``."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy(
            input, target, weight=self.weight, reduction=self.reduction, validate=self.validate
        )


class BCEWithLogitsLoss(_Loss):
    """``torch.nn.BCEWithLogitsLoss``: :func:`.functional.binary_cross_entropy_with_logits`."""

    weight: Optional[torch.Tensor]  # noqa: UP045 (TorchScript reads no ``X | None``)
    pos_weight: Optional[torch.Tensor]  # noqa: UP045

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: torch.Tensor | None = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(size_average, reduce, reduction, validate=validate)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            input,
            target,
            self.weight,
            pos_weight=self.pos_weight,
            reduction=self.reduction,
            validate=self.validate,
        )
