r"""Vocabulary-parallel cross entropy inside ``jax.shard_map``: the class axis over a mesh axis.

Inside a function mapped with ``jax.shard_map`` whose logits (or output projection rows) are
split over the mesh axis ``axis_name``, :func:`vocab_parallel_cross_entropy` and
:func:`vocab_parallel_linear_cross_entropy` return the loss of the whole class axis, the same on
every device, from ``lax.pmax`` and ``lax.psum`` of ``(N,)`` vectors only (the core's
:mod:`xentropy._vocab_parallel`; its docstring has the math)::

    mesh = jax.make_mesh((4,), ("vocab",))
    loss = jax.shard_map(
        functools.partial(vocab_parallel_cross_entropy, axis_name="vocab", reduction="mean"),
        mesh=mesh, in_specs=(P(None, "vocab"), P()), out_specs=P(),
    )(logits, labels)

**Uneven vocabularies.** ``shard_map`` needs equal blocks, so the class axis is padded at its end
to ``k * L`` (``k`` devices of ``L`` columns each: ``jnp.pad`` the logits, or the weight rows,
with anything) and ``num_classes=V`` says how many are real: device ``r`` holds classes
``[r L, min((r + 1) L, V))``, the padding is ignored (its gradient is 0). With
:math:`L = \lceil V / k \rceil` this is the split of ``torch.chunk`` and of XLA
(``xentropy._vocab_parallel.split_sizes``): ``V = 1000`` over 3 devices gives 334, 334, 332.

**Derivatives.** Each loss is a ``jax.custom_jvp``, as the dialect's losses
(``_custom_derivative``): the first-order derivative of the logits (of ``hidden``, ``weight``
and ``bias`` for the fused loss, all three for a reduced loss) is the core's analytic gradient,
computed with the forward and contracted with the tangent (one ``psum`` of the contraction); its
transpose, ``jax.grad``, needs no collective for the logits. The gradient of an input that is
replicated over ``axis_name`` (``hidden``) is summed over the devices (a ``psum`` of ``(N, D)``,
which is what ``shard_map``'s own autodiff would insert). Every other input (probability labels,
class weights, traced ``label_smoothing`` / ``z_loss`` / ``softcap``) and every higher order
(``jax.hessian``, ``jax.jacfwd`` of the gradient) is JAX's autodiff of the core's forward (its
``pmax`` under ``stop_gradient``: the loss does not depend on the shift). This needs
``shard_map``'s replication types (``check_vma=True``, the default): the logits (the weight rows)
must vary over ``axis_name``.

Errors: shapes and options raise at trace time (the same program on every device, so every
device raises alike). Label values are traced inside ``shard_map``: a label outside
``[0, V)`` (and not ``ignore_index``) gives NaN for its example's loss and gradient on every
device.

**The dialect's losses on sharded arrays.** Under ``jax.jit`` with logits placed with a
``NamedSharding`` split on the class axis, XLA partitions
``softmax_cross_entropy_with_integer_labels`` itself; ``tests/test_jax_sharded.py`` checks the
compiled HLO for an all-gather of the ``(N, V)`` logits.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from xentropy import ops
from xentropy._errors import Dialect, ShapeMismatch, dialect_names, forward_parameters
from xentropy._native import differentiable_spelling
from xentropy._vocab_parallel import (
    VocabParallelCrossEntropy,
    VocabParallelLinearCrossEntropy,
    VocabShard,
)

# the tangent plumbing is the dialect's own (one custom_jvp machinery for both)
from ._custom_derivative import JAX, _exact_jvp, _is_zero, _perturbed, _substituted

__all__ = ["AxisCollectives", "vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]


@dataclasses.dataclass(frozen=True)
class AxisCollectives:
    """The core's :class:`~xentropy._vocab_parallel.Collectives` over a ``shard_map`` axis."""

    axis_name: Any

    def all_max(self, x: jax.Array) -> jax.Array:
        return lax.pmax(lax.stop_gradient(x), self.axis_name)

    def all_sum(self, x: jax.Array) -> jax.Array:
        return lax.psum(x, self.axis_name)


