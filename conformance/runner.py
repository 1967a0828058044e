"""Running the matrix: cells = case x backend x dtype x device x quantity.

The quantities (:data:`QUANTITIES`, per case :func:`case_quantities`): the ``value``, the
``gradient`` of the prediction (``xentropy.value_and_grad`` on the core columns, the framework's
autodiff on the adapters), and, by the framework's autodiff on every column that has one, the
``target_gradient`` (floating targets; ``p`` of KL and cross entropy) and ``hvp``, the
Hessian-vector product of the prediction (second-order cases, float32 and float64).

For every (backend, device, dtype, case) the runner converts the case's float64 inputs to the
backend in the dtype, reads them back (the *dtype-rounded* inputs), evaluates the float64
reference on those, evaluates the backend, and compares the value and the gradients with the
reference under the tolerance of :mod:`~xentropy.conformance.tolerances`. An adapter is also
compared with its framework's own loss (``against="native"``) with twice the tolerance (each may
be off the exact value by the tolerance); a larger difference fails only when the adapter is the
one off the reference (a native that is itself off the reference, e.g. computing in float16,
is reported in the cell's detail and passes). A native loss that computes a dtype in a narrower
one (``tf.compat.v1.losses`` reduces float64 in float32) is held to that one's tolerance, in its
own column and in the comparisons with it (:meth:`Backend.precision`). Derivative cells compare
only where the derivative exists, and a Hessian-vector product beyond its finite-difference
reference's own uncertainty (:class:`Allowance`).

A sample of cases is also run through :func:`~xentropy.conformance.precise.check_reference`,
which validates the float64 reference against 80-digit arithmetic.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from queue import Empty
from typing import Any

import numpy as np

from . import environment, precise
from ._native_log import keep_native_logs_quiet
from .backends import BACKENDS, FLOAT_DTYPES, Backend, is_builtin, select_backends
from .cases import Case, generate_cases
from .reference import compute_dtype, hvp_reference, reference, target_gradient_reference
from .tolerances import HVP_STEP, Comparison, compare, format_ulps, hvp_slack, summed_terms

FIRST_ORDER = ("value", "gradient")
# gradients of the floating targets (and p of the information measures); Hessian-vector products
# of the prediction (second order)
DERIVATIVES = ("target_gradient", "hvp")
QUANTITIES = (*FIRST_ORDER, *DERIVATIVES)

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
    cases: Sequence[str] | None = None  # case ids, or fnmatch patterns of them
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
    max_ratio: float | None = None  # worst error over its tolerance (above 1: fails)
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


@dataclass(frozen=True)
class Allowance:
    """How one expected array is compared: only where ``defined`` (None: everywhere; a
    derivative that does not exist is not compared), beyond the reference's own absolute
    uncertainty ``slack`` (:func:`~xentropy.conformance.tolerances.hvp_slack`), and under the
    tolerance of its ``quantity`` and the case's ``terms``
    (:func:`~xentropy.conformance.tolerances.tolerance`)."""

    defined: np.ndarray | None = None
    slack: float = 0.0
    quantity: str = "value"
    terms: int = 1

    def masked(self, actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both arrays with the entries outside ``defined`` set to 0 (unchanged when
        ``defined`` is None or the shapes differ, which the comparison then reports)."""
        if self.defined is None or np.shape(actual) != np.shape(self.defined):
            return actual, expected
        return np.where(self.defined, actual, 0.0), np.where(self.defined, expected, 0.0)


def case_quantities(case: Case) -> tuple[str, ...]:
    """The quantities ``case`` has cells for: the value and the prediction's gradient always,
    the targets' gradient where it has floating targets, ``H v`` for a second-order case."""
    targets = ("target_gradient",) if case.target_grad_of else ()
    second = ("hvp",) if case.second_order else ()
    return (*FIRST_ORDER, *targets, *second)


