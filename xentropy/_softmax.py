r"""Softmax cross entropy from logits, with its analytic backward.

With the LLM options, soft-capped logits :math:`\tilde z = s \tanh(z / s)` (Gemma 2's
``softcap``) and PaLM's auxiliary z-loss :math:`\lambda_z \operatorname{lse}(\tilde z)^2`:

.. math::

    \ell_i = -\sum_c a_{ic} \log \operatorname{softmax}(\tilde z_i)_c
        + \lambda_z \operatorname{lse}(\tilde z_i)^2, \qquad
    \frac{\partial \ell_i}{\partial \tilde z_{ic}} =
        p_{ic} \Big(\sum_k a_{ik} + 2 \lambda_z \operatorname{lse}_i\Big) - a_{ic},

and :math:`\partial \tilde z / \partial z = 1 - \tanh^2(z / s)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

from ._checks import (
    NON_NEGATIVE,
    POSITIVE,
    Hyperparameter,
    check_finite_number,
    check_reduction,
    may_be_nonzero,
)
from ._class_targets import (
    SparseTargets,
    as_dtype,
    as_weight_array,
    cast_weight,
    check_class_targets,
    dense_target_weights,
    gathered_weight,
    hyperparameter_in,
    is_sparse,
    label_smoothing_in,
    move_class_axis_back,
    move_class_axis_last,
    nan_where,
    sparse_targets,
    without_unused_ignore_index,
)
from ._evaluate import CheckedValues, hyperparameter
from ._namespace import compute_dtype, namespace_of
from ._native import (
    add_at_index,
    differentiable_spelling,
    has_fused_log_softmax_vjp,
    has_fused_softmax,
    keeps_log_softmax,
    log_softmax,
    log_softmax_vjp,
    log_sum_exp,
    log_sum_exp_keeping_exps,
    rows_with_bad_targets,
    softmax,
    subtract_product,
    take_along_last_axis,
    weighted_sum,
    weighted_sum_marks_negative,
)
from ._reduction import reduce_backward, reduce_losses
from ._sample_weights import class_index_mean_weight, evaluate_weighted
from ._types import ArrayT, Reduction


@dataclass(frozen=True)
class SoftmaxCrossEntropy(CheckedValues):
    r"""Cross entropy of ``softmax(logits)`` against class indices or class probabilities.

    With :math:`\log p = \operatorname{log\_softmax}(z)` and target weights :math:`a_{ic}`
    (see ``_class_targets``), :math:`\ell_i = -\sum_c a_{ic} \log p_{ic}` and
    :math:`\partial \ell_i / \partial z_{ic} = p_{ic} \sum_k a_{ik} - a_{ic}`; ``softcap`` and
    ``z_loss`` as in the module docstring (the z-loss of an example carries its class weight).
    ``label_smoothing``, ``softcap`` and ``z_loss`` may be 0-d arrays (traced or
    differentiated; see ``_evaluate``).
    """

    axis: int = -1
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"
    softcap: Hyperparameter | None = hyperparameter(None)
    z_loss: Hyperparameter = hyperparameter(0.0)

    def check(
        self, xp: Any, logits: Any, targets: Any, class_weight: Any, *, values: bool
    ) -> dict[str, Any] | None:
        check_reduction(self.reduction)
        check_finite_number("z_loss", self.z_loss, minimum=0.0, xp=xp, values=values)
        if self.softcap is not None:
            check_finite_number("softcap", self.softcap, minimum=1e-30, xp=xp, values=values)
        unused = check_class_targets(
            xp,
            logits,
            targets,
            prediction_name="logits",
            axis=self.axis,
            class_weight=class_weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            values=values,
        )
        return without_unused_ignore_index(unused)

    def forward(
        self, xp: Any, logits: Any, targets: Any, class_weight: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        dtype = compute_dtype(xp, logits.dtype)
        z, _ = self._capped_logits(xp, logits, dtype)
        w = cast_weight(xp, class_weight, dtype, checked=self.values_checked)
        num_classes = z.shape[-1]
        eps = label_smoothing_in(xp, self.label_smoothing, z, checked=self.values_checked)
        # Fused kernels give log p directly; otherwise keep only lse, an (N,) array, and gather.
        fused = has_fused_softmax(xp)
        log_p = log_softmax(xp, z) if fused else None
        # The backward keeps the fused log p where that pays (see keeps_log_softmax); a soft
        # cap's derivative needs the logits themselves.
        keep_log_p = fused and self.softcap is None and keeps_log_softmax(xp)
        lse, exps, shifted_sum = None, None, None
        dense_a, bad_rows, by_sign = None, None, False
        if not is_sparse(logits, targets):
            by_sign = self._bad_rows_by_sign(xp, targets, w, eps)
            dense_a, bad_rows = self._dense_weights(
                xp, targets, num_classes, w, dtype, eps, by_sign=by_sign
            )
        if not fused:
            # with probability targets, XLA shares log p between forward and backward instead
            shift, log_sum, exps, shifted_sum = log_sum_exp_keeping_exps(
                xp, z, for_xla=dense_a is None, weights=dense_a
            )
            lse = (shift, log_sum)
        z_lse = self._z_loss_lse(xp, z, lse)
        kept_bad_rows, kept_total = None, None  # found by the forward, for the backward
        kept_targets, keep, invalid = targets, None, None
        if is_sparse(logits, targets):
            sparse = self._sparse(xp, targets, num_classes)
            # the backward takes the prepared indices and masks instead of the targets
            kept_targets, invalid = sparse.index, sparse.invalid
            keep = None if sparse.keep is None else sparse.keep_as(xp, dtype)
            example_weight = None
            if w is not None or keep is not None:
                example_weight = gathered_weight(xp, sparse, w, dtype, keep=keep)
            if fused:
                log_p_target = take_along_last_axis(xp, log_p, sparse.index)
            else:
                assert lse is not None  # the unfused path keeps it
                z_target = take_along_last_axis(xp, z, sparse.index)
                log_p_target = (z_target - lse[0]) - lse[1]
            losses = -(1.0 - eps) * log_p_target
            if w is not None:
                # without class weights the product by the 0/1 keep is left to the mask below
                # (it selects the ignored rows, NaN marks the invalid): the same numbers
                losses = losses * example_weight
            if may_be_nonzero(eps):
                losses = losses - eps / num_classes * self._summed_log_p(xp, z, log_p, lse, w)
            losses = self._plus_z_loss(xp, losses, z_lse, example_weight)
            losses = sparse.masked(xp, losses)
        else:
            a = dense_a
            if weighted_sum_marks_negative(xp):
                # -sum_c a_c log p_c as one sum of non-negative terms: XLA's CPU backend makes
                # a pass over the (N, C) arrays per reduction. Unfused, log p = (z - m) - s is
                # spelled as the backward's softmax spells it, so that the two share it.
                log_p_terms = log_p
                if log_p_terms is None:
                    assert lse is not None
                    shift, log_sum = lse
                    log_p_terms = (z - shift[..., None]) - log_sum[..., None]
                losses = weighted_sum(xp, a, -log_p_terms)
            elif log_p is not None:
                losses = -weighted_sum(xp, a, log_p, overwrite=not keep_log_p)
            else:
                # -sum_c a_c log p_c = s sum_c a_c + sum_c a_c (m - z_c): non-negative terms,
                # and no (N, C) log p to store
                assert lse is not None
                shift, log_sum = lse
                if shifted_sum is None:
                    shifted_sum = weighted_sum(xp, a, shift[..., None] - z, overwrite=True)
                kept_total = xp.sum(a, axis=-1)
                losses = kept_total * log_sum + shifted_sum
            if by_sign:
                bad_rows = ~(losses >= 0)  # a negative (or NaN) target or sum
            kept_bad_rows = bad_rows  # (N,): the backward need not look at the targets again
            losses = nan_where(xp, bad_rows, self._plus_z_loss(xp, losses, z_lse, None))
            example_weight = None
        loss, denominator = reduce_losses(xp, losses, example_weight, self.reduction)
        shift, log_sum = (None, None) if lse is None else lse
        kept_log_p = log_p if keep_log_p else None
        kept_logits = logits if kept_log_p is None else None
        residuals = (
            kept_logits, kept_log_p, kept_targets, class_weight, shift, log_sum, exps, z_lse,
            denominator, kept_bad_rows, kept_total, logits.dtype, keep, invalid,
            example_weight,
        )  # fmt: skip
        return as_dtype(xp, loss, logits.dtype), residuals

    def _capped_logits(self, xp: Any, logits: Any, dtype: Any) -> tuple[Any, Any | None]:
        """The logits with the class axis last in ``dtype``, soft-capped when ``softcap`` is set,
        and :math:`\tanh(z / s)` (None without a cap)."""
        z = as_dtype(xp, move_class_axis_last(xp, logits, self.axis), dtype)
        if self.softcap is None:
            return z, None
        cap = hyperparameter_in(xp, self.softcap, z, POSITIVE, checked=self.values_checked)
        capped = xp.tanh(z / cap)
        return cap * capped, capped

    def log_sum_exp(self, xp: Any, logits: Any) -> Any:
        r""":math:`\operatorname{lse}(z_i)` of the (capped) logits per example, in their dtype,
        spelled for the framework's own autodiff."""
        with differentiable_spelling():
            z, _ = self._capped_logits(xp, logits, compute_dtype(xp, logits.dtype))
            shift, log_sum = log_sum_exp(xp, z)
            return xp.astype(shift + log_sum, logits.dtype)

    def _z_loss_lse(self, xp: Any, z: Any, lse: tuple[Any, Any] | None) -> Any | None:
        r""":math:`\operatorname{lse}(z)` per example when the z-loss is on, else None."""
        if not may_be_nonzero(self.z_loss):
            return None
        shift, log_sum = log_sum_exp(xp, z) if lse is None else lse
        return shift + log_sum

    def _z_loss_weight(self, xp: Any, like: Any) -> Any:
        return hyperparameter_in(xp, self.z_loss, like, NON_NEGATIVE, checked=self.values_checked)

    def _plus_z_loss(
        self, xp: Any, losses: Any, z_lse: Any | None, example_weight: Any | None
    ) -> Any:
        r"""``losses`` plus :math:`w_{y_i} \lambda_z \operatorname{lse}_i^2` (z-loss on)."""
        if z_lse is None:
            return losses
        term = self._z_loss_weight(xp, z_lse) * (z_lse * z_lse)
        return losses + (term if example_weight is None else term * example_weight)

    def _bad_rows_by_sign(self, xp: Any, targets: Any, w: Any | None, eps: Any) -> bool:
        """Whether the forward finds the rows holding a bad target from the sign of their loss.

        It can where the target weights are the targets themselves (no class weight, no
        smoothing) and :func:`weighted_sum` makes the sum of a row holding a negative one
        negative: one row minimum over the targets less.
        """
        return (
            not self.values_checked
            and w is None
            and not may_be_nonzero(eps)
            and not xp.isdtype(targets.dtype, "bool")
            and weighted_sum_marks_negative(xp)
        )

    def _dense_weights(
        self,
        xp: Any,
        targets: Any,
        num_classes: int,
        w: Any | None,
        dtype: Any,
        eps: Any,
        *,
        by_sign: bool = False,
    ) -> tuple[Any, Any | None]:
        """Target weights :math:`a` of probability targets, and the rows holding a bad target.

        A row with a negative (or NaN) target is set to NaN as a whole, by its (N,) loss and
        gradient scale, rather than entry by entry (which under XLA stores a masked copy).
        ``by_sign``: the caller finds those rows itself (None is returned for them).
        """
        t = move_class_axis_last(xp, targets, self.axis)
        a = dense_target_weights(
            xp,
            t,
            sparse=None,
            num_classes=num_classes,
            class_weight=w,
            label_smoothing=eps,
            dtype=dtype,
            checked=True,  # bad rows are set to NaN whole, below
        )
        if self.values_checked or by_sign or xp.isdtype(t.dtype, "bool"):
            return a, None
        return a, rows_with_bad_targets(xp, t)

    def _sparse(self, xp: Any, targets: Any, num_classes: int) -> SparseTargets:
        return sparse_targets(
            xp, targets, num_classes, self.ignore_index, checked=self.values_checked
        )

    @staticmethod
    def _summed_log_p(
        xp: Any, z: Any, log_p: Any | None, lse: tuple[Any, Any] | None, w: Any | None
    ) -> Any:
        r""":math:`\sum_c w_c \log p_c` per example (``w = 1`` when None)."""
        if log_p is not None:
            return xp.sum(log_p if w is None else log_p * w, axis=-1)
        assert lse is not None
        m, s = lse
        if w is None:
            return xp.sum(z - m[..., None], axis=-1) - z.shape[-1] * s
        return xp.sum((z - m[..., None]) * w, axis=-1) - xp.sum(w) * s

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> Any:
        (
            logits, log_p, targets, class_weight, shift, log_sum, exps, z_lse, denominator,
            kept_bad_rows, kept_total, out_dtype, keep, invalid, example_weight,
        ) = residuals  # fmt: skip
        lse = None if shift is None else (shift, log_sum)
        capped = None
        if log_p is None:
            dtype = compute_dtype(xp, logits.dtype)
            z, capped = self._capped_logits(xp, logits, dtype)
            like = z
        else:
            z, like, dtype = None, log_p, log_p.dtype
        w = cast_weight(xp, class_weight, dtype, checked=self.values_checked)
        num_classes = like.shape[-1]
        g = reduce_backward(xp, as_dtype(xp, cotangent, dtype), denominator, self.reduction)
        eps = label_smoothing_in(xp, self.label_smoothing, like, checked=self.values_checked)
        if is_sparse(like, targets):
            index = targets  # the forward's prepared class indices, in range
            # (N,) upstream gradient, 0 for ignored examples
            row_g = xp.broadcast_to(g, tuple(index.shape)) if keep is None else g * keep
            # (without class weights example_weight is keep, and its product with row_g is
            # row_g bit for bit; XLA then drops the NaN of an invalid row from the scale below
            # if the product is left out)
            target_scale = row_g if example_weight is None else example_weight * row_g
            if may_be_nonzero(eps):
                target_scale = (1.0 - eps) * target_scale
            scale = target_scale
            if may_be_nonzero(eps):
                total_weight = num_classes if w is None else xp.sum(w)
                scale = scale + eps / num_classes * total_weight * row_g
            if z_lse is not None:
                z_row_g = row_g if example_weight is None else example_weight * row_g
                scale = scale + 2.0 * self._z_loss_weight(xp, z_lse) * z_lse * z_row_g
            # An invalid row's NaN goes into its (N,) scale after every 0/1-mask product (XLA
            # rewrites x * float(mask) as a select, which would drop it), not into (N, C) passes.
            scale = nan_where(xp, invalid, scale)
            # ours: updated in place below
            grad = softmax(xp, z, lse, exps, row_scale=scale, log_p=log_p)
            grad = add_at_index(xp, grad, index, -target_scale)
            if may_be_nonzero(eps):
                spread = (eps / num_classes * row_g)[..., None]
                grad -= spread if w is None else spread * w
        else:
            a, bad_rows = self._dense_weights(
                xp, targets, num_classes, w, dtype, eps, by_sign=kept_bad_rows is not None
            )
            if kept_bad_rows is not None:  # found by the forward
                bad_rows = kept_bad_rows
            if log_p is not None and z_lse is None and has_fused_log_softmax_vjp(xp):
                # -g sum_c a_c log p_c through the fused log-softmax backward: the cotangent of
                # log p is -a g (NaN across a bad row), and the target total comes with it
                g_rows = nan_where(xp, bad_rows, xp.broadcast_to(g, tuple(log_p.shape[:-1])))
                grad = log_softmax_vjp(xp, log_p, a * -g_rows[..., None])
                return as_dtype(xp, move_class_axis_back(xp, grad, self.axis), out_dtype)
            row_g = g[..., None]
            total = xp.sum(a, axis=-1) if kept_total is None else kept_total
            if z_lse is not None:
                total = total + 2.0 * self._z_loss_weight(xp, z_lse) * z_lse
            scale = nan_where(xp, bad_rows, total * g)
            # ours: updated in place below
            grad = softmax(xp, z, lse, exps, row_scale=scale, log_p=log_p)
            grad = subtract_product(xp, grad, a, row_g)
        if capped is not None:
            grad = grad * (1.0 - capped * capped)
        return as_dtype(xp, move_class_axis_back(xp, grad, self.axis), out_dtype)


