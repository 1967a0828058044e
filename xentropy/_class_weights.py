"""Class weights from class counts, for imbalanced data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, get_args, overload

from ._checks import check_range
from ._namespace import compute_dtype, device_of, is_lazy, namespace_of
from ._types import ArrayT, Scheme

SCHEMES: tuple[Scheme, ...] = get_args(Scheme)


@overload
def class_weights(
    counts: Sequence[float],
    *,
    scheme: Scheme = "inverse",
    beta: float = 0.999,
    normalize: bool = False,
) -> Any: ...


@overload
def class_weights(
    counts: ArrayT,
    *,
    scheme: Scheme = "inverse",
    beta: float = 0.999,
    normalize: bool = False,
) -> ArrayT: ...


def class_weights(
    counts: Any,
    *,
    scheme: Scheme = "inverse",
    beta: float = 0.999,
    normalize: bool = False,
) -> Any:
    r"""Per-class weights from the number of examples of each class.

    With counts :math:`n_c`, total :math:`N = \sum_c n_c` and :math:`C` classes:

    * ``"inverse"``: :math:`w_c = N / n_c`.
    * ``"log_inverse"``: :math:`w_c = \max(\log(N / n_c), 1)`, the log of the inverse frequency
      clipped below at 1. The clip comes before the optional normalisation: counts
      ``[1000, 2300, 20310, 6700]`` give about ``[3.41, 2.57, 1.00, 1.50]`` and, normalised,
      ``[1.00, 0.755, 0.293, 0.442]`` (the recipe this scheme comes from printed 0.117 for the
      third class, which is its unclipped 0.40 divided by 3.41; the clip is applied as stated).
    * ``"effective_number"`` (Cui et al. 2019): :math:`w_c \propto (1 - \beta) / (1 - \beta^{n_c})`,
      rescaled so that the weights sum to :math:`C`.

    ``normalize=True`` finally divides by the largest weight.

    Args:
        counts: ``(C,)`` positive counts (any real dtype; a Python sequence is read as NumPy).
        scheme: one of ``"inverse"``, ``"log_inverse"``, ``"effective_number"``.
        beta: :math:`\beta \in [0, 1)` of the effective number.
        normalize: divide by the maximum weight.

    Returns:
        ``(C,)`` floating weights, in the namespace of ``counts``.

    >>> import numpy as np, xentropy
    >>> xentropy.class_weights(np.array([10, 30, 60]))
    array([10.        ,  3.33333333,  1.66666667])
    """
    if isinstance(counts, (list, tuple)):
        import numpy as np

        counts = np.asarray(counts)
    xp = namespace_of(counts)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must lie in [0, 1); got {beta!r}")
    if counts.ndim != 1:
        raise ValueError(
            f"counts must be one-dimensional (one count per class); got shape {counts.shape}"
        )
    if not xp.isdtype(counts.dtype, "real floating"):
        float64 = _has_float64(xp, device_of(xp, counts))
        counts = xp.astype(counts, xp.float64 if float64 else xp.float32)
    dtype = counts.dtype
    counts = xp.astype(counts, compute_dtype(xp, dtype), copy=False)
    if not is_lazy(counts):
        check_range(xp, counts, "counts", low=0.0)
        empty = xp.astype(counts == 0, xp.int8)
        if int(xp.max(empty)) if counts.shape[0] else 0:
            raise ValueError(
                f"counts is 0 for class {int(xp.argmax(empty))}; every scheme divides by a "
                "function of the count, so give each class at least one example"
            )
    else:  # unread (traced, Dask) counts: a count <= 0 (or NaN) makes every weight NaN
        counts = xp.where(xp.all(counts > 0), counts, xp.full_like(counts, float("nan")))
    if scheme == "inverse":
        weights = xp.sum(counts) / counts
    elif scheme == "log_inverse":
        weights = xp.log(xp.sum(counts) / counts)
        weights = xp.maximum(weights, xp.ones_like(weights))
    else:
        # 1 - beta**n as -expm1(n log beta), log beta in Python's double precision: rounding
        # beta to float32 first would cost ~n * 1e-8 relative error in beta**n
        log_beta = math.log(beta) if beta > 0.0 else -math.inf
        weights = (1.0 - beta) / -xp.expm1(counts * log_beta)
        weights = weights * (counts.shape[0] / xp.sum(weights))
    if normalize:
        weights = weights / xp.max(weights)
    return xp.astype(weights, dtype, copy=False)


def _has_float64(xp: Any, device: Any) -> bool:
    try:
        xp.zeros(1, dtype=xp.float64, device=device)
    except Exception:
        return False
    return True
