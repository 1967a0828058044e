"""Fused routines of a framework, used where the Array API spelling would cost extra passes.

The Array API has no log-softmax, softmax or scatter. Written with standard ops they take several
passes over an ``(N, C)`` array, which XLA fuses under ``jax.jit`` but eager PyTorch and
TensorFlow do not. For those two namespaces these helpers call the framework's own fused kernels;
every other namespace gets the standard spelling. Results agree to rounding, and in their
handling of non-finite rows. Dask lacks ``take_along_axis``, and its arrays are immutable: the
gather and the scatter take the element-wise spelling there, and nothing is done in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import array_api_compat

from ._namespace import device_of, python_is_traced

_TF_NAMESPACE = "xentropy.backends.tensorflow.namespace"
_ONE_HOT_MAX_CLASSES = 32  # TensorFlow: up to this many classes, add_at_index adds a one-hot


def _is_torch(xp: Any) -> bool:
    return array_api_compat.is_torch_namespace(xp)


def _is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def _is_jax(xp: Any) -> bool:
    return array_api_compat.is_jax_namespace(xp)


def _is_tensorflow(xp: Any) -> bool:
    return getattr(xp, "__name__", None) == _TF_NAMESPACE


def _is_dask(xp: Any) -> bool:
    return array_api_compat.is_dask_namespace(xp)


# Depth of nested ``differentiable_spelling`` blocks. A module global rather than a ContextVar:
# torch.compile (fullgraph) traces a global read, not ``ContextVar.get``. Another thread inside
# such a block only makes this one take the out-of-place spelling too: slower, never wrong.
_differentiable_depth = 0


@contextlib.contextmanager
def differentiable_spelling() -> Iterator[None]:
    """Within this block, every helper takes the spelling a framework's autodiff differentiates.

    The operators' ``forward`` then computes the loss with out-of-place operations only, and
    with derivatives that are right for every input (targets and weights included) and at every
    order: the loss as a plain function of framework ops, for the framework's own autodiff to
    differentiate. Outside, the helpers may work in place and take spellings whose derivatives
    nobody asks for (the analytic ``backward`` supplies the gradient).
    """
    global _differentiable_depth
    _differentiable_depth += 1
    try:
        yield
    finally:
        _differentiable_depth -= 1


def is_differentiable_spelling() -> bool:
    """Whether a :func:`differentiable_spelling` block is active."""
    return _differentiable_depth > 0


def writable(xp: Any, x: Any) -> bool:
    """Whether a fresh array ``x`` may be overwritten: no autodiff records it.

    NumPy arrays always; a torch tensor that requires no grad (the forward of an
    ``autograd.Function`` runs under no-grad), outside :func:`differentiable_spelling`.
    """
    if _differentiable_depth:
        return False
    if _is_numpy(xp):
        return True
    return _is_torch(xp) and not x.requires_grad


def has_mutable_arrays(xp: Any) -> bool:
    """Whether ``xp``'s arrays can be edited in place (PyTorch, NumPy)."""
    return _is_torch(xp) or _is_numpy(xp)


def _tensorflow_under_xla() -> bool:
    """Whether TensorFlow is building a graph that XLA compiles (``jit_compile=True``)."""
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:  # TensorFlow's own test of it; not a public API
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow without it
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


def tensorflow_graph_outside_xla() -> bool:
    """Whether TensorFlow is building a graph (``tf.function``, graph mode) that XLA does not
    compile."""
    import tensorflow as tf

    return not tf.executing_eagerly() and not _tensorflow_under_xla()


def keeps_log_softmax(xp: Any) -> bool:
    """Whether the backward keeps the fused log-softmax and takes the softmax as its ``exp``.

    PyTorch: always (the logits may then be edited in place after the forward, as with its own
    loss). TensorFlow: except under XLA, which fuses the softmax into the gradient (keeping
    log p stores one ``(N, C)`` array more there); its CPU softmax kernel otherwise takes five
    times as long as an ``exp`` at 10 classes.
    """
    return _is_torch(xp) or (_is_tensorflow(xp) and not _tensorflow_under_xla())


