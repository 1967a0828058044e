r"""Vocabulary-parallel losses on 1, 2 and 4 gloo ranks (CPU): per-rank time and peak memory.

``python benchmarks/run.py --distributed [--quick]`` spawns, for each world size :math:`k`, a
group of :math:`k` ranks (one fresh process each, ``torch.distributed`` over gloo), each holding
its contiguous slice of :math:`V_r = \lceil V / k \rceil` classes (``torch.chunk``'s split), and
times forward+backward of, interleaved in every rank:

* ``plain``: :func:`xentropy.backends.torch.distributed.vocab_parallel_cross_entropy` on the
  rank's ``(N, V_r)`` logits; ``dtensor``: ``xentropy.backends.torch.functional.cross_entropy``
  on the same logits as a DTensor placed ``Shard(1)``; ``native``: torch's
  ``loss_parallel()`` + ``F.cross_entropy`` on that DTensor (the reference of both);
* ``fused``: :func:`~xentropy.backends.torch.distributed.vocab_parallel_linear_cross_entropy`
  of the replicated ``(N, D)`` hidden states and the rank's ``(V_r, D)`` weight rows;
  ``fused native``: ``F.linear`` of the same rows, the local ``(N, V_r)`` logits as a DTensor
  ``Shard(1)`` (what ``ColwiseParallel`` gives the output layer), ``loss_parallel()`` +
  ``F.cross_entropy``, and the ``all_reduce`` of the gradient of ``hidden`` that tensor
  parallelism adds in the backward (ours makes the same one).

Every rank runs one warm-up call of each contender, then ``repeats`` rounds that call each once
(a barrier before every call, so the ranks start together); a rank's time is the median of its
rounds, the table's the slowest rank's (a step waits for it). Peak memory is measured in each
rank as in the other modes (:class:`_timing.RssProbe`): growth of the process's peak resident
set during the first timed call, above the resident inputs; the table shows the largest rank's.

**Weight-sized terms of the fused loss.** With :math:`s` bytes a float32, a rank holds its
weight rows :math:`s V_r D` (input) and makes their gradient :math:`s V_r D`; everything else it
allocates is a block of rows of the logits (:math:`\max(2^{23}, \tfrac38 V_r' D)` elements,
:math:`V_r' = \lceil V/k \rceil`, at most :math:`N V_r`) and the ``(N, D)`` gradient of
``hidden``. So the weight-sized part falls as :math:`1/k`:

.. math::

    \text{peak}_r \approx \underbrace{s V_r D}_{\partial W_r} + c\, s\, B V_r + s N D,

and the table gives :math:`s V_r D` beside the measured peak, and their difference (the rest).

**Threads.** Every rank runs ``torch.set_num_threads(1)`` (1 rank too, so the world sizes
compare like with like). On a machine with fewer cores than ranks the ranks share cores, and
their times are indicative only (the report says so); the ratios ours/native are taken on the
same ranks under the same sharing, and memory is per process, so neither depends on it.

Every collective has gloo's timeout (``COLLECTIVE_TIMEOUT_S``) and every group a deadline: a hang
fails the run instead of blocking it.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _timing import MemoryProbe, host_probe  # noqa: E402

MIB = 1024 * 1024
FLOAT_BYTES = 4
WORLDS = (1, 2, 4)
COLLECTIVE_TIMEOUT_S = 120
PLAIN = ("plain", "dtensor", "native")
FUSED = ("fused", "fused native")
PRELOAD = [
    "torch",
    "torch.distributed.tensor",
    "torch.distributed.tensor.parallel",
    "xentropy.backends.torch.distributed",
    "xentropy.backends.torch.functional",
    "_distributed",
]
PAIRS = (("plain", "native"), ("dtensor", "native"), ("fused", "fused native"))
LABELS = {
    "plain": "vocab_parallel_cross_entropy",
    "dtensor": "functional.cross_entropy(DTensor Shard(1))",
    "native": "loss_parallel() + F.cross_entropy(DTensor Shard(1))",
    "fused": "vocab_parallel_linear_cross_entropy",
    "fused native": "F.linear + loss_parallel() + F.cross_entropy, all_reduce(grad h)",
}


@dataclass(frozen=True)
class Sizes:
    """``N x V`` logits of the plain rows, ``N x D`` hidden and ``V x D`` weight of the fused."""

    n: int
    vocab: int
    fused_n: int
    features: int
    repeats: int
    deadline_s: float


FULL = Sizes(n=1024, vocab=128256, fused_n=1024, features=256, repeats=3, deadline_s=1800)
QUICK = Sizes(n=16, vocab=128256, fused_n=16, features=64, repeats=1, deadline_s=120)


def sizes(quick: bool, min_repeats: int | None = None) -> Sizes:
    base = QUICK if quick else FULL
    if min_repeats is None:
        return base
    return Sizes(**{**asdict(base), "repeats": max(1, min_repeats)})


def split(vocab: int, world: int) -> list[int]:
    """Classes per rank: ``torch.chunk``'s (and DTensor's) ceiling rule, the core's split."""
    from xentropy._vocab_parallel import split_sizes

    return list(split_sizes(vocab, world))


