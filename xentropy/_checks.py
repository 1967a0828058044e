"""Argument checks that raise clear errors.

Static checks (dtypes, shapes, option values) need no array values and run always, under tracing
too. Value checks (labels in range, probabilities in [0, 1], weights >= 0) read the data, so they
run only on eager arrays and only when the caller asks for validation; under tracing the kernels
turn the affected rows into NaN instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size")


def format_shape(shape: Sequence[int | None]) -> str:
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")


def check_unit_interval(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")


def check_finite_number(name: str, value: float, *, minimum: float | None = None) -> None:
    if (
        not isinstance(value, (int, float))
        or value != value
        or value in (float("inf"), -float("inf"))
    ):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")


def check_floating(xp: Any, x: Any, name: str) -> None:
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating-point array; got dtype {x.dtype}")


def normalize_axis(axis: int, ndim: int, name: str = "axis") -> int:
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis!r} is out of range for an array of {ndim} dimensions")
    return axis % ndim


def shapes_match(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    """Equal shapes, where an unknown (None) dimension of a traced array matches anything."""
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def check_same_shape(name: str, x: Any, expected: Sequence[int | None], why: str) -> None:
    if not shapes_match(tuple(x.shape), tuple(expected)):
        raise ValueError(
            f"{name} has shape {format_shape(x.shape)} but {why} {format_shape(expected)}; "
            "targets are never broadcast"
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
    """One synchronising answer from two read-only reductions (NaN fails both comparisons).

    The common case, valid input, costs no temporaries; only a failure pays for the full
    element-wise search that names the offending value.
    """
    ok = None
    if low is not None:
        ok = xp.min(x) >= low
    if high is not None:
        ok = xp.max(x) <= high if ok is None else ok & (xp.max(x) <= high)
    return ok is None or bool(ok)


def check_class_indices(
    xp: Any, targets: Any, num_classes: int, ignore_index: int | None, name: str = "targets"
) -> None:
    if _is_empty(targets):
        return
    kept = targets
    if ignore_index is not None:
        kept = xp.where(targets == ignore_index, xp.zeros_like(targets), targets)
    if _within(xp, kept, 0, num_classes - 1):
        return
    invalid = (targets < 0) | (targets >= num_classes)
    if ignore_index is not None:
        invalid = invalid & (targets != ignore_index)
    count, first = _first_offender(xp, targets, invalid)
    if count:
        total = 1
        for d in targets.shape:
            total *= int(d)
        raise ValueError(
            f"{name} holds class index {first}, outside [0, {num_classes}) "
            f"(ignore_index={ignore_index}); {count} of {total} targets are out of range"
        )


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
        raise ValueError(
            f"{name} must lie in [{lo}, {hi}]; got {first} ({count} entries out of range)"
        )
