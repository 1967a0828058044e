r"""optax's classification losses, computed by the xentropy core (see the package docstring).

Each function keeps the name, argument order, keyword-only markers and defaults of its optax
counterpart (``optax.losses``, optax 0.2.8) and returns per-example losses like optax (the core
runs with ``reduction="none"``), plus keyword-only extras: ``validate`` everywhere, and on the
two softmax cross entropies the core's LLM options ``softcap`` (Gemma 2's
:math:`s \tanh(x / s)`, applied before ``where``'s mask), ``z_loss`` (PaLM's
:math:`\lambda_z \operatorname{lse}^2` per example) and ``return_lse`` (also return the
per-example log-sum-exp, ``(loss, lse)``, differentiable). The code here only
maps arguments: ``axis`` tuples are flattened into one class axis, and ``where`` is expressed
in the core's own terms (a masked-out class gets a ``-inf`` logit and a zero label, which the
core counts as :math:`0 \log 0 = 0`; a fully masked example gives optax's 0). All arithmetic,
gradients included, is the core's.

The module is a complete stand-in for ``optax.losses``: every name it does not define resolves to
``optax.losses`` (module ``__getattr__``: ``losses.l2_loss``, ``losses.hinge_loss``, ...), names
starting with ``_`` excepted; ``dir()`` lists both, ``__all__`` only ours.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from xentropy import ops

from .. import _fallthrough
from ._custom_derivative import apply_op
from ._divergence import (
    convex_kl_divergence,
    generalized_kl_divergence,
    kl_divergence,
    kl_divergence_with_log_targets,
)

Axis = int | tuple[int, ...] | None

# optax's names of the arrays of the core operators, for the errors (see ._custom_derivative)
_NAMES = ("logits", "labels")

__all__ = [
    "convex_kl_divergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "poly_loss_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]


def _class_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (int, tuple or None for every axis) as non-negative axes, in the given order."""
    axes = tuple(range(ndim)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    result = []
    for a in axes:
        index = operator.index(a)
        if not -ndim <= index < ndim:
            raise ValueError(f"axis {a} is out of bounds for array of dimension {ndim}")
        result.append(index % ndim)
    return tuple(result)


def _classes_last(x: jax.Array, class_axes: tuple[int, ...]) -> jax.Array:
    """``x`` with ``class_axes`` (in their given order) flattened into one last axis."""
    batch_axes = tuple(a for a in range(x.ndim) if a not in class_axes)
    x = jnp.transpose(x, batch_axes + class_axes)
    batch_shape = x.shape[: len(batch_axes)]
    return jnp.reshape(x, (*batch_shape, math.prod(x.shape[len(batch_axes) :])))


def _mask(where: ArrayLike | None, logits: jax.Array, class_axes: tuple[int, ...]) -> Any:
    """optax's ``where`` as a boolean array of the logits' shape (None when not given)."""
    if where is None:
        return None
    mask = jnp.asarray(where, dtype=bool)
    if mask.ndim != logits.ndim:  # optax: a per-example mask covers all classes
        mask = jnp.expand_dims(mask, class_axes)
    return jnp.broadcast_to(mask, logits.shape)


def _core_axis(axis: Axis, class_axes: tuple[int, ...]) -> int:
    return class_axes[0] if isinstance(axis, int) else -1


def _class_layout(x: jax.Array, axis: Axis, class_axes: tuple[int, ...]) -> jax.Array:
    """``x`` as the core sees it: unchanged for an int ``axis``, else classes flattened last."""
    return x if isinstance(axis, int) else _classes_last(x, class_axes)


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    *,
    softcap: ArrayLike | None = None,
    z_loss: ArrayLike = 0.0,
    return_lse: bool = False,
    validate: bool = True,
) -> Any:
    r"""Softmax cross entropy against class probabilities: ``optax.softmax_cross_entropy``.

    .. math::

        \ell_i = -\sum_c y_{ic} \log \operatorname{softmax}(x_i)_c

    with :math:`0 \log 0 = 0`: a ``-inf`` logit under a zero label contributes 0, as in
    ``optax.safe_softmax_cross_entropy`` (``optax.softmax_cross_entropy`` gives NaN there).

    Args:
        logits: unnormalised log probabilities, floating, classes along ``axis``.
        labels: class probabilities with the shape of ``logits`` exactly (never broadcast;
            bool and integer one-hot labels are cast). Must be non-negative.
        axis: the class axis, a tuple of axes (flattened into one class axis, as optax), or
            None for all axes.
        where: which examples (shape of ``logits`` without ``axis``) or which entries (shape
            of ``logits``) to include. A masked-out entry leaves the softmax and the sum; a
            fully masked example gives ``-0.0`` and a zero gradient (exactly optax).
        softcap, z_loss, return_lse: xentropy's LLM extras (module docstring).
        validate: check label values on concrete inputs (ValueError); skipped under tracing.

    Returns:
        Per-example losses, the shape of ``logits`` without the class axes, in its dtype
        (computed in float32 for 16-bit inputs).

    >>> import jax.numpy as jnp
    >>> from xentropy.backends import jax as xjax
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> xjax.softmax_cross_entropy(logits, labels).tolist()
    [0.2761..., 2.9517...]
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if labels.ndim != logits.ndim:
        raise ValueError(
            f"labels of shape {labels.shape} must have the shape of logits {logits.shape} "
            "(probabilities, never broadcast); use softmax_cross_entropy_with_integer_labels "
            "for class indices"
        )
    class_axes = _class_axes(axis, logits.ndim)
    mask = _mask(where, logits, class_axes)
    logits, softcap = _capped(logits, softcap, mask)
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
        labels = jnp.where(mask, labels, jnp.zeros_like(labels))
    op = ops.SoftmaxCrossEntropy(
        axis=_core_axis(axis, class_axes), reduction="none", softcap=softcap, z_loss=z_loss
    )
    layout = _class_layout(logits, axis, class_axes)
    labels = _class_layout(labels, axis, class_axes)
    loss = apply_op(op, layout, labels, None, validate=validate, names=_NAMES)
    if mask is not None:
        loss = jnp.where(jnp.any(mask, axis=class_axes), loss, -0.0)
    return (loss, op.log_sum_exp(jnp, layout)) if return_lse else loss


def _capped(
    logits: jax.Array, softcap: ArrayLike | None, mask: jax.Array | None
) -> tuple[jax.Array, ArrayLike | None]:
    """``(logits, softcap)`` for the core. With a ``where`` mask the soft-cap
    :math:`s \tanh(x / s)` is applied here, in JAX ops that JAX differentiates, so that the
    mask's ``-inf`` comes after it (the core would cap it to :math:`-s`); otherwise the core
    applies it (with its analytic gradient)."""
    if softcap is None or mask is None:
        return logits, softcap
    cap = jnp.asarray(softcap, dtype=ops.compute_dtype(jnp, logits.dtype))
    if not ops.is_lazy(cap) and not (math.isfinite(float(cap)) and float(cap) > 0):
        raise ValueError(f"softcap must be a finite number > 0; got {softcap!r}")
    cap = jnp.where((cap > 0) & jnp.isfinite(cap), cap, jnp.nan)  # traced: NaN outside
    return (cap * jnp.tanh(logits.astype(cap.dtype) / cap)).astype(logits.dtype), None


def safe_softmax_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, validate: bool = True
) -> jax.Array:
    r"""``optax.safe_softmax_cross_entropy``: :func:`softmax_cross_entropy` over the last axis.

    Both treat a ``-inf`` logit under a zero label as :math:`0 \log 0 = 0`.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends import jax as xjax
    >>> xjax.safe_softmax_cross_entropy(
    ...     jnp.array([[-jnp.inf, 1.0, 2.0]]), jnp.array([[0.0, 0.5, 0.5]])).tolist()
    [0.8132...]
    """
    return softmax_cross_entropy(logits, labels, validate=validate)


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] = -1,
    where: ArrayLike | None = None,
    *,
    softcap: ArrayLike | None = None,
    z_loss: ArrayLike = 0.0,
    return_lse: bool = False,
    validate: bool = True,
) -> Any:
    r"""Softmax cross entropy against class indices.

    Mirrors ``optax.softmax_cross_entropy_with_integer_labels``.

    .. math::

        \ell_i = \log \sum_c e^{x_{ic}} - x_{i y_i}

    Args:
        logits: unnormalised log probabilities, floating, classes along ``axis``.
        labels: integer class indices with the shape of ``logits`` without ``axis``. With a
            tuple ``axis`` a label is a flat (C-order) index into the ``logits[axis]`` slice,
            the class axes taken in the order given, as in optax.
        axis: the class axis or a tuple of class axes.
        where: which examples (shape of ``labels``) or which entries (shape of ``logits``) to
            include. A fully masked example gives 0 and a zero gradient whatever its label
            (exactly optax). A label on a masked-out class of a kept example gives ``+inf``
            (it has probability 0); optax gives a finite log-sum-exp of the kept classes
            minus the masked logit.
        softcap, z_loss, return_lse: xentropy's LLM extras (module docstring).
        validate: on concrete inputs, a label outside ``[0, C)`` raises ValueError. Under
            ``jax.jit`` / ``jax.vmap`` that example's loss and gradient row are NaN (optax
            returns NaN with a finite gradient, or wraps a negative label around).

    Returns:
        Per-example losses, the shape of ``labels``, in the dtype of ``logits``.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends import jax as xjax
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> xjax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1])).tolist()
    [0.2761..., 2.9517...]
    """
    if not isinstance(axis, int | tuple):  # optax's own check and message
        raise ValueError(
            "Keyword argument 'axis' must be of type 'int' or 'tuple[int, ...]' but actual "
            f"type is {type(axis)}."
        )
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    class_axes = _class_axes(axis, logits.ndim)
    if labels.ndim != logits.ndim - len(class_axes):
        raise ValueError(
            f"labels of shape {labels.shape} must hold class indices with the shape of logits "
            f"{logits.shape} without axis {axis}; use softmax_cross_entropy for one-hot or "
            "probability labels"
            + ("; squeeze the last axis of labels" if labels.shape[-1:] == (1,) else "")
        )
    mask = _mask(where, logits, class_axes)
    logits, softcap = _capped(logits, softcap, mask)
    kept = None
    if mask is not None:
        kept = jnp.any(mask, axis=class_axes)
        logits = jnp.where(mask, logits, -jnp.inf)
        labels = jnp.where(kept, labels, jnp.zeros_like(labels))  # masked examples: any label
    op = ops.SoftmaxCrossEntropy(
        axis=_core_axis(axis, class_axes), reduction="none", softcap=softcap, z_loss=z_loss
    )
    layout = _class_layout(logits, axis, class_axes)
    loss = apply_op(op, layout, labels, None, validate=validate, names=_NAMES)
    if kept is not None:
        loss = jnp.where(kept, loss, 0.0)
    return (loss, op.log_sum_exp(jnp, layout)) if return_lse else loss


def sigmoid_binary_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, validate: bool = True
) -> jax.Array:
    r"""Element-wise sigmoid cross entropy: ``optax.sigmoid_binary_cross_entropy``.

    .. math::

        \ell = -y \log \sigma(x) - (1 - y) \log(1 - \sigma(x))

    Args:
        logits: floating logits, any shape.
        labels: binary labels or probabilities in ``[0, 1]`` with the shape of ``logits``
            exactly (never broadcast; bool and integer labels are cast).
        validate: on concrete inputs, labels outside ``[0, 1]`` raise ValueError (optax
            computes with them and can return negative losses).

    Returns:
        The element-wise loss, shape and dtype of ``logits``.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends import jax as xjax
    >>> xjax.sigmoid_binary_cross_entropy(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0])).tolist()
    [0.6931..., 2.1269...]
    """
    op = ops.SigmoidCrossEntropy(reduction="none")
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    return apply_op(op, logits, labels, None, None, validate=validate, names=_NAMES)


def sigmoid_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike | None = None,
    gamma: ArrayLike = 2.0,
    validate: bool = True,
) -> jax.Array:
    r"""Sigmoid focal loss (Lin et al. 2017): ``optax.sigmoid_focal_loss``.

    .. math::

        \ell = \alpha_t\, \mathrm{ce}(x, y)\, (1 - p_t)^\gamma, \qquad
        p_t = y\,\sigma(x) + (1 - y)(1 - \sigma(x)), \qquad
        \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    with :math:`\alpha_t = 1` when ``alpha`` is None and :math:`\mathrm{ce}` the loss of
    :func:`sigmoid_binary_cross_entropy`.

    Args:
        logits: floating logits, any shape.
        labels: labels in ``[0, 1]`` with the shape of ``logits`` exactly.
        alpha: weight of the positives in ``[0, 1]``, or None. A number or a 0-d array, which
            may be traced and differentiated (optax's per-element ``alpha`` arrays raise
            ValueError). A traced value outside its range gives NaN losses.
        gamma: focusing exponent, a number ``>= 0`` or a 0-d array (as ``alpha``).
        validate: on concrete inputs, labels outside ``[0, 1]`` raise ValueError.

    Returns:
        The element-wise loss, shape and dtype of ``logits``.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends import jax as xjax
    >>> xjax.sigmoid_focal_loss(jnp.array([0.0]), jnp.array([1.0])).tolist()
    [0.1732...]
    """
    op = ops.SigmoidFocalLoss(
        gamma=gamma,
        alpha=alpha,
        reduction="none",
    )
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    return apply_op(op, logits, labels, validate=validate, names=_NAMES)


def poly_loss_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    axis: Axis = -1,
    where: ArrayLike | None = None,
    validate: bool = True,
) -> jax.Array:
    r"""Poly-1 loss (Leng et al. 2022): ``optax.losses.poly_loss_cross_entropy``.

    .. math::

        \ell_i = -\sum_c y_{ic} \log p_{ic} + \epsilon \sum_c y_{ic} (1 - p_{ic}),
        \qquad p_i = \operatorname{softmax}(x_i)

    Args:
        logits: unnormalised log probabilities, floating, classes along ``axis``.
        labels: class probabilities with the shape of ``logits`` exactly (integer and bool
            one-hot labels are cast; optax raises TypeError for them).
        epsilon: the coefficient of the poly-1 term, a number or a 0-d array (which may be
            traced and differentiated, as in optax).
        axis: the class axis, a tuple of axes, or None for all axes.
        where: as in :func:`softmax_cross_entropy`; a fully masked example gives 0. A
            per-example mask is accepted here too (optax only accepts one that broadcasts
            against ``logits``).
        validate: check label values on concrete inputs (ValueError); skipped under tracing.

    Returns:
        Per-example losses, the shape of ``logits`` without the class axes, in its dtype.

    >>> import jax.numpy as jnp
    >>> from xentropy.backends import jax as xjax
    >>> xjax.poly_loss_cross_entropy(jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])).tolist()
    [1.6931...]
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if labels.ndim != logits.ndim:
        raise ValueError(
            f"labels of shape {labels.shape} must have the shape of logits {logits.shape} "
            "(probabilities, never broadcast)"
        )
    class_axes = _class_axes(axis, logits.ndim)
    mask = _mask(where, logits, class_axes)
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
        labels = jnp.where(mask, labels, jnp.zeros_like(labels))
    op = ops.Poly1CrossEntropy(
        axis=_core_axis(axis, class_axes),
        epsilon=epsilon,
        reduction="none",
    )
    loss = apply_op(
        op,
        _class_layout(logits, axis, class_axes),
        _class_layout(labels, axis, class_axes),
        None,
        validate=validate,
        names=_NAMES,
    )
    if mask is not None:
        loss = jnp.where(jnp.any(mask, axis=class_axes), loss, 0.0)
    return loss


# Every other name is optax.losses' (see the module docstring).
_FRAMEWORK = ("optax.losses",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
