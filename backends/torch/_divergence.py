r"""``torch.nn.functional.kl_div`` and ``multilabel_soft_margin_loss``, with their ``nn`` modules.

Same names, argument order and defaults as PyTorch 2.13, plus the keyword-only ``validate=True``
of the other losses of this dialect (:mod:`.functional`, whose differences from PyTorch apply
here too). What maps to what:

================================  ==========================================================
``kl_div``                        ``PointwiseKLDivergence(axis=None, log_target)``: the term
                                  :math:`p (\log p - x)` of every element (``exp(t) (t - x)``
                                  with ``log_target``), then ``reduction``
``multilabel_soft_margin_loss``   ``SigmoidCrossEntropy``, ``weight`` as ``class_weight``;
                                  the mean over the last (class) axis, then ``reduction``
``KLDivLoss``                     ``kl_div`` with the module's ``reduction`` and
                                  ``log_target``
``MultiLabelSoftMarginLoss``      ``multilabel_soft_margin_loss``, ``weight`` a buffer
================================  ==========================================================

``kl_div`` accepts PyTorch's reductions ``"none"``, ``"batchmean"`` (the sum divided by
``input.size(0)``; the sum for a 0-d input), ``"sum"`` and ``"mean"`` (the mean over all
elements). As in PyTorch, ``"mean"`` given as ``reduction`` (not through the legacy
``size_average`` / ``reduce``) warns with PyTorch's own ``UserWarning`` text, at every call
(``KLDivLoss()`` included, whose default it is), so that warning filters written for PyTorch
keep working; under ``torch.compile`` it is not issued. Both functions compile with
``fullgraph=True``. Under ``torch.autocast`` ``kl_div`` follows PyTorch's ``fp32`` policy (16-bit
inputs cast to float32, a float32 result); ``multilabel_soft_margin_loss`` keeps the input's
dtype, as PyTorch's composite function does.

Where this module deliberately differs from PyTorch:

* ``kl_div``: a zero target contributes 0 whatever its prediction, a ``-inf`` log-probability
  included (:math:`0 \log 0 = 0`); PyTorch gives NaN there (``0 * -inf``). With
  ``log_target``, a target of ``-inf`` (probability 0) likewise contributes 0 and its
  derivative is 0 (the limit); PyTorch gives NaN for both.
* ``kl_div``: the derivative by a probability target of exactly 0 is :math:`-x` (0 under a
  ``-inf`` input): the derivative of :math:`t \log t` is taken as 0 there, as in
  ``xentropy.kl_divergence``. The one-sided derivative is :math:`-\infty`; PyTorch gives NaN
  (``0 / 0`` in its ``xlogy`` backward). Elsewhere both match PyTorch's.
* ``kl_div``: a negative or NaN probability target raises ``ValueError`` on eager inputs
  (PyTorch returns NaN for that element); with ``validate=False``, under ``torch.compile`` or
  ``vmap`` it gives NaN, loss and gradient. Targets above 1 are accepted (the divergence of
  unnormalised measures), as in PyTorch.
* Shapes: ``target`` must have the shape of ``input`` exactly (``ValueError`` naming both);
  PyTorch broadcasts silently, which changes what the reduction averages over.
* Dtypes: the result and the gradient have the dtype of ``input``, computed in float32 for
  16-bit inputs and rounded once; a target of another floating dtype is cast (PyTorch promotes
  the result). Integer and bool targets are cast (PyTorch's ``kl_div`` raises
  ``RuntimeError``); with ``log_target`` they raise ``TypeError``.
* ``multilabel_soft_margin_loss``: targets outside ``[0, 1]`` and negative weights raise
  ``ValueError`` on eager inputs (PyTorch computes a meaningless number), as in
  ``binary_cross_entropy_with_logits``; ``weight`` must broadcast to ``input`` without growing
  it.
* Every floating input is differentiable, any order and both modes, as in PyTorch (``weight``
  of ``multilabel_soft_margin_loss`` included, which PyTorch's composite function also
  differentiates).

The modules derive from :mod:`._module_base`'s bases, as those of :mod:`.nn` do, and script
(``torch.jit.script``) like them, with the same limits (their ``forward`` calls the loss as a
Python function).
"""

import warnings

import torch
from torch.nn import _reduction

from xentropy import ops
from xentropy._checks import check_same_shape

from . import functional as F
from ._autograd import apply
from ._errors import TORCH, require_tensors
from ._module_base import _Loss, _WeightedLoss

__all__ = [
    "KLDivLoss",
    "MultiLabelSoftMarginLoss",
    "kl_div",
    "multilabel_soft_margin_loss",
]

KL_DIV_REDUCTIONS = ("none", "batchmean", "sum", "mean")
# PyTorch's own text (torch.nn.functional.kl_div), so that filters written for it match ours
MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


def kl_div_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """PyTorch's rule for ``kl_div``: the legacy arguments win; ``"batchmean"`` is allowed."""
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce)
    if reduction not in KL_DIV_REDUCTIONS:
        raise ValueError(
            f"{reduction!r} is not a valid value for reduction; use one of {KL_DIV_REDUCTIONS}"
        )
    return reduction