def has_fused_softmax(xp: Any) -> bool:
    """Whether ``xp``'s framework has fused (log-)softmax kernels that this module calls."""
    return _is_torch(xp) or _is_tensorflow(xp)


def log_sum_exp(xp: Any, z: Any) -> tuple[Any, Any]:
    r""":math:`\log \sum_c e^{z_c}` over the last axis, as ``(m, s)`` with the sum ``m + s``.

    ``m`` is the row maximum and ``s = log sum exp(z - m)`` lies in ``[0, log C]``. Kept apart,
    ``(z_y - m) - s`` keeps the digits that ``z_y - (m + s)`` loses when the logits are large
    (at 1e4 in float32, ``m + s`` rounds ``s`` to a multiple of 1e-3).
    A row whose maximum is ``-inf`` (all ``-inf``) is shifted by a finite value instead and gives
    ``-inf``. A row holding ``+inf`` gives NaN, as the fused kernels of PyTorch and TensorFlow
    do: its softmax is undefined. Both are written with ``minimum``/``maximum`` rather than
    ``where``: XLA's CPU backend fuses the former into the reductions, not the latter.
    """
    if _numpy_in_blocks(xp, z):
        from . import _numpy_blocks

        shift, s, _, _ = _numpy_blocks.log_sum_exp_and_exps(z, None, keep=False)
        return shift, s
    shift, s, _, _ = _log_sum_exp_and_exps(xp, z)
    return shift, s


def _row_max(xp: Any, z: Any) -> Any:
    """``max(z, axis=-1)``, also for Dask on an empty batch.

    Dask's ``max`` of a ``(0, C)`` array over its non-empty last axis fails when computed (its
    per-chunk step drops the axes of an empty chunk); an empty batch has no row to take a
    maximum of, so there an empty ``(0,)`` array stands in.
    """
    if _is_dask(xp) and any(d == 0 for d in z.shape[:-1]):
        return xp.zeros(tuple(z.shape[:-1]), dtype=z.dtype)
    return xp.max(z, axis=-1)


def _log_sum_exp_and_exps(
    xp: Any, z: Any, weights: Any | None = None
) -> tuple[Any, Any, Any, Any | None]:
    if _numpy_in_blocks(xp, z):
        from . import _numpy_blocks

        return _numpy_blocks.log_sum_exp_and_exps(z, weights, keep=True)
    # (N,) rather than keepdims (N, 1) row values: XLA's CPU backend gives every (N, 1)
    # operation a fusion of its own (at C = 10 that tripled the time of the loss)
    m = _row_max(xp, z)
    big = xp.finfo(z.dtype).max
    shift = xp.maximum(m, -big)
    if not _is_jax(xp):
        # finite, so that NumPy meets no inf - inf at a +inf logit (the row is NaN anyway);
        # XLA's CPU backend fuses no clamp into its reductions
        shift = xp.minimum(shift, big)
    shifted = z - shift[..., None]
    # sum_c a_c (m - z_c) from z - m before the exp pass overwrites it (NumPy: one temporary)
    weighted = None if weights is None else -weighted_sum(xp, weights, shifted, overwrite=True)
    exps = exp_of_fresh(xp, shifted)
    s = xp.log(xp.sum(exps, axis=-1))
    # m - max(m, -big): 0 for a finite maximum, -inf for -inf (log 0 already) and NaN for +inf
    s = s + (m - xp.maximum(m, -big))
    return shift, s, exps, weighted


def _numpy_in_blocks(xp: Any, z: Any) -> bool:
    """Whether :func:`._numpy_blocks.log_sum_exp_and_exps` takes the place of the standard
    spelling."""
    return _is_numpy(xp) and not _differentiable_depth and z.ndim >= 1 and z.size > 0


