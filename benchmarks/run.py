"""Speed and peak memory of xentropy's adapters against each framework's native loss.

    python benchmarks/run.py [--quick] [--json PATH] [--backends NAME ...] [--device cpu|cuda]
    python benchmarks/run.py --scaling [--quick] [--max-gib GIB] [--backends torch linear ...]
    python benchmarks/run.py --distributed [--quick] [--json PATH]

Each backend runs in its own subprocess (a fresh process per framework: no allocator, thread
pool or GPU pre-allocation of one framework disturbs another; a crash costs one backend only).
Within a backend, ours and native run on the same inputs, interleaved, so that their ratio is
taken under the same conditions. ``--scaling`` runs the sweeps of ``_scaling.py`` instead (how
the cost grows with N, C and V, beside the machine's copy bandwidth). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import _scaling  # noqa: E402
import numpy as np  # noqa: E402
from _cases import cases  # noqa: E402
from _suite import PASSES, Matchup, SkipBackend, version_of  # noqa: E402
from _timing import MemoryProbe, Policy, race  # noqa: E402

SUITES = {
    "numpy": "_numpy_suite:NumpySuite",
    "torch": "_torch_suite:TorchSuite",
    "jax": "_jax_suite:JaxSuite",
    "tensorflow": "_tf_suite:TensorFlowSuite",
    "linear": "_linear_suite:LinearSuite",
}
MIB = 1024 * 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shapes ~16x smaller (smoke run)")
    parser.add_argument("--json", type=Path, help="where to write all figures (JSON)")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=list(SUITES),
        metavar="NAME",
        help=f"subset of {', '.join(SUITES)} (linear: torch linear_cross_entropy); default: all, "
        "with --scaling torch and linear (numpy and jax on request)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--min-repeats", type=int, help="timed repeats at least (default 3)")
    parser.add_argument(
        "--scaling", action="store_true", help="sweeps over N, C and V (see benchmarks/README.md)"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="vocabulary-parallel losses on 1, 2, 4 gloo ranks (CPU; see benchmarks/README.md)",
    )
    parser.add_argument(
        "--max-gib",
        type=float,
        default=4.5,
        help="--scaling: skip a row whose estimated peak memory (GiB) exceeds this (4.5)",
    )
    parser.add_argument("--worker", choices=list(SUITES), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backends is None:
        args.backends = list(_scaling.DEFAULT_BACKENDS if args.scaling else SUITES)
    if args.scaling and set(args.backends) - set(_scaling.BACKENDS):
        parser.error(f"--scaling runs the backends {', '.join(_scaling.BACKENDS)} only")
    return args


def policy(args: argparse.Namespace) -> Policy:
    """Quick: short bursts; full: ~1.5 s per contender and pass, at least 3 repeats."""
    base = Policy(3, 10, 0.3) if args.quick else Policy(3, 25, 1.5)
    if args.min_repeats is None:
        return base
    return Policy(args.min_repeats, max(args.min_repeats, base.max_repeats), base.target_s)


# ----------------------------------------------------------------------------------------------
# Worker: one backend, in its own process
# ----------------------------------------------------------------------------------------------


def load_suite(name: str) -> Any:
    module, cls = SUITES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def time_pass(m: Matchup, pass_name: str, suite: Any, probe: MemoryProbe, pol: Policy) -> dict:
    """Race ours and native for one pass; on an error, retry native alone and say who failed."""
    contenders = {"native": getattr(m.native, pass_name)}
    if m.ours is not None:
        contenders = {"ours": getattr(m.ours, pass_name), **contenders}
    result: dict[str, Any] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    try:
        timings = race(
            contenders,
            suite.sync,
            probe,
            pol,
            lambda who, out: outputs.update({who: flat_numpy(out)}),
        )
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        traceback.print_exc()
        try:
            timings = race({"native": contenders["native"]}, suite.sync, probe, pol)
        except Exception as native_exc:
            result["error"] += f" | native: {type(native_exc).__name__}: {str(native_exc)[:300]}"
            return result
    for who, timing in timings.items():
        result[who] = timing.as_dict()
        impl = m.ours if who == "ours" else m.native
        result[who]["xla_peak_bytes"] = static_peak(impl, pass_name)
    if "ours" in timings:
        result.update(ratios(result["ours"], result["native"]))
        result["max_rel_diff"] = max_rel_diff(outputs.get("ours"), outputs.get("native"))
    return result


def flat_numpy(out: Any) -> list[np.ndarray]:
    """The arrays of an output (nested tuples, ``None`` skipped) as float64 NumPy arrays."""
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [a for item in out for a in flat_numpy(item)]
    if hasattr(out, "detach"):  # torch
        out = out.detach().cpu()
    return [np.asarray(out, dtype=np.float64)]


def max_rel_diff(ours: list[np.ndarray] | None, native: list[np.ndarray] | None) -> float | None:
    """Largest ``max|ours - native| / max|native|`` over the outputs (loss, gradients)."""
    if not ours or not native or len(ours) != len(native):
        return None
    diffs = [
        float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)) if b.size else 0.0
        for a, b in zip(ours, native, strict=True)
    ]
    return max(diffs)


def static_peak(impl: Any, pass_name: str) -> int | None:
    """The compiler's peak estimate for a pass, where the implementation has one."""
    if impl is None or impl.static_peak is None:
        return None
    try:
        return impl.static_peak(pass_name)
    except Exception:
        return None


