"""Deliberately broken conformance backends for the tests of the matrix, the gate and the reports.

A planted bug must make the matrix fail; these are real backends (NumPy through the core), each
with one defect, registered for the duration of a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from xentropy.conformance.backends import Backend, register_backend, unregister_backend


class Faulty(Backend):
    """NumPy through the core, with every loss value off by a relative 1e-3 (a planted bug)."""

    def evaluate(self, case: Any, arrays: Any, dtype: str) -> tuple[Any, tuple[Any, ...]]:
        value, grads = super().evaluate(case, arrays, dtype)
        return value * np.asarray(1 + 1e-3, dtype=value.dtype), grads


def registered(backend: Backend) -> Iterator[Backend]:
    """``backend`` registered while the generator is suspended (the body of a fixture)."""
    register_backend(backend)
    try:
        yield backend
    finally:
        unregister_backend(backend.name)
