r"""Per-example weights and masks: ``sample_weight=`` and ``where=`` of every loss.

A loss operator gives per-example losses :math:`\ell_i` (its ``reduction="none"``, class weights
included) and, for the weighted mean, per-example mean weights :math:`e_i` (the class weight
:math:`w_{y_i}` of a class-index target, 0 if ignored; 1 otherwise). With sample weights
:math:`s_i \ge 0` (any array that broadcasts to the per-example shape) and a mask
:math:`m_i \in \{0, 1\}` (``where``, optax's boolean mask of examples):

.. math::

    \text{none}: s_i m_i \ell_i, \quad
    \text{sum}: \sum_i s_i m_i \ell_i, \quad
    \text{mean}: \frac{\sum_i s_i m_i \ell_i}{\sum_i s_i m_i e_i}, \quad
    \text{sum\_over\_batch\_size}: \frac{\sum_i s_i m_i \ell_i}{\sum_i m_i}

``mean`` is Keras's ``mean_with_sample_weight`` (and PyTorch's class-weighted mean when
:math:`s = 1`); ``sum_over_batch_size`` is Keras's default, which counts every example that is
not masked, whatever its weight. (TensorFlow's ``tf.compat.v1.losses`` divides by the number of
non-zero weights instead: ``xentropy.backends.tensorflow.losses``.) A masked example is selected
away, not multiplied by 0: a NaN or infinite loss there does not reach the result (its own
gradient is then 0 times a NaN derivative, NaN: it is not hidden). A zero denominator gives NaN
with a zero gradient, as the operators' own mean does
(:func:`reduce_weighted`'s ``if_empty`` chooses another value, e.g. Keras's 0).

The weighting is plain array arithmetic after the operator, so every framework differentiates it
with its own autodiff (the sample weights included); ``value_and_grad`` gets the cotangent of the
per-example losses recorded with the operator.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from ._checks import check_range, check_reduction, format_shape
from ._class_targets import gathered_weight, sparse_targets
from ._elementwise_targets import broadcasts_into
from ._evaluate import LossOperator, evaluate, record_cotangent
from ._namespace import compute_dtype, device_of, is_lazy, namespace_of
from ._reduction import element_count, safe_divide

MeanWeight = Callable[[Any, Any], Any | None]  # (xp, dtype) -> per-example e_i, or None for 1


def evaluate_weighted(
    op: LossOperator,
    *arrays: Any,
    prediction: Any,
    validate: bool,
    sample_weight: Any | None = None,
    where: Any | None = None,
    mean_weight: MeanWeight | None = None,
) -> Any:
    """:func:`~xentropy._evaluate.evaluate` with ``sample_weight`` and ``where`` applied.

    Without either it is ``evaluate`` itself (the operator reduces). ``mean_weight`` gives the
    per-example mean weights :math:`e_i` when the operator has any (class-index targets).
    """
    if sample_weight is None and where is None:
        return evaluate(op, *arrays, prediction=prediction, validate=validate)
    reduction = op.reduction  # type: ignore[attr-defined]
    check_reduction(reduction)
    xp = namespace_of(*arrays)
    out_dtype = prediction.dtype
    dtype = compute_dtype(xp, out_dtype)
    if dtype != out_dtype:
        # 16-bit: the per-example losses stay in the compute dtype (float32), rounded once at
        # the end; weighting 16-bit losses would magnify their rounding in the derivatives
        wide = xp.astype(prediction, dtype)
        arrays = tuple(wide if a is prediction else a for a in arrays)
        prediction = wide
    per_example_op = dataclasses.replace(op, reduction="none")  # type: ignore[type-var]
    losses = evaluate(per_example_op, *arrays, prediction=prediction, validate=validate)
    return reduce_weighted(
        xp.asarray(losses),  # NumPy's loss of one example is a NumPy scalar, not an array
        reduction=reduction,
        sample_weight=sample_weight,
        where=where,
        mean_weight=mean_weight,
        validate=validate,
        out_dtype=out_dtype,
    )


def reduce_weighted(
    losses: Any,
    *,
    reduction: str,
    sample_weight: Any | None = None,
    where: Any | None = None,
    mean_weight: MeanWeight | None = None,
    validate: bool = True,
    out_dtype: Any = None,
    if_empty: float = math.nan,
) -> Any:
    """Per-example ``losses`` weighted by ``sample_weight``, masked by ``where``, and reduced
    (the formulas of the module docstring), in ``out_dtype`` (default: the losses' dtype).

    The dialects whose framework weights after the loss (Keras's ``Loss.__call__``) call this
    on the per-example losses of an operator. ``validate`` checks the sample weights' values on
    eager arrays (NaN for a negative or NaN weight otherwise). ``if_empty`` is the value of a
    mean whose denominator is 0 (every example masked or weighted 0): NaN as PyTorch's mean of
    nothing, 0 as Keras's ``divide_no_nan``; its gradient is 0 either way.
    """
    check_reduction(reduction)
    xp = namespace_of(losses)
    out_dtype = losses.dtype if out_dtype is None else out_dtype
    dtype = compute_dtype(xp, out_dtype)
    shape = tuple(losses.shape)
    check = validate and not is_lazy(losses)
    scale = _sample_scale(xp, sample_weight, shape, dtype, losses, values=check)
    mask = _mask(xp, where, shape)
    weighted = xp.astype(losses, dtype)
    if scale is not None:
        weighted = weighted * scale
    if mask is not None:
        weighted = xp.where(mask, weighted, xp.zeros_like(weighted))
    result, cotangent = _reduce(
        xp, weighted, scale, mask, reduction, mean_weight, dtype, if_empty
    )
    record_cotangent(cotangent, gradient_dtype=out_dtype)
    return xp.astype(result, out_dtype)


def _sample_scale(
    xp: Any,
    sample_weight: Any | None,
    shape: tuple,
    dtype: Any,
    like: Any,
    *,
    values: bool,
) -> Any | None:
    """The sample weights broadcast to the per-example ``shape``; NaN where negative or NaN."""
    if sample_weight is None:
        return None
    s = _as_array(xp, sample_weight, dtype, like)
    _check_broadcast("sample_weight", tuple(s.shape), shape)
    if not xp.isdtype(s.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"sample_weight must be real; got dtype {s.dtype}")
    s = xp.astype(s, dtype)
    if values:
        check_range(xp, s, "sample_weight", low=0.0, high=float("inf"))
    else:  # NaN for the examples a check would have rejected (traced or unvalidated)
        nan = xp.asarray(float("nan"), dtype=dtype, device=device_of(xp, s))
        s = s * xp.where(s >= 0, xp.ones_like(s), nan)
    return s  # broadcast by the arithmetic (a traced shape may be unknown)


def _mask(xp: Any, where: Any | None, shape: tuple) -> Any | None:
    if where is None:
        return None
    if not hasattr(where, "dtype") or not xp.isdtype(where.dtype, "bool"):
        raise TypeError(
            f"where must be a boolean array (True: the example counts); got "
            f"{getattr(where, 'dtype', type(where).__name__)}"
        )
    _check_broadcast("where", tuple(where.shape), shape)
    return where


def _as_array(xp: Any, value: Any, dtype: Any, like: Any) -> Any:
    """``value`` as an array of ``xp`` on ``like``'s device (kept in its autodiff graph)."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        if namespace_of(value) is xp:
            return value
        raise TypeError(
            f"sample_weight is a {type(value).__module__}.{type(value).__name__} but the "
            f"prediction is a {type(like).__module__}.{type(like).__name__}; pass an array of "
            "the prediction's library"
        )
    return xp.asarray(value, dtype=dtype, device=device_of(xp, like))


def _check_broadcast(name: str, small: tuple, big: tuple) -> None:
    """``small`` must broadcast to ``big`` without growing it (NumPy's trailing alignment)."""
    if not broadcasts_into(small, big):
        hint = ""
        if len(small) < len(big) and small == big[: len(small)]:
            hint = f"; add trailing axes of size 1 (shape {format_shape((*small, 1))})"
        raise ValueError(
            f"{name} of shape {format_shape(small)} does not broadcast to the per-example "
            f"losses of shape {format_shape(big)}{hint}"
        )


def _reduce(
    xp: Any,
    weighted: Any,
    scale: Any | None,
    mask: Any | None,
    reduction: str,
    mean_weight: MeanWeight | None,
    dtype: Any,
    if_empty: float,
) -> tuple[Any, Any]:
    """The reduced loss, and d result / d per-example loss (for ``value_and_grad``)."""
    ones = xp.ones_like(weighted)  # not xp.ones(shape): a traced shape may be unknown
    factor = ones
    if scale is not None:
        factor = factor * scale
    if mask is not None:
        factor = xp.where(mask, factor, xp.zeros_like(factor))
    if reduction == "none":
        return weighted, factor
    total = xp.sum(weighted)
    if reduction == "sum":
        return total, factor
    if reduction == "mean":
        e = None if mean_weight is None else mean_weight(xp, dtype)
        denominator = xp.sum(factor if e is None else factor * e)
    elif mask is None:
        denominator = element_count(xp, weighted, dtype)
    else:
        denominator = xp.sum(xp.where(mask, ones, xp.zeros_like(ones)))
    result = safe_divide(xp, total, denominator, if_zero=if_empty)
    return result, safe_divide(xp, factor, denominator, if_zero=0.0)


def class_index_mean_weight(
    prediction: Any,
    targets: Any,
    class_weight: Any | None,
    axis: int,
    ignore_index: int | None,
    *,
    num_classes: int | None = None,
) -> MeanWeight:
    """The mean weights :math:`e_i = w_{y_i}` (0 if ignored) of class-index targets, or None
    (probability targets: each example weighs 1), computed only when asked for.
    ``num_classes`` defaults to ``prediction.shape[axis]`` (the linear loss's prediction is the
    hidden states)."""

    def weights(xp: Any, dtype: Any) -> Any | None:
        if len(targets.shape) != len(prediction.shape) - 1:
            return None
        classes = prediction.shape[axis] if num_classes is None else num_classes
        sparse = sparse_targets(xp, targets, classes, ignore_index)
        w = None if class_weight is None else xp.astype(class_weight, dtype)
        return gathered_weight(xp, sparse, w, dtype)

    return weights
