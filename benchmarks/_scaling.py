r"""Scaling rows: how the cost of ours and native grows with the work, beside the memory limit.

Three sweeps (``python benchmarks/run.py --scaling``), forward+backward, float32:

* ``N``: class-index targets, ``N`` from 1k to 64k rows at ``C = 32000`` classes;
* ``C``: ``N x C`` fixed at :math:`2^{24}` elements (64 MiB of logits), ``C`` from 10 to 256k;
* ``V``: the fused linear cross entropy at ``N x D = 1024 x 256`` (the linear benchmark's CPU
  shape), vocabulary ``V`` from 32k to 256k, ours against ``F.linear`` + ``F.cross_entropy``.

Each row gives the time per element of the logits and the *effective bandwidth*: the bytes that
any implementation must move, over the time. With ``s = 4`` bytes a float32 and ``t`` bytes a
class index (8 for int64, 4 for JAX's int32),

.. math::

    B_{\mathrm{softmax}} = \underbrace{sNC}_{\text{forward reads } z}
        + \underbrace{sNC}_{\text{backward reads } z}
        + \underbrace{sNC}_{\text{writes } \nabla z} + tN,
    \qquad
    B_{\mathrm{linear}} = \underbrace{s(ND + VD)}_{\text{reads } h,\ W}
        + \underbrace{s(ND + VD)}_{\text{writes } \nabla h,\ \nabla W} + tN,

and the linear rows also count the matrix products that no implementation avoids,
:math:`F = 6NDV` (logits, :math:`\nabla h`, :math:`\nabla W`; a fused loss that recomputes
the logits does :math:`8NDV`). The memory-bound limit is the machine's copy bandwidth,
measured once per run: :math:`2S / t_{\mathrm{copy}}` for a copy of ``S`` bytes (256 MiB,
best of several) with NumPy's ``np.copyto`` and with torch's ``Tensor.copy_``; the larger is
the limit. The linear rows are set beside a measured matrix-product rate too (``torch.mm`` of
two square float32 matrices, :math:`2n^3` flops).

A row whose estimated peak memory exceeds ``--max-gib`` is skipped and says so; the estimate
(:func:`estimated_peak`) is set from native torch's measured peaks, and the measured peak (RSS
growth during one call, plus the inputs) is kept in the JSON beside it.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from _cases import Case, make_inputs
from _timing import MemoryProbe, Policy, race

GIB = 1024**3
MIB = 1024**2
FLOAT_BYTES = 4
INDEX_BYTES = 8
SWEEPS = ("N", "C", "V")
SWEEPS_OF = {"torch": ("N", "C"), "numpy": ("N", "C"), "jax": ("N", "C"), "linear": ("V",)}
BACKENDS = tuple(SWEEPS_OF)
DEFAULT_BACKENDS = ("torch", "linear")
COPY_BYTES = 256 * MIB
PEAK_SLACK = 1.1  # RSS is page-granular and sees allocator slack: flag only a clear miss


@dataclass(frozen=True)
class Sizes:
    """The sweeps' sizes: full (the issue's) or ``--quick`` (a smoke run)."""

    n_rows: tuple[int, ...]
    n_classes: int
    c_elements: int
    c_classes: tuple[int, ...]
    linear_nd: tuple[int, int]
    v_vocab: tuple[int, ...]
    copy_bytes: int


FULL = Sizes(
    n_rows=tuple(1024 << k for k in range(7)),  # 1k .. 64k
    n_classes=32000,
    c_elements=2**24,
    c_classes=(10, 100, 1000, 10000, 32000, 128000, 256000),
    linear_nd=(1024, 256),
    v_vocab=(32000, 64000, 128256, 256000),
    copy_bytes=COPY_BYTES,
)
QUICK = Sizes(
    n_rows=(64, 128, 256, 512, 1024),
    n_classes=8000,
    c_elements=2**20,
    c_classes=FULL.c_classes,
    linear_nd=(128, 64),
    v_vocab=FULL.v_vocab,
    copy_bytes=64 * MIB,
)


def sizes(quick: bool) -> Sizes:
    return QUICK if quick else FULL


def points(sweep: str, quick: bool) -> tuple[Case, ...]:
    """The cases of one sweep: ``sparse (N, C)`` for ``N`` and ``C``, ``linear (N, D, V)``."""
    s = sizes(quick)
    if sweep == "N":
        return tuple(Case("sparse", (n, s.n_classes)) for n in s.n_rows)
    if sweep == "C":
        return tuple(Case("sparse", (max(1, round(s.c_elements / c)), c)) for c in s.c_classes)
    if sweep == "V":
        n, d = s.linear_nd
        return tuple(Case("linear", (n, d, v)) for v in s.v_vocab)
    raise ValueError(f"unknown sweep {sweep!r}")


def scaling_policy(quick: bool, min_repeats: int | None) -> Policy:
    """Up to 15 repeats for small rows, 3 (the floor) for those of seconds; quick: 0.1 s, 2 to 5."""
    base = Policy(2, 5, 0.1) if quick else Policy(3, 15, 1.5)
    if min_repeats is None:
        return base
    return Policy(min_repeats, max(min_repeats, base.max_repeats), base.target_s)


# ----------------------------------------------------------------------------------------------
# The models: bytes and flops that must be spent, memory a row needs
# ----------------------------------------------------------------------------------------------


def logits_elements(case: Case) -> int:
    """Elements of the ``(N, C)`` or ``(N, V)`` logits."""
    return case.elements


def min_bytes(case: Case, index_bytes: int = INDEX_BYTES) -> int:
    """Bytes read and written at the least by a forward+backward (see the module docstring)."""
    if case.kind == "linear":
        n, d, v = case.shape
        return 2 * FLOAT_BYTES * (n * d + v * d) + index_bytes * n
    n, c = case.shape
    return 3 * FLOAT_BYTES * n * c + index_bytes * n


def min_flops(case: Case) -> int | None:
    """Flops of the matrix products a forward+backward needs (linear only)."""
    if case.kind != "linear":
        return None
    n, d, v = case.shape
    return 6 * n * d * v


def input_bytes(case: Case) -> int:
    if case.kind == "linear":
        n, d, v = case.shape
        return FLOAT_BYTES * (n * d + v * d) + INDEX_BYTES * n
    n, c = case.shape
    return FLOAT_BYTES * n * c + INDEX_BYTES * n


def estimated_peak(case: Case) -> int:
    """Inputs, the logits-sized arrays native holds at once, and (linear) ``∇h``, ``∇W``.

    Three for the softmax rows (the saved log-softmax, its gradient, the logits' gradient),
    four for the unfused linear ones (the logits too, while the log-softmax is made): what
    RSS growth showed for native torch, the hungrier contender.
    """
    if case.kind == "linear":
        n, d, v = case.shape
        working = 4 * FLOAT_BYTES * n * v + FLOAT_BYTES * (n * d + v * d)
    else:
        working = 3 * FLOAT_BYTES * logits_elements(case)
    return input_bytes(case) + working


def skip_reason(case: Case, max_gib: float) -> str | None:
    """Why a row is not run (its estimated peak is over the budget), or None."""
    need = estimated_peak(case)
    if need <= max_gib * GIB:
        return None
    return f"estimated peak {need / GIB:.2f} GiB > --max-gib {max_gib:g}"


# ----------------------------------------------------------------------------------------------
# The machine's limits
# ----------------------------------------------------------------------------------------------


def best_rate(
    work: float, call: Callable[[], Any], sync: Callable[[], None], repeats: int
) -> float:
    """``work`` over the best of ``repeats`` timed calls (after one untimed call)."""
    call()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        best = min(best, time.perf_counter() - start)
    return work / best


def numpy_copy_bandwidth(quick: bool) -> dict[str, Any]:
    """GB/s of ``np.copyto`` between two float32 arrays: ``2 S / t`` (read and write)."""
    size = sizes(quick).copy_bytes
    src = np.ones(size // FLOAT_BYTES, dtype=np.float32)
    dst = np.empty_like(src)
    rate = best_rate(2 * size, lambda: np.copyto(dst, src), lambda: None, 3 if quick else 7)
    return {"gb_per_s": rate / 1e9, "bytes": size, "how": "np.copyto, best of several"}


def torch_copy_bandwidth(torch: Any, device: str, quick: bool) -> dict[str, Any]:
    """GB/s of ``dst.copy_(src)`` on ``device``: ``2 S / t``."""
    size = sizes(quick).copy_bytes
    src = torch.ones(size // FLOAT_BYTES, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    rate = best_rate(
        2 * size, lambda: dst.copy_(src), _torch_sync(torch, device), 3 if quick else 7
    )
    return {
        "gb_per_s": rate / 1e9,
        "bytes": size,
        "how": f"torch Tensor.copy_ on {device}, {torch.get_num_threads()} threads",
    }


def torch_matmul_rate(torch: Any, device: str, quick: bool) -> dict[str, Any]:
    """GFLOP/s of ``torch.mm`` of two ``n x n`` float32 matrices: ``2 n^3 / t``."""
    n = 1024 if quick else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    rate = best_rate(
        2 * n**3, lambda: torch.mm(a, b), _torch_sync(torch, device), 3 if quick else 5
    )
    return {"gflop_per_s": rate / 1e9, "how": f"torch.mm {n}x{n} float32, best of several"}


def _torch_sync(torch: Any, device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else lambda: None


def machine_limits(report: dict[str, Any]) -> dict[str, Any]:
    """The copy bandwidth that bounds the rows (the larger measurement; a GPU's own on cuda)."""
    copies = report.get("copy_bandwidth", {})
    usable = {
        k: v["gb_per_s"] for k, v in copies.items() if report["device"] == "cpu" or k != "numpy"
    }
    limit = max(usable.values(), default=None)
    source = max(usable, key=usable.get) if usable else None
    rate = report.get("matmul_rate", {}).get("gflop_per_s")
    return {"copy_gb_per_s": limit, "copy_source": source, "matmul_gflop_per_s": rate}


# ----------------------------------------------------------------------------------------------
# Worker side: the contenders of one point, timed
# ----------------------------------------------------------------------------------------------


class Agreement:
    """Compares ours' and native's warm-up outputs on a strided sample of each array.

    A sample (at most ``2^16`` entries an array), not the arrays: holding two float64 copies of
    a gigabyte gradient would double the row's memory.
    """

    SAMPLE = 2**16

    def __init__(self) -> None:
        self.samples: dict[str, list[np.ndarray]] = {}

    def see(self, who: str, out: Any) -> None:
        self.samples[who] = [self._sample(a) for a in _arrays(out)]

    def max_rel_diff(self) -> float | None:
        ours, native = self.samples.get("ours"), self.samples.get("native")
        if not ours or not native or len(ours) != len(native):
            return None
        return max(
            float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)) if b.size else 0.0
            for a, b in zip(ours, native, strict=True)
        )

    def _sample(self, array: Any) -> np.ndarray:
        if hasattr(array, "detach"):  # torch: sample on the device, copy the sample only
            array = array.detach()
        flat = array.reshape(-1) if hasattr(array, "reshape") else np.ravel(array)
        stride = max(1, int(flat.shape[0]) // self.SAMPLE)
        part = flat[::stride]
        if hasattr(part, "detach"):
            part = part.cpu().numpy()
        return np.asarray(part, dtype=np.float64)


class FaultCounter:
    """Minor page faults of each call of ``fn`` (the whole process: framework threads too).

    A fresh large array is first touched page by page; where the allocator gets 4 KiB pages
    (torch's CPU allocator unless ``THP_MEM_ALLOC_ENABLE=1``), those faults, not the memory
    bandwidth, can bound a row. Counting costs one ``getrusage`` a call.
    """

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.counts: list[int] = []

    def __call__(self) -> Any:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        out = self.fn()
        self.counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return out

    def median_timed(self) -> float | None:
        """Median over the timed calls (the first, the warm-up, left out)."""
        return statistics.median(self.counts[1:]) if len(self.counts) > 1 else None


def _arrays(out: Any) -> list[Any]:
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [a for item in out for a in _arrays(item)]
    return [out]


@dataclass(frozen=True)
class Contenders:
    """Ours and native forward+backward on one point's inputs, with labels and a note."""

    ours: Callable[[], Any]
    native: Callable[[], Any]
    labels: dict[str, str]
    note: str = ""
    index_bytes: int = INDEX_BYTES


def torch_sparse(suite: Any, case: Case) -> Contenders:
    """``xentropy.backends.torch.functional.cross_entropy`` against ``F.cross_entropy``."""
    import torch.nn.functional as F
    from _torch_suite import ADAPTER_MODULES, adapter_or_core

    torch = suite.torch
    arrays = make_inputs(case)
    logits = torch.from_numpy(arrays.pop("logits")).to(suite.device).requires_grad_()
    targets = torch.from_numpy(arrays.pop("targets")).to(suite.device)
    fn, label, is_adapter, note = adapter_or_core(
        "cross_entropy", "softmax_cross_entropy", ADAPTER_MODULES
    )

    def autograd(loss: Callable[..., Any]) -> Callable[[], Any]:
        def fwd_bwd() -> Any:
            value = loss(logits, targets)
            return value, torch.autograd.grad(value, (logits,))[0]

        return fwd_bwd

    if is_adapter:
        ours = autograd(fn)
    else:
        import xentropy

        both = xentropy.value_and_grad(fn)
        plain = logits.detach()

        def ours() -> Any:
            return both(plain, targets)

    return Contenders(
        ours, autograd(F.cross_entropy), {"ours": label, "native": "F.cross_entropy"}, note
    )


def torch_linear(suite: Any, case: Case) -> Contenders:
    """``linear_cross_entropy`` (adapter, else core) against ``F.linear`` + ``F.cross_entropy``."""
    import torch.nn.functional as F
    from _torch_suite import ADAPTER_MODULES, adapter_or_core

    torch = suite.torch
    arrays = make_inputs(case)
    hidden = torch.from_numpy(arrays.pop("hidden")).to(suite.device).requires_grad_()
    weight = torch.from_numpy(arrays.pop("weight")).to(suite.device).requires_grad_()
    targets = torch.from_numpy(arrays.pop("targets")).to(suite.device)
    fn, label, is_adapter, note = adapter_or_core(
        "linear_cross_entropy", "linear_cross_entropy", ADAPTER_MODULES
    )

    def autograd(loss: Callable[..., Any]) -> Callable[[], Any]:
        def fwd_bwd() -> Any:
            value = loss(hidden, weight, targets)
            return value, *torch.autograd.grad(value, (hidden, weight))

        return fwd_bwd

    def unfused(h: Any, w: Any, y: Any) -> Any:
        return F.cross_entropy(F.linear(h, w), y)

    if is_adapter:
        ours = autograd(fn)
    else:
        import xentropy

        both = xentropy.value_and_grad(fn)
        h, w = hidden.detach(), weight.detach()

        def ours() -> Any:
            return both(h, w, targets)

    labels = {"ours": label, "native": "F.linear + F.cross_entropy"}
    return Contenders(ours, autograd(unfused), labels, note)


def numpy_sparse(suite: Any, case: Case) -> Contenders:
    """The core's ``softmax_cross_entropy`` + ``value_and_grad`` against hand-written NumPy."""
    from _numpy_suite import NATIVE

    import xentropy

    arrays = make_inputs(case)
    logits, targets = arrays["logits"], arrays["targets"]
    both = xentropy.value_and_grad(xentropy.softmax_cross_entropy)
    native = NATIVE["sparse"][1]
    labels = {"ours": "xentropy.softmax_cross_entropy", "native": "numpy sparse"}
    return Contenders(lambda: both(logits, targets), lambda: native(logits, targets), labels)


def jax_sparse(suite: Any, case: Case) -> Contenders:
    """``xentropy.backends.jax`` against optax, both ``jax.jit(jax.value_and_grad(...))``."""
    arrays = make_inputs(case)
    args = (
        suite.jax.device_put(arrays["logits"], suite.dev),
        suite.jax.device_put(arrays["targets"].astype("int32"), suite.dev),
    )
    fn, label, native_note = suite.native("sparse")
    native = suite.impl(label, fn, args)
    ours, note = suite.ours("sparse", args)
    labels = {"ours": ours.label, "native": native.label}
    notes = "; ".join(n for n in (native_note, note) if n)
    return Contenders(ours.fwd_bwd, native.fwd_bwd, labels, notes, index_bytes=4)


BUILDERS: dict[str, Callable[[Any, Case], Contenders]] = {
    "torch": torch_sparse,
    "linear": torch_linear,
    "numpy": numpy_sparse,
    "jax": jax_sparse,
}


def describe(sweep: str, case: Case) -> dict[str, Any]:
    """The JSON fields naming one point."""
    row: dict[str, Any] = {"sweep": sweep, "case": case.label, "shape": list(case.shape)}
    if case.kind == "linear":
        row.update(zip(("N", "D", "V"), case.shape, strict=True))
    else:
        row.update(zip(("N", "C"), case.shape, strict=True))
    row["elements"] = logits_elements(case)
    row["input_bytes"] = input_bytes(case)
    row["estimated_peak_bytes"] = estimated_peak(case)
    return row


def time_point(backend: str, suite: Any, case: Case, probe: MemoryProbe, pol: Policy) -> dict:
    """Race ours and native on one point; the timings, labels, agreement, or the error."""
    result: dict[str, Any] = {}
    try:
        contenders = BUILDERS[backend](suite, case)
        agreement = Agreement()
        faults = {"ours": FaultCounter(contenders.ours), "native": FaultCounter(contenders.native)}
        timings = race(
            faults,
            suite.sync,
            probe,
            pol,
            agreement.see,
        )
    except Exception as exc:  # a failed row must not cost the sweep
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    result.update(
        ours={**timings["ours"].as_dict(), "minor_faults": faults["ours"].median_timed()},
        native={**timings["native"].as_dict(), "minor_faults": faults["native"].median_timed()},
        labels=contenders.labels,
        note=contenders.note,
        time_ratio=timings["ours"].median_ms / timings["native"].median_ms,
        max_rel_diff=agreement.max_rel_diff(),
        bytes_min=min_bytes(case, contenders.index_bytes),
        flops_min=min_flops(case),
    )
    return result


def worker_rows(
    backend: str, suite: Any, probe: MemoryProbe, pol: Policy, quick: bool, max_gib: float
) -> Iterator[dict[str, Any]]:
    """Every point of the backend's sweeps, one row each (a skipped row says why)."""
    for sweep in SWEEPS_OF[backend]:
        for case in points(sweep, quick):
            row = {"backend": backend, **describe(sweep, case)}
            reason = skip_reason(case, max_gib)
            start = time.perf_counter()
            if reason is None:
                row["fwd_bwd"] = time_point(backend, suite, case, probe, pol)
                gc.collect()  # the point's arrays go before the next point's are made
            else:
                row["skipped"] = reason
            row["elapsed_s"] = time.perf_counter() - start
            yield row


def worker_limits(backend: str, suite: Any, quick: bool) -> dict[str, Any]:
    """The limits this worker measures: torch's copy bandwidth (and matmul rate, ``linear``)."""
    if backend not in ("torch", "linear"):
        return {}
    out: dict[str, Any] = {
        "copy_bandwidth": {"torch": torch_copy_bandwidth(suite.torch, suite.device, quick)}
    }
    if backend == "linear":
        out["matmul_rate"] = torch_matmul_rate(suite.torch, suite.device, quick)
    gc.collect()
    return out


# ----------------------------------------------------------------------------------------------
# Orchestrator side: derived figures and the tables
# ----------------------------------------------------------------------------------------------


def derive(row: dict[str, Any], limits: dict[str, Any]) -> None:
    """Add ns/element, GB/s, fraction of the copy bandwidth (and GFLOP/s) per contender."""
    result = row.get("fwd_bwd") or {}
    if "ours" not in result:
        return
    copy, mm = limits.get("copy_gb_per_s"), limits.get("matmul_gflop_per_s")
    for who in ("ours", "native"):
        seconds = result[who]["median_ms"] / 1e3
        figures = {
            "ns_per_element": seconds * 1e9 / row["elements"],
            "gb_per_s": result["bytes_min"] / seconds / 1e9,
        }
        figures["fraction_of_copy"] = figures["gb_per_s"] / copy if copy else None
        if result.get("flops_min"):
            figures["gflop_per_s"] = result["flops_min"] / seconds / 1e9
            figures["fraction_of_matmul"] = figures["gflop_per_s"] / mm if mm else None
        result[who].update(figures)
    peaks = [result[who].get("peak_bytes") for who in ("ours", "native")]
    if all(p is not None for p in peaks):
        row["measured_peak_bytes"] = row["input_bytes"] + max(peaks)


def annotate(report: dict[str, Any]) -> None:
    """The run's limits, and every row's derived figures."""
    report["limits"] = machine_limits(report)
    for row in report["rows"]:
        derive(row, report["limits"])


COLUMNS = (
    ("backend", 7), ("N", 6), ("size", 6),
    ("ours ms", 9), ("native ms", 9), ("ratio", 5),
    ("ns/el o/n", 11), ("GB/s o/n", 11), ("% copy o/n", 11), ("kfault o/n", 11),
)  # fmt: skip
FLOP_COLUMNS = (("GFLOP/s o/n", 11), ("% mm o/n", 9))
SIZE_NAME = {"N": "C", "C": "C", "V": "V"}


def _pair(result: dict[str, Any], key: str, spec: str, scale: float = 1.0) -> str:
    values = [result.get(who, {}).get(key) for who in ("ours", "native")]
    return "/".join("-" if v is None else format(v * scale, spec) for v in values)


def _count(n: int) -> str:
    """``65536`` as ``64k`` (powers of two from 1024 on), ``32000`` as it is."""
    return f"{n // 1024}k" if n >= 1024 and n & (n - 1) == 0 else str(n)


def row_cells(row: dict[str, Any]) -> list[str]:
    size = row.get("C", row.get("V"))
    cells = [row["backend"], _count(row["N"]), _count(size)]
    result = row.get("fwd_bwd") or {}
    if row.get("skipped") or "ours" not in result:
        return [*cells, f"skipped: {row['skipped']}" if row.get("skipped") else "ERROR"]
    cells += [
        f"{result['ours']['median_ms']:.1f}",
        f"{result['native']['median_ms']:.1f}",
        f"{result['time_ratio']:.2f}",
        _pair(result, "ns_per_element", ".2f"),
        _pair(result, "gb_per_s", ".1f"),
        _pair(result, "fraction_of_copy", ".0f", 100.0),
        _pair(result, "minor_faults", ".0f", 1e-3),
    ]
    if row["sweep"] == "V":
        cells += [
            _pair(result, "gflop_per_s", ".0f"),
            _pair(result, "fraction_of_matmul", ".0f", 100),
        ]
    return cells


def _line(cells: list[str], columns: tuple[tuple[str, int], ...]) -> str:
    """Cells padded to the column widths; a skipped row's reason runs on past its column."""
    padded = (
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, (_, width)) in enumerate(zip(cells, columns, strict=False))
    )
    return "  ".join(padded)