def log_sum_exp_keeping_exps(
    xp: Any, z: Any, *, for_xla: bool = False, weights: Any | None = None
) -> tuple[Any, Any, Any | None, Any | None]:
    r""":func:`log_sum_exp` and, for NumPy, the array ``exp(z - m)`` it went through (else None),
    and for NumPy with ``weights`` :math:`a \ge 0` also :math:`\sum_c a_c (m - z_c)` (else None).

    NumPy runs forward and backward back to back (``value_and_grad``) and does every pass for
    real: keeping the exponentials for :func:`softmax` spares the backward its ``exp`` pass, at
    the price of holding one ``(N, C)`` array from the forward pass, which becomes the gradient.
    ``for_xla``: JAX keeps them too (traced: XLA then computes the exponentials once, for the
    sum and the gradient; 0.95 of optax's time at 65536x10 against 1.17 with a second ``exp``).
    The weighted sum comes from ``z - m`` before its exponential is taken in place: NumPy makes
    no second ``(N, C)`` temporary for it.
    """
    numpy = _is_numpy(xp)
    shift, s, exps, weighted = _log_sum_exp_and_exps(xp, z, weights if numpy else None)
    return shift, s, exps if numpy or (for_xla and _is_jax(xp)) else None, weighted


def weighted_sum(xp: Any, a: Any, d: Any, *, overwrite: bool = False) -> Any:
    r""":math:`\sum_c a_c d_c` over the last axis, for ``a >= 0`` and ``d`` of one sign that may
    be infinite, with :math:`0 \cdot \infty = 0` (a masked class carrying no target weight).

    ``overwrite``: ``d`` is a fresh array the caller gives up; PyTorch and NumPy then work in it
    instead of allocating two more arrays of its size (on a CPU a fresh large array costs as much
    as the arithmetic, in page faults).

    ``where(a == 0, 0, d)`` is the plain spelling. Under XLA's CPU backend a ``where`` over the
    ``(N, C)`` array stops the reduction from fusing (several times slower), so under XLA (JAX,
    TensorFlow's ``jit_compile=True``), where ``d >= 0`` is required, it clamps ``d`` at the
    largest float instead and restores ``+inf`` where some ``a > 0`` met ``d = +inf``, with
    ``minimum``/``maximum`` only, in the same sum.
    """
    if (
        _is_torch(xp)
        and not _differentiable_depth
        and d.device.type == "cpu"
        and a.dtype == d.dtype  # linalg.vecdot does not promote
        and not python_is_traced()
    ):
        return _torch_eager_weighted_sum(a, d)
    if overwrite and writable(xp, d) and _is_torch(xp):
        return d.masked_fill_(a == 0, 0.0).mul_(a).sum(dim=-1)
    if overwrite and writable(xp, d):
        from . import _numpy_blocks

        return _numpy_blocks.weighted_sum_in_place(a, d)
    if _differentiable_depth:
        # the product by 0 is dropped only where it would be NaN (d infinite), so that the
        # derivative by a is d wherever d is finite, a zero target included
        zero = xp.zeros((), dtype=d.dtype, device=device_of(xp, d))
        return xp.sum(a * xp.where((a == 0) & xp.isinf(d), zero, d), axis=-1)
    if _is_torch(xp):  # one temporary instead of two
        return d.masked_fill(a == 0, 0.0).mul_(a).sum(dim=-1)
    xla = _compiled_by_xla(xp)
    if _is_tensorflow(xp) and not xla:
        import tensorflow as tf

        # one kernel (0 where a == 0, whatever d) instead of a compare, a select and a product
        return tf.reduce_sum(tf.math.multiply_no_nan(d, a), axis=-1)
    if not xla:
        zero = xp.zeros((), dtype=d.dtype, device=device_of(xp, d))
        return xp.sum(a * xp.where(a == 0, zero, d), axis=-1)
    big = xp.finfo(d.dtype).max
    # d - big is 0 or less wherever d is finite and +inf where d is, so the second term is
    # (a big) big there, +inf for a > 1 / big, and 0 elsewhere (min(0, a big), never 0 * inf);
    # one reduction: a second one (a row maximum of the hits) doubled the time of the loss
    hits = xp.minimum(xp.maximum(d - big, 0.0), a * big) * big
    return xp.sum(a * xp.minimum(d, big) + hits, axis=-1)


