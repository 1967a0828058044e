"""Running a loss operator: checks, forward, and the gradient for ``value_and_grad``.

A loss operator is a frozen dataclass of static options with three methods:
``check(xp, *arrays, values)`` raises on bad input (and may return options that its value checks
found to make no difference to these inputs), ``forward(xp, *arrays)`` returns the loss and
the residuals its backward needs, ``backward(xp, residuals, cotangent)`` returns the gradient with
respect to the prediction. The framework adapters register the same pair with each autodiff
system; NumPy users reach it through :func:`value_and_grad`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, ParamSpec, Protocol, TypeVar

from ._errors import MixedArrayTypes, forward_parameters
from ._namespace import is_lazy, is_readable, namespace_of, python_is_traced
from ._native import differentiable_spelling


class LossOperator(Protocol):
    # a frozen dataclass (for dataclasses.replace) whose methods name their arrays
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def values_checked(self) -> bool: ...

    def check(self, xp: Any, *arrays: Any, **options: Any) -> Mapping[str, Any] | None: ...

    def forward(self, xp: Any, *arrays: Any, **options: Any) -> tuple[Any, tuple[Any, ...]]: ...

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any: ...


def hyperparameter(default: Any) -> Any:
    """A field of a loss operator holding a number that may also be a 0-d array.

    As in optax, a hyperparameter (``label_smoothing``, ``gamma``, ``alpha``, ``epsilon``, ...)
    may be a traced array under ``jax.jit``, ``tf.function`` or ``torch.compile``, or an array
    that is itself differentiated. A constant one (a Python, NumPy or eager 0-d value that no
    autodiff follows) is stored as a Python number; see :func:`array_hyperparameters`.
    """
    return dataclasses.field(default=default, metadata={"hyperparameter": True})


def hyperparameter_names(op: Any) -> tuple[str, ...]:
    traced = python_is_traced()
    names = None if traced else _hyperparameter_names.get(type(op))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(op) if f.metadata.get("hyperparameter"))
        if not traced:
            _hyperparameter_names[type(op)] = names
    return names


# operator class -> the names of its hyperparameter fields
_hyperparameter_names: dict[type, tuple[str, ...]] = {}


def array_hyperparameters(op: Any) -> dict[str, Any]:
    """The hyperparameters of ``op`` that are arrays (traced, or followed by an autodiff).

    An operator with any is not hashable and has no analytic backward for them: the adapters run
    it through :func:`differentiable_loss`, their framework's autodiff of the plain forward.
    """
    values = ((name, getattr(op, name)) for name in hyperparameter_names(op))
    return {name: v for name, v in values if is_array_value(v)}


def is_array_value(value: Any) -> bool:
    return value is not None and not isinstance(value, (bool, int, float))


def constant_number(value: Any) -> Any:
    """``value`` as a Python number when it is a constant 0-d value, else ``value`` unchanged.

    NumPy scalars and 0-d arrays, and eager 0-d tensors that no autodiff follows (a torch tensor
    without ``requires_grad``, a concrete JAX array, an eager TF tensor) become numbers; traced
    values, tensors that require grad and ``tf.Variable`` stay arrays.
    """
    if not is_array_value(value) or getattr(value, "ndim", None) != 0:
        return value
    module = type(value).__module__.partition(".")[0]
    if module == "numpy":
        return value.item()
    if module not in ("torch", "jax", "jaxlib", "tensorflow") or not is_readable(value):
        return value
    if module == "torch":
        return value if value.requires_grad else value.item()
    if module == "tensorflow":
        is_variable = hasattr(value, "assign")
        if is_variable or not hasattr(type(value), "numpy") or _tf_watched(value):
            return value
        return value.numpy().item()
    return value.item()


def _tf_watched(value: Any) -> bool:
    """Whether a ``tf.GradientTape`` (or forward accumulator) follows an eager TF tensor."""
    from tensorflow.python.eager import record

    return bool(record.should_record_backprop([value]))


@dataclasses.dataclass(frozen=True)
class CheckedValues:
    """Base of the loss operators: ``values_checked`` says the eager value checks passed.

    The forward and backward passes then skip the masks that give NaN for values the checks
    reject (an index outside ``[0, C)``, a negative weight, a probability outside ``[0, 1]``):
    under tracing, or with ``validate=False``, those masks are what keeps invalid input from
    yielding a finite number; after the checks they are dead weight (a few passes over the data).

    Fields made with :func:`hyperparameter` are turned into Python numbers here when constant.
    """

    values_checked: bool = dataclasses.field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        for name in hyperparameter_names(self):
            value = getattr(self, name)
            number = constant_number(value)
            if number is not value:
                object.__setattr__(self, name, number)


# value_and_grad's record of the evaluated operator:
# [op, xp, residuals, cotangent or None, gradient dtype or None]
_captured: contextvars.ContextVar[list[list[Any]] | None] = contextvars.ContextVar(
    "xentropy_captured", default=None
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
    try:
        xp = namespace_of(*arrays)
    except MixedArrayTypes:  # again, for the message: it names the arguments
        xp = namespace_of(*arrays, names=forward_parameters(op))
    values = validate and not is_lazy(prediction)
    changes = op.check(xp, *arrays, values=values)
    if values and not op.values_checked:
        op = with_values_checked(op, changes)
    return xp, op


# operator -> the same with values_checked=True, for operators of constant options (hashable)
_checked_variants: dict[Any, Any] = {}


def with_values_checked(op: LossOperator, changes: Mapping[str, Any] | None = None) -> LossOperator:
    """``dataclasses.replace(op, values_checked=True, **changes)``, remembered for an operator
    whose fields are all constants (an adapter makes the same few operators on every call).

    ``changes``: options that the value checks found to make no difference to these inputs
    (``ignore_index`` when no target is it), returned by ``op.check``.
    """
    changes = changes or {}
    key = None if python_is_traced() else _constant_key(op)
    if key is not None and changes:
        key = (key, tuple(changes.items()))
    checked = None if key is None else _checked_variants.get(key)
    if checked is None:
        checked = dataclasses.replace(op, values_checked=True, **changes)
        if key is not None:
            if len(_checked_variants) >= 512:
                _checked_variants.clear()
            _checked_variants[key] = checked
    return checked


_CONSTANT_TYPES = (type(None), bool, int, float, str)


def _constant_key(op: Any) -> tuple[Any, ...] | None:
    """The fields of the operator ``op`` with their types, when every one is a Python constant
    (None, a number, a string, or a tuple of them); else None."""
    values = tuple(getattr(op, name) for name in field_names(op))
    if not all(_is_constant_value(v) for v in values):
        return None
    return (type(op), values, tuple(map(type, values)))


def _is_constant_value(value: Any) -> bool:
    if type(value) is tuple:
        return all(_is_constant_value(v) for v in value)
    return type(value) in _CONSTANT_TYPES


def field_names(op: Any) -> tuple[str, ...]:
    """The names of the fields of the dataclass instance ``op``."""
    traced = python_is_traced()
    names = None if traced else _field_names.get(type(op))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(op))
        if not traced:
            _field_names[type(op)] = names
    return names


_field_names: dict[type, tuple[str, ...]] = {}


# top-level module of an array type -> "module:function" running an operator under that
# framework's autodiff: ``function(op, *arrays, validate=...)`` checks and evaluates ``op``
_AUTODIFF_RUNNERS: dict[str, str] = {
    "torch": "xentropy.backends.torch._autograd:apply_op",
    "jax": "xentropy.backends.jax._custom_derivative:apply_op",
    "jaxlib": "xentropy.backends.jax._custom_derivative:apply_op",
    "tensorflow": "xentropy.backends.tensorflow._custom_gradient:apply_op",
}


def _autodiff_runner(prediction: Any) -> Callable[..., Any] | None:
    root = type(prediction).__module__.partition(".")[0]
    target = _AUTODIFF_RUNNERS.get(root)
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def differentiable_loss(op: LossOperator, xp: Any, *arrays: Any) -> Any:
    """``op``'s loss as a plain function of framework ops, for the framework's own autodiff.

    Derivatives of every order and in both modes, with respect to every floating input (targets,
    weights, array-valued hyperparameters): the slower, exact path that adapters take wherever
    the analytic first-order ``backward`` of the prediction does not suffice.
    """
    with differentiable_spelling():
        loss, _ = op.forward(xp, *arrays)
    return loss


def evaluate(op: LossOperator, *arrays: Any, prediction: Any, validate: bool) -> Any:
    """Check the inputs and run ``op`` forward; ``prediction`` decides eager vs traced.

    Arrays of PyTorch, JAX and TensorFlow go through that framework's adapter, which registers
    ``op``'s derivatives with its autodiff (as the dialects do); others are evaluated directly.
    """
    sink = _captured.get()
    runner = None if sink is not None else _autodiff_runner(prediction)
    if runner is not None:
        return runner(op, *arrays, validate=validate)
    xp, op = checked_operator(op, *arrays, prediction=prediction, validate=validate)
    loss, residuals = op.forward(xp, *arrays)
    if sink is not None:
        sink.append([op, xp, residuals, None, None])
    return loss


def record_cotangent(cotangent: Any, *, gradient_dtype: Any = None) -> None:
    """For :func:`value_and_grad`: the derivative of the function's result by the loss that
    :func:`evaluate` just returned, when the function does arithmetic after it (sample weights),
    and the dtype its gradient takes (the caller's prediction dtype, when it computed wider)."""
    sink = _captured.get()
    if sink:
        sink[-1][3] = cotangent
        sink[-1][4] = gradient_dtype


P = ParamSpec("P")
R = TypeVar("R")


def value_and_grad(fn: Callable[P, R]) -> Callable[P, tuple[R, Any]]:
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
    def loss_and_gradient(*args: P.args, **kwargs: P.kwargs) -> tuple[R, Any]:
        sink: list[list[Any]] = []
        token = _captured.set(sink)
        try:
            value = fn(*args, **kwargs)
        finally:
            _captured.reset(token)
        if len(sink) != 1:
            raise TypeError(f"value_and_grad needs a loss function of xentropy; got {fn!r}")
        if isinstance(value, tuple):
            raise TypeError("value_and_grad needs a function returning the loss alone")
        op, xp, residuals, cotangent, gradient_dtype = sink[0]
        if cotangent is None:
            cotangent = xp.ones_like(value)
        gradient = op.backward(xp, residuals, cotangent)
        if gradient_dtype is not None:  # the prediction's (the first of a tuple)
            if isinstance(gradient, tuple):
                gradient = (xp.astype(gradient[0], gradient_dtype), *gradient[1:])
            else:
                gradient = xp.astype(gradient, gradient_dtype)
        return value, gradient

    return loss_and_gradient
