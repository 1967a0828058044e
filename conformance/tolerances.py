r"""The one per-dtype tolerance table of the matrix, and errors measured in ulps.

A result passes where, element by element,

.. math::

    |a - e| \le \text{atol} + \text{rtol}\,|e|

with :math:`e` the float64 reference evaluated on the dtype-rounded inputs; NaN must meet NaN and
an infinity the same infinity. The table starts from PyTorch's ``torch.testing.assert_close``
defaults (``torch/testing/_comparison.py``); a row is widened only with a measured reason written
beside it.

The error is also reported in *ulps of the output dtype*: :math:`|a - e| / \operatorname{ulp}(m)`
with :math:`m = \max(|e|, \text{atol}/\text{rtol})`. Below :math:`\text{atol}/\text{rtol}` the
absolute tolerance dominates the test above, so measuring there keeps an error next to an exact
zero from reading as millions of ulps, and makes "passes" roughly "within
:func:`tolerance_in_ulps` ulps" for every dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# dtype name -> (rtol, atol). PyTorch's assert_close defaults; no row has needed widening.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
}

# Derivatives beyond the prediction's gradient use the same table:
#
# * target gradients are compared with an analytic float64 reference (checked against 80-digit
#   finite differences), exactly as the prediction's gradients are;
# * Hessian-vector products are compared with central differences of the analytic float64
#   gradient along v, at the steps h, h/2, h/4 with two Richardson steps (reference.hvp_reference):
#   the truncation error is O(h^6) and the rounding error about eps64 |g| / (h/4), where the loss
#   bends on a scale of one unit of the step along the directions of cases.py (logits, and
#   probabilities moved relatively). Measured against closed forms (softmax, sigmoid, binary,
#   entropy, cross entropy; tests/test_conformance.py): at most 2e-12 of max |H v|, i.e. 2e-5
#   of float64's rtol and 1e-5 of a float32 ulp, so the table applies unchanged. The comparison
#   allows that uncertainty on top (HVP_REFERENCE_RTOL, five times the measured worst, of
#   max |H v|, see hvp_slack): without it a float64 cell would report the reference's own error,
#   up to 1e4 ulp, as the backend's.
HVP_STEP = 1e-2
HVP_REFERENCE_RTOL = 1e-11
# Second order runs in these dtypes only. With 16-bit inputs the core computes in float32 and
# rounds the loss and its gradient once; a second derivative taken by autodiff also rounds the
# intermediate cotangents and tangents at every 16-bit boundary, so it is not one rounding of the
# exact value, which is what this table assumes.
SECOND_ORDER_DTYPES = ("float32", "float64")

# dtype name -> (explicit mantissa bits, minimum normal exponent, largest finite value)
FLOAT_FORMATS: dict[str, tuple[int, int, float]] = {
    "float16": (10, -14, 65504.0),
    "bfloat16": (7, -126, 3.3895313892515355e38),
    "float32": (23, -126, 3.4028234663852886e38),
    "float64": (52, -1022, float(np.finfo(np.float64).max)),
}


def tolerance(dtype: str) -> tuple[float, float]:
    """``(rtol, atol)`` for the dtype named ``dtype`` (``"float16"``, ..., ``"float64"``)."""
    return TOLERANCES[dtype]


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at ``|values|`` (float64), down to its subnormal spacing."""
    mantissa_bits, min_exponent, _ = FLOAT_FORMATS[dtype]
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    tiny = 2.0**min_exponent
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log2(np.where(magnitude > tiny, magnitude, tiny)))
    return np.exp2(exponent - mantissa_bits)


def tolerance_in_ulps(dtype: str) -> float:
    """About how many ulps of ``dtype`` the table allows (``rtol`` over the machine epsilon)."""
    rtol, _ = TOLERANCES[dtype]
    return rtol / 2.0 ** -FLOAT_FORMATS[dtype][0]


