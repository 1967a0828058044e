"""TensorFlow dialect of xentropy: ``tf.nn``'s cross-entropy functions, differentiable as they are.

* :mod:`~xentropy.backends.tensorflow.nn`: ``softmax_cross_entropy_with_logits``,
  ``sparse_softmax_cross_entropy_with_logits``, ``sigmoid_cross_entropy_with_logits`` and
  ``weighted_cross_entropy_with_logits`` with ``tf.nn``'s signatures (differences in its
  docstring).
* :mod:`~xentropy.backends.tensorflow.losses`: ``tf.compat.v1.losses``'s
  ``sigmoid_cross_entropy``, ``softmax_cross_entropy`` and ``sparse_softmax_cross_entropy``
  (weights, every ``Reduction``, TF 1's label smoothing), over the same core.
* :func:`apply_op`: any core operator of ``xentropy.ops`` as a TensorFlow loss, differentiable in
  every floating input and at any order; a first-order gradient of the prediction is the
  operator's analytic backward (``tf.custom_gradient``). The core runs its functions on
  ``tf.Tensor`` and ``tf.Variable`` inputs through it, and the Keras adapter uses it on the
  TensorFlow backend.
* :func:`linear_cross_entropy` (:mod:`.fused`): the final projection fused with the softmax
  cross entropy, never materialising the ``(N, V)`` logits.
* ``namespace``: the Array API namespace over ``tf`` through which the core accepts
  ``tf.Tensor`` inputs.

``nn`` is a complete stand-in for ``tf.nn``: the names it does not define resolve to ``tf.nn``
(module ``__getattr__``), so ``nn.relu`` and ``nn.softmax`` keep working after the import is
changed. This package itself is not a stand-in for ``tf``; it holds the dialect modules, each
named after the TensorFlow module it replaces.

The core imports ``xentropy.backends.tensorflow.namespace`` (and so this package) whenever it
meets a ``tf.Tensor``, so ``nn``, ``apply_op`` and every other submodule (``losses`` ...) are
loaded on first access only (``xtf.losses`` and ``from xentropy.backends.tensorflow import
losses`` alike), and importing the package imports no TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .. import _fallthrough, _requirements

_requirements.require(__name__, "tensorflow", "tensorflow")

if TYPE_CHECKING:
    from . import losses, nn
    from ._custom_gradient import apply_op
    from .fused import linear_cross_entropy

__all__ = ["apply_op", "linear_cross_entropy", "losses", "nn"]


# name -> the submodule that defines it, imported on first access
_LAZY_FUNCTIONS = {"apply_op": "_custom_gradient", "linear_cross_entropy": "fused"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_FUNCTIONS[name]}"), name)
    return _fallthrough.resolve(__name__, name, ())  # a submodule (nn, losses ...) or an error


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, ())
