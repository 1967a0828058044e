"""Running the matrix: cells = case x backend x dtype x device x {value, gradient}.

For every (backend, device, dtype, case) the runner converts the case's float64 inputs to the
backend in the dtype, reads them back (the *dtype-rounded* inputs), evaluates the float64
reference on those, evaluates the backend, and compares the value and the gradients with the
reference under the tolerance of :mod:`~xentropy.conformance.tolerances`. An adapter is also
compared with its framework's own loss (``against="native"``) with twice the tolerance (each may
be off the exact value by the tolerance); a larger difference fails only when the adapter is the
one off the reference (a native that is itself off the reference, e.g. computing in float16,
is reported in the cell's detail and passes).

A sample of cases is also run through :func:`~xentropy.conformance.precise.check_reference`,
which validates the float64 reference against 80-digit arithmetic.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from queue import Empty
from typing import Any

import numpy as np

from . import precise
from .backends import BACKENDS, FLOAT_DTYPES, Backend, is_builtin, select_backends
from .cases import Case, generate_cases
from .reference import compute_dtype, reference
from .tolerances import Comparison, compare, format_ulps

QUANTITIES = ("value", "gradient")

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class RunConfig:
    """What to run; None selects everything available (default backends only)."""

    backends: Sequence[str] | None = None
    dtypes: Sequence[str] | None = None
    devices: Sequence[str] | None = None
    variants: Sequence[str] | None = None
    seed: int = 0
    quick: bool = False
    check_reference: bool = True
    jax_cache: str | None = None  # directory of JAX's persistent compilation cache


@dataclass(frozen=True)
class CellResult:
    """One cell: a value or a gradient of one case on one backend, dtype and device."""

    case: str
    variant: str
    option_set: str
    layout: str
    target_kind: str
    value_range: str
    backend: str
    dtype: str
    device: str
    quantity: str  # "value" or "gradient"
    against: str  # "reference" or "native"
    status: str  # "pass", "fail" or "skip"
    max_abs: float | None = None
    max_rel: float | None = None
    max_ulps: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """Everything a report needs."""

    config: RunConfig
    cells: list[CellResult] = field(default_factory=list)
    reference_checks: list[precise.ReferenceCheck] = field(default_factory=list)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def checked(self) -> list[CellResult]:
        return [c for c in self.cells if c.status != "skip"]

    @property
    def failed(self) -> list[CellResult]:
        return [c for c in self.cells if c.status == "fail"]

    @property
    def failed_reference_checks(self) -> list[precise.ReferenceCheck]:
        return [c for c in self.reference_checks if not c.passed]

    @property
    def ok(self) -> bool:
        """No failing cell and a validated reference."""
        return not self.failed and not self.failed_reference_checks


def _reference_key(case: Case, rounded: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    return (case.id, *((k, v.dtype.str, v.shape, v.tobytes()) for k, v in sorted(rounded.items())))


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class _Evaluator:
    """Runs the cells of one backend, with a reference cache shared by all backends."""

    def __init__(self) -> None:
        self.references: dict[tuple[Any, ...], tuple[np.ndarray, tuple[np.ndarray, ...]]] = {}

    def expected(self, case: Case, rounded: Mapping[str, np.ndarray], dtype: str):
        key = (compute_dtype(dtype), *_reference_key(case, rounded))
        if key not in self.references:
            self.references[key] = reference(case.variant, rounded, case.options, dtype)
        return self.references[key]

    def cells(self, backend: Backend, case: Case, dtype: str, device: str) -> list[CellResult]:
        base = {
            "case": case.id,
            "variant": case.variant,
            "option_set": case.option_set,
            "layout": case.layout,
            "target_kind": case.target_kind,
            "value_range": case.value_range,
            "backend": backend.name,
            "dtype": dtype,
            "device": device,
        }
        native = backend.kind == "adapter" and backend.native
        targets = ("reference", "native") if native else ("reference",)

        def all_cells(status: str, detail: str) -> list[CellResult]:
            return [
                CellResult(**base, quantity=q, against=t, status=status, detail=detail)
                for t in targets
                for q in QUANTITIES
            ]

        skip = backend.skip_reason(case, dtype)
        if skip is not None:
            return all_cells("skip", skip)
        framework = backend.framework
        with framework.placed(device):
            try:
                arrays = {
                    name: framework.asarray(v, dtype if v.dtype.kind == "f" else None, device)
                    for name, v in case.arrays.items()
                }
            except Exception as exc:
                return all_cells("skip", f"cannot make {dtype} inputs: {_error_text(exc)}")
            made = {
                framework.dtype_name(arrays[n])
                for n, v in case.arrays.items()
                if v.dtype.kind == "f"
            }
            if made != {dtype}:
                return all_cells("skip", f"the backend made {sorted(made)} for {dtype}")
            rounded = {name: framework.to_numpy(a) for name, a in arrays.items()}
            expected = self.expected(case, rounded, dtype)
            try:
                result = backend.evaluate(case, arrays, dtype)
            except Exception as exc:
                return all_cells("fail", _error_text(exc))
            checks = self._compare(backend, result, expected, dtype)
            cells = [
                self._cell(base, q, "reference", c) for q, c in zip(QUANTITIES, checks, strict=True)
            ]
            if native:
                cells += self._native_cells(
                    backend, case, arrays, dtype, base, result, expected, checks
                )
        return cells

    def _compare(self, backend: Backend, result, expected, dtype: str) -> list[Comparison]:
        value, grads = result
        expected_value, expected_grads = expected
        comparisons = [self._compare_one(backend, value, expected_value, dtype)]
        if len(grads) != len(expected_grads):
            comparisons.append(
                Comparison(
                    False,
                    np.inf,
                    np.inf,
                    np.inf,
                    f"{len(grads)} gradients, expected {len(expected_grads)}",
                )
            )
            return comparisons
        parts = [
            self._compare_one(backend, g, e, dtype)
            for g, e in zip(grads, expected_grads, strict=True)
        ]
        comparisons.append(_combine(parts))
        return comparisons

    @staticmethod
    def _compare_one(backend: Backend, actual: Any, expected: np.ndarray, dtype: str) -> Comparison:
        framework = backend.framework
        try:
            made = framework.dtype_name(actual)
            values = framework.to_numpy(actual)
        except Exception as exc:
            return Comparison(
                False, np.inf, np.inf, np.inf, f"unreadable result: {_error_text(exc)}"
            )
        if made != dtype:
            return Comparison(False, np.inf, np.inf, np.inf, f"result dtype {made}, not {dtype}")
        return compare(values, expected, dtype)

    @staticmethod
    def _cell(
        base: dict[str, str],
        quantity: str,
        against: str,
        c: Comparison,
        status: str | None = None,
        detail: str | None = None,
    ) -> CellResult:
        return CellResult(
            **base,
            quantity=quantity,
            against=against,
            status=status or ("pass" if c.passed else "fail"),
            max_abs=c.max_abs,
            max_rel=c.max_rel,
            max_ulps=c.max_ulps,
            detail=c.detail if detail is None else detail,
        )

    def _native_cells(
        self,
        backend: Backend,
        case: Case,
        arrays: Mapping[str, Any],
        dtype: str,
        base: dict[str, str],
        result: tuple[Any, tuple[Any, ...]],
        expected: tuple[np.ndarray, tuple[np.ndarray, ...]],
        adapter_checks: Sequence[Comparison],
    ) -> list[CellResult]:
        """The adapter against the framework's own loss, value and gradients."""
        try:
            native = backend.evaluate_native(case, arrays, dtype)
            problem = "no native loss to compare with"
        except Exception as exc:
            native, problem = None, f"the native loss raised {_error_text(exc)}"
        if native is None:
            return [
                CellResult(**base, quantity=q, against="native", status="skip", detail=problem)
                for q in QUANTITIES
            ]
        framework = backend.framework
        cells = []
        sides = [
            ((result[0],), (native[0],), (expected[0],)),
            (result[1], native[1], expected[1]),
        ]
        for quantity, (ours, theirs, exact), own in zip(
            QUANTITIES, sides, adapter_checks, strict=True
        ):
            try:
                ours_np = [framework.to_numpy(x) for x in ours]
                theirs_np = [framework.to_numpy(x) for x in theirs]
            except Exception as exc:
                cells.append(
                    CellResult(
                        **base,
                        quantity=quantity,
                        against="native",
                        status="skip",
                        detail=f"unreadable native result: {_error_text(exc)}",
                    )
                )
                continue
            if len(theirs_np) != len(ours_np):
                cells.append(
                    CellResult(
                        **base,
                        quantity=quantity,
                        against="native",
                        status="skip",
                        detail="the native loss gives other gradients",
                    )
                )
                continue
            # each side may be off the exact value by the tolerance: twice it between them
            between = _combine(
                [compare(o, t, dtype, factor=2.0) for o, t in zip(ours_np, theirs_np, strict=True)]
            )
            if between.passed:
                cells.append(self._cell(base, quantity, "native", between))
                continue
            native_error = _combine(
                [compare(t, e, dtype) for t, e in zip(theirs_np, exact, strict=True)]
            )
            if own.passed and not native_error.passed:
                detail = (
                    f"differs from the native loss, which is off the reference by "
                    f"{format_ulps(native_error.max_ulps)} ulp ({native_error.detail})"
                )
                cells.append(self._cell(base, quantity, "native", between, "pass", detail))
            else:
                cells.append(self._cell(base, quantity, "native", between))
        return cells


