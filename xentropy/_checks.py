"""Argument checks that raise clear errors.

Static checks (dtypes, shapes, option values) need no array values and run always, under tracing
too. Value checks (labels in range, probabilities in [0, 1], weights >= 0) read the data, so they
run only on eager arrays and only when the caller asks for validation; under tracing the kernels
turn the affected rows into NaN instead.

Each check raises an error of ``xentropy._errors`` whose class is the kind of mistake (a
``ValueError`` or ``TypeError``) and whose message refers to the arguments as ``{name}``, so that
a dialect can name them as its framework does.

A hyperparameter given as a Python number is checked statically; one given as a 0-d array
(traced, or differentiated) is a value check: read only when eager and readable, and otherwise
made NaN outside its :class:`Domain` by the forward pass (``_class_targets.hyperparameter_in``),
which turns the loss and its gradients into NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from ._errors import (
    BadHyperparameter,
    ClassIndexOutOfRange,
    InvalidOption,
    MixedArrayTypes,
    ShapeMismatch,
    ValueOutOfRange,
    WrongDtype,
    ref,
)
from ._namespace import is_readable, isdtype, namespace_of, remembered
from ._types import Reduction

REDUCTIONS: tuple[Reduction, ...] = get_args(Reduction)


def format_shape(shape: Sequence[int | None]) -> str:
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise InvalidOption(
            f"reduction must be one of {REDUCTIONS}; got {reduction!r}",
            argument="reduction",
            value=reduction,
        )


# A hyperparameter (label smoothing, gamma, alpha, epsilon, z_loss, softcap, ...): a Python
# number, or a 0-d array that is traced (jax.jit, tf.function, torch.compile) or differentiated
Hyperparameter = Any


@dataclass(frozen=True)
class Domain:
    """The values a hyperparameter may take: ``[low, high]`` (``[low, high)`` if ``high_open``).

    Infinities are outside unless ``finite`` is false; NaN is always outside.
    """

    low: float | None = None
    high: float | None = None
    high_open: bool = False
    finite: bool = True

    def contains(self, value: float) -> bool:
        """Whether the number ``value`` lies in the domain."""
        if value != value or (self.finite and not math.isfinite(value)):
            return False
        if self.low is not None and value < self.low:
            return False
        if self.high is None:
            return True
        return value < self.high if self.high_open else value <= self.high

    def mask(self, xp: Any, x: Any) -> Any:
        """Element-wise :meth:`contains` of an array ``x`` (bool array; NaN gives False)."""
        ok = xp.isfinite(x) if self.finite else x == x
        if self.low is not None:
            ok = ok & (x >= self.low)
        if self.high is not None:
            ok = ok & ((x < self.high) if self.high_open else (x <= self.high))
        return ok


UNIT_INTERVAL = Domain(0.0, 1.0)
NON_NEGATIVE = Domain(0.0)
FINITE = Domain()
NOT_NAN = Domain(finite=False)
CLIP_EPSILON = Domain(0.0, 0.5, high_open=True)  # clip(p, eps, 1 - eps) keeps eps < 1 - eps
POSITIVE = Domain(1e-30)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float))


def may_be_nonzero(value: Hyperparameter | None) -> bool:
    """Static test for an optional term: False only for ``None`` and a Python number equal to 0.

    An array hyperparameter may be non-zero (its value is unknown when traced), so the term it
    scales is always computed; a Python 0 skips it at no cost.
    """
    if value is None:
        return False
    return not is_number(value) or value != 0


def hyperparameter_number(
    xp: Any, name: str, value: Hyperparameter, expected: str, *, values: bool
) -> float | None:
    """The number to check for hyperparameter ``name``, or None where it cannot be read.

    A Python number is returned as is. A 0-d array of ``xp`` is read with ``float()`` only when
    ``values`` (the value checks run: eager input and ``validate=True``) and it is readable; a
    traced one gives None (the forward pass then turns the loss into NaN if the value is outside
    its domain). Anything else raises ``ValueError``, as does an array of another library.
    """
    if is_number(value):
        return value
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "dtype"):
        raise BadHyperparameter(
            f"{ref(name)} must be {expected}; got {value!r}", argument=name, value=value
        )
    if len(shape) != 0:
        raise BadHyperparameter(
            f"{ref(name)} must be {expected}, or a 0-d array; "
            f"got an array of shape {format_shape(shape)}",
            argument=name,
            shape=tuple(shape),
        )
    if xp is not None and namespace_of(value) is not xp:
        raise MixedArrayTypes(
            f"{ref(name)} is an array of {type(value).__module__.partition('.')[0]}, unlike the "
            "other inputs; pass a Python number or an array of the same library",
            argument=name,
        )
    if not values or not is_readable(value):
        return None
    detach = getattr(value, "detach", None)  # torch warns on float() of a tensor needing grad
    return float(value if detach is None else detach())


def check_in_domain(
    xp: Any,
    name: str,
    value: Hyperparameter,
    domain: Domain,
    expected: str,
    *,
    values: bool = True,
) -> None:
    """Raise :class:`BadHyperparameter` naming ``name`` unless ``value`` is in ``domain`` (see
    :func:`hyperparameter_number` for arrays)."""
    number = hyperparameter_number(xp, name, value, expected, values=values)
    if number is not None and not domain.contains(number):
        shown = value if is_number(value) else number
        raise BadHyperparameter(
            f"{ref(name)} must be {expected}; got {shown!r}",
            argument=name,
            value=shown,
            low=domain.low,
            high=domain.high,
        )


def check_unit_interval(
    name: str, value: Hyperparameter, *, xp: Any = None, values: bool = True
) -> None:
    check_in_domain(xp, name, value, UNIT_INTERVAL, "a number in [0, 1]", values=values)


def check_finite_number(
    name: str,
    value: Hyperparameter,
    *,
    minimum: float | None = None,
    xp: Any = None,
    values: bool = True,
) -> None:
    number = hyperparameter_number(xp, name, value, "a finite number", values=values)
    if number is None:
        return
    shown = value if is_number(value) else number
    if not FINITE.contains(number):
        raise BadHyperparameter(
            f"{ref(name)} must be a finite number; got {shown!r}", argument=name, value=shown
        )
    if minimum is not None and number < minimum:
        raise BadHyperparameter(
            f"{ref(name)} must be >= {minimum}; got {shown!r}",
            argument=name,
            value=shown,
            low=minimum,
        )


def check_floating(xp: Any, x: Any, name: str, *, prediction: bool = False) -> None:
    """Raise :class:`WrongDtype` unless ``x`` (named ``name``) is real floating;
    ``prediction``: ``x`` is the prediction (logits or probabilities)."""
    if not isdtype(xp, x.dtype, "real floating"):
        raise WrongDtype(
            f"{ref(name)} must be a real floating-point array; got dtype {x.dtype}",
            prediction=name if prediction else None,
            argument=name,
            dtype=x.dtype,
            expected="real floating",
        )


def normalize_axis(axis: int, ndim: int, name: str = "axis") -> int:
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise InvalidOption(
            f"{ref(name)}={axis!r} is out of range for an array of {ndim} dimensions",
            argument=name,
            value=axis,
        )
    return axis % ndim


def shapes_match(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    """Equal shapes, where an unknown (None) dimension of a traced array matches anything."""
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def check_same_shape(
    name: str,
    x: Any,
    expected: Sequence[int | None],
    why: str,
    *,
    prediction: str | None = None,
    form: str | None = None,
) -> None:
    """Raise :class:`ShapeMismatch` unless ``x`` (named ``name``) has the shape ``expected``.

    ``why`` says whose shape it must have; ``{name}`` in it refers to another argument
    (``"... the shape of {logits}"``), ``prediction`` says which one is the prediction, and
    ``form`` what ``x`` holds (``"class_indices"``, ``"probabilities"``).
    """
    if not shapes_match(tuple(x.shape), tuple(expected)):
        raise ShapeMismatch(
            f"{ref(name)} has shape {format_shape(x.shape)} but {why} {format_shape(expected)}; "
            "targets are never broadcast",
            prediction=prediction,
            argument=name,
            shape=tuple(x.shape),
            expected=tuple(expected),
            form=form,
        )


def _first_offender(xp: Any, values: Any, bad: Any) -> tuple[int, Any]:
    """How many entries are bad, and the value of the first one (eager arrays only)."""
    flat_bad = xp.reshape(xp.astype(bad, xp.int8), (-1,))
    count = int(xp.sum(xp.astype(flat_bad, xp.int32)))
    if count == 0:
        return 0, None
    index = int(xp.argmax(flat_bad))
    first = xp.reshape(values, (-1,))[index]
    scalar = int(first) if xp.isdtype(values.dtype, "integral") else float(first)
    return count, scalar


def _is_empty(x: Any) -> bool:
    return any(d == 0 for d in x.shape)


def _within(xp: Any, x: Any, low: float | None, high: float | None) -> bool:
    """Whether every entry of ``x`` lies in ``[low, high]``, from two read-only reductions read
    back as Python numbers (a NaN extreme fails both comparisons).

    The common case, valid input, costs no temporaries and no element-wise pass (two reductions,
    where comparing on the device took three more operations per call); only a failure pays for
    the full element-wise search that names the offending value. Both reductions are queued
    before the first is read, so a device waits once.
    """
    lowest = None if low is None else xp.min(x)
    highest = None if high is None else xp.max(x)
    integral = isdtype(xp, x.dtype, "integral")
    try:
        if low is not None and not _read(lowest, integral) >= low:
            return False
        return high is None or _read(highest, integral) <= high
    except TypeError:
        # JAX's autodiff tracers refuse float(); a comparison drops the tangent and reads back
        # (under jax.jit it raises as before, for the caller to handle)
        ok = lowest is None or bool(lowest >= low)
        return ok and (highest is None or bool(highest <= high))


def _read(value: Any, integral: bool) -> int | float:
    """A 0-d array as a Python number (detached first where an autodiff follows it: torch
    warns on reading a tensor that requires grad)."""
    if getattr(value, "requires_grad", False):
        value = value.detach()
    return int(value) if integral else float(value)


def comparable_indices(
    xp: Any, targets: Any, num_classes: int | None, ignore_index: int | None
) -> Any:
    """Class indices in an integer dtype that holds ``-1``, ``ignore_index`` and the class count.

    Compared in ``uint8``, ``-100`` wraps to 156 (a valid class of a large vocabulary) and
    ``targets < 300`` becomes ``targets < 44``: an unsigned or small index dtype is widened first
    (to int32, or int64 where the bounds need it).
    """
    wide = _comparison_dtype(xp, targets.dtype, num_classes, ignore_index)
    return targets if wide is None else xp.astype(targets, wide)


@remembered
def _comparison_dtype(
    xp: Any, dtype: Any, num_classes: int | None, ignore_index: int | None
) -> Any | None:
    """The dtype :func:`comparable_indices` widens ``dtype`` to, or None where it holds them."""
    info = xp.iinfo(dtype)
    bounds = [-1] + [b for b in (num_classes, ignore_index) if b is not None]
    if info.min <= min(bounds) and max(bounds) <= info.max:
        return None
    return xp.int32 if min(bounds) >= -(2**31) and max(bounds) < 2**31 else xp.int64


def check_class_indices(
    xp: Any, targets: Any, num_classes: int, ignore_index: int | None, name: str = "targets"
) -> bool:
    """Raise :class:`ClassIndexOutOfRange` for an index outside ``[0, C)`` that is not
    ``ignore_index``. Returns whether the check found that no target is ``ignore_index`` (the
    operator may then drop its mask of ignored examples); False where it did not look."""
    if _is_empty(targets):
        return False
    targets = comparable_indices(xp, targets, num_classes, ignore_index)
    if _within(xp, targets, 0, num_classes - 1):
        # every index in range (the common case, found without a select): none is an
        # ignore_index outside the classes
        return ignore_index is not None and not 0 <= ignore_index < num_classes
    kept = targets
    if ignore_index is not None:
        kept = xp.where(targets == ignore_index, xp.zeros_like(targets), targets)
    if _within(xp, kept, 0, num_classes - 1):
        return False
    invalid = (targets < 0) | (targets >= num_classes)
    if ignore_index is not None:
        invalid = invalid & (targets != ignore_index)
    count, first = _first_offender(xp, targets, invalid)
    if count:
        total = 1
        for d in targets.shape:
            total *= int(d)
        raise ClassIndexOutOfRange(
            f"{ref(name)} holds class index {first}, outside [0, {num_classes}) "
            f"(ignore_index={ignore_index}); {count} of {total} targets are out of range",
            argument=name,
            value=first,
            num_classes=num_classes,
            count=count,
        )
    return False


def check_range(
    xp: Any, x: Any, name: str, low: float | None = None, high: float | None = None
) -> None:
    """Raise if ``x`` has NaN or entries outside ``[low, high]`` (open ends where None)."""
    if not xp.isdtype(x.dtype, "real floating"):
        x = xp.astype(x, xp.float32)  # the standard compares integers with int bounds only
    if _is_empty(x) or (_within(xp, x, -float("inf") if low is None else low, high)):
        return
    bad = xp.isnan(x)
    if low is not None:
        bad = bad | (x < low)
    if high is not None:
        bad = bad | (x > high)
    count, first = _first_offender(xp, x, bad)
    if count:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueOutOfRange(
            f"{ref(name)} must lie in [{lo}, {hi}]; got {first} ({count} entries out of range)",
            argument=name,
            value=first,
            low=low,
            high=high,
            count=count,
        )
