r"""Vocabulary-parallel cross entropy over a ``torch.distributed`` process group.

Tensor parallelism shards the output layer over the vocabulary: rank :math:`r` of a group of
:math:`k` holds a contiguous slice ``[start_r, start_r + V_r)`` of the :math:`V` classes (its
logits, or its rows of the projection). These functions compute the loss of the whole
vocabulary from the slices, with the numerics of the single-device losses
(:mod:`xentropy._vocab_parallel`, the core), so a sharded run gives the unsharded numbers:

.. math::

    M_i = \max_r \max_{c \in r} z_{ic}, \qquad
    \operatorname{lse}_i = M_i + \log \sum_r \sum_{c \in r} e^{z_{ic} - M_i},

combined by all-reduces of ``(N,)`` vectors only: one ``MAX`` of the row maxima, then one
``SUM`` of a ``(j, N)`` stack (the summed exponentials, the target logit, and the smoothing and
weight terms that the options need). Label smoothing uses the global class count :math:`V`.

**Collectives per call**, all ``all_reduce`` on ``group`` (no all-gather, no ``(N, V)``
array ever crosses the group):

* one or two control reductions of small ``int64`` tables: ``(k, 4)`` (each rank's width, row
  count, dtype and whether its input passed the checks), and, when no ``split`` is declared, a
  ``(k,)`` vector of error flags after the checks that need the split;
* the loss: ``(N,)`` ``MAX``, then ``(j, N)`` ``SUM``, ``j <= 5`` (the fused loss: the same pair
  per block of rows);
* the backward: none for :func:`vocab_parallel_cross_entropy` (the gradient of the local logits
  is the core's analytic :math:`p_{ic} \sigma_i - a_{ic}` from the saved ``(N,)`` statistics);
  one ``(N, D)`` ``SUM`` for :func:`vocab_parallel_linear_cross_entropy`, the gradient of the
  replicated ``hidden`` (each rank's partial :math:`\partial z^{(r)} W^{(r)}`, summed).

**Gradients.** The loss is replicated: every rank returns the same value, and every rank calls
``backward`` with the same cotangent (as after any replicated loss). A rank's gradient is that of
its own inputs: the local logits (or the local weight and bias rows), and, for the fused loss,
the whole gradient of ``hidden`` (summed over the ranks, so that a replicated ``hidden`` gets
the same full gradient everywhere, as Megatron's "copy to the tensor-parallel region").
First order only: a backward that autograd records (``create_graph=True``: double backward,
gradient penalties, Hessian-vector products) raises ``RuntimeError`` on every rank (the second
derivative couples the shards through collectives that the analytic backward does not run);
forward-mode AD and ``torch.func`` transforms are refused by autograd (the ``Function`` defines
no ``jvp`` / ``setup_context``). Class weights and probability targets are constants (no
gradient), as PyTorch's ``weight``.

**Bad input fails on every rank alike.** Each rank checks its inputs (the core's checks, which
return the error instead of raising it), then the ranks agree through the control reduction
before any rank raises: a class index out of range, a bad option or a wrong shape raises on
every rank with the same message (a rank whose own input passed receives the error of the
lowest rank that failed, by ``broadcast_object_list``, the one extra collective of this path),
never one rank raising while the others wait in the next collective. A rank holding a number of
classes that does not fit ``split`` (or ``num_classes``), or ranks with different numbers of
rows or dtypes, get an error naming the ranks and the sizes, computed alike on every rank from
the table. With ``validate=False`` the value checks are skipped (a device synchronisation on
GPUs) and a bad class index gives NaN, in the loss of every rank and in the gradient of its
row; the shape, dtype and split checks always run.

Every rank of ``group`` must call the function, with the same options, ``target`` and number of
rows (``target`` replicated).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.autograd.function import FunctionCtx

from xentropy import ops
from xentropy._errors import (
    InputError,
    ShapeMismatch,
    WrongDtype,
    dialect_names,
    forward_parameters,
)
from xentropy._vocab_parallel import (
    VocabParallelCrossEntropy,
    VocabParallelLinearCrossEntropy,
    VocabShard,
    split_error,
)

from ._errors import TORCH, require_tensors

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]

_REDUCTIONS = ("none", "mean", "sum")
# dtype -> the code the control table carries (0: not floating; the core's checks reject it)
_DTYPE_CODES = {torch.float16: 1, torch.bfloat16: 2, torch.float32: 3, torch.float64: 4}
_CODE_NAMES = {0: "a non-floating dtype", **{c: str(d) for d, c in _DTYPE_CODES.items()}}


class GroupCollectives:
    """The core's :class:`~xentropy._vocab_parallel.Collectives` on a process group:
    ``all_reduce`` (``MAX``, ``SUM``) of a fresh contiguous copy, on every rank of ``group``."""

    def __init__(self, group: Any = None) -> None:
        self.group = group

    def _reduce(self, x: torch.Tensor, op: Any) -> torch.Tensor:
        y = x.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y, op=op, group=self.group)
        return y

    def all_max(self, x: torch.Tensor) -> torch.Tensor:
        return self._reduce(x, dist.ReduceOp.MAX)

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        return self._reduce(x, dist.ReduceOp.SUM)


def vocab_parallel_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    group: Any = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    z_loss: float = 0.0,
    softcap: float | None = None,
    split: Sequence[int] | None = None,
    num_classes: int | None = None,
    validate: bool = True,
) -> torch.Tensor:
    r"""Softmax cross entropy of logits whose class axis (the last) is split over ``group``.

    .. math::

        \ell_i = -\sum_c w_c \Big((1-\varepsilon)\, t_{ic} + \frac{\varepsilon}{V}\Big)
        \log \operatorname{softmax}(z_i)_c + \lambda_z\, w_{y_i} \operatorname{lse}(z_i)^2

    over all :math:`V` classes of the group (with ``softcap`` :math:`s`, of
    :math:`s \tanh(z / s)`): the value of ``xentropy.backends.torch.functional.cross_entropy``
    on the concatenated logits, on every rank.

    Args:
        logits: this rank's slice ``(..., V_r)`` of the classes (the ranks' slices in rank
            order make the class axis); leading dimensions any, the same on every rank. The
            slices may be uneven, and empty.
        target: global class indices ``(...)`` in ``[0, V)`` (or ``ignore_index``), the same on
            every rank; or this rank's slice ``(..., V_r)`` of class probabilities.
        group: the process group of the vocabulary shards (None: the default group).
        weight: class weights, the global ``(V,)`` vector or this rank's slice ``(V_r,)``,
            told apart by length (a vector of ``V`` entries is global; with ``V_r == V``, one
            rank, both read the same). Any other length is an error naming the rank.
        ignore_index, label_smoothing, reduction: as ``F.cross_entropy`` (``"mean"`` divides
            by the summed weight of the kept targets).
        z_loss: PaLM's :math:`\lambda_z`, weighted with the example (0 disables it).
        softcap: Gemma 2's :math:`s`, or None.
        split: the declared classes per rank (e.g. ``torch.chunk``'s ``(334, 334, 332)`` of
            1000 over 3); a rank holding another number raises on every rank, naming it and
            the sizes. Declaring it saves one control reduction.
        num_classes: the declared :math:`V` (the ranks' widths must add up to it).
        validate: check the values of ``target`` and ``weight`` (a device sync on GPUs).

    Returns:
        The loss, the same on every rank (``(...)`` for ``reduction="none"``), in ``logits``'
        dtype; its gradient is that of the local ``logits``, with no collective.
    """
    require_tensors("vocab_parallel_cross_entropy", logits=logits, target=target)
    op = VocabParallelCrossEntropy(
        ignore_index=None if tuple(target.shape) == tuple(logits.shape) else ignore_index,
        label_smoothing=label_smoothing,
        reduction=_reduction(reduction),
        softcap=softcap,
        z_loss=z_loss,
    )
    op, shard = _agree(
        group, op, ("logits", "target", "weight"), (logits, target, weight), sharded="logits",
        width=logits.shape[-1] if logits.ndim >= 1 else 0, rows=_rows(logits.shape[:-1]),
        dtype=logits.dtype, split=split, num_classes=num_classes, validate=validate,
    )  # fmt: skip
    w = None if weight is None else weight.detach()
    t = target.detach() if target.is_floating_point() else target
    return _ShardedLoss.apply(logits, op, t, w, shard, GroupCollectives(group))


def vocab_parallel_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    group: Any = None,
    class_weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    split: Sequence[int] | None = None,
    num_classes: int | None = None,
    validate: bool = True,
) -> torch.Tensor:
    r"""Cross entropy of ``hidden @ weight.T + bias`` with ``weight``'s rows (the classes) split
    over ``group``, never holding the local ``(N, V_r)`` logits at once.

    .. math::

        z_i^{(r)} = \operatorname{cap}(W^{(r)} h_i + b^{(r)}), \qquad
        \ell_i = \text{the loss of } [z_i^{(0)}, \dots, z_i^{(k-1)}]
        \text{ as in } :func:`vocab\_parallel\_cross\_entropy`

    The value of ``xentropy.backends.torch.fused.linear_cross_entropy`` with the concatenated
    weight rows, on every rank. Under autograd with ``"mean"`` or ``"sum"`` the gradients are
    computed in the forward pass, blocks of rows at a time (as the single-device fused loss;
    each block makes its own ``MAX`` / ``SUM`` pair of ``(B,)`` vectors).

    Args:
        hidden: ``(..., D)`` hidden states, the same on every rank (replicated).
        weight: this rank's rows ``(V_r, D)`` of the output projection.
        target: global class indices ``(...)``, replicated; or this rank's slice ``(..., V_r)``
            of class probabilities.
        bias: this rank's ``(V_r,)`` bias entries, or None.
        class_weight: class weights, global ``(V,)`` or this rank's ``(V_r,)`` (named so because
            ``weight`` is the projection here).
        chunk_size: logits per block of rows, as the single-device fused loss.
        group, ignore_index, label_smoothing, reduction, z_loss, softcap, split, num_classes,
            validate: as :func:`vocab_parallel_cross_entropy`.

    Returns:
        The loss, the same on every rank. Its backward gives ``weight`` and ``bias`` the
        gradient of this rank's rows, and ``hidden`` the gradient of the whole loss, summed
        over the ranks by one ``all_reduce`` of ``(N, D)`` in the backward (the same on every
        rank, as a replicated input needs).
    """
    require_tensors(
        "vocab_parallel_linear_cross_entropy", hidden=hidden, weight=weight, target=target
    )
    probabilities = target.ndim == hidden.ndim and target.ndim > 0
    op = VocabParallelLinearCrossEntropy(
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=None if probabilities else ignore_index,
        label_smoothing=label_smoothing,
        reduction=_reduction(reduction),
    )
    op, shard = _agree(
        group, op, ("hidden", "weight", "target", "bias", "class_weight"),
        (hidden, weight, target, bias, class_weight), sharded="weight",
        width=weight.shape[0] if weight.ndim == 2 else 0, rows=_rows(hidden.shape[:-1]),
        dtype=hidden.dtype, split=split, num_classes=num_classes, validate=validate,
    )  # fmt: skip
    # 16-bit hidden states: the core computes in float32 anyway; handing it float32 keeps the
    # gradient of hidden in float32 until it is summed over the ranks (one rounding, after)
    compute = torch.float32 if torch.finfo(hidden.dtype).bits < 32 else hidden.dtype
    cw = None if class_weight is None else class_weight.detach()
    t = target.detach() if target.is_floating_point() else target
    # grad mode is off inside an autograd.Function's forward: whether autograd records this
    # call (and so whether the gradients are worth computing in the forward) is asked here
    recorded = torch.is_grad_enabled()
    loss = _ShardedLinearLoss.apply(
        hidden.to(compute), weight, bias, op, t, cw, shard, GroupCollectives(group), recorded
    )
    return loss.to(hidden.dtype)


def _reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{reduction!r} is not a valid value for reduction; use one of {_REDUCTIONS}"
        )
    return reduction


def _rows(shape: Sequence[int]) -> int:
    rows = 1
    for n in shape:
        rows *= int(n)
    return rows


# --- agreement across the ranks before any rank raises --------------------------------------


def _agree(
    group: Any,
    op: Any,
    names: tuple[str, ...],
    arrays: tuple[Any, ...],
    *,
    sharded: str,
    width: int,
    rows: int,
    dtype: torch.dtype,
    split: Sequence[int] | None,
    num_classes: int | None,
    validate: bool,
) -> tuple[Any, VocabShard]:
    """Check the inputs on every rank, agree, and raise alike or return ``(op, shard)``.

    ``arrays`` are those of ``op.input_error``; ``sharded`` the core's name of the one split
    over the ranks (its width is ``width``). With ``split`` declared the checks
    run before the one control reduction; otherwise the table of widths defines the split, and
    a second reduction (of error flags) follows the checks that need it.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    values = validate and not torch.compiler.is_compiling()
    mapping = dialect_names(forward_parameters(op), names, 0)
    error: BaseException | None = None
    declared = None if split is None else [int(s) for s in split]
    if declared is not None and len(declared) == world and width == declared[rank]:
        shard = VocabShard.from_sizes(declared, rank)
        error = _input_error(op, arrays, shard, values, mapping)
    # on the inputs' device: NCCL reduces device tensors only
    device = next((a.device for a in arrays if isinstance(a, torch.Tensor)), None)
    table = torch.zeros(world, 4, dtype=torch.int64, device=device)
    row = [width, rows, _DTYPE_CODES.get(dtype, 0), int(error is not None)]
    table[rank] = torch.tensor(row, device=device)
    dist.all_reduce(table, group=group)
    widths, row_counts, codes, failed = (table[:, j].tolist() for j in range(4))
    same = _table_error(row_counts, codes) or split_error(
        widths, num_classes=num_classes, declared=declared, name=sharded
    )
    if same is not None:  # the same table on every rank: the same error, raised alike
        raise TORCH.translate(same, mapping) if isinstance(same, InputError) else same
    shard = VocabShard.from_sizes(widths, rank)
    if declared is None:
        error = _input_error(op, arrays, shard, values, mapping)
        flags = torch.zeros(world, dtype=torch.int64, device=device)
        flags[rank] = int(error is not None)
        dist.all_reduce(flags, group=group)
        failed = flags.tolist()
    if any(failed):
        _raise_alike(error, next(r for r, f in enumerate(failed) if f), group)
    if values:
        op = dataclasses.replace(op, values_checked=True)
    return op, shard