def representable(expected: np.ndarray, dtype: str) -> np.ndarray:
    """``expected`` with values beyond ``dtype``'s range replaced by the infinity they round to.

    A float16 sum of losses of 2e4 each is ``inf`` in float16: that is the correctly rounded
    result, so the reference is compared in the output dtype's range.
    """
    _, _, largest = FLOAT_FORMATS[dtype]
    e = np.asarray(expected, dtype=np.float64)
    # round-to-nearest overflows at largest + ulp(largest) / 2
    limit = largest + float(ulp(np.float64(largest), dtype)) / 2.0
    return np.where(np.abs(e) >= limit, np.copysign(np.inf, e), e)


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing one result with its expected value."""

    passed: bool
    max_abs: float  # worst |actual - expected| over the finite expected entries
    max_rel: float  # worst |actual - expected| / |expected|
    max_ulps: float  # worst error in ulps of the dtype (see the module docstring)
    detail: str = ""  # why it failed, empty when it passed
    # worst error over its tolerance, max |a - e| / (atol + rtol |e|): above 1 fails (inf where
    # the shapes, NaNs or infinities differ)
    max_ratio: float = math.inf


def hvp_slack(expected: np.ndarray) -> float:
    """The absolute uncertainty of a finite-difference Hessian-vector product ``expected``:
    :data:`HVP_REFERENCE_RTOL` of its largest finite magnitude."""
    e = np.abs(np.asarray(expected, dtype=np.float64))
    finite = e[np.isfinite(e)]
    return HVP_REFERENCE_RTOL * float(np.max(finite)) if finite.size else 0.0


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    dtype: str,
    *,
    factor: float = 1.0,
    slack: float = 0.0,
) -> Comparison:
    """Compare ``actual`` (float64 copy of a result in ``dtype``) with the float64 ``expected``.

    ``factor`` scales the tolerance: 2 compares two results that may each be off the exact
    value by the tolerance, in opposite directions (an adapter and a native loss). ``slack`` is
    the expected value's own absolute uncertainty (a finite-difference reference): the test and
    the ulps use the error beyond it, ``max(|a - e| - slack, 0)``; ``max_abs`` and ``max_rel``
    stay the raw error.
    """
    rtol, atol = TOLERANCES[dtype]
    rtol, atol = factor * rtol, factor * atol
    a = np.asarray(actual, dtype=np.float64)
    e = representable(expected, dtype)
    if a.shape != e.shape:
        return Comparison(False, np.inf, np.inf, np.inf, f"shape {a.shape} != expected {e.shape}")
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        where = np.argwhere(nan_a != nan_e)[:3].tolist()
        return Comparison(False, np.inf, np.inf, np.inf, f"NaN positions differ at {where}")
    inf_a, inf_e = np.isinf(a), np.isinf(e)
    wrong_inf = (inf_a | inf_e) & (a != e)  # an infinity unmatched, or of the other sign
    if np.any(wrong_inf):
        where = np.argwhere(wrong_inf)[:3].tolist()
        return Comparison(False, np.inf, np.inf, np.inf, f"infinities differ at {where}")
    finite = np.isfinite(e)
    if not np.any(finite):
        return Comparison(True, 0.0, 0.0, 0.0, max_ratio=0.0)
    a, e = a[finite], e[finite]
    error = np.abs(a - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(e != 0, error / np.abs(e), np.where(error == 0, 0.0, np.inf))
    beyond = np.maximum(error - slack, 0.0)
    ulps = beyond / ulp(np.maximum(np.abs(e), atol / rtol), dtype)
    bad = beyond > atol + rtol * np.abs(e)
    detail = ""
    if np.any(bad):
        worst = int(np.argmax(np.where(bad, ulps, -1.0)))
        detail = (
            f"{int(np.sum(bad))} of {error.size} elements beyond rtol={rtol:g}, atol={atol:g}; "
            f"worst {a[worst]:.9g} vs expected {e[worst]:.9g}"
        )
    return Comparison(
        passed=not bool(np.any(bad)),
        max_abs=float(np.max(error)),
        max_rel=float(np.max(rel)),
        max_ulps=float(np.max(ulps)),
        detail=detail,
        max_ratio=float(np.max(beyond / (atol + rtol * np.abs(e)))),
    )


def format_ulps(ulps: float | None) -> str:
    """A short rendering of an error in ulps: ``0``, ``0.5``, ``12``, ``3.4e5``, ``inf``."""
    if ulps is None:
        return "-"
    if math.isinf(ulps):
        return "inf"
    if ulps == 0:
        return "0"
    if ulps < 10:
        return f"{ulps:.2g}"
    if ulps < 1e4:
        return f"{ulps:.0f}"
    return f"{ulps:.1e}".replace("e+0", "e").replace("e+", "e")
