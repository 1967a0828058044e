"""Fused routines of a framework, used where the Array API spelling would cost extra passes.

The Array API has no log-softmax, softmax or scatter. Written with standard ops they take several
passes over an ``(N, C)`` array, which XLA fuses under ``jax.jit`` but eager PyTorch and
TensorFlow do not. For those two namespaces these helpers call the framework's own fused kernels;
every other namespace gets the standard spelling. Results agree to rounding, and in their
handling of non-finite rows.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ._namespace import device_of

_TF_NAMESPACE = "xentropy.backends.tensorflow.namespace"


def _is_torch(xp: Any) -> bool:
    return array_api_compat.is_torch_namespace(xp)


def _is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def _is_tensorflow(xp: Any) -> bool:
    return getattr(xp, "__name__", None) == _TF_NAMESPACE


def has_fused_softmax(xp: Any) -> bool:
    """Whether ``xp``'s framework has fused (log-)softmax kernels that this module calls."""
    return _is_torch(xp) or _is_tensorflow(xp)


def log_sum_exp(xp: Any, z: Any) -> tuple[Any, Any]:
    r""":math:`\log \sum_c e^{z_c}` over the last axis, as ``(m, s)`` with the sum ``m + s``.

    ``m`` is the row maximum and ``s = log sum exp(z - m)`` lies in ``[0, log C]``. Kept apart,
    ``(z_y - m) - s`` keeps the digits that ``z_y - (m + s)`` loses when the logits are large
    (at 1e4 in float32, ``m + s`` rounds ``s`` to a multiple of 1e-3).
    A row whose maximum is not finite is shifted by 0 instead, so an all ``-inf`` row gives
    ``-inf``. A row holding ``+inf`` gives NaN, as the fused kernels of PyTorch and TensorFlow do:
    its softmax is undefined.
    """
    m = xp.max(z, axis=-1, keepdims=True)
    shift = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    s = xp.log(xp.sum(_exp_of_fresh(xp, z - shift), axis=-1))
    s = xp.where(m[..., 0] == float("inf"), xp.full_like(s, float("nan")), s)
    return shift[..., 0], s


def log_softmax(xp: Any, z: Any) -> Any:
    """``z - log_sum_exp(z)`` over the last axis, by the framework's fused kernel if it has one."""
    if _is_torch(xp):
        import torch

        return torch.log_softmax(z, dim=-1)
    if _is_tensorflow(xp):
        import tensorflow as tf

        return tf.nn.log_softmax(z, axis=-1)
    m, s = log_sum_exp(xp, z)
    return (z - m[..., None]) - s[..., None]


def softmax(xp: Any, z: Any, lse: tuple[Any, Any] | None = None) -> Any:
    """``softmax(z)`` over the last axis; ``lse``, the ``(m, s)`` of :func:`log_sum_exp`, spares
    the standard spelling a pass when the caller has it."""
    if _is_torch(xp):
        import torch

        return torch.softmax(z, dim=-1)
    if _is_tensorflow(xp):
        import tensorflow as tf

        return tf.nn.softmax(z, axis=-1)
    m, s = log_sum_exp(xp, z) if lse is None else lse
    shifted = z - m[..., None]
    shifted -= s[..., None]
    return _exp_of_fresh(xp, shifted)


def _exp_of_fresh(xp: Any, x: Any) -> Any:
    """``exp(x)`` for an array the caller just made: NumPy writes it in place (no temporary)."""
    if _is_numpy(xp):
        import numpy as np

        return np.exp(x, out=x)
    return xp.exp(x)


def add_at_index(xp: Any, x: Any, index: Any, values: Any) -> Any:
    """``x`` with ``values[i]`` added at ``x[i, index[i]]`` (last axis); may update ``x`` in place.

    ``x`` must be a fresh array the caller owns: PyTorch scatters into it.
    """
    if _is_torch(xp):
        return x.scatter_add_(-1, index[..., None], values[..., None])
    if _is_numpy(xp):
        import numpy as np

        at = index[..., None]
        picked = np.take_along_axis(x, at, axis=-1)
        np.put_along_axis(x, at, picked + values[..., None], axis=-1)
        return x
    classes = xp.arange(x.shape[-1], dtype=index.dtype, device=device_of(xp, x))
    return x + xp.where(classes == index[..., None], values[..., None], xp.zeros_like(x))