def _axis_size(axis_name: Any) -> int:
    size = getattr(lax, "axis_size", None)
    return int(size(axis_name)) if size is not None else int(lax.psum(1, axis_name))


def _varying(x: Any) -> frozenset[Any] | None:
    """The mesh axes ``x`` varies over inside ``shard_map`` (None where JAX does not say)."""
    aval = jax.typeof(x)
    vma = getattr(aval, "vma", None)
    if vma is None:
        vma = getattr(getattr(aval, "manual_axis_type", None), "varying", None)
    return None if vma is None else frozenset(vma)


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What the rules know at trace time (hashable): the core operator without its array
    hyperparameters (their values follow the ``num_arrays`` arrays among the dynamic
    arguments), the mesh axis and the class count."""

    op: Any
    axis_name: Any
    num_classes: int | None
    num_arrays: int
    hyperparameters: tuple[str, ...]

    @property
    def linear(self) -> bool:
        return isinstance(self.op, VocabParallelLinearCrossEntropy)

    @property
    def gradient_positions(self) -> tuple[int, ...]:
        """The arrays the analytic gradient covers: the logits, or hidden, weight and bias."""
        return (0, 1, 3) if self.linear else (0,)

    def operator(self, dynamic: tuple[Any, ...]) -> Any:
        if not self.hyperparameters:
            return self.op
        values = dict(zip(self.hyperparameters, dynamic[self.num_arrays :], strict=True))
        return dataclasses.replace(self.op, **values)

    def width(self, arrays: tuple[Any, ...]) -> int:
        return arrays[1].shape[0] if self.linear else arrays[0].shape[-1]

    def shard(self, width: int) -> VocabShard:
        return _shard(self.axis_name, width, self.num_classes)

    @property
    def collectives(self) -> AxisCollectives:
        return AxisCollectives(self.axis_name)


def _shard(axis_name: Any, width: int, num_classes: int | None) -> VocabShard:
    """Device ``r`` holds classes ``[r L, min((r + 1) L, V))`` of the padded class axis."""
    world = _axis_size(axis_name)
    vocab = width * world if num_classes is None else num_classes
    start = lax.axis_index(axis_name) * width
    size: Any = width
    if vocab != width * world:
        size = jnp.clip(vocab - start, 0, width)
    return VocabShard(start, size, vocab, world_size=world)


def _forward(spec: _Spec, dynamic: tuple[Any, ...]) -> jax.Array:
    arrays = dynamic[: spec.num_arrays]
    op = spec.operator(dynamic)
    shard = spec.shard(spec.width(arrays))
    loss, _ = op.forward(jnp, *arrays, shard=shard, collectives=spec.collectives)
    return loss


def _exact_loss(spec: _Spec, dynamic: tuple[Any, ...]) -> jax.Array:
    """The loss as plain JAX operations, for JAX's autodiff (every input, every order)."""
    with differentiable_spelling():
        return _forward(spec, dynamic)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _run(spec: _Spec, *dynamic: Any) -> jax.Array:
    return _forward(spec, dynamic)


