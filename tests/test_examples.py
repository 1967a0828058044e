"""Every script of ``examples/`` runs, reaches its stated target and says so.

Each example runs as a subprocess (``sys.executable examples/<name>.py``, with the small sizes
below), as a user would run it, and must exit with 0 and print its result line,
``<name>: ...: ok``. The Keras example runs once per Keras backend (``KERAS_BACKEND``). An
example is skipped only when a framework it needs cannot be imported (a failure instead where
``XENTROPY_REQUIRE_BACKENDS`` names it, see ``conftest.require_or_skip``). One more run checks
that an example can fail: a target it cannot reach gives exit code 1 and ``MISSED``.

The subprocesses run with one OpenMP / intra-op thread: the examples' numbers do not depend on
it, and on a machine whose cores are shared, a thread pool per process mostly waits.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_or_skip

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT_S = 120
# each classifier's default sizes and seed are the ones its docstring states; smaller runs here
CLASSIFIER_ARGS = ("--epochs", "5")


@dataclass(frozen=True)
class Example:
    """One run of one example: the script, its arguments, and what it needs."""

    script: str
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # frameworks (importable module names)
    env: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.script.removesuffix(".py")


def keras_run(backend: str) -> Example:
    return Example(
        "keras_classifier.py",
        CLASSIFIER_ARGS,
        needs=("keras", backend),
        env=(("KERAS_BACKEND", backend),),
    )


RUNS = {
    "torch_classifier": Example("torch_classifier.py", CLASSIFIER_ARGS, needs=("torch",)),
    "jax_optax_classifier": Example(
        "jax_optax_classifier.py", CLASSIFIER_ARGS, needs=("jax", "optax")
    ),
    "tensorflow_classifier": Example(
        "tensorflow_classifier.py", CLASSIFIER_ARGS, needs=("tensorflow",)
    ),
    "keras_classifier[jax]": keras_run("jax"),
    "keras_classifier[tensorflow]": keras_run("tensorflow"),
    "keras_classifier[torch]": keras_run("torch"),
    "lm_linear_cross_entropy": Example(
        "lm_linear_cross_entropy.py",
        ("--vocab", "4096", "--seq-len", "64", "--softcap", "30", "--z-loss", "1e-4"),
        needs=("torch",),
    ),
    "framework_neutral": Example("framework_neutral.py"),
    "ci_parity": Example("ci_parity.py", needs=("torch", "jax", "optax")),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (TensorFlow takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def run(example: Example) -> subprocess.CompletedProcess[str]:
    for module in example.needs:
        if not installed(module):
            require_or_skip(module)  # skips, or fails where XENTROPY_REQUIRE_BACKENDS names it
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        **dict(example.env),
    }
    command = [sys.executable, str(EXAMPLES / example.script), *example.args]
    try:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.script} ran past {TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}")


def result_line(example: Example, stdout: str) -> str:
    """The example's result line (``<name>...: ok`` or ``...: MISSED``), or a test failure."""
    lines = re.findall(rf"^{re.escape(example.name)}\b.*: (?:ok|MISSED)$", stdout, re.M)
    assert lines, f"no result line from {example.script}:\n{stdout}"
    return lines[-1]


def check_keras_backend(run_id: str, line: str) -> None:
    """The Keras example ran on the backend its ``KERAS_BACKEND`` named."""
    backend = run_id.partition("[")[2].rstrip("]")
    assert line.startswith(f"keras_classifier[{backend}]:"), line


def check_frameworks_covered(run_id: str, line: str) -> None:
    """The default run of ``framework_neutral`` reached every installed framework."""
    ran = set(re.search(r"\[([^\]]*)\] match", line).group(1).split(","))
    for module in ("numpy", "array_api_strict", "dask", "torch", "jax", "tensorflow"):
        assert module in ran or not installed(module), line


EXTRA_CHECKS = {
    **{f"keras_classifier[{b}]": check_keras_backend for b in ("jax", "tensorflow", "torch")},
    "framework_neutral": check_frameworks_covered,
}


@pytest.mark.parametrize("run_id", list(RUNS))
def test_example_reaches_its_target(run_id: str) -> None:
    example = RUNS[run_id]
    completed = run(example)
    output = f"{completed.stdout}\n{completed.stderr[-4000:]}"
    assert completed.returncode == 0, f"{example.script} exited {completed.returncode}:\n{output}"
    line = result_line(example, completed.stdout)
    assert line.endswith(": ok"), line
    if run_id in EXTRA_CHECKS:
        EXTRA_CHECKS[run_id](run_id, line)


def test_an_example_that_misses_its_target_exits_with_1() -> None:
    example = Example("torch_classifier.py", ("--epochs", "0"), needs=("torch",))
    completed = run(example)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert result_line(example, completed.stdout).endswith(": MISSED")
