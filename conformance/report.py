"""Reports of a run: terminal table, JSON, Markdown, HTML, a heat-map PNG, and a progress bar.

Every report is built from :func:`summarize`: for each variant and backend, the worst error (in
ulps of the output dtype) over the cells checked against the float64 reference, and how many
cells failed; and the same per quantity (:data:`QUANTITY_NAMES`). Comparisons with a native loss
add failures but not ulps (their ulps measure the distance to another implementation, not the
error).

Nothing here imports matplotlib unless a PNG is asked for; :func:`write_png` uses the
object-oriented API with the Agg canvas and never touches a global backend.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from .cases import VARIANTS
from .runner import QUANTITIES, CellResult, RunResult
from .tolerances import TOLERANCES, format_ulps, tolerance_in_ulps

SHORT_NAMES = {
    "array_api_strict": "strict",
    "tensorflow": "tf",
    "torch-adapter": "torch:ad",
    "jax-adapter": "jax:ad",
    "tensorflow-adapter": "tf:ad",
    "tensorflow-v1-adapter": "tf1:ad",
    "keras-adapter": "keras:ad",
    "torch-native": "torch:nat",
    "jax-native": "jax:nat",
    "tensorflow-native": "tf:nat",
    "tensorflow-v1-native": "tf1:nat",
    "keras-native": "keras:nat",
}
NOT_INSTALLED = "n/i"
QUANTITY_NAMES = {
    "value": "loss value",
    "gradient": "gradient of the prediction",
    "target_gradient": "gradient of the targets (p of KL and cross entropy)",
    "hvp": "Hessian-vector product of the prediction",
}
assert set(QUANTITY_NAMES) == set(QUANTITIES)


def short(backend: str) -> str:
    return SHORT_NAMES.get(backend, backend)


@dataclass
class Aggregate:
    """The cells of one (variant, column) square."""

    checked: int = 0
    failed: int = 0
    skipped: int = 0
    worst_ulps: float | None = None
    failures: list[CellResult] = field(default_factory=list)

    def add(self, cell: CellResult) -> None:
        if cell.status == "skip":
            self.skipped += 1
            return
        self.checked += 1
        if cell.status == "fail":
            self.failed += 1
            self.failures.append(cell)
        if cell.against == "reference" and cell.max_ulps is not None:
            ulps = cell.max_ulps if not math.isnan(cell.max_ulps) else math.inf
            self.worst_ulps = ulps if self.worst_ulps is None else max(self.worst_ulps, ulps)

    @property
    def text(self) -> str:
        if self.checked == 0:
            return "-"
        value = format_ulps(self.worst_ulps)
        return f"!{value}" if self.failed else value


@dataclass
class Summary:
    """Everything the reports show, computed once."""

    variants: list[str]
    backends: list[str]  # columns, in run order (not installed ones included)
    status: dict[str, str]  # backend -> "ok" or "not installed (...)"
    grid: dict[tuple[str, str], Aggregate]  # (variant, backend)
    heat_columns: list[tuple[str, str]]  # (backend, dtype) of the installed backends
    heat: dict[tuple[str, str, str], Aggregate]  # (variant, backend, dtype)
    by_dtype: dict[tuple[str, str], Aggregate]  # (backend, dtype)
    by_quantity: dict[str, Aggregate]  # quantity, in QUANTITIES order
    checked: int
    passed: int
    failed: int
    skipped: int


def summarize(result: RunResult) -> Summary:
    """Aggregate the cells of ``result`` by variant x backend and variant x backend-dtype."""
    wanted = result.config.variants
    variants = [v for v in VARIANTS if wanted is None or v in wanted]
    backends = list(result.backends)
    status = {name: info["status"] for name, info in result.backends.items()}
    grid: dict[tuple[str, str], Aggregate] = {}
    heat: dict[tuple[str, str, str], Aggregate] = {}
    by_dtype: dict[tuple[str, str], Aggregate] = {}
    by_quantity: dict[str, Aggregate] = {}
    heat_columns: list[tuple[str, str]] = []
    for name, info in result.backends.items():
        heat_columns += [(name, dtype) for dtype in info.get("dtypes", [])]
    for cell in result.cells:
        grid.setdefault((cell.variant, cell.backend), Aggregate()).add(cell)
        heat.setdefault((cell.variant, cell.backend, cell.dtype), Aggregate()).add(cell)
        by_dtype.setdefault((cell.backend, cell.dtype), Aggregate()).add(cell)
        by_quantity.setdefault(cell.quantity, Aggregate()).add(cell)
    checked = len(result.checked)
    failed = len(result.failed)
    return Summary(
        variants=variants,
        backends=backends,
        status=status,
        grid=grid,
        heat_columns=heat_columns,
        heat=heat,
        by_dtype=by_dtype,
        by_quantity={q: by_quantity[q] for q in QUANTITIES if q in by_quantity},
        checked=checked,
        passed=checked - failed,
        failed=failed,
        skipped=len(result.cells) - checked,
    )


def _square(summary: Summary, variant: str, backend: str) -> tuple[str, str]:
    """Text and state (``pass``, ``fail``, ``none``, ``missing``) of one table square."""
    if summary.status[backend] != "ok":
        return NOT_INSTALLED, "missing"
    aggregate = summary.grid.get((variant, backend))
    if aggregate is None or aggregate.checked == 0:
        return "-", "none"
    return aggregate.text, "fail" if aggregate.failed else "pass"


def _headline(result: RunResult, summary: Summary) -> str:
    verdict = "PASS" if result.ok else "FAIL"
    return (
        f"xentropy conformance (seed {result.config.seed}{', quick' if result.config.quick else ''}"
        f"): {verdict}: {summary.checked:,} cells checked in {result.seconds:.1f} s: "
        f"{summary.passed:,} passed, {summary.failed:,} failed, {summary.skipped:,} skipped"
    )


def _legend() -> str:
    tolerances = ", ".join(f"{dtype} {tolerance_in_ulps(dtype):.3g}" for dtype in TOLERANCES)
    return (
        "worst error per cell in ulps of the output dtype (the tolerance is about "
        f"{tolerances} ulp); '!' marks a square with a failing cell, "
        f"'{NOT_INSTALLED}' a backend that is not installed, '-' nothing applicable"
    )


def _reference_line(result: RunResult) -> str:
    checks = result.reference_checks
    if not checks:
        return "reference vs mpmath: not run"
    worst = max(max(c.value_error, c.gradient_error) for c in checks)
    failed = result.failed_reference_checks
    verdict = "ok" if not failed else f"{len(failed)} FAILED"
    coordinates = sum(c.coordinates for c in checks)
    return (
        f"reference vs 80-digit mpmath: {len(checks)} cases, {coordinates} gradient coordinates, "
        f"worst error {worst:.2g} of its tolerance: {verdict}"
    )


def _failure_line(cell: CellResult) -> str:
    ulps = "" if cell.max_ulps is None else f" ({format_ulps(cell.max_ulps)} ulp)"
    return (
        f"{cell.backend} {cell.dtype} {cell.device} {cell.quantity} vs {cell.against}: "
        f"{cell.case}{ulps}: {cell.detail}"
    )


def use_color(stream: IO[str]) -> bool:
    """ANSI colour only on a terminal, and never with ``NO_COLOR`` set."""
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def terminal_table(result: RunResult, *, color: bool = False, failures: int = 20) -> str:
    """The variant x backend table with the headline, legend and the first failures."""
    summary = summarize(result)
    colors = {"pass": "\033[32m", "fail": "\033[31;1m", "missing": "\033[2m", "none": "\033[2m"}
    reset = "\033[0m"
    headers = ["variant", *(short(b) for b in summary.backends)]
    rows = [
        [variant, *(_square(summary, variant, b) for b in summary.backends)]
        for variant in summary.variants
    ]
    widths = [max(len(headers[0]), *(len(r[0]) for r in rows))] if rows else [len(headers[0])]
    for j in range(1, len(headers)):
        widths.append(max(len(headers[j]), *(len(r[j][0]) for r in rows)) if rows else 3)
    lines = [_headline(result, summary), _legend(), ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        parts = [row[0].ljust(widths[0])]
        for (text, state), width in zip(row[1:], widths[1:], strict=True):
            padded = text.rjust(width)
            parts.append(f"{colors[state]}{padded}{reset}" if color else padded)
        lines.append("  ".join(parts))
    lines.append("")
    lines += _dtype_lines(summary)
    lines += _quantity_lines(summary)
    missing = [f"  {b}: {s}" for b, s in summary.status.items() if s != "ok"]
    if missing:
        lines += ["", "not installed (not a failure):", *missing]
    lines += ["", _reference_line(result)]
    failed = result.failed
    if failed:
        lines += ["", f"failing cells ({min(failures, len(failed))} of {len(failed)}):"]
        lines += [f"  {_failure_line(c)}" for c in failed[:failures]]
    for check in result.failed_reference_checks[:failures]:
        lines.append(f"  reference {check.case}: {check.detail}")
    return "\n".join(lines)


def _dtype_lines(summary: Summary) -> list[str]:
    """Per backend: ``dtype passed/checked (worst ulp)``."""
    lines = ["by backend and dtype: passed/checked (worst ulp)"]
    for backend in summary.backends:
        if summary.status[backend] != "ok":
            continue
        parts = []
        for (name, dtype), agg in summary.by_dtype.items():
            if name != backend:
                continue
            parts.append(
                f"{dtype} {agg.checked - agg.failed}/{agg.checked} ({format_ulps(agg.worst_ulps)})"
            )
        lines.append(f"  {backend}: " + ", ".join(parts))
    return lines


def _quantity_lines(summary: Summary) -> list[str]:
    """Per quantity: ``passed/checked (worst ulp), skipped`` and what it is."""
    lines = ["", "by quantity: passed/checked (worst ulp), skipped"]
    for quantity, agg in summary.by_quantity.items():
        lines.append(
            f"  {quantity}: {agg.checked - agg.failed:,}/{agg.checked:,} "
            f"({format_ulps(agg.worst_ulps)}), {agg.skipped:,} skipped: {QUANTITY_NAMES[quantity]}"
        )
    return lines


# --- files --------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def to_json(result: RunResult) -> dict[str, Any]:
    """The whole run as JSON-ready data (infinite errors as the strings ``"inf"``/``"nan"``)."""
    summary = summarize(result)
    config = result.config
    return {
        "ok": result.ok,
        "summary": {
            "checked": summary.checked,
            "passed": summary.passed,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "seconds": round(result.seconds, 3),
            "by_quantity": {
                quantity: {
                    "worst_ulps": _jsonable(agg.worst_ulps),
                    "checked": agg.checked,
                    "failed": agg.failed,
                    "skipped": agg.skipped,
                }
                for quantity, agg in summary.by_quantity.items()
            },
        },
        "config": {
            "backends": None if config.backends is None else list(config.backends),
            "dtypes": None if config.dtypes is None else list(config.dtypes),
            "devices": None if config.devices is None else list(config.devices),
            "variants": None if config.variants is None else list(config.variants),
            "seed": config.seed,
            "quick": config.quick,
        },
        "tolerances": {k: {"rtol": r, "atol": a} for k, (r, a) in TOLERANCES.items()},
        "environment": result.environment,
        "backends": result.backends,
        "table": {
            variant: {
                backend: {
                    "worst_ulps": _jsonable(agg.worst_ulps),
                    "checked": agg.checked,
                    "failed": agg.failed,
                    "skipped": agg.skipped,
                }
                for (v, backend), agg in summary.grid.items()
                if v == variant
            }
            for variant in summary.variants
        },
        "reference_checks": [
            {k: _jsonable(v) for k, v in vars(c).items()} for c in result.reference_checks
        ],
        "cells": [{k: _jsonable(v) for k, v in c.to_dict().items()} for c in result.cells],
    }


def write_json(result: RunResult, path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(result), f, separators=(",", ":"))  # tens of thousands of cells
        f.write("\n")


def _markdown_table(headers: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def to_markdown(result: RunResult, *, failures: int = 200) -> str:
    """A Markdown report: headline, the variant x backend table, dtypes, failures."""
    summary = summarize(result)
    lines = [f"# {_headline(result, summary)}", "", _legend() + ".", ""]
    headers = ["variant", *summary.backends]
    rows = []
    for variant in summary.variants:
        row = [f"`{variant}`"]
        for backend in summary.backends:
            text, state = _square(summary, variant, backend)
            row.append(f"**{text}**" if state == "fail" else text)
        rows.append(row)
    lines += _markdown_table(headers, rows)
    lines += ["", "## By backend and dtype", ""]
    dtype_rows = [
        [
            backend,
            dtype,
            str(agg.checked),
            str(agg.failed),
            str(agg.skipped),
            format_ulps(agg.worst_ulps),
        ]
        for (backend, dtype), agg in summary.by_dtype.items()
    ]
    lines += _markdown_table(
        ["backend", "dtype", "checked", "failed", "skipped", "worst ulp"], dtype_rows
    )
    lines += ["", "## By quantity", ""]
    lines += _markdown_table(
        ["quantity", "what", "checked", "failed", "skipped", "worst ulp"],
        (
            [
                f"`{quantity}`",
                QUANTITY_NAMES[quantity],
                str(agg.checked),
                str(agg.failed),
                str(agg.skipped),
                format_ulps(agg.worst_ulps),
            ]
            for quantity, agg in summary.by_quantity.items()
        ),
    )
    missing = [(b, s) for b, s in summary.status.items() if s != "ok"]
    if missing:
        lines += ["", "## Not installed (not failures)", ""]
        lines += [f"- `{b}`: {s}" for b, s in missing]
    lines += ["", "## Reference", "", _reference_line(result)]
    if result.failed:
        lines += [
            "",
            f"## Failing cells ({min(failures, len(result.failed))} of {len(result.failed)})",
            "",
        ]
        lines += [f"- {_failure_line(c)}" for c in result.failed[:failures]]
    lines += ["", "## Environment", ""]
    lines += [f"- {k}: {v}" for k, v in result.environment.items()]
    return "\n".join(lines) + "\n"


def write_markdown(result: RunResult, path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_markdown(result))


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
td.name, th.name { text-align: left; font-family: monospace; }
td.pass { background: #d8f5d8; } td.fail { background: #f8c8c8; font-weight: bold; }
td.missing, td.none { background: #eee; color: #888; }
li { font-family: monospace; font-size: 0.9em; }
"""


