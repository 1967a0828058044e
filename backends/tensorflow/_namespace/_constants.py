"""The constants of the TensorFlow namespace (Python floats, as the standard allows)."""

from __future__ import annotations

import math

e = math.e
inf = math.inf
nan = math.nan
pi = math.pi
newaxis = None


__all__ = ["e", "inf", "nan", "newaxis", "pi"]
