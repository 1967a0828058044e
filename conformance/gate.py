"""The gate: a run passes only when it checked what it was asked to check.

``xentropy-conformance`` exits with :data:`INCOMPLETE` (3) when nothing, or not everything
asked for, could be checked; the reasons, one line each, come from two checks:

* :func:`preflight`, before any cell runs (so that a missing GPU is known in seconds, not after
  the matrix): every selected backend is imported and, where ``--devices`` names devices, asked
  for them; the cases are generated and the cells that would run are counted.
* :func:`shortfall`, after the run: the cells that were checked (a cell may still be skipped
  at run time, e.g. inputs the backend cannot make in a dtype).

What is always a reason:

* no cell at all to check (a filter that selects nothing, devices that no backend has);
* a backend whose modules are installed but fail to import (a broken environment;
  :func:`~xentropy.conformance.backends.is_broken`), even in a default run;
* a backend named in ``XENTROPY_REQUIRE_BACKENDS`` that is selected and does not run, or runs
  no cell.

What is a reason unless ``--allow-missing`` is given:

* a backend named in ``--backends`` that is not installed (CuPy without a GPU and Keras on a
  backend the matrix does not cover count as not installed), or that has none of the devices
  or dtypes asked for, or whose every cell is skipped;
* a device named in ``--devices`` that no selected backend has.

A backend that is not named (a default run) and not installed is shown as ``n/i`` and is no
reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .backends import Backend, is_broken, select_backends
from .cases import Case, generate_cases
from .runner import RunConfig, RunResult, select_cases

INCOMPLETE = 3  # the exit status: nothing, or not everything asked for, could be checked


@dataclass(frozen=True)
class Demands:
    """Which backends must run: those named in ``--backends`` (unless ``allow_missing``) and
    those in ``XENTROPY_REQUIRE_BACKENDS`` (always)."""

    named: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    allow_missing: bool = False

    def strict(self, name: str) -> bool:
        """Whether backend ``name`` falling short is a reason."""
        return name in self.required or (name in self.named and not self.allow_missing)

    def hint(self, name: str) -> str:
        """What to add to a reason about backend ``name``."""
        if name in self.required:
            return " (XENTROPY_REQUIRE_BACKENDS requires it)"
        return " (--allow-missing runs without it)"


def _grouped(problems: Iterable[tuple[str, str]]) -> list[str]:
    """``"a, b: reason"`` lines: backends with the same reason (one framework) on one line."""
    names: dict[str, list[str]] = {}
    for name, reason in problems:
        names.setdefault(reason, []).append(name)
    return [f"{', '.join(group)}: {reason}" for reason, group in names.items()]


def preflight(config: RunConfig, demands: Demands) -> list[str]:
    """The reasons the run of ``config`` cannot be complete, found before it starts (empty:
    none found). Imports the selected frameworks in this process."""
    problems: list[tuple[str, str]] = []
    available: list[Backend] = []
    for backend in select_backends(config.backends):
        status = backend.missing()
        if status is None:
            available.append(backend)
        elif is_broken(status):
            problems.append((backend.name, status))
        elif demands.strict(backend.name):
            problems.append((backend.name, status + demands.hint(backend.name)))
    reasons: list[str] = []
    devices = _devices(available, config.devices)
    if config.devices is not None and not demands.allow_missing:
        present = sorted({d for b in available for d in b.devices()})
        for device in config.devices:
            if not any(device in ds for ds in devices.values()):
                reasons.append(
                    f"{device}: no selected backend has a {device} device (present: "
                    f"{', '.join(present) or 'none'}; --allow-missing runs without it)"
                )
    cases = generate_cases(config.seed, variants=config.variants, quick=config.quick)
    cases = select_cases(cases, config.cases)
    planned = 0
    for backend in available:
        shortage, cells = _plan(backend, config, devices[backend.name], cases)
        planned += cells
        if shortage and demands.strict(backend.name):
            problems.append((backend.name, shortage + demands.hint(backend.name)))
    reasons += _grouped(problems)
    if not planned and not reasons:
        reasons.append("nothing to check: the selection has no cell that runs")
    return reasons


def _devices(
    backends: Sequence[Backend], requested: Sequence[str] | None
) -> dict[str, tuple[str, ...]]:
    """The devices each backend would run on; without ``--devices`` ``("any",)``: a framework
    is asked for its devices only where devices were named (JAX would start its runtime)."""
    if requested is None:
        return {b.name: ("any",) for b in backends}
    # JAX, asked for its GPUs in this process, would take 75% of their memory from the workers
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return {b.name: tuple(d for d in b.devices() if d in requested) for b in backends}


def _plan(
    backend: Backend, config: RunConfig, devices: Sequence[str], cases: Sequence[Case]
) -> tuple[str | None, int]:
    """``(why backend has no cell, or None; how many (case, dtype, device) cells it runs)``."""
    if not devices:
        return (
            f"none of the devices asked for ({', '.join(config.devices or ())}); "
            f"it has {', '.join(backend.devices())}",
            0,
        )
    dtypes = [d for d in backend.dtypes() if config.dtypes is None or d in config.dtypes]
    if not dtypes:
        return (
            f"none of the dtypes asked for ({', '.join(config.dtypes or ())}); "
            f"it has {', '.join(backend.dtypes())}",
            0,
        )
    reasons = [backend.skip_reason(case, dtype) for case in cases for dtype in dtypes]
    runs = sum(reason is None for reason in reasons)
    if not runs:
        example = next((r for r in reasons if r), "")
        return f"every selected cell is skipped (e.g. {example!r})", 0
    return None, runs * len(devices)


def shortfall(result: RunResult, demands: Demands) -> list[str]:
    """The reasons the finished run ``result`` is incomplete (empty: none)."""
    problems: list[tuple[str, str]] = []
    checked = {name: 0 for name in result.backends}
    for cell in result.checked:
        checked[cell.backend] = checked.get(cell.backend, 0) + 1
    for name, info in result.backends.items():
        status = info["status"]
        if is_broken(status):
            problems.append((name, status))
        elif status != "ok" and demands.strict(name):
            problems.append((name, status + demands.hint(name)))
        elif status == "ok" and not checked[name] and demands.strict(name):
            problems.append((name, "0 cells checked: every cell was skipped" + demands.hint(name)))
    reasons = _grouped(problems)
    if not result.checked:
        reasons.append("0 cells checked: nothing was compared with the reference")
    return reasons
