"""Finding the Array API namespace of the arrays a caller passes in.

``array_api_compat.array_namespace`` knows NumPy, CuPy, PyTorch, JAX, Dask and every library that
implements ``__array_namespace__``. TensorFlow is not among them, so xentropy keeps a small
registry of extra namespaces, keyed by the top-level module of an array's type and loaded only
when such an array is seen (the einops idea): importing xentropy imports no framework.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import array_api_compat

# top-level module of the array type -> module path of its Array API namespace
_EXTRA_NAMESPACES: dict[str, str] = {
    "tensorflow": "xentropy.backends.tensorflow.namespace",
}


def register_namespace(array_module: str, namespace_module: str) -> None:
    """Make the core accept arrays whose type lives in ``array_module``.

    ``namespace_module`` is imported on first use; it must be an Array API namespace and may
    define ``is_lazy_array(x) -> bool``.
    """
    _EXTRA_NAMESPACES[array_module] = namespace_module


def _extra_namespace_of(x: Any) -> ModuleType | None:
    root = type(x).__module__.partition(".")[0]
    path = _EXTRA_NAMESPACES.get(root)
    return importlib.import_module(path) if path is not None else None


def _is_array(x: Any) -> bool:
    return x is not None and not isinstance(x, (bool, int, float, complex, list, tuple))


def namespace_of(*arrays: Any) -> Any:
    """The Array API namespace shared by ``arrays`` (``None`` and Python scalars are skipped)."""
    present = [a for a in arrays if _is_array(a)]
    for a in present:
        extra = _extra_namespace_of(a)
        if extra is not None:
            return extra
    return array_api_compat.array_namespace(*present)


def is_lazy(x: Any) -> bool:
    """True when ``x`` cannot be read cheaply: a JAX tracer, a symbolic TF tensor, a Dask array.

    ``array_api_compat.is_lazy_array`` answers True for every JAX array; an eager JAX array is
    concrete, so it is told apart here and validated like any eager array.
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
    return bool(array_api_compat.is_lazy_array(x))


def is_readable(x: Any) -> bool:
    """Whether an array's value can be read now with ``float()``: not lazy (:func:`is_lazy`),
    and not wrapped by a ``torch.func`` transform (where ``vmap`` forbids ``.item()``)."""
    if is_lazy(x):
        return False
    if array_api_compat.is_torch_array(x):
        import torch

        return not torch._C._functorch.is_functorch_wrapped_tensor(x)
    return True


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype arithmetic runs in: float32 for 16-bit floats, else the input's own dtype."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def device_of(xp: Any, x: Any) -> Any:
    """The device ``x`` lives on, as its namespace names it (``xp`` is that namespace)."""
    extra = _extra_namespace_of(x)
    if extra is not None:
        return extra.device(x)
    return array_api_compat.device(x)
