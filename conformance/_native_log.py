"""Keeping the frameworks' C++ logging off the terminal during a run.

TensorFlow 2.21 and XLA log through absl straight to file descriptor 2, at import ("oneDNN
custom operations are on", CPU feature notes) and while computing ("oneDNN supports DT_HALF only
on platforms with AVX-512"), whatever ``TF_CPP_MIN_LOG_LEVEL`` says; those lines would break the
progress bar. :func:`keep_native_logs_quiet` points descriptor 2 at the null device while
Python's own ``sys.stderr`` (tracebacks, warnings, the gate's reasons) keeps writing to the
original stream. It does so only when ``TF_CPP_MIN_LOG_LEVEL`` asks for quiet (1 or more, which
``xentropy-conformance`` sets to 2 unless it is set): ``TF_CPP_MIN_LOG_LEVEL=0`` keeps every line.
"""

from __future__ import annotations

import os
import sys

_quieted = False


def keep_native_logs_quiet() -> None:
    """Send native writes to descriptor 2 to the null device for the rest of the process."""
    global _quieted
    if _quieted or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        return
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured or replaced stream: leave it
        return
    if stderr_fd != 2:
        return
    sys.stderr.flush()
    python_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = python_stderr
    _quieted = True
