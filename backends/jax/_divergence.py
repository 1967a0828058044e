r"""optax's KL divergences, computed by the xentropy core.

====================================  ======================================================
this module (= ``optax.losses``)      xentropy core operator
====================================  ======================================================
``kl_divergence``                     ``PointwiseKLDivergence(axis)``: the terms
                                      :math:`p (\log p - \ell)` summed along ``axis``
``kl_divergence_with_log_targets``    the same with ``log_target=True``:
                                      :math:`e^{t} (t - \ell)`
``generalized_kl_divergence``         the same with ``generalized=True``: plus
                                      :math:`e^{\ell} - p`
``convex_kl_divergence``              ``generalized_kl_divergence``, with optax 0.2.8's
                                      ``DeprecationWarning`` (its own text)
====================================  ======================================================

Names, argument order and defaults are optax's (``axis=-1``, ``where=None``), plus the
keyword-only ``validate=True`` of this dialect. As in optax, ``axis`` is an int, a tuple of axes
(flattened into one class axis) or None (every axis: one number), and ``where`` broadcasts
against the inputs (NumPy rules) and keeps the entries that count: a masked-out entry
contributes 0 whatever it holds, and a fully masked row gives 0. Every JAX transform works, at
any order and in both modes (``_custom_derivative``): the gradient of ``log_predictions`` is the
core's analytic backward, targets and higher orders are differentiated exactly.

Where the results differ from optax:

* **Zero targets**: a target of 0 contributes 0 whatever its prediction, a ``-inf``
  log-probability included (:math:`0 \log 0 = 0`); optax gives NaN there (``0 * inf``). With
  log targets, a target of ``-inf`` (probability 0) contributes 0 and its derivative is 0;
  optax gives NaN for both.
* **Derivative by a zero target** (``kl_divergence``, ``generalized_kl_divergence``): that of
  :math:`p \log p` is taken as 0 at :math:`p = 0` (the one-sided derivative is
  :math:`-\infty`), giving :math:`-\ell` (0 under a ``-inf`` prediction), as
  ``xentropy.kl_divergence`` does; optax gives NaN. A masked-out entry's derivatives are 0.
* **Target values**: on concrete inputs a negative or NaN probability target (among the entries
  ``where`` keeps) raises ValueError; under ``jax.jit`` / ``jax.vmap`` it gives NaN (loss and
  gradient). optax computes a NaN loss with finite gradients.
* **Shapes**: ``targets`` must have the shape of ``log_predictions`` exactly (ValueError); optax
  broadcasts.
* **Dtypes**: the result has the dtype of ``log_predictions``, computed in float32 for 16-bit
  inputs and rounded once (optax computes in the inputs' promoted dtype). Integer and bool
  probability targets are cast (optax raises TypeError); log targets must be floating
  (TypeError).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from xentropy import ops
from xentropy._checks import check_same_shape

from ._custom_derivative import JAX, apply_op

Axis = int | tuple[int, ...] | None

__all__ = [
    "convex_kl_divergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
]

# optax 0.2.8's own text, so that warning filters written for optax match ours
CONVEX_DEPRECATION = (
    "The function convex_kl_divergence is deprecated. Please use generalized_kl_divergence instead."
)


def _divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: Axis,
    where: ArrayLike | None,
    *,
    target_name: str,
    log_target: bool = False,
    generalized: bool = False,
    validate: bool,
) -> jax.Array:
    """The core operator on optax's arguments: ``axis`` tuples flattened, ``where`` broadcast."""
    from . import losses as _losses  # its axis helpers (.losses imports this module)

    log_q, p = jnp.asarray(log_predictions), jnp.asarray(targets)
    shape = tuple(log_q.shape)
    with JAX.raising({}):  # optax's class for the mistake too
        check_same_shape(target_name, p, shape, "it must have the shape of log_predictions")
    class_axes = _losses._class_axes(axis, log_q.ndim)
    mask = None if where is None else jnp.broadcast_to(jnp.asarray(where, dtype=bool), shape)
    if isinstance(axis, int):
        core_axis = class_axes[0]
    else:
        log_q, p = _losses._classes_last(log_q, class_axes), _losses._classes_last(p, class_axes)
        mask = None if mask is None else _losses._classes_last(mask, class_axes)
        core_axis = -1
    op = ops.PointwiseKLDivergence(
        axis=core_axis,
        log_target=log_target,
        generalized=generalized,
        reduction="none",
        prediction_name="log_predictions",
        target_name=target_name,
    )
    names = ("log_predictions", target_name, "where")
    return apply_op(op, log_q, p, mask, validate=validate, names=names)


def kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    *,
    validate: bool = True,
) -> jax.Array:
    r"""``optax.losses.kl_divergence``: :math:`\sum_c p_c (\log p_c - \ell_c)` along ``axis``.

    .. math::

        D_{KL}(p \,\|\, q) = \sum_c p_c \log \frac{p_c}{q_c}, \qquad \ell = \log q

    with :math:`0 \log 0 = 0`.

    Args:
        log_predictions: :math:`\log q`, floating (``-inf`` allowed).
        targets: :math:`p \ge 0`, the shape of ``log_predictions``.
        axis: the class axis, a tuple of axes, or None for all axes.
        where: which entries count (broadcast against the inputs).
        validate: check on concrete inputs that the targets are non-negative (ValueError).

    Returns:
        The divergences: the shape of ``log_predictions`` without ``axis``.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends.jax import _divergence as D
    >>> float(D.kl_divergence(jnp.log(jnp.array([0.5, 0.5])), jnp.array([1.0, 0.0])))
    0.6931...
    """
    return _divergence(
        log_predictions, targets, axis, where, target_name="targets", validate=validate
    )


def kl_divergence_with_log_targets(
    log_predictions: ArrayLike,
    log_targets: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    *,
    validate: bool = True,
) -> jax.Array:
    r"""``optax.losses.kl_divergence_with_log_targets``: :math:`\sum_c e^{t_c} (t_c - \ell_c)`.

    ``log_targets`` holds :math:`t = \log p` (``-inf``: probability 0, contributing 0); the
    other arguments are those of :func:`kl_divergence`.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends.jax import _divergence as D
    >>> log_q = jnp.log(jnp.array([0.5, 0.5]))
    >>> float(D.kl_divergence_with_log_targets(log_q, jnp.array([0.0, -jnp.inf])))
    0.6931...
    """
    return _divergence(
        log_predictions,
        log_targets,
        axis,
        where,
        target_name="log_targets",
        log_target=True,
        validate=validate,
    )


def generalized_kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    *,
    validate: bool = True,
) -> jax.Array:
    r"""``optax.losses.generalized_kl_divergence``: the KL divergence of unnormalised measures.

    .. math::

        \sum_c \big[p_c (\log p_c - \ell_c) + e^{\ell_c} - p_c\big]

    (the Bregman divergence of :math:`x \log x - x`); arguments as in :func:`kl_divergence`.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends.jax import _divergence as D
    >>> float(D.generalized_kl_divergence(jnp.log(jnp.array([1.0, 1.0])), jnp.array([2.0, 0.0])))
    1.3862...
    """
    return _divergence(
        log_predictions,
        targets,
        axis,
        where,
        target_name="targets",
        generalized=True,
        validate=validate,
    )


def convex_kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    *,
    validate: bool = True,
) -> jax.Array:
    """``optax.losses.convex_kl_divergence``: :func:`generalized_kl_divergence`, deprecated in
    optax (the same ``DeprecationWarning``)."""
    warnings.warn(CONVEX_DEPRECATION, DeprecationWarning, stacklevel=2)
    return generalized_kl_divergence(log_predictions, targets, axis, where, validate=validate)
