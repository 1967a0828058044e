r"""``tf.nn``'s cross-entropy functions, computed by the xentropy core.

Drop-in replacements for ``tf.nn.softmax_cross_entropy_with_logits``,
``tf.nn.sparse_softmax_cross_entropy_with_logits``, ``tf.nn.sigmoid_cross_entropy_with_logits``
and ``tf.nn.weighted_cross_entropy_with_logits``: the same names, signatures, argument order and
defaults, plus one keyword-only argument after ``name``, ``validate=True`` (below); per-example
(unreduced) results in the dtype of ``logits``. They run eagerly, inside ``tf.function`` (unknown
``None`` dimensions included) and under XLA (``jit_compile=True``), and never turn on TensorFlow's
NumPy behaviour.

They are differentiable wherever ``tf.nn``'s are: with respect to ``logits``, soft ``labels`` and
``pos_weight`` (class indices get ``None``), at any order (nested ``tf.GradientTape``,
``tf.gradients`` of ``tf.gradients`` in graph mode, ``grad_ys`` of unknown rank), and in forward
mode (``tf.autodiff.ForwardAccumulator``). A first-order gradient of ``logits`` is the core's
analytic backward, registered through ``tf.custom_gradient``; everything else differentiates the
core's forward (see ``xentropy.backends.tensorflow._custom_gradient``).

Differences from ``tf.nn`` (each one a place where ``tf.nn`` is silent or platform-dependent):

* **Targets are never broadcast.** ``labels`` must have exactly the shape of ``logits``
  (``ValueError``); ``tf.nn.softmax_cross_entropy_with_logits`` silently broadcasts, e.g.
  ``(N, 1)`` labels against ``(N, C)`` logits. The sparse function wants ``labels`` of the shape of
  ``logits`` without the last axis, as ``tf.nn`` does.
* **Out-of-range class indices** (sparse): eagerly an error that shows the offending value and
  is both a ``ValueError`` and ``tf.errors.InvalidArgumentError`` (with ``tf.nn``'s "Received a
  label value of 3 which is outside the valid range of [0, 3)"). Under ``tf.function`` and XLA
  values are not checked: such rows get a NaN loss and NaN gradient row on every device.
  (``tf.nn`` raises on CPU, returns NaN on GPU and under XLA; plain ``tf.gather`` would silently
  clamp under XLA.)
* **Target values are validated eagerly**: ``ValueError`` for negative or NaN soft labels
  (softmax), labels outside ``[0, 1]`` (sigmoid, weighted) and a negative or NaN ``pos_weight``,
  where ``tf.nn`` returns a negative or meaningless loss. Label rows that do not sum to 1 are
  accepted, as in ``tf.nn``. Under tracing these values are not checked.
* **``validate``**: these eager value checks read the labels (and ``pos_weight``) back, a device
  synchronisation on GPUs. ``validate=False`` skips them, as tracing does: an invalid value then
  gives NaN for the affected examples (loss and gradient) instead of an error. Shapes and
  dtypes are checked either way.
* **Gradients are the exact derivative** where ``tf.nn``'s are not: for label rows summing to
  :math:`s \ne 1` the softmax gradient is :math:`s\,\mathrm{softmax}(z) - t` (``tf.nn``'s fused
  kernel returns :math:`\mathrm{softmax}(z) - t`, which its docs call incorrect), and at
  ``logits == 0`` exactly the weighted gradient is :math:`(1 - t)/2 - q t/2` (``tf.nn`` gives
  :math:`1 - t`, from the zero subgradient of ``abs`` at 0). Likewise the mixed second derivative
  of the dense softmax, :math:`\partial^2 \ell / \partial t_c\, \partial z_j`, is
  :math:`\mathrm{softmax}(z)_j - [j = c]` here and 0 in ``tf.nn`` (whose kernel's logits gradient
  is not differentiated in the labels); the second derivative in the logits alone is the same.
* **Label dtypes are cast, not required to match.** ``tf.nn``'s sigmoid functions need labels of
  the logits' dtype and the sparse function ``int32``/``int64`` labels; here soft labels of any
  real, integer or bool dtype are cast to the compute dtype, and class indices may be any integer
  dtype (float class indices are a ``TypeError``).
* **16-bit floats compute in float32** for all four functions and round the result (and
  gradient) to the input dtype once. ``tf.nn`` does so for ``float16`` (``bfloat16`` too in the
  dense softmax) but computes the sigmoid functions and sparse ``bfloat16`` in the 16-bit dtype,
  so the two agree to the 16-bit dtype's rounding, not bit for bit.
* **Rank mismatches** raise ``ValueError`` in the dense softmax too (labels of lower rank would
  otherwise read as class indices). Labels of unknown static rank (``tf.squeeze`` inside a
  ``tf.function``) are accepted, as in ``tf.nn``; their shape is then checked when the graph runs
  (``InvalidArgumentError``).
* **The class dimension must be known statically** (softmax functions): inside ``tf.function``
  every other dimension may be ``None``, but ``logits.shape[axis]`` must be a number
  (``ValueError`` otherwise); ``tf.nn`` also accepts an unknown class dimension.
* A loss of exactly zero may come out as ``-0.0`` where ``tf.nn`` gives ``0.0``.
* **Errors are the core's, as TensorFlow's classes too** (``._errors``): each check's error is
  also a ``tf.errors.InvalidArgumentError`` (the class ``tf.nn`` raises eagerly for bad labels,
  shapes and dtypes), its message names ``labels`` and ``logits`` and carries ``tf.nn``'s key
  phrase ("must have the same shape", "`labels.shape` must equal `logits.shape` except for the
  last dimension"); ``(N, 1)`` labels of the sparse function are told to be squeezed. Lists and
  NumPy arrays are converted, as in ``tf.nn``.

The module is a complete stand-in for ``tf.nn``: every name it does not define resolves to
``tf.nn`` (module ``__getattr__``), so after ``from xentropy.backends.tensorflow import nn``
``nn.relu``, ``nn.softmax``, ``nn.log_softmax`` and ``nn.l2_loss`` are TensorFlow's own. Names
starting with ``_`` never fall through; ``dir()`` lists both, ``__all__`` only ours.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from xentropy.ops import SigmoidCrossEntropy, SoftmaxCrossEntropy, as_broadcast_weight, namespace_of

from .. import _fallthrough
from ._custom_gradient import apply_op, first_order_only

__all__ = [
    "sigmoid_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy_with_logits",
    "weighted_cross_entropy_with_logits",
]

# tf.nn's names of the arrays of the core operators, for the errors (see ._errors)
_SOFTMAX_NAMES = ("logits", "labels")
_SIGMOID_NAMES = ("logits", "labels", "pos_weight")
_SPARSE_RANK_WORDS = "; `labels.shape.rank` must equal `logits.shape.rank - 1`"


def _require_both(function: str, labels: Any, logits: Any) -> None:
    if labels is None or logits is None:
        raise ValueError(
            f"Both `labels` and `logits` must be provided for {function}; "
            f"got labels={labels!r} and logits={logits!r}"
        )


def _require_known_classes(logits: tf.Tensor, axis: int) -> None:
    """The core needs the number of classes as a Python int (the batch dims may be unknown)."""
    rank = logits.shape.rank
    if rank is None:
        raise ValueError("`logits` must have a statically known rank")
    if isinstance(axis, int) and -rank <= axis < rank and logits.shape[axis] is None:
        raise ValueError(
            f"the class dimension (axis {axis}) of `logits` must be known statically; "
            f"got shape {logits.shape} (other dimensions may be None)"
        )


def _require_rank(labels: tf.Tensor, rank: int, why: str, tf_words: str = "") -> None:
    """``ValueError`` unless ``labels`` has rank ``rank``; ``(N, 1)`` labels are told to be
    squeezed, and ``tf_words`` is tf.nn's own phrase for the mistake."""
    if labels.shape.rank != rank:
        squeeze = labels.shape.rank == rank + 1 and labels.shape[-1] == 1
        hint = "; squeeze its last axis: tf.squeeze(labels, -1)" if squeeze else ""
        raise ValueError(
            f"`labels` must have rank {rank} ({why}); got shape {labels.shape}{hint}{tf_words}"
        )