def _input_error(
    op: Any, arrays: tuple[Any, ...], shard: VocabShard, values: bool, mapping: dict[str, str]
) -> BaseException | None:
    """The core's error for this rank's input (translated to PyTorch's classes and names)."""
    try:
        xp = ops.namespace_of(*arrays)
        error = op.input_error(xp, *arrays, shard=shard, values=values)
    except Exception as unexpected:  # a check that could not even run: still agree first
        return unexpected
    return None if error is None else TORCH.translate(error, mapping)


def _table_error(rows: list[int], codes: list[int]) -> InputError | None:
    """Ranks whose row counts or dtypes differ (their collectives could not pair up)."""
    if len(set(rows)) > 1:
        listed = ", ".join(f"rank {r}: {n}" for r, n in enumerate(rows))
        return ShapeMismatch(
            f"every rank must hold the same rows (the targets are replicated); got {listed}",
            shape=tuple(rows),
        )
    if len(set(codes)) > 1:
        listed = ", ".join(f"rank {r}: {_CODE_NAMES[c]}" for r, c in enumerate(codes))
        return WrongDtype(f"every rank must hold the same dtype; got {listed}")
    return None


def _raise_alike(error: BaseException | None, source: int, group: Any) -> None:
    """Raise rank ``source``'s error on every rank (it is sent to the others)."""
    box = [error]
    dist.broadcast_object_list(box, group_src=source, group=group)
    shared = box[0]
    assert isinstance(shared, BaseException)
    if error is None and hasattr(shared, "add_note"):
        shared.add_note(f"(raised on every rank of the group: the error of rank {source}'s input)")
    raise shared


