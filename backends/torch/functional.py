"""``torch.nn.functional``'s cross-entropy losses, computed by the xentropy core.

A complete stand-in for ``torch.nn.functional``: the losses below are xentropy's, and every other
name (``relu``, ``softmax``, ``linear``, ``dropout``, ...) is ``torch.nn.functional``'s own,
resolved by the module's ``__getattr__`` (``from ... import relu`` works too, and ``dir()``
lists both). Our names win where both exist; names starting with ``_`` never fall through; a
name neither module has raises ``AttributeError`` naming both. ``__all__`` lists only
xentropy's names.

Same names, argument order and defaults as ``torch.nn.functional`` (PyTorch 2.x), plus one
keyword-only argument after PyTorch's own, ``validate=True`` (below). Differentiable where
PyTorch's functions are, in every order and both modes (:mod:`._autograd`): the first-order
gradient of ``input`` alone is the core's analytic backward (the fast path); a double backward,
forward-mode AD, a ``torch.func`` transform (``grad``, ``vmap``, ``jvp``, ``jacrev``,
``jacfwd``, ``hessian``), or a gradient for a target or weight is autograd's own differentiation
of the core's exact forward. What maps to what:

=========================================  =====================================================
``cross_entropy`` (index targets)           ``SoftmaxCrossEntropy(axis=1 (0 for a (C,) input),
                                            ignore_index, label_smoothing)``, ``weight`` as
                                            ``class_weight``

``cross_entropy`` (``target.shape ==        the same operator with probability targets;
input.shape``: class probabilities)         a negative ``ignore_index`` is not used, another
                                            raises (as in PyTorch)

``nll_loss``                                ``NegativeLogLikelihood(axis=1 (0 for (C,)),
                                            ignore_index)``: ``-weight[y] * input[y]``, no
                                            normalisation of ``input``

``binary_cross_entropy``                    ``BinaryCrossEntropy(epsilon=None,
                                            log_floor=-100.0)`` (PyTorch's clamp of each log
                                            at -100), ``weight`` as ``class_weight``

``binary_cross_entropy_with_logits``        ``SigmoidCrossEntropy``, ``weight`` as
                                            ``class_weight``, ``pos_weight`` as ``pos_weight``

``linear_cross_entropy`` (PyTorch 2.13's    :mod:`.fused`: ``LinearCrossEntropy`` (the
signature; extras ``chunk_size``,           ``(N, C)`` logits never materialised) for class
``softcap``, ``z_loss``)                    indices or probabilities, ``weight`` as
                                            ``class_weight``; ``F.linear`` then
                                            ``cross_entropy`` for a K-dimensional
                                            ``linear_weight``

``cross_entropy``'s extras ``softcap``,      the core's LLM options of ``SoftmaxCrossEntropy``
``z_loss``, ``return_lse`` (keyword-only)   (Gemma 2's soft-cap, PaLM's z-loss, the
                                            per-example log-sum-exp as a second output)

``size_average`` / ``reduce`` (legacy)      mapped to ``reduction`` by PyTorch's own
                                            ``torch.nn._reduction.legacy_get_string`` (with its
                                            deprecation warning), exactly as PyTorch does

``validate`` (keyword-only, xentropy's)     the core's ``validate``: value checks on eager
                                            inputs (a device synchronisation on GPUs)
=========================================  =====================================================

``reduction`` is one of PyTorch's ``"none"``, ``"mean"``, ``"sum"`` (``"mean"`` of class-index
targets divides by the summed weight of the non-ignored targets, otherwise by the number of
elements). A mean over nothing, an empty or fully ignored batch, is NaN with a zero gradient,
as in PyTorch.

Where this dialect deliberately differs from PyTorch (the core's contract wins):

* Errors are the core's (``xentropy._errors``), raised as instances of PyTorch's class for the
  same mistake too (:mod:`._errors`): a class index outside ``[0, C)`` that is not
  ``ignore_index`` is a ``ValueError`` and an ``IndexError`` ("Target 3 is out of bounds"), a
  wrong shape a ``ValueError`` and a ``RuntimeError`` (with PyTorch's "Expected input batch_size
  (4) to match target batch_size (5)" or "Expected target size ..."), float class indices a
  ``TypeError`` and a ``RuntimeError``, a NumPy array or list for ``input`` / ``target`` a
  ``TypeError`` (as in PyTorch). Messages name PyTorch's arguments (``input``, ``target``,
  ``weight``) and show the offending value or shape; an ``(N, 1)`` integer ``target`` is told to
  be squeezed.
* Bad values raise eagerly, where PyTorch computes with them: ``label_smoothing`` outside
  ``[0, 1]`` (PyTorch silently accepts negative values and raises ``RuntimeError`` above 1),
  negative ``weight`` / ``pos_weight`` (PyTorch accepts them and can return a negative or
  meaningless weighted mean), ``binary_cross_entropy_with_logits`` targets outside ``[0, 1]``
  (PyTorch returns negative losses); probabilities outside ``[0, 1]`` or NaN in
  ``binary_cross_entropy`` raise as in PyTorch. Each is a ``ValueError`` and a ``RuntimeError``.
* ``validate=True`` (the default) runs these value checks on eager inputs. They read the values
  back, which is a device synchronisation on GPUs; ``validate=False`` skips them, and an invalid
  value then gives NaN for the examples it affects (loss and gradient) instead of an error.
  Shapes, dtypes and options are checked either way.
* Under ``torch.compile`` these value checks are skipped (reading values would break the graph),
  as with ``validate=False``: a bad class index gives NaN for its example, loss and gradient.
* ``binary_cross_entropy`` at ``input`` exactly 0 or 1 (the value is PyTorch's, each log clamped
  at -100): the gradient is that of the clamped loss, 0 through a clamped log and the plain
  derivative of the other log (e.g. 1 at ``p = 0, t = 0``). PyTorch's backward divides
  ``p - t`` by ``max(p (1 - p), 1e-12)`` instead: about ``+-1e12`` where a clamp is active, and 0
  at ``p = t = 0`` or ``p = t = 1``.
* Under ``torch.func.vmap`` the value checks are skipped too (they are data-dependent control
  flow, which ``vmap`` cannot batch), whatever ``validate`` says: a bad value gives NaN for its
  example, loss and gradient, as with ``validate=False``.
* Every floating input gets a derivative: ``input``, probability targets, BCE targets (as in
  PyTorch), and also class weights and ``pos_weight``, which PyTorch refuses to differentiate
  ("not differentiable with respect to argument 'weight'"). Class indices get none.
* Under ``torch.autocast`` the policy is PyTorch's: ``cross_entropy``, ``nll_loss``,
  ``binary_cross_entropy_with_logits`` (and ``binary_cross_entropy`` on CPU) cast 16-bit inputs to
  float32 and return float32; ``binary_cross_entropy`` raises ``RuntimeError`` under autocast on
  other devices (CUDA), as PyTorch does.
* An in-place edit of ``input`` between the forward and the backward: ``cross_entropy`` keeps
  only the log-softmax (class indices and probabilities alike) and allows it, as PyTorch does;
  with ``softcap``, and for a double backward, the core needs the logits themselves, and the
  backward raises "modified by an inplace operation" (PyTorch allows the edit before a double
  backward).
* Dtypes: the result (and the gradient) has the dtype of ``input``; 16-bit inputs are computed
  in float32 and rounded once. Weights are cast to that compute dtype (PyTorch requires the
  input's dtype); probability targets of another float dtype are cast (PyTorch promotes the
  result). Class indices may have any integer dtype (PyTorch: int64 or uint8); one-hot targets
  of ``cross_entropy`` and BCE targets may be bool or integer (cast; PyTorch raises).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import _reduction

from xentropy import ops

from .. import _fallthrough
from ._autograd import apply, autocast_dtype, without_autocast
from ._divergence import kl_div, multilabel_soft_margin_loss
from ._dtensor import cross_entropy as dtensor_cross_entropy
from ._dtensor import is_class_sharded
from ._errors import require_tensors

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "kl_div",
    "linear_cross_entropy",
    "multilabel_soft_margin_loss",
    "nll_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


# (operator class, options, their types) -> the operator: the same few are made on every call
_operators: dict[tuple[Any, ...], ops.LossOperator] = {}
_CONSTANTS = (type(None), bool, int, float, str)


def operator(cls: Any, **options: Any) -> Any:
    """``cls(**options)``, made once for options that are all Python constants (an array
    option, a hyperparameter tensor, makes a new operator each time; so does tracing, which
    must not read module state: it would guard on it)."""
    if torch.compiler.is_compiling():
        return cls(**options)
    values = tuple(options.values())
    if not all(type(v) in _CONSTANTS for v in values):
        return cls(**options)
    key = (cls, tuple(options), values, tuple(map(type, values)))
    op = _operators.get(key)
    if op is None:
        op = cls(**options)
        if len(_operators) >= 256:
            _operators.clear()
        _operators[key] = op
    return op


def resolve_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """PyTorch's rule: legacy ``size_average`` / ``reduce`` win over ``reduction`` when given."""
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce)
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{reduction!r} is not a valid value for reduction; use one of {_REDUCTIONS}"
        )
    return reduction