def weight_sized_bytes(s: Sizes, world: int, rank: int) -> int:
    """:math:`s V_r D`: the gradient of rank ``rank``'s weight rows (the weight rows themselves
    are as large, resident before the call)."""
    return FLOAT_BYTES * split(s.vocab, world)[rank] * s.features


# ----------------------------------------------------------------------------------------------
# Rank side
# ----------------------------------------------------------------------------------------------


def _inputs(torch: Any, s: Sizes, world: int, rank: int) -> dict[str, Any]:
    """This rank's slices of the same global inputs for every world size (seeded)."""
    widths = split(s.vocab, world)
    lo, hi = sum(widths[:rank]), sum(widths[: rank + 1])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(s.n, s.vocab, generator=gen)[:, lo:hi].clone()
    target = torch.randint(0, s.vocab, (s.n,), generator=gen)
    hidden = torch.randn(s.fused_n, s.features, generator=gen)
    weight = (torch.randn(s.vocab, s.features, generator=gen) * s.features**-0.5)[lo:hi].clone()
    fused_target = torch.randint(0, s.vocab, (s.fused_n,), generator=gen)
    gc.collect()
    return {
        "logits": logits,
        "target": target,
        "hidden": hidden,
        "weight": weight,
        "fused_target": fused_target,
        "split": widths,
    }


def _contenders(torch: Any, s: Sizes, world: int, rank: int) -> dict[str, Callable[[], Any]]:
    """Forward+backward of each contender on this rank's inputs; each returns the loss and
    the local gradients (plain tensors)."""
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.distributed.tensor import DTensor, Replicate, Shard, init_device_mesh
    from torch.distributed.tensor.parallel import loss_parallel
    from xentropy.backends.torch import functional
    from xentropy.backends.torch.distributed import (
        vocab_parallel_cross_entropy,
        vocab_parallel_linear_cross_entropy,
    )

    x = _inputs(torch, s, world, rank)
    mesh = init_device_mesh("cpu", (world,))
    logits = x["logits"].requires_grad_()
    dlogits = DTensor.from_local(logits.detach(), mesh, [Shard(1)], run_check=False)
    dlogits.requires_grad_()
    dtarget = DTensor.from_local(x["target"], mesh, [Replicate()], run_check=False)
    fused_dtarget = DTensor.from_local(x["fused_target"], mesh, [Replicate()], run_check=False)
    hidden = x["hidden"].requires_grad_()
    weight = x["weight"].requires_grad_()

    def plain() -> Any:
        loss = vocab_parallel_cross_entropy(logits, x["target"], split=x["split"])
        return loss, torch.autograd.grad(loss, (logits,))[0]

    def dtensor() -> Any:
        loss = functional.cross_entropy(dlogits, dtarget)
        grad = torch.autograd.grad(loss, (dlogits,))[0]
        return loss.to_local(), grad.to_local()

    def native() -> Any:
        with loss_parallel():
            loss = F.cross_entropy(dlogits, dtarget)
            grad = torch.autograd.grad(loss, (dlogits,))[0]
        return loss.to_local(), grad.to_local()

    def fused() -> Any:
        loss = vocab_parallel_linear_cross_entropy(
            hidden, weight, x["fused_target"], split=x["split"]
        )
        return loss, *torch.autograd.grad(loss, (hidden, weight))

    def fused_native() -> Any:
        local = F.linear(hidden, weight)
        z = DTensor.from_local(local, mesh, [Shard(1)], run_check=False)
        with loss_parallel():
            loss = F.cross_entropy(z, fused_dtarget)
            grad_h, grad_w = torch.autograd.grad(loss, (hidden, weight))
        dist.all_reduce(grad_h)  # the replicated input's gradient, summed (as TP's backward)
        return loss.to_local(), grad_h, grad_w

    return {
        "plain": plain,
        "dtensor": dtensor,
        "native": native,
        "fused": fused,
        "fused native": fused_native,
    }