# --- autograd --------------------------------------------------------------------------------


def _padded(x: torch.Tensor | None, width: int) -> torch.Tensor | None:
    """An empty slice widened to one padding column (the core's padding is past ``size``)."""
    if x is None or width:
        return x
    return torch.zeros((*x.shape[:-1], 1), dtype=x.dtype, device=x.device)


def _empty_shard(shard: VocabShard, device: torch.device) -> VocabShard:
    """An empty shard as one with an array size (0), whose local arrays may be padded."""
    return dataclasses.replace(shard, size=torch.zeros((), dtype=torch.int64, device=device))


def _first_order_only() -> None:
    """Refuse a backward that autograd records (``create_graph=True``): its gradient would not
    be differentiable, and a silent second derivative of 0 would be wrong."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            "the vocabulary-parallel losses have first-order gradients only: a backward with "
            "create_graph=True (double backward, a gradient penalty, a Hessian-vector product) "
            "is not supported, because the second derivative couples the shards through "
            "collectives; use the unsharded loss for higher orders"
        )


class _ShardedLoss(torch.autograd.Function):
    """The core's forward with its collectives, and its analytic backward of the local logits
    (no collective)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: torch.Tensor,
        op: VocabParallelCrossEntropy,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        shard: VocabShard,
        collectives: GroupCollectives,
    ) -> torch.Tensor:
        width = logits.shape[-1]
        z, t, w = logits, target, weight
        if width == 0:
            shard = _empty_shard(shard, logits.device)
            z = _padded(logits, 0)
            t = _padded(target, 0) if target.is_floating_point() else target
            if weight is not None and weight.shape[0] == 0:
                w = _padded(weight, 0)
        xp = ops.namespace_of(z)
        loss, residuals = op.forward(xp, z, t, w, shard=shard, collectives=collectives)
        ctx.save_for_backward(logits)
        ctx.rest = residuals[1:]
        ctx.op = op
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        _first_order_only()
        (logits,) = ctx.saved_tensors
        z = _padded(logits, logits.shape[-1])
        xp = ops.namespace_of(z)
        grad = ctx.op.backward(xp, (z, *ctx.rest), grad_output)
        return grad[..., : logits.shape[-1]], None, None, None, None, None