def _with_static_rank(
    labels: tf.Tensor, logits: tf.Tensor, *, classes: bool, why: str
) -> tf.Tensor:
    """Labels of unknown static rank, given the shape they must have: that of ``logits``, without
    its last (class) axis if ``classes``.

    ``tf.squeeze`` of a ``[None, 1]`` tensor inside ``tf.function`` has an unknown rank;
    ``tf.nn`` accepts such labels and checks them at run time, and so does this: their rank and
    shape are asserted when the graph runs, and their static shape is set to the expected one,
    which the core's checks need. The ops are identities for the values and the gradient.
    Labels of known rank, and logits of unknown rank, are returned unchanged.
    """
    if labels.shape.rank is not None or logits.shape.rank is None:
        return labels
    shape, expected = logits.shape, tf.shape(logits, out_type=tf.int64)
    if classes:
        shape, expected = shape[:-1], expected[:-1]
    # One predicate for rank and shape: comparing shape vectors of different lengths would fail
    # on its own, with a message that names neither labels nor logits.
    actual = tf.shape(labels, out_type=tf.int64)
    padded = tf.concat([actual, tf.fill([shape.rank], tf.constant(-1, tf.int64))], 0)
    same = tf.logical_and(
        tf.equal(tf.size(actual), shape.rank),
        tf.reduce_all(tf.equal(padded[: shape.rank], expected)),
    )
    which = "the shape of logits" + (" without the class axis" if classes else "")
    check = tf.debugging.Assert(
        same, [f"`labels` must have {which} ({why}); got shape", actual, "expected", expected]
    )
    with tf.control_dependencies([check]):
        return tf.ensure_shape(labels, shape)


