"""Where the time of a torch row goes: the ATen ops of ours and of native, pass by pass.

    python benchmarks/profile_torch.py [--kind sparse|dense|sigmoid] [--shape N C] [--device cpu]
        [--calls K] [--threads T] [--overhead-only] [--overhead-shape N C]

For each implementation and pass it prints the ops (calls, self time) and counts the *full-size
passes*: ops that read or write an array with as many elements as the logits. On a CPU, and on
a GPU for large shapes, the loss is memory-bound and its time follows that count. Times are per
call, averaged over ``--calls`` profiled calls (one call alone is at the mercy of page faults
and of other processes). Also prints the per-call overhead on a tiny input (Python, dispatch and
validation; launches on a GPU), and how much of it is Python outside the ATen ops: medians of
interleaved repeats of the process's CPU time (``time.process_time``, one intra-op thread unless
``--threads``), so that a busy machine's waits for a core do not count; the ATen share comes from
the profiler, whose own cost it includes, so "the rest" is a lower bound on the Python.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cases import Case
from _torch_suite import TorchSuite


def full_size_ops(prof: Any, elements: int, calls: int = 1) -> dict[str, list[float]]:
    """``{op: [calls, self ms, full-size calls]}`` per call of a profile of ``calls`` calls
    taken with ``record_shapes``."""
    table: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        entry = table[event.name]
        entry[0] += 1 / calls
        entry[1] += (event.self_device_time_total or event.self_cpu_time_total) / 1e3 / calls
        sizes = [math.prod(s) for s in (event.input_shapes or []) if s]
        entry[2] += any(size >= elements for size in sizes) / calls
    return table


def report(label: str, fn: Any, sync: Any, elements: int, calls: int = 10) -> None:
    """Profile ``calls`` calls of ``fn`` (after a warm-up); print its op table per call."""
    import torch.profiler as tp

    sync(fn())
    activities = [tp.ProfilerActivity.CPU]
    with tp.profile(activities=activities, record_shapes=True) as prof:
        for _ in range(calls):
            sync(fn())
    table = full_size_ops(prof, elements, calls)
    rows = sorted(table.items(), key=lambda kv: -kv[1][1])
    full = round(sum(v[2] for _, v in rows))
    aten_ms = sum(v[1] for _, v in rows)
    print(f"\n{label}: {round(sum(v[0] for v in table.values()))} aten calls, "
          f"{full} touching a full-size array, {aten_ms:.3f} ms in ATen ops per call")  # fmt: skip
    for name, (count, ms, big) in rows[:25]:
        print(f"  {name:<40} {count:6.1f} calls  {ms:9.3f} ms self  {big:5.1f} full-size")


def overhead(suite: TorchSuite, kind: str, shape: tuple[int, ...], rounds: int = 21) -> None:
    """CPU time of a call on a small input: what every call pays besides the arithmetic.

    Ours and native alternate, ``rounds`` times 50 calls each (medians; the ratio is the median
    of the per-round ratios, which a change of load between rounds does not move).
    """
    shape = shape if kind != "sigmoid" else (math.prod(shape),)
    impls = pairs(suite, Case(kind, shape))
    for pass_name in ("fwd", "fwd_bwd"):
        fns = {name: getattr(impl, pass_name) for name, impl in impls}
        for fn in fns.values():
            for _ in range(20):
                suite.sync(fn())
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.process_time()
                for _ in range(50):
                    suite.sync(fn())
                times[name].append((time.process_time() - start) / 50)
        for name, fn in fns.items():
            per_call = statistics.median(times[name]) * 1e6
            aten_us = _aten_time(fn, suite.sync) * 1e3
            label = "x".join(map(str, shape))
            print(f"  {label} input, {name:<7} {pass_name:<8} {per_call:8.1f} us per call, "
                  f"{aten_us:6.1f} us of it in ATen ops, {per_call - aten_us:6.1f} us the rest "
                  "(Python, autograd)")  # fmt: skip
        ratios = [o / n for o, n in zip(times["ours"], times["native"], strict=True)]
        print(f"  {'':>{len('x'.join(map(str, shape)))}} input, ours / native {pass_name:<8} "
              f"{statistics.median(ratios):.2f}")  # fmt: skip


def _aten_time(fn: Any, sync: Any, calls: int = 50) -> float:
    """Milliseconds per call spent inside ATen ops (self time), from the profiler.

    Each op counts its median self time, times its calls per call: the first events of a
    profile (the profiler's start) and a busy machine's stalls otherwise dominate a sum of
    microsecond ops.
    """
    import torch.profiler as tp

    sync(fn())
    with tp.profile(activities=[tp.ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            sync(fn())
    durations: dict[str, list[float]] = defaultdict(list)
    for event in prof.events():
        if event.name.startswith("aten::"):
            durations[event.name].append(event.self_device_time_total or event.self_cpu_time_total)
    return sum(len(d) / calls * statistics.median(d) for d in durations.values()) / 1e3


def steps(suite: TorchSuite, impl: Any, repeats: int = 5) -> None:
    """Split ours' forward+backward into the core's check, forward and backward (the rest is
    the adapter and autograd), by wrapping them with timers for a few calls."""
    import xentropy.ops as ops

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            suite.sync(out)
            spent[name] += time.perf_counter() - start
            return out

        return wrapper

    patched = [(ops, "checked_operator", ops.checked_operator)]
    ops.checked_operator = timed("core check (validation)", ops.checked_operator)
    for cls in {getattr(ops, n) for n in ops.__all__ if hasattr(getattr(ops, n), "backward")}:
        for method in ("forward", "backward"):
            patched.append((cls, method, getattr(cls, method)))
            setattr(cls, method, timed(f"core {method}", getattr(cls, method)))
    try:
        suite.sync(impl.fwd_bwd())
        spent.clear()
        start = time.perf_counter()
        for _ in range(repeats):
            suite.sync(impl.fwd_bwd())
        total = time.perf_counter() - start
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)
    for name, seconds in sorted(spent.items()):
        print(f"  ours fwd_bwd: {name:<26} {seconds / repeats * 1e3:9.2f} ms")
    rest = total - sum(spent.values())
    print(f"  ours fwd_bwd: {'adapter + autograd':<26} {rest / repeats * 1e3:9.2f} ms")


def pairs(suite: TorchSuite, case: Case) -> list[tuple[str, Any]]:
    """``[("ours", Impl), ("native", Impl)]`` for ``case`` in eager mode."""
    matchup = next(m for m in suite.matchups((case,), quick=False) if m.mode == "eager")
    return [("ours", matchup.ours), ("native", matchup.native)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("sparse", "dense", "sigmoid"), default="sparse")
    parser.add_argument("--shape", type=int, nargs="+", default=[4096, 32000])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--calls", type=int, default=10, help="profiled calls per table")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--overhead-only", action="store_true", help="only the small-input rows")
    parser.add_argument("--overhead-shape", type=int, nargs="+", default=[64, 10])
    args = parser.parse_args()
    suite = TorchSuite()
    suite.setup(args.device)
    if args.threads:
        suite.torch.set_num_threads(args.threads)
    if args.overhead_only:
        suite.torch.set_num_threads(args.threads or 1)
        overhead(suite, args.kind, tuple(args.overhead_shape))
        return 0
    case = Case(args.kind, tuple(args.shape))
    for name, impl in pairs(suite, case):
        for pass_name in ("fwd", "fwd_bwd"):
            report(f"{name} {pass_name} {case.label}", getattr(impl, pass_name), suite.sync,
                   case.elements, args.calls)  # fmt: skip
    print()
    steps(suite, dict(pairs(suite, case))["ours"])
    threads = suite.torch.get_num_threads()
    suite.torch.set_num_threads(args.threads or 1)
    overhead(suite, args.kind, tuple(args.overhead_shape))
    suite.torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
