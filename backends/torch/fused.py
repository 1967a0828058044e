r"""``torch.nn.functional.linear_cross_entropy`` (PyTorch 2.13): ``F.linear`` fused with the loss.

.. math::

    \ell = \operatorname{cross\_entropy}\big(\text{input}\, W^\top + b,\ \text{target}\big)

with PyTorch's signature, names and defaults: ``linear_weight`` ``(C, D)`` (or ``(C, d1, ...,
dK, D)`` for a K-dimensional loss), keyword-only ``linear_bias``, ``weight`` (class weights),
``reduction``, ``ignore_index=None`` (-100 for class indices; an error with probability targets)
and ``options`` (:class:`LinearCrossEntropyOptions`, torch's own dataclass where it exists).
xentropy's extras follow PyTorch's arguments, keyword-only: ``chunk_size``, ``softcap``,
``z_loss``, ``validate``.

Which path a call takes:

==========================================  ==================================================
a 2-D ``linear_weight`` ``(C, D)``: class    fused: the core's ``LinearCrossEntropy``; the
indices or probabilities, with or without    ``(N, C)`` logits are never materialised. Under
class ``weight``                             autograd, with ``"mean"`` or ``"sum"``, the
                                             gradients of ``input``, ``linear_weight`` and
                                             ``linear_bias`` are computed in the forward pass,
                                             blocks of rows at a time over the whole vocabulary
                                             (three matrix products; the backward scales them).
                                             Otherwise (no grad, ``"none"``) the vocabulary is
                                             processed ``chunk_size`` entries at a time (default
                                             4096) and the backward recomputes each chunk. The
                                             gradients of class weights and probability targets
                                             come from autograd of the core's exact forward

a K-dimensional ``linear_weight``            unfused: ``F.linear`` then
``(C, d1, ..., dK, D)``                      :func:`.functional.cross_entropy` (``softcap`` and
                                             ``z_loss`` included), as PyTorch's reference path
                                             (``options=None``); a requested chunking
                                             (``options`` or ``chunk_size``) warns that it is
                                             not applied
==========================================  ==================================================

Chunking. PyTorch's chunked path cuts the *batch*: ``options.batch_chunk_size`` rows at a time,
so at most ``batch_chunk_size * C`` logits exist at once. The core cuts the *vocabulary*: all
``N`` rows, ``chunk_size`` classes at a time. ``options.batch_chunk_size = B`` is therefore
honoured as ``chunk_size = ceil(B * C / N)``, the same number of logits at once (one chunk when
``B >= N``); giving both ``chunk_size`` and ``options.batch_chunk_size`` is a ``ValueError``.
Where the gradients are computed in the forward pass, the core cuts the batch as PyTorch does,
into blocks of as many logits (``ceil(chunk_size * N / C)`` rows: ``B`` again); without either
it takes :math:`\max(2^{23} / C, 3D/8)` rows (``xentropy._linear.gradient_rows``).
The other fields of ``options`` do not change the result: ``chunking_method`` (a heuristic for
``batch_chunk_size`` when it is None) gives way to the core's default chunk, ``acc_policy`` /
``acc_dtype`` to the core's rule (16-bit inputs are computed in float32, like
``acc_policy="accurate"``: the weight gradient is accumulated in float32 and cast once), and
``allow_retain_graph`` is always in effect: the first backward takes the gradients the forward
computed, and a second ``backward`` of a retained graph computes them again the same way (the
same bits) instead of failing.
``options`` also does not limit what else works: label smoothing, any integer target dtype,
``torch.func`` transforms, double backward and forward-mode AD all stay available, where
PyTorch's chunked path falls back to its reference path (with a warning) or refuses.

Where it deliberately differs from PyTorch: as :mod:`.functional` for ``cross_entropy``
(``ValueError`` for a class index out of range, negative weights or ``label_smoothing`` outside
``[0, 1]``; a gradient for class weights; any integer dtype for class indices). PyTorch's own
structural checks are kept with its ``RuntimeError``: ``input`` of 1 or 2 dimensions (flatten a
``(B, T, D)`` input to ``(B * T, D)``), ``linear_weight`` of at least 2, equal ``in_features``,
the bias shape, the same dtype for ``input``, ``linear_weight`` and ``linear_bias`` outside
autocast, batched input for a K-dimensional loss, and no ``ignore_index`` with probability
targets; each message ends with PyTorch's own words ("expected linear_bias shape (2,), got
(3,)"), which its tests match on. (PyTorch's dtype mismatch is the matrix product's error, whose
words depend on the path taken; ours names each argument's dtype.) The errors of the core's
checks (target shapes and dtypes, class weights, ``label_smoothing``) are PyTorch's classes
too, with this function's argument names (:mod:`._errors`).

Under ``torch.autocast`` it follows the policy of the unfused pair: the inputs of the projection
are cast to autocast's dtype (``F.linear`` is on its lower-precision list) and the loss is
computed and returned in float32 (``F.cross_entropy`` is on its float32 list).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

import torch

from xentropy import ops
from xentropy.ops import LinearCrossEntropy

from ._autograd import apply, autocast_dtype, without_autocast
from ._errors import require_tensors
from .functional import as_weight, cross_entropy, resolve_reduction

__all__ = ["LinearCrossEntropyOptions", "linear_cross_entropy"]

_ACC_POLICIES = ("accurate", "balanced", "compact", "auto")
_ACC_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    """``torch.nn.LinearCrossEntropyOptions`` for PyTorch releases before 2.13: the same fields,
    defaults and validation (``ValueError``); only ``batch_chunk_size`` changes our result."""

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: Literal["accurate", "balanced", "compact", "auto"] = "auto"
    acc_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.acc_policy not in _ACC_POLICIES:
            raise ValueError(f"acc_policy must be one of {_ACC_POLICIES}; got {self.acc_policy!r}")
        if self.chunking_method not in (None, "auto"):
            name, sep, factor = str(self.chunking_method).partition(":")
            factor = factor if sep else "1"
            if name != "aspect_ratio" or not factor.isdigit() or int(factor) < 1:
                raise ValueError(
                    "chunking_method must be None, 'auto', 'aspect_ratio' or 'aspect_ratio:N' "
                    f"with N >= 1; got {self.chunking_method!r}"
                )
        size = self.batch_chunk_size
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"batch_chunk_size must be a positive int or None; got {size!r}")
        if self.acc_dtype is not None and self.acc_dtype not in _ACC_DTYPES:
            raise ValueError(
                f"acc_dtype must be None or one of {_ACC_DTYPES}; got {self.acc_dtype}"
            )


LinearCrossEntropyOptions: Any = getattr(torch.nn, "LinearCrossEntropyOptions", _Options)


def linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: Any | None = None,
    chunk_size: int | None = None,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    validate: bool = True,
) -> Any:
    r"""``F.cross_entropy(F.linear(input, linear_weight, linear_bias), target, ...)``, fused.

    .. math::

        z_i = \operatorname{cap}(W x_i + b), \qquad
        \ell_i = (1-\varepsilon)(\operatorname{lse}(z_i) - z_{i y_i})
            + \varepsilon\,(\operatorname{lse}(z_i) - \bar z_i)
            + \lambda_z \operatorname{lse}(z_i)^2

    (with class ``weight`` or probability targets, PyTorch's weighted or soft cross entropy of
    :math:`z`, as :func:`.functional.cross_entropy`).

    Args:
        input: ``(N, D)`` or ``(D,)`` hidden states.
        linear_weight: ``(C, D)``, as ``nn.Linear(D, C).weight``; ``(C, d1, ..., dK, D)`` for a
            K-dimensional loss (logits ``(N, C, d1, ..., dK)``).
        target: class indices ``(N,)``, ``()`` or ``(N, d1, ..., dK)``; or class probabilities
            with the shape of the logits.
        linear_bias: ``(C,)`` (``(C, d1, ..., dK)``) or None.
        weight: ``(C,)`` class weights or None.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        ignore_index: class index whose targets are skipped; None means -100 for class indices
            (and must stay None with probability targets).
        label_smoothing: :math:`\varepsilon \in [0, 1]`.
        options: a :class:`LinearCrossEntropyOptions`; its ``batch_chunk_size`` sets the chunk
            (module docstring), its other fields change nothing.
        chunk_size: classes per chunk of the fused path (default 4096).
        softcap: Gemma 2's logit soft-cap :math:`s` in :math:`s \tanh(z / s)`, or None.
        z_loss: PaLM's auxiliary :math:`\lambda_z \operatorname{lse}^2` (0 to disable).
        return_lse: also return the per-example log-sum-exp of the (capped) logits,
            differentiable: ``(loss, lse)`` (a second pass over the vocabulary chunks; see
            :func:`xentropy.linear_cross_entropy`).
        validate: check target values on eager inputs, which reads them back (a device sync
            on GPU); False skips the check, and invalid values then give NaN for the affected
            examples instead of an error. Skipped under ``torch.compile``.

    >>> import torch
    >>> from xentropy.backends.torch import functional as F
    >>> F.linear_cross_entropy(torch.ones(2, 3), torch.zeros(5, 3), torch.tensor([0, 4]))
    tensor(1.6094)
    """
    require_tensors("linear_cross_entropy", input=input, linear_weight=linear_weight, target=target)
    logits_shape = _check_projection(input, linear_weight, linear_bias)
    probabilities = tuple(target.shape) == logits_shape
    if probabilities:
        _check_ignore_index(ignore_index, logits_shape)
    index = -100 if ignore_index is None else ignore_index
    reduction = resolve_reduction(None, None, reduction)
    num_classes, out_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    if out_features:
        _check_unfused_chunking(chunk_size, options)
        logits = torch.nn.functional.linear(
            input,
            linear_weight.reshape(-1, input.shape[-1]),
            None if linear_bias is None else linear_bias.reshape(-1),
        ).reshape(logits_shape)
        kwargs = {} if probabilities else {"ignore_index": index}
        return cross_entropy(
            logits,
            target,
            weight,
            reduction=reduction,
            label_smoothing=label_smoothing,
            softcap=softcap,
            z_loss=z_loss,
            return_lse=return_lse,
            validate=validate,
            **kwargs,
        )
    op = LinearCrossEntropy(
        chunk_size=_vocabulary_chunk(chunk_size, options, math.prod(input.shape[:-1]), num_classes),
        softcap=softcap,
        z_loss=z_loss,
        ignore_index=None if probabilities else index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    names = ("input", "linear_weight", "target", "linear_bias", "weight")
    dtype = autocast_dtype(input)
    if dtype is None:
        h, w, t, b = input, linear_weight, target, linear_bias
        class_weight = as_weight(weight, input, per_class=True)
        loss = apply(op, names, h, w, t, b, class_weight, validate=validate)
        return (loss, op.log_sum_exp(ops.namespace_of(h), h, w, t, b)) if return_lse else loss
    # autocast: the projection in autocast's dtype (as F.linear), the loss in float32 (as
    # F.cross_entropy); the core computes 16-bit inputs in float32, and float32 hidden states
    # make its result float32
    h, w, b = (_autocast_cast(a, dtype) for a in (input, linear_weight, linear_bias))
    with without_autocast(input):
        h = h.float()
        t = target.float() if probabilities and target.dtype != torch.float64 else target
        class_weight = as_weight(weight, h, per_class=True)
        loss = apply(op, names, h, w, t, b, class_weight, validate=validate)
        return (loss, op.log_sum_exp(ops.namespace_of(h), h, w, t, b)) if return_lse else loss


def _check_projection(
    input: torch.Tensor, linear_weight: torch.Tensor, linear_bias: torch.Tensor | None
) -> tuple[int, ...]:
    """PyTorch's structural checks of the projection (``RuntimeError``, each message ending in
    the phrase of PyTorch's own); the logits' shape."""
    if input.ndim not in (1, 2):
        flatten = " (flatten the leading dimensions: input.flatten(0, -2), target.flatten())"
        raise RuntimeError(
            f"input must have 1 or 2 dimensions, (D,) or (N, D); got shape {tuple(input.shape)}"
            f"{flatten if input.ndim > 2 else ''}; expected input with dimensionality 1 or 2, "
            f"got {input.ndim}"
        )
    if linear_weight.ndim < 2:
        raise RuntimeError(
            f"linear_weight must have at least 2 dimensions, (C, D); got shape "
            f"{tuple(linear_weight.shape)}; expected linear_weight with dimensionality at least "
            f"2, got {linear_weight.ndim}"
        )
    in_features, weight_features = input.shape[-1], linear_weight.shape[-1]
    if in_features != weight_features:
        raise RuntimeError(
            f"input and linear_weight must have the same last dimension (in_features); got "
            f"input {tuple(input.shape)} and linear_weight {tuple(linear_weight.shape)}; "
            "expected equal input and linear_weight last dimensions (in_features), got "
            f"{in_features} and {weight_features}, respectively"
        )
    num_classes, out_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    bias_shape = (num_classes, *out_features)
    if linear_bias is not None and tuple(linear_bias.shape) != bias_shape:
        shape = tuple(linear_bias.shape)
        raise RuntimeError(
            f"linear_bias must have one entry per output of linear_weight "
            f"{tuple(linear_weight.shape)} (all dimensions but the last); got shape {shape}; "
            f"expected linear_bias shape {bias_shape}, got {shape}"
        )
    if out_features and input.ndim == 1:
        raise RuntimeError(
            f"input must be batched, (N, {in_features}), for a K-dimensional loss (add a batch "
            "dimension: input.unsqueeze(0), target.unsqueeze(0)); K-dimensional loss defined by "
            f"linear_weight shape {tuple(linear_weight.shape)} requires batched input, "
            f"(N, {in_features}), got unbatched input with shape {tuple(input.shape)}"
        )
    if autocast_dtype(input) is None:
        arrays = {"input": input, "linear_weight": linear_weight, "linear_bias": linear_bias}
        dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
        if len(set(dtypes.values())) > 1:
            listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
            raise RuntimeError(
                "input, linear_weight and linear_bias must have the same dtype (as F.linear "
                f"outside autocast); got {listed}"
            )
    return (*input.shape[:-1], num_classes, *out_features)


def _check_ignore_index(ignore_index: int | None, logits_shape: tuple[int, ...]) -> None:
    """PyTorch's rule: probability targets (the logits' shape) take no ``ignore_index``."""
    if ignore_index is not None:
        raise RuntimeError(
            f"ignore_index={ignore_index} cannot be given when target holds class "
            f"probabilities (target has the logits' shape {logits_shape}); ignore_index cannot "
            "be specified when target contains probabilities"
        )


def _check_unfused_chunking(chunk_size: int | None, options: Any | None) -> None:
    """The unfused path (a K-dimensional loss) cannot chunk."""
    if chunk_size is not None or options is not None:
        warnings.warn(
            "linear_cross_entropy: chunking (options / chunk_size) is not applied with a "
            "K-dimensional linear_weight (the core's fused operator takes a (C, D) projection); "
            "the logits are materialised",
            UserWarning,
            stacklevel=3,
        )


def _vocabulary_chunk(
    chunk_size: int | None, options: Any | None, rows: int, num_classes: int
) -> int | None:
    """The core's ``chunk_size`` (classes per chunk): ``chunk_size``, or PyTorch's
    ``options.batch_chunk_size`` rows of all classes turned into as many logits per chunk."""
    batch_chunk = None if options is None else options.batch_chunk_size
    if batch_chunk is None:
        return chunk_size
    if chunk_size is not None:
        raise ValueError(
            f"give chunk_size (={chunk_size}, classes per chunk) or options.batch_chunk_size "
            f"(={batch_chunk}, rows per chunk), not both"
        )
    return max(1, min(num_classes, -(-batch_chunk * num_classes // max(rows, 1))))


def _autocast_cast(x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Autocast's cast of a ``lower_precision_fp`` op's input: floating, not float64."""
    if x is None or not x.is_floating_point() or x.dtype == torch.float64:
        return x
    return x.to(dtype)