def peak(figures: dict[str, Any]) -> tuple[int | None, str]:
    """Measured peak bytes if any, else the compiler's estimate; and a ``~`` for an estimate."""
    if figures.get("peak_bytes") is not None:
        return figures["peak_bytes"], ""
    return figures.get("xla_peak_bytes"), "~"


def ratios(ours: dict[str, Any], native: dict[str, Any]) -> dict[str, Any]:
    """Time and memory ratios ours/native, and the extra peak bytes of ours."""
    out: dict[str, Any] = {"time_ratio": ours["median_ms"] / native["median_ms"]}
    (mem_ours, _), (mem_native, _) = peak(ours), peak(native)
    if mem_ours is not None and mem_native is not None:
        out["extra_peak_bytes"] = mem_ours - mem_native
        out["memory_ratio"] = mem_ours / mem_native if mem_native else None
    return out


def run_matchup(m: Matchup, suite: Any, probe: MemoryProbe, pol: Policy) -> dict[str, Any]:
    """All figures of one (backend, mode, case) row."""
    row: dict[str, Any] = {
        "backend": m.backend,
        "mode": m.mode,
        "case": m.case.label,
        "kind": m.case.kind,
        "shape": list(m.case.shape),
        "ours": None if m.ours is None else m.ours.label,
        "native": m.native.label,
        "note": m.note,
        "memory_method": probe.method,
    }
    for pass_name in PASSES:
        row[pass_name] = time_pass(m, pass_name, suite, probe, pol)
    return row


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a worker's partial results survive if it dies later)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def worker(args: argparse.Namespace) -> int:
    """Run one backend's matchups and write ``{"rows", "versions", "skipped"}`` to a file."""
    warnings.filterwarnings("ignore", module=r"torch\._dynamo.*")
    warnings.filterwarnings("ignore", message=r".*lru_cache.*")
    suite = load_suite(args.worker)
    out: dict[str, Any] = {"rows": [], "versions": {}, "skipped": None}
    try:
        probe = suite.setup(args.device)
    except SkipBackend as exc:
        out["skipped"] = str(exc)
        write_json(args.worker_out, out)
        return 0
    out["versions"] = suite.versions()
    out["memory_method"] = probe.method
    if args.scaling:
        return scaling_worker(args, suite, probe, out)
    pol = policy(args)
    for m in suite.matchups(cases(args.quick), args.quick):
        start = time.perf_counter()
        row = run_matchup(m, suite, probe, pol)
        row["elapsed_s"] = time.perf_counter() - start
        out["rows"].append(row)
        write_json(args.worker_out, out)
        print(
            f"  {args.worker:<10} {m.mode:<8} {m.case.label:<22} {row['elapsed_s']:6.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return 0


def scaling_worker(args: argparse.Namespace, suite: Any, probe: MemoryProbe, out: dict) -> int:
    """The backend's scaling rows (and the limits its framework measures) into the file."""
    out.update(_scaling.worker_limits(args.worker, suite, args.quick))
    pol = _scaling.scaling_policy(args.quick, args.min_repeats)
    for row in _scaling.worker_rows(args.worker, suite, probe, pol, args.quick, args.max_gib):
        out["rows"].append(row)
        write_json(args.worker_out, out)
        what = f"{row['sweep']} sweep {row['case']}"
        print(f"  {args.worker:<10} {what:<32} {row['elapsed_s']:6.1f} s", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------
# Orchestrator: one worker per backend, then the table and the JSON
# ----------------------------------------------------------------------------------------------


def spawn(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the worker for backend ``name``; its results, or a note on how it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / f"{name}.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            name,
            "--worker-out",
            str(out_path),
            "--device",
            args.device,
        ]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--min-repeats", str(args.min_repeats)] if args.min_repeats else []
        cmd += ["--scaling", "--max-gib", str(args.max_gib)] if args.scaling else []
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, check=False)
        result = json.loads(out_path.read_text()) if out_path.exists() else {"rows": []}
    result["elapsed_s"] = time.perf_counter() - start
    if proc.returncode != 0:
        result["failed"] = f"worker exited with status {proc.returncode}"
    return result


def git_revision() -> str:
    """The repository's commit, with ``+dirty`` for uncommitted changes."""
    try:
        rev = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def source_digest() -> str:
    """SHA-256 over the core's and the adapters' sources: which code these figures are for,
    also while it is uncommitted."""
    digest = hashlib.sha256()
    for path in sorted([*REPO.glob("xentropy/**/*.py"), *REPO.glob("backends/**/*.py")]):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What the figures depend on, besides the code."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = next(
        (ln.split()[1] for ln in _read_lines("/proc/meminfo") if ln.startswith("MemTotal")), None
    )
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_total_gib": round(int(mem) / MIB, 1) if mem else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": version_of("numpy"),
        "xentropy": version_of("xentropy"),
        "git": git_revision(),
        "source_sha256": source_digest(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_at_start": _load_average(),
    }


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: a busy machine makes the times (not ratios) noisy."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.scaling:
        return scaling_main(args)
    if args.distributed:
        import _distributed

        return _distributed.main(args, machine_info(), write_json)
    from _report import format_notes, format_table

    start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "device": args.device,
        "quick": args.quick,
        "backends": {},
        "rows": [],
    }
    for name in args.backends:
        print(f"== {name}", file=sys.stderr, flush=True)
        result = spawn(name, args)
        report["rows"] += result.pop("rows")
        report["backends"][name] = result
    report["runtime_s"] = time.perf_counter() - start
    report["machine"]["load_average_at_end"] = _load_average()
    print(format_table(report["rows"]))
    print(format_notes(report))
    path = (
        args.json or REPO / "benchmark-results" / f"bench-{args.device}{'-quick' * args.quick}.json"
    )
    write_json(path, report)
    print(f"\nruntime {report['runtime_s']:.0f} s; JSON written to {path}")
    return 0


