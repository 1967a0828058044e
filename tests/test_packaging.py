"""The distribution: its name (ours, not PyPI's unrelated ``xentropy``), one version, the README."""

from __future__ import annotations

import re
import sys
from importlib.metadata import metadata, version
from pathlib import Path

import pytest

import xentropy

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "xentropy-array"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_distribution_name_and_single_version() -> None:
    project = _pyproject()["project"]
    assert project["name"] == DISTRIBUTION
    assert "version" not in project and "version" in project["dynamic"]
    dynamic = _pyproject()["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "xentropy._version.__version__"}
    assert version(DISTRIBUTION) == xentropy.__version__
    assert metadata(DISTRIBUTION)["Name"] == DISTRIBUTION


def test_extras_refer_to_this_distribution() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    for requirement in extras["all"]:
        assert requirement.startswith(f"{DISTRIBUTION}["), requirement


def test_readme_installs_this_distribution() -> None:
    """Every ``pip install`` of the library in the README names the distribution, never the
    unrelated ``xentropy`` project."""
    readme = (ROOT / "README.md").read_text()
    installs = re.findall(r"pip install [^`\n]*", readme)
    assert any(DISTRIBUTION in line for line in installs)
    for line in installs:
        assert not re.search(r"[\s\"']xentropy(\[|[\s\"'`]|$)", line), line


def test_sdist_carries_the_docs_and_the_license(tmp_path: Path) -> None:
    import tarfile

    from setuptools import build_meta

    here = Path.cwd()
    try:
        import os

        os.chdir(ROOT)
        name = build_meta.build_sdist(str(tmp_path))
    finally:
        os.chdir(here)
    with tarfile.open(tmp_path / name) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for path in (
        "LICENSE",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
        "docs/semantics.md",
        "docs/bad-input.md",
        "xentropy/_version.py",
        "backends/torch/functional.py",
    ):
        assert path in names, path
    assert "Apache License" in (ROOT / "LICENSE").read_text()
