"""What a framework suite hands the runner: matched pairs of (ours, native) callables."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from _cases import Case
from _timing import MemoryProbe

PASSES = ("fwd", "fwd_bwd")


class SkipBackend(Exception):
    """The framework (or the requested device) is not available: its rows are skipped."""


@dataclass(frozen=True)
class Impl:
    """One implementation of a loss on fixed inputs: a forward and a forward+backward call.

    ``fwd_bwd`` returns the loss and the gradient(s). ``static_peak`` (optional) gives a
    compiler's own estimate of the peak bytes of a pass, for devices the probe cannot see.
    """

    label: str
    fwd: Callable[[], Any]
    fwd_bwd: Callable[[], Any]
    static_peak: Callable[[str], int | None] | None = None


@dataclass(frozen=True)
class Matchup:
    """Ours against native, same backend, mode, case and inputs. ``ours`` None: skipped."""

    backend: str
    mode: str
    case: Case
    native: Impl
    ours: Impl | None
    note: str = ""


class Suite(Protocol):
    """A framework's part of the benchmark (see the ``_*_suite`` modules)."""

    name: str

    def setup(self, device: str) -> MemoryProbe:
        """Import the framework, pick ``device``; raise :class:`SkipBackend` if impossible."""
        ...

    def sync(self, out: Any) -> None:
        """Block until every array in ``out`` (an array or a tuple of them) is computed."""
        ...

    def matchups(self, cases: tuple[Case, ...], quick: bool) -> Iterator[Matchup]:
        """The pairs to time, one per (mode, case)."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of the framework's packages, for the JSON report."""
        ...


def find_attr(candidates: tuple[tuple[str, str], ...]) -> tuple[Any, str] | tuple[None, str]:
    """The first ``module.attr`` of ``candidates`` that imports, and its dotted name.

    Returns ``(None, reason)`` when none does: an adapter still being written is skipped with
    that reason instead of failing the run. Adding an adapter later means adding its path here.
    """
    reasons = []
    for module_name, attr in candidates:
        try:
            module = importlib.import_module(module_name)
            value = getattr(module, attr)
            if module_name.startswith("xentropy.") and not getattr(
                value, "__module__", ""
            ).startswith("xentropy."):
                # a dialect module hands names it lacks to its framework: not an adapter
                raise AttributeError(f"{attr!r} falls through to {value.__module__}")
            return value, f"{module_name}.{attr}"
        except (ImportError, AttributeError) as exc:
            reasons.append(f"{module_name}.{attr}: {type(exc).__name__}: {exc}")
    return None, "; ".join(reasons)


def version_of(module_name: str) -> str:
    """``module.__version__``, or ``absent``."""
    try:
        return str(importlib.import_module(module_name).__version__)
    except (ImportError, AttributeError):
        return "absent"
