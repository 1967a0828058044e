r"""``tf.compat.v1.losses``'s cross-entropy functions, computed by the xentropy core.

Drop-in replacements for ``tf.compat.v1.losses.sigmoid_cross_entropy``, ``softmax_cross_entropy``
and ``sparse_softmax_cross_entropy``: the same names, signatures, argument order and defaults,
plus one keyword-only argument after ``reduction``, ``validate=True`` (as in
:mod:`~xentropy.backends.tensorflow.nn`). ``Reduction`` is TensorFlow's own class, and every
other name (``mean_squared_error``, ``get_losses``, ``compute_weighted_loss``...) resolves to
``tf.compat.v1.losses`` (module ``__getattr__``), so that changing the import changes nothing
else. Names starting with ``_`` never fall through; ``dir()`` lists both, ``__all__`` only ours.

The per-element (sigmoid) or per-example (softmax) cross entropy :math:`\ell` is the core's
``SigmoidCrossEntropy`` / ``SoftmaxCrossEntropy`` with ``reduction="none"``, through the
TensorFlow adapter's ``apply_op`` (the analytic backward for the logits); label smoothing is the
core's, with TensorFlow's conventions, :math:`t \leftarrow t (1 - \varepsilon) + \varepsilon / 2`
(sigmoid) and :math:`t \leftarrow t (1 - \varepsilon) + \varepsilon / C` (softmax), applied only
when :math:`\varepsilon > 0`. The weights :math:`w` (broadcast against :math:`\ell`) and the
reduction are then TensorFlow ops, so TensorFlow differentiates them, weights included:

.. math::

    \texttt{NONE}: w_i \ell_i \qquad
    \texttt{SUM}: \sum_i w_i \ell_i \qquad
    \texttt{MEAN}: \frac{\sum_i w_i \ell_i}{\sum_i w_i} \qquad
    \texttt{SUM\_OVER\_BATCH\_SIZE}: \frac{\sum_i w_i \ell_i}{n} \qquad
    \texttt{SUM\_BY\_NONZERO\_WEIGHTS}: \frac{\sum_i w_i \ell_i}{\#\{i : w_i \ne 0\}}

with sums over every element of :math:`\ell` (:math:`n` of them, the batch and, for the sigmoid,
the class axis too: the default reduction is a mean over all elements, not a per-example loss)
and :math:`0/0 = 0` (``tf.math.divide_no_nan``), as in TensorFlow. ``weights`` is a scalar or has
the rank of :math:`\ell` with every dimension 1 or equal to :math:`\ell`'s (``(N, 1)`` for one
weight per example of a sigmoid loss); other shapes raise ``ValueError`` (static shapes) or
``InvalidArgumentError`` (shapes known only when the graph runs), as in TensorFlow. The sparse
function squeezes a trailing size-1 axis of ``labels`` (``(N, 1)``), of ``logits`` and of
``weights`` as TensorFlow does. The softmax labels get no gradient (TensorFlow stops it); the
sigmoid labels, the logits and floating weights do, at any order. ``loss_collection`` behaves as
in TensorFlow: the loss is added to that graph collection when the call is traced (graph mode,
``tf.function``) and never eagerly.

Differences from ``tf.compat.v1.losses`` (each one a place where TensorFlow loses precision or
silently returns a meaningless number):

* **float64 stays float64.** TensorFlow casts the losses and weights to float32 for the weighting
  and reduction (and casts back), so its float64 results, ``NONE`` included, have float32
  precision; here float64 is weighted and reduced in float64. 16-bit and float32 losses are
  weighted and reduced in float32 as in TensorFlow (per-element 16-bit losses are computed in
  float32 and rounded once, see ``nn``).
* **Label values are validated eagerly** as in ``nn``: ``ValueError`` for sigmoid labels outside
  ``[0, 1]``, negative or NaN softmax labels and class indices outside ``[0, C)`` (TensorFlow:
  a meaningless loss, or ``InvalidArgumentError`` for the indices on CPU); under tracing, or with
  ``validate=False``, the affected examples get NaN instead. Float class indices are a
  ``TypeError`` (TensorFlow: ``InvalidArgumentError``).
* **label_smoothing** above 1 is a ``ValueError`` (TensorFlow smooths into labels outside
  ``[0, 1]``); a ``tf.Tensor`` is accepted under ``tf.function`` too (TensorFlow's
  ``label_smoothing > 0`` fails on a symbolic tensor). As in TensorFlow it gets a gradient in
  the sigmoid and none in the softmax.
* **The weights' shape is checked under XLA** (``jit_compile=True``) too; TensorFlow skips its
  check there and lets the multiplication broadcast.
* The class dimension of the softmax ``logits`` must be known statically, and scalar logits are
  a ``ValueError`` (TensorFlow: ``InvalidArgumentError``), as in ``nn``.
* Error messages name the arguments: ``multi_class_labels``, ``onehot_labels``, ``weights``;
  the core's errors are also ``tf.errors.InvalidArgumentError`` s, as in ``nn``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from xentropy.ops import SigmoidCrossEntropy, SoftmaxCrossEntropy

from .. import _fallthrough
from . import nn
from ._custom_gradient import apply_op

Reduction = tf.compat.v1.losses.Reduction

__all__ = [
    "Reduction",
    "sigmoid_cross_entropy",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
]

_LOSSES = tf.compat.v1.GraphKeys.LOSSES


def _check_reduction(reduction: str) -> None:
    if reduction not in Reduction.all():
        raise ValueError(
            f"`reduction` must be one of tf.compat.v1.losses.Reduction's values "
            f"{sorted(set(Reduction.all()))}; got {reduction!r}"
        )


def _require(name: str, value: Any) -> None:
    if value is None:
        raise ValueError(f"`{name}` must not be None")


def _label_smoothing(label_smoothing: Any, dtype: tf.DType) -> Any:
    """TensorFlow smooths only when ``label_smoothing > 0``; a tensor may be symbolic here."""
    if isinstance(label_smoothing, tf.Tensor | tf.Variable):
        eps = tf.cast(label_smoothing, dtype)
        return tf.where(eps > 0, eps, tf.zeros_like(eps))
    return label_smoothing if label_smoothing > 0 else 0.0


def _matching_labels(name: str, labels: tf.Tensor, logits: tf.Tensor) -> tuple[Any, Any]:
    """``labels`` and ``logits`` of one shape: compatible static shapes (``ValueError``
    otherwise, as TensorFlow), each given the dimensions the other knows, checked at run time."""
    if not logits.shape.is_compatible_with(labels.shape):
        raise ValueError(
            f"`{name}` must have the shape of `logits`; got {name} of shape {labels.shape} "
            f"and logits of shape {logits.shape}"
        )
    shape = logits.shape.merge_with(labels.shape)
    if labels.shape != shape:
        labels = tf.ensure_shape(labels, shape)
    if logits.shape != shape:
        logits = tf.ensure_shape(logits, shape)
    return labels, logits


def _require_known_classes(logits: tf.Tensor) -> None:
    if logits.shape.rank is None or logits.shape.rank == 0 or logits.shape[-1] is None:
        raise ValueError(
            "`logits` must have a class (last) dimension known statically; "
            f"got shape {logits.shape} (other dimensions may be None)"
        )


def _require_index_shape(labels: tf.Tensor, logits: tf.Tensor) -> None:
    """Class indices have the shape of ``logits`` without its last axis (``ValueError``)."""
    if labels.shape.rank is None or logits.shape.rank is None:
        return
    expected = logits.shape[:-1]
    if logits.shape.rank == 0 or not labels.shape.is_compatible_with(expected):
        raise ValueError(
            f"`labels` must have the shape of `logits` without its last (class) axis, "
            f"{expected}; got labels of shape {labels.shape} and logits of shape {logits.shape}"
        )


def _squeeze_last_if(condition: Any, x: tf.Tensor) -> tf.Tensor:
    return tf.cond(condition, lambda: tf.squeeze(x, [-1]), lambda: x)


def _last_may_be_one(x: tf.Tensor) -> bool:
    return x.shape.rank is None or (x.shape.rank > 0 and x.shape[-1] in (None, 1))


def _squeezed(labels: Any, logits: Any, weights: Any) -> tuple[Any, tf.Tensor, Any]:
    """TensorFlow's squeezing for the sparse loss: rank(logits) - rank(labels) should be 1, so
    a trailing size-1 axis is dropped from ``labels`` when the ranks are equal, from ``logits``
    when they differ by 2, and from ``weights`` when it has one axis more than ``labels``.
    Unknown ranks are handled when the graph runs (``tf.cond``)."""
    logits = tf.convert_to_tensor(logits, name="logits")
    labels = tf.convert_to_tensor(labels, name="labels")
    rank, label_rank = logits.shape.rank, labels.shape.rank
    if rank is not None and label_rank is not None:
        if rank - label_rank == 2 and logits.shape[-1] in (None, 1):
            logits = tf.squeeze(logits, [-1])
        elif rank == label_rank and rank > 0 and labels.shape[-1] in (None, 1):
            labels = tf.squeeze(labels, [-1])
    else:
        difference = tf.rank(logits) - tf.rank(labels)
        if _last_may_be_one(logits):
            logits = _squeeze_last_if(tf.equal(difference, 2), logits)
        if _last_may_be_one(labels):
            labels = _squeeze_last_if(tf.equal(difference, 0), labels)
    if weights is None:
        return labels, logits, weights
    weights = tf.convert_to_tensor(weights, name="weights")
    label_rank, weight_rank = labels.shape.rank, weights.shape.rank
    if label_rank is not None and weight_rank is not None:
        if weight_rank - label_rank == 1:
            weights = _squeeze_weights(weights, labels)
    elif weight_rank is None or (weight_rank > 0 and weights.shape[-1] in (None, 1)):
        one_more = tf.equal(tf.rank(weights) - tf.rank(labels), 1)
        weights = _squeeze_last_if(one_more, weights)
    return labels, logits, weights


def _squeeze_weights(weights: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """TensorFlow squeezes weights of one axis more than ``labels``; its last axis must be 1
    (``InvalidArgumentError`` eagerly, ``ValueError`` while tracing, as ``tf.squeeze``)."""
    last = weights.shape[-1]
    if last is not None and last != 1:
        message = (
            f"`weights` of shape {weights.shape} has one axis more than `labels` of shape "
            f"{labels.shape}, so its last dimension must be 1 (one weight per example)"
        )
        if tf.executing_eagerly():
            raise tf.errors.InvalidArgumentError(None, None, message)
        raise ValueError(message)
    return tf.squeeze(weights, [-1])


def _broadcast_check(weights: tf.Tensor, losses: tf.Tensor) -> tf.Operation | None:
    """TensorFlow's weight rule: a scalar, or the rank of ``losses`` with every dimension 1 or
    equal. Static shapes raise ``ValueError`` now; otherwise an assertion op for run time."""
    rank, weight_rank = losses.shape.rank, weights.shape.rank
    rule = (
        "weights must be a scalar or have the rank of the losses with every dimension 1 or "
        "equal to the losses' (e.g. one weight per example of a sigmoid loss: shape (N, 1))"
    )
    if rank is not None and weight_rank is not None:
        if weight_rank == 0:
            return None
        if weight_rank != rank:
            raise ValueError(
                f"`weights` of shape {weights.shape} do not broadcast to the losses of shape "
                f"{losses.shape}: {rule}"
            )
        if losses.shape.is_fully_defined() and weights.shape.is_fully_defined():
            for axis, (w, n) in enumerate(zip(weights.shape, losses.shape, strict=True)):
                if w not in (1, n):
                    raise ValueError(
                        f"`weights` of shape {weights.shape} do not broadcast to the losses of "
                        f"shape {losses.shape} (dimension {axis}: {w} is neither 1 nor {n}): "
                        f"{rule}"
                    )
            return None
    shape, weight_shape = tf.shape(losses), tf.shape(weights)
    rank, weight_rank = tf.rank(losses), tf.rank(weights)
    # Pad (or cut) the weights' shape to the losses' rank: the rank test decides the rest.
    padded = tf.concat([weight_shape, tf.fill([rank], -1)], 0)[:rank]
    dims_fit = tf.reduce_all(tf.logical_or(tf.equal(padded, 1), tf.equal(padded, shape)))
    valid = tf.logical_or(
        tf.equal(weight_rank, 0), tf.logical_and(tf.equal(weight_rank, rank), dims_fit)
    )
    return tf.debugging.Assert(
        valid, [f"`weights` do not broadcast to the losses: {rule}; got", weight_shape, shape]
    )


def _reduced(values: tf.Tensor, w: tf.Tensor, reduction: str) -> tf.Tensor:
    """``values * w`` reduced by ``reduction`` (module docstring), in the dtype of both."""
    weighted = tf.multiply(values, w)
    if reduction == Reduction.NONE:
        return weighted
    total = tf.reduce_sum(weighted)
    if reduction == Reduction.SUM:
        return total
    if reduction == Reduction.MEAN:
        denominator = tf.reduce_sum(tf.ones_like(values) * w)
    elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
        denominator = tf.cast(tf.size(values), values.dtype)
    else:  # SUM_BY_NONZERO_WEIGHTS: a count, not differentiated
        present = tf.where(tf.equal(w, 0), tf.zeros_like(w), tf.ones_like(w))
        denominator = tf.reduce_sum(present * tf.ones_like(values))
    return tf.math.divide_no_nan(total, denominator, name="value")


def _weighted_loss(
    losses: tf.Tensor, weights: Any, scope: Any, loss_collection: Any, reduction: str
) -> tf.Tensor:
    """TensorFlow's weighting and reduction of per-element ``losses``, in float32 (float64 for
    float64 ``losses``) and cast back; the loss is added to ``loss_collection`` when traced."""
    if weights is None:
        raise ValueError("`weights` must not be None (1.0 weights every element equally)")
    with tf.compat.v1.name_scope(scope, "weighted_loss", (losses, weights)):
        # Read by tf.distribute to scale a loss summed over replicas, as TensorFlow sets it.
        tf.compat.v1.get_default_graph()._last_loss_reduction = reduction
        weights = tf.convert_to_tensor(weights, name="weights")
        check = _broadcast_check(weights, losses)
        with tf.control_dependencies([] if check is None else [check]):
            dtype = tf.float64 if losses.dtype == tf.float64 else tf.float32
            loss = _reduced(tf.cast(losses, dtype), tf.cast(weights, dtype), reduction)
            loss = tf.cast(loss, losses.dtype)
        tf.compat.v1.losses.add_loss(loss, loss_collection)
        return loss


@tf.autograph.experimental.do_not_convert
def sigmoid_cross_entropy(
    multi_class_labels: Any,
    logits: Any,
    weights: Any = 1.0,
    label_smoothing: Any = 0,
    scope: str | None = None,
    loss_collection: Any = _LOSSES,
    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS,
    *,
    validate: bool = True,
) -> tf.Tensor:
    r"""Weighted element-wise logistic loss of ``logits`` against ``multi_class_labels``.

    .. math::

        \ell = (1 - t)\, x + \log(1 + e^{-x}), \qquad
        t \leftarrow t (1 - \varepsilon) + \varepsilon / 2 \text{ if } \varepsilon > 0

    per element, then weighted by ``weights`` and reduced by ``reduction`` (module docstring).

    Args:
        multi_class_labels: targets in ``[0, 1]`` of the shape of ``logits``, cast to its dtype;
            they get a gradient.
        logits: real floating scores, e.g. ``[batch_size, num_classes]``.
        weights: a scalar, or an array of the rank of ``logits`` with each dimension 1 or
            equal (``[batch_size, 1]`` for one weight per example).
        label_smoothing: :math:`\varepsilon`, used when greater than 0: a number or a 0-d tensor.
        scope: a name scope for the operations.
        loss_collection: the graph collection the loss is added to when traced.
        reduction: a ``tf.compat.v1.losses.Reduction`` value.
        validate: check label values on eager inputs (a device sync on GPU); False skips it,
            and invalid values then give NaN instead of an error. Never checked while tracing.

    Returns:
        The weighted loss in the dtype of ``logits``: of its shape for ``Reduction.NONE``,
        otherwise a scalar.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import losses
    >>> float(losses.sigmoid_cross_entropy([[1., 0.], [0., 1.]], [[2., -1.], [0., 3.]]))
    0.29548...
    """
    _require("multi_class_labels", multi_class_labels)
    _require("logits", logits)
    _check_reduction(reduction)
    values = (logits, multi_class_labels, weights)
    with tf.compat.v1.name_scope(scope, "sigmoid_cross_entropy_loss", values) as scope:
        logits = tf.convert_to_tensor(logits, name="logits")
        labels = tf.cast(multi_class_labels, logits.dtype)
        labels, logits = _matching_labels("multi_class_labels", labels, logits)
        eps = _label_smoothing(label_smoothing, logits.dtype)
        op = SigmoidCrossEntropy(label_smoothing=eps, reduction="none")
        names = ("logits", "multi_class_labels")
        losses = apply_op(op, logits, labels, None, None, validate=validate, names=names)
        return _weighted_loss(losses, weights, scope, loss_collection, reduction)


@tf.autograph.experimental.do_not_convert
def softmax_cross_entropy(
    onehot_labels: Any,
    logits: Any,
    weights: Any = 1.0,
    label_smoothing: Any = 0,
    scope: str | None = None,
    loss_collection: Any = _LOSSES,
    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS,
    *,
    validate: bool = True,
) -> tf.Tensor:
    r"""Weighted softmax cross entropy of ``logits`` against class probabilities.

    .. math::

        \ell = -\sum_c t_c \log \operatorname{softmax}(z)_c, \qquad
        t \leftarrow t (1 - \varepsilon) + \varepsilon / C \text{ if } \varepsilon > 0

    over the last axis (:math:`C` classes), then weighted and reduced (module docstring).

    Args:
        onehot_labels: class probabilities of the shape of ``logits``, cast to its dtype; no
            gradient flows to them (as in TensorFlow).
        logits: unnormalised log probabilities ``[batch_size, num_classes]`` (any leading
            dimensions), with a statically known class dimension.
        weights: a scalar, or an array broadcastable to the per-example loss
            ``[batch_size]`` (same rank, each dimension 1 or equal).
        label_smoothing: :math:`\varepsilon`, used when greater than 0: a number or a 0-d tensor.
        scope: a name scope for the operations.
        loss_collection: the graph collection the loss is added to when traced.
        reduction: a ``tf.compat.v1.losses.Reduction`` value.
        validate: check label values on eager inputs (a device sync on GPU); False skips it,
            and invalid values then give NaN instead of an error. Never checked while tracing.

    Returns:
        The weighted loss in the dtype of ``logits``: ``[batch_size]`` for ``Reduction.NONE``,
        otherwise a scalar.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import losses
    >>> float(losses.softmax_cross_entropy(
    ...     [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
    ...     weights=[0.3, 0.7], label_smoothing=0.2))
    0.57618...
    """
    _require("onehot_labels", onehot_labels)
    _require("logits", logits)
    _check_reduction(reduction)
    values = (logits, onehot_labels, weights)
    with tf.compat.v1.name_scope(scope, "softmax_cross_entropy_loss", values) as scope:
        logits = tf.convert_to_tensor(logits, name="logits")
        labels = tf.cast(onehot_labels, logits.dtype)
        labels, logits = _matching_labels("onehot_labels", labels, logits)
        _require_known_classes(logits)
        # TensorFlow stops the gradient of the smoothed labels, label_smoothing's included.
        labels = tf.stop_gradient(labels)
        eps = _label_smoothing(label_smoothing, logits.dtype)
        eps = tf.stop_gradient(eps) if isinstance(eps, tf.Tensor) else eps
        op = SoftmaxCrossEntropy(axis=-1, label_smoothing=eps, reduction="none")
        names = ("logits", "onehot_labels")
        losses = apply_op(op, logits, labels, None, validate=validate, names=names)
        return _weighted_loss(losses, weights, scope, loss_collection, reduction)


@tf.autograph.experimental.do_not_convert
def sparse_softmax_cross_entropy(
    labels: Any,
    logits: Any,
    weights: Any = 1.0,
    scope: str | None = None,
    loss_collection: Any = _LOSSES,
    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS,
    *,
    validate: bool = True,
) -> tf.Tensor:
    r"""Weighted softmax cross entropy of ``logits`` against integer class indices.

    .. math::

        \ell = -\log \operatorname{softmax}(z)_y = \log \sum_c e^{z_c} - z_y

    with classes along the last axis, then weighted and reduced (module docstring).

    Args:
        labels: class indices in ``[0, num_classes)`` of shape ``[d_0, ..., d_{r-1}]`` (a
            trailing size-1 axis is squeezed), any integer dtype.
        logits: unnormalised log probabilities ``[d_0, ..., d_{r-1}, num_classes]``.
        weights: a scalar, or an array broadcastable to ``labels`` (same rank, each dimension
            1 or equal; one trailing size-1 axis more is squeezed).
        scope: a name scope for the operations.
        loss_collection: the graph collection the loss is added to when traced.
        reduction: a ``tf.compat.v1.losses.Reduction`` value.
        validate: check the class indices on eager inputs (a device sync on GPU); False skips
            it, and out-of-range indices then give NaN instead of an error. Never checked while
            tracing.

    Returns:
        The weighted loss in the dtype of ``logits``: of the shape of ``labels`` for
        ``Reduction.NONE``, otherwise a scalar.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import losses
    >>> float(losses.sparse_softmax_cross_entropy([0, 2], [[2., 1., 0.], [0., 1., 3.]]))
    0.28872...
    """
    _require("labels", labels)
    _require("logits", logits)
    _check_reduction(reduction)
    values = (logits, labels, weights)
    with tf.compat.v1.name_scope(scope, "sparse_softmax_cross_entropy_loss", values) as scope:
        labels, logits, weights = _squeezed(labels, logits, weights)
        _require_index_shape(labels, logits)
        losses = nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits, name="xentropy", validate=validate
        )
        return _weighted_loss(losses, weights, scope, loss_collection, reduction)


# Every other name is tf.compat.v1.losses's (see the module docstring).
_FRAMEWORK = ("tensorflow.compat.v1.losses",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
