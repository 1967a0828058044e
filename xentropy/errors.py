"""The exceptions xentropy raises for bad input, one class per kind of mistake.

Each is a ``ValueError`` (``WrongDtype`` and ``MixedArrayTypes``: a ``TypeError``), so code that
catches those keeps working; a dialect raises a subclass that is also its framework's class for
the same mistake (``IndexError`` for a PyTorch class index out of range,
``tf.errors.InvalidArgumentError`` in the TensorFlow dialect). See ``docs/bad-input.md``.

>>> import numpy as np, xentropy
>>> from xentropy.errors import ClassIndexOutOfRange
>>> try:
...     xentropy.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
... except ClassIndexOutOfRange as error:
...     print(type(error).__name__, isinstance(error, ValueError))
ClassIndexOutOfRange True
"""

from ._errors import (
    BadHyperparameter,
    ClassIndexOutOfRange,
    InputError,
    InvalidOption,
    MixedArrayTypes,
    ShapeMismatch,
    ValueOutOfRange,
    WrongDtype,
)

__all__ = [
    "BadHyperparameter",
    "ClassIndexOutOfRange",
    "InputError",
    "InvalidOption",
    "MixedArrayTypes",
    "ShapeMismatch",
    "ValueOutOfRange",
    "WrongDtype",
]
