"""Targets of the element-wise (binary, multi-label) losses: one target per prediction."""

from __future__ import annotations

from typing import Any

from ._checks import (
    Hyperparameter,
    check_floating,
    check_range,
    check_same_shape,
    check_unit_interval,
    format_shape,
    may_be_nonzero,
)
from ._class_targets import nan_outside
from ._errors import ShapeMismatch, ref
from ._namespace import device_of, weight_dtype
from ._native import within_unit_interval


def check_elementwise_targets(
    xp: Any,
    predictions: Any,
    targets: Any,
    *,
    prediction_name: str,
    label_smoothing: Hyperparameter,
    weights: dict[str, Any | None],
    values: bool,
) -> None:
    """Exact shapes (no broadcasting of targets), floating predictions, weights that broadcast."""
    check_floating(xp, predictions, prediction_name)
    check_unit_interval("label_smoothing", label_smoothing, xp=xp, values=values)
    check_same_shape(
        "targets",
        targets,
        tuple(predictions.shape),
        f"binary targets must have the shape of {ref(prediction_name)}",
        form="binary",
    )
    for name, weight in weights.items():
        if weight is None:
            continue
        if not broadcasts_into(tuple(weight.shape), tuple(predictions.shape)):
            raise ShapeMismatch(
                f"{ref(name)} of shape {format_shape(weight.shape)} does not broadcast to "
                f"{ref(prediction_name)} of shape {format_shape(predictions.shape)} without "
                "growing it",
                argument=name,
                shape=tuple(weight.shape),
                expected=tuple(predictions.shape),
                form="weight",
            )
        if values:
            check_range(xp, weight, name, low=0.0, high=float("inf"))
    if values and not xp.isdtype(targets.dtype, "bool") and not within_unit_interval(xp, targets):
        check_range(xp, targets, "targets", low=0.0, high=1.0)


def broadcasts_into(small: tuple[int | None, ...], big: tuple[int | None, ...]) -> bool:
    """Whether ``small`` broadcasts to ``big`` without growing it (trailing alignment)."""
    if len(small) > len(big):
        return False
    tail = big[len(big) - len(small) :]
    return all(s in (1, None) or b is None or s == b for s, b in zip(small, tail, strict=True))


def as_broadcast_weight(xp: Any, weight: Any | None, like: Any) -> Any | None:
    """A weight (array, sequence or number) on ``like``'s device, in its compute dtype
    (:func:`~xentropy._namespace.weight_dtype`)."""
    if weight is None:
        return None
    return xp.asarray(weight, dtype=weight_dtype(xp, like), device=device_of(xp, like))


def smoothed_targets(
    xp: Any, targets: Any, label_smoothing: Hyperparameter, dtype: Any, *, checked: bool = False
) -> Any:
    r"""Targets in ``dtype`` pulled towards 1/2: :math:`t (1 - \varepsilon) + \varepsilon / 2`.

    Values outside [0, 1] become NaN unless ``checked`` (they passed the eager checks).
    ``label_smoothing``: a number, or a 0-d array of ``dtype`` (``_class_targets``'s
    ``label_smoothing_in`` prepares one).
    """
    t = xp.astype(targets, dtype, copy=False)
    if not checked and not xp.isdtype(targets.dtype, "bool"):
        t = nan_outside(xp, t, 0.0, 1.0)  # NaN where the value check would raise
    if may_be_nonzero(label_smoothing):
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return t
