r"""One ``jax.custom_jvp`` that runs any loss operator of the core, with every JAX transform.

:func:`apply_op` checks the inputs, then calls ``op.forward`` under a ``jax.custom_jvp`` rule
(``symbolic_zeros=True``, so the rule knows which inputs carry a tangent). For the loss
:math:`L(x, y, \theta)` of a prediction :math:`x`, targets or weights :math:`y` and array
hyperparameters :math:`\theta`, the rule returns

.. math::

    \dot L = \langle \nabla_x L, \dot x \rangle
        + \mathrm{jvp}_{y, \theta}(L_{\mathrm{exact}})(\dot y, \dot\theta)

* **Fast path** (the prediction; every input ``op.backward`` covers when the loss is a scalar):
  :math:`g = \texttt{op.backward}(\text{residuals}, 1)` is the analytic gradient, computed with
  the forward (as Liger does), and contracted with the tangent: ``sum(g * t)`` for a scalar
  loss, ``g * t`` for an element-wise loss, the sum over the class axis ``op.axis`` for a loss
  per example. Reverse mode transposes that linear map: ``jax.grad`` of the prediction costs one
  forward and one analytic backward, as with a ``custom_vjp``.
* **Exact path** (every other floating input: probability targets, class weights, array
  hyperparameters; and a loss of any other shape): ``jax.jvp`` of ``ops.differentiable_loss``,
  the operator's forward in the spelling whose derivatives are right for every input and order.
* **Higher orders**: the analytic gradient :math:`g` is itself the output of a second
  ``custom_jvp`` (:func:`_value_and_grad`), whose rule differentiates the exact gradient
  (``jax.vjp`` of ``ops.differentiable_loss``) instead of ``op.backward``'s own operations, and
  the rule's primal loss is that function's output too. No derivative ever goes through the
  fast spellings of ``op.forward`` / ``op.backward``, so ``jax.hessian`` and
  ``check_grads(order=2)`` are exact for every operator, generically.

The operator (a frozen dataclass) is a static argument. An operator holding array
hyperparameters (``ops.array_hyperparameters``: traced ``epsilon``, ``gamma``, ...) is not
hashable: those arrays travel as dynamic arguments, and the operator is rebuilt inside with
``dataclasses.replace``; it always takes the exact path (its backward has no gradient for them).

Integer and bool inputs (class indices, masks) have no derivative: JAX gives them ``float0``
tangents and cotangents (``jax.grad(..., allow_int=True)`` shows them).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from xentropy import ops
from xentropy._errors import Dialect, Rule, ShapeMismatch, dialect_names, forward_parameters


@dataclasses.dataclass(frozen=True)
class _Static:
    """What the rules know at trace time: the operator without its array hyperparameters.

    ``op`` holds ``None`` in each field named in ``hyperparameters``; the values follow the
    ``num_arrays`` arrays among the dynamic arguments, in that order.
    """

    op: Any
    num_arrays: int
    hyperparameters: tuple[str, ...]

    def operator(self, dynamic: tuple[Any, ...]) -> Any:
        """The operator with its hyperparameters taken from ``dynamic``."""
        if not self.hyperparameters:
            return self.op
        values = dict(zip(self.hyperparameters, dynamic[self.num_arrays :], strict=True))
        op = dataclasses.replace(self.op, **values)
        # Inside an eager transform's rule the values are concrete again, and become Python
        # numbers that no check has seen: their static check runs here.
        arrays = dynamic[: self.num_arrays]
        op.check(ops.namespace_of(*arrays), *arrays, values=False)
        return op

    @property
    def gradient_positions(self) -> tuple[int, ...]:
        """Positions of the arrays ``op.backward`` returns gradients for, in its order."""
        return ops.op_gradient_positions(self.op, self.num_arrays)

    @property
    def prediction_position(self) -> int:
        return ops.op_prediction_position(self.op, self.num_arrays)


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


# optax's classes for the core's errors: a shape mismatch is JAX's TypeError ("incompatible
# shapes for broadcasting") as well as a ValueError; the others are optax's already, or optax
# raises nothing (a class index out of range gives NaN).
JAX = Dialect("optax", {ShapeMismatch: Rule(TypeError)})


def apply_op(
    op: ops.LossOperator,
    *arrays: Any,
    validate: bool = True,
    names: tuple[str, ...] | None = None,
    errors: Dialect = JAX,
) -> jax.Array:
    """Evaluate a core loss operator on JAX arrays, differentiable by every JAX transform.

    Args:
        op: an operator of ``xentropy.ops`` (``SoftmaxCrossEntropy(...)``, ...).
        *arrays: the arrays ``op.forward`` takes, in its order; ``None`` for an absent optional
            array. NumPy arrays and Python numbers are converted with ``jnp.asarray``.
        validate: check values (label range, probabilities, weights) when they are concrete.
            Under ``jax.jit`` / ``jax.vmap`` the checks are skipped and bad rows give NaN (loss
            and gradient).
        names: the caller's names of the arrays (``("logits", "labels", ...)``), which its
            errors use; each error is also raised as ``errors`` translates it (:data:`JAX`:
            optax's class for the mistake as well as the core's). None (the core's own
            functions) keeps the core's names and classes.

    Returns:
        ``op``'s loss as a ``jax.Array``. ``jax.grad`` / ``jax.vjp`` / ``jax.jvp`` of the
        prediction use ``op.backward``; every other floating input (probability targets,
        weights, array hyperparameters) and every higher order is differentiated exactly.
    """
    converted = tuple(None if a is None else jnp.asarray(a) for a in arrays)
    position = ops.op_prediction_position(op, len(arrays))
    mapping = None if names is None else dialect_names(forward_parameters(op), names, position)
    with errors.raising(mapping):
        op = _check(op, converted, validate)
    hyperparameters = ops.array_hyperparameters(op)
    dynamic = tuple(sorted(hyperparameters))
    static_op = dataclasses.replace(op, **dict.fromkeys(dynamic)) if dynamic else op
    static = _Static(static_op, len(converted), dynamic)
    values = tuple(jnp.asarray(hyperparameters[name]) for name in dynamic)
    return _run(static, *converted, *values)


# --- helpers of the rules ---------------------------------------------------------------------


def _is_zero(tangent: Any) -> bool:
    """Whether a tangent is absent: a symbolic zero, or that of a ``None`` input."""
    return tangent is None or isinstance(tangent, SymbolicZero)


def _namespace(arrays: tuple[Any, ...]) -> Any:
    return ops.namespace_of(*arrays)


def _substituted(dynamic: tuple[Any, ...], positions: tuple[int, ...], values: tuple[Any, ...]):
    """``dynamic`` with the entries at ``positions`` replaced by ``values``."""
    result = list(dynamic)
    for position, value in zip(positions, values, strict=True):
        result[position] = value
    return tuple(result)


def _exact_loss(static: _Static, dynamic: tuple[Any, ...]) -> jax.Array:
    """The loss by ``ops.differentiable_loss``: JAX's autodiff of it is exact at every order."""
    arrays = dynamic[: static.num_arrays]
    return ops.differentiable_loss(static.operator(dynamic), _namespace(arrays), *arrays)


