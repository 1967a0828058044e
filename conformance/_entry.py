"""The ``xentropy-conformance`` entry point: says in one line what is missing, then runs the CLI.

The matrix needs the ``conformance`` extra (NumPy, SciPy, mpmath); without it the command prints
which extra to install instead of a traceback. TensorFlow's C++ logging is turned down
(``TF_CPP_MIN_LOG_LEVEL=2``, unless set) before any framework is imported, and the native lines
that TensorFlow 2.21 writes regardless are kept off the terminal (:mod:`._native_log`), so that
they do not interleave with the progress bar; ``TF_CPP_MIN_LOG_LEVEL=0`` shows them all. Where
``XLA_FLAGS`` is unset, XLA is asked for 4 host devices (the ``jax-sharded`` column's mesh).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

REQUIRED = ("numpy", "scipy", "mpmath")


def main(argv: Sequence[str] | None = None) -> int:
    missing = [name for name in REQUIRED if _absent(name)]
    if missing:
        print(
            f"xentropy-conformance needs {', '.join(missing)}: "
            "pip install 'xentropy-array[conformance]'",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .sharded import ask_for_host_devices

    ask_for_host_devices()  # the jax-sharded column's mesh, before anything imports JAX
    from .cli import main as run_cli

    return run_cli(argv)


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True
