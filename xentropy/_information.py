r"""Entropy, KL divergence and cross entropy of probability distributions.

.. math::

    H(p) = -\sum_c p_c \log p_c, \qquad
    D_{KL}(p \,\|\, q) = \sum_c p_c \log \frac{p_c}{q_c}, \qquad
    H(p, q) = -\sum_c p_c \log q_c = H(p) + D_{KL}(p \,\|\, q)

with :math:`0 \log 0 = 0`. ``p`` is the reference (target) distribution, ``q`` the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._checks import check_floating, check_range, check_reduction, check_same_shape, normalize_axis
from ._class_targets import move_class_axis_back, move_class_axis_last, nan_rows_outside, xlogy
from ._evaluate import CheckedValues
from ._namespace import compute_dtype, namespace_of
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import evaluate_weighted
from ._types import ArrayT, Reduction

Measure = Literal["entropy", "kl_divergence", "cross_entropy"]


@dataclass(frozen=True)
class InformationMeasure(CheckedValues):
    """One of the three measures along ``axis``; the gradient is taken w.r.t. ``q`` (or ``p``)."""

    measure: Measure
    axis: int = -1
    reduction: str = "none"

    def check(self, xp: Any, p: Any, q: Any = None, *, values: bool) -> None:
        check_reduction(self.reduction)
        check_floating(xp, p, "p")
        normalize_axis(self.axis, p.ndim)
        if q is not None:
            check_floating(xp, q, "q")
            check_same_shape("q", q, tuple(p.shape), "it must have the shape of p")
        if values:
            check_range(xp, p, "p", low=0.0, high=1.0)
            if q is not None:
                check_range(xp, q, "q", low=0.0, high=1.0)

    def _moved(self, xp: Any, x: Any, dtype: Any) -> Any:
        x = xp.astype(move_class_axis_last(xp, x, self.axis), dtype, copy=False)
        # NaN rows where the value check would raise
        return nan_rows_outside(xp, x, 0.0, 1.0, checked=self.values_checked)

    def forward(self, xp: Any, p: Any, q: Any = None) -> tuple[Any, tuple[Any, ...]]:
        prediction = p if q is None else q
        dtype = compute_dtype(xp, prediction.dtype)
        pm = self._moved(xp, p, dtype)
        if self.measure == "entropy":
            terms = -xlogy(xp, pm, pm)
        else:
            qm = self._moved(xp, q, dtype)
            terms = -xlogy(xp, pm, qm)
            if self.measure == "kl_divergence":
                terms = terms + xlogy(xp, pm, pm)
        losses = xp.sum(terms, axis=-1)
        loss, denominator = reduce_losses(xp, losses, None, self.reduction)
        return xp.astype(loss, prediction.dtype), (p, q, denominator)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        p, q, denominator = residuals
        prediction = p if q is None else q
        dtype = compute_dtype(xp, prediction.dtype)
        pm = self._moved(xp, p, dtype)
        if self.measure == "entropy":
            grad = -(xp.log(pm) + 1.0)
        else:
            qm = self._moved(xp, q, dtype)
            zero = xp.zeros_like(pm)
            grad = xp.where(pm == 0, zero, -pm / xp.where(pm == 0, xp.ones_like(qm), qm))
        upstream = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        grad = grad * upstream[..., None]
        return xp.astype(move_class_axis_back(xp, grad, self.axis), prediction.dtype, copy=False)


def _measure(measure: Measure, p: Any, q: Any, axis: int, reduction: str, **options: Any) -> Any:
    arrays = (p,) if q is None else (p, q)
    op = InformationMeasure(measure=measure, axis=axis, reduction=reduction)
    namespace_of(*arrays, names=("p", "q"))  # fail early on mixed array types
    return evaluate_weighted(op, *arrays, prediction=arrays[-1], **options)


def entropy(
    p: ArrayT,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Shannon entropy :math:`H(p) = -\sum_c p_c \log p_c` (nats) of distributions along ``axis``.

    ``reduction`` defaults to ``"none"`` (one value per distribution), as in SciPy and optax;
    ``"mean"`` averages over distributions. ``sample_weight`` and ``where`` weigh and mask the
    distributions, as in :func:`softmax_cross_entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.entropy(np.array([0.5, 0.5])))
    0.6931471...
    """
    return _measure(
        "entropy",
        p,
        None,
        axis,
        reduction,
        sample_weight=sample_weight,
        where=where,
        validate=validate,
    )


def kl_divergence(
    p: Any,
    q: ArrayT,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Kullback-Leibler divergence :math:`D_{KL}(p \| q) = \sum_c p_c \log(p_c / q_c)`.

    ``p`` is the reference distribution, ``q`` the prediction; terms with :math:`p_c = 0`
    are 0. :func:`value_and_grad` differentiates with respect to ``q``. ``reduction``,
    ``sample_weight`` and ``where`` as in :func:`entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])))
    0.6931471...
    """
    return _measure(
        "kl_divergence",
        p,
        q,
        axis,
        reduction,
        sample_weight=sample_weight,
        where=where,
        validate=validate,
    )


def cross_entropy(
    p: Any,
    q: ArrayT,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    sample_weight: Any | None = None,
    where: Any | None = None,
    validate: bool = True,
) -> ArrayT:
    r"""Cross entropy :math:`H(p, q) = -\sum_c p_c \log q_c = H(p) + D_{KL}(p \| q)`.

    ``reduction``, ``sample_weight`` and ``where`` as in :func:`entropy`.

    >>> import numpy as np, xentropy
    >>> float(xentropy.cross_entropy(np.array([0.5, 0.5]), np.array([0.25, 0.75])))
    0.8369882...
    """
    return _measure(
        "cross_entropy",
        p,
        q,
        axis,
        reduction,
        sample_weight=sample_weight,
        where=where,
        validate=validate,
    )