def scaling_main(args: argparse.Namespace) -> int:
    """The sweeps: NumPy's copy bandwidth here, each backend's rows in its own worker."""
    start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "device": args.device,
        "quick": args.quick,
        "mode": "scaling",
        "env": {"THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE")},
        "max_gib": args.max_gib,
        "copy_bandwidth": {},
        "backends": {},
        "rows": [],
    }
    if args.device == "cpu":
        report["copy_bandwidth"]["numpy"] = _scaling.numpy_copy_bandwidth(args.quick)
    for name in args.backends:
        print(f"== {name} (scaling)", file=sys.stderr, flush=True)
        result = spawn(name, args)
        report["rows"] += result.pop("rows")
        for key in ("copy_bandwidth", "matmul_rate"):
            measured = result.pop(key, None)
            if key == "copy_bandwidth" and measured:
                report[key].update(measured)
            elif measured:
                report[key] = measured
        report["backends"][name] = result
    report["runtime_s"] = time.perf_counter() - start
    report["machine"]["load_average_at_end"] = _load_average()
    _scaling.annotate(report)
    print(_scaling.format_tables(report))
    quick = "-quick" * args.quick
    path = args.json or REPO / "benchmark-results" / f"scaling-{args.device}{quick}.json"
    write_json(path, report)
    print(f"\nruntime {report['runtime_s']:.0f} s; JSON written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