def _run_jvp(spec: _Spec, primals: tuple[Any, ...], tangents: tuple[Any, ...]):
    loss_ndim = 0 if spec.op.reduction != "none" else primals[0].ndim - 1
    fast: list[int] = []
    if not spec.hyperparameters:
        for position in spec.gradient_positions:
            per_row_ok = loss_ndim == 0 or position == 0
            if not _is_zero(tangents[position]) and per_row_ok:
                fast.append(position)
    exact = tuple(p for p in _perturbed(tangents) if p not in fast)
    parts: list[Any] = []
    if fast:
        loss, gradients = _value_and_grad(spec, *primals)
        by_position = dict(zip(spec.gradient_positions, gradients, strict=True))
        sharded, replicated = [], []
        for position in fast:
            product = by_position[position] * tangents[position]
            axes = None if loss_ndim == 0 else -1
            contracted = jnp.sum(product, axis=axes)
            # a gradient that varies over the axis is this device's share of the contraction
            varying = _varying(by_position[position])
            (sharded if varying and spec.axis_name in varying else replicated).append(contracted)
        if sharded:
            parts.append(lax.psum(functools.reduce(jnp.add, sharded), spec.axis_name))
        parts.extend(replicated)
        parts = [p.astype(loss.dtype) for p in parts]
    else:
        loss = _run(spec, *primals)
    if exact:
        _, exact_tangent = _exact_jvp(
            functools.partial(_exact_loss, spec), primals, tangents, exact
        )
        parts.append(exact_tangent.astype(loss.dtype))
    tangent = functools.reduce(jnp.add, parts) if parts else jnp.zeros_like(loss)
    return loss, tangent


def _replicated_sum(spec: _Spec, gradient: Any, like: Any) -> Any:
    """``gradient`` of an input that does not vary over the axis (``hidden``): the sum of the
    devices' shares, as ``shard_map``'s autodiff gives it."""
    if gradient is None:
        return None
    varying = _varying(like)
    if varying is not None and spec.axis_name not in varying:
        return lax.psum(gradient, spec.axis_name)
    return gradient


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _value_and_grad(spec: _Spec, *dynamic: Any) -> tuple[jax.Array, tuple[Any, ...]]:
    """The loss and the analytic gradient of its sum, for :attr:`_Spec.gradient_positions`."""
    arrays = dynamic[: spec.num_arrays]
    op, shard, collectives = spec.op, spec.shard(spec.width(arrays)), spec.collectives
    if spec.linear:
        needs = (True, True, arrays[3] is not None)
        loss, residuals, stored = op.forward_and_backward(
            jnp, *arrays, shard=shard, collectives=collectives, needs=needs
        )
        ones = jnp.ones_like(loss)
        # in the compute dtype: the devices' shares of the hidden states' gradient are added
        # before they are rounded to a 16-bit dtype (one rounding, as on a single device)
        if stored is None:
            gradients = op.backward(jnp, residuals, ones, cast=False)
        else:
            gradients = op.stored_backward(jnp, residuals, stored, ones, cast=False)
    else:
        loss, residuals = op.forward(jnp, *arrays, shard=shard, collectives=collectives)
        gradients = (op.backward(jnp, residuals, jnp.ones_like(loss)),)
    gradients = tuple(
        None if g is None else _replicated_sum(spec, g, arrays[p]).astype(arrays[p].dtype)
        for g, p in zip(gradients, spec.gradient_positions, strict=True)
    )
    return loss, gradients


def _exact_value_and_grad(spec: _Spec, dynamic: tuple[Any, ...]) -> tuple[jax.Array, Any]:
    positions = tuple(p for p in spec.gradient_positions if dynamic[p] is not None)
    loss, pullback = jax.vjp(
        lambda *values: _exact_loss(spec, _substituted(dynamic, positions, values)),
        *(dynamic[p] for p in positions),
    )
    by_position = dict(zip(positions, pullback(jnp.ones_like(loss)), strict=True))
    return loss, tuple(by_position.get(p) for p in spec.gradient_positions)


def _value_and_grad_jvp(spec: _Spec, primals: tuple[Any, ...], tangents: tuple[Any, ...]):
    """Second and higher orders: the tangent of the exact loss and gradient."""
    primal_out = _value_and_grad(spec, *primals)
    _, tangent_out = _exact_jvp(
        functools.partial(_exact_value_and_grad, spec), primals, tangents, _perturbed(tangents)
    )
    tangent_out = jax.tree.map(lambda t, p: t.astype(p.dtype), tangent_out, primal_out)
    return primal_out, tangent_out


_run.defjvp(_run_jvp, symbolic_zeros=True)
_value_and_grad.defjvp(_value_and_grad_jvp, symbolic_zeros=True)


