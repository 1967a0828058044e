"""One ``torch.autograd.Function`` for every core loss operator, and the exact path beside it.

:func:`apply` checks the inputs with the core, then takes one of two paths (or, where autograd
records nothing, no input requiring grad or grad mode off, calls the operator's ``forward``
alone):

* the FAST PATH, :class:`CoreLoss`: ``forward`` is the operator's ``forward`` (under autograd's
  no-grad mode, so no graph is recorded through it) and ``backward`` the operator's analytic
  first-order ``backward`` of the prediction (``op_gradient_positions``: the logits or
  probabilities; the hidden states, weight and bias of ``LinearCrossEntropy``; an operator with
  ``forward_and_backward``, ``LinearCrossEntropy``, computes them in the forward when autograd
  records the call, and the backward scales them). It is taken when
  that is all autograd can ask for: no array hyperparameter (``ops.array_hyperparameters``), no
  forward-mode dual level active (``torch.autograd.forward_ad``), no ``torch.func`` transform
  active (``grad``, ``vmap``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``), and no floating
  input outside the gradient positions (probability targets, BCE targets, weights) requiring
  grad.
* otherwise the EXACT PATH, ``ops.differentiable_loss``: the operator's forward written with
  out-of-place torch ops whose derivatives are right for every input and every order, which
  torch's autograd and functorch differentiate like any other torch code (forward mode,
  ``gradgradcheck``, ``torch.func`` transforms, per-sample gradients, gradients of targets and
  weights).

Double backward through the fast path (``create_graph=True``: gradient penalties, MAML,
``gradgradcheck``) works too: :meth:`CoreLoss.backward` then recomputes the gradient as
``torch.autograd.grad`` of ``differentiable_loss`` on the saved inputs, with
``create_graph=True``, so the gradient it returns is itself differentiable. The inputs are kept
on ``ctx`` for that purpose, with their versions (see the last paragraph).

Value checks (``validate=True``) run eagerly, outside ``torch.compile`` and outside
``torch.func.vmap``: reading values back is data-dependent control flow, which ``vmap`` cannot
batch. Under ``vmap`` the NaN contract stands in for them, as under ``torch.compile`` or with
``validate=False``: an invalid class index, probability or weight gives NaN for the examples it
reaches, loss and gradient.

What the analytic backward reads is saved with ``ctx.save_for_backward``. Where that is not the
prediction (``cross_entropy`` with class indices keeps the log-softmax, as PyTorch does), the
prediction may be edited in place between the forward and a first-order backward. Where it is
(the other losses keep their input; so do PyTorch's ``nll_loss`` and
``binary_cross_entropy_with_logits``), autograd's version check raises "modified by an inplace
operation" instead of silently using the new values; so does the exact path, which needs every
input as it was.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import forward_ad
from torch.autograd.function import FunctionCtx

from xentropy import ops
from xentropy._errors import Dialect, InputError, dialect_names, forward_parameters

from ._errors import TORCH

_functorch = torch._C._functorch
_VMAP = _functorch.TransformType.Vmap


class CoreLoss(torch.autograd.Function):
    """``CoreLoss.apply(op, *arrays)``: ``op.forward`` with ``op.backward`` as its gradient.

    The analytic ``backward`` gives the gradients of ``op_gradient_positions``; when autograd
    records a graph of the backward (``create_graph=True``), or asks for another input's gradient,
    the gradient is instead autograd's own of ``ops.differentiable_loss`` on the saved inputs.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, op: ops.LossOperator, *arrays: Any) -> torch.Tensor:
        xp = ops.namespace_of(*arrays)
        loss, residuals = _forward(ctx, op, xp, arrays)
        is_tensor = tuple([isinstance(r, torch.Tensor) for r in residuals])
        ctx.save_for_backward(*[r for r in residuals if isinstance(r, torch.Tensor)])
        # The inputs serve only the exact path (double backward, other inputs' gradients).
        # Kept outside save_for_backward so that editing one in place after the forward does
        # not break a first-order backward that does not read it (as with the native losses);
        # the exact path checks their versions itself.
        ctx.inputs = arrays
        ctx.versions = None if torch.compiler.is_compiling() else _versions(arrays)
        ctx.constants = tuple([None if t else r for r, t in zip(residuals, is_tensor, strict=True)])
        ctx.is_tensor = is_tensor
        ctx.op = op
        ctx.positions = ops.op_gradient_positions(op, len(arrays))
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        needs = ctx.needs_input_grad[1:]
        grads: list[torch.Tensor | None] = [None] * (1 + len(needs))
        if not any(needs):
            return tuple(grads)
        others = any(n and p not in ctx.positions for p, n in enumerate(needs))
        if torch.is_grad_enabled() or others:
            ctx.gradients = None  # any the forward computed: this path differentiates anew
            if ctx.versions is not None and _versions(ctx.inputs) != ctx.versions:
                raise RuntimeError(
                    "xentropy.backends.torch: an input of this loss was modified by an inplace "
                    "operation after the forward; the higher-order (or non-prediction) "
                    "gradient needs its original value"
                )
            computed = exact_gradients(ctx.op, ctx.inputs, needs, grad_output)
            for position, grad in computed.items():
                grads[1 + position] = grad
            return tuple(grads)
        tensors = iter(ctx.saved_tensors)
        residuals = tuple(
            [next(tensors) if t else c for t, c in zip(ctx.is_tensor, ctx.constants, strict=True)]
        )
        computed = _first_order_gradients(ctx, residuals, grad_output)
        if len(ctx.positions) == 1:
            computed = (computed,)
        for position, grad in zip(ctx.positions, computed, strict=True):
            if needs[position]:
                grads[1 + position] = grad
        return tuple(grads)