@tf.autograph.experimental.do_not_convert
def softmax_cross_entropy_with_logits(
    labels: Any, logits: Any, axis: int = -1, name: str | None = None, *, validate: bool = True
) -> tf.Tensor:
    r"""Softmax cross entropy between ``logits`` and class probabilities ``labels``.

    .. math::

        \ell = -\sum_c t_c \log \operatorname{softmax}(z)_c

    over the class axis ``axis``; the core's ``SoftmaxCrossEntropy`` with probability targets.

    Args:
        labels: class probabilities of exactly the shape of ``logits`` (any real, integer or bool
            dtype; cast). Rows need not sum to 1.
        logits: unnormalised log probabilities, ``float16``, ``bfloat16``, ``float32`` or
            ``float64``.
        axis: the class axis.
        name: a name scope for the operation.
        validate: check label values on eager inputs, which reads them back (a device sync
            on GPU); False skips the check, and invalid values then give NaN for the affected
            examples instead of an error. Never checked while tracing.

    Returns:
        The per-example loss: the shape of ``logits`` without ``axis``, in the dtype of
        ``logits``.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import nn
    >>> nn.softmax_cross_entropy_with_logits(
    ...     labels=[[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]],
    ...     logits=[[4.0, 2.0, 1.0], [0.0, 5.0, 1.0]]).numpy()
    array([0.16984..., 0.82474...], dtype=float32)
    """
    _require_both("softmax_cross_entropy_with_logits", labels, logits)
    with tf.name_scope(name or "softmax_cross_entropy_with_logits"):
        logits = tf.convert_to_tensor(logits, name="logits")
        labels = tf.convert_to_tensor(labels, name="labels")
        _require_known_classes(logits, axis)
        why = f"the rank of logits {logits.shape}"
        labels = _with_static_rank(labels, logits, classes=False, why=why)
        _require_rank(labels, logits.shape.rank, why)
        op = SoftmaxCrossEntropy(axis=axis, reduction="none")
        return apply_op(op, logits, labels, None, validate=validate, names=_SOFTMAX_NAMES)