class _ShardedLinearLoss(torch.autograd.Function):
    """The core's fused forward (gradients in the forward under autograd), and the backward
    that scales them and sums the gradient of ``hidden`` over the ranks."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        op: VocabParallelLinearCrossEntropy,
        target: torch.Tensor,
        class_weight: torch.Tensor | None,
        shard: VocabShard,
        collectives: GroupCollectives,
        recorded: bool,
    ) -> torch.Tensor:
        width = weight.shape[0]
        w, b, t, cw = weight, bias, target, class_weight
        if width == 0:
            shard = _empty_shard(shard, weight.device)
            w = torch.zeros((1, weight.shape[1]), dtype=weight.dtype, device=weight.device)
            b = _padded(bias, 0)
            t = _padded(target, 0) if target.is_floating_point() else target
            if class_weight is not None and class_weight.shape[0] == 0:
                cw = _padded(class_weight, 0)
        xp = ops.namespace_of(hidden)
        needs = tuple(ctx.needs_input_grad[:3])
        arrays = (hidden, w, t, b, cw)
        if recorded and any(needs):
            loss, residuals, gradients = op.forward_and_backward(
                xp, *arrays, shard=shard, collectives=collectives, needs=needs
            )
        else:
            (loss, residuals), gradients = (
                op.forward(xp, *arrays, shard=shard, collectives=collectives),
                None,
            )
        ctx.residuals, ctx.gradients, ctx.op = residuals, gradients, op
        ctx.width, ctx.group = width, collectives.group
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        _first_order_only()
        xp = ops.namespace_of(grad_output)
        gradients, ctx.gradients = ctx.gradients, None
        if gradients is None:
            grads = ctx.op.backward(xp, ctx.residuals, grad_output)
        else:
            grads = ctx.op.stored_backward(xp, ctx.residuals, gradients, grad_output)
        grad_h, grad_w, grad_b = grads
        if ctx.needs_input_grad[0]:
            dist.all_reduce(grad_h, group=ctx.group)
        if ctx.width == 0:
            grad_w = None if grad_w is None else grad_w[:0]
            grad_b = None if grad_b is None else grad_b[:0]
        needs = ctx.needs_input_grad
        return (
            grad_h if needs[0] else None,
            grad_w if needs[1] else None,
            grad_b if needs[2] else None,
            None,
            None,
            None,
            None,
            None,
            None,
        )
