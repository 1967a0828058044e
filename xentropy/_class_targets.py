r"""Targets of the losses over a class axis: integer class indices or class probabilities.

Every loss of the softmax family (softmax, categorical, focal, poly-1) turns its targets into
per-class target weights

.. math::

    a_{ic} = w_c \left((1 - \varepsilon)\, t_{ic} + \frac{\varepsilon}{C}\right)

where :math:`t_{ic}` is the one-hot encoding of class index :math:`y_i` (sparse targets) or the
given probability (dense targets), :math:`w_c` the class weight and :math:`\varepsilon` the label
smoothing. For sparse targets an ignored example (``y_i == ignore_index``) has :math:`a_{i\cdot}=0`
and an index outside ``[0, C)`` marks the example *invalid*: its loss and gradient become NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._checks import (
    UNIT_INTERVAL,
    Domain,
    Hyperparameter,
    check_class_indices,
    check_floating,
    check_range,
    check_same_shape,
    check_unit_interval,
    comparable_indices,
    format_shape,
    may_be_nonzero,
    normalize_axis,
    shapes_match,
)
from ._errors import InvalidOption, ShapeMismatch, WrongDtype, ref
from ._evaluate import is_array_value
from ._namespace import device_of, is_readable, isdtype, remembered, weight_dtype


def is_sparse(predictions: Any, targets: Any) -> bool:
    return targets.ndim == predictions.ndim - 1


def indexing_dtype(xp: Any) -> Any:
    return _indexing_dtype(xp)


@remembered
def _indexing_dtype(xp: Any) -> Any:
    return xp.__array_namespace_info__().default_dtypes()["indexing"]


def check_class_targets(
    xp: Any,
    predictions: Any,
    targets: Any,
    *,
    prediction_name: str,
    axis: int,
    class_weight: Any | None,
    ignore_index: int | None,
    label_smoothing: Hyperparameter,
    values: bool,
) -> bool:
    """Static checks always; value checks (label range, weights, array hyperparameters) when
    ``values`` is true.

    Returns whether the value checks found that no class-index target is ``ignore_index`` (see
    :func:`~xentropy._checks.check_class_indices`); False where they did not look.
    """
    unused_ignore_index = False
    pred = ref(prediction_name)
    check_floating(xp, predictions, prediction_name, prediction=True)
    axis = normalize_axis(axis, predictions.ndim)
    check_unit_interval("label_smoothing", label_smoothing, xp=xp, values=values)
    shape = tuple(predictions.shape)
    num_classes = shape[axis]
    expected = shape[:axis] + shape[axis + 1 :]
    if is_sparse(predictions, targets):
        if not shapes_match(tuple(targets.shape), expected):  # the message only on failure
            check_same_shape(
                "targets",
                targets,
                expected,
                f"class-index targets must have the shape of {pred} {format_shape(shape)} "
                f"without axis {axis}:",
                prediction=prediction_name,
                form="class_indices",
            )
        if not isdtype(xp, targets.dtype, "integral"):
            soft = f" (pass probabilities with the shape of {pred} for soft targets)"
            raise WrongDtype(
                f"{{targets}} of shape {format_shape(targets.shape)} holds class indices and must "
                f"have an integer dtype; got {targets.dtype}"
                + (soft if xp.isdtype(targets.dtype, "real floating") else ""),
                prediction=prediction_name,
                argument="targets",
                dtype=targets.dtype,
                expected="integral",
                form="class_indices",
            )
        if values and num_classes is not None:
            unused_ignore_index = check_class_indices(xp, targets, num_classes, ignore_index)
    elif targets.ndim == predictions.ndim:
        if _is_unsqueezed_indices(xp, targets, expected, axis, num_classes):
            raise ShapeMismatch(
                f"{{targets}} of shape {format_shape(targets.shape)} has an integer dtype, so it "
                f"holds class indices, which must have the shape of {pred} {format_shape(shape)} "
                f"without axis {axis}: {format_shape(expected)}; squeeze "
                f"{_axis_words(axis, shape)} of {{targets}} (targets are never broadcast)",
                prediction=prediction_name,
                argument="targets",
                shape=tuple(targets.shape),
                expected=expected,
                form="class_indices",
            )
        check_same_shape(
            "targets",
            targets,
            shape,
            f"probability targets must have the shape of {pred}",
            prediction=prediction_name,
            form="probabilities",
        )
        if ignore_index is not None:
            raise InvalidOption(
                "ignore_index applies to class-index targets only; "
                f"{{targets}} has the shape of {pred} {format_shape(shape)}",
                prediction=prediction_name,
                argument="ignore_index",
                value=ignore_index,
            )
        if values and xp.isdtype(targets.dtype, "real floating"):
            check_range(xp, targets, "targets", low=0.0)
    else:
        raise ShapeMismatch(
            f"{{targets}} of shape {format_shape(targets.shape)} fit neither form for "
            f"{pred} of shape {format_shape(shape)}: class indices need "
            f"{predictions.ndim - 1} dimensions, "
            f"probabilities {predictions.ndim}",
            prediction=prediction_name,
            argument="targets",
            shape=tuple(targets.shape),
            expected=shape,
        )
    if class_weight is not None:
        check_class_weight(xp, class_weight, num_classes, values=values)
    return unused_ignore_index


def without_unused_ignore_index(unused: bool) -> dict[str, Any] | None:
    """The change of options an operator's ``check`` returns when its checks found that no
    target is ``ignore_index``: without it the forward and backward need no mask of ignored
    examples (and a mean divides by the static count), with the very same numbers."""
    return {"ignore_index": None} if unused else None


def _axis_words(axis: int, shape: tuple[int | None, ...]) -> str:
    return "the last axis" if axis == len(shape) - 1 else f"axis {axis}"


def _is_unsqueezed_indices(
    xp: Any, targets: Any, expected: tuple[int | None, ...], axis: int, num_classes: int | None
) -> bool:
    """Integer targets shaped like class indices with a size-1 class axis: ``(N, 1)`` for
    ``(N, C)`` predictions, a common slip (``y[:, None]``, a Keras-style label column)."""
    shape = tuple(targets.shape)
    return (
        xp.isdtype(targets.dtype, "integral")
        and num_classes != 1
        and shape[axis] == 1
        and shapes_match(shape[:axis] + shape[axis + 1 :], expected)
    )


def check_class_weight(
    xp: Any, weight: Any, num_classes: int | None, *, values: bool, name: str = "class_weight"
) -> None:
    if weight.ndim != 1 or (num_classes is not None and weight.shape[0] != num_classes):
        raise ShapeMismatch(
            f"{ref(name)} must have shape ({num_classes},), one weight per class; "
            f"got {format_shape(weight.shape)}",
            argument=name,
            shape=tuple(weight.shape),
            expected=(num_classes,),
            form="class_weight",
            num_classes=num_classes,
        )
    if values:
        check_range(xp, weight, name, low=0.0, high=float("inf"))


def as_weight_array(xp: Any, class_weight: Any | None, like: Any) -> Any | None:
    """``class_weight`` (array or sequence) on ``like``'s device, in its compute dtype
    (:func:`~xentropy._namespace.weight_dtype`)."""
    if class_weight is None:
        return None
    return xp.asarray(class_weight, dtype=weight_dtype(xp, like), device=device_of(xp, like))


# permute_dims rather than moveaxis: torch.func.vmap has a batching rule for the former only


def move_class_axis_last(xp: Any, x: Any, axis: int) -> Any:
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        return x
    order = [d for d in range(x.ndim) if d != axis] + [axis]
    return xp.permute_dims(x, tuple(order))


def move_class_axis_back(xp: Any, x: Any, axis: int) -> Any:
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        return x
    order = list(range(x.ndim - 1))
    order.insert(axis, x.ndim - 1)
    return xp.permute_dims(x, tuple(order))


@dataclass(frozen=True)
class SparseTargets:
    """Class indices made safe to gather with, and the masks that go with them.

    A mask is ``None`` where it would be all false (``invalid``) or all true (``keep``): after
    the eager value checks no index is out of range, and without ``ignore_index`` every example
    counts, so neither costs a pass.
    """

    index: Any  # (...,) indices clamped into [0, C)
    keep: Any | None  # (...,) bool: in range and not ignored (None: all)
    invalid: Any | None  # (...,) bool: outside [0, C) and not ignore_index (None: none)
    num_classes: int
    ignores: bool = True  # ignore_index was given (without it, keep is ~invalid)

    def onehot(self, xp: Any) -> Any:
        """``(..., C)`` bool: position ``index`` along the last axis."""
        device = device_of(xp, self.index)
        classes = xp.arange(self.num_classes, dtype=self.index.dtype, device=device)
        return classes == self.index[..., None]

    def keep_as(self, xp: Any, dtype: Any) -> Any:
        """``keep`` as 0/1 values of ``dtype`` (ones where there is no mask)."""
        if self.keep is None:
            return xp.ones(tuple(self.index.shape), dtype=dtype, device=device_of(xp, self.index))
        return xp.astype(self.keep, dtype)

    def masked(self, xp: Any, losses: Any) -> Any:
        """Per-example ``losses`` with 0 for ignored examples and NaN for invalid ones."""
        if self.keep is not None and self.ignores:
            # an invalid row is kept here so that the NaN product below reaches its gradient
            kept = self.keep if self.invalid is None else self.keep | self.invalid
            losses = xp.where(kept, losses, 0.0)
        return nan_where(xp, self.invalid, losses)


def sparse_targets(
    xp: Any, targets: Any, num_classes: int, ignore_index: int | None, *, checked: bool = False
) -> SparseTargets:
    """The :class:`SparseTargets` of class indices; ``checked``: their values passed the checks."""
    if checked:
        targets = comparable_indices(xp, targets, num_classes, ignore_index)
        keep = None if ignore_index is None else targets != ignore_index
        index = targets if keep is None else xp.where(keep, targets, 0)
        index = as_dtype(xp, index, indexing_dtype(xp))
        return SparseTargets(
            index=index,
            keep=keep,
            invalid=None,
            num_classes=num_classes,
            ignores=ignore_index is not None,
        )
    targets = comparable_indices(xp, targets, num_classes, ignore_index)
    in_range = (targets >= 0) & (targets < num_classes)
    if ignore_index is None:
        keep, invalid = in_range, ~in_range
    else:
        not_ignored = targets != ignore_index
        keep, invalid = in_range & not_ignored, ~in_range & not_ignored
    index = as_dtype(xp, xp.where(in_range, targets, 0), indexing_dtype(xp))
    return SparseTargets(
        index=index,
        keep=keep,
        invalid=invalid,
        num_classes=num_classes,
        ignores=ignore_index is not None,
    )


def target_weight(
    xp: Any, sparse: SparseTargets, class_weight: Any | None, dtype: Any
) -> Any | None:
    """Per-example target weight ``w[y_i]`` (0 for ignored and invalid examples); ``None``
    where every example weighs 1."""
    if class_weight is None and sparse.keep is None:
        return None
    return gathered_weight(xp, sparse, class_weight, dtype)


def gathered_weight(
    xp: Any, sparse: SparseTargets, class_weight: Any | None, dtype: Any, *, keep: Any = None
) -> Any:
    """Per-example target weight ``w[y_i]`` (0 for ignored and invalid examples); ``keep``:
    ``sparse.keep_as(xp, dtype)`` where the caller has it."""
    keep = sparse.keep_as(xp, dtype) if keep is None else keep
    if class_weight is None:
        return keep
    shape = tuple(sparse.index.shape)
    if all(d is not None for d in shape):
        flat = xp.take(class_weight, xp.reshape(sparse.index, (-1,)), axis=0)
        weight = xp.reshape(flat, shape)
        return weight if sparse.keep is None else weight * keep
    # a traced array of unknown shape cannot be reshaped back: select with the one-hot mask
    zero = xp.zeros((), dtype=dtype, device=device_of(xp, class_weight))
    return xp.sum(xp.where(sparse.onehot(xp), class_weight, zero), axis=-1) * keep


def dense_target_weights(
    xp: Any,
    targets: Any,
    *,
    sparse: SparseTargets | None,
    num_classes: int,
    class_weight: Any | None,
    label_smoothing: Hyperparameter,
    dtype: Any,
    checked: bool = False,
) -> Any:
    """The per-class target weights :math:`a_{ic}` of the module docstring, shape (..., C).

    ``label_smoothing``: a number, or a 0-d array of ``dtype`` (see :func:`hyperparameter_in`).
    ``checked``: the values passed the eager checks, so no NaN mask is needed.
    """
    keep = None
    if sparse is not None:
        t = xp.astype(sparse.onehot(xp), dtype)
        if sparse.keep is not None:
            keep = xp.astype(sparse.keep, dtype)[..., None]
            t = t * keep
    else:
        t = xp.astype(targets, dtype, copy=False)
        if not checked and not xp.isdtype(targets.dtype, "bool"):
            t = nan_outside(xp, t, low=0.0)  # NaN where the value check would raise
    if may_be_nonzero(label_smoothing):
        smooth = label_smoothing / num_classes
        t = (1.0 - label_smoothing) * t + (smooth if keep is None else smooth * keep)
    return t if class_weight is None else t * class_weight


def _inside(x: Any, low: float | None, high: float | None) -> Any | None:
    ok = None if low is None else x >= low
    if high is not None:
        ok = x <= high if ok is None else ok & (x <= high)
    return ok


def nan_outside(
    xp: Any,
    x: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    checked: bool = False,
) -> Any:
    """``x`` with NaN wherever it lies outside ``[low, high]`` (an open end where None).

    The value checks reject such entries eagerly. Where they do not run (under tracing, or with
    ``validate=False``) the entries become NaN, so that the loss and the gradient they reach are
    NaN instead of a finite number computed from invalid input. ``checked``: the checks ran and
    passed; ``x`` is returned as it is.
    """
    if checked:
        return x
    ok = _inside(x, low, high)
    # a scalar NaN, not an array of x's size (under tf.function a full (N, C) constant)
    return x if ok is None else xp.where(ok, x, float("nan"))


def hyperparameter_parts(
    xp: Any, value: Hyperparameter | None, like: Any, domain: Domain, *, checked: bool
) -> tuple[Any, Any | None]:
    """A hyperparameter ready for arithmetic with ``like`` (an array of the compute dtype), and
    the factor that makes it NaN outside ``domain`` (None where no mask is needed).

    A Python number (or None) is returned as it is, without factor: the fast path adds no
    operation. An array (traced, or differentiated) is cast to ``like``'s dtype (TensorFlow never
    promotes) on its device; its factor is 1 inside ``domain`` and NaN outside, a product so that
    the NaN reaches every gradient. The check reads an array only when it is eager and readable
    (``_checks.hyperparameter_number``); ``checked``: the value checks ran and passed, so a
    readable array needs no factor.
    """
    if not is_array_value(value):
        return value, None
    h = xp.astype(value, like.dtype)
    if type(h).__module__.startswith("torch") and h.device != like.device:
        h = h.to(like.device)  # differentiable, unlike asarray
    if checked and is_readable(value):
        return h, None
    one = xp.ones_like(h)
    return h, xp.where(domain.mask(xp, h), one, xp.full_like(one, float("nan")))


def hyperparameter_in(
    xp: Any, value: Hyperparameter | None, like: Any, domain: Domain, *, checked: bool
) -> Any:
    """The hyperparameter of :func:`hyperparameter_parts` times its factor: NaN outside
    ``domain``, for every use that multiplies by it, raises it to a power or divides by it.

    (A use that compares with it, such as a clip, must multiply its result by the factor
    instead: the derivative of ``maximum(x, nan)`` by ``x`` is 0 under some autodiffs.)
    """
    h, factor = hyperparameter_parts(xp, value, like, domain, checked=checked)
    return h if factor is None else h * factor


def label_smoothing_in(
    xp: Any, label_smoothing: Hyperparameter, like: Any, *, checked: bool
) -> Any:
    """:func:`hyperparameter_in` for a label smoothing in ``[0, 1]``."""
    return hyperparameter_in(xp, label_smoothing, like, UNIT_INTERVAL, checked=checked)


def nan_rows_outside(
    xp: Any, x: Any, low: float | None, high: float | None, *, checked: bool = False
) -> Any:
    """``x`` with NaN in every row (last axis) that has an entry outside ``[low, high]`` or NaN.

    For probability vectors: an invalid entry where the target weight is 0 would otherwise be
    dropped by ``0 * log q = 0`` and leave the row's loss finite. ``checked``: as in
    :func:`nan_outside`.
    """
    if checked:
        return x
    ok = _inside(x, low, high)
    if ok is None:
        return x
    return xp.where(xp.all(ok, axis=-1, keepdims=True), x, xp.full_like(x, float("nan")))


def as_dtype(xp: Any, x: Any, dtype: Any) -> Any:
    """``xp.astype(x, dtype, copy=False)``: ``x`` itself, without a call, where it has ``dtype``."""
    return x if x.dtype == dtype else xp.astype(x, dtype, copy=False)


def cast_weight(xp: Any, weight: Any | None, dtype: Any, *, checked: bool = False) -> Any | None:
    """A weight array (class_weight, alpha, pos_weight) in ``dtype``, NaN where negative
    (unless ``checked``: its values passed the eager checks)."""
    if weight is None:
        return None
    weight = as_dtype(xp, weight, dtype)
    return nan_outside(xp, weight, low=0.0, checked=checked)


def nan_where(xp: Any, invalid: Any | None, x: Any) -> Any:
    """``x`` with NaN where ``invalid`` (broadcast from the left over a trailing class axis)."""
    if invalid is None:
        return x
    if invalid.ndim < x.ndim:
        invalid = invalid[..., None]
    # a product, not ``where(invalid, nan, x)``: autodiff then carries the NaN into the
    # gradient of everything ``x`` depends on (a select would give those rows a zero gradient)
    one = xp.ones((), dtype=x.dtype, device=device_of(xp, x))
    return x * xp.where(invalid, float("nan"), one)


def safe_weighted_log(xp: Any, weights: Any, log_values: Any) -> Any:
    """``weights * log_values`` with ``0 * log 0 = 0`` (a -inf log where the weight is 0)."""
    zero = xp.zeros((), dtype=log_values.dtype, device=device_of(xp, log_values))
    # dropped only where the product would be NaN, so that the derivative by the weights is the
    # log wherever it is finite (a zero weight included)
    return weights * xp.where((weights == 0) & xp.isinf(log_values), zero, log_values)


def xlogy(xp: Any, weights: Any, x: Any) -> Any:
    """``weights * log(x)`` with ``0 * log 0 = 0``, never taking the log of a 0 it would discard."""
    zero_weight = (weights == 0) & (x == 0)  # only there would the product be NaN
    return weights * xp.log(xp.where(zero_weight, xp.ones_like(x), x))
