"""TensorFlow dialect of xentropy: ``tf.nn``'s cross-entropy functions, differentiable as they are.

* :mod:`~xentropy.backends.tensorflow.nn`: ``softmax_cross_entropy_with_logits``,
  ``sparse_softmax_cross_entropy_with_logits``, ``sigmoid_cross_entropy_with_logits`` and
  ``weighted_cross_entropy_with_logits`` with ``tf.nn``'s signatures (differences in its
  docstring).
* :func:`apply_op`: any core operator of ``xentropy.ops`` as a TensorFlow loss, differentiable in
  every floating input and at any order; a first-order gradient of the prediction is the
  operator's analytic backward (``tf.custom_gradient``). The core runs its functions on
  ``tf.Tensor`` and ``tf.Variable`` inputs through it, and the Keras adapter uses it on the
  TensorFlow backend.
* :func:`linear_cross_entropy` (:mod:`.fused`): the final projection fused with the softmax
  cross entropy, never materialising the ``(N, V)`` logits.
* ``namespace``: the Array API namespace over ``tf`` through which the core accepts
  ``tf.Tensor`` inputs.

The core imports ``xentropy.backends.tensorflow.namespace`` (and so this package) whenever it
meets a ``tf.Tensor``, so ``nn`` and ``apply_op`` are loaded on first access only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import nn
    from ._custom_gradient import apply_op
    from .fused import linear_cross_entropy

__all__ = ["apply_op", "linear_cross_entropy", "nn"]


def __getattr__(name: str) -> Any:
    if name == "nn":
        return importlib.import_module(f"{__name__}.nn")
    if name == "apply_op":
        return importlib.import_module(f"{__name__}._custom_gradient").apply_op
    if name == "linear_cross_entropy":
        return importlib.import_module(f"{__name__}.fused").linear_cross_entropy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
