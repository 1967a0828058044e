r"""The scaling mode of the benchmark (``benchmarks/run.py --scaling``): its models and one run.

The byte model is checked against the sizes of the arrays the benchmark itself makes
(:math:`3\,|z| + |y|` for a softmax row, :math:`2(|h| + |W|) + |y|` for a linear one), the
derived figures against their definitions, and one ``--quick`` run with a tiny memory budget
end to end (torch and linear workers, skipped rows, the tables, the JSON): about 15 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_or_skip

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _scaling  # noqa: E402
from _cases import Case, make_inputs  # noqa: E402

TIMEOUT_S = 120


@pytest.mark.parametrize("shape", [(3, 10), (64, 8000), (5, 256000)])
def test_softmax_byte_model_is_logits_read_twice_gradient_written_and_targets(shape):
    case = Case("sparse", shape)
    arrays = make_inputs(case)
    expected = 3 * arrays["logits"].nbytes + arrays["targets"].nbytes
    assert _scaling.min_bytes(case) == expected
    assert _scaling.min_flops(case) is None


def test_linear_byte_and_flop_model_count_hidden_weight_and_their_gradients():
    case = Case("linear", (16, 8, 1000))
    arrays = make_inputs(case)
    h, w, y = arrays["hidden"], arrays["weight"], arrays["targets"]
    assert _scaling.min_bytes(case) == 2 * (h.nbytes + w.nbytes) + y.nbytes
    assert _scaling.min_flops(case) == 3 * (2 * h.shape[0] * h.shape[1] * w.shape[0])
    assert _scaling.logits_elements(case) == h.shape[0] * w.shape[0]


def test_sweeps_have_the_issue_sizes():
    n_sweep = _scaling.points("N", quick=False)
    assert [c.shape for c in n_sweep] == [(1024 * 2**k, 32000) for k in range(7)]
    c_sweep = _scaling.points("C", quick=False)
    assert [c.shape[1] for c in c_sweep] == [10, 100, 1000, 10000, 32000, 128000, 256000]
    for case in c_sweep:  # N x C = 2^24 to within half a row
        assert abs(case.shape[0] * case.shape[1] - 2**24) <= case.shape[1] / 2
    v_sweep = _scaling.points("V", quick=False)
    assert [c.shape for c in v_sweep] == [(1024, 256, v) for v in (32000, 64000, 128256, 256000)]


def test_a_row_over_the_memory_budget_is_skipped_with_its_estimate():
    big = Case("sparse", (65536, 32000))
    logits_gib = 65536 * 32000 * 4 / 2**30
    reason = _scaling.skip_reason(big, max_gib=4.5)
    assert reason is not None
    assert "> --max-gib 4.5" in reason
    # inputs (logits and targets) and three logits-sized arrays: at least 4x the logits
    assert _scaling.estimated_peak(big) >= 4 * logits_gib * 2**30
    assert _scaling.skip_reason(Case("sparse", (1024, 32000)), max_gib=4.5) is None


def test_derived_figures_follow_their_definitions():
    case = Case("sparse", (1000, 2000))
    row = {**_scaling.describe("N", case), "backend": "torch"}
    row["fwd_bwd"] = {
        "ours": {"median_ms": 4.0, "peak_bytes": 10},
        "native": {"median_ms": 8.0, "peak_bytes": 20},
        "bytes_min": _scaling.min_bytes(case),
        "flops_min": None,
    }
    report = {
        "device": "cpu",
        "copy_bandwidth": {"numpy": {"gb_per_s": 10.0}, "torch": {"gb_per_s": 20.0}},
        "rows": [row],
    }
    _scaling.annotate(report)
    assert report["limits"]["copy_gb_per_s"] == 20.0
    assert report["limits"]["copy_source"] == "torch"
    ours, native = row["fwd_bwd"]["ours"], row["fwd_bwd"]["native"]
    bytes_min = 3 * 4 * 1000 * 2000 + 8 * 1000
    assert ours["ns_per_element"] == pytest.approx(4.0e6 / (1000 * 2000))
    assert ours["gb_per_s"] == pytest.approx(bytes_min / 4.0e-3 / 1e9)
    assert native["gb_per_s"] == pytest.approx(bytes_min / 8.0e-3 / 1e9)
    assert ours["fraction_of_copy"] == pytest.approx(bytes_min / 4.0e-3 / 1e9 / 20.0)
    assert row["measured_peak_bytes"] == row["input_bytes"] + 20


def test_quick_scaling_run_end_to_end(tmp_path):
    require_or_skip("torch")
    out = tmp_path / "scaling.json"
    cmd = [sys.executable, str(BENCHMARKS / "run.py"), "--scaling", "--quick"]
    cmd += ["--backends", "torch", "linear", "--max-gib", "0.1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())

    rows = report["rows"]
    assert {r["sweep"] for r in rows} == {"N", "C", "V"}
    skipped = [r for r in rows if r.get("skipped")]
    timed = [r for r in rows if not r.get("skipped")]
    assert skipped, "a 0.1 GiB budget must skip the largest quick rows"
    for row in skipped:
        assert row["estimated_peak_bytes"] > 0.1 * 2**30
        assert "--max-gib 0.1" in row["skipped"]
    assert {r["sweep"] for r in timed} == {"N", "C", "V"}

    limit = report["limits"]["copy_gb_per_s"]
    copies = report["copy_bandwidth"]
    assert set(copies) == {"numpy", "torch"}
    assert limit == max(c["gb_per_s"] for c in copies.values()) > 0
    assert report["matmul_rate"]["gflop_per_s"] > 0
    for row in timed:
        result = row["fwd_bwd"]
        assert "error" not in result, result.get("error")
        assert result["max_rel_diff"] < 1e-4
        assert result["time_ratio"] == pytest.approx(
            result["ours"]["median_ms"] / result["native"]["median_ms"]
        )
        for who in ("ours", "native"):
            figures = result[who]
            seconds = figures["median_ms"] / 1e3
            assert figures["gb_per_s"] == pytest.approx(result["bytes_min"] / seconds / 1e9)
            assert figures["fraction_of_copy"] == pytest.approx(figures["gb_per_s"] / limit)
            assert figures["ns_per_element"] == pytest.approx(seconds * 1e9 / row["elements"])
        if row["sweep"] == "V":
            assert result["ours"]["gflop_per_s"] > 0

    for title in ("N sweep", "C sweep", "V sweep", "% copy o/n", "skipped: estimated peak"):
        assert title in done.stdout