TITLES = {
    "N": "N sweep: rows N at C = {C} (class-index targets, float32, forward+backward)",
    "C": "C sweep: N x C = {E} elements fixed (class-index targets, float32, forward+backward)",
    "V": "V sweep: fused linear cross entropy at N x D = {N} x {D}, vocabulary V (fwd+bwd)",
}


def format_tables(report: dict[str, Any]) -> str:
    """One table per sweep, then the limits and the notes."""
    quick = report.get("quick", False)
    s = sizes(quick)
    keys = {"C": s.n_classes, "E": s.c_elements, "N": s.linear_nd[0], "D": s.linear_nd[1]}
    blocks = []
    for sweep in SWEEPS:
        rows = [r for r in report["rows"] if r["sweep"] == sweep]
        if not rows:
            continue
        columns = COLUMNS + (FLOP_COLUMNS if sweep == "V" else ())
        columns = tuple(
            (SIZE_NAME[sweep], w) if name == "size" else (name, w) for name, w in columns
        )
        header = _line([name for name, _ in columns], columns)
        lines = [TITLES[sweep].format(**keys), header, "-" * len(header)]
        lines += [_line(row_cells(row), columns) for row in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join([*blocks, format_notes(report)])


def format_notes(report: dict[str, Any]) -> str:
    """The limits and how they were measured, the byte model, skipped rows, errors."""
    limits = report.get("limits", {})
    lines = [
        "",
        "ms: median forward+backward after warm-up, ours and native interleaved; ratio = o/n;",
        "ns/el: time per element of the logits; GB/s: the bytes any implementation must move",
        "(logits read twice, gradient written, targets; linear: h, W read, their gradients",
        "written) over the time; % copy: that over the machine's copy bandwidth (the memory-bound",
        "limit); kfault: minor page faults a call, thousands (4 KiB first touches of fresh",
        "arrays); linear: GFLOP/s of the 6NDV products, % mm: of torch.mm's measured rate.",
    ]
    thp = report.get("env", {}).get("THP_MEM_ALLOC_ENABLE")
    lines.append(f"THP_MEM_ALLOC_ENABLE={thp or 'unset'} (torch's CPU allocator: huge pages if 1)")
    for name, copy in report.get("copy_bandwidth", {}).items():
        how = f"{copy['how']}, {copy['bytes'] // MIB} MiB"
        lines.append(f"copy bandwidth [{name}]: {copy['gb_per_s']:.1f} GB/s ({how})")
    if limits.get("copy_gb_per_s"):
        lines.append(f"limit: {limits['copy_gb_per_s']:.1f} GB/s ({limits['copy_source']})")
    if report.get("matmul_rate"):
        mm = report["matmul_rate"]
        lines.append(f"matmul rate: {mm['gflop_per_s']:.0f} GFLOP/s ({mm['how']})")
    machine = report.get("machine", {})
    start, end = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    if start:
        lines.append(f"load average (1, 5, 15 min): start {_loads(start)}, end {_loads(end)}")
    for name, result in report.get("backends", {}).items():
        status = result.get("skipped") or result.get("failed") or "ok"
        versions = ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())
        lines.append(f"[{name}] {status}; {result.get('elapsed_s', 0):.0f} s; {versions}")
    seen = set()
    for row in report["rows"]:
        result = row.get("fwd_bwd") or {}
        texts = [result.get("note"), result.get("error")]
        measured, estimated = row.get("measured_peak_bytes"), row["estimated_peak_bytes"]
        if measured is not None and measured > PEAK_SLACK * estimated:
            texts.append(
                f"measured peak {measured / GIB:.2f} GiB over the estimate {estimated / GIB:.2f} "
                "GiB (raise the estimate in _scaling.estimated_peak)"
            )
        diff = result.get("max_rel_diff")
        if diff is not None and diff > 1e-3:
            texts.append(f"values differ from native by {diff:.1e} (relative, sampled)")
        for text in texts:
            if text and (row["backend"], text) not in seen:
                seen.add((row["backend"], text))
                lines.append(f"    {row['backend']} {row['case']}: {text}")
    return "\n".join(lines)


def _loads(loads: list[float] | None) -> str:
    return "-" if not loads else ", ".join(f"{x:.2f}" for x in loads)