def _reference_key(case: Case, rounded: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    return (case.id, *((k, v.dtype.str, v.shape, v.tobytes()) for k, v in sorted(rounded.items())))


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class _Evaluator:
    """Runs the cells of one backend, with a reference cache shared by all backends."""

    def __init__(self) -> None:
        self.references: dict[tuple[Any, ...], Any] = {}

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self.references:
            self.references[key] = compute()
        return self.references[key]

    def expected(self, case: Case, rounded: Mapping[str, np.ndarray], dtype: str):
        key = (compute_dtype(dtype), *_reference_key(case, rounded))
        return self._cached(key, lambda: reference(case.variant, rounded, case.options, dtype))

    def expected_derivative(
        self,
        case: Case,
        rounded: Mapping[str, np.ndarray],
        dtype: str,
        quantity: str,
        directions: Mapping[str, np.ndarray],
    ) -> tuple[tuple[np.ndarray, ...], tuple[Allowance, ...]]:
        """``(expected arrays, how each is compared)`` of a derivative quantity."""
        along = {f"direction/{k}": v for k, v in directions.items()} if quantity == "hvp" else {}
        key = (quantity, compute_dtype(dtype), *_reference_key(case, {**rounded, **along}))

        terms = summed_terms(case.arrays)

        def compute() -> tuple[tuple[np.ndarray, ...], tuple[Allowance, ...]]:
            if quantity == "target_gradient":
                grads, defined = target_gradient_reference(
                    case.variant, rounded, case.options, case.target_grad_of, dtype
                )
                return grads, tuple(
                    Allowance(defined=d, quantity=quantity, terms=terms) for d in defined
                )
            products = hvp_reference(
                case.variant, rounded, case.options, case.grad_of, directions, HVP_STEP, dtype
            )
            return products, tuple(
                Allowance(slack=hvp_slack(p), quantity=quantity, terms=terms) for p in products
            )

        return self._cached(key, compute)

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
        against = ("reference", "native") if native else ("reference",)
        derivatives = case_quantities(case)[len(FIRST_ORDER) :]

        def cells_of(quantities: Sequence[str], status: str, detail: str) -> list[CellResult]:
            return [
                CellResult(**base, quantity=q, against=t, status=status, detail=detail)
                for t in against
                for q in quantities
            ]

        def all_cells(status: str, detail: str) -> list[CellResult]:
            cells = cells_of(FIRST_ORDER, status, detail)
            for quantity in derivatives:
                cells += cells_of((quantity,), status, detail)
            return cells

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
                directions = {
                    name: framework.asarray(v, dtype, device) for name, v in case.directions.items()
                }
            except Exception as exc:
                return all_cells("skip", f"cannot make {dtype} inputs: {_error_text(exc)}")
            made = {
                framework.dtype_name(arrays[n])
                for n, v in case.arrays.items()
                if v.dtype.kind == "f"
            } | {framework.dtype_name(v) for v in directions.values()}
            if made != {dtype}:
                return all_cells("skip", f"the backend made {sorted(made)} for {dtype}")
            rounded = {name: framework.to_numpy(a) for name, a in arrays.items()}
            expected = self.expected(case, rounded, dtype)
            try:
                result = backend.evaluate(case, arrays, dtype)
            except Exception as exc:
                cells = cells_of(FIRST_ORDER, "fail", _error_text(exc))
            else:
                checks = self._compare(backend, result, expected, dtype, summed_terms(case.arrays))
                cells = [
                    self._cell(base, q, "reference", c)
                    for q, c in zip(FIRST_ORDER, checks, strict=True)
                ]
                if native:
                    cells += self._native_cells(
                        backend, case, arrays, dtype, base, result, expected, checks
                    )
            along = {name: framework.to_numpy(v) for name, v in directions.items()}
            for quantity in derivatives:
                cells += self._derivative_cells(
                    backend, case, dtype, base, quantity, (arrays, directions), (rounded, along)
                )
        return cells

    def _derivative_cells(
        self,
        backend: Backend,
        case: Case,
        dtype: str,
        base: dict[str, str],
        quantity: str,
        inputs: tuple[Mapping[str, Any], Mapping[str, Any]],
        rounded: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    ) -> list[CellResult]:
        """The cells of one derivative quantity (``target_gradient`` or ``hvp``): against the
        reference, and for an adapter against the native loss's same derivative."""
        native = backend.kind == "adapter" and backend.native
        against = ("reference", "native") if native else ("reference",)

        def every(status: str, detail: str) -> list[CellResult]:
            return [
                CellResult(**base, quantity=quantity, against=t, status=status, detail=detail)
                for t in against
            ]

        reason = backend.derivative_skip_reason(case, dtype, quantity)
        if reason is not None:
            return every("skip", reason)
        arrays, directions = inputs
        exact, allowed = self.expected_derivative(case, rounded[0], dtype, quantity, rounded[1])
        try:
            ours = backend.evaluate_derivative(case, arrays, dtype, quantity, directions)
        except Exception as exc:
            return every("fail", _error_text(exc))
        own = self._compare_all(backend, ours, exact, dtype, allowed, quantity)
        cells = [self._cell(base, quantity, "reference", own)]
        if native:
            try:
                theirs = backend.evaluate_native_derivative(
                    case, arrays, dtype, quantity, directions
                )
                problem = "no native loss to compare with"
            except Exception as exc:
                theirs, problem = None, f"the native loss raised {_error_text(exc)}"
            cells.append(
                self._against_native(
                    backend, base, quantity, (ours, theirs, exact, allowed), own, problem, dtype
                )
            )
        return cells

    def _compare(
        self, backend: Backend, result, expected, dtype: str, terms: int
    ) -> list[Comparison]:
        value, grads = result
        expected_value, expected_grads = expected
        plain = (Allowance(quantity="gradient", terms=terms),) * len(expected_grads)
        return [
            self._compare_one(backend, value, expected_value, dtype, Allowance(terms=terms)),
            self._compare_all(backend, grads, expected_grads, dtype, plain, "gradients"),
        ]

    def _compare_all(
        self,
        backend: Backend,
        actual: Sequence[Any],
        expected: Sequence[np.ndarray],
        dtype: str,
        allowed: Sequence[Allowance],
        what: str,
    ) -> Comparison:
        """Several arrays compared at once (the worst of them)."""
        if len(actual) != len(expected):
            detail = f"{len(actual)} {what} arrays, expected {len(expected)}"
            return Comparison(False, np.inf, np.inf, np.inf, detail)
        return _combine(
            [
                self._compare_one(backend, a, e, dtype, allowance)
                for a, e, allowance in zip(actual, expected, allowed, strict=True)
            ]
        )

    @staticmethod
    def _compare_one(
        backend: Backend,
        actual: Any,
        expected: np.ndarray,
        dtype: str,
        allowance: Allowance | None = None,
    ) -> Comparison:
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
        allowance = allowance or Allowance()
        precision = backend.precision(dtype)
        return compare(
            *allowance.masked(values, expected),
            precision,
            slack=allowance.slack,
            quantity=allowance.quantity,
            terms=allowance.terms,
        )

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
            max_ratio=c.max_ratio,
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
        sides = [
            ((result[0],), None if native is None else (native[0],), (expected[0],)),
            (result[1], None if native is None else native[1], expected[1]),
        ]
        terms = summed_terms(case.arrays)
        return [
            self._against_native(
                backend,
                base,
                quantity,
                (ours, theirs, exact, (Allowance(quantity=quantity, terms=terms),) * len(exact)),
                own,
                problem,
                dtype,
            )
            for quantity, (ours, theirs, exact), own in zip(
                FIRST_ORDER, sides, adapter_checks, strict=True
            )
        ]

    def _against_native(
        self,
        backend: Backend,
        base: dict[str, str],
        quantity: str,
        sides: tuple[Sequence[Any], Sequence[Any] | None, Sequence[np.ndarray], Sequence[Any]],
        own: Comparison,
        problem: str,
        dtype: str,
    ) -> CellResult:
        """One ``against="native"`` cell: ``sides`` are the adapter's arrays, the native
        loss's (None: ``problem`` says why there are none), the reference and its masks;
        ``own`` is the adapter's comparison with the reference."""
        ours, theirs, exact, allowed = sides

        def skipped(detail: str) -> CellResult:
            return CellResult(
                **base, quantity=quantity, against="native", status="skip", detail=detail
            )

        if theirs is None:
            return skipped(problem)
        framework = backend.framework
        try:
            ours_np = [framework.to_numpy(x) for x in ours]
            theirs_np = [framework.to_numpy(x) for x in theirs]
        except Exception as exc:
            return skipped(f"unreadable native result: {_error_text(exc)}")
        if len(theirs_np) != len(ours_np):
            return skipped("the native loss gives other gradients")
        # each side may be off the exact value by the tolerance: twice it between them, the
        # tolerance of the native loss's precision where it computes in a narrower dtype
        precision = backend.native_precision(dtype)
        between = _combine(
            [
                compare(
                    *allowance.masked(o, t),
                    precision,
                    factor=2.0,
                    quantity=allowance.quantity,
                    terms=allowance.terms,
                )
                for o, t, allowance in zip(ours_np, theirs_np, allowed, strict=True)
            ]
        )
        if between.passed:
            return self._cell(base, quantity, "native", between)
        native_error = _combine(
            [
                compare(
                    *allowance.masked(t, e),
                    precision,
                    slack=allowance.slack,
                    quantity=allowance.quantity,
                    terms=allowance.terms,
                )
                for t, e, allowance in zip(theirs_np, exact, allowed, strict=True)
            ]
        )
        if own.passed and not native_error.passed:
            detail = (
                f"differs from the native loss, which is off the reference by "
                f"{format_ulps(native_error.max_ulps)} ulp ({native_error.detail})"
            )
            return self._cell(base, quantity, "native", between, "pass", detail)
        return self._cell(base, quantity, "native", between)


def _combine(parts: Sequence[Comparison]) -> Comparison:
    failing = [p.detail for p in parts if not p.passed]
    return Comparison(
        passed=not failing,
        max_abs=max((p.max_abs for p in parts), default=0.0),
        max_rel=max((p.max_rel for p in parts), default=0.0),
        max_ulps=max((p.max_ulps for p in parts), default=0.0),
        detail="; ".join(failing),
        max_ratio=max((p.max_ratio for p in parts), default=0.0),
    )


def select_cases(cases: Sequence[Case], patterns: Sequence[str] | None) -> list[Case]:
    """The ``cases`` whose id matches one of ``patterns`` (fnmatch; None: all)."""
    if patterns is None:
        return list(cases)
    return [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


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
    cases = select_cases(cases, config.cases)
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
    result.environment = environment.collect()
    return result


def _use_jax_cache(directory: str) -> None:
    """JAX's persistent compilation cache in ``directory``, for every compilation: most of a
    JAX backend's time is XLA compiling small programs, which a second run then reads back."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# seconds a backend's full run took on 2 CPU cores (all dtypes), for spreading the work over
# worker processes; eager JAX compiles every new (op, shape, dtype), about 50 ms each (the
# derivative cells more than double the JAX columns: their exact path and the forward-over-
# reverse products compile other ops)
COSTS = {
    "numpy": 4.0,
    "array_api_strict": 3.0,
    "torch": 20.0,
    "jax": 250.0,
    "tensorflow": 38.0,
    "torch-adapter": 27.0,
    "jax-adapter": 330.0,
    "tensorflow-adapter": 11.0,
    "tensorflow-v1-adapter": 8.0,
    "keras-adapter": 15.0,
    "torch-distributed": 40.0,  # starting the gloo ranks; 3 dtypes
    "jax-sharded": 300.0,  # a compilation per cell, 3 dtypes
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
    keep_native_logs_quiet()
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