@tf.autograph.experimental.do_not_convert
def sparse_softmax_cross_entropy_with_logits(
    labels: Any, logits: Any, name: str | None = None, *, validate: bool = True
) -> tf.Tensor:
    r"""Softmax cross entropy between ``logits`` and integer class indices ``labels``.

    .. math::

        \ell = -\log \operatorname{softmax}(z)_y = \log \sum_c e^{z_c} - z_y

    with classes along the last axis; the core's ``SoftmaxCrossEntropy`` with class indices.

    Args:
        labels: class indices in ``[0, num_classes)``, any integer dtype, of the shape of
            ``logits`` without its last axis. Eagerly, other values raise ``ValueError``; while
            tracing or with ``validate=False``, their rows' loss and gradient are NaN.
        logits: unnormalised log probabilities ``[d_0, ..., d_{r-1}, num_classes]``, a real
            floating dtype.
        name: a name scope for the operation.
        validate: check label values on eager inputs, which reads them back (a device sync
            on GPU); False skips the check, and invalid values then give NaN for the affected
            examples instead of an error. Never checked while tracing.

    Returns:
        The per-example loss, of the shape of ``labels`` and the dtype of ``logits``.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import nn
    >>> nn.sparse_softmax_cross_entropy_with_logits(
    ...     labels=tf.constant([0, 3, 1]),
    ...     logits=tf.constant([[2., -5., .5, -.1], [0., 0., 1.9, 1.4],
    ...                         [-1., 1., -1., -1.]])).numpy()
    array([0.29750..., 1.14483..., 0.34075...], dtype=float32)
    """
    _require_both("sparse_softmax_cross_entropy_with_logits", labels, logits)
    with tf.name_scope(name or "SparseSoftmaxCrossEntropyWithLogits"):
        logits = tf.convert_to_tensor(logits, name="logits")
        labels = tf.convert_to_tensor(labels, name="labels")
        _require_known_classes(logits, -1)
        if logits.shape.rank == 0:
            raise ValueError(f"`logits` cannot be a scalar; got logits={logits!r}")
        why = f"logits have shape {logits.shape}"
        labels = _with_static_rank(labels, logits, classes=True, why=why)
        _require_rank(labels, logits.shape.rank - 1, why, _SPARSE_RANK_WORDS)
        if validate and _kernel_checks_labels(logits, labels):
            try:
                return tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
                    features=logits, labels=labels
                )[0]
            except tf.errors.InvalidArgumentError:
                pass  # a label out of range: the checks of apply_op raise the contract's error
        op = SoftmaxCrossEntropy(axis=-1, reduction="none")
        return apply_op(
            op,
            logits,
            labels,
            None,
            validate=validate,
            names=_SOFTMAX_NAMES,
            fused=_sparse_kernel_with_gradient,
        )


_KERNEL_LABEL_DTYPES = (tf.int32, tf.int64)


def _kernel_checks_labels(logits: tf.Tensor, labels: tf.Tensor) -> bool:
    r"""Whether TensorFlow's ``SparseSoftmaxCrossEntropyWithLogits`` may stand for the whole
    call: eager tensors on a CPU, where the kernel itself raises ``InvalidArgumentError`` for a
    label out of range (or a shape it cannot take; the core's checks then run and raise the
    contract's error), and a single tape recording ``logits`` to first order, which takes the
    kernel's registered gradient (``softmax - onehot`` times the cotangent, ``tf.nn``'s bit for
    bit). That spares the labels' two reductions read back and ``tf.custom_gradient``: eager f+b
    at 65536x10, 8 ops as ``tf.nn`` (the core's path: 10). Higher orders and forward mode, 16-bit
    logits, other ranks and label dtypes take the core's path; a forward without a tape too (the
    core's log-softmax and gather: 0.75 of the kernel's time, which also makes the gradient).
    """
    return (
        tf.executing_eagerly()
        and logits.shape.rank == 2
        and logits.dtype in (tf.float32, tf.float64)
        and labels.dtype in _KERNEL_LABEL_DTYPES
        and 0 not in logits.shape
        and logits.device.endswith("CPU:0")
        and labels.device.endswith("CPU:0")
        and first_order_only(logits)
    )


def _sparse_kernel_with_gradient(
    op: SoftmaxCrossEntropy, arrays: list[Any]
) -> tuple[tf.Tensor, Any] | None:
    r"""The loss and its logits' gradient from TensorFlow's fused kernel, once the labels passed
    the eager checks and a tape will ask for the gradient; None elsewhere.

    ``SparseSoftmaxCrossEntropyWithLogits`` makes :math:`\ell` and
    :math:`\operatorname{softmax}(z) - \operatorname{onehot}(y)` in one kernel; the backward is
    then one product by the cotangent, where the core's takes five passes over ``(N, C)``
    (at 65536x10: 27 eager ops against 8). The kernel raises on CPU and gives NaN on GPU for
    a label out of range, so it is used only on validated labels; its loss and gradient are
    ``tf.nn``'s bit for bit (the core's agree to rounding). Rank-2 logits of 32 and 64 bits
    only (16-bit ones compute in float32 in the core, and this kernel would take them as they
    are).
    """
    logits, labels = arrays[0], arrays[1]
    if (
        not op.values_checked
        or logits.shape.rank != 2
        or logits.dtype not in (tf.float32, tf.float64)
        or 0 in logits.shape
    ):
        return None
    if labels.dtype not in _KERNEL_LABEL_DTYPES:
        labels = tf.cast(labels, tf.int64)
    loss, backprop = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=logits, labels=labels)

    def backward(upstream: tf.Tensor) -> tf.Tensor:
        return tf.expand_dims(upstream, -1) * backprop

    return loss, backward


