"""The conformance matrix: every variant x backend x dtype x device, values and gradients.

Each *cell* evaluates one loss (a :class:`~xentropy.conformance.cases.Case`: variant, option set,
layout, targets, value range) on one backend, dtype and device, and compares its value or its
gradients with a float64 reference evaluated on the dtype-rounded inputs, under one per-dtype
tolerance table. Adapters (``xentropy.backends.*``) are called in their framework's own
spelling and also compared with the framework's native loss. The float64 reference is itself
checked against 80-digit mpmath on a sample of cases.

Modules, one job each:

* :mod:`.cases`: the registry of cases, generated from a seed;
* :mod:`.reference`: float64 values and analytic gradients in NumPy/SciPy;
* :mod:`.precise`: the mpmath check of the reference;
* :mod:`.tolerances`: the tolerance table and errors in ulps;
* :mod:`.backends`: array plumbing and the backend registry (:func:`register_backend`);
* :mod:`.dialects`: the cases in torch / optax / tf.nn / Keras spelling;
* :mod:`.sharded`: the vocabulary-parallel columns (``jax-sharded`` on a mesh of host devices,
  ``torch-distributed`` on the gloo ranks of :mod:`._rank`);
* :mod:`.runner`: evaluating the cells;
* :mod:`.report`: terminal table, JSON, Markdown, HTML, heat map, progress bar;
* :mod:`.conventions`: the known conventions by which a framework's native loss differs;
* :mod:`.environment`: framework versions, CPU/GPU and git revision of a run;
* :mod:`.gate`: whether a run checked what it was asked to (exit 3);
* :mod:`.cli`: ``xentropy-conformance`` / ``python -m xentropy.conformance``.

Importing this package imports no array framework (nor NumPy: its names load on first access).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import BACKENDS, Backend, register_backend, unregister_backend
    from .cases import VARIANTS, Case, generate_cases
    from .runner import CellResult, RunConfig, RunResult, run

# name -> the submodule defining it, imported on first access (so that the command line can say
# which extra is missing before NumPy and SciPy are imported)
_LAZY = {
    **dict.fromkeys(("BACKENDS", "Backend", "register_backend", "unregister_backend"), "backends"),
    **dict.fromkeys(("VARIANTS", "Case", "generate_cases"), "cases"),
    **dict.fromkeys(("CellResult", "RunConfig", "RunResult", "run"), "runner"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BACKENDS",
    "VARIANTS",
    "Backend",
    "Case",
    "CellResult",
    "RunConfig",
    "RunResult",
    "generate_cases",
    "register_backend",
    "run",
    "unregister_backend",
]