def _forward_with_gradients(ctx: FunctionCtx, op: ops.LossOperator, *arrays: Any) -> torch.Tensor:
    ctx.gradient_in_forward = True
    return CoreLoss.forward(ctx, op, *arrays)


# CoreLoss for a call autograd records, of an operator with ``forward_and_backward``
# (``LinearCrossEntropy``): the forward computes the gradients too, and the first backward
# takes them (:func:`_first_order_gradients`). Named CoreLoss as well: its graph node is
# ``CoreLossBackward`` like that of every core loss.
GradientInForward: type[CoreLoss] = type(
    "CoreLoss", (CoreLoss,), {"forward": staticmethod(_forward_with_gradients)}
)


def _forward(
    ctx: Any, op: ops.LossOperator, xp: Any, arrays: tuple[Any, ...]
) -> tuple[Any, tuple[Any, ...]]:
    """``op.forward``; under :class:`GradientInForward`, eagerly, ``op.forward_and_backward``
    for the gradient positions that need one, its gradients kept on ``ctx`` (not
    ``save_for_backward``: the backward drops them, so that autograd can hand them on as they
    are instead of copying them)."""
    ctx.gradients, ctx.needs_in_forward = None, None
    if not getattr(ctx, "gradient_in_forward", False) or torch.compiler.is_compiling():
        return op.forward(xp, *arrays)
    positions = ops.op_gradient_positions(op, len(arrays))
    needs = tuple(ctx.needs_input_grad[1 + p] for p in positions)
    if not any(needs):
        return op.forward(xp, *arrays)
    loss, residuals, ctx.gradients = op.forward_and_backward(xp, *arrays, needs=needs)
    if ctx.gradients is not None:
        ctx.needs_in_forward = needs
    return loss, residuals


def _first_order_gradients(
    ctx: Any, residuals: tuple[Any, ...], grad_output: torch.Tensor
) -> tuple[Any, ...]:
    """The analytic gradients of the positions: those the forward computed, scaled by
    ``grad_output`` in place, or ``op.backward``'s. A later backward of the same graph
    (``retain_graph=True``) finds them taken and computes them again the same way, so it gets
    the same bits."""
    xp = ops.namespace_of(grad_output)
    gradients, ctx.gradients = ctx.gradients, None
    if gradients is None and ctx.needs_in_forward is not None:
        gradients = ctx.op.forward_and_backward(xp, *ctx.inputs, needs=ctx.needs_in_forward)[2]
    if gradients is None:
        return ctx.op.backward(xp, residuals, grad_output)
    return ctx.op.stored_backward(xp, residuals, gradients, grad_output)


def _versions(arrays: tuple[Any, ...]) -> tuple[int | None, ...]:
    return tuple([a._version if isinstance(a, torch.Tensor) else None for a in arrays])