def to_html(result: RunResult, *, png: bytes | None = None, failures: int = 500) -> str:
    """A standalone HTML page (inline style; the heat map embedded when ``png`` is given)."""
    summary = summarize(result)
    e = html.escape
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>xentropy conformance</title>",
        f"<style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{e(_headline(result, summary))}</h1>",
        f"<p>{e(_legend())}.</p>",
        "<table><tr><th class='name'>variant</th>",
    ]
    out += [f"<th>{e(b)}</th>" for b in summary.backends]
    out.append("</tr>")
    for variant in summary.variants:
        out.append(f"<tr><td class='name'>{e(variant)}</td>")
        for backend in summary.backends:
            text, state = _square(summary, variant, backend)
            out.append(f"<td class='{state}'>{e(text)}</td>")
        out.append("</tr>")
    out.append("</table>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<p><img alt='heat map' src='data:image/png;base64,{data}'></p>")
    out.append(
        "<h2>By backend and dtype</h2><table><tr><th class='name'>backend</th>"
        "<th>dtype</th><th>checked</th><th>failed</th><th>skipped</th>"
        "<th>worst ulp</th></tr>"
    )
    for (backend, dtype), agg in summary.by_dtype.items():
        state = "fail" if agg.failed else "pass"
        out.append(
            f"<tr><td class='name'>{e(backend)}</td><td>{e(dtype)}</td><td>{agg.checked}</td>"
            f"<td class='{state}'>{agg.failed}</td><td>{agg.skipped}</td>"
            f"<td>{e(format_ulps(agg.worst_ulps))}</td></tr>"
        )
    out.append("</table>")
    out.append(
        "<h2>By quantity</h2><table><tr><th class='name'>quantity</th>"
        "<th class='name'>what</th><th>checked</th><th>failed</th><th>skipped</th>"
        "<th>worst ulp</th></tr>"
    )
    for quantity, agg in summary.by_quantity.items():
        state = "fail" if agg.failed else "pass"
        out.append(
            f"<tr><td class='name'>{e(quantity)}</td><td class='name'>"
            f"{e(QUANTITY_NAMES[quantity])}</td><td>{agg.checked}</td>"
            f"<td class='{state}'>{agg.failed}</td><td>{agg.skipped}</td>"
            f"<td>{e(format_ulps(agg.worst_ulps))}</td></tr>"
        )
    out.append("</table>")
    missing = [(b, s) for b, s in summary.status.items() if s != "ok"]
    if missing:
        out.append("<h2>Not installed (not failures)</h2><ul>")
        out += [f"<li>{e(b)}: {e(s)}</li>" for b, s in missing]
        out.append("</ul>")
    out.append(f"<h2>Reference</h2><p>{e(_reference_line(result))}</p>")
    if result.failed:
        out.append(
            f"<h2>Failing cells ({min(failures, len(result.failed))} of "
            f"{len(result.failed)})</h2><ul>"
        )
        out += [f"<li>{e(_failure_line(c))}</li>" for c in result.failed[:failures]]
        out.append("</ul>")
    out.append("<h2>Environment</h2><ul>")
    out += [f"<li>{e(k)}: {e(v)}</li>" for k, v in result.environment.items()]
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"


