"""The base classes of this dialect's loss modules, as ``torch.nn``'s ``_Loss`` and
``_WeightedLoss``: they hold configuration only, never numerics.

========================  =====================================================================
``_Loss``                 ``reduction`` (PyTorch's legacy ``size_average`` / ``reduce`` turned
                          into it at construction) and ``validate``; ``repr`` shows the
                          reduction, and ``validate`` only when False
``_WeightedLoss``         ``_Loss`` with the class-weight buffer ``weight`` (it follows
                          ``.to(device)`` and appears in ``state_dict``)
========================  =====================================================================

A loss whose reductions are not the usual ``"none"``, ``"mean"`` and ``"sum"`` (``KLDivLoss``'s
``"batchmean"``) overrides :meth:`_Loss._resolve_reduction`. The modules of :mod:`.nn` and of
:mod:`._divergence` derive from these (this module imports neither: :mod:`.nn` imports
:mod:`._divergence`).

TorchScript compiles ``forward`` and what it calls, not the constructor, so the subclasses
script as before. This file has no ``from __future__ import annotations``: TorchScript reads
the attribute annotations, and ``Optional``, not ``X | None``.
"""

from typing import Optional

import torch

from . import functional as F


class _Loss(torch.nn.Module):
    """A loss module's ``reduction`` and ``validate``."""

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
        self.reduction = self._resolve_reduction(size_average, reduce, reduction)
        self.validate = validate

    @staticmethod
    def _resolve_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
        """PyTorch's rule (:func:`.functional.resolve_reduction`): the legacy arguments win."""
        return F.resolve_reduction(size_average, reduce, reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + ("" if self.validate else ", validate=False")


class _WeightedLoss(_Loss):
    """A :class:`_Loss` with the buffer ``weight`` (None: unweighted)."""

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