def exact_gradients(
    op: ops.LossOperator,
    inputs: tuple[Any, ...],
    needs: tuple[bool, ...],
    grad_output: torch.Tensor,
) -> dict[int, torch.Tensor | None]:
    r"""``{position: g}``, :math:`g = \partial \langle \bar\ell, \ell(\text{inputs}) \rangle /
    \partial \text{inputs}_p` for each needed position, by autograd of the exact forward.

    Recorded (``create_graph=True``) when grad mode is on, so that the gradient is itself
    differentiable (double backward).
    """
    positions = [p for p, needed in enumerate(needs) if needed]
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        loss = ops.differentiable_loss(op, ops.namespace_of(*inputs), *inputs)
    computed = torch.autograd.grad(
        loss,
        [inputs[p] for p in positions],
        grad_output,
        create_graph=create_graph,
        allow_unused=True,
    )
    return dict(zip(positions, computed, strict=True))


def _transforms() -> tuple[bool, bool]:
    """(a ``torch.func`` transform is active, one of them is ``vmap``).

    Under ``torch.compile`` dynamo handles the transforms itself, and the answer is (False,
    False): dynamo does not trace the interpreter stack.
    """
    if torch.compiler.is_compiling() or _functorch.peek_interpreter_stack() is None:
        return False, False
    stack = _functorch.get_interpreter_stack() or ()
    return True, any(level.key() == _VMAP for level in stack)


def _needs_exact_path(op: ops.LossOperator, arrays: tuple[Any, ...]) -> bool:
    """Whether autograd may ask for more than the analytic first-order backward gives.

    (The caller has already answered for ``torch.func`` transforms.)
    """
    if forward_ad._current_level >= 0 or ops.array_hyperparameters(op):
        return True
    if not torch.is_grad_enabled():
        return False
    positions = ops.op_gradient_positions(op, len(arrays))
    for p, a in enumerate(arrays):
        if a is not None and a.requires_grad and p not in positions:
            return True
    return False


def apply(
    op: ops.LossOperator,
    names: tuple[str, ...] | None,
    *arrays: Any,
    validate: bool = True,
    errors: Dialect = TORCH,
) -> torch.Tensor:
    """Check ``arrays`` with the core, then run ``op`` on the fast or the exact path (above).

    ``validate`` turns the value checks (class-index range, probabilities, weights) on or off;
    they read the values back, a device synchronisation on GPUs, and run only eagerly and
    outside ``vmap``. The static checks (shapes, dtypes, options) always run. Without value
    checks, invalid entries give NaN for the examples they reach, in the loss and the gradient.

    ``names`` (one per array, as the caller's signature names them) are the names the errors
    use; each error of the checks is raised as ``errors`` translates it (PyTorch's class for
    the mistake as well as the core's: ``IndexError`` for a class index out of range, see
    :mod:`._errors`). ``None`` (the core's own functions) keeps the core's names and classes.
    """
    position = ops.op_prediction_position(op, len(arrays))
    transformed, batched = _transforms()
    try:
        xp, op = ops.checked_operator(
            op, *arrays, prediction=arrays[position], validate=validate and not batched
        )
    except InputError as error:  # (the dialect's names are looked up only for an error)
        if names is None:
            raise
        mapping = dialect_names(forward_parameters(op), names, position)
        raise errors.translate(error, mapping).with_traceback(error.__traceback__) from None
    if transformed or _needs_exact_path(op, arrays):
        return ops.differentiable_loss(op, xp, *arrays)
    if not _recorded(arrays):
        # autograd records nothing (no input requires grad, or grad mode is off): the forward
        # alone, without the autograd.Function around it (a third of a small call's time)
        return op.forward(xp, *arrays)[0]
    recorded = hasattr(op, "forward_and_backward")
    return (GradientInForward if recorded else CoreLoss).apply(op, *arrays)


def _recorded(arrays: tuple[Any, ...]) -> bool:
    """Whether autograd records a call on ``arrays``: grad mode is on and one requires grad."""
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(a, torch.Tensor) and a.requires_grad for a in arrays)


def autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype ``torch.autocast`` computes in on ``x``'s device type, or None where it is off."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


def without_autocast(x: torch.Tensor) -> torch.autocast:
    """A block with autocast off on ``x``'s device type: the core's ops run in the dtypes the
    dialect chose (no matmul of ``linear_cross_entropy`` silently in 16 bits, and the same
    dtypes in the exact path's recorded graph as in the analytic backward)."""
    return torch.autocast(x.device.type, enabled=False)


def apply_op(op: ops.LossOperator, *arrays: Any, validate: bool = True) -> torch.Tensor:
    """:func:`apply` for the core's own functions (``xentropy.softmax_cross_entropy(tensor, ...)``):
    their errors keep the core's names and classes."""
    return apply(op, None, *arrays, validate=validate)
