"""The TensorFlow ops a call executes, recorded with TensorFlow's op callbacks (eager ops, and the
ops a ``tf.function`` traces)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensorflow.python.framework import op_callbacks


def executed_ops(call: Callable[[], Any]) -> list[str]:
    """The op types run while ``call()`` runs, in order."""
    ops: list[str] = []

    def record(op_type: Any, *args: Any, **kwargs: Any) -> None:
        ops.append(op_type if isinstance(op_type, str) else op_type.decode())

    op_callbacks.add_op_callback(record)
    try:
        call()
    finally:
        op_callbacks.remove_op_callback(record)
    return ops