def _torch_eager_weighted_sum(a: Any, d: Any) -> Any:
    """:func:`weighted_sum` for eager PyTorch on a CPU: one pass over ``a`` and ``d``
    (``torch.linalg.vecdot``) instead of a compare, a masked copy, a product and a sum; only the
    rows where a ``0 * inf`` made NaN (or that hold a NaN, which stays NaN) are summed again
    with the mask. Reading the NaN test back is free on a CPU, but a synchronisation on a GPU
    and a graph break under ``torch.compile``, which keep the masked spelling."""
    import torch

    total = torch.linalg.vecdot(a, d)
    redo = torch.isnan(total)
    if bool(redo.any()):
        a, d = torch.broadcast_tensors(a, d)
        rows_a = a[redo]
        total[redo] = d[redo].masked_fill_(rows_a == 0, 0.0).mul_(rows_a).sum(dim=-1)
    return total


def rows_with_bad_targets(xp: Any, t: Any) -> Any:
    """Whether each row (last axis) of the targets ``t`` holds a negative entry; for the
    standard spelling, also a NaN one.

    ``~(min(t) >= 0)``, where a NaN minimum fails the test. TensorFlow's NaN-propagating
    ``min`` takes three passes over ``t`` (a minimum, ``isnan``, ``any``; under XLA the
    ``isnan`` lands in ``(N, C)`` memory), so TensorFlow takes its plain one-pass minimum,
    which XLA's CPU backend lets skip a NaN: a NaN target already makes its row's loss and
    gradient NaN by arithmetic (it enters the weighted sum and the row's target total).
    """
    if _is_tensorflow(xp) and not _differentiable_depth:
        import tensorflow as tf

        return tf.logical_not(tf.reduce_min(t, axis=-1) >= 0)
    return ~(xp.min(t, axis=-1) >= 0)


def weighted_sum_marks_negative(xp: Any) -> bool:
    """Whether :func:`weighted_sum` gives a negative (or NaN) sum to every row holding a
    negative (or NaN) ``a``: the spelling under XLA, whose second term is then ``(a big) big``,
    at most ``-1e32`` in float32 (``-inf`` for ``a < -1 / big``)."""
    return _compiled_by_xla(xp) and not _differentiable_depth


def _compiled_by_xla(xp: Any) -> bool:
    """Whether ``xp``'s arrays are being traced for XLA (JAX; TensorFlow under
    ``jit_compile=True``)."""
    return _is_jax(xp) or (_is_tensorflow(xp) and _tensorflow_under_xla())


def subtract_product(xp: Any, x: Any, a: Any, b: Any) -> Any:
    """``x - a * b`` (broadcast to ``x``'s shape), in place in ``x`` where arrays are mutable.

    ``x`` must be a fresh array the caller owns.
    """
    if writable(xp, x) and _is_torch(xp):
        return x.addcmul_(a, b, value=-1.0)
    if writable(xp, x) and _is_numpy(xp) and x.size > 0 and x.ndim >= 1 and x.flags.c_contiguous:
        from . import _numpy_blocks

        return _numpy_blocks.subtract_product(x, a, b)
    if writable(xp, x):
        x -= a * b
        return x
    return x - a * b


def has_fused_log_softmax_vjp(xp: Any) -> bool:
    """Whether :func:`log_softmax_vjp` is one fused kernel (PyTorch's)."""
    return _is_torch(xp)


def log_softmax_vjp(xp: Any, log_p: Any, cotangent: Any) -> Any:
    r"""The logits' gradient through :math:`\log p = \operatorname{log\_softmax}(z)`, given the
    cotangent :math:`\bar\ell` of :math:`\log p`: a fresh array

    .. math:: \bar z_c = \bar\ell_c - p_c \sum_k \bar\ell_k .

    PyTorch's own backward kernel of ``log_softmax`` reads :math:`\bar\ell` and :math:`\log p`
    and writes the result in one pass where the spelled-out form takes four.
    """
    if _is_torch(xp):
        import torch

        return torch.ops.aten._log_softmax_backward_data(cotangent, log_p, -1, log_p.dtype)
    return cotangent - xp.exp(log_p) * xp.sum(cotangent, axis=-1)[..., None]


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


