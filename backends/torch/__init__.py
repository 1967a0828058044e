"""The PyTorch dialect of xentropy: ``torch.nn.functional`` and ``torch.nn`` losses, drop-in.

Change one import to port code::

    from xentropy.backends.torch import functional as F  # was: import torch.nn.functional as F
    from xentropy.backends.torch import nn as xnn

    loss = F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=0.1)
    criterion = xnn.CrossEntropyLoss(weight=class_weight)

Every loss keeps PyTorch's name, argument order and defaults (``ignore_index=-100``, the -100
clamp of ``binary_cross_entropy``'s logs, legacy ``size_average`` / ``reduce``), plus one
keyword-only argument after them, ``validate=True``: the eager check of target values and
weights, a device synchronisation on GPUs (``validate=False`` skips it; invalid values then give
NaN rows). The value and the gradient come from the xentropy core: the first-order gradient of
the prediction through one ``torch.autograd.Function`` running the core's analytic backward,
every other derivative (double backward, forward mode, ``torch.func`` transforms, targets and
weights) by autograd of the core's exact forward. It works eagerly, under ``torch.compile``,
``torch.func`` and ``torch.autocast``, and the modules script (``torch.jit.script``). The
deliberate differences from PyTorch (``ValueError`` on bad values, 0 gradient where the BCE log
clamp is active, gradients for weights, ...) are listed in :mod:`.functional`.
:func:`linear_cross_entropy` (:mod:`.fused`), with PyTorch 2.13's signature, fuses ``F.linear``
with ``F.cross_entropy`` for large vocabularies; :class:`LinearCrossEntropyLoss` is its module.

:mod:`.functional` and :mod:`.nn` are complete stand-ins for ``torch.nn.functional`` and
``torch.nn`` (every name they do not define is torch's). This package is not: it collects the
dialect's losses from both, so a torch name such as ``relu`` or ``Linear`` is an
``AttributeError`` here (take it from :mod:`.functional` or :mod:`.nn`); its own submodules load
on first access.
"""

from __future__ import annotations

from typing import Any

from .. import _fallthrough, _requirements

_requirements.require(__name__, "torch", "torch")

# functional before fused: .fused builds on functional's cross_entropy (and functional's last
# line re-exports .fused's linear_cross_entropy)
from . import functional, nn
from ._divergence import KLDivLoss, MultiLabelSoftMarginLoss, kl_div, multilabel_soft_margin_loss
from .functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from .fused import LinearCrossEntropyOptions, linear_cross_entropy
from .nn import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, LinearCrossEntropyLoss, NLLLoss

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "KLDivLoss",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOptions",
    "MultiLabelSoftMarginLoss",
    "NLLLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "functional",
    "kl_div",
    "linear_cross_entropy",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "nn",
]


def __getattr__(name: str) -> Any:
    """A submodule of the package (imported on first access); no framework fall-through."""
    return _fallthrough.resolve(__name__, name, ())


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, ())