@overload
def softmax_cross_entropy(
    logits: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: Literal[False] = False,
    validate: bool = True,
) -> ArrayT: ...


@overload
def softmax_cross_entropy(
    logits: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: Literal[True],
    validate: bool = True,
) -> tuple[ArrayT, ArrayT]: ...


@overload
def softmax_cross_entropy(
    logits: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: bool = False,
    validate: bool = True,
) -> ArrayT | tuple[ArrayT, ArrayT]: ...


def softmax_cross_entropy(
    logits: ArrayT,
    targets: Any,
    *,
    axis: int = -1,
    class_weight: Any | None = None,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: Reduction = "mean",
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    sample_weight: Any | None = None,
    where: Any | None = None,
    return_lse: bool = False,
    validate: bool = True,
) -> ArrayT | tuple[ArrayT, ArrayT]:
    r"""Cross entropy between ``softmax(logits)`` and class indices or class probabilities.

    .. math::

        \ell_i = -\sum_c a_{ic} \log \operatorname{softmax}(z_i)_c
            + \lambda_z w_{y_i} \operatorname{lse}(z_i)^2, \qquad
        a_{ic} = w_c \Big((1-\varepsilon)\, t_{ic} + \frac{\varepsilon}{C}\Big)

    where :math:`t_i` is the one-hot vector of class index :math:`y_i` (integer ``targets``) or
    the given probabilities, :math:`w` the class weights, :math:`\varepsilon` the label
    smoothing and :math:`\lambda_z` the z-loss (:math:`w_{y_i} = 1` for probability targets).
    With integer targets and no z-loss this is ``torch.nn.functional.cross_entropy``. With
    ``softcap`` :math:`s`, :math:`z` is first replaced by :math:`s \tanh(z / s)`.

    Args:
        logits: unnormalised scores, real floating dtype, classes along ``axis``.
        targets: integer class indices with the shape of ``logits`` without ``axis``, or class
            probabilities with the shape of ``logits`` (bool and integer one-hot are cast).
        axis: the class axis (``-1``; ``1`` for PyTorch's ``(N, C, d1, ...)`` layout).
        class_weight: ``(C,)`` non-negative weights per class.
        ignore_index: a class index whose examples count neither in the loss nor in the mean's
            denominator (class-index targets only; there is no default sentinel).
        label_smoothing: :math:`\varepsilon \in [0, 1]`: a number, or a 0-d array (traced
            under ``jax.jit`` / ``tf.function`` / ``torch.compile``, or differentiated: the loss
            is differentiable with respect to it). A traced value outside ``[0, 1]`` gives NaN.
        reduction: ``"none"`` (per-example losses, leading dims kept), ``"sum"``, ``"mean"``
            (divided by the summed class weight of non-ignored class-index targets, or by the
            number of examples for probability targets) or ``"sum_over_batch_size"``.
        softcap: Gemma 2's logit soft-cap :math:`s > 0` in :math:`s \tanh(z / s)`, or None.
        z_loss: PaLM's auxiliary :math:`\lambda_z \operatorname{lse}^2` (0 disables it; an
            ignored example has none, and a class weight weighs it with the example).
        sample_weight: per-example weights :math:`s_i \ge 0`, any array that broadcasts to the
            per-example losses (``(N,)``, ``(N, T)`` token weights, ...). The losses are
            multiplied by them (after the class weights); ``"mean"`` divides by
            :math:`\sum_i s_i w_{y_i}` (Keras's ``mean_with_sample_weight``), and
            ``"sum_over_batch_size"`` by the number of examples (Keras's default). See
            ``xentropy._sample_weights``.
        where: boolean mask of the examples that count (optax's ``where``): a masked example
            gives 0 (selected away: a NaN loss there does not reach the result) and leaves
            every denominator.
        return_lse: also return the per-example :math:`\operatorname{lse}(z_i)` (of the capped
            logits), as Liger's ``return_z_loss`` and Cut Cross-Entropy's ``return_lse``: for
            logging the z-loss, or a loss of one's own. It is differentiable (the framework's
            autodiff of a log-sum-exp) and has one entry per example, ignored ones included.
        validate: check target values on eager arrays (a device sync on GPUs). Under tracing
            an index outside ``[0, C)`` gives NaN for that example, loss and gradient.

    Returns:
        The loss in the dtype of ``logits`` (computed in float32 for 16-bit inputs); a mean
        over no example (empty or fully ignored batch) is NaN. With ``return_lse``, the pair
        ``(loss, lse)``, ``lse`` shaped as ``logits`` without ``axis``, in its dtype.

    >>> import numpy as np, xentropy
    >>> float(xentropy.softmax_cross_entropy(np.array([[2.0, 0.0, -1.0]]), np.array([0])))
    0.169846...
    """
    xp = namespace_of(logits, targets, names=("logits", "targets"))
    op = SoftmaxCrossEntropy(
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        softcap=softcap,
        z_loss=z_loss,
    )
    weight = as_weight_array(xp, class_weight, logits)
    loss = evaluate_weighted(
        op,
        logits,
        targets,
        weight,
        prediction=logits,
        validate=validate,
        sample_weight=sample_weight,
        where=where,
        mean_weight=class_index_mean_weight(logits, targets, weight, axis, ignore_index),
    )
    if not return_lse:
        return loss
    return loss, op.log_sum_exp(xp, logits)