def as_weight(weight: torch.Tensor | None, input: torch.Tensor, *, per_class: bool) -> Any:
    """``weight`` on ``input``'s device in its compute dtype, differentiably for a tensor.

    (``Tensor.to`` keeps the weight in the autograd graph; the core's ``asarray`` conversion
    serves sequences and numbers.)
    """
    if weight is None:
        return None
    if isinstance(weight, torch.Tensor) and input.is_floating_point():
        # the core's compute dtype: float32 for 16-bit inputs, else the input's own
        dtype = torch.float32 if torch.finfo(input.dtype).bits < 32 else input.dtype
        return weight.to(device=input.device, dtype=dtype)
    convert = ops.as_weight_array if per_class else ops.as_broadcast_weight
    return convert(ops.namespace_of(input), weight, input)


def to_float32(*arrays: Any) -> tuple[Any, ...]:
    """Autocast's ``fp32`` cast: floating tensors other than float64 to float32."""
    return tuple(
        a.float()
        if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != torch.float64
        else a
        for a in arrays
    )


def apply_fp32(
    op: ops.LossOperator, names: tuple[str, ...], *arrays: Any, validate: bool
) -> torch.Tensor:
    """:func:`apply` under autocast's ``fp32`` policy, that of ``cross_entropy``, ``nll_loss``,
    ``binary_cross_entropy_with_logits`` (and ``binary_cross_entropy`` on CPU).

    Under ``torch.autocast`` for the prediction's device, 16-bit floating inputs are cast to
    float32 (recorded by autograd, so gradients flow back in the inputs' own dtypes) and the loss
    is float32, as PyTorch's; outside autocast nothing changes. ``arrays[0]``, the prediction in
    every function here, decides the device type.
    """
    if autocast_dtype(arrays[0]) is None:
        return apply(op, names, *arrays, validate=validate)
    with without_autocast(arrays[0]):
        return apply(op, names, *to_float32(*arrays), validate=validate)


