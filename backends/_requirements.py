"""What a dialect needs installed, said in one line: the extra that brings it.

Each dialect package calls :func:`require` before it imports its framework, so that
``import xentropy.backends.torch`` without PyTorch fails with an ``ImportError`` that names the
distribution extra to install instead of a traceback from deep inside the dialect. The check
looks the module up without importing it (``importlib.util.find_spec``), so it costs nothing
where the framework is present and keeps lazy packages (TensorFlow's) lazy.
"""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "xentropy-array"


def require(dialect: str, extra: str, *modules: str) -> None:
    """Raise ``ImportError`` naming ``extra`` if any of ``modules`` cannot be found.

    Args:
        dialect: the dialect package (its ``__name__``).
        extra: the extra of the distribution that installs the modules (``"torch"``, ...).
        modules: the top-level modules the dialect imports.
    """
    missing = [name for name in modules if _absent(name)]
    if missing:
        raise ImportError(
            f"{dialect} needs {' and '.join(missing)}: pip install '{DISTRIBUTION}[{extra}]'",
            name=missing[0],
        )


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent that fails to import, a None in sys.modules
        return True
