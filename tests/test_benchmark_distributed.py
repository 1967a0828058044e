r"""The vocabulary-parallel mode of the benchmark (``benchmarks/run.py --distributed``).

One ``--quick`` run end to end (1, 2 and 4 gloo ranks on CPU, ``N = 16`` rows of the Llama-3
vocabulary ``V = 128256``, ``D = 64``; about a minute on a loaded 2-core machine): the tables,
the JSON, the agreement of every contender with torch's ``loss_parallel`` on the same inputs,
the same loss at every world size, and the weight-sized memory of the fused loss falling with
the ranks: :math:`s V_r D` exactly, and the measured peak of each rank. No timing is asserted.
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

import _distributed  # noqa: E402

TIMEOUT_S = 300  # the mode's own deadline per group is 120 s; this catches a hung orchestrator


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    require_or_skip("torch")
    out = tmp_path_factory.mktemp("distributed") / "distributed.json"
    cmd = [sys.executable, str(BENCHMARKS / "run.py"), "--distributed", "--quick"]
    cmd += ["--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return json.loads(out.read_text()), done.stdout


def test_every_world_size_ran_with_one_thread_a_rank(quick_run):
    report, _ = quick_run
    assert report["worlds"] == [1, 2, 4]
    assert [g["world"] for g in report["groups"]] == [1, 2, 4]
    for group in report["groups"]:
        assert "failed" not in group, group.get("failed")
        assert [r["rank"] for r in group["ranks"]] == list(range(group["world"]))
        assert {r["threads"] for r in group["ranks"]} == {1}


def test_tables_have_a_row_per_world_size(quick_run):
    _, stdout = quick_run
    s = _distributed.QUICK
    assert f"plain: N x V = {s.n} x {s.vocab}" in stdout
    assert f"fused: N x D x V = {s.fused_n} x {s.features} x {s.vocab}" in stdout
    for world in (1, 2, 4):
        v_r = -(-s.vocab // world)
        assert stdout.count(f"| {world} | {v_r} |") == 2  # one row in each table
    assert "1 per rank" in stdout


def test_contenders_agree_with_loss_parallel_at_every_world_size(quick_run):
    report, _ = quick_run
    first = report["groups"][0]["summary"]["loss"]
    for group in report["groups"]:
        summary = group["summary"]
        for ours, native in _distributed.PAIRS:
            assert summary[ours]["max_rel_diff"] < 1e-4, (group["world"], ours)
            ratio = summary[ours]["median_ms"] / summary[native]["median_ms"]
            assert summary[ours]["time_ratio"] == pytest.approx(ratio)
        # the same global inputs at every world size: the same loss (float32 sums)
        for name, value in summary["loss"].items():
            assert value == pytest.approx(first[name], rel=1e-5), (group["world"], name)
        for rank in group["ranks"]:  # every rank returns the replicated loss
            assert rank["loss"] == pytest.approx(summary["loss"], rel=1e-6)


def test_fused_weight_sized_memory_falls_with_the_ranks(quick_run):
    report, _ = quick_run
    s = _distributed.QUICK
    fused = {g["world"]: g["summary"]["fused"] for g in report["groups"]}
    for world, figures in fused.items():
        expected = [4 * n * s.features for n in _distributed.split(s.vocab, world)]
        assert figures["weight_sized_bytes_per_rank"] == expected
        assert sum(expected) == 4 * s.vocab * s.features
    assert fused[4]["weight_sized_bytes"] * 4 == fused[1]["weight_sized_bytes"]  # 128256 / 4
    peaks = [fused[w]["peak_bytes"] for w in (1, 2, 4)]
    if None in peaks:
        pytest.skip("this platform cannot reset the peak resident set")
    # the rank's gradient of its weight rows and its blocks of logits both shrink as 1/k
    assert peaks[2] < peaks[1] < peaks[0], peaks
    assert peaks[0] - peaks[2] > 0.5 * (
        fused[1]["weight_sized_bytes"] - fused[4]["weight_sized_bytes"]
    )
