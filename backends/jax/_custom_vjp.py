"""One ``jax.custom_vjp`` that runs any loss operator of the core with the core's own backward.

:func:`apply_op` checks the inputs, then calls ``op.forward`` under a ``jax.custom_vjp`` whose
backward is ``op.backward``: JAX never differentiates through the forward computation. The
operator (a frozen, hashable dataclass) is a static argument, so ``jax.jit`` caches one
compilation per operator and shape.

Cotangents of the inputs that the core does not differentiate (integer labels, probability
labels, class weights, ``alpha`` arrays) are returned as ``None``, which JAX turns into the right
zero: a ``float0`` zero for integer and bool inputs (``jax.vjp`` and ``jax.grad(...,
allow_int=True)`` show it), a discarded zero for a floating input that is not differentiated. A
floating input that *is* being differentiated, other than the ones the core's backward covers,
is an error: its true gradient is not zero, and returning zero would be silently wrong
(``symbolic_zeros=True`` tells the forward rule which inputs are being differentiated).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from xentropy import ops

# (number of arrays given to ``op.forward``, positions of the arrays ``op.backward`` returns
# gradients for, in the order it returns them)
_Layout = tuple[int, tuple[int, ...]]


def _check(op: ops.LossOperator, arrays: tuple[Any, ...], validate: bool) -> ops.LossOperator:
    """Static checks always; value checks whenever every value they read is concrete.

    Returns the operator to run: ``values_checked`` is set when the value checks ran.

    Unlike ``ops.checked_operator`` (which skips value checks whenever the prediction is a tracer),
    this also validates labels inside an eager ``jax.grad``, whose tracers carry concrete
    values. Under ``jax.jit``, ``jax.vmap`` or ``jax.eval_shape`` a value read raises
    ``ConcretizationTypeError``; the checks then run again without reading values, and bad rows
    become NaN in the core instead.
    """
    xp = ops.namespace_of(*arrays)
    if validate:
        try:
            op.check(xp, *arrays, values=True)
        except jax.errors.ConcretizationTypeError:
            pass
        else:
            return dataclasses.replace(op, values_checked=True)
    op.check(xp, *arrays, values=False)
    return op


def apply_op(op: ops.LossOperator, *arrays: Any, validate: bool = True) -> jax.Array:
    """Evaluate a core loss operator on JAX arrays, with its analytic backward registered.

    Args:
        op: an operator of ``xentropy.ops`` (``SoftmaxCrossEntropy(...)``, ...).
        *arrays: the arrays ``op.forward`` takes, in its order; ``None`` for an absent optional
            array. NumPy arrays and Python numbers are converted with ``jnp.asarray``.
        validate: check values (label range, probabilities, weights) when they are concrete.
            Under ``jax.jit`` / ``jax.vmap`` the checks are skipped and bad rows give NaN.

    Returns:
        ``op``'s loss as a ``jax.Array``; ``jax.grad`` / ``jax.vjp`` through it call
        ``op.backward``. Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``,
        ``jax.hessian``) is not available, as for any ``jax.custom_vjp``.
    """
    converted = tuple(None if a is None else jnp.asarray(a) for a in arrays)
    op = _check(op, converted, validate)
    layout = (len(converted), ops.op_gradient_positions(op, len(converted)))
    return _run(op, layout, *converted)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _run(op: ops.LossOperator, layout: _Layout, *arrays: Any) -> jax.Array:
    loss, _ = op.forward(ops.namespace_of(*arrays), *arrays)
    return loss


def _is_primal(x: Any) -> bool:
    return isinstance(x, CustomVJPPrimal)


def _run_fwd(
    op: ops.LossOperator, layout: _Layout, *primals: Any
) -> tuple[jax.Array, tuple[Any, ...]]:
    _, positions = layout
    for index, primal in enumerate(primals):
        if primal is not None and primal.perturbed and index not in positions:
            value = primal.value
            raise TypeError(
                f"xentropy.backends.jax: {type(op).__name__} is being differentiated with "
                f"respect to its input at position {index} (shape {tuple(value.shape)}, dtype "
                f"{value.dtype}), but only the inputs at {positions} have a gradient (the "
                "logits or probabilities); a zero gradient would be silently wrong. Wrap the "
                "labels in jax.lax.stop_gradient if they are fixed targets."
            )
    arrays = jax.tree.map(lambda p: p.value, primals, is_leaf=_is_primal)
    loss, residuals = op.forward(ops.namespace_of(*arrays), *arrays)
    return loss, residuals


def _run_bwd(
    op: ops.LossOperator, layout: _Layout, residuals: tuple[Any, ...], cotangent: Any
) -> tuple[Any, ...]:
    num_arrays, positions = layout
    cotangents: list[Any] = [None] * num_arrays
    if isinstance(cotangent, SymbolicZero):  # the loss does not reach the differentiated output
        return tuple(cotangents)
    cotangent = jnp.asarray(cotangent)  # jax.test_util.check_grads passes NumPy cotangents
    grads = op.backward(ops.namespace_of(cotangent), residuals, cotangent)
    if len(positions) == 1:
        grads = (grads,)
    for position, grad in zip(positions, grads, strict=True):
        cotangents[position] = grad
    return tuple(cotangents)


_run.defvjp(_run_fwd, _run_bwd, symbolic_zeros=True)
