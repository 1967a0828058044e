"""Running a loss operator: checks, forward, and the gradient for ``value_and_grad``.

A loss operator is a frozen dataclass of static options with three methods:
``check(xp, *arrays, values)`` raises on bad input, ``forward(xp, *arrays)`` returns the loss and
the residuals its backward needs, ``backward(xp, residuals, cotangent)`` returns the gradient with
respect to the prediction. The framework adapters register the same pair with each autodiff
system; NumPy users reach it through :func:`value_and_grad`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Protocol

from ._namespace import is_lazy, namespace_of


class LossOperator(Protocol):
    values_checked: bool

    def check(self, xp: Any, *arrays: Any, values: bool) -> None: ...

    def forward(self, xp: Any, *arrays: Any) -> tuple[Any, tuple[Any, ...]]: ...

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class CheckedValues:
    """Base of the loss operators: ``values_checked`` says the eager value checks passed.

    The forward and backward passes then skip the masks that give NaN for values the checks
    reject (an index outside ``[0, C)``, a negative weight, a probability outside ``[0, 1]``):
    under tracing, or with ``validate=False``, those masks are what keeps invalid input from
    yielding a finite number; after the checks they are dead weight (a few passes over the data).
    """

    values_checked: bool = dataclasses.field(default=False, kw_only=True)


_captured: contextvars.ContextVar[list[tuple[Any, Any, tuple[Any, ...]]] | None] = (
    contextvars.ContextVar("xentropy_captured", default=None)
)


def check_inputs(op: LossOperator, *arrays: Any, prediction: Any, validate: bool) -> Any:
    """Run ``op``'s checks (value checks only if ``validate`` and ``prediction`` is eager).

    Returns the arrays' namespace. See :func:`checked_operator` for the form that also returns
    the operator to run.
    """
    return checked_operator(op, *arrays, prediction=prediction, validate=validate)[0]


def checked_operator(
    op: LossOperator, *arrays: Any, prediction: Any, validate: bool
) -> tuple[Any, LossOperator]:
    """Run ``op``'s checks; return the arrays' namespace and the operator to run on them.

    Value checks run only if ``validate`` and ``prediction`` is eager; when they ran, the
    returned operator has ``values_checked=True`` (see :class:`CheckedValues`). Adapters call
    this before handing ``op.forward`` and ``op.backward`` to their framework's autodiff.
    """
    xp = namespace_of(*arrays)
    values = validate and not is_lazy(prediction)
    op.check(xp, *arrays, values=values)
    if values and not op.values_checked:
        op = dataclasses.replace(op, values_checked=True)
    return xp, op


def evaluate(op: LossOperator, *arrays: Any, prediction: Any, validate: bool) -> Any:
    """Check the inputs and run ``op`` forward; ``prediction`` decides eager vs traced."""
    xp, op = checked_operator(op, *arrays, prediction=prediction, validate=validate)
    loss, residuals = op.forward(xp, *arrays)
    sink = _captured.get()
    if sink is not None:
        sink.append((op, xp, residuals))
    return loss


def value_and_grad(fn: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    """Turn a loss function of this package into one returning ``(loss, gradient)``.

    The gradient is that of ``sum(loss)`` with respect to the prediction argument (``logits`` or
    ``probs``; ``q`` for :func:`kl_divergence` and :func:`cross_entropy`, ``p`` for
    :func:`entropy`), computed by the loss's analytic backward, in the prediction's dtype.

    >>> import numpy as np, xentropy
    >>> loss, grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)(
    ...     np.array([[0.0, 0.0]]), np.array([0]))
    >>> float(loss), grad.tolist()
    (0.6931471805599453, [[-0.5, 0.5]])
    """

    @functools.wraps(fn)
    def loss_and_gradient(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        sink: list[tuple[Any, Any, tuple[Any, ...]]] = []
        token = _captured.set(sink)
        try:
            value = fn(*args, **kwargs)
        finally:
            _captured.reset(token)
        if len(sink) != 1:
            raise TypeError(f"value_and_grad needs a loss function of xentropy; got {fn!r}")
        op, xp, residuals = sink[0]
        return value, op.backward(xp, residuals, xp.ones_like(value))

    return loss_and_gradient