def softmax(
    xp: Any,
    z: Any,
    lse: tuple[Any, Any] | None = None,
    exps: Any | None = None,
    *,
    row_scale: Any | None = None,
    log_p: Any | None = None,
) -> Any:
    """``softmax(z)`` over the last axis, times ``row_scale[..., None]`` if given: a fresh array.

    ``lse``, the ``(m, s)`` of :func:`log_sum_exp`, spares the standard spelling a pass when the
    caller has it, and ``exps`` (``exp(z - m)``, from :func:`log_sum_exp_keeping_exps`) another:
    it is scaled in place, by the normaliser and ``row_scale`` at once, and returned.
    ``log_p``, the log-softmax itself, gives the softmax as its ``exp`` (``z`` is then unused).
    """
    if log_p is not None:
        p = xp.exp(log_p)
    elif exps is not None:
        assert lse is not None  # exps come with their log-sum-exp
        _, s = lse
        factor = xp.exp(-s) if row_scale is None else xp.exp(-s) * row_scale
        if not writable(xp, exps):
            return exps * factor[..., None]
        exps *= factor[..., None]
        return exps
    elif _is_torch(xp):
        import torch

        p = torch.softmax(z, dim=-1)
    elif _is_tensorflow(xp):
        import tensorflow as tf

        p = tf.nn.softmax(z, axis=-1)
    else:
        m, s = log_sum_exp(xp, z) if lse is None else lse
        p = exp_of_fresh(xp, (z - m[..., None]) - s[..., None])
    if row_scale is not None:
        if writable(xp, p):
            p *= row_scale[..., None]
        else:
            p = p * row_scale[..., None]
    return p