@dataclass(frozen=True)
class SoftmaxInputs:
    """Log-probabilities with the class axis last, in the compute dtype, and the targets."""

    log_p: Any  # (..., C) log-softmax of the logits
    a: Any  # (..., C) per-class target weights
    example_weight: Any | None  # (...,) for the weighted mean of class-index targets
    invalid: Any | None  # (...,) class index outside [0, C)


def softmax_inputs(
    xp: Any,
    logits: Any,
    targets: Any,
    class_weight: Any | None,
    *,
    axis: int,
    ignore_index: int | None,
    label_smoothing: Hyperparameter,
    checked: bool,
) -> SoftmaxInputs:
    """Everything the losses built on ``softmax(logits)`` and dense target weights share.

    ``checked``: the values passed the eager checks (see ``CheckedValues``).
    """
    dtype = compute_dtype(xp, logits.dtype)
    z = xp.astype(move_class_axis_last(xp, logits, axis), dtype, copy=False)
    w = cast_weight(xp, class_weight, dtype, checked=checked)
    num_classes = z.shape[-1]
    sparse, t = None, None
    if is_sparse(logits, targets):
        sparse = sparse_targets(xp, targets, num_classes, ignore_index, checked=checked)
    else:
        t = move_class_axis_last(xp, targets, axis)
    a = dense_target_weights(
        xp,
        t,
        sparse=sparse,
        num_classes=num_classes,
        class_weight=w,
        label_smoothing=label_smoothing_in(xp, label_smoothing, z, checked=checked),
        dtype=dtype,
        checked=checked,
    )
    return SoftmaxInputs(
        log_p=log_softmax(xp, z),
        a=a,
        example_weight=None if sparse is None else gathered_weight(xp, sparse, w, dtype),
        invalid=None if sparse is None else sparse.invalid,
    )
