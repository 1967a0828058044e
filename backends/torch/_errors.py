"""PyTorch's exception classes and key phrases for the core's errors (``xentropy._errors``).

============================  ====================================================================
core class                    raised in this dialect also as (PyTorch's own class for the mistake)
============================  ====================================================================
``ClassIndexOutOfRange``      ``IndexError`` ("Target 3 is out of bounds")
``ShapeMismatch``             ``RuntimeError`` ("Expected target size ..."; a batch-size mismatch
                              is PyTorch's ``ValueError``, which it already is)
``WrongDtype``                ``RuntimeError`` (PyTorch: ``RuntimeError`` or its subclass
                              ``NotImplementedError``)
``ValueOutOfRange``           ``RuntimeError`` ("all elements of target should be between 0 and 1")
``BadHyperparameter``         ``RuntimeError`` ("label_smoothing must be between 0.0 and 1.0")
``InvalidOption``             ``RuntimeError`` ("ignore_index is not supported for floating point
                              target")
``MixedArrayTypes``           ``TypeError`` already, as PyTorch's
============================  ====================================================================

The phrases are those PyTorch's own tests match on (``common_modules.py``'s error inputs); each
is appended to the core's message, which names the arguments as the dialect does.
"""

from __future__ import annotations

from typing import Any

import torch

from xentropy._errors import (
    BadHyperparameter,
    ClassIndexOutOfRange,
    Dialect,
    InputError,
    InvalidOption,
    MixedArrayTypes,
    Names,
    Rule,
    ShapeMismatch,
    ValueOutOfRange,
    WrongDtype,
    type_name,
)


def index_phrase(error: InputError, names: Names) -> str:
    return f"Target {error.fields['value']} is out of bounds"


def shape_phrase(error: InputError, names: Names) -> str | None:
    fields = error.fields
    form = fields.get("form")
    if form == "class_weight":
        count = fields["num_classes"]
        return f"weight tensor should be defined either for all {count} classes or no classes"
    shape, expected = fields.get("shape"), fields.get("expected")
    targets = names.is_targets(fields.get("argument"))
    if not targets or form not in ("class_indices", "probabilities") or expected is None:
        return None
    if shape and expected and None not in (shape[0], expected[0]) and shape[0] != expected[0]:
        return (
            f"Expected {names.prediction} batch_size ({expected[0]}) to match "
            f"{names('targets')} batch_size ({shape[0]})"
        )
    if form == "class_indices" and len(shape) == len(expected):
        return f"Expected {names('targets')} size {list(expected)}, got {list(shape)}"
    return None


def dtype_phrase(error: InputError, names: Names) -> str | None:
    if error.fields.get("form") == "class_indices":
        return f"expected {names('targets')} dtype to be Long or Byte"
    return None


def value_phrase(error: InputError, names: Names) -> str | None:
    fields = error.fields
    if (fields.get("low"), fields.get("high")) == (0.0, 1.0):
        return f"all elements of {names(fields['argument'])} should be between 0 and 1"
    return None


def hyperparameter_phrase(error: InputError, names: Names) -> str | None:
    if error.fields.get("argument") == "label_smoothing":
        return "label_smoothing must be between 0.0 and 1.0"
    return None


def option_phrase(error: InputError, names: Names) -> str | None:
    if error.fields.get("argument") == "ignore_index":
        return "ignore_index is not supported for floating point target"
    return None


TORCH = Dialect(
    "PyTorch",
    {
        ClassIndexOutOfRange: Rule(IndexError, index_phrase),
        ShapeMismatch: Rule(RuntimeError, shape_phrase),
        WrongDtype: Rule(RuntimeError, dtype_phrase),
        ValueOutOfRange: Rule(RuntimeError, value_phrase),
        BadHyperparameter: Rule(RuntimeError, hyperparameter_phrase),
        InvalidOption: Rule(RuntimeError, option_phrase),
    },
)


def require_tensors(function: str, **arrays: Any) -> None:
    """PyTorch's rule for its losses: ``input`` and ``target`` are tensors (``TypeError``).

    A NumPy array or a Python list gets :class:`~xentropy._errors.MixedArrayTypes`, naming the
    argument and the conversion, instead of an ``AttributeError`` from deep inside.
    """
    for name, value in arrays.items():
        if not isinstance(value, torch.Tensor):
            sequence = isinstance(value, (list, tuple))
            what = f"a Python {type(value).__name__}" if sequence else f"a {type_name(value)}"
            raise MixedArrayTypes(
                f"{function}(): {name} must be a torch.Tensor, not {what}; convert it with "
                f"torch.as_tensor({name})",
                argument=name,
            )