def kl_div(
    input: torch.Tensor,
    target: torch.Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
    *,
    validate: bool = True,
) -> torch.Tensor:
    r"""``torch.nn.functional.kl_div``: the KL divergence terms of log-probabilities ``input``.

    .. math::

        \ell = t\,(\log t - x) \quad\text{or, with ``log_target``,}\quad \ell = e^{t}\,(t - x)

    element by element, with :math:`0 \log 0 = 0`, then reduced (``"batchmean"``: the sum over
    ``input.size(0)``, the KL divergence of a batch of distributions).

    Args:
        input: log-probabilities, any shape.
        target: probabilities (or log-probabilities with ``log_target``), the shape of
            ``input``.
        size_average, reduce: deprecated; mapped to ``reduction`` as PyTorch does.
        reduction: ``"none"``, ``"batchmean"``, ``"sum"`` or ``"mean"`` (warns, as PyTorch).
        log_target: ``target`` holds log-probabilities.
        validate: check on eager inputs that probability targets are non-negative, which reads
            them back (a device sync on GPU); False skips it, and a bad target then gives NaN.

    >>> import torch
    >>> from xentropy.backends.torch import _divergence as D
    >>> D.kl_div(torch.tensor([[-0.5, -1.0]]), torch.tensor([[0.5, 0.5]]), reduction="batchmean")
    tensor(0.0569)
    """
    legacy = size_average is not None or reduce is not None
    # (dynamo cannot trace warnings.warn: under torch.compile the warning is not repeated)
    if not legacy and reduction == "mean" and not torch.compiler.is_compiling():
        warnings.warn(MEAN_WARNING, UserWarning, stacklevel=2)
    require_tensors("kl_div", input=input, target=target)
    op = ops.PointwiseKLDivergence(
        log_target=log_target,
        reduction=kl_div_reduction(size_average, reduce, reduction),
        prediction_name="input",
        target_name="target",
    )
    names = ("input", "target", "where")
    return F.apply_fp32(op, names, input, target, None, validate=validate)


def multilabel_soft_margin_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    *,
    validate: bool = True,
) -> torch.Tensor:
    r"""``torch.nn.functional.multilabel_soft_margin_loss``: sigmoid cross entropy per class,
    averaged over the classes (the last axis).

    .. math::

        \ell_i = \frac{1}{C} \sum_c w_c \big[(1 - t_{ic})\, x_{ic} + \log(1 + e^{-x_{ic}})\big]

    evaluated without overflow for logits of any size, then reduced over the examples.

    Args:
        input: logits ``(N, C)``, ``(C,)`` or ``(N, d1, ..., C)``.
        target: the shape of ``input``, values in ``[0, 1]``.
        weight: non-negative, broadcast against ``input`` (typically ``(C,)``).
        size_average, reduce, reduction: as PyTorch's (``"none"``, ``"mean"``, ``"sum"``).
        validate: check target values and weights on eager inputs (a device sync on GPU);
            False skips it, and invalid values then give NaN for the affected examples.

    >>> import torch
    >>> from xentropy.backends.torch import _divergence as D
    >>> D.multilabel_soft_margin_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    tensor(1.4100)
    """
    reduction = F.resolve_reduction(size_average, reduce, reduction)
    require_tensors("multilabel_soft_margin_loss", input=input, target=target)
    with TORCH.raising({}):  # PyTorch's class for the mistake too (._errors)
        check_same_shape("target", target, tuple(input.shape), "it must have the shape of input")
    # the mean over all elements is the mean over examples of the means over classes
    op = ops.SigmoidCrossEntropy(reduction="mean" if reduction == "mean" else "none")
    w = F.as_weight(weight, input, per_class=False)
    names = ("input", "target", "pos_weight", "weight")
    losses = apply(op, names, input, target, None, w, validate=validate)
    if reduction == "mean":
        return losses
    per_example = torch.mean(losses, dim=-1) if losses.ndim else losses
    return per_example if reduction == "none" else torch.sum(per_example)


class KLDivLoss(_Loss):
    """``torch.nn.KLDivLoss``: :func:`kl_div` of ``(input, target)``."""

    log_target: bool
    _resolve_reduction = staticmethod(kl_div_reduction)  # "batchmean" too

    def __init__(
        self,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        log_target: bool = False,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(size_average, reduce, reduction, validate=validate)
        self.log_target = log_target

    def extra_repr(self) -> str:
        return super().extra_repr() + (", log_target=True" if self.log_target else "")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return kl_div(
            input,
            target,
            reduction=self.reduction,
            log_target=self.log_target,
            validate=self.validate,
        )


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """``torch.nn.MultiLabelSoftMarginLoss``: :func:`multilabel_soft_margin_loss`; ``weight``
    is a buffer (it follows ``.to(device)`` and appears in ``state_dict``)."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(input, target)

    @torch.jit.ignore
    def _loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return multilabel_soft_margin_loss(
            input, target, weight=self.weight, reduction=self.reduction, validate=self.validate
        )
