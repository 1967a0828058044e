r"""Reports of a run: terminal table, JSON, Markdown, HTML, a heat-map PNG, and a progress bar.

Every report is built from :func:`summarize`: for each variant and backend, the worst error (in
ulps of the output dtype) over the cells checked against the float64 reference, how many cells
failed, and why cells were skipped (:attr:`Summary.skip_reasons`, each with a code ``S1``, ...);
the same per backend-dtype (the heat map) and per quantity (:data:`QUANTITY_NAMES`).
Comparisons with a native loss add failures but not ulps to those (their error measures the
distance to another implementation): they have a table of their own, variant x framework.

The heat map and the native table show each error as a share of its tolerance,

.. math::

    r = \max_i \frac{|a_i - e_i|}{\text{atol} + \text{rtol}\,|e_i|},

the test of :func:`~xentropy.conformance.tolerances.compare` (:math:`r > 1` fails), so that the
boundary is the same in every dtype: a float64 error of 20 ulp is :math:`5 \cdot 10^{-8}` of
its tolerance, a float16 one of 1 ulp about 1.

Every failing cell comes with a command that runs just its case on its backend, dtype and
device (:func:`repro_command`) and, where one is known, the convention in which the framework's
own loss differs (:mod:`~xentropy.conformance.conventions`). The environment
(:mod:`~xentropy.conformance.environment`) closes each report.

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
import re
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any

from . import conventions
from .backends import BACKENDS
from .cases import VARIANTS, Case, generate_cases
from .environment import SYSTEM_KEYS
from .runner import QUANTITIES, CellResult, RunConfig, RunResult
from .tolerances import TOLERANCES, format_ulps, tolerance_in_ulps

SHORT_NAMES = {
    "array_api_strict": "strict",
    "tensorflow": "tf",
    "torch-adapter": "torch:ad",
    "jax-adapter": "jax:ad",
    "tensorflow-adapter": "tf:ad",
    "tensorflow-v1-adapter": "tf1:ad",
    "keras-adapter": "keras:ad",
    "torch-distributed": "torch:tp",  # tensor (vocabulary) parallel
    "jax-sharded": "jax:tp",
    "torch-native": "torch:nat",
    "jax-native": "jax:nat",
    "tensorflow-native": "tf:nat",
    "tensorflow-v1-native": "tf1:nat",
    "keras-native": "keras:nat",
}
# dialect -> the framework's own losses an adapter is compared with
NATIVE_APIS = {
    "torch": "torch.nn.functional",
    "jax": "optax",
    "tensorflow": "tf.nn",
    "tensorflow-v1-losses": "tf.compat.v1.losses",
    "keras": "keras.losses",
}
NOT_INSTALLED = "n/i"
QUANTITY_NAMES = {
    "value": "loss value",
    "gradient": "gradient of the prediction",
    "target_gradient": "gradient of the targets (p of KL and cross entropy)",
    "hvp": "Hessian-vector product of the prediction",
}
assert set(QUANTITY_NAMES) == set(QUANTITIES)
PROGRAM = "xentropy-conformance"
# the heat map's colour scale of error / tolerance: decades below the boundary 1 and above it
RATIO_MIN, RATIO_MAX = 1e-9, 1e2
HEAT_REASONS = 12  # skip reasons spelled out under the heat map (all of them in the tables)


def short(backend: str) -> str:
    return SHORT_NAMES.get(backend, backend)


def format_ratio(ratio: float | None) -> str:
    """An error / tolerance: ``0``, ``3e-8``, ``0.042``, ``0.5``, ``1.1``, ``12``, ``inf``,
    ``-``."""
    if ratio is None:
        return "-"
    if math.isinf(ratio) or math.isnan(ratio):
        return "inf"
    if ratio == 0:
        return "0"
    if ratio < 0.01:
        mantissa, exponent = f"{ratio:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if ratio < 100:  # two digits, rounded away from the boundary 1: a failure never reads 1
        step = 10.0 ** (math.floor(math.log10(ratio)) - 1)
        rounded = (math.ceil if ratio > 1 else math.floor)(ratio / step) * step
        return f"{rounded:.3g}"
    return f"{ratio:.0f}" if ratio < 1e4 else format_ulps(ratio)


def _cell_ratio(cell: CellResult) -> float | None:
    """The cell's error / tolerance; a failure without one (the call raised) counts as inf."""
    if cell.max_ratio is not None and not math.isnan(cell.max_ratio):
        return cell.max_ratio
    return math.inf if cell.status == "fail" else None


