r"""Linear cross entropy: the final projection fused with softmax cross entropy.

For hidden states :math:`h_i \in \mathbb{R}^D`, a projection :math:`W \in \mathbb{R}^{V \times D}`
and bias :math:`b`, the logits :math:`z_i = \operatorname{cap}(W h_i + b)` with
:math:`\operatorname{cap}(x) = s \tanh(x / s)` (Gemma 2's soft-capping, when ``softcap`` is set)
are produced one vocabulary chunk at a time, reduced with an online log-sum-exp, and never stored
as a whole: peak memory is :math:`O(N \cdot \text{chunk})` instead of :math:`O(N V)`. The backward
pass recomputes each chunk (four matrix products in all). When the caller's autodiff records the
call, :meth:`LinearCrossEntropy.forward_and_backward` instead takes blocks of rows with the whole
vocabulary and computes the gradients in the forward pass (three products, as the unfused pair;
the backward scales them): the torch adapter's path for ``"mean"`` and ``"sum"``.

With class weights :math:`w` (1 when absent), label smoothing :math:`\varepsilon` and targets
:math:`t_{ic}` (the one-hot vector of class index :math:`y_i`, or given class probabilities), the
target weights are those of ``torch.nn.functional.cross_entropy``,
:math:`a_{ic} = w_c ((1 - \varepsilon) t_{ic} + \varepsilon / V)`, and

.. math::

    \ell_i = \sum_c a_{ic} (\operatorname{lse}_i - z_{ic}) + \lambda_z e_i \operatorname{lse}_i^2,
    \qquad
    \frac{\partial \ell_i}{\partial z_{ic}}
        = p_{ic} \Big(\sum_k a_{ik} + 2 \lambda_z e_i \operatorname{lse}_i\Big) - a_{ic}

(chained through the cap by :math:`1 - \tanh^2(x / s)`). For class indices the sum is
:math:`(1 - \varepsilon) w_{y_i} (\operatorname{lse}_i - z_{i y_i})
+ \tfrac{\varepsilon}{V} \sum_c w_c (\operatorname{lse}_i - z_{ic})`: one gathered target logit
and a running sum over the chunks. An ignored example has :math:`\ell_i = 0`.

with :math:`e_i = w_{y_i}` (0 if ignored) for class indices and 1 for probabilities: the PaLM
z-loss is part of the example's loss and carries its weight, as in
:func:`~xentropy.softmax_cross_entropy`. ``"mean"`` is PyTorch's: :math:`\sum_i \ell_i` divided
by :math:`\sum_i e_i`, the summed class weight of the non-ignored class-index targets, or
:math:`N` for probability targets. (Liger Kernel divides its z-loss by the number of
non-ignored examples instead; the two agree without class weights.)

Differences from ``torch.nn.functional.linear_cross_entropy``, on purpose: ``ignore_index`` has no
default and is an error with probability targets (PyTorch ignores it there); probability targets
outside ``[0, 1]`` raise when validated (PyTorch computes with them), and give NaN rows under
tracing; ``softcap`` and ``z_loss`` are extras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, overload

import array_api_compat

from ._checks import (
    NON_NEGATIVE,
    POSITIVE,
    Hyperparameter,
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
    _is_unsqueezed_indices,
    as_weight_array,
    cast_weight,
    check_class_indices,
    check_class_weight,
    hyperparameter_in,
    indexing_dtype,
    label_smoothing_in,
    nan_where,
    sparse_targets,
    target_weight,
)
from ._errors import InvalidOption, ShapeMismatch, WrongDtype
from ._evaluate import CheckedValues, evaluate, hyperparameter
from ._namespace import compute_dtype, device_of, namespace_of
from ._native import RowBlocks, add_at_index, exp_of_fresh, subtract_product, writable
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import class_index_mean_weight, evaluate_weighted
from ._types import ArrayT, Reduction

DEFAULT_CHUNK_SIZE = 4096
GRADIENT_BLOCK_LOGITS = 2**23  # the default block of forward_and_backward: 32 MiB in float32


def is_probability_targets(hidden: Any, targets: Any) -> bool:
    """Targets ``(..., V)`` beside hidden states ``(..., D)`` (class indices are ``(...)``)."""
    return targets.ndim == hidden.ndim


@dataclass(frozen=True)
class _Targets:
    """The targets of one call as ``N`` rows, with the class weights, in the compute dtype.

    Exactly one of ``sparse`` (class indices) and ``probabilities`` is set.
    """

    sparse: SparseTargets | None
    probabilities: Any | None  # (N, V), the caller's dtype (cast chunk by chunk)
    bad_rows: Any | None  # (N,) bool: a probability outside [0, 1] (None: none can be)
    class_weight: Any | None  # (V,), NaN where negative unless the values were checked
    label_smoothing: Any
    dtype: Any

    def chunk_weights(self, xp: Any, start: int, stop: int) -> Any | None:
        r"""What the running sum :math:`\sum_c a_c (m_i - z_{ic})` weighs classes
        ``start:stop`` by: :math:`a_{ic}`, ``(N, chunk)``, for probability targets; the class
        weights :math:`w_c`, ``(chunk,)``, of the smoothing term of class indices (None: 1)."""
        w = None if self.class_weight is None else self.class_weight[start:stop]
        if self.probabilities is None:
            return w
        eps = self.label_smoothing
        a = xp.astype(self.probabilities[:, start:stop], self.dtype, copy=False)
        if may_be_nonzero(eps):
            a = (1.0 - eps) * a + eps / self.probabilities.shape[-1]
        return a if w is None else a * w

    def rows(self, start: int, stop: int) -> _Targets:
        """The targets of examples ``start:stop``."""
        sparse = self.sparse
        if sparse is not None:
            sparse = dataclasses.replace(
                sparse,
                index=sparse.index[start:stop],
                keep=None if sparse.keep is None else sparse.keep[start:stop],
                invalid=None if sparse.invalid is None else sparse.invalid[start:stop],
            )
        return dataclasses.replace(
            self,
            sparse=sparse,
            probabilities=None if self.probabilities is None else self.probabilities[start:stop],
            bad_rows=None if self.bad_rows is None else self.bad_rows[start:stop],
        )

    def target_upstream(self, xp: Any, row: Any) -> Any:
        """``row`` (an ``(N,)`` factor) times the class weight of each class-index target."""
        if self.class_weight is None:
            return row
        assert self.sparse is not None  # called for class-index targets only
        return row * xp.take(self.class_weight, self.sparse.index, axis=0)


@dataclass(frozen=True)
class LinearCrossEntropy(CheckedValues):
    """Chunked forward with an online log-sum-exp; chunked, recomputing backward; or both at once
    in blocks of rows (:meth:`forward_and_backward`, then :meth:`stored_backward`).

    The arrays are ``(hidden, weight, targets, bias, class_weight)``; the last two may be None.
    ``softcap``, ``z_loss`` and ``label_smoothing`` may be 0-d arrays (traced or differentiated).
    ``backward`` gives the gradients of ``hidden``, ``weight`` and ``bias``; those of the class
    weights and of probability targets come from autodiff of the forward (the exact path).
    """

    chunk_size: int | None = None
    softcap: Hyperparameter | None = hyperparameter(None)
    z_loss: Hyperparameter = hyperparameter(0.0)
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"

    def check(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any,
        class_weight: Any = None,
        *,
        values: bool,
    ) -> None:
        check_reduction(self.reduction)
        check_unit_interval("label_smoothing", self.label_smoothing, xp=xp, values=values)
        check_finite_number("z_loss", self.z_loss, minimum=0.0, xp=xp, values=values)
        if self.softcap is not None:
            check_finite_number("softcap", self.softcap, minimum=1e-30, xp=xp, values=values)
        vocab = check_projection(xp, hidden, weight, self.chunk_size)
        if bias is not None:
            check_same_shape(
                "bias", bias, (vocab,), "it must have one entry per row of {weight}, (V,) ="
            )
        if class_weight is not None:
            check_class_weight(xp, class_weight, vocab, values=values)
        leading = tuple(hidden.shape[:-1])
        if is_probability_targets(hidden, targets):
            self._check_probabilities(xp, hidden, targets, (*leading, vocab), values=values)
            return
        without_last = f"the shape of {{hidden}} {format_shape(hidden.shape)} without its last axis"
        check_same_shape(
            "targets",
            targets,
            leading,
            f"class-index targets must have {without_last}:",
            prediction="hidden",
            form="class_indices",
        )
        if not xp.isdtype(targets.dtype, "integral"):
            raise WrongDtype(
                f"{{targets}} of shape {format_shape(targets.shape)} holds class indices and must "
                f"have an integer dtype; got {targets.dtype} (pass probabilities of shape "
                f"{format_shape((*leading, vocab))} for soft targets)",
                prediction="hidden",
                argument="targets",
                dtype=targets.dtype,
                expected="integral",
                form="class_indices",
            )
        if values:
            check_class_indices(xp, targets, vocab, self.ignore_index)

    def _check_probabilities(
        self, xp: Any, hidden: Any, targets: Any, shape: tuple[int, ...], *, values: bool
    ) -> None:
        leading, vocab = shape[:-1], shape[-1]
        if _is_unsqueezed_indices(xp, targets, leading, targets.ndim - 1, vocab):
            raise ShapeMismatch(
                f"{{targets}} of shape {format_shape(targets.shape)} has an integer dtype, so it "
                f"holds class indices, which must have the shape of {{hidden}} "
                f"{format_shape(hidden.shape)} without its last axis: {format_shape(leading)}; "
                "squeeze the last axis of {targets} (targets are never broadcast)",
                prediction="hidden",
                argument="targets",
                shape=tuple(targets.shape),
                expected=leading,
                form="class_indices",
            )
        check_same_shape(
            "targets",
            targets,
            shape,
            "probability targets must have the shape of the logits, {hidden} @ {weight}.T:",
            prediction="hidden",
            form="probabilities",
        )
        if self.ignore_index is not None:
            raise InvalidOption(
                "{ignore_index} applies to class-index targets only; {targets} of shape "
                f"{format_shape(targets.shape)} holds class probabilities",
                prediction="hidden",
                argument="ignore_index",
                value=self.ignore_index,
            )
        if values and not xp.isdtype(targets.dtype, "bool"):
            check_range(xp, targets, "targets", low=0.0, high=1.0)

    def _chunks(self, vocab: int) -> list[tuple[int, int]]:
        size = self.chunk_size or DEFAULT_CHUNK_SIZE
        return [(start, min(start + size, vocab)) for start in range(0, vocab, size)]

    def _hyperparameters(self, xp: Any, h: Any) -> tuple[Any, Any, Any]:
        """``(softcap, z_loss, label_smoothing)`` ready for arithmetic with ``h``."""
        checked = self.values_checked
        return (
            hyperparameter_in(xp, self.softcap, h, POSITIVE, checked=checked),
            hyperparameter_in(xp, self.z_loss, h, NON_NEGATIVE, checked=checked),
            label_smoothing_in(xp, self.label_smoothing, h, checked=checked),
        )

    @staticmethod
    def _logits(
        xp: Any,
        h: Any,
        weight: Any,
        bias: Any,
        start: int,
        stop: int,
        softcap: Any,
        *,
        class_major: bool = False,
    ) -> tuple[Any, Any | None]:
        """Logits of vocabulary entries ``start:stop``, and ``tanh(z / softcap)`` if capped.

        ``class_major``: ``(W h^T)^T``, the transposed view of a ``(classes, rows)`` array, for
        a few rows and many classes: the weight is then the large left operand of the matrix
        product, which BLAS (MKL) streams once instead of packing it anew for every block of
        rows (1.7 times faster at 64 rows of ``1024 x 256 x 128256``).
        """
        w = xp.astype(weight[start:stop, :], h.dtype, copy=False)
        if class_major:
            z = xp.matrix_transpose(xp.matmul(w, xp.matrix_transpose(h)))
        else:
            z = xp.matmul(h, xp.matrix_transpose(w))
        if bias is not None:
            z = z + xp.astype(bias[start:stop], h.dtype, copy=False)
        if softcap is None:
            return z, None
        capped = xp.tanh(z / softcap)
        return softcap * capped, capped

    @staticmethod
    def _target_logits(
        xp: Any, h: Any, weight: Any, bias: Any | None, index: Any, softcap: Any
    ) -> Any:
        """:math:`z_{i y_i}` from the target rows of the weight: O(N D), no pass over V."""
        rows = xp.astype(xp.take(weight, index, axis=0), h.dtype, copy=False)
        z = xp.sum(h * rows, axis=-1)
        if bias is not None:
            z = z + xp.astype(xp.take(bias, index, axis=0), h.dtype, copy=False)
        if softcap is not None:
            z = softcap * xp.tanh(z / softcap)
        return z

    def _targets(
        self,
        xp: Any,
        hidden: Any,
        targets: Any,
        class_weight: Any | None,
        vocab: int,
        dtype: Any,
        eps: Any,
    ) -> _Targets:
        checked = self.values_checked
        w = cast_weight(xp, class_weight, dtype, checked=checked)
        sparse, probabilities, bad_rows = None, None, None
        if is_probability_targets(hidden, targets):
            probabilities = xp.reshape(targets, (-1, vocab))
            if not checked and not xp.isdtype(targets.dtype, "bool"):
                # a NaN fails both tests; the row's NaN then rides on its (N,) terms
                inside = (xp.min(probabilities, axis=-1) >= 0) & (
                    xp.max(probabilities, axis=-1) <= 1
                )
                bad_rows = ~inside
        else:
            flat = xp.reshape(targets, (-1,))
            sparse = sparse_targets(xp, flat, vocab, self.ignore_index, checked=checked)
        return _Targets(sparse, probabilities, bad_rows, w, eps, dtype)

    def _online_log_sum_exp(
        self, xp: Any, h: Any, weight: Any, bias: Any | None, softcap: Any, given: _Targets
    ) -> tuple[Any, Any, Any, Any]:
        r"""One pass over the chunks: ``(m, s, r, A)`` with :math:`\operatorname{lse} = m + s`,
        :math:`r_i = \sum_c a_{ic} (m_i - z_{ic})` and :math:`A_i = \sum_c a_{ic}` for the
        weights of :meth:`_Targets.chunk_weights` (``r = 0``, ``A = 0`` where none is needed).

        ``r`` is kept relative to the running maximum (moved by :math:`A (m' - m)` when it
        grows): large logits then lose no digits to :math:`A m - \sum_c a_c z_c`.
        """
        n, vocab = h.shape[0], weight.shape[0]
        dtype, device = h.dtype, device_of(xp, h)
        accumulate = given.sparse is None or may_be_nonzero(given.label_smoothing)
        weighted = xp.zeros((n,), dtype=dtype, device=device)
        seen: Any = 0
        previous_shift = xp.zeros((n,), dtype=dtype, device=device)
        running_max = xp.full((n,), -float("inf"), dtype=dtype, device=device)
        running_sum = xp.zeros((n,), dtype=dtype, device=device)
        for start, stop in self._chunks(vocab):
            z, _ = self._logits(xp, h, weight, bias, start, stop, softcap)
            chunk_max = xp.max(z, axis=-1)
            new_max = xp.maximum(running_max, chunk_max)
            shift = xp.where(xp.isfinite(new_max), new_max, xp.zeros_like(new_max))
            if writable(xp, z):  # z is fresh: PyTorch and NumPy work in place, one (N, chunk)
                z -= shift[:, None]
            else:  # autograd records z (max saves it): out of place
                z = z - shift[:, None]
            if accumulate:
                a = given.chunk_weights(xp, start, stop)
                moved = weighted + seen * (shift - previous_shift)
                weighted = moved - xp.sum(z if a is None else z * a, axis=-1)
                seen = seen + (stop - start if a is None else xp.sum(a, axis=-1))
                previous_shift = shift
            running_sum = running_sum * xp.exp(running_max - shift) + xp.sum(
                exp_of_fresh(xp, z), axis=-1
            )
            running_max = new_max
        shift = xp.where(xp.isfinite(running_max), running_max, xp.zeros_like(running_max))
        return shift, xp.log(running_sum), weighted, seen

    def forward(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any | None = None,
        class_weight: Any | None = None,
    ) -> tuple[Any, tuple[Any, ...]]:
        dtype = compute_dtype(xp, hidden.dtype)
        h = xp.reshape(xp.astype(hidden, dtype, copy=False), (-1, hidden.shape[-1]))
        vocab = weight.shape[0]
        softcap, z_loss, eps = self._hyperparameters(xp, h)
        given = self._targets(xp, hidden, targets, class_weight, vocab, dtype, eps)
        shift, log_sum, weighted, seen = self._online_log_sum_exp(
            xp, h, weight, bias, softcap, given
        )
        losses, example_weight, row_total = self._example_losses(
            xp, h, weight, bias, given, (shift, log_sum, weighted, seen), softcap, z_loss
        )
        shape = tuple(hidden.shape[:-1])
        losses = xp.reshape(losses, shape)
        if example_weight is not None:
            example_weight = xp.reshape(example_weight, shape)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        residuals = (
            hidden, weight, targets, bias, class_weight, shift, log_sum, row_total, denominator,
        )  # fmt: skip
        return xp.astype(loss, hidden.dtype), residuals

    def _example_losses(
        self,
        xp: Any,
        h: Any,
        weight: Any,
        bias: Any | None,
        given: _Targets,
        log_sum_exp: tuple[Any, Any, Any, Any],
        softcap: Any,
        z_loss: Any,
    ) -> tuple[Any, Any | None, Any | None]:
        r"""``(losses, e, A)``: the ``(N,)`` losses :math:`\ell_i` (0 where ignored, NaN where
        invalid) from the ``(m, s, r, A)`` of :meth:`_online_log_sum_exp`, the weights
        :math:`e_i` of the mean (None: all 1) and :math:`A_i` (None for class indices)."""
        shift, log_sum, weighted, seen = log_sum_exp
        lse = shift + log_sum
        z_losses = z_loss * lse * lse if may_be_nonzero(z_loss) else None
        sparse, eps, vocab = given.sparse, given.label_smoothing, weight.shape[0]
        if sparse is None:
            losses = seen * log_sum + weighted  # A_i log_sum + r_i: both terms >= 0
            if z_losses is not None:
                losses = losses + z_losses
            return nan_where(xp, given.bad_rows, losses), None, seen
        w = given.class_weight
        target_logit = self._target_logits(xp, h, weight, bias, sparse.index, softcap)
        # (shift - z) + log_sum keeps the digits of log_sum that shift + log_sum rounds away
        losses = (1.0 - eps) * ((shift - target_logit) + log_sum)
        example_weight = target_weight(xp, sparse, w, given.dtype)
        if w is not None:
            losses = losses * example_weight
        if may_be_nonzero(eps):
            # eps / V sum_c w_c (lse - z_c), with seen = sum_c w_c
            losses = losses + eps / vocab * (weighted + seen * log_sum)
        if z_losses is not None:
            weighted_z = z_losses if w is None else z_losses * example_weight
            losses = losses + weighted_z
        return sparse.masked(xp, losses), example_weight, None

    def _logit_scale(
        self,
        xp: Any,
        given: _Targets,
        lse: Any,
        row_total: Any | None,
        upstream: Any,
        z_loss: Any,
    ) -> Any:
        r""":math:`g_i (\sum_c a_{ic} + 2 \lambda_z e_i \operatorname{lse}_i)`, the factor of
        :math:`p_{ic}` in :math:`\partial L / \partial z_{ic}` (:math:`g_i`: the upstream
        gradient of example :math:`i`'s loss).

        An invalid row's NaN rides on it, set after every 0/1-mask product.
        """
        sparse, w, eps = given.sparse, given.class_weight, given.label_smoothing
        if sparse is None:
            scale = row_total * upstream
            if may_be_nonzero(z_loss):
                scale = scale + 2.0 * z_loss * lse * upstream
            return nan_where(xp, given.bad_rows, scale)
        keep = sparse.keep_as(xp, upstream.dtype)
        scale = (1.0 - eps) * given.target_upstream(xp, keep * upstream)
        if may_be_nonzero(eps):
            total_weight = sparse.num_classes if w is None else xp.sum(w)
            scale = scale + eps / sparse.num_classes * total_weight * (keep * upstream)
        if may_be_nonzero(z_loss):
            scale = scale + 2.0 * z_loss * lse * given.target_upstream(xp, keep * upstream)
        return nan_where(xp, sparse.invalid, scale)

    def forward_and_backward(
        self,
        xp: Any,
        hidden: Any,
        weight: Any,
        targets: Any,
        bias: Any | None = None,
        class_weight: Any | None = None,
        *,
        needs: tuple[bool, bool, bool] = (True, True, True),
    ) -> tuple[Any, tuple[Any, ...], tuple[Any, ...] | None]:
        r"""``(loss, residuals, gradients)``: :meth:`forward` and, for a reduced loss, the
        gradients it will be asked for, in the same pass.

        The examples are taken :func:`gradient_rows` at a time with the whole vocabulary: the
        block's logits :math:`z = h W^\top + b`, its log-sum-exp and losses, then, in the same
        array, :math:`\partial \ell_i / \partial z_{ic}` (cotangent 1 per example), whose
        products give :math:`\partial h = \partial z\, W` (that block's rows),
        :math:`\partial W \mathrel{+}= \partial z^\top h` and :math:`\partial b \mathrel{+}=
        \sum_i \partial z_i`: three matrix products in all, as the unfused pair, against four
        for :meth:`forward` then :meth:`backward` (which recomputes the logits). The gradients
        are kept in the compute dtype (float32 for 16-bit inputs: the weight gradient is
        accumulated over the blocks in float32, and 16-bit weights are cast to float32 once);
        :meth:`stored_backward` scales them by the cotangent and casts them.

        ``needs``: whether ``hidden``, ``weight`` and ``bias`` each need a gradient (the others
        are not computed). ``gradients`` is None for ``reduction="none"`` (each example's
        cotangent then weighs its row of :math:`\partial z` before the products, so nothing can
        be computed ahead: :meth:`backward` recomputes) or when nothing needs a gradient; the
        result is then that of :meth:`forward`. Frameworks call this when their autodiff
        records the call (the torch adapter's ``autograd.Function``; a ``jax.custom_vjp``
        forward rule could too), :meth:`forward` when it does not.
        """
        if self.reduction == "none" or not any(needs):
            loss, residuals = self.forward(xp, hidden, weight, targets, bias, class_weight)
            return loss, residuals, None
        dtype = compute_dtype(xp, hidden.dtype)
        device = device_of(xp, hidden)
        h = xp.reshape(xp.astype(hidden, dtype, copy=False), (-1, hidden.shape[-1]))
        n, vocab = h.shape[0], weight.shape[0]
        softcap, z_loss, eps = self._hyperparameters(xp, h)
        given = self._targets(xp, hidden, targets, class_weight, vocab, dtype, eps)
        w = xp.astype(weight, dtype, copy=False)
        b = None if bias is None else xp.astype(bias, dtype, copy=False)
        # the (N,) values the blocks produce: the residuals of forward, and what the loss reduces
        kept = ["shift", "log_sum", "losses"]
        if given.sparse is None:
            kept.append("row_total")
        elif given.class_weight is not None or given.sparse.keep is not None:
            kept.append("example_weight")
        per_example = {name: RowBlocks(xp, (n,), dtype, device) for name in kept}
        need_h, need_w, need_b = needs[0], needs[1], needs[2] and bias is not None
        grad_h = RowBlocks(xp, tuple(h.shape), dtype, device) if need_h else None
        grad_w = grad_b = None
        size = gradient_rows(n, vocab, h.shape[1], self.chunk_size)
        for start in range(0, n, size):
            stop = min(start + size, n)
            rows, h_rows = given.rows(start, stop), h[start:stop, :]
            dz, log_sum_exp = self._block_gradient(xp, h_rows, w, b, rows, softcap, z_loss)
            losses, example_weight, row_total = self._example_losses(
                xp, h_rows, w, b, rows, log_sum_exp, softcap, z_loss
            )
            values = {"shift": log_sum_exp[0], "log_sum": log_sum_exp[1], "losses": losses}
            values.update(row_total=row_total, example_weight=example_weight)
            for name, block in per_example.items():
                block.put(start, stop, values[name])
            if grad_h is not None:
                grad_h.put(start, stop, xp.matmul(dz, w))
            if need_w:
                grad_w = add_product(xp, grad_w, xp.matrix_transpose(dz), h_rows)
            if need_b:
                column_sums = xp.sum(dz, axis=0)
                grad_b = column_sums if grad_b is None else add_into(xp, grad_b, column_sums)
            del dz  # before the next block's logits: one (rows, V) array at a time
        done = {name: block.result() for name, block in per_example.items()}
        shape = tuple(hidden.shape[:-1])
        example_weight = done.get("example_weight")
        if example_weight is not None:
            example_weight = xp.reshape(example_weight, shape)
        losses = xp.reshape(done["losses"], shape)
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        residuals = (
            hidden, weight, targets, bias, class_weight, done["shift"], done["log_sum"],
            done.get("row_total"), denominator,
        )  # fmt: skip
        if grad_h is not None:
            grad_h = xp.reshape(grad_h.result(), tuple(hidden.shape))
        return xp.astype(loss, hidden.dtype), residuals, (grad_h, grad_w, grad_b)

    def _block_gradient(
        self,
        xp: Any,
        h: Any,
        weight: Any,
        bias: Any | None,
        given: _Targets,
        softcap: Any,
        z_loss: Any,
    ) -> tuple[Any, tuple[Any, Any, Any, Any]]:
        r"""``(dz, (m, s, r, A))`` for a block of rows and every class: :math:`\partial \ell_i /
        \partial z_{ic}` for a cotangent of 1 per example, and the terms of
        :meth:`_online_log_sum_exp` (one chunk: the same values).

        One ``(rows, V)`` array becomes in turn :math:`z - m`, :math:`e^{z - m}` and
        :math:`\partial z` (plus the capped logits with ``softcap``, and :math:`a_{ic}` for
        probability targets).
        """
        vocab = weight.shape[0]
        z, capped = self._logits(xp, h, weight, bias, 0, vocab, softcap, class_major=True)
        row_max = xp.max(z, axis=-1)
        shift = xp.where(xp.isfinite(row_max), row_max, xp.zeros_like(row_max))
        z = _subtract_into(xp, z, shift[:, None])
        a = given.chunk_weights(xp, 0, vocab)
        weighted: Any = xp.zeros_like(shift)
        seen: Any = 0
        if given.sparse is None or may_be_nonzero(given.label_smoothing):
            weighted = -xp.sum(z if a is None else z * a, axis=-1)
            seen = vocab if a is None else xp.sum(a, axis=-1)
        dz = exp_of_fresh(xp, z)
        log_sum = xp.log(xp.sum(dz, axis=-1))
        upstream = xp.ones_like(shift)
        row_total = seen if given.sparse is None else None
        scale = self._logit_scale(xp, given, shift + log_sum, row_total, upstream, z_loss)
        dz = _multiply_into(xp, dz, (scale * xp.exp(-log_sum))[:, None])  # p_ic times the scale
        sparse = given.sparse
        if sparse is None:
            dz = _subtract_into(xp, dz, a)
        else:
            eps, w = given.label_smoothing, given.class_weight
            keep = sparse.keep_as(xp, dz.dtype)
            if may_be_nonzero(eps):
                spread = (eps / vocab * keep)[:, None]
                dz = _subtract_into(xp, dz, spread if w is None else spread * w)
            at_target = -(1.0 - eps) * given.target_upstream(xp, keep)
            dz = add_at_index(xp, dz, sparse.index, at_target)
        if capped is not None:
            dz = _multiply_into(xp, dz, 1.0 - capped * capped)
        return dz, (shift, log_sum, weighted, seen)

    def stored_backward(
        self,
        xp: Any,
        residuals: tuple[Any, ...],
        gradients: tuple[Any, ...],
        cotangent: Any,
    ) -> tuple[Any, ...]:
        """:meth:`backward` from the ``gradients`` of :meth:`forward_and_backward`: each times
        the loss's cotangent (and the mean's divisor), in place where arrays are mutable, then
        cast to its input's dtype."""
        hidden, weight, bias, denominator = residuals[0], residuals[1], residuals[3], residuals[-1]
        dtype = next(g for g in gradients if g is not None).dtype
        factor = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        scaled = []
        for gradient, like in zip(gradients, (hidden, weight, bias), strict=True):
            if gradient is None:
                scaled.append(None)
                continue
            gradient = _multiply_into(xp, gradient, factor)
            scaled.append(xp.astype(gradient, like.dtype, copy=False))
        return tuple(scaled)

    def log_sum_exp(
        self, xp: Any, hidden: Any, weight: Any, targets: Any, bias: Any | None = None
    ) -> Any:
        r""":math:`\operatorname{lse}(z_i)` per example, differentiable in every framework without
        the ``(N, V)`` logits: the fused cross entropy of a class :math:`k_i`, plus
        :math:`z_{i k_i}` (one row of the weight per example). :math:`k_i` is the target (0 where
        ignored or out of range), or the largest target probability: a large logit, so that the
        sum loses few digits."""
        vocab = weight.shape[0]
        if targets.ndim == hidden.ndim:  # probabilities
            index = xp.argmax(targets, axis=-1)
        else:
            index = xp.where((targets >= 0) & (targets < vocab), targets, xp.zeros_like(targets))
        index = xp.astype(index, indexing_dtype(xp))
        plain = LinearCrossEntropy(
            chunk_size=self.chunk_size, softcap=self.softcap, reduction="none"
        )
        cross_entropy = evaluate(
            plain, hidden, weight, index, bias, None, prediction=hidden, validate=False
        )
        dtype = compute_dtype(xp, hidden.dtype)
        h = xp.reshape(xp.astype(hidden, dtype), (-1, hidden.shape[-1]))
        softcap = self._hyperparameters(xp, h)[0]
        z = self._target_logits(xp, h, weight, bias, xp.reshape(index, (-1,)), softcap)
        z = xp.reshape(z, tuple(cross_entropy.shape))
        return xp.astype(xp.astype(cross_entropy, dtype) + z, hidden.dtype)

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> tuple[Any, ...]:
        """Gradients with respect to ``(hidden, weight, bias)`` (``None`` for an absent bias)."""
        (
            hidden, weight, targets, bias, class_weight, shift, log_sum, row_total, denominator,
        ) = residuals  # fmt: skip
        dtype = log_sum.dtype
        lse = shift + log_sum
        h = xp.reshape(xp.astype(hidden, dtype, copy=False), (-1, hidden.shape[-1]))
        vocab = weight.shape[0]
        softcap, z_loss, eps = self._hyperparameters(xp, h)
        given = self._targets(xp, hidden, targets, class_weight, vocab, dtype, eps)
        sparse, w = given.sparse, given.class_weight
        shape = tuple(hidden.shape[:-1])
        cotangent = xp.astype(cotangent, dtype)

        upstream = reduce_backward(xp, cotangent, denominator, self.reduction)
        upstream = xp.reshape(upstream * xp.ones_like(xp.reshape(lse, shape)), (-1,))
        scale = self._logit_scale(xp, given, lse, row_total, upstream, z_loss)
        at_target: Any = None  # with class indices: the target's term, and the smoothing's
        spread: Any = None
        if sparse is not None:
            row_weight = sparse.keep_as(xp, dtype) * upstream
            at_target = -(1.0 - eps) * given.target_upstream(xp, row_weight)
            if may_be_nonzero(eps):
                spread = (eps / vocab * row_weight)[:, None]
        grad_h = xp.zeros_like(h)
        grad_w = RowBlocks(xp, (vocab, h.shape[1]), weight.dtype, device_of(xp, h))
        grad_b = None if bias is None else RowBlocks(xp, (vocab,), bias.dtype, device_of(xp, h))
        for start, stop in self._chunks(vocab):
            z, capped = self._logits(xp, h, weight, bias, start, stop, softcap)
            z -= shift[:, None]  # in place where arrays are mutable: one (N, chunk) array
            z -= log_sum[:, None]
            dz = exp_of_fresh(xp, z)
            dz *= scale[:, None]
            # minus a_ic g_i
            if sparse is None:
                a = given.chunk_weights(xp, start, stop)
                dz = subtract_product(xp, dz, a, upstream[:, None])
            else:
                if may_be_nonzero(eps):
                    dz -= spread if w is None else spread * w[start:stop]
                index = sparse.index
                in_chunk = (index >= start) & (index < stop)
                local = xp.where(in_chunk, index - start, xp.zeros_like(index))
                values = xp.where(in_chunk, at_target, xp.zeros_like(at_target))
                dz = add_at_index(xp, dz, local, values)
            if capped is not None:
                dz *= 1.0 - capped * capped
            w_chunk = xp.astype(weight[start:stop, :], dtype, copy=False)
            grad_h += xp.matmul(dz, w_chunk)
            grad_w.put(start, stop, xp.matmul(xp.matrix_transpose(dz), h))
            if grad_b is not None:
                grad_b.put(start, stop, xp.sum(dz, axis=0))
            del dz, z, capped  # before the next chunk's logits: one (N, chunk) array at a time
        grad_hidden = xp.astype(xp.reshape(grad_h, tuple(hidden.shape)), hidden.dtype, copy=False)
        return grad_hidden, grad_w.result(), None if grad_b is None else grad_b.result()


def check_projection(
    xp: Any, hidden: Any, weight: Any, chunk_size: int | None, *, rows: str = "V"
) -> int:
    """The fused losses' checks of ``chunk_size`` and of the projection: floating ``hidden``
    ``(..., D)`` and ``weight`` ``(rows, D)``; returns the number of rows of ``weight``."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise InvalidOption(
            f"chunk_size must be a positive int or None; got {chunk_size!r}",
            argument="chunk_size",
            value=chunk_size,
        )
    check_floating(xp, hidden, "hidden", prediction=True)
    check_floating(xp, weight, "weight")
    if weight.ndim != 2 or hidden.ndim < 1 or weight.shape[1] != hidden.shape[-1]:
        raise ShapeMismatch(
            f"{{weight}} must have shape ({rows}, D) with D the last dimension of {{hidden}}; "
            f"got {{weight}} {format_shape(weight.shape)} and {{hidden}} "
            f"{format_shape(hidden.shape)}",
            prediction="hidden",
            argument="weight",
            shape=tuple(weight.shape),
        )
    return weight.shape[0]


def gradient_rows(rows: int, vocab: int, features: int, chunk_size: int | None) -> int:
    r"""Examples per block of :meth:`LinearCrossEntropy.forward_and_backward`.

    With ``chunk_size`` (classes per chunk of the vocabulary-chunked :meth:`~LinearCrossEntropy.
    forward`, ``N * chunk_size`` logits at once) a block holds as many logits:
    :math:`\lceil \text{chunk\_size} \cdot N / V \rceil` rows. By default it holds
    :math:`\max(2^{23}, \tfrac38 V D)` logits: 3/8 of the weight gradient, which the pass holds
    anyway, or 32 MiB of float32 when that is more, i.e. :math:`\max(2^{23} / V, 3D/8)` rows.

    Why: every block reads the whole weight twice and the weight gradient once and writes it
    once, so the time falls as blocks grow, while the peak memory is the weight gradient plus
    one block. At :math:`N = 4D` (the shape of an LLM batch) the unfused pair holds about
    :math:`12 \times` the weight gradient, so a block of 3/8 of it keeps the peak near 1/9 of
    the unfused one. Measured at :math:`N \times D \times V = 1024 \times 256 \times 128256`
    (float32, 2 shared CPU cores, forward and backward interleaved with ``F.linear`` +
    ``F.cross_entropy``, 9 repeats): 96 rows 0.83 of the unfused time at 173 MiB (0.115 of its
    1503 MiB), 112 rows 0.87 / 181 MiB, 128 rows 0.79 / 189 MiB (0.126); under a heavier load
    64 rows 1.11, 128 rows 0.96.
    """
    if chunk_size is not None:
        return max(1, min(rows, -(-chunk_size * rows // max(vocab, 1))))
    budget = max(GRADIENT_BLOCK_LOGITS, 3 * vocab * features // 8)
    return max(1, min(rows, budget // max(vocab, 1)))


def add_product(xp: Any, total: Any | None, a: Any, b: Any) -> Any:
    """``total + a @ b`` (``a @ b`` for None): PyTorch accumulates in place (``addmm_``), with
    no temporary of ``total``'s size."""
    if total is None:
        return xp.matmul(a, b)
    if array_api_compat.is_torch_namespace(xp) and writable(xp, total):
        return total.addmm_(a, b)
    return add_into(xp, total, xp.matmul(a, b))


def add_into(xp: Any, x: Any, y: Any) -> Any:
    """``x + y``, in place in ``x`` (an array the caller owns) where arrays are mutable."""
    if writable(xp, x):
        x += y
        return x
    return x + y


def _subtract_into(xp: Any, x: Any, y: Any) -> Any:
    """``x - y``, in place in ``x`` (an array the caller owns) where arrays are mutable."""
    if writable(xp, x):
        x -= y
        return x
    return x - y


def _multiply_into(xp: Any, x: Any, y: Any) -> Any:
    """``x * y``, in place in ``x`` (an array the caller owns) where arrays are mutable."""
    if writable(xp, x):
        x *= y
        return x
    return x * y


def _class_weight_array(xp: Any, class_weight: Any | None, hidden: Any) -> Any | None:
    """``class_weight`` as an array of ``xp``: one already of ``xp`` is kept as it is (autodiff
    follows it; the forward casts it), anything else is converted (``as_weight_array``)."""
    if class_weight is None or isinstance(class_weight, (list, tuple)):
        return as_weight_array(xp, class_weight, hidden)
    try:
        if namespace_of(class_weight) is xp:
            return class_weight
    except TypeError:
        pass
    return as_weight_array(xp, class_weight, hidden)


@overload
def linear_cross_entropy(
    hidden: ArrayT,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    class_weight: Any | None = None,
    chunk_size: int | None = None,
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: Literal[False] = False,
    validate: bool = True,
) -> ArrayT: ...


@overload
def linear_cross_entropy(
    hidden: ArrayT,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    class_weight: Any | None = None,
    chunk_size: int | None = None,
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: Literal[True],
    validate: bool = True,
) -> tuple[ArrayT, ArrayT]: ...


@overload
def linear_cross_entropy(
    hidden: ArrayT,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    class_weight: Any | None = None,
    chunk_size: int | None = None,
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: bool = False,
    validate: bool = True,
) -> ArrayT | tuple[ArrayT, ArrayT]: ...


def linear_cross_entropy(
    hidden: ArrayT,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    class_weight: Any | None = None,
    chunk_size: int | None = None,
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: bool = False,
    validate: bool = True,
) -> ArrayT | tuple[ArrayT, ArrayT]:
    r"""Softmax cross entropy of ``hidden @ weight.T + bias`` without materialising the logits.

    .. math::

        z_i = \operatorname{cap}(W h_i + b), \qquad
        \ell_i = -\sum_c a_{ic} \log \operatorname{softmax}(z_i)_c
            + \lambda_z \operatorname{lse}(z_i)^2, \qquad
        a_{ic} = w_c \Big((1-\varepsilon)\, t_{ic} + \frac{\varepsilon}{V}\Big)

    where :math:`t_i` is the one-hot vector of class index :math:`y_i` or the given class
    probabilities: ``torch.nn.functional.cross_entropy(hidden @ weight.T + bias, targets,
    weight=class_weight, ...)`` plus the z-loss, chunk by chunk.

    Args:
        hidden: ``(..., D)`` final hidden states.
        weight: ``(V, D)`` output projection (PyTorch's ``nn.Linear(D, V).weight`` layout).
        targets: ``(...)`` integer token ids, or ``(..., V)`` class probabilities (in
            ``[0, 1]``; never copied whole: each chunk of classes is read in turn).
        bias: optional ``(V,)``.
        class_weight: optional ``(V,)`` non-negative weight per class, as ``weight`` of
            ``torch.nn.functional.cross_entropy``.
        chunk_size: vocabulary entries per chunk (default 4096); peak extra memory is about
            ``N * chunk_size`` values. Where the gradients are computed in the forward pass
            (the torch adapter under autograd), blocks of rows hold as many logits; by default
            their size follows the shapes (:func:`~xentropy._linear.gradient_rows`).
        softcap: Gemma 2's logit soft-cap :math:`s` in :math:`s \tanh(z / s)`, or None.
        z_loss: PaLM's auxiliary :math:`\lambda_z \operatorname{lse}^2` (0 to disable), weighted
            with its example as in :func:`softmax_cross_entropy`.
        ignore_index: a class index whose examples count neither in the loss nor in the mean
            (class-index targets only; no default sentinel).
        label_smoothing, validate: as in :func:`softmax_cross_entropy`. ``softcap``, ``z_loss``
            and ``label_smoothing`` may be 0-d arrays (traced or differentiated).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (divided by the summed class weight of
            the non-ignored class-index targets, or by the number of examples for
            probabilities) or ``"sum_over_batch_size"``.
        sample_weight, where: per-example weights and mask, as in
            :func:`softmax_cross_entropy` (the per-example shape is ``hidden.shape[:-1]``).
        return_lse: also return the per-example :math:`\operatorname{lse}(z_i)`, differentiable:
            ``(loss, lse)``. It costs a second pass over the vocabulary chunks (forward and
            backward): :math:`\operatorname{lse}_i = \ell^{\mathrm{CE}}_i + z_{i k_i}` for
            one class :math:`k_i` per example (its target, or the most probable target class).

    >>> import numpy as np, xentropy
    >>> h, w = np.ones((2, 3)), np.zeros((5, 3))
    >>> float(xentropy.linear_cross_entropy(h, w, np.array([0, 4])))
    1.6094379...
    """
    xp = namespace_of(hidden, weight, targets, bias, names=("hidden", "weight", "targets", "bias"))
    class_weight = _class_weight_array(xp, class_weight, hidden)
    op = LinearCrossEntropy(
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    num_classes = weight.shape[0]
    loss = evaluate_weighted(
        op, hidden, weight, targets, bias, class_weight, prediction=hidden, validate=validate,
        sample_weight=sample_weight, where=where,
        mean_weight=class_index_mean_weight(
            hidden, targets, class_weight, -1, ignore_index, num_classes=num_classes
        ),
    )  # fmt: skip
    if not return_lse:
        return loss
    return loss, op.log_sum_exp(xp, hidden, weight, targets, bias)