def write_html(
    result: RunResult, path: str | os.PathLike[str], *, png: bytes | None = None
) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_html(result, png=png))


def heatmap_png(result: RunResult) -> bytes:
    """The heat map (variants x backend-dtype, colour = log10 of the worst ulps) as PNG bytes.

    Needs matplotlib (imported here, lazily); uses the Agg canvas directly.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarize(result)
    columns = summary.heat_columns
    rows = summary.variants
    values = np.full((len(rows), len(columns)), np.nan)
    labels: list[list[str]] = [["" for _ in columns] for _ in rows]
    failing = np.zeros(values.shape, bool)
    for i, variant in enumerate(rows):
        for j, (backend, dtype) in enumerate(columns):
            agg = summary.heat.get((variant, backend, dtype))
            if agg is None or agg.checked == 0:
                labels[i][j] = "-"
                continue
            ulps = agg.worst_ulps if agg.worst_ulps is not None else 0.0
            values[i, j] = math.log10(max(ulps, 0.1)) if math.isfinite(ulps) else 6.0
            labels[i][j] = agg.text
            failing[i, j] = agg.failed > 0
    figure = Figure(figsize=(max(6.0, 0.55 * len(columns) + 3.0), 0.45 * len(rows) + 2.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="viridis", vmin=-1.0, vmax=4.0, aspect="auto"
    )
    ax.set_facecolor("#dddddd")
    ax.set_xticks(range(len(columns)), [f"{short(b)}\n{d}" for b, d in columns], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(columns)):
            ax.text(
                j,
                i,
                labels[i][j],
                ha="center",
                va="center",
                fontsize=6,
                color="red" if failing[i, j] else "white",
                fontweight="bold" if failing[i, j] else "normal",
            )
    colorbar = figure.colorbar(image, ax=ax)
    colorbar.set_label("log10(worst error in ulps)")
    ax.set_title(_headline(result, summary).replace(": ", ":\n", 1), fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def write_png(result: RunResult, path: str | os.PathLike[str]) -> bytes:
    data = heatmap_png(result)
    with open(path, "wb") as f:
        f.write(data)
    return data


class ProgressBar:
    """A plain progress bar on a stream (stderr): redrawn in place on a terminal, one line per
    tenth of the work otherwise."""

    def __init__(self, stream: IO[str] | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._last_tenth = -1

    def __call__(self, done: int, total: int, label: str) -> None:
        fraction = done / total if total else 1.0
        elapsed = time.perf_counter() - self.started
        filled = int(self.width * fraction)
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
            f"{fraction:4.0%} {elapsed:6.1f}s {label}"
        )
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw < 0.1 and done < total:
                return
            self._last_draw = now
            self.stream.write("\r" + line[:120].ljust(120))
            if done >= total:
                self.stream.write("\n")
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()