def _class_axis(input: torch.Tensor) -> int:
    """PyTorch's layout: ``(N, C, d1, ...)`` has its classes on axis 1, a ``(C,)`` input on 0."""
    return 0 if input.ndim == 1 else 1


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    softcap: float | torch.Tensor | None = None,
    z_loss: float | torch.Tensor = 0.0,
    return_lse: bool = False,
    validate: bool = True,
) -> Any:
    r"""``torch.nn.functional.cross_entropy``: softmax cross entropy of logits ``input``.

    .. math::

        \ell_i = -\sum_c w_c \Big((1-\varepsilon)\, t_{ic} + \frac{\varepsilon}{C}\Big)
        \log \operatorname{softmax}(x_i)_c

    with :math:`t_i` the one-hot vector of class index ``target[i]`` or the given probabilities.
    xentropy's LLM extras, keyword-only after PyTorch's arguments, are those of
    :func:`xentropy.softmax_cross_entropy`: ``softcap`` (Gemma 2's :math:`s \tanh(x / s)`),
    ``z_loss`` (PaLM's :math:`\lambda_z \operatorname{lse}^2`, weighted with the example) and
    ``return_lse`` (also return the per-example log-sum-exp, differentiable).

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``.
        target: class indices ``(N,)``, ``(N, d1, ...)`` or ``()``; or class probabilities with
            the shape of ``input``.
        weight: ``(C,)`` non-negative class weights.
        size_average, reduce: deprecated; mapped to ``reduction`` as PyTorch does.
        ignore_index: class index whose examples are skipped (index targets only).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`.
        validate: check target values and weights on eager inputs, which reads them back (a
            device sync on GPU); False skips the check, and invalid values then give NaN for
            the affected examples instead of an error. Skipped under ``torch.compile``.

    >>> import torch
    >>> from xentropy.backends.torch import functional as F
    >>> F.cross_entropy(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]))
    tensor(0.1698)
    """
    require_tensors("cross_entropy", input=input, target=target)
    if is_class_sharded(input):  # a DTensor sharded on its classes: in parallel (._dtensor)
        return dtensor_cross_entropy(
            input, target, weight, ignore_index=ignore_index,
            reduction=resolve_reduction(size_average, reduce, reduction),
            label_smoothing=label_smoothing, softcap=softcap, z_loss=z_loss,
            return_lse=return_lse, validate=validate,
        )  # fmt: skip
    probabilities = tuple(target.shape) == tuple(input.shape)
    op = operator(
        ops.SoftmaxCrossEntropy,
        axis=_class_axis(input),
        ignore_index=None if probabilities and ignore_index < 0 else ignore_index,
        label_smoothing=label_smoothing,
        reduction=resolve_reduction(size_average, reduce, reduction),
        softcap=softcap,
        z_loss=z_loss,
    )
    w = as_weight(weight, input, per_class=True)
    loss = apply_fp32(op, ("input", "target", "weight"), input, target, w, validate=validate)
    if not return_lse:
        return loss
    (logits,) = to_float32(input) if autocast_dtype(input) is not None else (input,)
    with without_autocast(input):
        return loss, op.log_sum_exp(ops.namespace_of(logits), logits)