def _checked(
    op: Any,
    arrays: tuple[Any, ...],
    shard: VocabShard,
    validate: bool,
    names: tuple[str, ...],
    errors: Dialect,
) -> Any:
    """``op`` after its checks (value checks where the values are concrete; inside
    ``shard_map`` they are traced, and bad rows give NaN)."""
    mapping = dialect_names(forward_parameters(op), names, 0)
    with errors.raising(mapping):
        if validate:
            try:
                op.check(jnp, *arrays, shard=shard, values=True)
            except jax.errors.ConcretizationTypeError:
                pass
            else:
                return dataclasses.replace(op, values_checked=True)
        op.check(jnp, *arrays, shard=shard, values=False)
    return op


def _check_varies(x: Any, name: str, axis_name: Any) -> None:
    varying = _varying(x)
    if _axis_size(axis_name) > 1 and varying is not None and axis_name not in varying:
        raise ShapeMismatch(
            f"{name} must vary over the mesh axis {axis_name!r} (its slice of the classes on "
            f"each device: a shard_map in_spec naming {axis_name!r}, with check_vma=True)",
            argument=name,
        )


def _check_padding(width: int, num_classes: int | None, axis_name: Any, name: str) -> None:
    world = _axis_size(axis_name)
    if num_classes is not None and not 0 <= num_classes <= width * world:
        raise ShapeMismatch(
            f"num_classes={num_classes} does not fit {world} devices of {width} classes each "
            f"({name}); the padded class axis holds {width * world}",
            argument="num_classes",
            value=num_classes,
        )


def _apply(op: Any, arrays: tuple[Any, ...], *, axis_name: Any, num_classes: int | None,
           validate: bool, names: tuple[str, ...]) -> jax.Array:  # fmt: skip
    spec_width = arrays[1].shape[0] if isinstance(op, VocabParallelLinearCrossEntropy) else None
    width = spec_width if spec_width is not None else arrays[0].shape[-1]
    shard = _shard(axis_name, width, num_classes)
    op = _checked(op, arrays, shard, validate, names, JAX)
    hyperparameters = ops.array_hyperparameters(op)
    dynamic = tuple(sorted(hyperparameters))
    static_op = dataclasses.replace(op, **dict.fromkeys(dynamic)) if dynamic else op
    spec = _Spec(static_op, axis_name, num_classes, len(arrays), dynamic)
    values = tuple(jnp.asarray(hyperparameters[name]) for name in dynamic)
    return _run(spec, *arrays, *values)


def _is_local(class_weight: Any | None, axis_name: Any) -> bool | None:
    """Class weights that vary over the axis are each device's block; replicated ones the
    global vector (None: JAX does not say, and the length tells)."""
    if class_weight is None:
        return None
    varying = _varying(class_weight)
    return None if varying is None else axis_name in varying


def _as_jax(x: Any) -> Any:
    return None if x is None else jnp.asarray(x)