@tf.autograph.experimental.do_not_convert
def sigmoid_cross_entropy_with_logits(
    labels: Any = None, logits: Any = None, name: str | None = None, *, validate: bool = True
) -> tf.Tensor:
    r"""Element-wise logistic loss of ``logits`` against ``labels`` in [0, 1].

    .. math::

        \ell = -t \log \sigma(x) - (1 - t) \log(1 - \sigma(x))
             = (1 - t)\, x + \log(1 + e^{-x})

    the core's ``SigmoidCrossEntropy`` (evaluated without overflow for any ``x``).

    Args:
        labels: targets of exactly the shape of ``logits`` (any real, integer or bool dtype).
        logits: real floating scores, any shape.
        name: a name scope for the operation.
        validate: check label values on eager inputs, which reads them back (a device sync
            on GPU); False skips the check, and invalid values then give NaN for the affected
            examples instead of an error. Never checked while tracing.

    Returns:
        The element-wise loss, of the shape and dtype of ``logits``.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import nn
    >>> nn.sigmoid_cross_entropy_with_logits(
    ...     labels=tf.constant([0., 1., 0.5]), logits=tf.constant([1., -1., 0.])).numpy()
    array([1.31326..., 1.31326..., 0.69314...], dtype=float32)
    """
    _require_both("sigmoid_cross_entropy_with_logits", labels, logits)
    with tf.name_scope(name or "logistic_loss"):
        logits = tf.convert_to_tensor(logits, name="logits")
        labels = tf.convert_to_tensor(labels, name="labels")
        labels = _with_static_rank(labels, logits, classes=False, why="the shape of logits")
        op = SigmoidCrossEntropy(reduction="none")
        return apply_op(op, logits, labels, None, None, validate=validate, names=_SIGMOID_NAMES)


@tf.autograph.experimental.do_not_convert
def weighted_cross_entropy_with_logits(
    labels: Any,
    logits: Any,
    pos_weight: Any,
    name: str | None = None,
    *,
    validate: bool = True,
) -> tf.Tensor:
    r"""Element-wise logistic loss with the positive term weighted by ``pos_weight``.

    .. math::

        \ell = -q\, t \log \sigma(x) - (1 - t) \log(1 - \sigma(x))
             = (1 - t)\, x + (1 + (q - 1)\, t) \log(1 + e^{-x})

    the core's ``SigmoidCrossEntropy`` with ``pos_weight`` :math:`q`.

    Args:
        labels: targets of exactly the shape of ``logits`` (any real, integer or bool dtype).
        logits: real floating scores, any shape.
        pos_weight: the non-negative weight of the positive term: a number, or an array that
            broadcasts to ``logits`` (e.g. one weight per class); cast to the compute dtype.
        name: a name scope for the operation.
        validate: check label values and ``pos_weight`` on eager inputs, which reads them
            back (a device sync on GPU); False skips the check, and invalid values then give
            NaN for the affected examples instead of an error. Never checked while tracing.

    Returns:
        The element-wise loss, of the shape and dtype of ``logits``.

    >>> import tensorflow as tf
    >>> from xentropy.backends.tensorflow import nn
    >>> nn.weighted_cross_entropy_with_logits(
    ...     labels=tf.constant([1., 0.5, 0.]), logits=tf.constant([1.5, -0.1, -10.]),
    ...     pos_weight=tf.constant(1.5)).numpy()
    array([3.02119...e-01, 8.80495...e-01, 4.53989...e-05], dtype=float32)
    """
    if pos_weight is None:
        raise TypeError("pos_weight is required: a number or an array broadcasting to logits")
    with tf.name_scope(name or "logistic_loss"):
        logits = tf.convert_to_tensor(logits, name="logits")
        labels = tf.convert_to_tensor(labels, name="labels")
        labels = _with_static_rank(labels, logits, classes=False, why="the shape of logits")
        weight = as_broadcast_weight(namespace_of(logits), pos_weight, logits)
        op = SigmoidCrossEntropy(reduction="none")
        return apply_op(op, logits, labels, weight, None, validate=validate, names=_SIGMOID_NAMES)


# Every other name is tf.nn's (see the module docstring).
_FRAMEWORK = ("tensorflow.nn",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
