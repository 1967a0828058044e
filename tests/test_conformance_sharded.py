"""The vocabulary-parallel columns of the matrix: ``torch-distributed`` (gloo ranks) and
``jax-sharded`` (a mesh of host devices), on a few cases, through the command line.

Each run is a subprocess with a timeout (a hung rank fails the test, not CI). The full columns
run in the main job (``xentropy-conformance``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_or_skip

# class weights with smoothing (global W and V across shards), ignore_index, the LLM options,
# probability targets, and the fused loss with its bias rows split unevenly (7 over 3)
CASES = ",".join(
    (
        "softmax_cross_entropy/NC/sparse/normal/class_weight+ignore_index=1+label_smoothing=0.2",
        "softmax_cross_entropy/NC/dense/normal/softcap+z_loss+class_weight",
        "softmax_cross_entropy/NCd/sparse/normal/plain",
        "linear_cross_entropy/ND/sparse/normal/bias+all",
        "linear_cross_entropy/ND/dense/normal/bias+class_weight+all",
    )
)


def _run(tmp_path: Path, backend: str, *extra: str, env: dict[str, str] | None = None):
    command = [
        sys.executable, "-m", "xentropy.conformance", "--backends", backend, "--cases", CASES,
        "--no-reference-check", "--no-progress", "--out-dir", str(tmp_path), *extra,
    ]  # fmt: skip
    env = {**os.environ, **(env or {})}
    env.pop("XENTROPY_REQUIRE_BACKENDS", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize(
    ("column", "framework"), [("torch-distributed", "torch"), ("jax-sharded", "jax")]
)
def test_the_sharded_column_passes_its_cells_in_every_dtype(
    tmp_path: Path, column: str, framework: str
) -> None:
    require_or_skip(framework)
    done = _run(tmp_path, column)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cells = json.loads((tmp_path / "conformance.json").read_text())["cells"]
    ran = [c for c in cells if c["status"] != "skip"]
    assert ran and all(c["status"] == "pass" for c in ran)
    assert {c["dtype"] for c in ran} == {"bfloat16", "float32", "float64"}
    assert {c["case"] for c in ran} == set(CASES.split(","))
    quantities = {c["quantity"] for c in ran}
    if column == "jax-sharded":  # JAX differentiates through shard_map: every order
        assert {"value", "gradient", "target_gradient", "hvp"} <= quantities
    else:
        assert quantities == {"value", "gradient"}


def test_the_jax_column_says_why_it_cannot_run_on_one_device(tmp_path: Path) -> None:
    require_or_skip("jax")
    done = _run(tmp_path, "jax-sharded", env={"XLA_FLAGS": ""})
    flags = os.environ.get("XLA_FLAGS", "")
    assert "--xla_force_host_platform_device_count" not in flags
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "the mesh needs 3" in done.stdout + done.stderr