def _max_rel_diff(a: list[Any], b: list[Any]) -> float:
    """Largest ``max|a - b| / max|b|`` over paired outputs (float64)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = x.detach().double(), y.detach().double()
        scale = max(float(y.abs().max()), 1e-30) if y.numel() else 1.0
        worst = max(worst, float((x - y).abs().max()) / scale if y.numel() else 0.0)
    return worst


def _race(
    contenders: dict[str, Callable[[], Any]], repeats: int, probe: MemoryProbe, barrier: Callable
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """One warm-up call each, then ``repeats`` interleaved rounds, every call after a barrier;
    the timings, and the warm-up losses and their agreement with native (``PAIRS``).

    The number of rounds is fixed (not taken from the warm-up as in ``_timing.race``): every rank
    must make the same calls, or their collectives would not pair up.
    """
    out: dict[str, dict[str, Any]] = {}
    values: dict[str, list[Any]] = {}
    for name, fn in contenders.items():
        barrier()
        start = time.perf_counter()
        values[name] = list(fn())
        out[name] = {"warmup_ms": (time.perf_counter() - start) * 1e3, "times_ms": []}
    agreement = {
        "loss": {name: float(v[0].detach()) for name, v in values.items()},
        "max_rel_diff": {
            ours: _max_rel_diff(values[ours], values[native])
            for ours, native in PAIRS
            if ours in values and native in values
        },
    }
    del values  # the warm-up outputs go before the timed rounds
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_ in range(repeats):
            for name, fn in contenders.items():
                if round_ == 0:
                    gc.collect()
                    barrier()
                    probe.start()
                else:
                    barrier()
                start = time.perf_counter()
                result = fn()
                elapsed = time.perf_counter() - start
                del result
                if round_ == 0:
                    out[name]["peak_bytes"] = probe.stop()
                out[name]["times_ms"].append(elapsed * 1e3)
    finally:
        if gc_was_enabled:
            gc.enable()
    for figures in out.values():
        figures["median_ms"] = statistics.median(figures["times_ms"])
    return out, agreement


def rank_main(rank: int, world: int, port: int, out: Path, quick: bool, repeats: int) -> None:
    """One rank: join the group, time every contender, write ``{"contenders", ...}``."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
        timeout=timeout,
    )  # fmt: skip
    result: dict[str, Any] = {"rank": rank, "world": world, "threads": torch.get_num_threads()}
    try:
        s = Sizes(**{**asdict(sizes(quick)), "repeats": repeats})
        probe = host_probe()
        contenders = _contenders(torch, s, world, rank)
        gc.freeze()  # torch's many objects out of the collector's way: gc.collect() takes ms
        figures, agreement = _race(contenders, s.repeats, probe, dist.barrier)
        result["memory_method"] = probe.method
        result["contenders"] = figures
        result.update(agreement)
    except Exception:
        result["crash"] = traceback.format_exc()
    finally:
        out.write_text(json.dumps(result))
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# Orchestrator side
# ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _context() -> Any:
    """Ranks forked from a server that imported torch once (a fresh interpreter per rank would
    import it per rank: about 10 s each on a loaded 2-core machine)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def run_group(world: int, s: Sizes, quick: bool) -> dict[str, Any]:
    """Run ``world`` ranks, wait up to the deadline (then kill them), collect their files."""
    context = _context()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        paths = [Path(tmp) / f"rank{r}.json" for r in range(world)]
        procs = [
            context.Process(target=rank_main, args=(r, world, port, paths[r], quick, s.repeats))
            for r in range(world)
        ]
        start = time.monotonic()
        for proc in procs:
            proc.start()
        deadline = start + s.deadline_s
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        hung = [r for r, proc in enumerate(procs) if proc.is_alive()]
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        ranks = [json.loads(p.read_text()) if p.exists() else None for p in paths]
        codes = [proc.exitcode for proc in procs]
    group: dict[str, Any] = {"world": world, "ranks": ranks, "elapsed_s": time.monotonic() - start}
    problems = []
    if hung:
        problems.append(f"ranks {hung} still ran after {s.deadline_s:g} s (killed): a hang")
    if any(codes):
        problems.append(f"exit codes {codes}")
    problems += [f"rank {r['rank']} crashed:\n{r['crash']}" for r in ranks if r and "crash" in r]
    if any(r is None for r in ranks):
        problems.append("a rank wrote no result")
    if problems:
        group["failed"] = "; ".join(problems)
    else:
        group["summary"] = summarize(world, s, ranks)
    return group


def summarize(world: int, s: Sizes, ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per contender: the slowest rank's median, the largest rank's peak; ratios and models."""
    out: dict[str, Any] = {"world": world, "vocab_per_rank": split(s.vocab, world)[0]}
    for name in (*PLAIN, *FUSED):
        per_rank = [r["contenders"][name] for r in ranks]
        peaks = [f["peak_bytes"] for f in per_rank]
        out[name] = {
            "median_ms": max(f["median_ms"] for f in per_rank),
            "median_ms_per_rank": [f["median_ms"] for f in per_rank],
            "peak_bytes": None if None in peaks else max(peaks),
            "peak_bytes_per_rank": peaks,
        }
    for ours, native in PAIRS:
        out[ours]["time_ratio"] = out[ours]["median_ms"] / out[native]["median_ms"]
        a, b = out[ours]["peak_bytes"], out[native]["peak_bytes"]
        out[ours]["memory_ratio"] = None if a is None or not b else a / b
        out[ours]["max_rel_diff"] = max(r["max_rel_diff"][ours] for r in ranks)
    weight_sized = [weight_sized_bytes(s, world, r) for r in range(world)]
    out["fused"]["weight_sized_bytes"] = max(weight_sized)
    out["fused"]["weight_sized_bytes_per_rank"] = weight_sized
    peak = out["fused"]["peak_bytes"]
    out["fused"]["rest_bytes"] = None if peak is None else peak - max(weight_sized)
    out["loss"] = ranks[0]["loss"]
    return out


