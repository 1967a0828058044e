"""Finding the Array API namespace of the arrays a caller passes in.

``array_api_compat.array_namespace`` knows NumPy, CuPy, PyTorch, JAX, Dask (for CuPy and Dask it
gives array-api-compat's wrapper) and every library that implements ``__array_namespace__``.
TensorFlow is not among them, so xentropy keeps a small registry of extra namespaces, keyed by
the top-level module of an array's type and loaded only when such an array is seen (the einops
idea): importing xentropy imports no framework.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat

from ._errors import mixed_array_types

# top-level module of the array type -> module path of its Array API namespace
_EXTRA_NAMESPACES: dict[str, str] = {
    "tensorflow": "xentropy.backends.tensorflow.namespace",
}


# Array libraries whose namespace follows from the array's type alone, so that it may be
# remembered per tuple of argument types (NumPy is not among them: array-api-compat gives a
# JAX zero-gradient array, a NumPy array of dtype float0, JAX's namespace)
_TYPE_DETERMINED = frozenset({"torch", "jax", "jaxlib", "tensorflow", "array_api_strict", "dask"})
_by_types: dict[tuple[type, ...], Any] = {}
_BY_TYPES_MAX = 256


def register_namespace(array_module: str, namespace_module: str) -> None:
    """Make the core accept arrays whose type lives in ``array_module``.

    ``namespace_module`` is imported on first use; it must be an Array API namespace and may
    define ``is_lazy_array(x) -> bool``.
    """
    _EXTRA_NAMESPACES[array_module] = namespace_module
    _by_types.clear()


def _extra_namespace_of(x: Any) -> ModuleType | None:
    root = type(x).__module__.partition(".")[0]
    path = _EXTRA_NAMESPACES.get(root)
    return importlib.import_module(path) if path is not None else None


def _is_array(x: Any) -> bool:
    return x is not None and not isinstance(x, (bool, int, float, complex, list, tuple))


def namespace_of(*arrays: Any, names: Sequence[str] | None = None) -> Any:
    """The Array API namespace shared by ``arrays`` (``None`` and Python scalars are skipped).

    A Python list or tuple, or arrays of two libraries (a ``torch.Tensor`` and a
    ``numpy.ndarray``), raise :class:`~xentropy._errors.MixedArrayTypes` (a ``TypeError``)
    naming the arguments, ``names`` (one per array; by default ``argument 1``, ...). A
    registered namespace (TensorFlow's) takes the arrays it is given with its own tensors.

    The answer is remembered per tuple of argument types for the libraries whose namespace
    follows from the type (PyTorch, JAX, TensorFlow, ...): an adapter asks on every call.
    """
    if python_is_traced():
        return _namespace_of(arrays, names)
    key = tuple(map(type, arrays))
    xp = _by_types.get(key)
    if xp is not None:
        return xp
    xp = _namespace_of(arrays, names)
    roots = {t.__module__.partition(".")[0] for t in key if t not in _SCALAR_TYPES}
    if roots and roots <= _TYPE_DETERMINED and len(_by_types) < _BY_TYPES_MAX:
        _by_types[key] = xp
    return xp


def python_is_traced() -> bool:
    """Whether a compiler that traces Python bytecode (``torch.compile``'s dynamo) is running
    this code: module state must then be neither read (it would guard on it) nor written (a
    side effect it refuses inside an ``autograd.Function``), so the caches step aside."""
    compiler = getattr(sys.modules.get("torch"), "compiler", None)
    return compiler is not None and compiler.is_compiling()


_SCALAR_TYPES = (type(None), bool, int, float, complex)


def _namespace_of(arrays: tuple[Any, ...], names: Sequence[str] | None) -> Any:
    if any(isinstance(a, (list, tuple)) for a in arrays):
        raise _mixed(arrays, names)
    present = [a for a in arrays if _is_array(a)]
    for a in present:
        extra = _extra_namespace_of(a)
        if extra is not None:
            return extra
    if len(_libraries(present)) > 1:
        raise _mixed(arrays, names)
    return array_api_compat.array_namespace(*present)


def _mixed(arrays: Sequence[Any], names: Sequence[str] | None) -> Exception:
    given = names or [f"argument {i + 1}" for i in range(len(arrays))]
    kept = [(n, a) for n, a in zip(given, arrays, strict=False) if a is not None]
    kept = [(n, a) for n, a in kept if not _is_scalar(a)]
    return mixed_array_types([n for n, _ in kept], [a for _, a in kept])


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (bool, int, float, complex))


def _libraries(arrays: Sequence[Any]) -> set[str]:
    roots = {type(a).__module__.partition(".")[0] for a in arrays}
    return {"jax" if r == "jaxlib" else r for r in roots}


def is_lazy(x: Any) -> bool:
    """True when ``x`` cannot be read cheaply: a JAX tracer, a symbolic TF tensor, a Dask array.

    ``array_api_compat.is_lazy_array`` answers True for every JAX array; an eager JAX array is
    concrete, so it is told apart here and validated like any eager array. A Dask array is
    always lazy: reading one value (``bool``, ``float``) computes its whole graph, so its values
    are never checked (invalid ones give NaN, as under tracing) and building a loss computes
    nothing.
    """
    extra = _extra_namespace_of(x)
    if extra is not None:
        return bool(getattr(extra, "is_lazy_array", lambda _: False)(x))
    if array_api_compat.is_jax_array(x):
        jax_core = sys.modules.get("jax.core")
        tracer = getattr(jax_core, "Tracer", None)
        return tracer is not None and isinstance(x, tracer)
    if array_api_compat.is_torch_array(x):
        compiler = getattr(sys.modules.get("torch"), "compiler", None)
        return bool(compiler is not None and compiler.is_compiling())
    if array_api_compat.is_dask_array(x):
        return True
    return bool(array_api_compat.is_lazy_array(x))


def is_readable(x: Any) -> bool:
    """Whether an array's value can be read now with ``float()``: not lazy (:func:`is_lazy`),
    and not wrapped by a ``torch.func`` transform (where ``vmap`` forbids ``.item()``)."""
    if is_lazy(x):
        return False
    if array_api_compat.is_torch_array(x):
        from torch._C._functorch import is_functorch_wrapped_tensor

        return not is_functorch_wrapped_tensor(x)
    return True


# Questions about dtypes are asked on every call of every loss, and the namespaces' answers
# cost a microsecond or two of Python each: they are remembered, except under dynamo (which
# warns of every cache it meets, and traces the function under it anyway).


def remembered(fn: Any) -> Any:
    """``fn`` (of hashable arguments) with its answers remembered outside dynamo's tracing."""
    cached = functools.lru_cache(maxsize=1024)(fn)

    @functools.wraps(fn)
    def answer(*args: Any) -> Any:
        return fn(*args) if python_is_traced() else cached(*args)

    return answer


@remembered
def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype arithmetic runs in: float32 for 16-bit floats, else the input's own dtype."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


@remembered
def isdtype(xp: Any, dtype: Any, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)`` for a ``kind`` name."""
    return bool(xp.isdtype(dtype, kind))


def weight_dtype(xp: Any, like: Any) -> Any | None:
    """The dtype a weight is converted to for the prediction ``like``: its compute dtype, or
    None (the weight keeps its own) when ``like`` is not real floating, so that the operator's
    checks, which run after the conversion, refuse ``like`` by name."""
    return compute_dtype(xp, like.dtype) if xp.isdtype(like.dtype, "real floating") else None


def device_of(xp: Any, x: Any) -> Any:
    """The device ``x`` lives on, as its namespace names it (``xp`` is that namespace)."""
    extra = _extra_namespace_of(x)
    if extra is not None:
        return extra.device(x)
    return array_api_compat.device(x)