def _exact_jvp(
    fn: Callable[[tuple[Any, ...]], Any],
    dynamic: tuple[Any, ...],
    tangents: tuple[Any, ...],
    positions: tuple[int, ...],
) -> tuple[Any, Any]:
    """``jax.jvp`` of ``fn(dynamic)`` along ``tangents`` at ``positions`` (the others fixed)."""

    def along(*values: Any) -> Any:
        return fn(_substituted(dynamic, positions, values))

    primals = tuple(dynamic[p] for p in positions)
    return jax.jvp(along, primals, tuple(tangents[p] for p in positions))


def _class_axis(static: _Static, loss: Any, prediction: Any) -> int | None:
    """How the loss contracts the prediction's tangent, from their shapes.

    ``-1`` for a scalar or element-wise loss (no axis to sum), the non-negative class axis for a
    loss per example (the prediction's shape without ``op.axis``), ``None`` otherwise.
    """
    if loss.ndim == 0 or loss.shape == prediction.shape:
        return -1
    axis = getattr(static.op, "axis", -1)
    if not isinstance(axis, int) or not -prediction.ndim <= axis < prediction.ndim:
        return None
    axis %= prediction.ndim
    if loss.shape == prediction.shape[:axis] + prediction.shape[axis + 1 :]:
        return axis
    return None


def _contract(loss: Any, gradient: Any, tangent: Any, axis: int) -> jax.Array:
    r""":math:`\langle g, t \rangle` as the loss sees it: summed whole, per element, or per row."""
    product = gradient * tangent
    if loss.ndim == 0:
        contracted = jnp.sum(product)
    elif axis < 0:
        contracted = product
    else:
        contracted = jnp.sum(product, axis=axis)
    return contracted.astype(loss.dtype)


