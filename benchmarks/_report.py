"""The terminal table and notes of a benchmark report."""

from __future__ import annotations

from typing import Any

MIB = 1024 * 1024
COLUMNS = (
    ("backend", 10), ("mode", 8), ("case", 22),
    ("fwd ours", 9), ("native", 9), ("ratio", 6),
    ("f+b ours", 9), ("native", 9), ("ratio", 6),
    ("MiB fwd o/n", 13), ("MiB f+b o/n", 13), ("f+b +MiB", 9),
)  # fmt: skip


def _ms(figures: dict[str, Any] | None) -> str:
    return "-" if not figures else f"{figures['median_ms']:.2f}"


def _ratio(result: dict[str, Any]) -> str:
    if "error" in result and "time_ratio" not in result:
        return "ERR"
    ratio = result.get("time_ratio")
    return "-" if ratio is None else f"{ratio:.2f}"


def _mib(figures: dict[str, Any] | None) -> str:
    """Peak MiB: measured, or ``~`` and the compiler's estimate, or ``-``."""
    if not figures:
        return "-"
    if figures.get("peak_bytes") is not None:
        return f"{figures['peak_bytes'] / MIB:.0f}"
    if figures.get("xla_peak_bytes") is not None:
        return f"~{figures['xla_peak_bytes'] / MIB:.0f}"
    return "-"


def _pair(result: dict[str, Any]) -> str:
    return f"{_mib(result.get('ours'))}/{_mib(result.get('native'))}"


def _extra(result: dict[str, Any]) -> str:
    extra = result.get("extra_peak_bytes")
    return "-" if extra is None else f"{extra / MIB:+.0f}"


def row_cells(row: dict[str, Any]) -> list[str]:
    fwd, both = row["fwd"], row["fwd_bwd"]
    return [
        row["backend"], row["mode"], row["case"],
        _ms(fwd.get("ours")), _ms(fwd.get("native")), _ratio(fwd),
        _ms(both.get("ours")), _ms(both.get("native")), _ratio(both),
        _pair(fwd), _pair(both), _extra(both),
    ]  # fmt: skip


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per row: times in ms (medians), ratios ours/native, peak memory in MiB."""
    header = _line([name for name, _ in COLUMNS])
    return "\n".join([header, "-" * len(header), *(_line(row_cells(row)) for row in rows)])


def _line(cells: list[str]) -> str:
    """Cells padded to the column widths: text left-aligned, numbers right-aligned."""
    padded = (
        cell.ljust(width) if i < 3 else cell.rjust(width)
        for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
    )
    return "  ".join(padded)


def format_notes(report: dict[str, Any]) -> str:
    """Skipped backends, versions, the memory method, and each row's note or error."""
    lines = [
        "",
        "times: median ms after warm-up; ratio = ours / native (< 1: ours faster);",
        "MiB: peak memory above the inputs during one call, ours/native (~ = XLA's estimate);",
        "f+b +MiB: extra peak of ours over native for forward+backward.",
    ]
    machine = report.get("machine", {})
    load, cpus = machine.get("load_average_at_start"), machine.get("cpus_usable") or 1
    if load and load[0] > cpus:
        lines.append(
            f"WARNING: load average {load[0]:.1f} on {cpus} CPUs at the start: other processes "
            "compete, times are unreliable (most of all for many small eager ops: torch, TF)."
        )
    for name, result in report["backends"].items():
        status = result.get("skipped") or result.get("failed") or "ok"
        versions = ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())
        lines.append(f"[{name}] {status}; {result.get('elapsed_s', 0):.0f} s; {versions}")
        if result.get("memory_method"):
            lines.append(f"    memory: {result['memory_method']}")
    seen = set()
    for row in report["rows"]:
        disagree = [
            f"{p} values differ from native by {row[p]['max_rel_diff']:.1e} (relative)"
            for p in ("fwd", "fwd_bwd")
            if (row[p].get("max_rel_diff") or 0.0) > 1e-3
        ]
        for text in (
            row.get("note"),
            row["fwd"].get("error"),
            row["fwd_bwd"].get("error"),
            *disagree,
        ):
            key = (row["backend"], text)
            if text and key not in seen:
                seen.add(key)
                lines.append(f"    {row['backend']} {row['mode']} {row['case']}: {text}")
    return "\n".join(lines)
