"""The GitHub Actions workflow that the README tells users to copy cannot rot.

``.github/workflows/conformance.yml`` is read as YAML, and each matrix entry is checked against
the installed distribution: its backends exist (``xentropy.conformance.backends.BACKENDS``),
its extras are the distribution's, the job requires exactly the backends it runs
(``XENTROPY_REQUIRE_BACKENDS``), and the Install step installs the released ``xentropy-array``
at this version, never the user's repository. The Install step is not run (that would need the
network); the Conformance matrix step is run for every entry, its ``${{ ... }}`` values
substituted, with the installed ``xentropy-conformance`` and a tiny selection appended (one
variant, float32, ``--quick``), and must exit 0 where the entry's frameworks are installed and
3 naming the backends that are not, otherwise.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import required_backends
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from xentropy.conformance.backends import BACKENDS

import xentropy

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "conformance.yml"
DISTRIBUTION = metadata("xentropy-array")
TINY = ["--variants", "softmax_cross_entropy", "--dtypes", "float32", "--quick"]
TINY += ["--no-reference-check", "--jobs", "1"]
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _job() -> dict[str, Any]:
    return _workflow()["jobs"]["matrix"]


def _entries() -> list[dict[str, str]]:
    return _job()["strategy"]["matrix"]["include"]


def _step(name: str) -> dict[str, Any]:
    (step,) = [s for s in _job()["steps"] if s.get("name") == name]
    return step


def _expand(text: str, entry: dict[str, str], python: str = "3.12") -> str:
    """``text`` with the ``${{ matrix.* }}`` and ``${{ env.* }}`` expressions of ``entry``
    replaced, as GitHub Actions does (an absent matrix value is the empty string)."""
    context = {
        **{f"matrix.{k}": v for k, v in {**entry, "python": python}.items()},
        **{f"env.{k}": str(v) for k, v in _workflow()["env"].items()},
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith("matrix.") and name not in context:
            raise KeyError(f"{WORKFLOW.name} uses ${{{{ {name} }}}}, unknown here")
        return context.get(name, "")

    return EXPRESSION.sub(value, text)


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _entry_id(entry: dict[str, str]) -> str:
    return entry["backend"]


def test_every_backend_of_the_matrix_has_one_entry_and_supported_pythons() -> None:
    matrix = _job()["strategy"]["matrix"]
    assert sorted(matrix["backend"]) == sorted(e["backend"] for e in _entries())
    supported = SpecifierSet(DISTRIBUTION["Requires-Python"])
    assert matrix["python"] and all(supported.contains(v) for v in matrix["python"])


@pytest.mark.parametrize("entry", _entries(), ids=_entry_id)
def test_entry_names_known_backends_and_extras(entry: dict[str, str]) -> None:
    unknown = [name for name in _names(entry["backends"]) if name not in BACKENDS]
    assert not unknown, f"{entry['backend']}: no such conformance backends {unknown}"
    extras = set(DISTRIBUTION.get_all("Provides-Extra") or ())
    assert "conformance" in _names(entry["extra"])
    assert set(_names(entry["extra"])) <= extras, (entry["extra"], extras)


def test_each_job_requires_exactly_the_backends_it_runs() -> None:
    assert _job()["env"]["XENTROPY_REQUIRE_BACKENDS"] == "${{ matrix.backends }}"
    command = _step("Conformance matrix")["run"]
    assert "--backends ${{ matrix.backends }}" in command
    assert "--allow-missing" not in command


def test_the_reports_uploaded_are_the_ones_written() -> None:
    out_dir = shlex.split(_step("Conformance matrix")["run"])
    written = out_dir[out_dir.index("--out-dir") + 1]
    assert _step("Upload the reports")["with"]["path"].rstrip("/") == written


@pytest.mark.parametrize("entry", _entries(), ids=_entry_id)
def test_install_step_installs_this_release_not_the_repository(entry: dict[str, str]) -> None:
    lines = [line.strip() for line in _expand(_step("Install")["run"], entry).splitlines()]
    installs = [shlex.split(line.split("then", 1)[-1].split(";")[0]) for line in lines]
    installs = [words for words in installs if words[:2] == ["pip", "install"]]
    requirements = []
    for words in installs:
        arguments = iter(words[2:])
        for word in arguments:
            if word in ("--index-url", "--extra-index-url"):
                assert next(arguments).startswith("https://"), words
            elif not word.startswith("-"):
                assert not word.startswith((".", "/")) and "file:" not in word, (
                    f"{WORKFLOW.name} installs a local path {word!r}: users copy the file into "
                    "their own repository"
                )
                requirements.append(Requirement(word))
    (ours,) = [r for r in requirements if r.name == DISTRIBUTION["Name"]]
    assert ours.extras == set(_names(entry["extra"]))
    assert str(ours.specifier) == f"=={xentropy.__version__}", (
        f"XENTROPY_VERSION in {WORKFLOW.name} is not this release ({xentropy.__version__})"
    )
    if entry["backend"] == "torch":  # the CPU build of PyTorch, not the CUDA one
        assert "--index-url https://download.pytorch.org/whl/cpu" in entry.get("install", "")


@pytest.mark.parametrize("entry", _entries(), ids=_entry_id)
def test_conformance_step_runs_and_passes_where_installed(
    entry: dict[str, str], tmp_path: Path
) -> None:
    words = shlex.split(_expand(_step("Conformance matrix")["run"], entry))
    assert words[0] == "xentropy-conformance"
    script = Path(sys.executable).with_name("xentropy-conformance")
    assert script.exists(), "the xentropy-conformance entry point is not installed"
    job_env = {k: _expand(str(v), entry) for k, v in _job()["env"].items()}
    env = {**os.environ, **job_env, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [str(script), *words[1:], *TINY],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    names = _names(entry["backends"])
    if done.returncode == 0:
        written = words[words.index("--out-dir") + 1]
        assert (tmp_path / written / "conformance.json").stat().st_size > 0
        return
    missing = {name: BACKENDS[name].missing() for name in names}
    absent = [name for name, problem in missing.items() if problem]
    assert absent, f"exit {done.returncode} with every backend installed:\n{done.stderr}"
    if entry["backend"] in required_backends():
        pytest.fail(f"{absent} not installed, but XENTROPY_REQUIRE_BACKENDS requires them")
    assert done.returncode == 3, done.stderr
    assert all(name in done.stderr for name in absent), done.stderr
