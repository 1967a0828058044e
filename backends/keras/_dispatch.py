"""Running a core loss operator under the current Keras backend, and Keras's shape conventions.

Keras 3 fixes one backend per process (``keras.backend.backend()``). :func:`apply` hands a core
operator of ``xentropy.ops`` to that backend's adapter, which registers the operator's analytic
backward with the backend's autodiff:

============  =======================================================================
Keras backend  adapter entry point
============  =======================================================================
tensorflow    ``xentropy.backends.tensorflow.apply_op`` (``tf.custom_gradient``)
jax           ``xentropy.backends.jax.apply_op`` (``jax.custom_jvp``)
torch         ``xentropy.backends.torch._autograd.apply`` (``torch.autograd.Function``)
numpy         ``xentropy.ops.evaluate`` (Keras's NumPy backend has no gradients)
============  =======================================================================

Each adapter is imported on first use only. Nothing here computes a loss. ``validate`` is
handed to the adapter as is: the value checks run on eager inputs only, whatever the backend.
So are the names of the arrays (``y_true``, ``y_pred``) and :func:`keras_dialect`: the core's
errors are raised with Keras's names, as instances of the backend framework's class for the
mistake (``tf.errors.InvalidArgumentError``, ``IndexError`` ...) and with Keras's key phrase for a
wrong shape ("must have the same shape").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras

from xentropy import ops
from xentropy._errors import (
    Dialect,
    InputError,
    Names,
    Rule,
    ShapeMismatch,
    WrongDtype,
    dialect_names,
    forward_parameters,
)

# (op, names of its arrays, *arrays, validate=...) -> loss
Runner = Callable[..., Any]


def shape_phrase(error: InputError, names: Names) -> str | None:
    """Keras's words for targets of the wrong shape (what its own tests match on)."""
    if not names.is_targets(error.fields.get("argument")):
        return None
    pair = f"Arguments `{names('targets')}` and `{names.prediction}`"
    if error.fields.get("form") == "class_indices":
        return f"{pair} must have the same shape up until the last dimension"
    return f"{pair} must have the same shape"


def keras_dialect(backend: Dialect) -> Dialect:
    """The errors of Keras on a backend: the backend framework's classes (Keras raises what its
    backend raises, e.g. ``IndexError`` on PyTorch), Keras's key phrase for a wrong shape, and
    ``ValueError`` for a wrong dtype too (Keras casts dtypes; where a cast leaves float class
    indices, Keras itself complains of the shape)."""
    rules = {ShapeMismatch: Rule(phrase=shape_phrase), WrongDtype: Rule(ValueError)}
    return backend.extended("Keras", rules)


def _run_tensorflow(
    op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool
) -> Any:
    from xentropy.backends.tensorflow import apply_op
    from xentropy.backends.tensorflow._errors import TENSORFLOW

    errors = keras_dialect(TENSORFLOW)
    return apply_op(op, *arrays, validate=validate, names=names, errors=errors)


def _run_jax(op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool) -> Any:
    from xentropy.backends.jax._custom_derivative import JAX, apply_op

    return apply_op(op, *arrays, validate=validate, names=names, errors=keras_dialect(JAX))


def _run_torch(op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool) -> Any:
    from xentropy.backends.torch._autograd import apply as apply_torch
    from xentropy.backends.torch._errors import TORCH

    return apply_torch(op, names, *arrays, validate=validate, errors=keras_dialect(TORCH))


def _run_numpy(op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool) -> Any:
    position = ops.op_prediction_position(op, len(arrays))
    mapping = dialect_names(forward_parameters(op), names, position)
    with keras_dialect(Dialect("NumPy")).raising(mapping):
        return ops.evaluate(op, *arrays, prediction=arrays[position], validate=validate)


_RUNNERS: dict[str, Runner] = {
    "tensorflow": _run_tensorflow,
    "jax": _run_jax,
    "torch": _run_torch,
    "numpy": _run_numpy,
}


@functools.cache
def _runner(backend: str) -> Runner:
    try:
        return _RUNNERS[backend]
    except KeyError:
        raise NotImplementedError(
            f"xentropy.backends.keras supports the Keras backends {sorted(_RUNNERS)}; "
            f"Keras runs on {backend!r}"
        ) from None


def apply(op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool = True) -> Any:
    """``op``'s loss on ``arrays`` through the adapter of the current Keras backend.

    Args:
        op: an operator of ``xentropy.ops`` (with ``reduction="none"`` for a Keras loss).
        names: one name per array, as Keras calls it (``("y_pred", "y_true", ...)``), for
            error messages.
        *arrays: the arrays ``op.forward`` takes, in its order; ``None`` for an absent one.
        validate: check values (class indices, targets, probabilities) on eager inputs, a
            device synchronisation on GPUs; False skips it, and invalid values then give NaN
            for the affected examples. Never checked while tracing.
    """
    return _runner(keras.backend.backend())(op, names, *arrays, validate=validate)


def same_rank(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Keras's ``squeeze_or_expand_to_same_rank`` (what ``LossFunctionWrapper.call`` does).

    Where the ranks differ by exactly one and the longer one ends in a dimension of 1, that
    dimension is squeezed (or, against a 1-d array, the 1-d array gains a trailing 1). Anything
    else is left to the core, which never broadcasts targets. Python lists (and NumPy arrays)
    are converted to tensors first, as Keras's loss functions do.
    """
    y_true, y_pred = _as_tensor(y_true), _as_tensor(y_pred)
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        if pred_rank == 1:
            y_pred = keras.ops.expand_dims(y_pred, axis=-1)
        else:
            y_true = keras.ops.squeeze(y_true, axis=-1)
    elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        if true_rank == 1:
            y_true = keras.ops.expand_dims(y_true, axis=-1)
        else:
            y_pred = keras.ops.squeeze(y_pred, axis=-1)
    return y_true, y_pred


def _as_tensor(x: Any) -> Any:
    return x if hasattr(x, "shape") and hasattr(x, "dtype") else keras.ops.convert_to_tensor(x)


def set_keras_mask(losses: Any, mask: Any) -> None:
    """Attach ``mask`` to ``losses`` so that Keras's reduction averages over the kept entries.

    Keras has no public setter; its own ``sparse_categorical_crossentropy`` uses this one.
    """
    from keras.src.backend import set_keras_mask as set_mask

    set_mask(losses, mask=mask)