def sigmoid(xp: Any, x: Any) -> Any:
    r""":math:`1 / (1 + e^{-x})` without overflow for either sign (a fresh array)."""
    if _is_torch(xp):
        import torch

        return torch.sigmoid(x)
    if _is_tensorflow(xp):
        import tensorflow as tf

        return tf.math.sigmoid(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(xp: Any, x: Any) -> Any:
    r""":math:`\log(1 + e^{x})` by the framework's kernel: its derivatives are right at every order.

    (Written with ``abs`` or ``maximum`` it has the wrong derivative at ``x = 0`` under autodiff.)
    """
    if _is_torch(xp):
        import torch

        return torch.nn.functional.softplus(x)
    if _is_tensorflow(xp):
        import tensorflow as tf

        return tf.math.softplus(x)
    if _is_jax(xp):
        import jax

        return jax.nn.softplus(x)
    return xp.logaddexp(xp.zeros_like(x), x)


def fused_sigmoid_cross_entropy(xp: Any, x: Any, t: Any, pos_weight: Any | None) -> Any | None:
    r"""``sigmoid_cross_entropy_terms`` for PyTorch and NumPy in fewer passes, or None elsewhere.

    The same non-negative form, :math:`x\,(H(x) - t) + L \log(1 + e^{-|x|})` with the step
    :math:`H(x) = [x \ge 0]`: :math:`x (H - t)` is :math:`|x| (1 - t)` or :math:`|x|\, t`, the very
    products (bit for bit) of ``|x| * where(x >= 0, 1 - t, t)``, without the select. The passes
    are accumulated in place (eager PyTorch and NumPy pay for every fresh array). PyTorch's own
    kernel, :math:`(1-t)\,x - L \log\sigma(x)`, is not used: at logits near 1e28 it loses 20 ulp
    to cancellation, and the textbook :math:`\max(x, 0) - x t + \log(1 + e^{-|x|})` loses
    millions of ulp for targets near 1 (:math:`x - x t` cancels).
    """
    kept = sigmoid_cross_entropy_keeping_exps(xp, x, t, pos_weight)
    return None if kept is None else kept[0]


def sigmoid_cross_entropy_keeping_exps(
    xp: Any, x: Any, t: Any, pos_weight: Any | None
) -> tuple[Any, tuple[Any, Any] | None] | None:
    r""":func:`fused_sigmoid_cross_entropy`, and for NumPy (and TensorFlow under XLA) without
    ``pos_weight`` the pair ``(exp(-|x|), x >= 0)`` it went through (else None in its place),
    for :func:`sigmoid_from_exps`: NumPy runs forward and backward back to back, XLA compiles
    them into one program, and the backward then needs no exponential of its own. None where
    the framework has no fused spelling.
    """
    if _differentiable_depth:
        return None  # the core's differentiable spelling (abs and relu: 0 derivative at 0)
    if _is_numpy(xp) and pos_weight is None:
        from . import _numpy_blocks

        return _numpy_blocks.sigmoid_cross_entropy(x, t)
    if _is_tensorflow(xp) and pos_weight is None and _tensorflow_under_xla():
        return _xla_sigmoid_cross_entropy(x, t)
    if not _is_torch(xp):
        return None
    import torch

    # relu, a step and addcmul rather than where(x >= 0, ...): torch.where with a random mask
    # runs at a tenth of the speed of the arithmetic on CPU
    if pos_weight is not None:
        loss = torch.log1p(torch.exp(torch.neg(torch.abs(x))))
        loss = loss * (1.0 + (pos_weight - 1.0) * t)  # may broadcast: not in place
        return loss + (1.0 - t) * torch.relu(x) + pos_weight * t * torch.relu(torch.neg(x)), None
    loss = torch.abs(x)
    if not writable(xp, loss):  # autograd records these ops (a direct call under grad mode)
        step = (x >= 0).to(x.dtype)
        return torch.log1p(torch.exp(torch.neg(loss))) + x * (step - t), None
    step = torch.ge(x, 0, out=torch.empty_like(loss))  # H(x) in x's dtype, in one pass
    # (F.softplus of -|x| is one kernel instead of three, but slower on CPU: 1.67 ms against
    # 1.35 at 1048576 elements)
    return loss.neg_().exp_().log1p_().addcmul_(x, step.sub_(t)), None


def within_unit_interval(xp: Any, x: Any) -> bool:
    """True if every entry of the floating array ``x`` is known to lie in [0, 1] from one
    reduction; False says nothing (the full check decides).

    NumPy: the bit patterns of ``x`` read as unsigned integers are at most that of ``1.0``
    exactly for the entries in ``[+0, 1]``: a negative number or ``-0.0`` has the sign bit set and
    a NaN or anything above 1 a larger pattern. One maximum instead of a minimum and a maximum.
    TensorFlow: the same test on eager CPU tensors (``tf.bitcast`` copies nothing), which spares
    the eager value check of the sigmoid's labels one reduction and one read-back.
    """
    if _is_tensorflow(xp):
        return _tensorflow_within_unit_interval(x)
    if not _is_numpy(xp) or x.size == 0 or x.dtype.kind != "f":
        return False
    import numpy as np

    bits = np.dtype(f"u{x.dtype.itemsize}")
    return bool(np.max(x.view(bits)) <= np.ones((), dtype=x.dtype).view(bits))


# the unsigned dtype of each TensorFlow float's size, and the bit pattern of 1.0 in each float
_TF_UNSIGNED_OF_SIZE = {2: "uint16", 4: "uint32", 8: "uint64"}
_TF_BITS_OF_ONE = {
    "float16": 0x3C00,
    "bfloat16": 0x3F80,
    "float32": 0x3F800000,
    "float64": 0x3FF0000000000000,
}


def _tensorflow_within_unit_interval(x: Any) -> bool:
    """:func:`within_unit_interval` for TensorFlow: eager floating tensors on a CPU only."""
    import tensorflow as tf

    if (
        not tf.executing_eagerly()
        or not x.dtype.is_floating
        or x.shape.num_elements() == 0
        or not x.device.endswith("CPU:0")
        or x.dtype.name not in _TF_BITS_OF_ONE
    ):
        return False
    bits = getattr(tf, _TF_UNSIGNED_OF_SIZE[x.dtype.size])
    return int(tf.reduce_max(tf.bitcast(x, bits))) <= _TF_BITS_OF_ONE[x.dtype.name]


def summed_sigmoid_cross_entropy(
    xp: Any, x: Any, t: Any, pos_weight: Any | None
) -> tuple[Any, tuple[Any, Any]] | None:
    r"""The sum over all elements of :func:`fused_sigmoid_cross_entropy` and the pair of
    :func:`sigmoid_cross_entropy_keeping_exps`, for NumPy without ``pos_weight`` on a non-empty
    array (else None): each block's losses are summed while in the cache, and the element-wise
    losses are never stored (one array of the logits' size less to write, fault in and read)."""
    if _differentiable_depth or not _is_numpy(xp) or pos_weight is not None or x.size == 0:
        return None
    from . import _numpy_blocks

    return _numpy_blocks.sigmoid_cross_entropy(x, t, summed=True)


def _xla_sigmoid_cross_entropy(x: Any, t: Any) -> tuple[Any, tuple[Any, Any]]:
    """The core's standard spelling (bit for bit), keeping ``exp(-|x|)`` and ``x >= 0``: XLA
    compiles forward and backward into one program, and its HLO otherwise takes the
    exponential twice (``exp(-|x|)`` for the loss, the logistic for the gradient)."""
    import tensorflow as tf

    exps = tf.exp(-tf.abs(x))
    positive = x >= 0
    loss = x * (tf.cast(positive, x.dtype) - t) + tf.math.log1p(exps)
    return loss, (exps, positive)


def sigmoid_from_exps(xp: Any, kept: tuple[Any, Any]) -> Any:
    r""":math:`\sigma(x) = [x \ge 0 \;?\; 1 : e] / (1 + e)` from the pair ``(e, x >= 0)`` of
    :func:`sigmoid_cross_entropy_keeping_exps` (``e = exp(-|x|)``), written into ``e`` for
    NumPy (the values of :func:`sigmoid`'s standard spelling, bit for bit), a fresh array for
    TensorFlow."""
    exps, positive = kept
    if not _is_numpy(xp):
        one = xp.ones((), dtype=exps.dtype, device=device_of(xp, exps))
        return xp.where(positive, one, exps) / (1.0 + exps)
    from . import _numpy_blocks

    return _numpy_blocks.sigmoid_gradient(exps, positive, None, None)


def sigmoid_gradient_from_exps(xp: Any, kept: tuple[Any, Any], t: Any, scale: Any | None) -> Any:
    r""":math:`(\sigma(x) - t)\,s` from the pair of :func:`sigmoid_cross_entropy_keeping_exps`,
    ``t`` of the logits' shape and ``s`` a 0-d array (or None for 1): for NumPy in ``e``, one
    cache-sized block at a time, else a fresh array."""
    if _is_numpy(xp):
        from . import _numpy_blocks

        return _numpy_blocks.sigmoid_gradient(*kept, t, scale)
    grad = sigmoid_from_exps(xp, kept) - t
    return grad if scale is None else grad * scale


def exp_of_fresh(xp: Any, x: Any) -> Any:
    """``exp(x)`` for an array the caller just made: PyTorch and NumPy write it in place."""
    if writable(xp, x) and _is_torch(xp):
        return x.exp_()
    if writable(xp, x):
        import numpy as np

        return np.exp(x, out=x)
    return xp.exp(x)


def take_along_last_axis(xp: Any, x: Any, index: Any) -> Any:
    r"""``x[..., index[...]]``: the entry :math:`x_{i, y_i}` of each row, ``index`` in range.

    By the namespace's ``take_along_axis`` where it has one. Dask has none (and no gather whose
    index is itself a Dask array): there the entry is selected with a one-hot mask and summed,
    :math:`\sum_c [c = y_i]\, x_{ic}`, one element-wise pass that keeps every chunk, also along
    the class axis, and adds exact zeros only (a NaN or infinity elsewhere in the row is dropped).
    """
    if _is_jax(xp):
        import jax.numpy as jnp

        # the index is in range: no NaN fill (a compare and a select per row under XLA)
        at = index[..., None]
        return jnp.take_along_axis(x, at, axis=-1, mode="promise_in_bounds")[..., 0]
    if _is_torch(xp):  # the index is in range: a plain gather (no negative-index fix-up)
        return x.gather(-1, index[..., None])[..., 0]
    take_along_axis = getattr(xp, "take_along_axis", None)
    if take_along_axis is not None:
        return take_along_axis(x, index[..., None], axis=-1)[..., 0]
    classes = xp.arange(x.shape[-1], dtype=index.dtype, device=device_of(xp, x))
    zero = xp.zeros((), dtype=x.dtype, device=device_of(xp, x))
    return xp.sum(xp.where(classes == index[..., None], x, zero), axis=-1)


def add_at_index(xp: Any, x: Any, index: Any, values: Any) -> Any:
    """``x`` with ``values[i]`` added at ``x[i, index[i]]`` (last axis); may update ``x`` in place.

    ``x`` must be a fresh array the caller owns: PyTorch scatters into it.
    """
    if _is_torch(xp) and python_is_traced():
        import torch

        classes = torch.arange(x.shape[-1], device=x.device)
        return torch.where(classes == index[..., None], x + values[..., None], x)
    if _is_torch(xp):
        if not writable(xp, x):
            return x.scatter_add(-1, index[..., None], values[..., None])
        return x.scatter_add_(-1, index[..., None], values[..., None])
    if writable(xp, x):
        import numpy as np

        at = index[..., None]
        picked = np.take_along_axis(x, at, axis=-1)
        np.put_along_axis(x, at, picked + values[..., None], axis=-1)
        return x
    if _is_tensorflow(xp):
        import tensorflow as tf

        num_classes = x.shape[-1]
        if num_classes is not None and num_classes <= _ONE_HOT_MAX_CLASSES:
            # a few classes: one one-hot pass beats the scatter and its index stack (0.8 ms
            # against 1.9 at 65536x10 on CPU); the scatter wins at 32000 classes. Under XLA the
            # one-hot fuses into the pass that scales the softmax, where the scatter is a
            # fusion of its own (XLA f+b at 65536x10: 0.95 -> 0.89 of native)
            onehot = tf.one_hot(tf.cast(index, tf.int32), num_classes, dtype=x.dtype)
            return x + onehot * values[..., None]
        # one update per row instead of a one-hot pass over (..., C); shapes may be dynamic
        flat = tf.reshape(x, [-1, tf.shape(x)[-1]])
        flat_index = tf.cast(tf.reshape(index, [-1]), tf.int64)
        rows = tf.range(tf.shape(flat_index, out_type=tf.int64)[0], dtype=tf.int64)
        updated = tf.tensor_scatter_nd_add(
            flat, tf.stack([rows, flat_index], axis=1), tf.reshape(values, [-1])
        )
        return tf.reshape(updated, tf.shape(x))
    classes = xp.arange(x.shape[-1], dtype=index.dtype, device=device_of(xp, x))
    return x + xp.where(classes == index[..., None], values[..., None], xp.zeros_like(x))


class RowBlocks:
    """An array of ``shape`` assembled from consecutive blocks of rows, cast to ``dtype``.

    Where arrays are mutable (PyTorch, NumPy) each block is written into one preallocated array,
    so the result is never held twice; elsewhere (JAX, TensorFlow) the blocks are concatenated
    at the end (under ``jax.jit`` XLA assembles them in place).
    """

    def __init__(self, xp: Any, shape: tuple[int, ...], dtype: Any, device: Any) -> None:
        self._xp = xp
        self._dtype = dtype
        self._blocks: list[Any] = []
        self._out = None
        if _is_torch(xp) or _is_numpy(xp):
            self._out = xp.empty(shape, dtype=dtype, device=device)

    def put(self, start: int, stop: int, block: Any) -> None:
        """Rows ``start:stop`` of the result."""
        if self._out is None:
            self._blocks.append(self._xp.astype(block, self._dtype, copy=False))
        else:
            self._out[start:stop, ...] = block

    def result(self) -> Any:
        if self._out is not None:
            return self._out
        return self._xp.concat(self._blocks, axis=0)
