"""Vocabulary-parallel cross entropy on a JAX mesh (``xentropy.backends.jax.sharded``).

JAX fixes its device count when it starts, so the checks run in a subprocess
(``tests/jax_sharded_checks.py``) with four host devices
(``--xla_force_host_platform_device_count=4``) and float64 enabled, under a timeout; each check
it prints is one case here. They compare the sharded losses, on 1 to 4 devices with uneven splits
(the class axis padded at its end), with the unsharded dialect functions and the float64 NumPy
reference (losses, gradients, per-example VJPs; JVPs, Hessian-vector products and Hessians),
check that a bad label gives NaN on every device, that static errors raise, and read the compiled
HLO for its collectives: ``(N,)`` vectors only, and no all-gather of the ``(N, V)`` logits, for
the sharded losses and for the dialect's own loss on arrays sharded over the classes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

import jax_sharded_checks

TIMEOUT_S = 900  # all checks in one subprocess; ~2-4 min on an idle 2-core machine
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, object]]:
    env = dict(os.environ)
    # LLVM's optimisations off: a third less compile time for these small programs
    flags = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("SKIP_VALUES", None)
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "jax_sharded_checks.py"), str(HERE)],
            capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=HERE, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the sharded checks ran past {TIMEOUT_S} s (a hang?): {error.stdout!r}")
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            found[record["name"]] = record
    if done.returncode != 0 and not found:
        pytest.fail(f"the checks failed to run (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return found


@pytest.mark.parametrize("name", jax_sharded_checks.CHECKS)
def test_sharded(outcomes: dict[str, dict[str, object]], name: str) -> None:
    assert name in outcomes, f"{name} did not report (the script stopped early?)"
    record = outcomes[name]
    assert record["ok"], record["detail"]