def vocab_parallel_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: Any,
    num_classes: int | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: str = "none",
    softcap: ArrayLike | None = None,
    z_loss: ArrayLike = 0.0,
    validate: bool = True,
) -> jax.Array:
    r"""Softmax cross entropy of logits split over the mesh axis ``axis_name`` on their last
    axis, inside ``jax.shard_map``: :func:`xentropy.softmax_cross_entropy` of the whole logits.

    .. math::

        \ell_i = -\sum_c a_{ic} \log \operatorname{softmax}(z_i)_c
            + \lambda_z w_{y_i} \operatorname{lse}(z_i)^2, \qquad
        a_{ic} = w_c \Big((1-\varepsilon)\, t_{ic} + \frac{\varepsilon}{V}\Big)

    Args:
        logits: this device's ``(..., L)`` block of the class axis (floating; computed in float32
            for 16-bit dtypes).
        labels: ``(...)`` integer class indices in ``[0, V)``, global and the same on every
            device, or this device's ``(..., L)`` block of class probabilities.
        axis_name: the ``shard_map`` mesh axis the classes are split over.
        num_classes: :math:`V` when the class axis was padded at its end to ``k * L`` (module
            docstring); None: ``k * L``, no padding.
        class_weight: the global ``(V,)`` class weights, replicated over ``axis_name``, or this
            device's ``(L,)`` block (an in_spec naming ``axis_name``).
        ignore_index: a label whose examples count neither in the loss nor in the mean.
        label_smoothing: :math:`\varepsilon`, spread over the :math:`V` classes (global).
        reduction: ``"none"`` (per-example losses, as optax), ``"sum"``, ``"mean"`` (PyTorch's
            weighted mean) or ``"sum_over_batch_size"``.
        softcap, z_loss: Gemma 2's :math:`s \tanh(z / s)` and PaLM's
            :math:`\lambda_z \operatorname{lse}^2`, as in the dialect's losses.
        validate: check label values where they are concrete (never inside ``shard_map``, where
            a bad label gives a NaN loss and gradient for its example, on every device).

    Returns:
        The loss, the same on every device (``out_specs=P()``), in the dtype of ``logits``.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    _check_varies(logits, "logits", axis_name)
    _check_padding(logits.shape[-1], num_classes, axis_name, "logits")
    class_weight = _as_jax(class_weight)
    op = VocabParallelCrossEntropy(
        local_class_weight=_is_local(class_weight, axis_name),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        softcap=softcap,
        z_loss=z_loss,
    )
    arrays = (logits, labels, class_weight)
    return _apply(
        op, arrays, axis_name=axis_name, num_classes=num_classes, validate=validate,
        names=("logits", "labels", "class_weight"),
    )  # fmt: skip


def vocab_parallel_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: Any,
    bias: ArrayLike | None = None,
    num_classes: int | None = None,
    class_weight: ArrayLike | None = None,
    chunk_size: int | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: str = "mean",
    softcap: ArrayLike | None = None,
    z_loss: ArrayLike = 0.0,
    validate: bool = True,
) -> jax.Array:
    r"""Cross entropy of ``hidden @ weight.T + bias`` with the rows of the output projection
    split over ``axis_name``, inside ``jax.shard_map``, without the ``(N, L)`` logits at once:
    :func:`xentropy.backends.jax.linear_cross_entropy` of the whole weight.

    Args:
        hidden: ``(..., D)`` hidden states, replicated over ``axis_name`` (``P()``); their
            gradient is summed over the devices.
        weight: this device's ``(L, D)`` rows of the ``(V, D)`` projection.
        labels: as in :func:`vocab_parallel_cross_entropy` (probabilities in ``[0, 1]``).
        bias: this device's ``(L,)`` entries, or None.
        chunk_size: logits per block of rows, as the single-device op (rows are taken in blocks
            of :func:`~xentropy._linear.gradient_rows` of :math:`\lceil V / k \rceil`).
        num_classes, class_weight, ignore_index, label_smoothing, softcap, z_loss, validate: as
            in :func:`vocab_parallel_cross_entropy`.
        reduction: ``"mean"`` (default, as the dialect's ``linear_cross_entropy``), ``"sum"``,
            ``"none"`` or ``"sum_over_batch_size"``.

    Returns:
        The loss, the same on every device, in the dtype of ``hidden``.
    """
    hidden, weight, labels = jnp.asarray(hidden), jnp.asarray(weight), jnp.asarray(labels)
    _check_varies(weight, "weight", axis_name)
    if weight.ndim == 2:
        _check_padding(weight.shape[0], num_classes, axis_name, "weight")
    class_weight = _as_jax(class_weight)
    op = VocabParallelLinearCrossEntropy(
        local_class_weight=_is_local(class_weight, axis_name),
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    arrays = (hidden, weight, labels, _as_jax(bias), class_weight)
    return _apply(
        op, arrays, axis_name=axis_name, num_classes=num_classes, validate=validate,
        names=("hidden", "weight", "labels", "bias", "class_weight"),
    )  # fmt: skip
