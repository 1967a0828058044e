"""The installed package as static type checkers see it from a user's script.

A script outside the repository imports the core, a dialect and the conformance package, and
pyright and mypy (run on it with this interpreter's environment) must report exactly the lines
marked ``# error``: a ``torch.Tensor`` in gives a ``torch.Tensor`` out (assigning it to a ``str``
is an error, which an ``Any`` result would let pass), ``return_lse=True`` gives a pair, a
reduction or scheme outside the ``Literal`` is an error, and ``value_and_grad`` keeps the wrapped
function's parameter names.

The tools need a layout they can follow: a wheel, or an editable install made with
``--config-settings editable_mode=strict`` (the default editable install maps ``backends/`` and
``conformance/`` with an import hook that static tools do not run). Without one, or without
pyright and mypy, the tests skip, unless ``XENTROPY_REQUIRE_TYPECHECKERS=1`` (CI) makes that a
failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

REQUIRED = os.environ.get("XENTROPY_REQUIRE_TYPECHECKERS") == "1"

USER_SCRIPT = textwrap.dedent(
    """\
    from typing import Literal

    import numpy as np
    import torch

    import xentropy
    from xentropy.backends.torch import functional as F
    from xentropy.conformance import RunConfig, run

    logits = torch.zeros(4, 3, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 1])

    loss: torch.Tensor = xentropy.softmax_cross_entropy(logits, targets)
    pair: tuple[torch.Tensor, torch.Tensor] = xentropy.softmax_cross_entropy(
        logits, targets, return_lse=True
    )
    focal: torch.Tensor = xentropy.softmax_focal_loss(logits, targets, reduction="none")
    kl: torch.Tensor = xentropy.kl_div_log(logits, logits, reduction="batchmean")
    native = F.cross_entropy(logits, targets)
    config = RunConfig
    runner = run

    reduction: Literal["sum"] = "sum"
    summed: torch.Tensor = xentropy.sigmoid_cross_entropy(logits, logits, reduction=reduction)
    weights = xentropy.class_weights(np.array([3, 1]), scheme="effective_number")

    loss_and_grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)
    value, grad = loss_and_grad(np.zeros((1, 2)), np.array([0]), reduction="sum")

    wrong: str = xentropy.softmax_cross_entropy(logits, targets)  # error
    wrong_pair: torch.Tensor = xentropy.softmax_cross_entropy(  # error
        logits, targets, return_lse=True
    )
    xentropy.softmax_cross_entropy(logits, targets, reduction="avg")  # error
    xentropy.kl_div_log(logits, logits, reduction="batch_mean")  # error
    xentropy.class_weights(np.array([3, 1]), scheme="linear")  # error
    loss_and_grad(np.zeros((1, 2)), np.array([0]), reductio="sum")  # error
    """
)

EXPECTED_ERROR_LINES = {
    i for i, line in enumerate(USER_SCRIPT.splitlines(), 1) if line.endswith("# error")
}


def _skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (XENTROPY_REQUIRE_TYPECHECKERS=1)")
    pytest.skip(reason)


def _require_tool(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        _skip_or_fail(f"{module} is not installed in {sys.executable}")


@pytest.fixture(scope="module")
def user_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import xentropy.backends  # binds xentropy too

    # static tools find xentropy.backends in a directory xentropy/ holding it (a wheel, or the
    # strict editable install's link tree, which xentropy.__path__ lists when the checkout's
    # own xentropy/ is imported first); the default editable install maps it with an import hook
    if not any(Path(folder, "backends", "__init__.py").exists() for folder in xentropy.__path__):
        _skip_or_fail(
            "editable install is not strict: reinstall with "
            "`pip install -e . --config-settings editable_mode=strict`"
        )
    folder = tmp_path_factory.mktemp("user_project")
    script = folder / "user_script.py"
    script.write_text(USER_SCRIPT)
    return script


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_pyright_sees_the_public_types(user_script: Path) -> None:
    _require_tool("pyright")
    command = [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable]
    result = _run([*command, user_script.name], cwd=user_script.parent)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no JSON report:\n{result.stdout}\n{result.stderr}")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    lines = {d["range"]["start"]["line"] + 1 for d in errors}
    messages = "\n".join(f"{d['range']['start']['line'] + 1}: {d['message']}" for d in errors)
    assert lines == EXPECTED_ERROR_LINES, messages


def test_mypy_sees_the_public_types(user_script: Path) -> None:
    _require_tool("mypy")
    command = [sys.executable, "-m", "mypy", "--python-executable", sys.executable]
    command += ["--cache-dir", str(user_script.parent / ".mypy_cache"), "--no-error-summary"]
    result = _run([*command, user_script.name], cwd=user_script.parent)
    errors = re.findall(rf"^{re.escape(user_script.name)}:(\d+): error: .*$", result.stdout, re.M)
    lines = {int(n) for n in errors}
    assert lines == EXPECTED_ERROR_LINES, result.stdout + result.stderr
