r"""The Keras 3 dialect of xentropy: ``keras.losses``'s cross entropies, computed by the core.

Porting code means changing one import::

    from keras import losses                       # before
    from xentropy.backends.keras import losses     # after

    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True))

:mod:`xentropy.backends.keras.losses` is a complete stand-in for ``keras.losses``, and so is this
package, which exports the same loss names: they define the names below, and every other name
resolves to ``keras.losses`` (module ``__getattr__``), so ``losses.MeanSquaredError``,
``losses.Loss``, ``losses.get`` and ``losses.serialize`` keep working after the import is
changed. Our names win, names starting with ``_`` never fall through, ``dir()`` lists both and
``__all__`` only ours. Keras's own registry is untouched: ``keras.losses.get("...")`` and string
losses in ``model.compile`` still give Keras's classes.

==================================  ================================================================
this module (= ``keras.losses``)    xentropy core operator (``xentropy.ops``), ``reduction="none"``
==================================  ================================================================
``BinaryCrossentropy``              ``SigmoidCrossEntropy`` (``from_logits=True``) or
                                    ``BinaryCrossEntropy(epsilon=keras.config.epsilon())``;
                                    then the mean over ``axis``
``CategoricalCrossentropy``         ``SoftmaxCrossEntropy`` or ``CategoricalCrossEntropy(
                                    normalize=True, epsilon=keras.config.epsilon())``
``SparseCategoricalCrossentropy``   the same two with ``ignore_index=ignore_class`` (class indices)
``BinaryFocalCrossentropy``         ``SigmoidFocalLoss`` or ``BinaryFocalLoss(epsilon=...)``
                                    (``alpha`` only with ``apply_class_balancing``); then the mean
                                    over ``axis``
``CategoricalFocalCrossentropy``    ``SoftmaxFocalLoss`` or ``CategoricalFocalLoss(normalize=True,
                                    epsilon=...)``, ``alpha`` as a 0-d or per-class array
==================================  ================================================================

The functions ``binary_crossentropy``, ``categorical_crossentropy``,
``sparse_categorical_crossentropy``, ``binary_focal_crossentropy`` and
``categorical_focal_crossentropy`` mirror ``keras.losses``'s functions of those names.

The classes are ``keras.losses.Loss`` subclasses with Keras's constructor arguments, order and
defaults, plus one keyword-only argument after them, ``validate=True`` (the functions take it
too): the eager check of target and probability values, which reads them back (a device
synchronisation on GPUs); ``validate=False`` skips it, and invalid values then give NaN for the
affected examples instead of an error. Like Keras's ``LossFunctionWrapper`` classes they only
hold configuration; ``sample_weight``, Keras's masks and the ``reduction`` follow Keras's
formulas and shape rules, computed by the core's weighted reduction
(:mod:`xentropy.backends.keras._reduction`). They are registered with
``keras.saving.register_keras_serializable(package="xentropy")``, so a model compiled with them
survives ``model.save`` / ``keras.models.load_model`` without ``custom_objects``. On each Keras
backend the loss runs through that backend's adapter, which registers the core's analytic backward
with its autodiff: ``tf.custom_gradient`` (TensorFlow), ``jax.custom_jvp`` (JAX),
``torch.autograd.Function`` (PyTorch); ``model.fit`` therefore trains with the core's gradient,
and every other derivative (``y_true``, second order, forward mode) is the backend's own autodiff
of the core's exact forward.
Keras's NumPy backend (no training) evaluates the core directly.

Where the results differ from ``keras.losses`` (Keras 3.15; the ids are the cases of the table in
``docs/bad-input.md``; each point is tested in ``tests/test_keras_adapter.py``):

* **Class indices out of range** (S02-S05): a label outside ``[0, C)`` other than
  ``ignore_class`` raises ValueError on eager inputs; under tracing (``jax.jit`` and
  ``tf.function``, so inside ``model.fit`` on those backends) that example's loss and gradient
  are NaN. Keras raises on TensorFlow (eagerly) and PyTorch, but on JAX silently returns loss 0.
  (On PyTorch, where Keras trains eagerly, the value checks run at every call: a device
  synchronisation per step on GPUs. ``validate=False`` skips them; the bad example's loss and
  gradient are then NaN, as under tracing.)
* **Values outside the domain** (B04, P03, P06, D06, C04): on eager inputs, probabilities must lie
  in ``[0, 1]`` (categorical ones only ``>= 0``: they are renormalised), binary targets in
  ``[0, 1]``, categorical targets ``>= 0``; otherwise ValueError naming the argument (under
  tracing the affected losses and gradients are NaN). Keras clips the probabilities and computes
  with any target (negative losses).
* **TensorFlow's cached logits**: Keras's TensorFlow backend replaces the output of a ``softmax``
  or ``sigmoid`` activation by the logits it cached on the tensor (``_keras_logits``) in
  ``binary_crossentropy`` and the (sparse) categorical cross entropy, whatever the activation
  was (so ``BinaryCrossentropy`` on a softmax output computes a sigmoid cross entropy of the
  softmax's logits). We always compute from the ``y_pred`` given, as Keras does on JAX and
  PyTorch; with saturated probabilities that means the clipped value. For exact losses use a
  linear output layer and ``from_logits=True``.
* **Exact logit forms**: with ``from_logits=True`` the focal losses use the exact log-sigmoid /
  log-softmax. Keras's ``CategoricalFocalCrossentropy`` clips ``softmax(y_pred)`` into
  ``[eps, 1 - eps]`` on every backend, and ``BinaryFocalCrossentropy`` clips ``sigmoid(y_pred)``
  on JAX and PyTorch, so Keras differs where a probability falls below ``eps = 1e-7`` (logits
  beyond about 16 apart).
* **SparseCategoricalCrossentropy from probabilities**: on TensorFlow Keras clips the
  probabilities before normalising them (JAX and PyTorch normalise first, as we do). The values
  agree to rounding; where the clip is active (an exact 0) Keras's TensorFlow gradient is 0,
  ours carries the normalisation's gradient, as on Keras's other backends.
* **Shapes**: as in Keras, a trailing dimension of 1 on one side only is squeezed (``(N, 1)``
  predictions against ``(N,)`` targets, B02 / B03; ``(N, 1)`` class indices); otherwise the
  shapes must match exactly, and targets are never broadcast (ValueError).
* **Sample weights** must be ``>= 0``: a negative or NaN weight raises ValueError naming
  ``sample_weight`` on eager inputs (NaN for the affected examples under tracing or with
  ``validate=False``); Keras multiplies by it. Sample weights must broadcast to the losses'
  shape once Keras's trailing-1 rule has matched the ranks (ValueError; Keras's product may
  broadcast the losses up to a meaningless shape). 16-bit losses are weighted in float32.
* **Class axis**: ``SparseCategoricalCrossentropy(axis=...)`` works for any class axis on every
  backend (Keras's TensorFlow and JAX backends accept only the last axis).
* **Configuration**: ``get_config`` also records ``axis`` for ``SparseCategoricalCrossentropy``
  and ``dtype`` when one was given (``keras.losses`` drops both), and ``validate``, so
  ``from_config`` rebuilds the same loss. The options are plain attributes read at each call.
* **Dtypes**: 16-bit inputs (``dtype="float16"`` or a mixed-precision policy) are computed in
  float32 and rounded once to the loss dtype (Keras computes in the 16-bit dtype).
* **Gradients**: every floating input is differentiable, ``y_true`` included, at any order and
  in both modes, as the backend's own autodiff of Keras's losses would be.
* **Errors** are the core's (``xentropy._errors``), named as Keras names the arguments
  (``y_true``, ``y_pred``), with Keras's key phrase for a wrong shape ("Arguments `y_true` and
  `y_pred` must have the same shape", "... up until the last dimension"), and raised as
  instances of the backend framework's class too (``_dispatch.keras_dialect``): a class index
  out of range is also a ``tf.errors.InvalidArgumentError`` on TensorFlow and an
  ``IndexError`` on PyTorch, as Keras's own error there is; a dtype error is also a
  ``ValueError``. The loss classes accept Python lists as Keras's loss functions do (Keras's
  classes raise ``ValueError`` for a list).
"""

from typing import Any

from .. import _fallthrough, _requirements

_requirements.require(__name__, "keras", "keras")
from . import losses
from ._divergence import KLDivergence, kl_divergence
from .losses import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    sparse_categorical_crossentropy,
)

__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "KLDivergence",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "losses",
    "sparse_categorical_crossentropy",
]

# Every other name is keras.losses' (see the module docstring).
_FRAMEWORK = ("keras.losses",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
