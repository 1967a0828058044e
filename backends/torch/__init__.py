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
:func:`linear_cross_entropy` (:mod:`.fused`) fuses ``F.linear`` with ``F.cross_entropy`` for
large vocabularies.
"""

from __future__ import annotations

from . import functional, nn
from .functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from .fused import linear_cross_entropy
from .nn import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "functional",
    "linear_cross_entropy",
    "nll_loss",
    "nn",
]
