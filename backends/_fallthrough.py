"""Name resolution that makes a dialect module a complete stand-in for its framework's module.

A dialect module (``xentropy.backends.jax`` for ``optax``, ``xentropy.backends.keras.losses`` for
``keras.losses``, ``xentropy.backends.tensorflow.nn`` for ``tf.nn``...) defines the framework's
cross-entropy family itself and hands every other name to the framework, through a module
``__getattr__`` and ``__dir__`` (PEP 562) that call :func:`resolve` and :func:`names`. A name
resolves, in this order, to

1. what the module defines (Python asks ``__getattr__`` only for what the module lacks);
2. a submodule of the dialect package, imported on first access (so ours wins over a framework
   attribute of the same name even before it is imported);
3. the attribute of the first framework module, in the order given, that has it.

A name starting with ``_`` never falls through: the probes of ``pickle``, ``inspect``,
``doctest``, ``pytest``, ``jax`` and ``keras.saving`` (``__wrapped__``, ``__path__``,
``_fields``...) see the dialect module as it is. Nothing is copied into the module: a framework
attribute is looked up at each access (a patched framework stays patched), the module's
``__all__`` (``import *``) keeps its own names, and ``dir()`` lists both. The framework modules
are imported on the first name that falls through.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["names", "resolve"]


def resolve(module_name: str, name: str, frameworks: Sequence[str]) -> Any:
    """The attribute ``name`` of module ``module_name`` that the module itself lacks.

    Args:
        module_name: the dialect module (its ``__name__``).
        name: the attribute asked for.
        frameworks: the framework modules to search, in order (``"optax.losses"``, ...).

    Raises:
        AttributeError: for a private name, or a name neither a submodule of ours nor any of
            ``frameworks`` has (or when a framework module cannot be imported).
    """
    module = sys.modules[module_name]
    if name.startswith("_"):
        raise AttributeError(
            f"module {module_name!r} has no attribute {name!r}", name=name, obj=module
        )
    if name.isidentifier() and _has_submodule(module_name, name):
        return importlib.import_module(f"{module_name}.{name}")
    for framework in frameworks:
        try:
            source = importlib.import_module(framework)
        except ImportError as error:
            raise AttributeError(
                f"module {module_name!r} has no attribute {name!r}, and {framework!r}, where "
                f"it would look next, cannot be imported: {error}",
                name=name,
                obj=module,
            ) from error
        try:
            return getattr(source, name)
        except AttributeError:
            continue
    searched = " or ".join(repr(framework) for framework in frameworks)
    where = f" (nor has {searched}, to which its other names fall through)" if searched else ""
    raise AttributeError(
        f"module {module_name!r} has no attribute {name!r}{where}", name=name, obj=module
    )


def names(module_name: str, frameworks: Sequence[str]) -> list[str]:
    """``dir()`` of a dialect module: its own names, its public submodules, the frameworks'."""
    module = sys.modules[module_name]
    listed = set(vars(module)) | set(vars(module).get("__all__", ()))
    listed |= {name for name in _submodules(module) if not name.startswith("_")}
    for framework in frameworks:
        try:
            source = importlib.import_module(framework)
        except ImportError:
            continue
        listed |= {name for name in dir(source) if not name.startswith("_")}
    return sorted(listed)


def _submodules(module: ModuleType) -> list[str]:
    path = vars(module).get("__path__")
    return [] if path is None else [info.name for info in pkgutil.iter_modules(path)]


@functools.cache
def _has_submodule(package: str, name: str) -> bool:
    """Whether ``package`` is a package with a submodule ``name`` (cached: asked per access)."""
    if "__path__" not in vars(sys.modules[package]):  # a plain module has no submodules
        return False
    return importlib.util.find_spec(f"{package}.{name}") is not None
