r"""The JAX dialect of xentropy: optax's classification losses, computed by the xentropy core.

Porting code means changing one import::

    import optax                                  # before
    from xentropy.backends import jax as optax    # after

The module is a complete stand-in for ``optax``: it defines the losses below, and every other
name resolves to ``optax.losses``, then to ``optax`` (module ``__getattr__``), so
``optax.adam``, ``optax.apply_updates`` and ``optax.l2_loss`` keep working after the import is
changed, and so does ``from xentropy.backends.jax import adam``. Our names win
(``softmax_cross_entropy`` is ours; ``losses`` is :mod:`xentropy.backends.jax.losses`, itself a
stand-in for ``optax.losses``), names starting with ``_`` never fall through, ``dir()`` lists
both and ``__all__`` only ours. optax is imported on the first name that falls through.

=============================================  ================================================
this module                                    optax (0.2.8) / xentropy core operator
=============================================  ================================================
``softmax_cross_entropy``                      ``optax.softmax_cross_entropy`` /
                                               ``SoftmaxCrossEntropy`` (probability targets)
``safe_softmax_cross_entropy``                 ``optax.safe_softmax_cross_entropy`` / the same
``softmax_cross_entropy_with_integer_labels``  ``optax.softmax_cross_entropy_with_integer_labels``
                                               / ``SoftmaxCrossEntropy`` (class indices)
``sigmoid_binary_cross_entropy``               ``optax.sigmoid_binary_cross_entropy`` /
                                               ``SigmoidCrossEntropy``
``sigmoid_focal_loss``                         ``optax.sigmoid_focal_loss`` / ``SigmoidFocalLoss``
``poly_loss_cross_entropy``                    ``optax.losses.poly_loss_cross_entropy`` /
                                               ``Poly1CrossEntropy``
``apply_op(op, *arrays, validate=True)``       any operator of ``xentropy.ops`` (shared with the
                                               Keras adapter on the JAX backend)
=============================================  ================================================

Names, argument order, keyword-only markers and defaults are optax's; each function returns
per-example losses as optax does (the core runs with ``reduction="none"``) and takes one extra
keyword-only argument, ``validate=True``. Each loss is a ``jax.custom_jvp`` (see
``_custom_derivative``): every JAX transform works (``jax.grad``, ``jax.vjp``, ``jax.jvp``,
``jax.jacfwd``, ``jax.jacrev``, ``jax.hessian``, ``jax.vmap``, ``jax.checkpoint``,
``jax.lax.scan``, ``jax.jit``), at any order. The gradient of the logits is the core's analytic
backward (JAX never differentiates through the forward for it); soft labels, weights, traced
options and higher orders are differentiated exactly, as optax differentiates them.

Where the results differ from optax (each difference is tested in
``tests/test_jax_adapter.py``; the ids are the cases of the table in ``docs/bad-input.md``):

* **Out-of-range integer labels** (S02-S05). On concrete inputs (eager calls, an eager
  ``jax.grad`` included) a label outside ``[0, C)`` raises ValueError. Under ``jax.jit`` or
  ``jax.vmap`` that example's loss *and its gradient row* are NaN. optax returns a NaN loss with
  a finite gradient for a label ``>= C`` or ``-100``, and silently wraps ``-1`` to the last
  class.
* **Shapes**: labels must have the shape of the logits exactly (class indices: without the class
  axes); they are never broadcast (ValueError). optax broadcasts, which turns ``(N,)`` against
  ``(N, 1)`` into an ``(N, N)`` result (B02, B03, D04, S10).
* **Label values**: on concrete inputs, probability labels must be ``>= 0`` and sigmoid / focal
  labels in ``[0, 1]`` (ValueError); optax computes with any value (negative losses, B04, D06).
* **-inf logits**: a ``-inf`` logit under a zero label contributes :math:`0 \log 0 = 0` in
  ``softmax_cross_entropy`` and ``poly_loss_cross_entropy``, as in
  ``optax.safe_softmax_cross_entropy``; optax's ``softmax_cross_entropy`` and
  ``poly_loss_cross_entropy`` give NaN there (D07).
* **where**: the same result and gradient as optax for masked examples and masked classes,
  except that a class-index label on a masked-out class of a kept example gives ``+inf`` (the
  label has probability 0), where optax returns the log-sum-exp of the kept classes minus the
  masked logit. ``poly_loss_cross_entropy`` also accepts a per-example mask (optax raises).
* **16-bit inputs** are computed in float32 and rounded once to the input dtype; optax computes
  in the input dtype.
* **Options**: ``alpha``, ``gamma`` and ``epsilon`` are numbers or 0-d arrays, traced and
  differentiable as in optax (``jax.jit(poly_loss_cross_entropy)(x, y, epsilon=e)``); optax's
  per-element ``alpha`` arrays raise ValueError.
* **Gradients** exist for the logits and every floating label, as in optax. Integer labels get
  ``float0`` zero cotangents. Where a label is ``where``-masked out, its derivative is 0 (optax:
  NaN, from ``0 * -inf``).
* ``poly_loss_cross_entropy`` accepts integer and bool one-hot labels (optax raises TypeError).
* **Errors** are the core's (``xentropy._errors``), with optax's argument names (``logits``,
  ``labels``, ``targets``) and the offending value or shape. Labels of the wrong shape are a
  ``ValueError`` and also a ``TypeError`` (optax's "incompatible shapes for broadcasting"); wrong
  dtypes a ``TypeError`` as in optax; ``(N, 1)`` integer labels are told to be squeezed. Python
  lists and arrays of other libraries are converted with ``jnp.asarray`` (optax raises
  ``TypeError`` for a list, from ``jnp``'s own rule).
"""

from typing import Any

from .. import _fallthrough, _requirements

_requirements.require(__name__, "jax", "jax", "optax")
from ._custom_derivative import apply_op
from ._divergence import (
    convex_kl_divergence,
    generalized_kl_divergence,
    kl_divergence,
    kl_divergence_with_log_targets,
)
from .fused import linear_cross_entropy
from .losses import (
    poly_loss_cross_entropy,
    safe_softmax_cross_entropy,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
)

__all__ = [
    "apply_op",
    "convex_kl_divergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "linear_cross_entropy",
    "poly_loss_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]

# Every other name is optax's (see the module docstring).
_FRAMEWORK = ("optax.losses", "optax")


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
