"""The matrix's tolerances: derived as documented, and tight enough to catch a float32 slip.

A float64 path that computes one constant in float32 (``float32(ln 2)``: 2.7e-9 relative) passed
every cell of the previous table (PyTorch's ``assert_close`` defaults, float64 ``rtol = 1e-7``,
4.5e8 ulps). The planted backend of ``planted_faults.Float32Constant`` has exactly that slip:
the matrix must fail it, in float64 only, where the previous table provably let it through.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import pytest
from planted_faults import FLOAT32_LN2_RATIO, Float32Constant, registered
from xentropy.conformance import cli
from xentropy.conformance.backends import BACKENDS, NUMPY, Backend
from xentropy.conformance.cases import Case, generate_cases
from xentropy.conformance.runner import FIRST_ORDER, RunConfig, _Evaluator, run
from xentropy.conformance.tolerances import (
    FLOAT_FORMATS,
    FLOORS,
    GROWTH,
    MEASURED,
    QUANTITY_NAMES,
    SAFETY,
    TOLERANCES,
    compare,
    epsilon,
    summed_terms,
    tolerance,
    tolerance_in_ulps,
)

# the previous float64 row: torch.testing.assert_close's defaults (rtol, atol)
OLD_FLOAT64 = (1e-7, 1e-7)
DTYPES = tuple(FLOAT_FORMATS)


@pytest.fixture(autouse=True)
def _no_required_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI may require framework backends; these tests select NumPy-only ones on purpose."""
    monkeypatch.delenv(cli.REQUIRE_ENV, raising=False)


@pytest.fixture
def slipped() -> Iterator[Backend]:
    yield from registered(Float32Constant("numpy-float32-constant", NUMPY, default=False))


def test_a_float32_constant_in_the_float64_path_fails_the_matrix(slipped: Backend) -> None:
    result = run(
        RunConfig(
            backends=[slipped.name],
            dtypes=["float32", "float64"],
            quick=True,
            check_reference=False,
        )
    )
    assert not result.ok
    assert {c.dtype for c in result.failed} == {"float64"}
    assert {c.quantity for c in result.failed} == set(FIRST_ORDER)
    values = [c for c in result.checked if c.dtype == "float64" and c.quantity == "value"]
    # a value within a few float64 ulps of 0 moves by less than the tolerance; the rest fail
    assert len(values) >= 20
    assert sum(c.status == "fail" for c in values) >= 0.8 * len(values)
    # the planted slip is the only error: without it the same cells pass
    clean = run(
        RunConfig(backends=["numpy"], dtypes=["float64"], quick=True, check_reference=False)
    )
    assert clean.ok and len(clean.checked) == len(
        [c for c in result.checked if c.dtype == "float64"]
    )
    # ... and the previous table let every one of those cells through: each element's error is
    # within max_rel |e| (max_abs where e = 0), below its 1e-7 + 1e-7 |e|
    rtol, atol = OLD_FLOAT64
    slip = abs(FLOAT32_LN2_RATIO - 1)
    assert 1e-9 < slip < rtol
    for cell in result.failed:
        assert cell.max_rel is not None and cell.max_abs is not None
        assert cell.max_rel <= rtol or cell.max_abs <= atol, cell


def test_the_old_bound_holds_elementwise_where_the_new_one_fails(slipped: Backend) -> None:
    """One case, element by element: the previous float64 bound computed explicitly."""
    case = next(
        c for c in generate_cases(0) if c.id == "softmax_cross_entropy/NC/sparse/normal/none"
    )
    arrays = {k: np.asarray(v) for k, v in case.arrays.items()}
    expected_value, expected_grads = _Evaluator().expected(case, arrays, "float64")
    value, grads = slipped.evaluate(case, arrays, "float64")
    rtol, atol = OLD_FLOAT64
    for actual, expected in ((value, expected_value), *zip(grads, expected_grads, strict=True)):
        error = np.abs(np.asarray(actual) - expected)
        assert np.all(error <= atol + rtol * np.abs(expected))
    terms = summed_terms(case.arrays)
    assert not compare(np.asarray(value), expected_value, "float64", terms=terms).passed
    assert not compare(
        np.asarray(grads[0]), expected_grads[0], "float64", quantity="gradient", terms=terms
    ).passed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("quantity", QUANTITY_NAMES)
