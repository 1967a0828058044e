r"""Reductions of per-example losses, and their backward.

With per-example losses :math:`\ell_i` and target weights :math:`w_i`:

.. math::

    \text{none}: \ell, \quad
    \text{sum}: \sum_i \ell_i, \quad
    \text{mean}: \frac{\sum_i \ell_i}{\sum_i w_i}, \quad
    \text{sum\_over\_batch\_size}: \frac{\sum_i \ell_i}{n}

``mean`` is PyTorch's weighted mean (``w_i`` is the class weight of a non-ignored target, 0 for
an ignored one, 1 where there are no per-target weights); ``sum_over_batch_size`` is Keras's
(``n`` counts every per-example element). A zero denominator (empty or fully ignored batch)
gives NaN, computed without a division by zero so that NumPy raises no warning, and its
gradient is zero (as in PyTorch).
"""

from __future__ import annotations

import math
from typing import Any

from ._namespace import device_of


def element_count(xp: Any, x: Any, dtype: Any) -> Any:
    """Number of elements of ``x`` as a 0-d array (works for unknown traced dimensions)."""
    if all(d is not None for d in x.shape):
        return xp.asarray(math.prod(x.shape), dtype=dtype, device=device_of(xp, x))
    return xp.sum(xp.ones_like(x, dtype=dtype))


def safe_divide(xp: Any, numerator: Any, denominator: Any, if_zero: float = math.nan) -> Any:
    """``numerator / denominator``, and ``if_zero`` where the denominator is 0 (no division by
    zero is carried out: NumPy warns of none)."""
    zero = denominator == 0
    if if_zero != if_zero:
        # x / NaN is NaN whatever x: one select of the denominator does it
        return numerator / xp.where(zero, math.nan, denominator)
    quotient = numerator / xp.where(zero, 1.0, denominator)
    return xp.where(zero, if_zero, quotient)


def reduce_losses(xp: Any, losses: Any, weights: Any | None, reduction: str) -> tuple[Any, Any]:
    """Reduce per-example ``losses``; returns the result and the denominator used (or None)."""
    if reduction == "none":
        return losses, None
    total = xp.sum(losses)
    if reduction == "mean" and weights is not None:
        denominator = xp.sum(weights)
        return safe_divide(xp, total, denominator), denominator
    return reduce_total(xp, total, losses, reduction)


def reduce_total(xp: Any, total: Any, losses: Any, reduction: str) -> tuple[Any, Any]:
    """:func:`reduce_losses` without weights, from the sum ``total`` of ``losses`` (``"sum"``,
    ``"mean"`` or ``"sum_over_batch_size"``): a caller that summed the losses without storing
    them passes an array of their shape and dtype as ``losses``."""
    if reduction == "sum":
        return total, None
    count = _static_count(losses)
    if count:  # known and non-zero: a plain division (a Python int as the residual)
        return total / count, count
    denominator = element_count(xp, losses, losses.dtype)
    return safe_divide(xp, total, denominator), denominator


def _static_count(x: Any) -> int | None:
    """The number of elements of ``x`` if its shape is known, else None."""
    if any(d is None for d in x.shape):
        return None
    return math.prod(x.shape)


def reduce_backward(xp: Any, cotangent: Any, denominator: Any | None, reduction: str) -> Any:
    """Per-example cotangent from the cotangent of the reduced loss (broadcasts against losses).

    A zero denominator means no example carries weight: the (NaN) mean then gets a zero
    gradient, as in PyTorch, so that a fully padded batch cannot poison the parameters.
    """
    if reduction in ("none", "sum"):
        return cotangent
    if isinstance(denominator, int):
        return cotangent / denominator
    return safe_divide(xp, cotangent, denominator, if_zero=0.0)
