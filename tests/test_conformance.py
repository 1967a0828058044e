"""The conformance matrix itself: a quick run, its reports, fault detection, the reference.

These run the installed ``xentropy.conformance`` on NumPy and array-api-strict only (a few
seconds); the full matrix is ``python -m xentropy.conformance``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from xentropy.conformance import cli, precise, report
from xentropy.conformance.backends import (
    NUMPY,
    Backend,
    register_backend,
    unregister_backend,
)
from xentropy.conformance.cases import VARIANTS, generate_cases
from xentropy.conformance.runner import RunConfig, run
from xentropy.conformance.tolerances import compare, tolerance, ulp

CORE = "numpy,array_api_strict"


@pytest.fixture(autouse=True)
def _no_required_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI may require framework backends; these tests select NumPy-only ones on purpose."""
    monkeypatch.delenv(cli.REQUIRE_ENV, raising=False)


class Faulty(Backend):
    """NumPy through the core, with every loss value off by a relative 1e-3 (a planted bug)."""

    def evaluate(self, case: Any, arrays: Any, dtype: str) -> tuple[Any, tuple[Any, ...]]:
        value, grads = super().evaluate(case, arrays, dtype)
        return value * np.asarray(1 + 1e-3, dtype=value.dtype), grads


@pytest.fixture
def faulty() -> Iterator[Backend]:
    backend = register_backend(Faulty("numpy-faulty", NUMPY, default=False))
    try:
        yield backend
    finally:
        unregister_backend(backend.name)


def test_quick_run_passes_and_writes_the_four_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    status = cli.main(
        ["--quick", "--backends", CORE, "--out-dir", str(tmp_path), "--no-progress", "--jobs", "1"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "\033[" not in out  # no colour when stdout is not a terminal
    assert "PASS" in out.splitlines()[0]
    for name in ("conformance.json", "conformance.md", "conformance.html", "conformance.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["ok"] is True
    assert data["summary"]["failed"] == 0
    assert data["summary"]["checked"] >= 300
    assert {c["backend"] for c in data["cells"]} == {"numpy", "array_api_strict"}
    assert {c["variant"] for c in data["cells"]} == set(VARIANTS)
    assert {c["quantity"] for c in data["cells"]} == {"value", "gradient"}
    assert all(check["passed"] for check in data["reference_checks"])
    assert (tmp_path / "conformance.png").read_bytes().startswith(b"\x89PNG")
    assert "softmax_cross_entropy" in (tmp_path / "conformance.md").read_text()
    assert "<table>" in (tmp_path / "conformance.html").read_text()


def test_a_planted_fault_fails_the_run(faulty: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["--quick", "--backends", f"numpy,{faulty.name}", "--no-progress", "--no-reference-check"]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL" in out.splitlines()[0]
    assert f"{faulty.name} float32 cpu value vs reference" in out


def test_the_planted_fault_is_caught_in_every_dtype_and_only_in_values(faulty: Backend) -> None:
    result = run(RunConfig(backends=[faulty.name], quick=True, check_reference=False))
    failed = result.failed
    assert failed and all(c.quantity == "value" for c in failed)
    assert {c.dtype for c in failed} == {"float16", "float32", "float64"}
    # 1e-3 is one float16 ulp: within its tolerance except near the top of a binade
    assert all(
        c.status == "fail" for c in result.cells if c.quantity == "value" and c.dtype != "float16"
    )


def test_a_backend_that_is_not_installed_is_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ghost = register_backend(
        Backend(
            "ghost-adapter",
            NUMPY,
            adapter="xentropy.backends.ghost",
            dialect="torch",
            default=False,
        )
    )
    try:
        status = cli.main(
            [
                "--quick",
                "--backends",
                f"numpy,{ghost.name}",
                "--no-progress",
                "--no-reference-check",
                "--variants",
                "softmax_cross_entropy",
            ]
        )
    finally:
        unregister_backend(ghost.name)
    out = capsys.readouterr().out
    assert status == 0
    assert "not installed" in out and report.NOT_INSTALLED in out


def test_parallel_run_matches_the_serial_one() -> None:
    config = RunConfig(
        backends=CORE.split(","),
        quick=True,
        variants=["softmax_cross_entropy", "binary_cross_entropy"],
    )
    serial, parallel = run(config), run(config, jobs=2)
    assert [c.to_dict() for c in serial.cells] == [c.to_dict() for c in parallel.cells]
    assert serial.backends == parallel.backends
    assert len(parallel.reference_checks) == len(serial.reference_checks) > 0


def test_bad_arguments_exit_with_status_2() -> None:
    for argv in (["--backends", "nonesuch"], ["--dtypes", "float8"], ["--variants", "hinge"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "cases:" in out


def test_float64_reference_agrees_with_mpmath_on_a_sample() -> None:
    cases = precise.sample_cases(generate_cases(0, quick=True))
    cases += [
        c
        for c in generate_cases(
            0, variants=["softmax_cross_entropy", "sigmoid_focal_loss", "binary_cross_entropy"]
        )
        if c.value_range != "normal"
    ][:12]
    checks = [precise.check_reference(case) for case in cases]
    assert all(check.passed for check in checks), [c for c in checks if not c.passed]
    assert sum(check.coordinates for check in checks) > 50


def test_mpmath_check_detects_a_wrong_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check has teeth: a reference off by 1e-9 relative fails it."""
    from xentropy.conformance import reference

    case = generate_cases(0, variants=["softmax_cross_entropy"], quick=True)[0]
    exact = reference.REFERENCES["softmax_cross_entropy"]

    def off(arrays: Any, options: Any) -> Any:
        value, grads = exact(arrays, options)
        return value * (1 + 1e-9), grads

    monkeypatch.setitem(reference.REFERENCES, "softmax_cross_entropy", off)
    assert not precise.check_reference(case).passed


def test_cases_are_a_function_of_the_seed() -> None:
    first, again, other = (generate_cases(seed) for seed in (0, 0, 1))
    assert [c.id for c in first] == [c.id for c in other]
    assert len(first) >= 300
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    differs = [
        not np.array_equal(a.arrays[a.arguments[0]], b.arrays[b.arguments[0]])
        for a, b in zip(first, other, strict=True)
    ]
    assert sum(differs) > 0.9 * len(differs)


def test_compare_follows_the_table() -> None:
    rtol, atol = tolerance("float32")
    expected = np.array([1.0, 100.0, 0.0])
    assert compare(expected * (1 + 0.5 * rtol), expected, "float32").passed
    assert not compare(expected * (1 + 3 * rtol), expected, "float32").passed
    assert compare(np.array([atol / 2]), np.array([0.0]), "float32").passed
    nan_inf = np.array([np.nan, np.inf, 1.0])
    assert compare(nan_inf, nan_inf, "float64").passed
    assert not compare(np.array([0.0, np.inf, 1.0]), nan_inf, "float64").passed
    assert not compare(np.array([np.nan, -np.inf, 1.0]), nan_inf, "float64").passed
    # a float16 result of 1e5 is inf: the correctly rounded value
    assert compare(np.array([np.inf]), np.array([1e5]), "float16").passed


def test_ulp() -> None:
    assert ulp(np.array(1.0), "float32") == 2.0**-23
    assert ulp(np.array(1.0), "bfloat16") == 2.0**-7
    assert ulp(np.array(3.0), "float16") == 2.0**-9
    assert ulp(np.array(0.0), "float16") == 2.0**-24  # the subnormal spacing
