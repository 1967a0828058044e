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


# ln 2 rounded to float32 and back: 2.7e-9 relative, the size of the slip of a float64 log2
# computed as log(x) / log(2) with log(2) made through a float32 constant
FLOAT32_LN2_RATIO = float(np.float32(np.log(2.0))) / float(np.log(2.0))


class Float32Constant(Backend):
    """NumPy through the core, with a float32 constant slipped into the float64 path (a planted
    bug): every float64 loss value and prediction gradient scaled by ``float32(ln 2) / ln 2``,
    a relative 2.7e-9: far below float32's precision, but some 1e7 float64 ulps. Other dtypes
    are left exact."""

    def evaluate(self, case: Any, arrays: Any, dtype: str) -> tuple[Any, tuple[Any, ...]]:
        value, grads = super().evaluate(case, arrays, dtype)
        if dtype != "float64":
            return value, grads
        return value * FLOAT32_LN2_RATIO, tuple(g * FLOAT32_LN2_RATIO for g in grads)