def _combine(parts: Sequence[Comparison]) -> Comparison:
    failing = [p.detail for p in parts if not p.passed]
    return Comparison(
        passed=not failing,
        max_abs=max((p.max_abs for p in parts), default=0.0),
        max_rel=max((p.max_rel for p in parts), default=0.0),
        max_ulps=max((p.max_ulps for p in parts), default=0.0),
        detail="; ".join(failing),
    )


def _versions(backends: Sequence[Backend]) -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for module in ("xentropy", "numpy", "scipy", "mpmath"):
        versions[module] = getattr(
            sys.modules.get(module) or __import__(module), "__version__", "?"
        )
    for backend in backends:
        module = sys.modules.get(backend.framework.module)
        if module is not None:
            versions[backend.framework.module] = str(getattr(module, "__version__", "?"))
    return versions


Work = Sequence[tuple[Backend, Sequence[str] | None]]


def _run_part(
    config: RunConfig,
    work: Work,
    check_reference: bool,
    progress: Progress | None,
    on_total: Callable[[int], None] | None = None,
) -> RunResult:
    """Run ``work`` (backends, each restricted to some dtypes or not) and, when asked, the
    mpmath check, in this process."""
    cases = generate_cases(config.seed, variants=config.variants, quick=config.quick)
    result = RunResult(config=config)
    plan: list[tuple[Backend, str, str]] = []
    if config.jax_cache and any(b.framework.module in ("jax", "keras") for b, _ in work):
        _use_jax_cache(config.jax_cache)
    for backend, only in work:
        problem = backend.missing()
        if problem is not None:
            result.backends[backend.name] = {"status": problem, "kind": backend.kind}
            continue
        devices = [d for d in backend.devices() if config.devices is None or d in config.devices]
        dtypes = [
            d
            for d in backend.dtypes()
            if (config.dtypes is None or d in config.dtypes) and (only is None or d in only)
        ]
        info = result.backends.setdefault(
            backend.name, {"status": "ok", "kind": backend.kind, "devices": devices, "dtypes": []}
        )
        info["dtypes"] += dtypes
        plan += [(backend, device, dtype) for device in devices for dtype in dtypes]
    samples = precise.sample_cases(cases) if check_reference else []
    total = len(plan) * len(cases) + len(samples)
    if on_total is not None:
        on_total(total)
    done = 0
    evaluator = _Evaluator()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # NumPy's divide-by-zero warnings on purpose-built inputs (log 0) are noise here
        warnings.simplefilter("ignore")
        for backend, device, dtype in plan:
            for case in cases:
                result.cells += evaluator.cells(backend, case, dtype, device)
                done += 1
                if progress is not None:
                    progress(done, total, f"{backend.name} {dtype} {device}")
        for case in samples:
            result.reference_checks.append(precise.check_reference(case, config.seed))
            done += 1
            if progress is not None:
                progress(done, total, "reference vs mpmath")
    result.environment = _versions([b for b, _ in work])
    return result


