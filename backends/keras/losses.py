r"""Keras 3's cross-entropy losses, computed by the xentropy core.

Each class mirrors the ``keras.losses`` class of the same name (Keras 3.15): the constructor
arguments, their order and defaults, ``(y_true, y_pred)`` call order, the ``name`` / ``reduction``
/ ``dtype`` handling of ``keras.losses.Loss`` and serialisation
(``keras.saving.register_keras_serializable(package="xentropy")``).
Like Keras's ``LossFunctionWrapper`` classes they only hold configuration: ``call`` hands the
options to the function of the same name below, which chooses a core operator and runs it through
the current backend's adapter (``_dispatch.apply``), so the value and the gradient are the core's.
``__call__`` applies ``sample_weight``, Keras's masks and the reduction with the core's weighted
reduction (:mod:`xentropy.backends.keras._reduction`: Keras's formulas and shape rules; a
negative sample weight raises on eager inputs).

The functions mirror ``keras.losses.binary_crossentropy`` and friends and return per-example
losses (the binary ones averaged over ``axis``, as Keras does). The differences from Keras are
listed in the package docstring (:mod:`xentropy.backends.keras`).

Functions and classes take one argument Keras does not have, keyword-only after Keras's own:
``validate=True`` checks target (and probability) values on eager inputs, which reads them back,
a device synchronisation on GPUs (on Keras's PyTorch backend, which trains eagerly, once per
step). ``validate=False`` skips the check, and invalid values then give NaN for the affected
examples instead of an error; under tracing (``tf.function``, ``jax.jit``) values are never
checked. The classes keep ``validate`` in ``get_config``, so it survives save / load.

The module is a complete stand-in for ``keras.losses``: every name it does not define resolves to
``keras.losses`` (module ``__getattr__``: ``losses.MeanSquaredError``, ``losses.Loss``,
``losses.get``, ``losses.serialize`` ...), names starting with ``_`` excepted; ``dir()`` lists
both, ``__all__`` only ours. ``keras.losses.get("categorical_crossentropy")`` and string losses
in ``model.compile`` stay Keras's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from xentropy import ops

from .. import _fallthrough
from ._dispatch import apply, same_rank, set_keras_mask
from ._divergence import KLDivergence, kl_divergence
from ._reduction import CoreWeighting

__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "KLDivergence",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "sparse_categorical_crossentropy",
]

Alpha = float | Sequence[float]


def _tensors(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    return keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred)


# --- the functions: choose the core operator, run it through the backend's adapter ----------


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    *,
    validate: bool = True,
) -> Any:
    """``keras.losses.binary_crossentropy``: element-wise cross entropy, averaged over ``axis``.

    Core operator: ``SigmoidCrossEntropy`` on logits, ``BinaryCrossEntropy(epsilon=
    keras.config.epsilon())`` on probabilities (Keras's clip into ``[eps, 1 - eps]``).

    Args:
        validate: check target values (and probabilities) on eager inputs, which reads them
            back (a device sync on GPU); False skips the check, and invalid values then give
            NaN for the affected examples instead of an error. The other arguments are Keras's.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    if from_logits:
        op: ops.LossOperator = ops.SigmoidCrossEntropy(
            label_smoothing=label_smoothing, reduction="none"
        )
        names = ("y_pred", "y_true", "pos_weight", "class_weight")
        losses = apply(op, names, y_pred, y_true, None, None, validate=validate)
    else:
        op = ops.BinaryCrossEntropy(
            label_smoothing=label_smoothing, epsilon=keras.config.epsilon(), reduction="none"
        )
        names = ("y_pred", "y_true", "class_weight")
        losses = apply(op, names, y_pred, y_true, None, validate=validate)
    return keras.ops.mean(losses, axis=axis)


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    *,
    validate: bool = True,
) -> Any:
    """``keras.losses.categorical_crossentropy``: cross entropy against class probabilities.

    Core operator: ``SoftmaxCrossEntropy`` on logits, ``CategoricalCrossEntropy(normalize=True,
    epsilon=keras.config.epsilon())`` on probabilities (Keras's normalise, then clip).

    Args:
        validate: check target values (and probabilities) on eager inputs, which reads them
            back (a device sync on GPU); False skips the check, and invalid values then give
            NaN for the affected examples instead of an error. The other arguments are Keras's.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    names = ("y_pred", "y_true", "class_weight")
    if from_logits:
        op: ops.LossOperator = ops.SoftmaxCrossEntropy(
            axis=axis, label_smoothing=label_smoothing, reduction="none"
        )
    else:
        op = ops.CategoricalCrossEntropy(
            axis=axis,
            label_smoothing=label_smoothing,
            epsilon=keras.config.epsilon(),
            normalize=True,
            reduction="none",
        )
    return apply(op, names, y_pred, y_true, None, validate=validate)


def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
    *,
    validate: bool = True,
) -> Any:
    """``keras.losses.sparse_categorical_crossentropy``: cross entropy against class indices.

    ``y_true`` may carry a trailing dimension of 1 (squeezed, as in Keras) and any dtype: Keras's
    ``Loss`` hands it over as floats, so it is cast to ``int32`` here (as Keras casts it).
    Core operator: ``SoftmaxCrossEntropy(ignore_index=ignore_class)`` on logits,
    ``CategoricalCrossEntropy(ignore_index=ignore_class, normalize=True,
    epsilon=keras.config.epsilon())`` on probabilities. With ``ignore_class`` the result carries
    Keras's mask, so that Keras's reduction averages over the kept examples only.

    Args:
        validate: check target values (and probabilities) on eager inputs, which reads them
            back (a device sync on GPU); False skips the check, and invalid values then give
            NaN for the affected examples instead of an error. The other arguments are Keras's.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[axis] == 1:
        y_true = keras.ops.squeeze(y_true, axis=axis)
    labels = keras.ops.cast(y_true, "int32")
    names = ("y_pred", "y_true", "class_weight")
    if from_logits:
        op: ops.LossOperator = ops.SoftmaxCrossEntropy(
            axis=axis, ignore_index=ignore_class, reduction="none"
        )
    else:
        op = ops.CategoricalCrossEntropy(
            axis=axis,
            ignore_index=ignore_class,
            epsilon=keras.config.epsilon(),
            normalize=True,
            reduction="none",
        )
    losses = apply(op, names, y_pred, labels, None, validate=validate)
    if ignore_class is not None:
        set_keras_mask(losses, keras.ops.not_equal(labels, ignore_class))
    return losses


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    *,
    validate: bool = True,
) -> Any:
    """``keras.losses.binary_focal_crossentropy``: element-wise focal loss, averaged over ``axis``.

    Core operator: ``SigmoidFocalLoss`` on logits (exact), ``BinaryFocalLoss(epsilon=
    keras.config.epsilon())`` on probabilities; ``alpha`` is applied only with
    ``apply_class_balancing``, as in Keras.

    Args:
        validate: check target values (and probabilities) on eager inputs, which reads them
            back (a device sync on GPU); False skips the check, and invalid values then give
            NaN for the affected examples instead of an error. The other arguments are Keras's.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    balance = alpha if apply_class_balancing else None
    if from_logits:
        op: ops.LossOperator = ops.SigmoidFocalLoss(
            gamma=gamma, alpha=balance, label_smoothing=label_smoothing, reduction="none"
        )
        losses = apply(op, ("y_pred", "y_true"), y_pred, y_true, validate=validate)
    else:
        op = ops.BinaryFocalLoss(
            gamma=gamma,
            alpha=balance,
            label_smoothing=label_smoothing,
            epsilon=keras.config.epsilon(),
            reduction="none",
        )
        losses = apply(op, ("y_pred", "y_true"), y_pred, y_true, validate=validate)
    return keras.ops.mean(losses, axis=axis)


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: Alpha = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    *,
    validate: bool = True,
) -> Any:
    """``keras.losses.categorical_focal_crossentropy``: focal loss against class probabilities.

    ``alpha`` is a number or one weight per class. Core operator: ``SoftmaxFocalLoss`` on logits
    (exact log-softmax), ``CategoricalFocalLoss(normalize=True, epsilon=keras.config.epsilon())``
    on probabilities (Keras's normalise, then clip).

    Args:
        validate: check target values (and probabilities) on eager inputs, which reads them
            back (a device sync on GPU); False skips the check, and invalid values then give
            NaN for the affected examples instead of an error. The other arguments are Keras's.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    alpha_array = ops.as_weight_array(ops.namespace_of(y_pred), alpha, y_pred)
    names = ("y_pred", "y_true", "alpha", "class_weight")
    if from_logits:
        op: ops.LossOperator = ops.SoftmaxFocalLoss(
            axis=axis, gamma=gamma, label_smoothing=label_smoothing, reduction="none"
        )
    else:
        op = ops.CategoricalFocalLoss(
            axis=axis,
            gamma=gamma,
            label_smoothing=label_smoothing,
            epsilon=keras.config.epsilon(),
            normalize=True,
            reduction="none",
        )
    return apply(op, names, y_pred, y_true, alpha_array, None, validate=validate)


# --- the classes: configuration only ------------------------------------------------------


class _LossFunctionWrapper(CoreWeighting):
    """A ``keras.losses.Loss`` holding the options of one function above (Keras's idea).

    The options are plain attributes (``loss.from_logits``, ``loss.validate`` ...), read by
    ``call`` and ``get_config`` alike. ``get_config`` also records ``dtype`` when one was given,
    which ``keras.losses.Loss.get_config`` drops.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        reduction: str | None,
        dtype: Any,
        **options: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._fn = fn
        self._option_names = tuple(options)
        self._given_dtype = dtype
        for key, value in options.items():
            setattr(self, key, value)

    def _options(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._option_names}

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = same_rank(y_true, y_pred)
        return self._fn(y_true, y_pred, **self._options())

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), **self._options()}
        if self._given_dtype is not None:
            config["dtype"] = self._dtype_policy.name
        return config

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({options}, reduction={self.reduction!r}, name={self.name!r})"


@keras.saving.register_keras_serializable(package="xentropy")
class BinaryCrossentropy(_LossFunctionWrapper):
    """``keras.losses.BinaryCrossentropy``: binary / multi-label cross entropy.

    Per-example loss: the element-wise cross entropy of ``y_pred`` (logits when ``from_logits``,
    else probabilities clipped into ``[eps, 1 - eps]``, ``eps = keras.config.epsilon()``) against
    ``y_true`` smoothed towards 1/2, averaged over ``axis``. Differences from Keras: targets
    outside ``[0, 1]`` and probabilities outside ``[0, 1]`` raise ValueError on eager inputs;
    on TensorFlow a sigmoid output is not swapped for its cached logits (see the package
    docstring). ``validate=False`` skips the value checks (invalid values then give NaN; see
    the module docstring).
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
        dtype: Any = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(
            binary_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            validate=validate,
        )


@keras.saving.register_keras_serializable(package="xentropy")
class CategoricalCrossentropy(_LossFunctionWrapper):
    """``keras.losses.CategoricalCrossentropy``: cross entropy against class probabilities.

    ``y_pred`` holds logits (``from_logits=True``: exact log-softmax) or probabilities, which
    are renormalised along ``axis`` and clipped into ``[eps, 1 - eps]`` as in Keras. Differences
    from Keras: negative targets, and negative or NaN probabilities, raise ValueError on eager
    inputs; on TensorFlow a softmax output is not swapped for its cached logits.
    ``validate=False`` skips the value checks (invalid values then give NaN; see the module
    docstring).
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
        dtype: Any = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(
            categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            validate=validate,
        )


@keras.saving.register_keras_serializable(package="xentropy")
class SparseCategoricalCrossentropy(_LossFunctionWrapper):
    """``keras.losses.SparseCategoricalCrossentropy``: cross entropy against class indices.

    ``ignore_class`` examples get loss 0 and Keras's mask, so the default reduction averages
    over the other examples, as in Keras. Differences from Keras: a class index outside
    ``[0, C)`` (other than ``ignore_class``) raises ValueError on eager inputs and gives a NaN
    loss and gradient under tracing (Keras raises on TensorFlow and PyTorch but returns 0 on
    JAX); ``axis`` other than -1 works on every backend (Keras's TensorFlow backend refuses it)
    and is kept by ``get_config`` (Keras drops it). With ``validate=False`` an out-of-range
    index gives NaN eagerly too (no check, no device synchronisation).
    """

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        axis: int = -1,
        name: str = "sparse_categorical_crossentropy",
        dtype: Any = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(
            sparse_categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
            validate=validate,
        )


@keras.saving.register_keras_serializable(package="xentropy")
class BinaryFocalCrossentropy(_LossFunctionWrapper):
    """``keras.losses.BinaryFocalCrossentropy``: focal loss (Lin et al. 2017), element-wise.

    Per element :math:`\\alpha_t (1 - p_t)^\\gamma \\mathrm{bce}`, averaged over ``axis``;
    :math:`\\alpha_t = \\alpha t + (1 - \\alpha)(1 - t)` only with ``apply_class_balancing``.
    Differences from Keras: with ``from_logits=True`` the cross entropy is exact (Keras's JAX
    and PyTorch backends clip ``sigmoid(y_pred)`` into ``[eps, 1 - eps]``, so they differ for
    logits beyond about ±16); targets and probabilities outside ``[0, 1]`` raise ValueError on
    eager inputs. ``validate=False`` skips the value checks (invalid values then give NaN;
    see the module docstring).
    """

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_focal_crossentropy",
        dtype: Any = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(
            binary_focal_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            validate=validate,
        )


@keras.saving.register_keras_serializable(package="xentropy")
class CategoricalFocalCrossentropy(_LossFunctionWrapper):
    """``keras.losses.CategoricalFocalCrossentropy``: focal loss against class probabilities.

    Per example :math:`-\\sum_c \\alpha_c\\, y_c (1 - p_c)^\\gamma \\log p_c` with ``alpha`` a
    number or one weight per class. Differences from Keras: with ``from_logits=True`` the
    log-probabilities are the exact log-softmax (Keras clips ``softmax(y_pred)`` into
    ``[eps, 1 - eps]``, so it differs where a probability falls below ``eps``); negative targets
    and negative probabilities raise ValueError on eager inputs.
    ``validate=False`` skips the value checks (invalid values then give NaN; see the module
    docstring).
    """

    def __init__(
        self,
        alpha: Alpha = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_focal_crossentropy",
        dtype: Any = None,
        *,
        validate: bool = True,
    ) -> None:
        super().__init__(
            categorical_focal_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            validate=validate,
        )


# Every other name is keras.losses' (see the module docstring).
_FRAMEWORK = ("keras.losses",)


def __getattr__(name: str) -> Any:
    return _fallthrough.resolve(__name__, name, _FRAMEWORK)


def __dir__() -> list[str]:
    return _fallthrough.names(__name__, _FRAMEWORK)
