"""One per-dtype tolerance table, and ``assert_close`` that reports errors in ulps of the dtype.

The starting point is PyTorch's ``torch.testing.assert_close`` defaults
(``torch/testing/_comparison.py``); float64 is tightened to catch a float32 slip (see
``VALUE_TOLERANCES``). A result passes where
``|actual - expected| <= atol + rtol * |expected|`` elementwise; NaN must meet NaN and an infinity
the same infinity.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

# dtype name -> (rtol, atol): PyTorch's assert_close defaults, but float64. Its default there
# (1e-7, 4.5e8 ulps) lets through a float64 path that computes a constant in float32 (a relative
# 1e-9 to 1e-8); 1e-12 (4.5e3 ulps) fails that slip by a factor of 2,700 and more. Measured
# 2026-12-01 by logging, in every assert_close call on the default table, the worst
# |a - e| / (eps (|e| + atol / rtol)) over the test files that import this module, from
# test_bad_input_matrix to test_linear_weights_and_probabilities in name order (test_jax_adapter
# in part): float64 values 6.9 eps
# (test_class_weights.py::test_against_reference[*-float64-effective_number-False]), gradients
# 6.2 eps (test_linear_grad_in_forward.py::test_adapter_gradients_match_native[plain-sum]).
# The margin over those (650x) is for comparisons with other implementations in float64: the
# conformance matrix measures an optax loss up to 781 eps off ours (conformance/tolerances.py).
VALUE_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-12, 1e-12),
}

# Gradients: the same table. A reduced loss's gradient entries are small (p - onehot over a total
# weight), so the atol term dominates for them and the defaults hold.
GRAD_TOLERANCES: dict[str, tuple[float, float]] = dict(VALUE_TOLERANCES)

# float64 analytic gradient against a central finite difference (``reference.numerical_grad``,
# about 1e-9 relative accuracy): PyTorch's gradcheck defaults (atol 1e-5, rtol 1e-3) are looser
# than needed; 1e-6 / 1e-7 still leaves a factor of about 100 over the measured differences.
FINITE_DIFFERENCE_TOLERANCE: tuple[float, float] = (1e-6, 1e-7)


_NUMPY_DTYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}


def dtype_name(dtype: object) -> str:
    """``"float32"`` for ``numpy.float32``, ``xp.float32``, ``torch.float32``, ``"float32"``..."""
    name = dtype if isinstance(dtype, str) else str(dtype)
    return name.rsplit(".", 1)[-1]


def tolerance(dtype: object, *, grad: bool = False) -> tuple[float, float]:
    table = GRAD_TOLERANCES if grad else VALUE_TOLERANCES
    return table[dtype_name(dtype)]


def ulp(values: np.ndarray, dtype: object) -> np.ndarray:
    """The spacing of ``dtype`` at each of ``values`` (float64), down to the subnormal spacing."""
    info = ml_dtypes.finfo(_NUMPY_DTYPES[dtype_name(dtype)])
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.where(magnitude > 0, magnitude, info.smallest_normal)))
    exponent = np.maximum(exponent, info.minexp)
    return np.exp2(exponent - info.nmant)


def assert_close(
    actual: object,
    expected: object,
    dtype: object,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    grad: bool = False,
    msg: str = "",
) -> None:
    """Assert ``actual`` (any array convertible by NumPy) matches the float64 ``expected``.

    Tolerances come from the table for ``dtype`` unless given. On failure the message gives the
    number of mismatches, the worst absolute and relative error, and that error in ulps of
    ``dtype`` at the expected value.
    """
    default_rtol, default_atol = tolerance(dtype, grad=grad)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    prefix = f"{msg}: " if msg else ""
    if a.shape != e.shape:
        raise AssertionError(f"{prefix}shape {a.shape} != expected shape {e.shape}")
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        where = np.argwhere(nan_a != nan_e)[:5].tolist()
        raise AssertionError(f"{prefix}NaN positions differ at {where}: {a!r} vs expected {e!r}")
    inf_e = np.isinf(e)
    if not np.array_equal(a[inf_e], e[inf_e]) or np.any(np.isinf(a[~inf_e])):
        raise AssertionError(f"{prefix}infinities differ: {a!r} vs expected {e!r}")
    finite = np.isfinite(e)
    error = np.abs(a - e)[finite]
    allowed = atol + rtol * np.abs(e[finite])
    bad = error > allowed
    if np.any(bad):
        worst = int(np.argmax(error - allowed))
        ulps = error / ulp(e[finite], dtype)
        rel = error / np.maximum(np.abs(e[finite]), np.finfo(np.float64).tiny)
        raise AssertionError(
            f"{prefix}{int(np.sum(bad))} of {error.size} elements differ beyond "
            f"rtol={rtol:g}, atol={atol:g} ({dtype_name(dtype)}): worst actual "
            f"{a[finite][worst]!r} vs expected {e[finite][worst]!r}; max abs error "
            f"{np.max(error):.3g}, max rel error {np.max(rel):.3g}, "
            f"max {np.max(ulps):.3g} ulp of {dtype_name(dtype)}"
        )
