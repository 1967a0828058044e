"""``torch.nn``'s cross-entropy loss modules over :mod:`.functional`.

A complete stand-in for ``torch.nn``: the losses below are xentropy's, and every other name
(``Linear``, ``Module``, ``Sequential``, ``Parameter``, ``init``, ``utils``, ...) is
``torch.nn``'s own, resolved by the module's ``__getattr__`` (``dir()`` lists both; our names
win; names starting with ``_`` never fall through; an unknown name raises ``AttributeError``
naming both).
``functional`` is this dialect's :mod:`.functional`, not ``torch.nn.functional``, so that
``xnn.functional.cross_entropy`` is ours too (its other names fall through to torch's).

Each class has the constructor of its ``torch.nn`` namesake (same arguments, order and
defaults) plus keyword-only arguments after them (``validate=True``; for
``LinearCrossEntropyLoss`` also ``chunk_size``, ``softcap``, ``z_loss``), holds only
configuration (its base classes are :mod:`._module_base`'s), and calls the function of the same
loss in ``forward``:

==========================  =============================================
``CrossEntropyLoss``         :func:`.functional.cross_entropy`
``NLLLoss``                  :func:`.functional.nll_loss`
``BCELoss``                  :func:`.functional.binary_cross_entropy`
``BCEWithLogitsLoss``        :func:`.functional.binary_cross_entropy_with_logits`
``LinearCrossEntropyLoss``   :func:`.functional.linear_cross_entropy` (PyTorch 2.13)
==========================  =============================================

``LinearCrossEntropyLoss`` holds its projection as PyTorch's does, an ``nn.Linear`` named
``linear`` (``linear.weight`` of shape ``(C * prod(out_features), in_features)``, ``linear.bias``
when ``bias=True``), so the same seed gives the same parameters and ``state_dict`` keys as
``torch.nn.LinearCrossEntropyLoss``; ``weight`` is the class-weight buffer, and the constructor
raises PyTorch's ``RuntimeError`` for a class weight of the wrong shape or ``label_smoothing``
outside ``[0, 1]``. ``LinearCrossEntropyOptions`` is torch's own dataclass (PyTorch >= 2.13) or
a compatible one (:mod:`.fused`).

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
Python; PyTorch's own modules can. A ``LinearCrossEntropyLoss`` with ``options`` set scripts but
fails at its first call (PyTorch's refuses to script at all). (This file has no
``from __future__ import annotations``: TorchScript reads the attribute annotations, and
``Optional``, not ``X | None``.)
"""

import math
from typing import Any, Optional

import torch

from .. import _fallthrough
from . import functional
from . import functional as F
from ._divergence import KLDivLoss, MultiLabelSoftMarginLoss
from ._module_base import _Loss, _WeightedLoss
from .fused import LinearCrossEntropyOptions

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "KLDivLoss",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOptions",
    "MultiLabelSoftMarginLoss",
    "NLLLoss",
    "functional",
]


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


class LinearCrossEntropyLoss(_WeightedLoss):
    """``torch.nn.LinearCrossEntropyLoss``: :func:`.functional.linear_cross_entropy` of
    ``(input, target)`` through the module's own projection ``self.linear``."""

    num_classes: int
    ignore_index: Optional[int]  # noqa: UP045 (TorchScript reads no ``X | None``)
    label_smoothing: float

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: tuple[int, ...] = (),
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        reduction: str = "mean",
        weight: torch.Tensor | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        options: Any = None,
        chunk_size: int | None = None,
        softcap: float | None = None,
        z_loss: float = 0.0,
        validate: bool = True,
    ) -> None:
        # PyTorch's checks at construction, its words at the end of each message
        if weight is not None and tuple(weight.shape) != (num_classes,):
            shape = tuple(weight.shape)
            raise RuntimeError(
                f"weight must have shape {(num_classes,)}, one weight per class; got {shape}; "
                f"expected weight shape to be {(num_classes,)}, got {shape}"
            )
        if not 0.0 <= label_smoothing <= 1.0:
            raise RuntimeError(
                f"label_smoothing must be in [0, 1] (0: none, 1: uniform targets); got "
                f"{label_smoothing}; expected label_smoothing to be in range [0, 1], got "
                f"{label_smoothing}"
            )
        super().__init__(weight, None, None, reduction, validate=validate)
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options
        self.chunk_size = chunk_size
        self.softcap = softcap
        self.z_loss = z_loss
        # PyTorch's layout: one 2-D nn.Linear for every (class, position) pair, reshaped to
        # (C, *out_features, in_features) in forward
        self.linear = torch.nn.Linear(
            in_features,
            math.prod(self.out_features, start=num_classes),
            bias=bias,
            device=device,
            dtype=dtype,
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        shape = (self.num_classes, *self.out_features)
        bias = self.linear.bias
        return F.linear_cross_entropy(
            input,
            self.linear.weight.reshape(*shape, self.linear.in_features),
            target,
            linear_bias=None if bias is None else bias.reshape(shape),
            weight=self.weight,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            options=self.options,
            chunk_size=self.chunk_size,
            softcap=self.softcap,
            z_loss=self.z_loss,
            validate=self.validate,
        )

    def extra_repr(self) -> str:
        extras = {"chunk_size": None, "softcap": None, "z_loss": 0.0, "validate": True}
        changed = "".join(
            f", {name}={getattr(self, name)!r}"
            for name, default in extras.items()
            if getattr(self, name) != default
        )
        return (
            f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
            f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
            f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
            f"label_smoothing={self.label_smoothing}, options={self.options}{changed}"
        )


# Every other name is torch.nn's (see the module docstring).
_FRAMEWORK = ("torch.nn",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