def _mib(x: int | None) -> str:
    return "-" if x is None else f"{x / MIB:.0f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_tables(report: dict[str, Any]) -> str:
    """Plain and fused tables (one row per world size) and the notes."""
    rows = [g["summary"] for g in report["groups"] if "summary" in g]
    s = report["sizes"]
    plain = [
        "| ranks | V/rank | ours ms | DTensor ms | loss_parallel ms | ours/native | DTensor/native "
        "| MiB ours | MiB DTensor | MiB native |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        p, d, n = r["plain"], r["dtensor"], r["native"]
        plain.append(
            f"| {r['world']} | {r['vocab_per_rank']} | {p['median_ms']:.0f} | {d['median_ms']:.0f} "
            f"| {n['median_ms']:.0f} | {_ratio(p['time_ratio'])} | {_ratio(d['time_ratio'])} "
            f"| {_mib(p['peak_bytes'])} | {_mib(d['peak_bytes'])} | {_mib(n['peak_bytes'])} |"
        )
    fused = [
        "| ranks | V/rank | ours ms | native ms | ours/native | MiB ours | MiB native "
        "| ∂W MiB (s·V_r·D) | ours - ∂W MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        f, n = r["fused"], r["fused native"]
        fused.append(
            f"| {r['world']} | {r['vocab_per_rank']} | {f['median_ms']:.0f} | {n['median_ms']:.0f} "
            f"| {_ratio(f['time_ratio'])} | {_mib(f['peak_bytes'])} | {_mib(n['peak_bytes'])} "
            f"| {_mib(f['weight_sized_bytes'])} | {_mib(f['rest_bytes'])} |"
        )
    lines = [
        f"plain: N x V = {s['n']} x {s['vocab']} logits, sharded over the ranks' classes",
        *plain,
        "",
        f"fused: N x D x V = {s['fused_n']} x {s['features']} x {s['vocab']}, weight rows sharded",
        *fused,
        "",
        "ms: forward+backward, median of each rank's interleaved rounds, slowest rank; ratio "
        "ours/native (< 1: ours faster);",
        "MiB: peak RSS growth during one call above the resident inputs, largest rank; native "
        "= loss_parallel() + F.cross_entropy (fused: after F.linear of the same rows).",
        f"threads: 1 per rank; {report['machine']['cpus_usable']} CPUs usable: "
        + (
            "ranks beyond that share cores, so their times are indicative only (ratios and memory "
            "are not affected)."
            if max(report["worlds"]) > report["machine"]["cpus_usable"]
            else "every rank has a core."
        ),
    ]
    load = report["machine"].get("load_average_at_start")
    if load and load[0] > report["machine"]["cpus_usable"]:
        lines.append(
            f"WARNING: load average {load[0]:.1f} at the start: other processes compete, the "
            "times are under load (ratios taken on the same ranks are fairer than the times)."
        )
    for g in report["groups"]:
        if "failed" in g:
            lines.append(f"[{g['world']} ranks] FAILED: {g['failed']}")
        else:
            summary = g["summary"]
            diffs = {k: summary[k]["max_rel_diff"] for k, _ in PAIRS}
            worst = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
            lines.append(
                f"[{g['world']} ranks] {g['elapsed_s']:.0f} s; max rel. diff vs native: {worst}"
            )
    return "\n".join(lines)


def main(args: argparse.Namespace, machine: dict[str, Any], write: Callable) -> int:
    """The ``--distributed`` mode of ``run.py``: every world size, the tables, the JSON."""
    start = time.perf_counter()
    s = sizes(args.quick, args.min_repeats)
    report: dict[str, Any] = {
        "machine": machine,
        "mode": "distributed",
        "quick": args.quick,
        "sizes": asdict(s),
        "worlds": list(WORLDS),
        "threads_per_rank": 1,
        "backend": "gloo",
        "labels": LABELS,
        "groups": [],
    }
    for world in WORLDS:
        print(f"== {world} gloo rank(s)", file=sys.stderr, flush=True)
        report["groups"].append(run_group(world, s, args.quick))
    report["runtime_s"] = time.perf_counter() - start
    report["machine"]["load_average_at_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    print(format_tables(report))
    path = (
        args.json
        or HERE.parent / "benchmark-results" / f"distributed-cpu{'-quick' * args.quick}.json"
    )
    write(path, report)
    print(f"\nruntime {report['runtime_s']:.0f} s; JSON written to {path}")
    return 1 if any("failed" in g for g in report["groups"]) else 0
