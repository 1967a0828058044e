r"""The tolerances of the matrix, derived from measurement, and errors measured in ulps.

A result passes where, element by element,

.. math::

    |a - e| \le \text{atol} + \text{rtol}\,|e|
    = K\,\varepsilon\,(|e| + f),
    \qquad \text{rtol} = K\,\varepsilon, \quad \text{atol} = K\,\varepsilon\,f,

with :math:`e` the float64 reference evaluated on the dtype-rounded inputs, :math:`\varepsilon`
the dtype's machine epsilon and :math:`f` its *floor* (:data:`FLOORS`): below :math:`|e| = f` the
absolute term governs. NaN must meet NaN and an infinity the same infinity. The number of
epsilons allowed, :math:`K` (:func:`tolerance_in_ulps`), depends on the dtype, the quantity
compared (``value``, ``gradient``, ``target_gradient``, ``hvp``) and the length :math:`n` of the
longest sum behind one result element (:func:`summed_terms`):

.. math::

    K(\text{dtype}, q, n) = S_\text{dtype}\, w(\text{dtype}, q) + g_\text{dtype}\,\sqrt{n}

* :math:`w` is the worst normalized error :math:`|a - e| / (\varepsilon (|e| + f))` the full
  matrix measured (:data:`MEASURED`, with the cell that produced it), and :math:`S` the safety
  factor over it (:data:`SAFETY`);
* :math:`g \sqrt{n}` covers the rounding that sums over classes (log-sum-exp, entropies, the
  batch reduction) accumulate: measured on copies of the matrix's cases with up to
  :math:`n = 2^{14}` classes (:data:`GROWTH`).

An adapter compared with its framework's own loss (``against="native"``) gets twice this
tolerance (``compare(..., factor=2)``): each may be off the exact value by it.

The error is also reported in *ulps of the output dtype*: :math:`|a - e| / \operatorname{ulp}(m)`
with :math:`m = \max(|e|, f)`. Below :math:`f` the absolute tolerance dominates the test above, so
measuring there keeps an error next to an exact zero from reading as millions of ulps, and makes
"passes" roughly "within :func:`tolerance_in_ulps` ulps" for every dtype.

Before this derivation the table was PyTorch's ``torch.testing.assert_close`` defaults, float64's
``rtol = 1e-7`` being :math:`4.5 \cdot 10^8` ulps: a float64 path that computes a constant in
float32 (a relative error of 1e-9 to 1e-8) passed every cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

QUANTITY_NAMES = ("value", "gradient", "target_gradient", "hvp")

# dtype name -> (explicit mantissa bits, minimum normal exponent, largest finite value)
FLOAT_FORMATS: dict[str, tuple[int, int, float]] = {
    "float16": (10, -14, 65504.0),
    "bfloat16": (7, -126, 3.3895313892515355e38),
    "float32": (23, -126, 3.4028234663852886e38),
    "float64": (52, -1022, float(np.finfo(np.float64).max)),
}

# dtype -> f = atol / rtol. Kept from the previous table (PyTorch's atol over its rtol), so that
# the ulps measured before and after this derivation are the same numbers.
FLOORS: dict[str, float] = {
    "float16": 1e-5 / 1e-3,
    "bfloat16": 1e-5 / 1.6e-2,
    "float32": 1e-5 / 1.3e-6,
    "float64": 1.0,
}


@dataclass(frozen=True)
class Measured:
    """The worst normalized error :math:`|a - e| / (\\varepsilon (|e| + f))` of one dtype and
    quantity over the full matrix, and the cell (backend, case) that produced it."""

    worst: float
    backend: str
    case: str


# The full matrix on the current tree, 2026-12-01 (2 CPU cores, no GPU; torch 2.13, jax 0.10.2,
# tensorflow 2.21, keras 3.15):
#     xentropy-conformance --out-dir DIR      (seed 0, every default backend and dtype)
# PASS, 29,863 cells checked; w = max over the cells against the reference of max_ratio times
# the old table's rtol / eps (the ratio is the test itself, so this is exact for the old table's
# floors, kept above). The float64 H v is 0 beyond its finite-difference reference's own
# uncertainty (hvp_slack) in every cell: it takes the gradient's w.
MEASURED: dict[str, dict[str, Measured]] = {
    "float16": {
        "value": Measured(
            0.642,
            "tensorflow-v1-adapter",
            "softmax_cross_entropy/NC/dense/normal/sample_weight+none",
        ),
        "gradient": Measured(
            0.786, "jax-adapter", "softmax_cross_entropy/NC/dense/normal/where+sum_over_batch_size"
        ),
        "target_gradient": Measured(
            0.729, "jax-adapter", "poly1_cross_entropy/NdC/dense/normal/plain"
        ),
    },
    "bfloat16": {
        "value": Measured(
            0.727,
            "tensorflow-v1-adapter",
            "sigmoid_cross_entropy/NC/soft/normal/sample_weight+where+none",
        ),
        "gradient": Measured(0.920, "jax-adapter", "poly1_cross_entropy/NdC/dense/normal/plain"),
        "target_gradient": Measured(
            0.908, "jax-adapter", "sigmoid_cross_entropy/NdC/soft/normal/plain"
        ),
    },
    "float32": {
        "value": Measured(1.76, "tensorflow", "sigmoid_focal_loss/NC/soft/huge/none"),
        "gradient": Measured(
            1.86, "jax", "linear_cross_entropy/ND/dense/extreme/bias+class_weight+all"
        ),
        "target_gradient": Measured(1.25, "torch", "sigmoid_focal_loss/NC/soft/huge/none"),
        "hvp": Measured(
            1.65,
            "tensorflow",
            "categorical_cross_entropy/NC/sparse/normal/normalize+class_weight+none",
        ),
    },
    "float64": {
        "value": Measured(
            28.3, "jax", "binary_cross_entropy/NC/soft/normal/class_weight+label_smoothing=0.1+none"
        ),
        "gradient": Measured(
            16.9, "tensorflow", "linear_cross_entropy/ND/sparse/extreme/softcap=5"
        ),
        "target_gradient": Measured(
            37.6, "jax", "binary_cross_entropy/NC/hard/normal/class_weight+label_smoothing=0.1+none"
        ),
        "hvp": Measured(16.9, "tensorflow", "linear_cross_entropy/ND/sparse/extreme/softcap=5"),
    },
}

# S per dtype. float32 and float64: 4, for what one seed on one machine does not show (other
# seeds, library versions, GPU reduction orders); their worst cells are set by the conditioning
# of the inputs (cancellation in label smoothing, log1p, softcap), which another draw can make
# worse. 16-bit: 2, because there the error is bounded by the rounding count: the core computes
# in float32 and rounds once (at most 0.5 eps), an adapter's autodiff rounds a cotangent once more
# (1.0 eps for two roundings; the worst measured is 0.92), so twice the measured covers the bound.
SAFETY: dict[str, float] = {"float16": 2.0, "bfloat16": 2.0, "float32": 4.0, "float64": 4.0}

# g per dtype, epsilons per sqrt(n). Measured 2026-12-01 on copies of the matrix's NC / ND
# normal-range cases (softmax_cross_entropy, entropy, linear_cross_entropy, sigmoid_cross_entropy,
# kl_div_log; reductions none and mean) with 4 rows of n = 5, 64, 1024, 16384 classes, through the
# runner's own cells on numpy, torch, tensorflow and jax, seed = n. The worst w over them:
#
#   n         5     64    1024  16384      (float64; float32 below)
#   value     1.22  1.14  1.59  7.54       0.18  0.57  0.79  1.50
#   gradient  0.90  0.98  4.42  4.98       0.18  0.50  0.86  2.36
#   target    2.68  7.66  7.99  8.00       0.20  0.53  1.12  1.15
#
# From 1024 to 16384 classes (x16) the worst grew x1.1 to x4.7: between log n (x1.4) and sqrt n
# (x4), nowhere near n (x16): the frameworks sum in blocks or pairs, whose rounding grows like
# a random walk, not the (n - 1) eps worst case of one running sum. So g sqrt(n), with g the
# safety factor times the largest growth over the n = 5 value per sqrt(n): float64
# 4 x (7.54 - 1.22) / 128 = 0.20, float32 4 x (2.36 - 0.18) / 128 = 0.068 -> 0.07. 16-bit: 0;
# the core sums in float32 and rounds once, and the worst stayed at 0.5 (0.415 -> 0.497) up to
# n = 16384: the float32 sums' error is 2^-13 (float16) or 2^-16 (bfloat16) of an epsilon each.
# At the matrix's own sizes (n <= 60, summed_terms) the term adds at most 1.6 epsilons.
GROWTH: dict[str, float] = {"float16": 0.0, "bfloat16": 0.0, "float32": 0.07, "float64": 0.2}

# Derivatives beyond the prediction's gradient:
#
# * target gradients are compared with an analytic float64 reference (checked against 80-digit
#   finite differences), exactly as the prediction's gradients are;
# * Hessian-vector products are compared with central differences of the analytic float64
#   gradient along v, at the steps h, h/2, h/4 with two Richardson steps (reference.hvp_reference):
#   the truncation error is O(h^6) and the rounding error about eps64 |g| / (h/4), where the loss
#   bends on a scale of one unit of the step along the directions of cases.py (logits, and
#   probabilities moved relatively). Measured against closed forms (softmax, sigmoid, binary,
#   entropy, cross entropy; tests/test_conformance.py): at most 2e-12 of max |H v|, 1e-5 of a
#   float32 ulp. The comparison allows that uncertainty on top (HVP_REFERENCE_RTOL, five times
#   the measured worst, of max |H v|, see hvp_slack): without it a float64 cell would report the
#   reference's own error, up to 1e4 ulp, as the backend's.
HVP_STEP = 1e-2
HVP_REFERENCE_RTOL = 1e-11
# Second order runs in these dtypes only. With 16-bit inputs the core computes in float32 and
# rounds the loss and its gradient once; a second derivative taken by autodiff also rounds the
# intermediate cotangents and tangents at every 16-bit boundary, so it is not one rounding of the
# exact value, which is what this table assumes.
SECOND_ORDER_DTYPES = ("float32", "float64")


def epsilon(dtype: str) -> float:
    """The machine epsilon of ``dtype``: :math:`2^{-m}` with ``m`` explicit mantissa bits."""
    return 2.0 ** -FLOAT_FORMATS[dtype][0]


def _measured(dtype: str, quantity: str) -> Measured:
    if quantity not in QUANTITY_NAMES:
        raise ValueError(f"unknown quantity {quantity!r}; expected one of {QUANTITY_NAMES}")
    return MEASURED[dtype].get(quantity, MEASURED[dtype]["gradient"])


def tolerance_in_ulps(dtype: str, *, quantity: str = "value", terms: int = 1) -> float:
    r"""How many epsilons of ``dtype`` the table allows: :math:`K = S\,w + g \sqrt{n}`.

    ``quantity`` is one of :data:`QUANTITY_NAMES` (``hvp`` in 16-bit takes the gradient's
    :math:`w`; the matrix runs no 16-bit second order), ``terms`` the :math:`n` of
    :func:`summed_terms`.
    """
    return SAFETY[dtype] * _measured(dtype, quantity).worst + GROWTH[dtype] * math.sqrt(terms)


def tolerance(dtype: str, *, quantity: str = "value", terms: int = 1) -> tuple[float, float]:
    r"""``(rtol, atol)`` for ``dtype`` (``"float16"``, ..., ``"float64"``): :math:`K \varepsilon`
    and :math:`K \varepsilon f` with :math:`K` of :func:`tolerance_in_ulps`."""
    rtol = tolerance_in_ulps(dtype, quantity=quantity, terms=terms) * epsilon(dtype)
    return rtol, rtol * FLOORS[dtype]


def summed_terms(arrays: Mapping[str, np.ndarray]) -> int:
    """The :math:`n` of a case: the size of its largest floating input.

    A bound on the longest chain of sums behind one result element: a per-example loss sums
    over its :math:`C` classes, a reduced one over :math:`N` examples of those (:math:`N + C \\le
    N C`), a linear one over :math:`D` and :math:`V`.
    """
    sizes = [int(np.size(v)) for v in arrays.values() if np.asarray(v).dtype.kind == "f"]
    return max(sizes, default=1)


# dtype name -> (rtol, atol) of a value with n = 1: the headline numbers of the reports
TOLERANCES: dict[str, tuple[float, float]] = {dtype: tolerance(dtype) for dtype in FLOAT_FORMATS}


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at ``|values|`` (float64), down to its subnormal spacing."""
    mantissa_bits, min_exponent, _ = FLOAT_FORMATS[dtype]
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    tiny = 2.0**min_exponent
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log2(np.where(magnitude > tiny, magnitude, tiny)))
    return np.exp2(exponent - mantissa_bits)


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
    quantity: str = "value",
    terms: int = 1,
) -> Comparison:
    """Compare ``actual`` (float64 copy of a result in ``dtype``) with the float64 ``expected``.

    The tolerance is :func:`tolerance` of ``dtype``, ``quantity`` and ``terms``. ``factor``
    scales it: 2 compares two results that may each be off the exact value by the tolerance, in
    opposite directions (an adapter and a native loss). ``slack`` is the expected value's own
    absolute uncertainty (a finite-difference reference): the test and the ulps use the error
    beyond it, ``max(|a - e| - slack, 0)``; ``max_abs`` and ``max_rel`` stay the raw error.
    """
    rtol, atol = tolerance(dtype, quantity=quantity, terms=terms)
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
            f"worst {a[worst]:.17g} vs expected {e[worst]:.17g}"
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
