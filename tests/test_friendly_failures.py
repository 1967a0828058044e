"""Optional parts fail in one line that names what to install, not with a traceback from inside.

Each case runs in a subprocess whose import system hides a framework (a ``sys.meta_path``
finder refusing it, as if it were not installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


def run(hidden: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    program = f"HIDDEN = {hidden!r}\n{HIDE}\n{textwrap.dedent(code)}"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("dialect", "hidden", "extra"),
    [
        ("torch", ("torch",), "torch"),
        ("jax", ("optax",), "jax"),
        ("keras", ("keras",), "keras"),
        ("tensorflow", ("tensorflow",), "tensorflow"),
    ],
)
def test_a_dialect_without_its_framework_names_the_extra(dialect, hidden, extra) -> None:
    result = run(
        hidden,
        f"""
        try:
            import xentropy.backends.{dialect}
        except ImportError as error:
            print(type(error).__name__, error)
        """,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line == (
        f"ImportError xentropy.backends.{dialect} needs {' and '.join(hidden)}: "
        f"pip install 'xentropy-array[{extra}]'"
    )


def test_the_core_works_without_any_framework() -> None:
    result = run(
        ("torch", "jax", "tensorflow", "keras", "optax"),
        """
        import numpy as np, xentropy, xentropy.backends
        print(float(xentropy.softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert abs(float(result.stdout) - 1.3862943611198906) < 1e-12  # log 4


def test_demo_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xentropy", "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "conformance" in result.stdout


def test_demo_without_numpy_says_so() -> None:
    result = run(("numpy",), "import sys, xentropy.__main__ as m; sys.exit(m.main([]))")
    assert result.returncode == 1
    assert result.stderr.strip() == "python -m xentropy needs NumPy: pip install numpy"


def test_conformance_without_its_extra_names_it() -> None:
    result = run(("scipy",), "import sys, xentropy.conformance._entry as e; sys.exit(e.main([]))")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "xentropy-conformance needs scipy: pip install 'xentropy-array[conformance]'"
    )


def test_conformance_report_to_an_unwritable_path_fails_before_the_run(tmp_path) -> None:
    """A report folder that cannot be made stops the command at once (exit 2), before a cell."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "xentropy.conformance", "--out-dir", str(blocker / "reports"),
         "--backends", "numpy", "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot write a report to" in result.stderr
    assert "cells checked" not in result.stdout


def test_tensorflow_native_logs_stay_off_the_terminal() -> None:
    """TensorFlow's absl lines (written to descriptor 2 at import and while computing float16)
    would break the progress bar: a run shows none of them, unless TF_CPP_MIN_LOG_LEVEL=0."""
    pytest.importorskip("tensorflow")
    command = [
        sys.executable,
        "-m",
        "xentropy.conformance",
        "--backends",
        "tensorflow",
        "--variants",
        "softmax_cross_entropy",
        "--dtypes",
        "float16",
        "--quick",
        "--no-reference-check",
    ]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    # TensorFlow's native lines at import: which ones depends on the CPU (the oneDNN notice,
    # or cpu_feature_guard's list of instructions the build does not use)
    native = ("oneDNN", "cpu_feature_guard")
    assert not any(line in quiet.stderr for line in (*native, "absl")), quiet.stderr
    loud_env = {**env, "TF_CPP_MIN_LOG_LEVEL": "0"}
    loud = subprocess.run(command, capture_output=True, text=True, timeout=300, env=loud_env)
    assert loud.returncode == 0, loud.stdout + loud.stderr
    # the lines exist: the quiet run did hide them
    assert any(line in loud.stderr for line in native), loud.stderr