def _use_jax_cache(directory: str) -> None:
    """JAX's persistent compilation cache in ``directory``, for every compilation: most of a
    JAX backend's time is XLA compiling small programs, which a second run then reads back."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# seconds a backend's full run took on 2 CPU cores (all dtypes), for spreading the work over
# worker processes; eager JAX compiles every new (op, shape, dtype), about 50 ms each
COSTS = {
    "numpy": 4.0,
    "array_api_strict": 3.0,
    "torch": 17.0,
    "jax": 116.0,
    "tensorflow": 32.0,
    "torch-adapter": 24.0,
    "jax-adapter": 180.0,
    "tensorflow-adapter": 11.0,
    "keras-adapter": 15.0,
}
REFERENCE_CHECK = ("reference check", "")
Unit = tuple[tuple[str, str], ...]  # (backend name, dtype) pairs run by one process together


def _units(backends: Sequence[Backend], config: RunConfig) -> list[tuple[float, Unit]]:
    """Work units: the backends of one framework in one dtype (they share JAX's compilation
    cache when in one process), and the mpmath check; each with its estimated cost."""
    units: dict[tuple[str, str], list[str]] = {}
    costs: dict[tuple[str, str], float] = {}
    for backend in backends:
        for dtype in backend.dtypes():
            if config.dtypes is not None and dtype not in config.dtypes:
                continue
            key = (backend.framework.module, dtype)
            units.setdefault(key, []).append(backend.name)
            costs[key] = costs.get(key, 0.0) + COSTS.get(backend.name, 20.0) / 4
    out = [(costs[k], tuple((name, k[1]) for name in names)) for k, names in units.items()]
    if config.check_reference:
        out.append((5.0, (REFERENCE_CHECK,)))
    return out


def _groups(units: list[tuple[float, Unit]], jobs: int) -> list[list[tuple[str, str]]]:
    """Units spread over ``jobs`` groups of similar cost (longest first)."""
    groups: list[list[tuple[str, str]]] = [[] for _ in range(max(1, min(jobs, len(units))))]
    loads = [0.0] * len(groups)
    for cost, unit in sorted(units, key=lambda u: -u[0]):
        k = loads.index(min(loads))
        groups[k] += unit
        loads[k] += cost
    return [g for g in groups if g]


def _worker(config: RunConfig, items: list[tuple[str, str]], worker: int, queue: Any) -> None:
    """Body of a worker process: runs its (backend, dtype) items and sends progress and
    results."""
    try:
        work = [(BACKENDS[name], (dtype,)) for name, dtype in items if name != REFERENCE_CHECK[0]]
        part = _run_part(
            config,
            work,
            REFERENCE_CHECK in items,
            lambda done, total, label: queue.put(("progress", worker, done, label)),
            lambda total: queue.put(("total", worker, total, "")),
        )
        queue.put(("done", worker, part, ""))
    except BaseException:
        queue.put(("error", worker, traceback.format_exc(), ""))


def _run_parallel(
    config: RunConfig,
    backends: Sequence[Backend],
    groups: list[list[tuple[str, str]]],
    progress: Progress | None,
) -> RunResult:
    context = multiprocessing.get_context("spawn")  # no fork after a framework started threads
    # the workers share one GPU: JAX must not grab 75% of it in each of them
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    queue = context.Queue()
    processes = [
        context.Process(target=_worker, args=(config, group, k, queue), daemon=True)
        for k, group in enumerate(groups)
    ]
    for process in processes:
        process.start()
    totals: list[int | None] = [None] * len(groups)
    done = [0] * len(groups)
    parts: dict[int, RunResult] = {}
    try:
        while len(parts) < len(groups):
            try:
                kind, worker, payload, label = queue.get(timeout=1.0)
            except Empty:
                dead = [k for k, p in enumerate(processes) if k not in parts and not p.is_alive()]
                if dead:
                    raise RuntimeError(
                        f"conformance worker for {groups[dead[0]]} died "
                        f"(exit code {processes[dead[0]].exitcode})"
                    ) from None
                continue
            if kind == "total":
                totals[worker] = payload
            elif kind == "progress":
                done[worker] = payload
                if progress is not None and None not in totals:  # totals known from all
                    progress(sum(done), sum(t or 0 for t in totals), label)
            elif kind == "done":
                parts[worker] = payload
            else:
                raise RuntimeError(f"conformance worker for {groups[worker]} failed:\n{payload}")
    finally:
        for process in processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
    order = {b.name: i for i, b in enumerate(backends)}
    dtype_order = {d: i for i, d in enumerate(FLOAT_DTYPES)}
    result = RunResult(config=config)
    for k in range(len(groups)):
        part = parts[k]
        result.cells += part.cells
        result.reference_checks += part.reference_checks
        result.environment.update(part.environment)
        for name, info in part.backends.items():
            merged = result.backends.setdefault(
                name, {**info, "dtypes": []} if "dtypes" in info else dict(info)
            )
            if "dtypes" in info:
                merged["dtypes"] = sorted(
                    {*merged["dtypes"], *info["dtypes"]}, key=dtype_order.__getitem__
                )
    # stable: each (backend, dtype) ran in one process, in case order
    result.cells.sort(key=lambda c: (order[c.backend], dtype_order[c.dtype]))
    result.backends = dict(sorted(result.backends.items(), key=lambda kv: order[kv[0]]))
    return result


def run(config: RunConfig, progress: Progress | None = None, *, jobs: int = 1) -> RunResult:
    """Run the matrix described by ``config``.

    ``progress(done, total, label)`` is called as cells complete. With ``jobs > 1`` the work
    (the backends of one framework in one dtype at a time) is spread over that many worker
    processes, started with ``spawn``: call it under ``if __name__ == "__main__":`` in a
    script. A backend added at run time with
    :func:`~xentropy.conformance.backends.register_backend` (unknown to a fresh process) makes
    the run serial.

    Raises:
        ValueError: for unknown backend or variant names.
    """
    started = time.perf_counter()
    generate_cases(config.seed, variants=config.variants, quick=True)  # validates the names
    backends = select_backends(config.backends)
    groups = _groups(_units(backends, config), jobs)
    if jobs > 1 and len(groups) > 1 and all(is_builtin(b) for b in backends):
        result = _run_parallel(config, backends, groups, progress)
    else:
        result = _run_part(config, [(b, None) for b in backends], config.check_reference, progress)
    result.seconds = time.perf_counter() - started
    return result