@dataclass
class Aggregate:
    """The cells of one square: counted, and measured on the cells against ``measure``
    (``"reference"``, or ``"native"`` for the native table)."""

    measure: str = "reference"
    checked: int = 0
    failed: int = 0
    skipped: int = 0
    worst_ulps: float | None = None
    worst_ratio: float | None = None
    native_off: int = 0  # passed against the native loss, which is off the reference
    failures: list[CellResult] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, cell: CellResult) -> None:
        if cell.status == "skip":
            self.skipped += 1
            self.skip_reasons[cell.detail] += 1
            return
        self.checked += 1
        if cell.status == "fail":
            self.failed += 1
            self.failures.append(cell)
        if cell.against != self.measure:
            return
        if cell.max_ulps is not None:
            ulps = cell.max_ulps if not math.isnan(cell.max_ulps) else math.inf
            self.worst_ulps = ulps if self.worst_ulps is None else max(self.worst_ulps, ulps)
        ratio = _cell_ratio(cell)
        if ratio is not None and cell.status == "pass" and ratio > 1:
            # differs from a native loss that is itself off the reference: not its error
            self.native_off += 1
        elif ratio is not None:
            self.worst_ratio = ratio if self.worst_ratio is None else max(self.worst_ratio, ratio)

    @property
    def text(self) -> str:
        if self.checked == 0:
            return "-"
        value = format_ulps(self.worst_ulps)
        return f"!{value}" if self.failed else value

    @property
    def ratio_text(self) -> str:
        if self.checked == 0:
            return "-"
        value = format_ratio(self.worst_ratio)
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
    native_backends: list[str]  # adapters compared with their framework's own loss
    native: dict[tuple[str, str], Aggregate]  # (variant, adapter), measured against native
    skip_reasons: dict[str, tuple[str, int]]  # reason -> (code "S1", ..., cells), most first
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
    native: dict[tuple[str, str], Aggregate] = {}
    reasons: Counter[str] = Counter()
    heat_columns: list[tuple[str, str]] = []
    for name, info in result.backends.items():
        heat_columns += [(name, dtype) for dtype in info.get("dtypes", [])]
    for cell in result.cells:
        grid.setdefault((cell.variant, cell.backend), Aggregate()).add(cell)
        heat.setdefault((cell.variant, cell.backend, cell.dtype), Aggregate()).add(cell)
        by_dtype.setdefault((cell.backend, cell.dtype), Aggregate()).add(cell)
        by_quantity.setdefault(cell.quantity, Aggregate()).add(cell)
        if cell.against == "native":
            native.setdefault((cell.variant, cell.backend), Aggregate("native")).add(cell)
        if cell.status == "skip":
            reasons[cell.detail] += 1
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
        native_backends=[b for b in backends if any(k[1] == b for k in native)],
        native=native,
        skip_reasons={
            reason: (f"S{k}", count) for k, (reason, count) in enumerate(reasons.most_common(), 1)
        },
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


