"""Types of the public API: the option strings it accepts, and the array type a loss returns.

A loss returns an array of its prediction's library, so its prediction (``logits``, ``probs``,
``hidden``, ``p``, ``q``, ...) has the type variable :data:`ArrayT` and the result has it too:
a ``torch.Tensor`` in gives a ``torch.Tensor`` out, a ``jax.Array`` a ``jax.Array``. (NumPy
returns a reduced 0-d loss as a NumPy scalar, ``numpy.float64``, which NumPy's own reductions do
too; it has the 0-d array's ``shape``, ``dtype`` and ``item()``.) Targets, weights and masks may
be of any array type the prediction's namespace takes, so they are ``Any``.
"""

from __future__ import annotations

from typing import Literal, TypeVar

ArrayT = TypeVar("ArrayT")

# the reductions of every loss (see ``_reduction``); the order is that of the error message
Reduction = Literal["none", "sum", "mean", "sum_over_batch_size"]
# kl_div_log also takes PyTorch's "batchmean" (the sum divided by the first dimension)
KLReduction = Literal["none", "sum", "mean", "sum_over_batch_size", "batchmean"]
# the schemes of class_weights
Scheme = Literal["inverse", "log_inverse", "effective_number"]