def test_the_table_is_its_documented_derivation(dtype: str, quantity: str) -> None:
    measured = MEASURED[dtype].get(quantity, MEASURED[dtype]["gradient"])
    for terms in (1, 5, 60, 1024, 2**17):
        k = tolerance_in_ulps(dtype, quantity=quantity, terms=terms)
        assert k == pytest.approx(SAFETY[dtype] * measured.worst + GROWTH[dtype] * math.sqrt(terms))
        rtol, atol = tolerance(dtype, quantity=quantity, terms=terms)
        assert rtol == pytest.approx(k * epsilon(dtype))
        assert atol == pytest.approx(rtol * FLOORS[dtype])
    # the measured worst passes with the stated margin, and the allowance grows with n
    assert SAFETY[dtype] >= 2 and measured.worst > 0
    growing = [tolerance_in_ulps(dtype, quantity=quantity, terms=n) for n in (1, 64, 4096)]
    assert growing == sorted(growing)
    assert (growing[0] < growing[-1]) == (GROWTH[dtype] > 0)
    assert TOLERANCES[dtype] == tolerance(dtype)
    assert epsilon(dtype) == 2.0 ** -FLOAT_FORMATS[dtype][0]


def test_float64_allows_hundreds_of_ulps_at_the_matrix_sizes_not_4e8() -> None:
    largest = max(summed_terms(c.arrays) for c in generate_cases(0))
    assert largest >= 40
    for quantity in QUANTITY_NAMES:
        k = tolerance_in_ulps("float64", quantity=quantity, terms=largest)
        assert 50 < k < 1e4, quantity
        rtol, _ = tolerance("float64", quantity=quantity, terms=largest)
        # the planted slip is at least 100 times the tolerance; the old rtol was 37 times it
        assert abs(FLOAT32_LN2_RATIO - 1) > 100 * rtol
        assert OLD_FLOAT64[0] > 30 * abs(FLOAT32_LN2_RATIO - 1)


def test_the_16_bit_and_float32_rows_stay_near_one_and_ten_ulps() -> None:
    """One rounding of a float32 computation is half an epsilon; the old rows were 1 (float16),
    2 (bfloat16) and 11 (float32) epsilons."""
    for dtype in ("float16", "bfloat16"):
        assert all(1 <= tolerance_in_ulps(dtype, quantity=q) <= 2 for q in QUANTITY_NAMES)
    assert all(4 <= tolerance_in_ulps("float32", quantity=q) <= 16 for q in QUANTITY_NAMES)


def test_compare_holds_the_quantity_and_terms_apart() -> None:
    expected = np.array([1.0, 2.0, 0.5])
    k = tolerance_in_ulps("float64", quantity="target_gradient", terms=60)
    inside = expected * (1 + 0.5 * k * epsilon("float64"))
    outside = expected * (1 + 1.5 * k * epsilon("float64"))
    assert compare(inside, expected, "float64", quantity="target_gradient", terms=60).passed
    assert not compare(outside, expected, "float64", quantity="target_gradient", terms=60).passed
    with pytest.raises(ValueError, match="unknown quantity"):
        compare(expected, expected, "float64", quantity="values")


def _scaled_softmax_case(classes: int) -> Case:
    """The matrix's NC sparse softmax case with ``classes`` classes instead of 5."""
    case = next(
        c for c in generate_cases(0) if c.id == "softmax_cross_entropy/NC/sparse/normal/none"
    )
    rng = np.random.default_rng(classes)
    rows = 4
    arrays = {
        "logits": rng.normal(scale=2.0, size=(rows, classes)),
        "targets": rng.integers(0, classes, size=rows),
    }
    return dataclasses.replace(case, arrays=arrays, directions={})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_sum_over_many_classes_stays_within_its_growing_tolerance(dtype: str) -> None:
    case = _scaled_softmax_case(2**16)
    cells = _Evaluator().cells(BACKENDS["numpy"], case, dtype, "cpu")
    checked = [c for c in cells if c.status != "skip"]
    assert {c.quantity for c in checked} == set(FIRST_ORDER)
    assert all(c.status == "pass" for c in checked), [(c.quantity, c.detail) for c in checked]