RATIO_LEGEND = (
    "error / tolerance: the worst max |a - e| / (atol + rtol |e|) of the cells, the test "
    "itself (above 1 fails; against a native loss, twice the tolerance)"
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


# --- failing cells: how to rerun them, and what may differ ----------------------------------


def _glob_literal(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def repro_command(cell: CellResult, config: RunConfig) -> str:
    """A shell command that runs just ``cell``'s case on its backend, dtype and device (all of
    the case's quantities, the failing one among them)."""
    words = [
        PROGRAM,
        "--backends",
        cell.backend,
        "--variants",
        cell.variant,
        "--dtypes",
        cell.dtype,
        "--devices",
        cell.device,
        "--cases",
        _glob_literal(cell.case),
    ]
    if config.seed != 0:
        words += ["--seed", str(config.seed)]
    return shlex.join([*words, "--no-reference-check"])


@lru_cache(maxsize=64)
def _cases_of(seed: int, variant: str) -> dict[str, Case]:
    return {case.id: case for case in generate_cases(seed, variants=[variant])}


def _case(seed: int, cell: CellResult) -> Case | None:
    if cell.variant not in VARIANTS:
        return None
    return _cases_of(seed, cell.variant).get(cell.case)


def _dialect(backend: str) -> str | None:
    known = BACKENDS.get(backend)
    return None if known is None else known.dialect


def cell_conventions(cell: CellResult, seed: int) -> list[conventions.Difference]:
    """The known convention differences of the cell's framework that its case touches (none
    on a core column: the core is the convention)."""
    case = _case(seed, cell)
    if case is None:
        return []
    return conventions.differences(case, cell.dtype, _dialect(cell.backend))


def _convention_text(found: Sequence[conventions.Difference]) -> str:
    return "; ".join(f"{d.convention}: {d.framework_does}" for d in found)


@dataclass(frozen=True)
class Failure:
    """A failing cell with the command that reruns it and the conventions it may touch."""

    cell: CellResult
    command: str
    differences: tuple[conventions.Difference, ...]

    @property
    def line(self) -> str:
        c = self.cell
        measured = ""  # nothing was measured where the call raised
        if c.max_ratio is not None:
            ulps = "" if c.max_ulps is None else f", {format_ulps(c.max_ulps)} ulp"
            measured = f" ({format_ratio(c.max_ratio)} of the tolerance{ulps})"
        return (
            f"{c.backend} {c.dtype} {c.device} {c.quantity} vs {c.against}: {c.case}"
            f"{measured}: {c.detail}"
        )

    @property
    def convention(self) -> str:
        """The known conventions that differ ("" where none is known)."""
        return _convention_text(self.differences)


def failing_cells(result: RunResult, limit: int | None = None) -> list[Failure]:
    """The first ``limit`` failing cells (all: None) as :class:`Failure`."""
    cells = result.failed if limit is None else result.failed[:limit]
    seed = result.config.seed
    return [
        Failure(c, repro_command(c, result.config), tuple(cell_conventions(c, seed))) for c in cells
    ]


def _skipped_conventions(result: RunResult, variant: str, backend: str) -> tuple[int, Counter[str]]:
    """Of the (case, dtype) pairs of ``backend`` whose native comparison was skipped, how many,
    and how many of them touch each known convention."""
    pairs = {
        (c.case, c.dtype)
        for c in result.cells
        if c.variant == variant and c.backend == backend
        if c.against == "native" and c.status == "skip"
    }
    dialect = _dialect(backend)
    counts: Counter[str] = Counter()
    for case_id, dtype in pairs:
        case = _cases_of(result.config.seed, variant).get(case_id)
        if case is not None:
            found = conventions.differences(case, dtype, dialect)
            # a narrower precision is allowed for (Backend.precision), not a reason to skip
            counts.update(n for n in conventions.names(found) if n != "reduction precision")
    return len(pairs), counts


@dataclass(frozen=True)
class NativeSquare:
    """One square of the native table."""

    aggregate: Aggregate
    not_compared: int  # (case, dtype) pairs without a native comparison
    conventions: Counter[str]  # of those, how many touch each known convention

    @property
    def state(self) -> str:
        if self.aggregate.checked == 0:
            return "none"
        return "fail" if self.aggregate.failed else "pass"

    @property
    def text(self) -> str:
        a = self.aggregate
        if a.checked == 0:
            return "-"
        verdict = f"FAIL {a.failed}/{a.checked}" if a.failed else f"pass {a.checked}"
        off = f", {a.native_off} native off the reference" if a.native_off else ""
        return f"{verdict} ({format_ratio(a.worst_ratio)}{off})"

    @property
    def why_not(self) -> str:
        if not self.not_compared:
            return ""
        known = ", ".join(f"{name} {n}" for name, n in self.conventions.most_common())
        return f"{self.not_compared} not compared" + (f" ({known})" if known else "")


def native_table(result: RunResult, summary: Summary) -> dict[tuple[str, str], NativeSquare]:
    """(variant, adapter) -> its comparisons with the framework's own loss."""
    table = {}
    for variant in summary.variants:
        for backend in summary.native_backends:
            aggregate = summary.native.get((variant, backend), Aggregate("native"))
            skipped, counts = _skipped_conventions(result, variant, backend)
            table[variant, backend] = NativeSquare(aggregate, skipped, counts)
    return table


def _native_header(backend: str) -> str:
    api = NATIVE_APIS.get(_dialect(backend) or "", "native")
    return f"{short(backend)} vs {api}"


def _environment(result: RunResult) -> list[tuple[str, str]]:
    """The environment, system first."""
    env = result.environment
    first = [(k, env[k]) for k in SYSTEM_KEYS if k in env]
    return first + [(k, v) for k, v in env.items() if k not in SYSTEM_KEYS]


# --- the terminal -------------------------------------------------------------------------


def use_color(stream: IO[str]) -> bool:
    """ANSI colour only on a terminal, and never with ``NO_COLOR`` set."""
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def terminal_table(result: RunResult, *, color: bool = False, failures: int = 20) -> str:
    """The variant x backend table with the headline, legend and the first failures, each
    with the command that reruns it."""
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
        for failure in failing_cells(result, failures):
            lines.append(f"  {failure.line}")
            lines.append(f"    rerun: {failure.command}")
            if failure.differences:
                lines.append(f"    convention: {failure.convention}")
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


def _aggregate_json(agg: Aggregate) -> dict[str, Any]:
    return {
        "worst_ulps": _jsonable(agg.worst_ulps),
        "worst_ratio": _jsonable(agg.worst_ratio),
        "checked": agg.checked,
        "failed": agg.failed,
        "skipped": agg.skipped,
    }


def to_json(result: RunResult) -> dict[str, Any]:
    """The whole run as JSON-ready data (infinite errors as the strings ``"inf"``/``"nan"``)."""
    summary = summarize(result)
    config = result.config
    natives = native_table(result, summary)
    return {
        "ok": result.ok,
        "summary": {
            "checked": summary.checked,
            "passed": summary.passed,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "seconds": round(result.seconds, 3),
            "by_quantity": {
                quantity: _aggregate_json(agg) for quantity, agg in summary.by_quantity.items()
            },
        },
        "config": {
            "backends": None if config.backends is None else list(config.backends),
            "dtypes": None if config.dtypes is None else list(config.dtypes),
            "devices": None if config.devices is None else list(config.devices),
            "variants": None if config.variants is None else list(config.variants),
            "cases": None if config.cases is None else list(config.cases),
            "seed": config.seed,
            "quick": config.quick,
        },
        "tolerances": {k: {"rtol": r, "atol": a} for k, (r, a) in TOLERANCES.items()},
        "environment": result.environment,
        "backends": result.backends,
        "table": {
            variant: {
                backend: _aggregate_json(agg)
                for (v, backend), agg in summary.grid.items()
                if v == variant
            }
            for variant in summary.variants
        },
        "native_table": {
            variant: {
                backend: {
                    "native": NATIVE_APIS.get(_dialect(backend) or ""),
                    **_aggregate_json(square.aggregate),
                    "native_off_reference": square.aggregate.native_off,
                    "not_compared": square.not_compared,
                    "conventions": dict(square.conventions),
                }
                for (v, backend), square in natives.items()
                if v == variant
            }
            for variant in summary.variants
        },
        "skip_reasons": [
            {"code": code, "reason": reason, "cells": count}
            for reason, (code, count) in summary.skip_reasons.items()
        ],
        "failures": [
            {
                **{k: _jsonable(v) for k, v in f.cell.to_dict().items()},
                "command": f.command,
                "conventions": [
                    {"convention": d.convention, "framework_does": d.framework_does}
                    for d in f.differences
                ],
            }
            for f in failing_cells(result)
        ],
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


def _md(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _native_markdown(square: NativeSquare) -> str:
    text = f"**{square.text}**" if square.state == "fail" else square.text
    return _md(f"{text}; {square.why_not}" if square.why_not else text)


def to_markdown(result: RunResult, *, failures: int = 200) -> str:
    """A Markdown report: headline, the variant x backend table, the native table, skip
    reasons, dtypes, quantities, failures with their commands, the environment."""
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
    if summary.native_backends:
        lines += ["", "## Against each framework's own loss", "", RATIO_LEGEND + ".", ""]
        natives = native_table(result, summary)
        lines += _markdown_table(
            ["variant", *(_native_header(b) for b in summary.native_backends)],
            (
                [
                    f"`{variant}`",
                    *(_native_markdown(natives[variant, b]) for b in summary.native_backends),
                ]
                for variant in summary.variants
            ),
        )
    if summary.skip_reasons:
        lines += ["", "## Skipped cells, by reason", ""]
        lines += _markdown_table(
            ["code", "cells", "reason"],
            (
                [code, f"{count:,}", _md(reason)]
                for reason, (code, count) in summary.skip_reasons.items()
            ),
        )
    lines += ["", "## By backend and dtype", ""]
    dtype_rows = [
        [
            backend,
            dtype,
            str(agg.checked),
            str(agg.failed),
            str(agg.skipped),
            format_ulps(agg.worst_ulps),
            format_ratio(agg.worst_ratio),
        ]
        for (backend, dtype), agg in summary.by_dtype.items()
    ]
    lines += _markdown_table(
        ["backend", "dtype", "checked", "failed", "skipped", "worst ulp", "error / tolerance"],
        dtype_rows,
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
        for failure in failing_cells(result, failures):
            lines.append(f"- {failure.line}")
            lines.append(f"  - rerun: `{failure.command}`")
            if failure.differences:
                lines.append(f"  - convention that differs: {failure.convention}")
    lines += ["", "## Environment", ""]
    lines += [f"- {k}: {v}" for k, v in _environment(result)]
    return "\n".join(lines) + "\n"


def write_markdown(result: RunResult, path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_markdown(result))


# the page never scrolls sideways: wide tables shrink their text, long words (case ids,
# commands) wrap, the heat map scales down to the page
_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 100%;
       overflow-wrap: anywhere; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.8em 0; max-width: 100%; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.45em; text-align: right; }
th { background: #f4f4f4; }
td.name, th.name, td.text { text-align: left; }
td.name, th.name { font-family: monospace; }
td.name { overflow-wrap: normal; white-space: nowrap; }
td.pass { background: #d8f5d8; } td.fail { background: #f8c8c8; font-weight: bold; }
td.missing, td.none { background: #eee; color: #888; }
small { color: #555; }
img.heatmap { display: block; max-width: 100%; height: auto; }
code { font-size: 0.9em; overflow-wrap: anywhere; white-space: pre-wrap; }
ul.failures li { margin-bottom: 0.6em; }
"""


def to_html(result: RunResult, *, png: bytes | None = None, failures: int = 500) -> str:
    """A standalone HTML page (inline style; the heat map embedded when ``png`` is given)."""
    summary = summarize(result)
    e = html.escape
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>xentropy conformance</title>",
        f"<style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{e(_headline(result, summary))}</h1>",
        f"<p>{e(_legend())}.</p>",
        "<table class='grid'><tr><th class='name'>variant</th>",
    ]
    out += [f"<th title='{e(b)}'>{e(short(b))}</th>" for b in summary.backends]
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
        out.append(
            "<h2>Heat map: error / tolerance</h2>"
            f"<p>{e(RATIO_LEGEND)}; grey hatched squares were skipped, their codes are "
            "the reasons below.</p>"
            f"<img class='heatmap' alt='heat map of error / tolerance' "
            f"src='data:image/png;base64,{data}'>"
        )
    out += _html_native(result, summary)
    if summary.skip_reasons:
        out.append(
            "<h2>Skipped cells, by reason</h2><table class='reasons'><tr><th>code</th>"
            "<th>cells</th><th class='name'>reason</th></tr>"
        )
        out += [
            f"<tr><td>{code}</td><td>{count:,}</td><td class='text'>{e(reason)}</td></tr>"
            for reason, (code, count) in summary.skip_reasons.items()
        ]
        out.append("</table>")
    out.append(
        "<h2>By backend and dtype</h2><table><tr><th class='name'>backend</th>"
        "<th>dtype</th><th>checked</th><th>failed</th><th>skipped</th>"
        "<th>worst ulp</th><th>error / tolerance</th></tr>"
    )
    for (backend, dtype), agg in summary.by_dtype.items():
        state = "fail" if agg.failed else "pass"
        out.append(
            f"<tr><td class='name'>{e(backend)}</td><td>{e(dtype)}</td><td>{agg.checked}</td>"
            f"<td class='{state}'>{agg.failed}</td><td>{agg.skipped}</td>"
            f"<td>{e(format_ulps(agg.worst_ulps))}</td>"
            f"<td>{e(format_ratio(agg.worst_ratio))}</td></tr>"
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
            f"<tr><td class='name'>{e(quantity)}</td><td class='text'>"
            f"{e(QUANTITY_NAMES[quantity])}</td><td>{agg.checked}</td>"
            f"<td class='{state}'>{agg.failed}</td><td>{agg.skipped}</td>"
            f"<td>{e(format_ulps(agg.worst_ulps))}</td></tr>"
        )
    out.append("</table>")
    missing = [(b, s) for b, s in summary.status.items() if s != "ok"]
    if missing:
        out.append("<h2>Not installed (not failures)</h2><ul>")
        out += [f"<li><code>{e(b)}</code>: {e(s)}</li>" for b, s in missing]
        out.append("</ul>")
    out.append(f"<h2>Reference</h2><p>{e(_reference_line(result))}</p>")
    if result.failed:
        out.append(
            f"<h2>Failing cells ({min(failures, len(result.failed))} of "
            f"{len(result.failed)})</h2><ul class='failures'>"
        )
        for failure in failing_cells(result, failures):
            known = (
                f"<br>convention that differs: {e(failure.convention)}"
                if failure.differences
                else ""
            )
            out.append(
                f"<li><code>{e(failure.line)}</code><br>rerun: "
                f"<code class='command'>{e(failure.command)}</code>{known}</li>"
            )
        out.append("</ul>")
    out.append("<h2>Environment</h2><table class='environment'>")
    out += [
        f"<tr><th class='name'>{e(k)}</th><td class='text'>{e(v)}</td></tr>"
        for k, v in _environment(result)
    ]
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


def _html_native(result: RunResult, summary: Summary) -> list[str]:
    """The table variant x framework of the comparisons with each framework's own loss."""
    if not summary.native_backends:
        return []
    e = html.escape
    natives = native_table(result, summary)
    out = [
        "<h2>Against each framework's own loss</h2>",
        f"<p>{e(RATIO_LEGEND)}. Cases a framework cannot express with xentropy's semantics "
        "are not compared; the known conventions behind them are counted.</p>",
        "<table class='native'><tr><th class='name'>variant</th>",
    ]
    out += [f"<th>{e(_native_header(b))}</th>" for b in summary.native_backends]
    out.append("</tr>")
    for variant in summary.variants:
        out.append(f"<tr><td class='name'>{e(variant)}</td>")
        for backend in summary.native_backends:
            square = natives[variant, backend]
            why = f"<br><small>{e(square.why_not)}</small>" if square.why_not else ""
            out.append(f"<td class='{square.state}'>{e(square.text)}{why}</td>")
        out.append("</tr>")
    out.append("</table>")
    return out


def write_html(
    result: RunResult, path: str | os.PathLike[str], *, png: bytes | None = None
) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_html(result, png=png))


# --- the heat map ---------------------------------------------------------------------------


def _ratio_colormap() -> Any:
    """Viridis from dark (far inside the tolerance) to yellow-green at the boundary 1, then
    reds beyond it: the two sides of the boundary differ in hue, not just in lightness."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    below = math.log10(1.0 / RATIO_MIN)
    above = math.log10(RATIO_MAX)
    per_decade = 32
    inside = colormaps["viridis"](np.linspace(0.0, 0.92, int(below * per_decade)))
    beyond = colormaps["Reds"](np.linspace(0.55, 1.0, int(above * per_decade)))
    colormap = ListedColormap(np.vstack([inside, beyond]), name="error_over_tolerance")
    return colormap.with_extremes(bad="#d9d9d9")


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split("\n"))
    return text if len(text) <= width else text[: width - 4] + " ..."


def _square_label(agg: Aggregate | None, codes: dict[str, tuple[str, int]]) -> str:
    if agg is None:
        return ""
    if agg.checked:
        return agg.ratio_text
    if agg.skipped:  # every cell skipped: the reasons' codes, most cells first
        return "+".join(codes[reason][0] for reason, _ in agg.skip_reasons.most_common(2))
    return "-"


def heatmap_png(result: RunResult) -> bytes:
    """The heat map as PNG bytes: variants x backend-dtype, colour = the worst error /
    tolerance of the square's cells against the reference (log scale, :data:`RATIO_MIN` to
    :data:`RATIO_MAX`, the boundary 1 marked on the colour bar); squares whose cells were all
    skipped hatched grey and labelled with their reasons' codes, spelled out underneath.

    Needs matplotlib (imported here, lazily); uses the Agg canvas directly.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    summary = summarize(result)
    columns = summary.heat_columns
    rows = summary.variants
    ratios = np.full((len(rows), len(columns)), np.nan)
    for i, variant in enumerate(rows):
        for j, (backend, dtype) in enumerate(columns):
            agg = summary.heat.get((variant, backend, dtype))
            if agg is not None and agg.checked and agg.worst_ratio is not None:
                ratios[i, j] = min(max(agg.worst_ratio, RATIO_MIN), RATIO_MAX)
    reasons = list(summary.skip_reasons.items())
    legend = [
        _clip(f"{code:>4} {count:>8,} cells  {reason}", 150)
        for reason, (code, count) in reasons[:HEAT_REASONS]
    ]
    if len(reasons) > HEAT_REASONS:
        legend.append(f"... {len(reasons) - HEAT_REASONS} more reasons in the reports")
    legend_height = 0.17 * len(legend) + (0.3 if legend else 0.0)
    width = max(7.0, 0.55 * len(columns) + 4.0)
    heat_height = 0.42 * len(rows) + 2.2
    figure = Figure(figsize=(width, heat_height + legend_height))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 1, height_ratios=[heat_height, max(legend_height, 0.01)])
    ax = figure.add_subplot(grid[0])
    norm = LogNorm(vmin=RATIO_MIN, vmax=RATIO_MAX)
    colormap = _ratio_colormap()
    image = ax.imshow(np.ma.masked_invalid(ratios), cmap=colormap, norm=norm, aspect="auto")
    crowded = len(columns) > 16 or any(len(short(b)) > 9 for b, _ in columns)
    ax.set_xticks(
        range(len(columns)),
        [f"{short(b)} {d}" if crowded else f"{short(b)}\n{d}" for b, d in columns],
        fontsize=7,
        rotation=90 if crowded else 0,
    )
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i, variant in enumerate(rows):
        for j, (backend, dtype) in enumerate(columns):
            agg = summary.heat.get((variant, backend, dtype))
            label = _square_label(agg, summary.skip_reasons)
            failing = agg is not None and agg.failed > 0
            if agg is not None and not agg.checked and agg.skipped:
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        facecolor="#e6e6e6",
                        edgecolor="#9a9a9a",
                        hatch="///",
                        linewidth=0.0,
                    )
                )
                color = "#333333"
            elif np.isnan(ratios[i, j]):
                color = "#555555"
            else:
                red, green, blue, _ = colormap(norm(ratios[i, j]))
                color = "black" if 0.3 * red + 0.59 * green + 0.11 * blue > 0.5 else "white"
            ax.text(
                j,
                i,
                label,
                ha="center",
                va="center",
                fontsize=6,
                color=color,
                fontweight="bold" if failing else "normal",
            )
    colorbar = figure.colorbar(image, ax=ax, extend="both")
    colorbar.set_label("error / tolerance (worst of the square; above 1 fails)")
    colorbar.ax.axhline(1.0, color="black", linewidth=1.5)
    exponents = range(round(math.log10(RATIO_MIN)) + 1, round(math.log10(RATIO_MAX)) + 1, 2)
    ticks = [10.0**k for k in exponents]
    colorbar.set_ticks(
        ticks, labels=["1 = tolerance" if t == 1 else f"1e{round(math.log10(t))}" for t in ticks]
    )
    ax.set_title(_headline(result, summary).replace(": ", ":\n", 1), fontsize=8)
    if legend:
        legend_ax = figure.add_subplot(grid[1])
        legend_ax.axis("off")
        legend_ax.text(
            0.0,
            1.0,
            "skipped squares (hatched), by reason:\n" + "\n".join(legend),
            ha="left",
            va="top",
            fontsize=6.5,
            family="monospace",
            transform=legend_ax.transAxes,
        )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def write_png(result: RunResult, path: str | os.PathLike[str]) -> bytes:
    data = heatmap_png(result)
    with open(path, "wb") as f:
        f.write(data)
    return data


# --- progress -----------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``42s``, ``3:07``, ``1:02:03``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    r"""A plain progress bar on a stream (stderr): redrawn in place on a terminal, one line per
    tenth of the work otherwise; nothing at all is drawn when it is not used (``--no-progress``).

    It counts *cases*: one case run on one backend, dtype and device (all of its cells), and
    one case of the mpmath check. The estimate of the time left assumes the rest goes at the
    pace so far,

    .. math::

        \text{ETA} = t \, \frac{n - k}{k}

    after :math:`k` of :math:`n` cases in :math:`t` seconds.
    """

    UNIT = "cases"

    def __init__(self, stream: IO[str] | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._last_tenth = -1

    def line(self, done: int, total: int, label: str, elapsed: float) -> str:
        """The bar after ``done`` of ``total`` cases in ``elapsed`` seconds."""
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        if done >= total:
            timing = f"done in {format_duration(elapsed)}"
        elif done:
            timing = f"ETA {format_duration(elapsed * (total - done) / done)}"
        else:
            timing = "ETA --"
        return (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{total:,} {self.UNIT} "
            f"{fraction:4.0%} {format_duration(elapsed)} elapsed, {timing}  {label}"
        )

    def __call__(self, done: int, total: int, label: str) -> None:
        fraction = done / total if total else 1.0
        line = self.line(done, total, label, time.perf_counter() - self.started)
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