def _fast_positions(
    static: _Static, dynamic: tuple[Any, ...], tangents: tuple[Any, ...]
) -> dict[int, int]:
    r"""The perturbed inputs the analytic gradient covers here, with their contraction axes.

    Every position of ``op.backward`` when the loss is a scalar (a sum of :math:`g \cdot t` is
    right for any input); otherwise only the prediction, whose loss is element-wise or per row
    (a weight's contribution to a per-example loss is not row-wise). Empty for an operator with
    array hyperparameters: its backward takes no arrays for them.
    """
    if static.hyperparameters:
        return {}
    arrays = dynamic[: static.num_arrays]
    loss = jax.eval_shape(functools.partial(_run, static), *dynamic)
    fast = {}
    for position in static.gradient_positions:
        if _is_zero(tangents[position]):
            continue
        if loss.ndim == 0:
            fast[position] = -1
        elif position == static.prediction_position:
            axis = _class_axis(static, loss, arrays[position])
            if axis is not None:
                fast[position] = axis
    return fast


def _perturbed(tangents: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(i for i, t in enumerate(tangents) if not _is_zero(t))


# --- the loss ---------------------------------------------------------------------------------


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _run(static: _Static, *dynamic: Any) -> jax.Array:
    arrays = dynamic[: static.num_arrays]
    loss, _ = static.operator(dynamic).forward(_namespace(arrays), *arrays)
    return loss


def _run_jvp(static: _Static, primals: tuple[Any, ...], tangents: tuple[Any, ...]):
    fast = _fast_positions(static, primals, tangents)
    exact = tuple(p for p in _perturbed(tangents) if p not in fast)
    if fast:
        loss, gradients = _value_and_grad(static, *primals)
        if len(static.gradient_positions) == 1:
            gradients = (gradients,)
        by_position = dict(zip(static.gradient_positions, gradients, strict=True))
        parts = [_contract(loss, by_position[p], tangents[p], axis) for p, axis in fast.items()]
    else:
        loss, parts = _run(static, *primals), []
    if exact:
        _, exact_tangent = _exact_jvp(
            functools.partial(_exact_loss, static), primals, tangents, exact
        )
        parts.append(exact_tangent.astype(loss.dtype))
    tangent = functools.reduce(jnp.add, parts) if parts else jnp.zeros_like(loss)
    return loss, tangent


# --- the loss and its analytic gradient, for the fast path ------------------------------------


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _value_and_grad(static: _Static, *dynamic: Any) -> tuple[jax.Array, Any]:
    """The loss and ``op.backward``'s gradient of its sum (all ones as the cotangent)."""
    arrays = dynamic[: static.num_arrays]
    xp = _namespace(arrays)
    loss, residuals = static.op.forward(xp, *arrays)
    return loss, static.op.backward(xp, residuals, jnp.ones_like(loss))


def _exact_value_and_grad(static: _Static, dynamic: tuple[Any, ...]) -> tuple[jax.Array, Any]:
    """What :func:`_value_and_grad` computes, by ``jax.vjp`` of ``ops.differentiable_loss``."""
    positions = tuple(p for p in static.gradient_positions if dynamic[p] is not None)
    loss, pullback = jax.vjp(
        lambda *values: _exact_loss(static, _substituted(dynamic, positions, values)),
        *(dynamic[p] for p in positions),
    )
    by_position = dict(zip(positions, pullback(jnp.ones_like(loss)), strict=True))
    gradients = tuple(by_position.get(p) for p in static.gradient_positions)
    return loss, gradients[0] if len(gradients) == 1 else gradients


def _value_and_grad_jvp(static: _Static, primals: tuple[Any, ...], tangents: tuple[Any, ...]):
    """Second and higher orders: the tangent of the exact loss and gradient.

    The primal outputs stay the analytic ones (this function's own output, so that a further
    derivative comes back here).
    """
    primal_out = _value_and_grad(static, *primals)
    _, tangent_out = _exact_jvp(
        functools.partial(_exact_value_and_grad, static), primals, tangents, _perturbed(tangents)
    )
    tangent_out = jax.tree.map(lambda t, p: t.astype(p.dtype), tangent_out, primal_out)
    return primal_out, tangent_out


_run.defjvp(_run_jvp, symbolic_zeros=True)
_value_and_grad.defjvp(_value_and_grad_jvp, symbolic_zeros=True)
