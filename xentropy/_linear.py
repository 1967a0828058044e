r"""Linear cross entropy: the final projection fused with softmax cross entropy.

For hidden states :math:`h_i \in \mathbb{R}^D`, a projection :math:`W \in \mathbb{R}^{V \times D}`
and bias :math:`b`, the logits :math:`z_i = \operatorname{cap}(W h_i + b)` with
:math:`\operatorname{cap}(x) = s \tanh(x / s)` (Gemma 2's soft-capping, when ``softcap`` is set)
are produced one vocabulary chunk at a time, reduced with an online log-sum-exp, and never stored
as a whole: peak memory is :math:`O(N \cdot \text{chunk})` instead of :math:`O(N V)`. The backward
pass recomputes each chunk.

.. math::

    \ell_i = (1 - \varepsilon)(\operatorname{lse}_i - z_{i y_i})
        + \varepsilon\,(\operatorname{lse}_i - \tfrac{1}{V}\textstyle\sum_c z_{ic})
        + \lambda_z \operatorname{lse}_i^2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import (
    NON_NEGATIVE,
    POSITIVE,
    Hyperparameter,
    check_finite_number,
    check_floating,
    check_reduction,
    check_same_shape,
    check_unit_interval,
    format_shape,
    may_be_nonzero,
)
from ._class_targets import (
    SparseTargets,
    check_class_indices,
    hyperparameter_in,
    label_smoothing_in,
    nan_where,
    sparse_targets,
)
from ._evaluate import CheckedValues, evaluate, hyperparameter
from ._namespace import compute_dtype, device_of, namespace_of
from ._native import RowBlocks, add_at_index, exp_of_fresh, writable
from ._reduction import reduce_backward, reduce_losses

DEFAULT_CHUNK_SIZE = 4096


@dataclass(frozen=True)
class LinearCrossEntropy(CheckedValues):
    """Chunked forward with an online log-sum-exp; chunked, recomputing backward.

    ``softcap``, ``z_loss`` and ``label_smoothing`` may be 0-d arrays (traced or differentiated).
    """

    chunk_size: int | None = None
    softcap: Hyperparameter | None = hyperparameter(None)
    z_loss: Hyperparameter = hyperparameter(0.0)
    ignore_index: int | None = None
    label_smoothing: Hyperparameter = hyperparameter(0.0)
    reduction: str = "mean"

    def check(
        self, xp: Any, hidden: Any, weight: Any, targets: Any, bias: Any, *, values: bool
    ) -> None:
        check_reduction(self.reduction)
        check_unit_interval("label_smoothing", self.label_smoothing, xp=xp, values=values)
        check_finite_number("z_loss", self.z_loss, minimum=0.0, xp=xp, values=values)
        if self.softcap is not None:
            check_finite_number("softcap", self.softcap, minimum=1e-30, xp=xp, values=values)
        if self.chunk_size is not None and (
            not isinstance(self.chunk_size, int) or self.chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive int or None; got {self.chunk_size!r}")
        check_floating(xp, hidden, "hidden")
        check_floating(xp, weight, "weight")
        if weight.ndim != 2 or hidden.ndim < 1 or weight.shape[1] != hidden.shape[-1]:
            raise ValueError(
                f"weight must have shape (V, D) with D = hidden.shape[-1]; got weight "
                f"{format_shape(weight.shape)} and hidden {format_shape(hidden.shape)}"
            )
        if bias is not None:
            check_same_shape("bias", bias, (weight.shape[0],), "it must have shape (V,):")
        check_same_shape("targets", targets, tuple(hidden.shape[:-1]), "it must have shape")
        if not xp.isdtype(targets.dtype, "integral"):
            raise TypeError(f"targets must be integer class indices; got dtype {targets.dtype}")
        if values:
            check_class_indices(xp, targets, weight.shape[0], self.ignore_index)

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
        xp: Any, h: Any, weight: Any, bias: Any, start: int, stop: int, softcap: Any
    ) -> tuple[Any, Any | None]:
        """Logits of vocabulary entries ``start:stop``, and ``tanh(z / softcap)`` if capped."""
        w = xp.astype(weight[start:stop, :], h.dtype, copy=False)
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

    def _targets(self, xp: Any, targets: Any, vocab: int) -> SparseTargets:
        flat = xp.reshape(targets, (-1,))
        return sparse_targets(xp, flat, vocab, self.ignore_index, checked=self.values_checked)

    def forward(
        self, xp: Any, hidden: Any, weight: Any, targets: Any, bias: Any | None = None
    ) -> tuple[Any, tuple[Any, ...]]:
        dtype = compute_dtype(xp, hidden.dtype)
        h = xp.reshape(xp.astype(hidden, dtype, copy=False), (-1, hidden.shape[-1]))
        vocab = weight.shape[0]
        sparse = self._targets(xp, targets, vocab)
        n = h.shape[0]
        device = device_of(xp, h)
        running_max = xp.full((n,), -float("inf"), dtype=dtype, device=device)
        running_sum = xp.zeros((n,), dtype=dtype, device=device)
        softcap, z_loss, eps = self._hyperparameters(xp, h)
        target_logit = self._target_logits(xp, h, weight, bias, sparse.index, softcap)
        logit_sum = xp.zeros((n,), dtype=dtype, device=device)
        for start, stop in self._chunks(vocab):
            z, _ = self._logits(xp, h, weight, bias, start, stop, softcap)
            if may_be_nonzero(eps):
                logit_sum = logit_sum + xp.sum(z, axis=-1)
            chunk_max = xp.max(z, axis=-1)
            new_max = xp.maximum(running_max, chunk_max)
            shift = xp.where(xp.isfinite(new_max), new_max, xp.zeros_like(new_max))
            if writable(xp, z):  # z is fresh: PyTorch and NumPy work in place, one (N, chunk)
                z -= shift[:, None]
            else:  # autograd records z (max saves it): out of place
                z = z - shift[:, None]
            running_sum = running_sum * xp.exp(running_max - shift) + xp.sum(
                exp_of_fresh(xp, z), axis=-1
            )
            running_max = new_max
        shift = xp.where(xp.isfinite(running_max), running_max, xp.zeros_like(running_max))
        log_sum = xp.log(running_sum)
        lse = shift + log_sum
        # (shift - z) + log_sum keeps the digits of log_sum that shift + log_sum rounds away
        losses = (1.0 - eps) * ((shift - target_logit) + log_sum)
        if may_be_nonzero(eps):
            losses = losses + eps * ((shift - logit_sum / vocab) + log_sum)
        if may_be_nonzero(z_loss):
            losses = losses + z_loss * lse * lse
        losses = xp.reshape(sparse.masked(xp, losses), tuple(targets.shape))
        weights = None
        if sparse.keep is not None:
            weights = xp.reshape(xp.astype(sparse.keep, dtype), tuple(targets.shape))
        loss, denominator = reduce_losses(xp, losses, weights, self.reduction)
        residuals = (hidden, weight, targets, bias, shift, log_sum, denominator)
        return xp.astype(loss, hidden.dtype), residuals

    def backward(self, xp: Any, residuals: tuple[Any, ...], cotangent: Any) -> tuple[Any, ...]:
        """Gradients with respect to ``(hidden, weight, bias)`` (``None`` for an absent bias)."""
        hidden, weight, targets, bias, shift, log_sum, denominator = residuals
        dtype = log_sum.dtype
        lse = shift + log_sum
        h = xp.reshape(xp.astype(hidden, dtype, copy=False), (-1, hidden.shape[-1]))
        vocab = weight.shape[0]
        sparse = self._targets(xp, targets, vocab)
        index = sparse.index
        upstream = reduce_backward(xp, xp.astype(cotangent, dtype), denominator, self.reduction)
        upstream = xp.reshape(upstream * xp.ones_like(xp.reshape(lse, tuple(targets.shape))), (-1,))
        keep_f = sparse.keep_as(xp, dtype)
        softcap, z_loss, eps = self._hyperparameters(xp, h)
        # d loss_i / d z_ic = p_ic (1 + 2 z_loss lse_i) - (1 - eps) [c == y_i] - eps / V;
        # an invalid row's NaN rides on its (N,) scale, set after every 0/1-mask product
        row_weight = keep_f * upstream
        scale = nan_where(xp, sparse.invalid, (1.0 + 2.0 * z_loss * lse) * row_weight)
        at_target = -(1.0 - eps) * row_weight
        grad_h = xp.zeros_like(h)
        grad_w = RowBlocks(xp, (vocab, h.shape[1]), weight.dtype, device_of(xp, h))
        grad_b = None if bias is None else RowBlocks(xp, (vocab,), bias.dtype, device_of(xp, h))
        for start, stop in self._chunks(vocab):
            z, capped = self._logits(xp, h, weight, bias, start, stop, softcap)
            z -= shift[:, None]  # in place where arrays are mutable: one (N, chunk) array
            z -= log_sum[:, None]
            dz = exp_of_fresh(xp, z)
            dz *= scale[:, None]
            if may_be_nonzero(eps):
                dz -= (eps / vocab * row_weight)[:, None]
            in_chunk = (index >= start) & (index < stop)
            local = xp.where(in_chunk, index - start, xp.zeros_like(index))
            dz = add_at_index(xp, dz, local, xp.where(in_chunk, at_target, xp.zeros_like(scale)))
            if capped is not None:
                dz *= 1.0 - capped * capped
            w = xp.astype(weight[start:stop, :], dtype, copy=False)
            grad_h += xp.matmul(dz, w)
            grad_w.put(start, stop, xp.matmul(xp.matrix_transpose(dz), h))
            if grad_b is not None:
                grad_b.put(start, stop, xp.sum(dz, axis=0))
        grad_hidden = xp.astype(xp.reshape(grad_h, tuple(hidden.shape)), hidden.dtype, copy=False)
        return grad_hidden, grad_w.result(), None if grad_b is None else grad_b.result()


def linear_cross_entropy(
    hidden: Any,
    weight: Any,
    targets: Any,
    *,
    bias: Any | None = None,
    chunk_size: int | None = None,
    softcap: Hyperparameter | None = None,
    z_loss: Hyperparameter = 0.0,
    ignore_index: int | None = None,
    label_smoothing: Hyperparameter = 0.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Any:
    r"""Softmax cross entropy of ``hidden @ weight.T + bias`` without materialising the logits.

    .. math::

        z_i = \operatorname{cap}(W h_i + b), \qquad
        \ell_i = (1-\varepsilon)(\operatorname{lse}(z_i) - z_{i y_i})
            + \varepsilon\,(\operatorname{lse}(z_i) - \bar z_i)
            + \lambda_z \operatorname{lse}(z_i)^2

    Args:
        hidden: ``(..., D)`` final hidden states.
        weight: ``(V, D)`` output projection (PyTorch's ``nn.Linear(D, V).weight`` layout).
        targets: ``(...)`` integer token ids.
        bias: optional ``(V,)``.
        chunk_size: vocabulary entries per chunk (default 4096); peak extra memory is about
            ``N * chunk_size`` values.
        softcap: Gemma 2's logit soft-cap :math:`s` in :math:`s \tanh(z / s)`, or None.
        z_loss: PaLM's auxiliary :math:`\lambda_z \operatorname{lse}^2` (0 to disable).
        ignore_index, label_smoothing, reduction, validate: as in :func:`softmax_cross_entropy`
            (``"mean"`` divides by the number of non-ignored targets). ``softcap``, ``z_loss``
            and ``label_smoothing`` may be 0-d arrays (traced or differentiated).

    >>> import numpy as np, xentropy
    >>> h, w = np.ones((2, 3)), np.zeros((5, 3))
    >>> float(xentropy.linear_cross_entropy(h, w, np.array([0, 4])))
    1.6094379...
    """
    namespace_of(hidden, weight, targets, bias)  # fail early on mixed array types
    op = LinearCrossEntropy(
        chunk_size=chunk_size,
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    return evaluate(op, hidden, weight, targets, bias, prediction=hidden, validate=validate)
