"""The command line: ``xentropy-conformance`` / ``python -m xentropy.conformance``.

Runs the matrix, prints the variant x backend table, writes the requested reports and exits
with one of :data:`EXIT_STATUSES`:

* 0: every cell checked passed, and everything asked for was checked;
* 1: a cell failed, or the float64 reference disagrees with mpmath (this wins over 3);
* 2: bad arguments, or the ``conformance`` extra is not installed;
* 3: nothing, or not everything asked for, could be checked (:mod:`.gate`): no cell checked; a
  framework installed but failing to import; a backend named in ``--backends`` not installed
  or without the devices or dtypes asked for; a device in ``--devices`` that no backend has;
  a backend in ``XENTROPY_REQUIRE_BACKENDS`` (a comma list, which CI sets) that did not run.
  ``--allow-missing`` lets the run go on without the backends and devices named on the command
  line, never without the required ones, nor past a broken import or 0 cells checked.

The reasons for 3 are printed one a line; those found before the run (every framework is
imported, and asked for its devices where ``--devices`` names some) stop it at once. A backend
that is neither named nor installed is shown as ``n/i`` and is not a failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from . import gate, report
from ._native_log import keep_native_logs_quiet
from .backends import BACKENDS, FLOAT_DTYPES
from .cases import VARIANTS, generate_cases
from .runner import RunConfig, run

REQUIRE_ENV = "XENTROPY_REQUIRE_BACKENDS"
EXIT_STATUSES = {
    0: "every cell checked passed, and everything asked for was checked",
    1: "a cell failed, or the float64 reference disagrees with mpmath",
    2: "bad arguments, or the conformance extra is not installed",
    gate.INCOMPLETE: "nothing, or not everything asked for, could be checked: 0 cells; a "
    "framework whose import fails; a backend named in --backends or in "
    f"{REQUIRE_ENV} that does not run; a device in --devices that no backend has",
}
DEVICES = ("cpu", "cuda")
REPORT_NAMES = {
    "json": "conformance.json",
    "markdown": "conformance.md",
    "html": "conformance.html",
    "png": "conformance.png",
}


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xentropy-conformance",
        description="Check every xentropy loss on every installed backend, dtype and device "
        "against a float64 reference (values and gradients).",
        epilog="exit status:\n"
        + "\n".join(
            textwrap.fill(meaning, 78, initial_indent=f"  {code}  ", subsequent_indent=" " * 5)
            for code, meaning in EXIT_STATUSES.items()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backends",
        type=_names,
        metavar="A,B",
        help=f"backends to run (default: every default one; known: {', '.join(BACKENDS)})",
    )
    parser.add_argument(
        "--dtypes",
        type=_names,
        metavar="A,B",
        help=f"dtypes (default: all of {', '.join(FLOAT_DTYPES)})",
    )
    parser.add_argument(
        "--devices",
        type=_names,
        metavar="A,B",
        help="devices: cpu, cuda (default: every one present)",
    )
    parser.add_argument(
        "--variants", type=_names, metavar="A,B", help="losses to check (default: all)"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="run without the backends named in --backends that are not installed (or have "
        "none of the devices or dtypes asked for, or skip every cell) and without the devices "
        f"in --devices that no backend has; never without a backend in {REQUIRE_ENV}, past a "
        "framework whose import fails, or with 0 cells checked",
    )
    parser.add_argument(
        "--cases",
        type=_names,
        metavar="ID,GLOB",
        help="case ids (variant/layout/targets/range/options, as the reports name them) or "
        "fnmatch patterns of them (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument(
        "--quick", action="store_true", help="a small subset of the cases, for smoke tests"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (backends are spread over them; default: min(2, CPUs))",
    )
    parser.add_argument(
        "--jax-cache",
        type=Path,
        metavar="DIR",
        help="keep JAX's compiled programs in DIR: a second run is about "
        "3x faster on the JAX backends (most of their time is XLA compiling)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write a JSON report")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown report")
    parser.add_argument("--html", type=Path, metavar="PATH", help="write an HTML report")
    parser.add_argument(
        "--png", type=Path, metavar="PATH", help="write a heat map (needs matplotlib)"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write all four reports into DIR (conformance.json, .md, .html, .png)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-reference-check",
        action="store_true",
        help="skip checking the float64 reference against mpmath",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list backends (and whether they are installed), variants and "
        "the number of cases, then exit",
    )
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for option, known in (
        ("backends", BACKENDS),
        ("dtypes", FLOAT_DTYPES),
        ("devices", DEVICES),
        ("variants", VARIANTS),
    ):
        given = getattr(args, option)
        unknown = [n for n in given or () if n not in known]
        if unknown:
            parser.error(f"unknown {option} {unknown}; choose from {list(known)}")
    if args.png is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--png needs matplotlib (pip install matplotlib)")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")


def _list(args: argparse.Namespace) -> int:
    print("backends:")
    for name, backend in BACKENDS.items():
        problem = backend.missing()
        default = "" if backend.default else " (not in the default run)"
        print(f"  {name:20} {backend.kind:8} {problem or 'installed'}{default}")
    cases = generate_cases(args.seed, variants=args.variants, quick=args.quick)
    print(f"variants: {', '.join(VARIANTS)}")
    targets = sum(bool(case.target_grad_of) for case in cases)
    second = sum(case.second_order for case in cases)
    print(
        f"cases: {len(cases)}{' (quick)' if args.quick else ''}; {targets} with target "
        f"gradients, {second} with Hessian-vector products"
    )
    return 0


def _report_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Path]:
    """Where each report goes; every folder is made (and found writable) before the run, so that
    a bad path fails at once rather than after minutes of cells."""
    paths: dict[str, Path] = {}
    if args.out_dir is not None:
        paths = {kind: args.out_dir / name for kind, name in REPORT_NAMES.items()}
    for kind in REPORT_NAMES:
        explicit = getattr(args, kind)
        if explicit is not None:
            paths[kind] = explicit
    for path in paths.values():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"cannot write a report to {path}: {error.strerror or error}")
        if not os.access(path.parent, os.W_OK):
            parser.error(f"cannot write a report to {path}: {path.parent} is not writable")
    return paths


def _write_reports(result, paths: dict[str, Path], png_explicit: bool) -> None:
    png = None
    if "png" in paths:
        if importlib.util.find_spec("matplotlib") is None and not png_explicit:
            print("note: no heat map: matplotlib is not installed", file=sys.stderr)
        else:
            png = report.write_png(result, paths["png"])
    if "json" in paths:
        report.write_json(result, paths["json"])
    if "markdown" in paths:
        report.write_markdown(result, paths["markdown"])
    if "html" in paths:
        report.write_html(result, paths["html"], png=png)
    for kind, path in paths.items():
        if kind != "png" or png is not None:
            print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    if args.list:
        return _list(args)
    config = RunConfig(
        backends=args.backends,
        dtypes=args.dtypes,
        devices=args.devices,
        variants=args.variants,
        cases=args.cases,
        seed=args.seed,
        quick=args.quick,
        check_reference=not args.no_reference_check,
        jax_cache=None if args.jax_cache is None else str(args.jax_cache),
    )
    paths = _report_paths(parser, args)
    keep_native_logs_quiet()  # before the preflight imports the frameworks
    demands = gate.Demands(
        named=frozenset(args.backends or ()),
        required=frozenset(_names(os.environ.get(REQUIRE_ENV, ""))),
        allow_missing=args.allow_missing,
    )
    reasons = gate.preflight(config, demands)
    if reasons:
        _say_incomplete(reasons, "cannot check (nothing was run)")
        return gate.INCOMPLETE
    progress = None if args.no_progress else report.ProgressBar()
    result = run(config, progress, jobs=args.jobs)
    print(report.terminal_table(result, color=report.use_color(sys.stdout)))
    _write_reports(result, paths, args.png is not None)
    reasons = gate.shortfall(result, demands)
    if reasons:
        _say_incomplete(reasons, "incomplete")
    if not result.ok:
        return 1
    return gate.INCOMPLETE if reasons else 0


def _say_incomplete(reasons: Sequence[str], what: str) -> None:
    for reason in reasons:
        print(f"xentropy-conformance: {what}: {reason}", file=sys.stderr)