def nll_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    *,
    validate: bool = True,
) -> torch.Tensor:
    r"""``torch.nn.functional.nll_loss``: :math:`\ell_i = -w_{y_i}\, x_{i y_i}`.

    ``input`` holds log-probabilities (``log_softmax`` output; nothing is normalised here), with
    the layouts of :func:`cross_entropy`; ``target`` holds class indices only.

    Args:
        input, target, weight, size_average, ignore_index, reduce, reduction: as PyTorch's.
        validate: check target values and weights on eager inputs, which reads them back (a
            device sync on GPU); False skips the check, and invalid values then give NaN for
            the affected examples instead of an error. Skipped under ``torch.compile``.

    >>> import torch
    >>> from xentropy.backends.torch import functional as F
    >>> F.nll_loss(torch.tensor([[-0.5, -1.0, -2.0]]), torch.tensor([1]))
    tensor(1.)
    """
    require_tensors("nll_loss", input=input, target=target)
    op = operator(
        ops.NegativeLogLikelihood,
        axis=_class_axis(input),
        ignore_index=ignore_index,
        reduction=resolve_reduction(size_average, reduce, reduction),
    )
    w = as_weight(weight, input, per_class=True)
    return apply_fp32(op, ("input", "target", "weight"), input, target, w, validate=validate)


def binary_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    *,
    validate: bool = True,
) -> torch.Tensor:
    r"""``torch.nn.functional.binary_cross_entropy`` of probabilities ``input``.

    .. math::

        \ell = -w \big[t \max(\log p, -100) + (1 - t) \max(\log(1 - p), -100)\big]

    ``target`` has the shape of ``input``; ``weight`` broadcasts against it.

    Args:
        input, target, weight, size_average, reduce, reduction: as PyTorch's.
        validate: check target values and weights on eager inputs, which reads them back (a
            device sync on GPU); False skips the check, and invalid values then give NaN for
            the affected examples instead of an error. Skipped under ``torch.compile``.

    >>> import torch
    >>> from xentropy.backends.torch import functional as F
    >>> F.binary_cross_entropy(torch.tensor([0.5, 0.0]), torch.tensor([1.0, 1.0]))
    tensor(50.3466)
    """
    require_tensors("binary_cross_entropy", input=input, target=target)
    op = operator(
        ops.BinaryCrossEntropy,
        epsilon=None,
        log_floor=-100.0,
        reduction=resolve_reduction(size_average, reduce, reduction),
    )
    w = as_weight(weight, input, per_class=False)
    dtype = autocast_dtype(input)
    if dtype is not None and input.device.type != "cpu":
        raise RuntimeError(
            f"binary_cross_entropy is unsafe to autocast on {input.device.type} (PyTorch refuses "
            "it too): compute it outside autocast in float32, or apply it to logits with "
            "binary_cross_entropy_with_logits (BCEWithLogitsLoss), which autocast allows"
        )
    return apply_fp32(op, ("input", "target", "weight"), input, target, w, validate=validate)


def binary_cross_entropy_with_logits(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: torch.Tensor | None = None,
    *,
    validate: bool = True,
) -> torch.Tensor:
    r"""``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math::

        \ell = w \big[(1 - t)\, x + (1 + (\text{pw} - 1)\, t) \log(1 + e^{-x})\big]

    evaluated without overflow for logits of any size. ``weight`` and ``pos_weight`` broadcast
    against ``input`` (``pos_weight`` is typically ``(C,)``, one per class).

    Args:
        input, target, weight, size_average, reduce, reduction, pos_weight: as PyTorch's.
        validate: check target values and weights on eager inputs, which reads them back (a
            device sync on GPU); False skips the check, and invalid values then give NaN for
            the affected examples instead of an error. Skipped under ``torch.compile``.

    >>> import torch
    >>> from xentropy.backends.torch import functional as F
    >>> F.binary_cross_entropy_with_logits(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
    tensor(1.4100)
    """
    require_tensors("binary_cross_entropy_with_logits", input=input, target=target)
    op = operator(
        ops.SigmoidCrossEntropy, reduction=resolve_reduction(size_average, reduce, reduction)
    )
    pw = as_weight(pos_weight, input, per_class=False)
    w = as_weight(weight, input, per_class=False)
    names = ("input", "target", "pos_weight", "weight")
    return apply_fp32(op, names, input, target, pw, w, validate=validate)


# Every other name is torch.nn.functional's (see the module docstring).
_FRAMEWORK = ("torch.nn.functional",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)


# Last: .fused builds on cross_entropy and resolve_reduction above. (The package imports this
# module before .fused, so .fused always finds them defined.)
from .fused import linear_cross_entropy  # noqa: E402
