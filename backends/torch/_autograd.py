"""One ``torch.autograd.Function`` for every core loss operator.

:func:`apply` checks the inputs with the core (value checks only eagerly and with
``validate=True``: under ``torch.compile`` the core sees ``torch.compiler.is_compiling()`` and
skips them), then runs
:class:`CoreLoss`, whose ``forward`` is the operator's ``forward`` (under autograd's no-grad
mode, so no graph is recorded through it) and whose ``backward`` is the operator's analytic
``backward``. The operator is a frozen dataclass of static options and travels on ``ctx``; the
tensors among its residuals are saved with ``ctx.save_for_backward``.

Only the inputs of ``op_gradient_positions`` get a gradient (the prediction; the hidden states,
weight and bias of ``LinearCrossEntropy``). Another input that needs one
(targets, weights) makes ``backward`` raise ``RuntimeError`` naming it, as PyTorch does for a
derivative it does not implement; inputs that need none get ``None``.

The backward is not itself differentiable (its residuals, such as the log-normaliser, are
constants to autograd). It runs under ``no_grad``, and when autograd records a graph of it
(``create_graph=True``: double backward, gradient penalties) the gradient is routed through
:class:`NotTwiceDifferentiable`, so that differentiating it raises a clear ``RuntimeError``
instead of returning a wrong second derivative. (``torch.autograd.function.once_differentiable``
is not enough: it only guards when the incoming gradient itself requires grad, and otherwise
returns a gradient that silently does not require grad.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import FunctionCtx

from xentropy import ops


class CoreLoss(torch.autograd.Function):
    """``CoreLoss.apply(op, names, *arrays)``: ``op.forward`` with ``op.backward`` as gradient.

    ``names`` (one string per array) only serves the error raised when a non-prediction input
    needs a gradient.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, op: ops.LossOperator, names: tuple[str, ...], *arrays: Any
    ) -> torch.Tensor:
        xp = ops.namespace_of(*arrays)
        loss, residuals = op.forward(xp, *arrays)
        is_tensor = tuple(isinstance(r, torch.Tensor) for r in residuals)
        positions = ops.op_gradient_positions(op, len(arrays))
        saved = [r for r, t in zip(residuals, is_tensor, strict=True) if t]
        ctx.save_for_backward(*saved, *(arrays[p] for p in positions))
        ctx.num_residuals = len(saved)
        ctx.constants = tuple(None if t else r for r, t in zip(residuals, is_tensor, strict=True))
        ctx.is_tensor = is_tensor
        ctx.op = op
        ctx.names = names
        ctx.positions = positions
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        needs = ctx.needs_input_grad[2:]
        for position, needed in enumerate(needs):
            if needed and position not in ctx.positions:
                raise RuntimeError(
                    f"xentropy.backends.torch: the derivative for {ctx.names[position]!r} is "
                    "not implemented (only the prediction gets a gradient); detach it"
                )
        grads: list[torch.Tensor | None] = [None] * (2 + len(needs))
        if any(needs[p] for p in ctx.positions):
            saved = ctx.saved_tensors
            inputs = saved[ctx.num_residuals :]
            tensors = iter(saved[: ctx.num_residuals])
            residuals = tuple(
                next(tensors) if t else c for t, c in zip(ctx.is_tensor, ctx.constants, strict=True)
            )
            with torch.no_grad():
                computed = ctx.op.backward(ops.namespace_of(grad_output), residuals, grad_output)
            if len(ctx.positions) == 1:
                computed = (computed,)
            for position, grad, given in zip(ctx.positions, computed, inputs, strict=True):
                if grad is not None and needs[position]:
                    if torch.is_grad_enabled():
                        grad = NotTwiceDifferentiable.apply(grad, given)
                    grads[2 + position] = grad
        return tuple(grads)


class NotTwiceDifferentiable(torch.autograd.Function):
    """Identity on a gradient, recorded against its input; its backward raises."""

    @staticmethod
    def forward(ctx: FunctionCtx, grad: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        return grad.clone()

    @staticmethod
    def backward(ctx: Any, _: torch.Tensor) -> tuple[None, None]:
        raise RuntimeError(
            "xentropy.backends.torch: the gradient of this loss is not differentiable "
            "(no double backward, e.g. through a gradient penalty); the core defines only a "
            "first derivative"
        )


def apply(
    op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool = True
) -> torch.Tensor:
    """Check ``arrays`` with the core, then run ``op`` with its analytic backward.

    ``validate`` turns the value checks (class-index range, probabilities, weights) on or off;
    they read the values back, a device synchronisation on GPUs, and run only eagerly. The
    static checks (shapes, dtypes, options) always run. Without value checks, invalid entries
    give NaN for the examples they reach, in the loss and the gradient.
    """
    prediction = arrays[ops.op_prediction_position(op, len(arrays))]
    _, op = ops.checked_operator(op, *arrays, prediction=prediction, validate=validate)
    return CoreLoss.apply(op, names, *arrays)
