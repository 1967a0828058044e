"""The conformance gate cannot pass vacuously: exit 3 when nothing, or not everything asked
for, could be checked (:mod:`xentropy.conformance.gate`).

Each case runs the real command line on a small selection (NumPy, one variant, ``--quick``):
a device no backend has, filters that select nothing, a backend named but not installed (an
adapter module that does not exist), one that is required, cells that every backend skips at
run time (a planted backend that cannot make its inputs), and a framework that is installed but
fails to import (a package named ``torch`` whose ``__init__`` raises, first on the path of a
subprocess: a broken install, not a stand-in for PyTorch's behaviour).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip
from planted_faults import Faulty, registered
from xentropy.conformance import cli, gate
from xentropy.conformance.backends import (
    BROKEN,
    NUMPY,
    Backend,
    NumpyFramework,
    import_problem,
    is_broken,
)
from xentropy.conformance.runner import RunConfig, run

SMALL = ["--variants", "entropy", "--quick", "--no-progress", "--no-reference-check"]
SMALL += ["--jobs", "1"]


@pytest.fixture(autouse=True)
def _no_required_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI may require framework backends; each test here says what it requires."""
    monkeypatch.delenv(cli.REQUIRE_ENV, raising=False)


@pytest.fixture
def ghost() -> Iterator[Backend]:
    """An adapter whose module does not exist: a backend that is not installed."""
    yield from registered(
        Backend("ghost-adapter", NUMPY, adapter="xentropy.backends.ghost", default=False)
    )


class UnmakeableFramework(NumpyFramework):
    """NumPy that cannot make any input: every cell is skipped at run time."""

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        raise TypeError("no inputs in this dtype")


@pytest.fixture
def unmakeable() -> Iterator[Backend]:
    yield from registered(Backend("numpy-unmakeable", UnmakeableFramework(), default=False))


@pytest.fixture
def faulty() -> Iterator[Backend]:
    yield from registered(Faulty("numpy-faulty", NUMPY, default=False))


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cuda_on_a_cpu_only_machine_exits_3_before_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch = require_or_skip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    argv = ("--backends", "numpy,torch", "--devices", "cuda", *SMALL)
    status, out, err = _main(capsys, *argv)
    assert status == gate.INCOMPLETE, err
    assert out == ""  # stopped before the run: no table
    assert "cannot check (nothing was run): cuda: no selected backend has a cuda device" in err
    assert "numpy, torch: none of the devices asked for (cuda); it has cpu" in err
    status, out, err = _main(capsys, *argv, "--allow-missing")
    assert status == gate.INCOMPLETE and out == ""
    assert "nothing to check" in err


def test_a_device_no_backend_has_passes_only_with_allow_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("--backends", "numpy", "--devices", "cpu,cuda", *SMALL)
    status, _, err = _main(capsys, *argv)
    assert status == gate.INCOMPLETE
    assert "cuda: no selected backend has a cuda device" in err
    status, out, err = _main(capsys, *argv, "--allow-missing")
    assert status == 0, err
    assert "PASS" in out.splitlines()[0]


def test_a_filter_that_selects_nothing_exits_3_even_with_allow_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("--backends", "numpy", "--dtypes", "bfloat16", *SMALL)  # NumPy has no bfloat16
    status, out, err = _main(capsys, *argv)
    assert status == gate.INCOMPLETE and out == ""
    assert "numpy: none of the dtypes asked for (bfloat16)" in err
    status, out, err = _main(capsys, *argv, "--allow-missing")
    assert status == gate.INCOMPLETE and out == ""
    assert "nothing to check" in err


def test_a_variant_an_adapter_cannot_spell_checks_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_or_skip("jax")
    require_or_skip("optax")
    status, out, err = _main(
        capsys, "--backends", "jax-adapter", "--variants", "categorical_cross_entropy", "--quick"
    )
    assert status == gate.INCOMPLETE and out == ""
    assert "jax-adapter: every selected cell is skipped (e.g. 'no jax spelling" in err


