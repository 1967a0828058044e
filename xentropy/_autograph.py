"""Keep TensorFlow's AutoGraph from rewriting xentropy's Python code.

Inside a ``tf.function``, AutoGraph converts every Python function the traced code calls unless
a rule says not to; it has such rules for ``tensorflow`` itself (``tf.nn`` is called as it is),
``keras`` and ``numpy``. xentropy is that kind of library: its code has no Python control flow on
tensor values to convert (the core's rule), and converting it would only cost tracing time and
expose it to AutoGraph's conversion cache. :func:`keep_out_of_autograph` adds the same rule for
``xentropy``. It imports nothing: it acts only once TensorFlow is imported, and is called when
xentropy is imported and again when its TensorFlow adapter is.
"""

from __future__ import annotations

import sys


def keep_out_of_autograph() -> None:
    """Add AutoGraph's ``DoNotConvert("xentropy")`` rule, once, if TensorFlow is loaded."""
    if "tensorflow" not in sys.modules:
        return
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:  # a TensorFlow without this (internal) module: nothing to do
        return
    rules = config.CONVERSION_RULES
    if not any(getattr(rule, "_prefix", None) == "xentropy" for rule in rules):
        config.CONVERSION_RULES = (config.DoNotConvert("xentropy"), *rules)
