r"""Running any core loss operator under TensorFlow's autodiff, analytic backward first.

The core (``xentropy.ops``) describes each loss as an operator with ``check``, ``forward`` and an
analytic first-order ``backward`` of the prediction. :func:`apply_op` runs the checks, then
evaluates ``forward`` inside a ``tf.custom_gradient`` function. Its gradient function picks one
of two paths for the vector-Jacobian product :math:`u \mapsto u^\top \partial \ell / \partial x`:

* **fast**: the prediction's gradient from ``op.backward`` (the forward's residuals, no second
  pass), used for a plain first-order ``tape.gradient(loss, logits)``, eager or traced;
* **exact**: ``ops.differentiable_loss`` (the forward spelled for autodiff) differentiated by an
  inner ``tf.GradientTape``. It gives the gradients of the other floating inputs (probability
  targets, weights, ``p`` of the information measures), and every higher order: whenever the
  gradient computation is itself differentiated, it is this path that gets differentiated.

Which derivatives are asked for is decided as follows. Eagerly, inputs other than the prediction
get a gradient only if a tape watches them (``should_record_backprop``), so a first-order
``tape.gradient(loss, logits)`` costs what it did before; if a tape or forward accumulator
records the gradient function itself (nested tapes, ``tf.autodiff.ForwardAccumulator``), the
whole gradient takes the exact path. While tracing (``tf.function``, XLA, graph mode) nothing
runs at trace time, so all floating inputs get a gradient (ops nobody fetches are pruned) and
the first-order result is itself a ``tf.custom_gradient`` function of the inputs and the
cotangent whose gradient is the exact path's: ``tf.gradients(tf.gradients(...))`` and nested
tapes then get exact second derivatives, while the first order stays analytic. An operator with
array hyperparameters (traced, or ``tf.Variable``) is evaluated by ``differentiable_loss``
alone, which TensorFlow differentiates like any other function. This module holds no numerics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
from tensorflow.python.eager import record
from tensorflow.python.ops import gradients_util

from xentropy import _native
from xentropy._autograph import keep_out_of_autograph
from xentropy._errors import Dialect, dialect_names, forward_parameters
from xentropy.ops import (
    LossOperator,
    array_hyperparameters,
    checked_operator,
    differentiable_loss,
    op_differentiable_positions,
    op_gradient_positions,
    op_prediction_position,
)

from ._errors import TENSORFLOW

keep_out_of_autograph()  # as tf.nn is: see xentropy._autograph

Gradients = dict[int, Any]
# (op, arrays) -> the loss and a function of the cotangent giving the prediction's gradient, or
# None where the framework kernel does not apply (see ``apply_op``'s ``fused``)
FusedKernel = Callable[[Any, list[Any]], tuple[Any, Callable[[Any], Any]] | None]


@tf.autograph.experimental.do_not_convert
def apply_op(
    op: LossOperator,
    *arrays: Any,
    validate: bool = True,
    names: tuple[str, ...] | None = None,
    errors: Dialect = TENSORFLOW,
    fused: FusedKernel | None = None,
) -> tf.Tensor:
    """The loss ``op.forward(xp, *arrays)``, differentiable for TensorFlow's autodiff.

    Every floating input gets its derivative, at any order, as for a loss written in TensorFlow
    ops; integer and bool inputs (class indices) get ``None``. A first-order gradient of the
    prediction (or of the hidden states, weight and bias of ``LinearCrossEntropy``) is the
    operator's analytic backward.

    Args:
        op: a loss operator of ``xentropy.ops``.
        *arrays: the operator's ``forward`` arguments in order; ``None`` for an absent optional
            array. Anything else is converted with ``tf.convert_to_tensor`` (a ``tf.Variable``
            is read, so that the tape still reaches it).
        validate: check target values when the prediction is eager. While tracing
            (``tf.function``, XLA) values are never checked; bad rows become NaN instead.
        names: the caller's names of the arrays (``("logits", "labels", ...)``), which its
            errors use; each error is also raised as ``errors`` translates it (see
            :mod:`._errors`: ``tf.errors.InvalidArgumentError`` as well as the core's class).
            None (the core's own functions) keeps the core's names and classes.
        fused: a framework kernel computing the same loss and its gradient at once, tried
            when the call is eager and a tape records the prediction (the gradient will be
            asked for): ``fused(checked_op, arrays)`` returns the loss and a function of the
            cotangent giving the prediction's gradient, or None to take the core's forward.
            Everything but that first-order gradient still takes the paths above.

    Returns:
        The loss, a ``tf.Tensor`` in the prediction's dtype.
    """
    tensors = [None if a is None else tf.convert_to_tensor(a) for a in arrays]
    position = op_prediction_position(op, len(tensors))
    mapping = None if names is None else dialect_names(forward_parameters(op), names, position)
    with errors.raising(mapping):
        xp, op = checked_operator(op, *tensors, prediction=tensors[position], validate=validate)
    if array_hyperparameters(op):
        # No analytic backward for a hyperparameter: TensorFlow differentiates the forward.
        return differentiable_loss(op, xp, *tensors)
    return _with_custom_gradient(op, xp, tensors, fused)


def _with_custom_gradient(
    op: LossOperator, xp: Any, tensors: list[Any], fused: FusedKernel | None = None
) -> tf.Tensor:
    """``op``'s loss on ``tensors`` through ``tf.custom_gradient`` (see the module docstring)."""
    analytic = op_gradient_positions(op, len(tensors))
    floating = op_differentiable_positions(op, tuple(tensors))
    extra = [i for i in floating if i not in analytic]
    eager = tf.executing_eagerly()
    if eager:
        extra = [i for i in extra if record.should_record_backprop([tensors[i]])]
    use_fused = (
        fused is not None
        and eager
        and len(analytic) == 1
        and record.should_record_backprop([tensors[analytic[0]]])
    )
    if use_fused and fused is not None and not extra and first_order_only(tensors[analytic[0]]):
        kernel = fused(op, tensors)
        if kernel is not None:
            # the kernel's own loss: the tape records TensorFlow's registered gradient of the
            # kernel, which no other tape or accumulator will differentiate (no
            # tf.custom_gradient, its identity and its Python: 10 eager ops for f+b become 9)
            return kernel[0]
    # tf.custom_gradient takes tensors only: the absent (None) arrays are put back inside.
    present = [i for i, t in enumerate(tensors) if t is not None]

    @tf.custom_gradient
    def loss_with_gradient(*given: tf.Tensor) -> tuple[tf.Tensor, Any]:
        full = list(tensors)
        for i, t in zip(present, given, strict=True):
            full[i] = t
        kernel = fused(op, full) if use_fused and fused is not None else None
        if kernel is None:
            loss, residuals = op.forward(xp, *full)
        else:
            loss, kernel_backward = kernel

        def fast(upstream: tf.Tensor) -> Gradients:
            if kernel is None:
                upstream, kept = _after_forward(loss, upstream, residuals, full)
                computed = op.backward(xp, kept, upstream)
            else:
                computed = kernel_backward(upstream)
            grads = (computed,) if len(analytic) == 1 else computed
            by_position = dict(zip(analytic, grads, strict=True))
            return {**by_position, **_exact_gradients(op, xp, full, extra, upstream)}

        def gradient(upstream: tf.Tensor) -> list[tf.Tensor | None]:
            upstream = _shaped_like(upstream, loss)
            wanted = [i for i in (*analytic, *extra) if full[i] is not None]
            if not tf.executing_eagerly():
                by_position = _differentiable_first_order(op, xp, full, wanted, upstream, fast)
            elif record.could_possibly_record():
                by_position = _exact_gradients(op, xp, full, wanted, upstream)
            else:
                by_position = fast(upstream)
            return [by_position.get(i) for i in present]

        return loss, gradient

    return loss_with_gradient(*(tensors[i] for i in present))


def _after_forward(
    loss: tf.Tensor, upstream: tf.Tensor, residuals: tuple[Any, ...], inputs: Sequence[Any]
) -> tuple[tf.Tensor, tuple[Any, ...]]:
    """The cotangent and the residuals as the backward should read them: in a TensorFlow graph
    outside XLA, the cotangent and each floating residual of rank 2 or more that the forward
    computed (not an input) wait for ``loss``; elsewhere unchanged.

    The backward's first ops need only those (a mean's cotangent depends on shapes alone), so
    TensorFlow's executor would run them beside the forward: at tf.function dense 8192x1000 the
    backward's ``exp`` of the kept log-softmax and its ``t * g`` were allocated while the
    forward's ``(N, C)`` product was alive (peak 127 MiB; 64 when they wait, the log-softmax
    and the gradient; native 32). Reductions over the inputs (the targets' row total) still run
    beside the forward: making the whole backward wait cost 10% of the time. XLA plans its own
    buffers. ``tf.identity`` copies nothing.
    """
    if not _native.tensorflow_graph_outside_xla():
        return upstream, residuals

    def computed(r: Any) -> bool:
        return (
            isinstance(r, tf.Tensor)
            and r.dtype.is_floating
            and (r.shape.rank is None or r.shape.rank >= 2)
            and not any(r is x for x in inputs)
        )

    with tf.control_dependencies([loss]):
        upstream = tf.identity(upstream)
        kept = tuple(tf.identity(r) if computed(r) else r for r in residuals)
    return upstream, kept


def first_order_only(prediction: tf.Tensor) -> bool:
    """Whether the active tapes and forward accumulators ask for a gradient of ``prediction``,
    and of first order only (one tape watching it, nothing recording that tape's work)."""
    return (
        gradients_util.PossibleTapeGradientTypes([prediction])
        == gradients_util.POSSIBLE_GRADIENT_TYPES_FIRST_ORDER
    )


def _shaped_like(upstream: tf.Tensor, loss: tf.Tensor) -> tf.Tensor:
    """The cotangent with the loss's static shape: ``tf.gradients`` may pass ``grad_ys`` of
    unknown rank, which the backward's broadcasting needs; checked at run time."""
    if upstream.shape.rank is None:
        return tf.ensure_shape(upstream, loss.shape)
    return upstream


def _exact_gradients(
    op: LossOperator, xp: Any, full: Sequence[Any], positions: Sequence[int], upstream: Any
) -> Gradients:
    r"""``{i: upstream^T d loss / d full[i]}`` for ``i`` in ``positions``, by TensorFlow's
    autodiff of ``differentiable_loss``; differentiable again at any order.

    Each source is a fresh ``tf.identity``, so that an array passed twice (``f(z, z)``) gets the
    partial derivative of each of its positions, not their sum.
    """
    if not positions:
        return {}
    arrays = list(full)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for i in positions:
            arrays[i] = tf.identity(full[i])
            tape.watch(arrays[i])
        loss = differentiable_loss(op, xp, *arrays)
    grads = tape.gradient(
        loss,
        [arrays[i] for i in positions],
        output_gradients=upstream,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return dict(zip(positions, grads, strict=True))


def _differentiable_first_order(
    op: LossOperator,
    xp: Any,
    full: Sequence[Any],
    positions: Sequence[int],
    upstream: tf.Tensor,
    first_order: Callable[[tf.Tensor], Gradients],
) -> Gradients:
    r"""``first_order(upstream)`` (analytic) as a function of ``full[positions]`` and
    ``upstream`` whose own gradient is the exact path's.

    For cotangents :math:`w_i` of the gradients :math:`g_i = u^\top \partial \ell / \partial x_i`
    that gradient is :math:`\partial (\sum_i w_i^\top g_i) / \partial (x, u)`, taken by a tape
    around :func:`_exact_gradients`: second derivatives (Hessian-vector products, mixed ones
    with the targets) for ``tf.gradients`` and tapes alike, and every higher order.
    """
    positions = list(positions)

    @tf.custom_gradient
    def gradients(*args: tf.Tensor) -> tuple[list[tf.Tensor], Any]:
        computed = first_order(args[-1])
        result = [computed[i] for i in positions]

        def second_order(*cotangents: tf.Tensor | None) -> list[tf.Tensor | None]:
            sources = list(args)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(sources)
                arrays = list(full)
                for i, x in zip(positions, sources[:-1], strict=True):
                    arrays[i] = x
                exact = _exact_gradients(op, xp, arrays, positions, sources[-1])
            targets = [exact[i] for i in positions]
            weights = [
                tf.zeros_like(g) if w is None else w
                for g, w in zip(targets, cotangents, strict=True)
            ]
            return tape.gradient(targets, sources, output_gradients=weights)

        return result, second_order

    grads = gradients(*(full[i] for i in positions), upstream)
    return dict(zip(positions, grads, strict=True))