def test_a_named_backend_that_is_not_installed_fails_unless_allowed(
    ghost: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--backends", f"numpy,{ghost.name}", *SMALL)
    status, out, err = _main(capsys, *argv)
    assert status == gate.INCOMPLETE and out == ""
    assert f"{ghost.name}: not installed (xentropy.backends.ghost: ModuleNotFoundError" in err
    assert "--allow-missing runs without it" in err
    status, out, err = _main(capsys, *argv, "--allow-missing")
    assert status == 0, err
    assert "PASS" in out.splitlines()[0] and err == ""


def test_a_required_backend_is_not_relaxed_by_allow_missing(
    ghost: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cli.REQUIRE_ENV, f"numpy,{ghost.name}")
    status, _, err = _main(capsys, "--backends", f"numpy,{ghost.name}", *SMALL, "--allow-missing")
    assert status == gate.INCOMPLETE
    assert f"{ghost.name}: not installed" in err and "XENTROPY_REQUIRE_BACKENDS requires it" in err


def test_a_backend_not_named_and_not_installed_is_no_reason(ghost: Backend) -> None:
    """As in a default run: nothing named, nothing required."""
    config = RunConfig(
        backends=["numpy", ghost.name], variants=["entropy"], quick=True, check_reference=False
    )
    assert gate.preflight(config, gate.Demands()) == []
    result = run(config)
    assert result.backends[ghost.name]["status"].startswith("not installed")
    assert gate.shortfall(result, gate.Demands()) == []


def test_cells_all_skipped_at_run_time_exit_3_after_the_run(
    unmakeable: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _main(capsys, "--backends", unmakeable.name, *SMALL)
    assert status == gate.INCOMPLETE
    assert "PASS: 0 cells checked" in out  # the run happened, and checked nothing
    assert "incomplete: 0 cells checked: nothing was compared with the reference" in err
    argv = ("--backends", f"numpy,{unmakeable.name}", *SMALL)
    status, _, err = _main(capsys, *argv)
    assert status == gate.INCOMPLETE
    assert f"{unmakeable.name}: 0 cells checked: every cell was skipped" in err
    status, _, err = _main(capsys, *argv, "--allow-missing")
    assert status == 0, err


def test_a_failing_cell_wins_over_an_incomplete_run(
    faulty: Backend, unmakeable: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _main(capsys, "--backends", f"{faulty.name},{unmakeable.name}", *SMALL)
    assert status == 1
    assert f"{unmakeable.name}: 0 cells checked" in err


def _broken_torch(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess in which ``import torch`` finds a package that raises."""
    package = tmp_path / "torch"
    package.mkdir()
    (package / "__init__.py").write_text(
        'raise ImportError("libtorch_cpu.so: cannot open shared object file")\n'
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop(cli.REQUIRE_ENV, None)
    return env


def test_a_framework_that_fails_to_import_exits_3_even_in_a_default_run(tmp_path: Path) -> None:
    env = _broken_torch(tmp_path)
    for argv in (SMALL, ["--backends", "numpy,torch", "--allow-missing", *SMALL]):
        done = subprocess.run(
            [sys.executable, "-m", "xentropy.conformance", *argv],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == gate.INCOMPLETE, done.stderr
        assert done.stdout == ""  # stopped before the run
        assert (
            f"torch, torch-adapter, torch-distributed: {BROKEN} "
            "(torch: ImportError: libtorch_cpu.so" in done.stderr
            if "--backends" not in argv
            else f"torch: {BROKEN} (torch: ImportError: libtorch_cpu.so" in done.stderr
        ), done.stderr


def test_not_installed_is_told_from_installed_but_failing_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, body in (
        ("xentropy_probe_broken", 'raise ImportError("undefined symbol: _ZN3c10")'),
        ("xentropy_probe_needs", "import xentropy_probe_absent"),  # a dependency missing
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    absent = import_problem("xentropy_probe_absent")
    assert absent == "xentropy_probe_absent: no module named 'xentropy_probe_absent'"
    assert not is_broken(absent)
    assert not is_broken(import_problem("xentropy.backends.ghost"))  # a submodule absent
    broken = import_problem("xentropy_probe_broken")
    assert broken == (f"{BROKEN} (xentropy_probe_broken: ImportError: undefined symbol: _ZN3c10)")
    assert is_broken(broken)
    assert is_broken(import_problem("xentropy_probe_needs"))
    assert import_problem("numpy") is None and not is_broken(None)


def test_help_lists_the_exit_statuses() -> None:
    text = cli.build_parser().format_help()
    assert "--allow-missing" in text
    for code in cli.EXIT_STATUSES:
        assert f"  {code}  " in text
