r"""Vocabulary-parallel cross entropy: the class axis split over a group of shards.

Each shard holds a contiguous slice ``[start, start + size)`` of the :math:`V` classes: its
local logits :math:`z^{(r)}` (``(..., L)``, ``L >= size``; the columns past ``size`` are
padding, ignored), or, for the fused loss, its rows :math:`W^{(r)}` (``(L, D)``) of the output
projection and its bias entries. The targets (class indices, global, in ``[0, V)``) and the hidden
states are replicated. The shards combine per-example statistics with two collectives of the
caller's framework (:class:`Collectives`) over ``(N,)`` vectors only, never ``(N, V)``:

.. math::

    M_i = \max_r \max_{c \in r} z_{ic} \quad (\texttt{all\_max}), \qquad
    \Big[S_i,\; z_{i y_i},\; R_i,\; A_i,\; \dots\Big]
        = \sum_r \Big[\sum_{c \in r} e^{z_{ic} - M_i},\; [y_i \in r]\, z_{i y_i},\;
        \sum_{c \in r} a_{ic} (M_i - z_{ic}),\; \sum_{c \in r} a_{ic},\; \dots\Big]
        \quad (\texttt{all\_sum})

(the second is one ``(k, N)`` stack: one collective), with :math:`\operatorname{lse}_i = M_i +
\log S_i`. The target weights are those of the single-device losses
(:mod:`xentropy._softmax`, :mod:`xentropy._linear`), with the *global* class count :math:`V`:
:math:`a_{ic} = w_c ((1 - \varepsilon) t_{ic} + \varepsilon / V)`. For class indices

.. math::

    \ell_i = (1 - \varepsilon)\, e_i \big((M_i - z_{i y_i}) + \log S_i\big)
        + \frac{\varepsilon}{V} \big(R_i + W \log S_i\big)
        + \lambda_z e_i \operatorname{lse}_i^2,

:math:`e_i = w_{y_i}` (0 if ignored), :math:`W = \sum_c w_c`, :math:`R_i = \sum_c w_c (M_i -
z_{ic})` (summed only with smoothing); for probability targets :math:`\ell_i = A_i \log S_i + R_i
+ \lambda_z \operatorname{lse}_i^2`. The loss (reduced as the single-device losses reduce:
``"mean"`` divides by :math:`\sum_i e_i`, or :math:`N` for probabilities) is the same on every
shard. The gradient of the local logits needs no collective, from the ``(N,)`` residuals:

.. math::

    \frac{\partial \ell_i}{\partial z_{ic}} = p_{ic}\, \sigma_i - a_{ic}, \qquad
    p_{ic} = e^{z_{ic} - \operatorname{lse}_i}, \qquad
    \sigma_i = \sum_k a_{ik} + 2 \lambda_z e_i \operatorname{lse}_i

for the local classes :math:`c` (chained through Gemma 2's cap :math:`s \tanh(x / s)` by
:math:`1 - \tanh^2(x / s)` when ``softcap`` is set). The max needs no gradient: the loss does not
depend on :math:`M_i` (a framework's ``all_max`` may stop its gradient).

**The fused loss** (:class:`VocabParallelLinearCrossEntropy`) takes blocks of rows
(:func:`~xentropy._linear.gradient_rows` of the local vocabulary), each with its two collectives
of ``(B,)`` vectors, and computes in the same pass :math:`\partial z` of the block and from it
(three matrix products) the local :math:`\partial W^{(r)} \mathrel{+}= \partial z^\top h`,
:math:`\partial b^{(r)}` and this shard's *partial* :math:`\partial h^{(r)} = \partial z\,
W^{(r)}`: the gradient of the hidden states is :math:`\sum_r \partial h^{(r)}`, an all-reduce of
``(N, D)`` that the caller's framework does (JAX's ``shard_map`` inserts it when ``hidden`` is
replicated; a torch wrapper calls ``all_reduce``). It never holds more than one block's
``(B, L)`` logits.

**Splits** (:func:`split_sizes`): by default the ceiling rule of ``torch.chunk``, of DTensor's
``Shard`` placement and of XLA's sharding of an axis that does not divide: every shard holds
:math:`\lceil V / k \rceil` classes but the last ones (``V = 1000`` over 3: 334, 334, 332; a
shard may be empty: 5 over 4 gives 2, 2, 1, 0), so that padding the class axis at its end to
:math:`k \lceil V / k \rceil` gives equal blocks (``shard_map``). ``balanced=True`` gives
``numpy.array_split``'s (334, 333, 333).

**Class weights** are the global ``(V,)`` vector (every shard takes its slice, and :math:`W`,
:math:`e_i` directly) or this shard's slice, told apart by their length: a vector of ``V``
entries is global, one of the local width ``L`` (``!= V``) local (its :math:`W` and
:math:`e_i` join the ``all_sum`` stack); any other length is an error naming the shard. The
operators' ``local_class_weight`` option says which instead (where ``L == V``: one shard, or
JAX's typing, where a block that varies over the mesh axis is local even at one device).

**Bad input across shards.** :meth:`VocabParallelCrossEntropy.input_error` (and the fused
loss's) run the checks and *return* the error instead of raising it, so that a framework can
all-reduce an error flag first and raise on every shard alike (:func:`error_on_other_shard` for
the shards whose own input passed): a shard never raises while the others wait in the next
collective. A class index outside ``[0, V)`` is seen alike by every shard (the targets are
replicated); under tracing (or ``validate=False``) such a row's loss and gradient are NaN on
every shard, the NaN riding on the summed ``(N,)`` terms. :func:`split_error` names the shard
whose size does not fit the declared split.

**A framework wrapper** (one call, on every shard):

1. ``shard = VocabShard.from_sizes(sizes, rank)`` from every shard's local width (gathered, or
   :func:`split_sizes` of a declared split), and ``split_error(sizes, ...)``;
2. ``error = op.input_error(xp, *arrays, shard=shard, values=validate and eager)``;
3. one collective of an error flag; raise ``error``, or :func:`error_on_other_shard`, on every
   shard if any has one; else, if the values were checked,
   ``op = dataclasses.replace(op, values_checked=True)`` (drops the NaN masks);
4. ``loss, residuals = op.forward(xp, *arrays, shard=shard, collectives=c)`` and
   ``op.backward(xp, residuals, cotangent)`` (the fused loss: ``forward_and_backward`` then
   ``stored_backward``; sum the hidden states' gradient over the shards).

Not covered here (the single-device losses have them): ``sample_weight``, ``where`` and
``return_lse``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._checks import (
    NON_NEGATIVE,
    POSITIVE,
    Hyperparameter,
    check_class_indices,
    check_finite_number,
    check_floating,
    check_range,
    check_reduction,
    check_same_shape,
    check_unit_interval,
    format_shape,
    may_be_nonzero,
)
from ._class_targets import (
    SparseTargets,
    cast_weight,
    hyperparameter_in,
    indexing_dtype,
    label_smoothing_in,
    nan_where,
    sparse_targets,
)
from ._errors import InputError, InvalidOption, ShapeMismatch, WrongDtype, ref
from ._evaluate import CheckedValues, hyperparameter
from ._linear import add_into, add_product, check_projection, gradient_rows
from ._namespace import compute_dtype, device_of
from ._native import RowBlocks, add_at_index, take_along_last_axis
from ._reduction import reduce_backward, reduce_losses


class Collectives(Protocol):
    """The two reductions over the shards of the class axis that a framework supplies.

    Each takes an array of the same shape and dtype on every shard and returns, on every shard,
    the element-wise maximum (``all_max``) or sum (``all_sum``) over the shards. The core calls
    them with ``(N,)`` vectors (``all_max``) and ``(k, N)`` stacks of them (``all_sum``, one
    call for all the sums a pass needs), in the same order on every shard.
    """

    def all_max(self, x: Any) -> Any: ...

    def all_sum(self, x: Any) -> Any: ...


@dataclass(frozen=True)
class VocabShard:
    """This shard's classes: ``[start, start + size)`` of ``num_classes``.

    ``start`` and ``size`` are ints, or 0-d integer arrays (JAX's ``shard_map``, where they
    follow ``lax.axis_index``). The local arrays may be wider than ``size``: the columns past it
    are padding. ``rank`` (the shard's position, for messages) is optional; ``world_size``
    (the number of shards) sizes the fused loss's row blocks (:meth:`block_width`).
    """

    start: Any
    size: Any
    num_classes: int
    rank: int | None = None
    world_size: int | None = None

    def block_width(self) -> int:
        r"""The vocabulary width the fused loss sizes its row blocks by: :math:`\lceil V / k
        \rceil` (``V`` when ``world_size`` is None), the same on every shard, so that every
        shard takes the same blocks and their collectives pair up."""
        return block_size(self.num_classes, self.world_size or 1)

    @property
    def stop(self) -> Any:
        return self.start + self.size

    @classmethod
    def from_sizes(cls, sizes: Sequence[int], rank: int) -> VocabShard:
        """Shard ``rank`` of consecutive slices of ``sizes`` classes each."""
        sizes = [int(s) for s in sizes]
        return cls(sum(sizes[:rank]), sizes[rank], sum(sizes), rank, len(sizes))

    @classmethod
    def of_split(
        cls, num_classes: int, world_size: int, rank: int, *, balanced: bool = False
    ) -> VocabShard:
        """Shard ``rank`` of :func:`split_sizes`."""
        sizes = split_sizes(num_classes, world_size, balanced=balanced)
        return cls.from_sizes(sizes, rank)

    def static_size(self) -> int | None:
        return self.size if isinstance(self.size, int) else None


def split_sizes(num_classes: int, world_size: int, *, balanced: bool = False) -> tuple[int, ...]:
    r"""Classes per shard: :math:`\min(\lceil V/k \rceil, \max(0, V - r \lceil V/k \rceil))`
    (``torch.chunk``'s, DTensor's and XLA's rule: 1000 over 3 is 334, 334, 332), or with
    ``balanced`` ``numpy.array_split``'s (the first :math:`V \bmod k` shards one more: 334, 333,
    333)."""
    if world_size < 1 or num_classes < 0:
        raise InvalidOption(
            f"a split needs world_size >= 1 and num_classes >= 0; got {world_size}, {num_classes}",
            argument="world_size",
            value=world_size,
        )
    if balanced:
        base, extra = divmod(num_classes, world_size)
        return tuple(base + (r < extra) for r in range(world_size))
    block = -(-num_classes // world_size)
    return tuple(min(block, max(0, num_classes - r * block)) for r in range(world_size))


def block_size(num_classes: int, world_size: int) -> int:
    r""":math:`\lceil V / k \rceil`: the width of every shard once the class axis is padded to
    a multiple of ``world_size`` (the ceiling rule of :func:`split_sizes`)."""
    return -(-num_classes // world_size)


class ShardInputError(InputError, ValueError):
    """Another shard rejected its input; this one stops too instead of waiting for it."""

    kind = "option"


def split_error(
    sizes: Sequence[int],
    *,
    num_classes: int | None = None,
    declared: Sequence[int] | None = None,
    name: str = "logits",
) -> InputError | None:
    """The error for shard sizes (one per rank, as gathered) that do not fit, else None.

    ``declared``: the sizes the caller's split gives each rank; ``num_classes``: their sum. The
    message names the first rank whose size differs, and every size: the same text on every
    rank that knows ``sizes``.
    """
    sizes = [int(s) for s in sizes]
    shown = ", ".join(str(s) for s in sizes)
    if declared is not None:
        declared = [int(s) for s in declared]
        for rank, (got, want) in enumerate(zip(sizes, declared, strict=False)):
            if got != want:
                return ShapeMismatch(
                    f"rank {rank} holds {got} classes in {ref(name)} but the declared split of "
                    f"{sum(declared)} classes over {len(declared)} ranks "
                    f"({', '.join(str(s) for s in declared)}) gives it {want}; the ranks hold "
                    f"{shown}",
                    argument=name,
                    rank=rank,
                    shape=got,
                    expected=want,
                )
        if len(sizes) != len(declared):
            return ShapeMismatch(
                f"the declared split has {len(declared)} ranks but {len(sizes)} hold {ref(name)}",
                argument=name,
            )
    if num_classes is not None and sum(sizes) != num_classes:
        return ShapeMismatch(
            f"the ranks hold {sum(sizes)} classes of {ref(name)} in all ({shown} on ranks 0 to "
            f"{len(sizes) - 1}) but num_classes is {num_classes}",
            argument=name,
            shape=tuple(sizes),
            expected=num_classes,
        )
    return None


def error_on_other_shard(ranks: Sequence[int]) -> ShardInputError:
    """The error a shard whose own input passed raises when ranks ``ranks`` rejected theirs."""
    listed = ", ".join(str(r) for r in ranks)
    return ShardInputError(
        f"rank {listed} rejected its input (its error says why); no rank computed the loss",
        ranks=tuple(ranks),
    )


def returned_error(check: Callable[[], None]) -> InputError | None:
    """Run ``check`` and return the :class:`InputError` it raises (None if it passes)."""
    try:
        check()
    except InputError as error:
        return error
    return None


@dataclass(frozen=True)
class _Rows:
    """The targets of ``N`` rows as one shard sees them, in the compute dtype.

    Exactly one of ``sparse`` (global class indices) and ``probabilities`` (this shard's
    ``(N, L)`` slice) is set.
    """

    sparse: SparseTargets | None
    local_index: Any | None  # (N,) column of the target here (0 where it is elsewhere)
    here: Any | None  # (N,) bool: the target is a kept class of this shard
    probabilities: Any | None  # (N, L), the caller's dtype
    bad_rows: Any | None  # (N,) bool: a probability out of range in this shard's slice
    global_weight: Any | None  # (V,) class weights (None: 1, or given locally)
    local_weight: Any | None  # (L,), 0 at padding (None: no class weight)
    valid: Any | None  # (L,) bool: a real class, not padding (None: no padding)
    label_smoothing: Any
    num_classes: int
    dtype: Any

    def rows(self, start: int, stop: int) -> _Rows:
        def cut(x: Any) -> Any:
            return None if x is None else x[start:stop, ...]

        sparse = self.sparse
        if sparse is not None:
            sparse = dataclasses.replace(
                sparse, index=cut(sparse.index), keep=cut(sparse.keep), invalid=cut(sparse.invalid)
            )
        return dataclasses.replace(
            self,
            sparse=sparse,
            local_index=cut(self.local_index),
            here=cut(self.here),
            probabilities=cut(self.probabilities),
            bad_rows=cut(self.bad_rows),
        )

    def class_weights(self, xp: Any, like: Any) -> Any | None:
        r"""The local :math:`w_c` for the smoothing terms, ``(L,)``: 0 at padding (None: 1 and
        no padding)."""
        if self.local_weight is not None:
            return self.local_weight
        if self.valid is None:
            return None
        return xp.astype(self.valid, like.dtype)

    def dense_weights(self, xp: Any) -> Any:
        """:math:`a_{ic}` of probability targets, ``(N, L)``, 0 at padding."""
        assert self.probabilities is not None
        t = xp.astype(self.probabilities, self.dtype, copy=False)
        if self.valid is not None:
            t = xp.where(self.valid, t, xp.zeros_like(t))
        eps = self.label_smoothing
        if may_be_nonzero(eps):
            t = (1.0 - eps) * t + eps / self.num_classes
            if self.valid is not None and self.local_weight is None:
                t = t * xp.astype(self.valid, t.dtype)
        return t if self.local_weight is None else t * self.local_weight


def _local_columns(xp: Any, shard: VocabShard, width: int, device: Any) -> tuple[Any, Any | None]:
    """Global class of each local column (clamped into ``[0, V)``), and which are real."""
    offsets = xp.arange(width, dtype=indexing_dtype(xp), device=device)
    valid = None if shard.static_size() == width else offsets < shard.size
    columns = offsets + shard.start
    inside = (columns >= 0) & (columns < shard.num_classes)
    columns = xp.where(inside, columns, xp.zeros_like(columns))
    return columns, valid


def _is_global_weight(class_weight: Any, shard: VocabShard, local: bool | None) -> bool:
    """Whether ``class_weight`` is the global vector: as ``local`` says, else by its length."""
    if local is not None:
        return not local
    return class_weight.shape[0] == shard.num_classes


def _shard_rows(
    xp: Any,
    targets: Any,
    class_weight: Any | None,
    shard: VocabShard,
    *,
    width: int,
    ignore_index: int | None,
    eps: Any,
    dtype: Any,
    device: Any,
    checked: bool,
    probability_range: tuple[float, float | None],
    local_class_weight: bool | None = None,
) -> _Rows:
    """The :class:`_Rows` of flattened ``targets`` (``(N,)`` indices or ``(N, L)``)."""
    columns, valid = _local_columns(xp, shard, width, device)
    w = cast_weight(xp, class_weight, dtype, checked=checked)
    global_weight = local_weight = None
    if w is not None:
        if _is_global_weight(class_weight, shard, local_class_weight):
            global_weight = w
            local_weight = xp.take(w, columns, axis=0)
        else:
            local_weight = w
        if valid is not None:
            local_weight = xp.where(valid, local_weight, xp.zeros_like(local_weight))
    sparse = local_index = here = probabilities = bad_rows = None
    if targets.ndim == 1:
        sparse = sparse_targets(xp, targets, shard.num_classes, ignore_index, checked=checked)
        offset = sparse.index - shard.start
        here = (offset >= 0) & (offset < shard.size)
        if sparse.keep is not None:
            here = here & sparse.keep
        local_index = xp.astype(xp.where(here, offset, xp.zeros_like(offset)), indexing_dtype(xp))
    else:
        probabilities = targets
        if not checked and not xp.isdtype(targets.dtype, "bool"):
            t = targets if valid is None else xp.where(valid, targets, xp.zeros_like(targets))
            low, high = probability_range
            inside = xp.min(t, axis=-1) >= low  # NaN fails the test
            if high is not None:
                inside = inside & (xp.max(t, axis=-1) <= high)
            bad_rows = ~inside
    return _Rows(
        sparse, local_index, here, probabilities, bad_rows, global_weight, local_weight, valid,
        eps, shard.num_classes, dtype,
    )  # fmt: skip


def _capped_logits(xp: Any, z: Any, softcap: Any, valid: Any | None) -> tuple[Any, Any | None]:
    """``(z, tanh(z / s))`` with the cap applied (None without one) and padding at ``-inf``."""
    if valid is not None:
        z = xp.where(valid, z, xp.zeros_like(z))
    capped = None
    if softcap is not None:
        capped = xp.tanh(z / softcap)
        z = softcap * capped
    if valid is not None:
        z = xp.where(valid, z, xp.full_like(z, -float("inf")))
    return z, capped


@dataclass(frozen=True)
class _Stats:
    """The ``(N,)`` results of the collectives and of the loss, for the gradient."""

    shift: Any  # M_i (0 where the row is all -inf)
    log_sum: Any  # log S_i
    losses: Any  # l_i (0 ignored, NaN invalid)
    example_weight: Any | None  # e_i for the mean (None: probabilities, or all 1)
    scale: Any  # sigma_i, NaN for an invalid row
    target_coefficient: Any | None  # (1 - eps) e_i: the target's a_{i y_i} minus its smoothing
    spread: Any | None  # eps / V * keep_i, times w_c in the gradient (None: no smoothing)

    def rows(self, start: int, stop: int) -> _Stats:
        """The statistics of rows ``start:stop``."""
        cut = {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[start:stop]
            for f in dataclasses.fields(self)
        }
        return _Stats(**cut)

    @staticmethod
    def concatenated(xp: Any, blocks: Sequence[_Stats]) -> _Stats:
        """The statistics of consecutive blocks of rows as one."""
        joined = {}
        for f in dataclasses.fields(_Stats):
            parts = [getattr(block, f.name) for block in blocks]
            joined[f.name] = None if parts[0] is None else xp.concat(parts, axis=0)
        return _Stats(**joined)


def _statistics(
    xp: Any,
    z: Any,
    given: _Rows,
    collectives: Collectives,
    z_loss: Any,
) -> tuple[_Stats, Any]:
    """One block's collectives and losses; returns them and :math:`e^{z - M}` (``(N, L)``)."""
    shift = collectives.all_max(xp.max(z, axis=-1))
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    centred = shift[:, None] - z  # M - z >= 0, +inf at padding
    exps = xp.exp(-centred)
    terms = [xp.sum(exps, axis=-1)]
    sparse, eps, vocab = given.sparse, given.label_smoothing, given.num_classes
    finite_centred = None
    smoothing = may_be_nonzero(eps)
    if sparse is None or smoothing:
        zero = xp.zeros_like(centred)
        finite_centred = centred if given.valid is None else xp.where(given.valid, centred, zero)
    local_weighted = (
        sparse is not None and given.global_weight is None and given.local_weight is not None
    )
    if sparse is None:
        a = given.dense_weights(xp)
        # a class of probability 0 adds nothing, even at a logit of -inf (0 * inf), as in the
        # single-device loss
        spent = xp.where(a == 0, xp.zeros_like(a), a * finite_centred)
        terms += [xp.sum(spent, axis=-1), xp.sum(a, axis=-1)]
        if given.bad_rows is not None:
            terms = [nan_where(xp, given.bad_rows, t) for t in terms]
    else:
        assert given.local_index is not None and given.here is not None
        picked = take_along_last_axis(xp, z, given.local_index)
        terms.append(xp.where(given.here, picked, xp.zeros_like(picked)))
        if smoothing:
            w = given.class_weights(xp, z)
            terms.append(xp.sum(finite_centred if w is None else finite_centred * w, axis=-1))
        if local_weighted:
            w = given.local_weight
            at_target = xp.take(w, given.local_index, axis=0)
            terms.append(xp.where(given.here, at_target, xp.zeros_like(at_target)))
            terms.append(xp.sum(w) * xp.ones_like(terms[0]))
    summed = collectives.all_sum(xp.stack(terms, axis=0))
    log_sum = xp.log(summed[0, ...])
    lse = shift + log_sum
    z_losses = z_loss * lse * lse if may_be_nonzero(z_loss) else None
    if sparse is None:
        weighted, total = summed[1, ...], summed[2, ...]
        losses = total * log_sum + weighted
        scale = total
        if z_losses is not None:
            losses = losses + z_losses
            scale = scale + 2.0 * z_loss * lse
        stats = _Stats(shift, log_sum, losses, None, scale, None, None)
        return stats, exps
    target_logit = summed[1, ...]
    position = 2
    weighted = None
    if smoothing:
        weighted, position = summed[position, ...], position + 1
    keep = sparse.keep_as(xp, z.dtype)
    if local_weighted:
        example_weight = summed[position, ...]
        total_weight = summed[position + 1, ...]
    elif given.global_weight is not None:
        example_weight = xp.take(given.global_weight, sparse.index, axis=0) * keep
        total_weight = xp.sum(given.global_weight)
    else:
        example_weight, total_weight = keep, vocab
    # an invalid row weighs 1 here (its loss is NaN below): a 0/1 factor would drop the NaN
    # from the row's derivative under a framework's autodiff
    loss_weight = example_weight
    if sparse.invalid is not None:
        loss_weight = xp.where(sparse.invalid, xp.ones_like(example_weight), example_weight)
    losses = (1.0 - eps) * loss_weight * ((shift - target_logit) + log_sum)
    target_coefficient = (1.0 - eps) * example_weight
    scale = target_coefficient
    spread = None
    if smoothing:
        losses = losses + eps / vocab * (weighted + total_weight * log_sum)
        spread = eps / vocab * keep
        scale = scale + spread * total_weight
    if z_losses is not None:
        losses = losses + z_losses * example_weight
        scale = scale + 2.0 * z_loss * lse * example_weight
    losses = sparse.masked(xp, losses)
    scale = _plus_nan_where(xp, sparse.invalid, scale)
    mean_weight = None if (sparse.keep is None and given.local_weight is None) else example_weight
    stats = _Stats(shift, log_sum, losses, mean_weight, scale, target_coefficient, spread)
    return stats, exps


def _plus_nan_where(xp: Any, invalid: Any | None, x: Any) -> Any:
    """``x`` plus NaN where ``invalid``: added, not multiplied, since ``x`` may be a product
    with a 0/1 mask, which XLA rewrites as a select that would drop a NaN factor."""
    if invalid is None:
        return x
    zero = xp.zeros_like(x)
    return x + xp.where(invalid, xp.full_like(x, float("nan")), zero)


def _logit_gradient(
    xp: Any,
    exps: Any,
    stats: _Stats,
    given: _Rows,
    capped: Any | None,
    upstream: Any,
) -> Any:
    r""":math:`g_i \partial \ell_i / \partial z_{ic}` for the local columns, from
    :math:`e^{z - M}` (overwritten where arrays are mutable) and the ``(N,)`` statistics."""
    row = stats.scale * upstream * xp.exp(-stats.log_sum)
    dz = exps * row[:, None]
    if given.sparse is None:
        dz = dz - given.dense_weights(xp) * upstream[:, None]
    else:
        assert given.local_index is not None and given.here is not None
        if stats.spread is not None:
            spread = (stats.spread * upstream)[:, None]
            w = given.class_weights(xp, dz)
            dz = dz - (spread if w is None else spread * w)
        assert stats.target_coefficient is not None
        at_target = -stats.target_coefficient * upstream
        dz = add_at_index(
            xp, dz, given.local_index, xp.where(given.here, at_target, xp.zeros_like(at_target))
        )
    if capped is not None:
        dz = dz * (1.0 - capped * capped)
    return dz


def _check_options(
    xp: Any,
    reduction: str,
    label_smoothing: Any,
    z_loss: Any,
    softcap: Any,
    *,
    values: bool,
) -> None:
    check_reduction(reduction)
    check_unit_interval("label_smoothing", label_smoothing, xp=xp, values=values)
    check_finite_number("z_loss", z_loss, minimum=0.0, xp=xp, values=values)
    if softcap is not None:
        check_finite_number("softcap", softcap, minimum=1e-30, xp=xp, values=values)


def _check_shard(shard: VocabShard, width: int, name: str) -> None:
    """The local width against the shard: equal to its size (or wider, padding, when the size
    is an array)."""
    who = "this shard" if shard.rank is None else f"rank {shard.rank}"
    size = shard.static_size()
    if (size is not None and width != size) or shard.num_classes < 0:
        raise ShapeMismatch(
            f"{who} holds {width} classes in {ref(name)} but its shard of the {shard.num_classes} "
            f"classes is [{shard.start}, {shard.stop}): {size} classes",
            argument=name,
            rank=shard.rank,
            shape=width,
            expected=size,
        )


def _check_targets(
    xp: Any,
    targets: Any,
    leading: tuple[Any, ...],
    width: int,
    shard: VocabShard,
    class_weight: Any | None,
    ignore_index: int | None,
    *,
    name: str,
    probability_range: tuple[float, float | None],
    values: bool,
    local_class_weight: bool | None = None,
) -> None:
    """Targets (global indices, or this shard's slice of probabilities) and class weights."""
    if len(targets.shape) == len(leading):
        check_same_shape(
            "targets",
            targets,
            leading,
            f"class-index targets must have the shape of {ref(name)} without its last axis:",
            prediction=name,
            form="class_indices",
        )
        if not xp.isdtype(targets.dtype, "integral"):
            raise WrongDtype(
                f"{{targets}} of shape {format_shape(targets.shape)} holds class indices and must "
                f"have an integer dtype; got {targets.dtype}",
                prediction=name,
                argument="targets",
                dtype=targets.dtype,
                expected="integral",
                form="class_indices",
            )
        if values:
            check_class_indices(xp, targets, shard.num_classes, ignore_index)
    else:
        check_same_shape(
            "targets",
            targets,
            (*leading, width),
            f"probability targets must be this shard's slice, the shape of {ref(name)}",
            prediction=name,
            form="probabilities",
        )
        if ignore_index is not None:
            raise InvalidOption(
                "{ignore_index} applies to class-index targets only",
                argument="ignore_index",
                value=ignore_index,
            )
        if values and not xp.isdtype(targets.dtype, "bool"):
            low, high = probability_range
            check_range(xp, targets, "targets", low=low, high=high)
    if class_weight is not None:
        lengths = {shard.num_classes, width}
        if local_class_weight is not None:
            lengths = {width if local_class_weight else shard.num_classes}
        if class_weight.ndim != 1 or class_weight.shape[0] not in lengths:
            who = "this shard" if shard.rank is None else f"rank {shard.rank}"
            raise ShapeMismatch(
                f"{{class_weight}} must be the global ({shard.num_classes},) vector or "
                f"{who}'s slice ({width},); got {format_shape(class_weight.shape)}",
                argument="class_weight",
                shape=tuple(class_weight.shape),
                expected=(shard.num_classes,),
                rank=shard.rank,
            )
        if values:
            check_range(xp, class_weight, "class_weight", low=0.0, high=float("inf"))


@dataclass(frozen=True)
class VocabParallelCrossEntropy(CheckedValues):
    r"""Softmax cross entropy of logits whose class axis (the last) is split over shards.

    The arrays are ``(logits, targets, class_weight)``: this shard's ``(..., L)`` logits,
    replicated ``(...)`` global class indices or this shard's ``(..., L)`` slice of class
    probabilities, and the global ``(V,)`` or local ``(L,)`` class weights (None); keyword
    arguments ``shard`` (:class:`VocabShard`) and ``collectives`` (:class:`Collectives`). The
    loss equals :func:`xentropy.softmax_cross_entropy` of the whole logits (``axis=-1``).
    """

    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"
    softcap: Hyperparameter | None = hyperparameter(None)
    z_loss: Hyperparameter = hyperparameter(0.0)
    local_class_weight: bool | None = None  # None: told by its length (V: global)

    probability_range = (0.0, None)  # as softmax_cross_entropy: probabilities must be >= 0

    def check(
        self,
        xp: Any,
        logits: Any,
        targets: Any,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        values: bool,
    ) -> None:
        """Raise the first :class:`~xentropy._errors.InputError` of the inputs (static checks
        always, value checks when ``values``)."""
        _check_options(
            xp, self.reduction, self.label_smoothing, self.z_loss, self.softcap, values=values
        )
        check_floating(xp, logits, "logits", prediction=True)
        if logits.ndim < 1:
            raise ShapeMismatch(
                "{logits} must have a class axis (the last)", argument="logits", shape=()
            )
        width = logits.shape[-1]
        _check_shard(shard, width, "logits")
        _check_targets(
            xp, targets, tuple(logits.shape[:-1]), width, shard, class_weight, self.ignore_index,
            name="logits", probability_range=self.probability_range, values=values,
            local_class_weight=self.local_class_weight,
        )  # fmt: skip

    def input_error(
        self,
        xp: Any,
        logits: Any,
        targets: Any,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        values: bool,
    ) -> InputError | None:
        """:meth:`check`'s error, returned instead of raised (None when the inputs pass)."""
        return returned_error(
            lambda: self.check(xp, logits, targets, class_weight, shard=shard, values=values)
        )

    def _hyperparameters(self, xp: Any, like: Any) -> tuple[Any, Any, Any]:
        checked = self.values_checked
        return (
            hyperparameter_in(xp, self.softcap, like, POSITIVE, checked=checked),
            hyperparameter_in(xp, self.z_loss, like, NON_NEGATIVE, checked=checked),
            label_smoothing_in(xp, self.label_smoothing, like, checked=checked),
        )

    def _rows(self, xp: Any, logits: Any, targets: Any, class_weight: Any, shard: VocabShard,
              dtype: Any, eps: Any) -> _Rows:  # fmt: skip
        width = logits.shape[-1]
        flat = (-1,) if targets.ndim == logits.ndim - 1 else (-1, width)
        return _shard_rows(
            xp, xp.reshape(targets, flat), class_weight, shard, width=width,
            ignore_index=self.ignore_index, eps=eps, dtype=dtype,
            device=device_of(xp, logits), checked=self.values_checked,
            probability_range=self.probability_range,
            local_class_weight=self.local_class_weight,
        )  # fmt: skip

    def forward(
        self,
        xp: Any,
        logits: Any,
        targets: Any,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        collectives: Collectives,
    ) -> tuple[Any, tuple[Any, ...]]:
        """``(loss, residuals)``: the loss (the same on every shard) in the logits' dtype."""
        dtype = compute_dtype(xp, logits.dtype)
        width = logits.shape[-1]
        z = xp.reshape(xp.astype(logits, dtype, copy=False), (-1, width))
        softcap, z_loss, eps = self._hyperparameters(xp, z)
        given = self._rows(xp, logits, targets, class_weight, shard, dtype, eps)
        z, _ = _capped_logits(xp, z, softcap, given.valid)
        stats, _ = _statistics(xp, z, given, collectives, z_loss)
        shape = tuple(logits.shape[:-1])
        losses = xp.reshape(stats.losses, shape)
        example_weight = stats.example_weight
        if example_weight is not None:
            example_weight = xp.reshape(example_weight, shape)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        residuals = (logits, targets, class_weight, shard, stats, denominator)
        return xp.astype(loss, logits.dtype), residuals

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        """The gradient of this shard's logits; no collective."""
        logits, targets, class_weight, shard, stats, denominator = residuals
        dtype = stats.shift.dtype
        width = logits.shape[-1]
        z = xp.reshape(xp.astype(logits, dtype, copy=False), (-1, width))
        softcap, _, eps = self._hyperparameters(xp, z)
        given = self._rows(xp, logits, targets, class_weight, shard, dtype, eps)
        z, capped = _capped_logits(xp, z, softcap, given.valid)
        g = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        g = xp.reshape(
            g * xp.ones(tuple(logits.shape[:-1]), dtype=dtype, device=device_of(xp, z)), (-1,)
        )
        exps = xp.exp(z - stats.shift[:, None])
        dz = _logit_gradient(xp, exps, stats, given, capped, g)
        return xp.astype(xp.reshape(dz, tuple(logits.shape)), logits.dtype)


@dataclass(frozen=True)
class VocabParallelLinearCrossEntropy(CheckedValues):
    r"""Cross entropy of ``hidden @ weight.T + bias`` with the rows of ``weight`` (classes)
    split over shards, without the ``(N, L)`` logits at once.

    The arrays are ``(hidden, weight, targets, bias, class_weight)``: replicated ``(..., D)``
    hidden states, this shard's ``(L, D)`` weight rows and ``(L,)`` bias (None), targets and
    class weights as in :class:`VocabParallelCrossEntropy` (probabilities in ``[0, 1]``, as
    :func:`xentropy.linear_cross_entropy`). The loss equals that function's on the whole weight.
    """

    chunk_size: int | None = None
    softcap: Hyperparameter | None = hyperparameter(None)
    z_loss: Hyperparameter = hyperparameter(0.0)
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"
    local_class_weight: bool | None = None  # None: told by its length (V: global)

    probability_range = (0.0, 1.0)

    def check(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any | None = None,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        values: bool,
    ) -> None:
        _check_options(
            xp, self.reduction, self.label_smoothing, self.z_loss, self.softcap, values=values
        )
        width = check_projection(xp, hidden, weight, self.chunk_size, rows="V_local")
        _check_shard(shard, width, "weight")
        if bias is not None:
            check_same_shape("bias", bias, (width,), "it must have one entry per row of {weight}")
        _check_targets(
            xp, targets, tuple(hidden.shape[:-1]), width, shard, class_weight, self.ignore_index,
            name="hidden", probability_range=self.probability_range, values=values,
            local_class_weight=self.local_class_weight,
        )  # fmt: skip

    def input_error(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any | None = None,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        values: bool,
    ) -> InputError | None:
        """:meth:`check`'s error, returned instead of raised (None when the inputs pass)."""
        return returned_error(
            lambda: self.check(
                xp, hidden, weight, targets, bias, class_weight, shard=shard, values=values
            )
        )

    _hyperparameters = VocabParallelCrossEntropy._hyperparameters

    def _prepare(
        self, xp: Any, hidden: Any, weight: Any, targets: Any, bias: Any | None,
        class_weight: Any | None, shard: VocabShard,
    ) -> tuple[Any, Any, Any | None, _Rows, Any, Any]:  # fmt: skip
        """``(h, w, b, rows, softcap, z_loss)`` in the compute dtype, rows flattened."""
        dtype = compute_dtype(xp, hidden.dtype)
        h = xp.reshape(xp.astype(hidden, dtype, copy=False), (-1, hidden.shape[-1]))
        w = xp.astype(weight, dtype, copy=False)
        b = None if bias is None else xp.astype(bias, dtype, copy=False)
        softcap, z_loss, eps = self._hyperparameters(xp, h)
        width = weight.shape[0]
        flat = (-1,) if targets.ndim == hidden.ndim - 1 else (-1, width)
        given = _shard_rows(
            xp, xp.reshape(targets, flat), class_weight, shard, width=width,
            ignore_index=self.ignore_index, eps=eps, dtype=dtype, device=device_of(xp, h),
            checked=self.values_checked, probability_range=self.probability_range,
            local_class_weight=self.local_class_weight,
        )  # fmt: skip
        return h, w, b, given, softcap, z_loss

    def _blocks(self, n: int, shard: VocabShard, features: int) -> list[tuple[int, int]]:
        """Rows per block: :func:`~xentropy._linear.gradient_rows` of the shard's
        :meth:`~VocabShard.block_width`, the same on every shard."""
        size = gradient_rows(n, shard.block_width(), features, self.chunk_size)
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    @staticmethod
    def _block_logits(
        xp: Any, h: Any, w: Any, b: Any | None, softcap: Any, valid: Any | None
    ) -> tuple[Any, Any | None]:
        z = xp.matmul(h, xp.matrix_transpose(w))
        if b is not None:
            z = z + b
        return _capped_logits(xp, z, softcap, valid)

    def forward_and_backward(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any | None = None,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        collectives: Collectives,
        needs: tuple[bool, bool, bool] = (True, True, True),
    ) -> tuple[Any, tuple[Any, ...], tuple[Any, Any, Any] | None]:
        r"""``(loss, residuals, gradients)`` in one pass over blocks of rows.

        ``gradients`` are ``(dh_partial, dW_local, db_local)`` of the *sum* of the per-example
        losses (a cotangent of 1 each), in the compute dtype (None where not in ``needs``);
        :meth:`stored_backward` scales them. ``dh_partial`` is this shard's term: sum it over the
        shards. ``gradients`` is None for ``reduction="none"`` or when nothing needs one (each
        example's cotangent is then unknown: :meth:`backward` recomputes the blocks).
        """
        if self.reduction == "none" or not any(needs):
            loss, residuals = self.forward(
                xp, hidden, weight, targets, bias, class_weight,
                shard=shard, collectives=collectives,
            )  # fmt: skip
            return loss, residuals, None
        return self._pass(
            xp, hidden, weight, targets, bias, class_weight, shard, collectives,
            needs=(needs[0], needs[1], needs[2] and bias is not None),
        )  # fmt: skip

    def forward(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any | None = None,
        class_weight: Any | None = None,
        *,
        shard: VocabShard,
        collectives: Collectives,
    ) -> tuple[Any, tuple[Any, ...]]:
        """``(loss, residuals)`` without gradients (blocks of rows, one at a time)."""
        loss, residuals, _ = self._pass(
            xp, hidden, weight, targets, bias, class_weight, shard, collectives,
            needs=(False, False, False),
        )  # fmt: skip
        return loss, residuals

    def _pass(
        self, xp: Any, hidden: Any, weight: Any, targets: Any, bias: Any | None,
        class_weight: Any | None, shard: VocabShard, collectives: Collectives, *,
        needs: tuple[bool, bool, bool],
    ) -> tuple[Any, tuple[Any, ...], tuple[Any, Any, Any] | None]:  # fmt: skip
        h, w, b, given, softcap, z_loss = self._prepare(
            xp, hidden, weight, targets, bias, class_weight, shard
        )
        n = h.shape[0]
        dtype, device = h.dtype, device_of(xp, h)
        kept: list[_Stats] = []
        need_h, need_w, need_b = needs
        grad_h = RowBlocks(xp, tuple(h.shape), dtype, device) if need_h else None
        grad_w = grad_b = None
        for start, stop in self._blocks(n, shard, h.shape[1]):
            rows, h_rows = given.rows(start, stop), h[start:stop, :]
            z, capped = self._block_logits(xp, h_rows, w, b, softcap, given.valid)
            stats, exps = _statistics(xp, z, rows, collectives, z_loss)
            kept.append(stats)
            if any(needs):
                dz = _logit_gradient(xp, exps, stats, rows, capped, xp.ones_like(stats.shift))
                if grad_h is not None:
                    grad_h.put(start, stop, xp.matmul(dz, w))
                if need_w:  # accumulated in place where arrays are mutable
                    grad_w = add_product(xp, grad_w, xp.matrix_transpose(dz), h_rows)
                if need_b:
                    column_sums = xp.sum(dz, axis=0)
                    grad_b = column_sums if grad_b is None else add_into(xp, grad_b, column_sums)
                del dz
            del z, exps, capped  # one block's (B, L) arrays at a time
        if not kept:  # no rows: one empty block gives the statistics their structure
            z, _ = self._block_logits(xp, h, w, b, softcap, given.valid)
            kept.append(_statistics(xp, z, given, collectives, z_loss)[0])
        stats = _Stats.concatenated(xp, kept)
        shape = tuple(hidden.shape[:-1])
        losses = xp.reshape(stats.losses, shape)
        example_weight = stats.example_weight
        if example_weight is not None:
            example_weight = xp.reshape(example_weight, shape)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        residuals = (hidden, weight, targets, bias, class_weight, shard, stats, denominator)
        gradients = None
        if any(needs):
            if grad_h is not None:
                grad_h = xp.reshape(grad_h.result(), tuple(hidden.shape))
            gradients = (grad_h, grad_w, grad_b)
        return xp.astype(loss, hidden.dtype), residuals, gradients

    def stored_backward(
        self,
        xp: Any,
        residuals: tuple[Any, ...],
        gradients: tuple[Any, ...],
        cotangent: Any,
        *,
        cast: bool = True,
    ) -> tuple[Any, ...]:
        """:meth:`backward` from :meth:`forward_and_backward`'s ``gradients``: each times the
        cotangent (and the mean's divisor), cast to its input's dtype (``cast=False``: kept in
        the compute dtype, e.g. to sum the hidden states' share over the shards first)."""
        hidden, weight, bias, denominator = residuals[0], residuals[1], residuals[3], residuals[-1]
        dtype = next(g for g in gradients if g is not None).dtype
        factor = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        scaled = []
        for gradient, like in zip(gradients, (hidden, weight, bias), strict=True):
            if gradient is not None:
                gradient = gradient * factor
                gradient = xp.astype(gradient, like.dtype) if cast else gradient
            scaled.append(gradient)
        return tuple(scaled)

    def backward(
        self, xp: Any, residuals: tuple[Any, ...], cotangent: Any, *, cast: bool = True
    ) -> tuple[Any, ...]:
        """``(dh_partial, dW_local, db_local)`` (None for an absent bias), recomputing the blocks'
        logits; no collective (sum ``dh_partial`` over the shards). ``cast``: as in
        :meth:`stored_backward`."""
        hidden, weight, targets, bias, class_weight, shard, stats, denominator = residuals
        h, w, b, given, softcap, _ = self._prepare(
            xp, hidden, weight, targets, bias, class_weight, shard
        )
        dtype = h.dtype
        n = h.shape[0]
        g = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        ones = xp.ones(tuple(hidden.shape[:-1]), dtype=dtype, device=device_of(xp, h))
        g = xp.reshape(g * ones, (-1,))
        grad_h = RowBlocks(xp, tuple(h.shape), dtype, device_of(xp, h))
        grad_w = grad_b = None
        for start, stop in self._blocks(n, shard, h.shape[1]):
            rows, h_rows = given.rows(start, stop), h[start:stop, :]
            z, capped = self._block_logits(xp, h_rows, w, b, softcap, given.valid)
            block_stats = stats.rows(start, stop)
            exps = xp.exp(z - block_stats.shift[:, None])
            dz = _logit_gradient(xp, exps, block_stats, rows, capped, g[start:stop])
            grad_h.put(start, stop, xp.matmul(dz, w))
            grad_w = add_product(xp, grad_w, xp.matrix_transpose(dz), h_rows)
            if b is not None:
                column_sums = xp.sum(dz, axis=0)
                grad_b = column_sums if grad_b is None else add_into(xp, grad_b, column_sums)
            del z, exps, dz, capped
        if grad_w is None:  # no rows
            grad_w = xp.zeros_like(w)
            grad_b = None if b is None else xp.zeros_like(b)
        grad_hidden = xp.reshape(grad_h.result(), tuple(hidden.shape))
        if not cast:
            return grad_hidden, grad_w, grad_b
        return (
            xp.astype(grad_hidden, hidden.dtype),
            xp.astype(grad_w, weight.dtype),
            None if bias is None else xp.astype(grad_b, bias.dtype),
        )
