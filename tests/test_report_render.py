"""The reports of a small real run: the commands that rerun failing cells, error / tolerance,
the native table, skip reasons, the environment, and the HTML page rendered by headless
Chromium (no horizontal overflow, the heat map within the window).

The run is NumPy, a planted faulty NumPy backend (every loss value off by a relative 1e-3) and,
where PyTorch is installed, its adapter (compared with ``torch.nn.functional``), on two
variants of the quick cases: a few seconds. The Chromium test skips where ``chromium`` is not
installed, unless ``XENTROPY_REQUIRE_CHROMIUM=1``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from planted_faults import Faulty, registered
from xentropy.conformance import cli, conventions, environment, report
from xentropy.conformance.backends import (
    BACKENDS,
    NUMPY,
    Backend,
)
from xentropy.conformance.cases import generate_cases
from xentropy.conformance.dialects import DIALECTS
from xentropy.conformance.runner import RunConfig, RunResult, run
from xentropy.conformance.tolerances import TOLERANCES

FAULTY = "numpy-faulty-report"
VARIANTS = ["softmax_cross_entropy", "binary_cross_entropy"]
WINDOW = (1280, 900)
CHROMIUM_ENV = "XENTROPY_REQUIRE_CHROMIUM"


@pytest.fixture(autouse=True)
def _no_required_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.REQUIRE_ENV, raising=False)


@pytest.fixture(scope="module")
def faulty() -> Iterator[Backend]:
    yield from registered(Faulty(FAULTY, NUMPY, default=False))


@pytest.fixture(scope="module")
def result(faulty: Backend) -> RunResult:
    backends = ["numpy", faulty.name]
    if BACKENDS["torch-adapter"].missing() is None:
        backends.append("torch-adapter")
    config = RunConfig(
        backends=backends,
        dtypes=["float32", "float64"],
        variants=VARIANTS,
        quick=True,
        check_reference=False,
    )
    return run(config)


def test_the_ratio_is_the_test_itself(result: RunResult) -> None:
    """error / tolerance above 1 exactly where a cell against the reference fails."""
    measured = [c for c in result.cells if c.against == "reference" and c.max_ratio is not None]
    assert measured
    for cell in measured:
        assert (cell.status == "fail") == (cell.max_ratio > 1), cell
    # a relative 1e-3 on losses of about 1 against float32's atol + rtol |e| of about 1.3e-5
    planted = [c for c in measured if c.backend == FAULTY and c.quantity == "value"]
    atol_rtol = sum(TOLERANCES["float32"])
    assert any(c.dtype == "float32" and c.max_ratio > 0.1e-3 / atol_rtol for c in planted)


def test_every_failing_cell_has_a_command_that_reruns_exactly_it(
    result: RunResult, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = report.failing_cells(result)
    assert failures and all(f.cell.backend == FAULTY for f in failures)
    failure = next(f for f in failures if f.cell.dtype == "float64")
    words = shlex.split(failure.command)
    assert words[0] == report.PROGRAM
    args = cli.build_parser().parse_args(words[1:])
    config = RunConfig(
        backends=args.backends,
        dtypes=args.dtypes,
        devices=args.devices,
        variants=args.variants,
        cases=args.cases,
        seed=args.seed,
        quick=args.quick,
        check_reference=not args.no_reference_check,
    )
    rerun = run(config)
    cell = failure.cell
    assert {(c.case, c.backend, c.dtype, c.device) for c in rerun.cells} == {
        (cell.case, cell.backend, cell.dtype, cell.device)
    }
    assert cell in rerun.failed
    assert not rerun.reference_checks
    # and through the command line itself
    assert cli.main(words[1:]) == 1
    assert cell.case in capsys.readouterr().out


def test_markdown_and_json_explain_the_run(result: RunResult) -> None:
    markdown = report.to_markdown(result)
    data = json.loads(json.dumps(report.to_json(result)))
    failures = report.failing_cells(result)
    assert len(data["failures"]) == len(failures) == len(result.failed)
    assert all(
        f["command"].startswith(f"{report.PROGRAM} --backends {FAULTY}") for f in data["failures"]
    )
    assert f"rerun: `{failures[0].command}`" in markdown
    # skip reasons: codes and counts of every skipped cell
    reasons = data["skip_reasons"]
    assert [r["code"] for r in reasons] == [f"S{k}" for k in range(1, len(reasons) + 1)]
    assert sum(r["cells"] for r in reasons) == data["summary"]["skipped"] > 0
    assert any("numpy has no autodiff" in r["reason"] for r in reasons)
    assert "## Skipped cells, by reason" in markdown
    # error / tolerance in the tables, float64 far below 1
    numpy64 = next(row for row in markdown.splitlines() if row.startswith("| numpy | float64 |"))
    assert float(numpy64.split("|")[-2]) < 0.05
    env = data["environment"]
    for key in (
        "python",
        "platform",
        "cpu",
        "numpy",
        "scipy",
        "mpmath",
        "xentropy",
        "torch",
        "tensorflow",
        "jax",
        "jaxlib",
        "optax",
        "keras",
        "dask",
        "array-api-strict",
        "array-api-compat",
        "array-api-extra",
    ):
        assert key in env, key
        assert f"- {key}: " in markdown
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode == 0 and environment.git_revision() is not None:
        assert env["git"].startswith(head.stdout.strip())


def test_the_native_table_counts_the_conventions_behind_the_cases_not_compared(
    result: RunResult,
) -> None:
    if "torch-adapter" not in result.backends:
        pytest.skip("PyTorch is not installed")
    data = report.to_json(result)
    softmax = data["native_table"]["softmax_cross_entropy"]["torch-adapter"]
    assert softmax["native"] == "torch.nn.functional"
    assert softmax["checked"] > 0 and softmax["failed"] == 0
    assert softmax["worst_ratio"] <= 1
    binary = data["native_table"]["binary_cross_entropy"]["torch-adapter"]
    # xentropy's default epsilon=1e-7: PyTorch clamps the logs instead
    assert binary["conventions"].get("epsilon clipping", 0) > 0
    assert binary["not_compared"] >= binary["conventions"]["epsilon clipping"]
    markdown = report.to_markdown(result)
    assert "## Against each framework's own loss" in markdown
    assert "torch:ad vs torch.nn.functional" in markdown


def test_known_conventions_touch_only_cases_the_dialect_cannot_spell() -> None:
    """The conventions table agrees with the dialects: a case that a convention difference
    touches has no native spelling (precision notes aside, which the runner handles)."""
    cases = generate_cases(0)
    touched = 0
    for difference in conventions.KNOWN:
        if difference.convention == "reduction precision":
            continue
        spell = DIALECTS[difference.dialect].spell
        for case in cases:
            if case.variant in difference.variants and difference.touches(case, "float32"):
                touched += 1
                assert spell(case) is None, (difference.convention, case.id)
    assert touched > 50


def test_progress_bar_shows_an_eta_in_one_unit() -> None:
    bar = report.ProgressBar(stream=open(os.devnull, "w"))  # noqa: SIM115
    line = bar.line(250, 1000, "numpy float32 cpu", elapsed=30.0)
    assert "250/1,000 cases" in line and "ETA 1:30" in line and "30s elapsed" in line
    assert "done in 2:00" in bar.line(1000, 1000, "", elapsed=120.0)


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


# measured in the rendered page, written into <body> for --dump-dom
_MEASURE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement, body = document.body;
  let right = 0;
  for (const el of document.querySelectorAll("body *")) {
    right = Math.max(right, el.getBoundingClientRect().right);
  }
  const img = document.querySelector("img.heatmap");
  body.dataset.scrollWidth = root.scrollWidth;
  body.dataset.clientWidth = root.clientWidth;
  body.dataset.right = Math.ceil(right);
  body.dataset.imageWidth = img ? Math.ceil(img.getBoundingClientRect().width) : -1;
  body.dataset.imageNatural = img ? img.naturalWidth : -1;
  body.dataset.measured = "yes";
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get(CHROMIUM_ENV) == "1":
            pytest.fail(f"{CHROMIUM_ENV}=1 but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _chromium_run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_html_fits_the_window_in_headless_chromium(result: RunResult, tmp_path: Path) -> None:
    chromium = _chromium()
    pytest.importorskip("matplotlib")
    page = report.to_html(result, png=report.heatmap_png(result))
    assert "max-width: 100%" in page
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    done = _chromium_run(
        chromium, tmp_path / "profile", f"--screenshot={shot}", (tmp_path / "report.html").as_uri()
    )
    assert shot.exists(), done.stderr[-2000:]
    assert _png_size(shot) == WINDOW
    done = _chromium_run(
        chromium,
        tmp_path / "profile",
        "--virtual-time-budget=5000",
        "--dump-dom",
        measured.as_uri(),
    )
    body = done.stdout[done.stdout.find("<body") :].split(">", 1)[0]
    attributes = dict(
        (name, value.strip('"'))
        for name, value in (part.split("=", 1) for part in body.split()[1:] if "=" in part)
    )
    assert attributes.get("data-measured") == "yes", done.stderr[-2000:]
    client = int(attributes["data-client-width"])
    assert client <= WINDOW[0]
    assert int(attributes["data-scroll-width"]) <= client, attributes  # no sideways scroll
    assert int(attributes["data-right"]) <= client, attributes  # no element past the edge
    assert 0 < int(attributes["data-image-width"]) <= client, attributes
    # the heat map is wider than the page here: it was scaled down, not cut
    assert int(attributes["data-image-natural"]) > 0
