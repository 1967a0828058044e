"""Where the time of a torch row goes: the ATen ops of ours and of native, pass by pass.

    python benchmarks/profile_torch.py [--kind sparse|dense|sigmoid] [--shape N C] [--device cpu]

For each implementation and pass it prints the ops (calls, self time) and counts the *full-size
passes*: ops that read or write an array with as many elements as the logits. On a CPU, and on
a GPU for large shapes, the loss is memory-bound and its time follows that count. Also prints
the per-call overhead on a tiny input (Python, dispatch and validation; launches on a GPU).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cases import Case
from _torch_suite import TorchSuite


def full_size_ops(prof: Any, elements: int) -> dict[str, list[float]]:
    """``{op: [calls, self ms, full-size calls]}`` from a profile taken with ``record_shapes``."""
    table: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        entry = table[event.name]
        entry[0] += 1
        entry[1] += (event.self_device_time_total or event.self_cpu_time_total) / 1e3
        sizes = [math.prod(s) for s in (event.input_shapes or []) if s]
        entry[2] += any(size >= elements for size in sizes)
    return table


def report(label: str, fn: Any, sync: Any, elements: int) -> None:
    """Profile one call of ``fn`` (after a warm-up) and print its op table."""
    import torch.profiler as tp

    sync(fn())
    activities = [tp.ProfilerActivity.CPU]
    with tp.profile(activities=activities, record_shapes=True) as prof:
        sync(fn())
    table = full_size_ops(prof, elements)
    rows = sorted(table.items(), key=lambda kv: -kv[1][1])
    full = sum(int(v[2]) for _, v in rows if v[1] > 0 or v[2])
    print(f"\n{label}: {sum(int(v[0]) for v in table.values())} aten calls, "
          f"{full} touching a full-size array")  # fmt: skip
    for name, (calls, ms, big) in rows[:25]:
        print(f"  {name:<40} {int(calls):4d} calls  {ms:9.2f} ms self  {int(big):3d} full-size")


def overhead(suite: TorchSuite, kind: str) -> None:
    """Median time of a call on a 8x4 input: what every call pays before any arithmetic."""
    for name, impl in pairs(suite, Case(kind, (8, 4) if kind != "sigmoid" else (32,))):
        for pass_name in ("fwd", "fwd_bwd"):
            fn = getattr(impl, pass_name)
            for _ in range(20):
                suite.sync(fn())
            times = []
            for _ in range(200):
                start = time.perf_counter()
                suite.sync(fn())
                times.append(time.perf_counter() - start)
            times.sort()
            print(f"  tiny input, {name:<7} {pass_name:<8} {times[100] * 1e6:8.1f} us per call")


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
    args = parser.parse_args()
    suite = TorchSuite()
    suite.setup(args.device)
    case = Case(args.kind, tuple(args.shape))
    for name, impl in pairs(suite, case):
        for pass_name in ("fwd", "fwd_bwd"):
            report(f"{name} {pass_name} {case.label}", getattr(impl, pass_name), suite.sync,
                   case.elements)  # fmt: skip
    print()
    steps(suite, dict(pairs(suite, case))["ours"])
    overhead(suite, args.kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
