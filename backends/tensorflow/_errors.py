"""TensorFlow's exception classes and key phrases for the core's errors (``xentropy._errors``).

Eagerly, ``tf.nn`` raises ``tf.errors.InvalidArgumentError`` for a class index out of range
("Received a label value of 3 which is outside the valid range of [0, 3)"), for labels of the
wrong shape in the dense softmax ("logits and labels must be broadcastable") and for a dtype its
kernel does not take; the shape checks written in Python raise ``ValueError``. So every core
error but an invalid option or a mixture of array types is raised here as a
``tf.errors.InvalidArgumentError`` too (constructed as ``InvalidArgumentError(None, None,
message)``), besides the core's ``ValueError`` or ``TypeError``: ``except ValueError`` and
``except tf.errors.InvalidArgumentError`` both catch it. Values TensorFlow computes with (labels
outside ``[0, 1]``, a ``label_smoothing`` above 1) raise it too, as ``tf.debugging`` assertions
would.
"""

from __future__ import annotations

import tensorflow as tf

from xentropy._errors import (
    BadHyperparameter,
    ClassIndexOutOfRange,
    Dialect,
    InputError,
    Names,
    Rule,
    ShapeMismatch,
    ValueOutOfRange,
    WrongDtype,
)

_INVALID = tf.errors.InvalidArgumentError
_OP_ERROR_ARGS = (None, None)  # node_def, op: none for an error raised eagerly in Python


def index_phrase(error: InputError, names: Names) -> str:
    fields = error.fields
    return (
        f"Received a label value of {fields['value']} which is outside the valid range of "
        f"[0, {fields['num_classes']})"
    )


def shape_phrase(error: InputError, names: Names) -> str | None:
    """``tf.nn``'s wording: the sparse function's ``labels.shape`` rule, the sigmoid's same
    shape."""
    fields = error.fields
    if not names.is_targets(fields.get("argument")):
        return None
    labels, logits = names("targets"), names.prediction
    if fields.get("form") == "class_indices":
        return f"`{labels}.shape` must equal `{logits}.shape` except for the last dimension"
    return f"`{logits}` and `{labels}` must have the same shape"


TENSORFLOW = Dialect(
    "TensorFlow",
    {
        ClassIndexOutOfRange: Rule(_INVALID, index_phrase, _OP_ERROR_ARGS),
        ShapeMismatch: Rule(_INVALID, shape_phrase, _OP_ERROR_ARGS),
        WrongDtype: Rule(_INVALID, None, _OP_ERROR_ARGS),
        ValueOutOfRange: Rule(_INVALID, None, _OP_ERROR_ARGS),
        BadHyperparameter: Rule(_INVALID, None, _OP_ERROR_ARGS),
    },
)
