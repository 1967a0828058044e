"""The cases in each framework's own spelling, for the adapters and the native losses.

An adapter (``xentropy.backends.torch`` ...) mirrors its framework's names, argument order and
defaults, so one spelling serves both: called on the adapter it is an adapter cell, called on
the framework's own module (``torch.nn.functional``, ``optax``, ``tf.nn``, ``keras.losses``) it
gives the native value the adapter is compared with.

A :class:`Dialect` turns a :class:`~xentropy.conformance.cases.Case` into a :class:`Spelling`
when the framework can express the case *with the core's exact semantics* (so that the float64
reference of the case applies unchanged), and into None otherwise: no class weights for optax,
no ``sum_over_batch_size`` in PyTorch, and so on. Reductions that a per-example API lacks are
applied outside it (``jnp.mean(optax...)``) where that is exactly the core's reduction.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .cases import Case

Call = Callable[[Any, Mapping[str, Any], str], Any]


@dataclass(frozen=True)
class Spelling:
    """``call(api, arrays, dtype)`` computes the case with ``api`` (adapter or native)."""

    call: Call
    native: bool = True  # a native loss with the same spelling exists to compare with


@dataclass(frozen=True)
class Dialect:
    """How one framework spells losses.

    Attributes:
        api: adapter module -> the object whose attributes carry the framework's loss names.
        native: the framework's own object with those names.
        spell: the spelling of a case, or None when the framework cannot express it.
    """

    name: str
    api: Callable[[ModuleType], Any]
    native: Callable[[], Any]
    spell: Callable[[Case], Spelling | None]


class Names:
    """Attributes looked up in ``module``, then in its ``losses`` submodule (optax, Keras)."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._module, name)
        except AttributeError:
            return getattr(self._module.losses, name)


def _option(case: Case, name: str, default: Any = None) -> Any:
    return case.options.get(name, default)


def _has(case: Case, *names: str) -> bool:
    """Whether the case sets any of these options (arrays or values, zero smoothing aside)."""
    for name in names:
        if name in case.arrays:
            return True
        value = case.options.get(name)
        if value is not None and not (name == "label_smoothing" and value == 0):
            return True
    return False


def _class_axis_is(case: Case, *positions: str) -> bool:
    """Whether the class axis is the last axis (``"last"``) or axis 1 / the only axis."""
    ndim = case.arrays[case.arguments[0]].ndim
    axis = _option(case, "axis", -1) % ndim
    return ("last" in positions and axis == ndim - 1) or (
        "torch" in positions and (axis == 1 or ndim == 1)
    )


# --- PyTorch: torch.nn.functional ---------------------------------------------------------


def _torch_spell(case: Case) -> Spelling | None:
    reduction = case.reduction
    if reduction not in ("none", "sum", "mean"):
        return None
    if case.variant == "softmax_cross_entropy" and _class_axis_is(case, "torch"):
        ignore = _option(case, "ignore_index")

        def cross_entropy(F: Any, a: Mapping[str, Any], dtype: str) -> Any:
            kwargs = {} if ignore is None else {"ignore_index": ignore}
            return F.cross_entropy(
                a["logits"],
                a["targets"],
                weight=a.get("class_weight"),
                reduction=reduction,
                label_smoothing=_option(case, "label_smoothing", 0.0),
                **kwargs,
            )

        return Spelling(cross_entropy)
    if (
        case.variant == "binary_cross_entropy"
        and case.target_kind in ("hard", "soft")
        and _option(case, "epsilon", 1e-7) is None
        and _option(case, "log_floor") == -100.0
        and not _has(case, "label_smoothing")
    ):

        def binary_cross_entropy(F: Any, a: Mapping[str, Any], dtype: str) -> Any:
            return F.binary_cross_entropy(
                a["probs"], a["targets"], weight=a.get("class_weight"), reduction=reduction
            )

        return Spelling(binary_cross_entropy)
    if (
        case.variant == "sigmoid_cross_entropy"
        and case.target_kind in ("hard", "soft")
        and not _has(case, "label_smoothing")
    ):

        def with_logits(F: Any, a: Mapping[str, Any], dtype: str) -> Any:
            import torch

            pos_weight = a.get("pos_weight", _option(case, "pos_weight"))
            if isinstance(pos_weight, float):
                pos_weight = torch.full_like(a["logits"][..., :1], pos_weight)
            return F.binary_cross_entropy_with_logits(
                a["logits"],
                a["targets"],
                weight=a.get("class_weight"),
                pos_weight=pos_weight,
                reduction=reduction,
            )

        return Spelling(with_logits)
    return None


# --- JAX: optax (per-example losses; reduced outside where that is the core's reduction) ----


def _jax_reduce(reduction: str) -> Callable[[Any], Any]:
    """The core's reduction of per-example losses: in float32 for 16-bit losses, rounded once
    (a float16 sum of losses of 2e4 would overflow where the mean does not)."""

    def apply(loss: Any) -> Any:
        import jax.numpy as jnp

        if reduction == "none":
            return loss
        wide = loss.astype(jnp.float32) if jnp.finfo(loss.dtype).bits < 32 else loss
        total = jnp.sum(wide) if reduction == "sum" else jnp.mean(wide)
        return total.astype(loss.dtype)

    return apply


def _jax_spell(case: Case) -> Spelling | None:
    # without weights or ignored targets "mean" and "sum_over_batch_size" are jnp.mean
    if _has(case, "class_weight", "ignore_index", "label_smoothing", "pos_weight"):
        return None
    reduce = _jax_reduce(case.reduction)
    axis = _option(case, "axis", -1)
    axis_kwargs = {} if axis == -1 else {"axis": axis}
    if case.variant == "softmax_cross_entropy":
        if case.target_kind == "sparse":

            def integer_labels(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
                return reduce(
                    api.softmax_cross_entropy_with_integer_labels(
                        a["logits"], a["targets"], **axis_kwargs
                    )
                )

            return Spelling(integer_labels)

        def softmax(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            return reduce(api.softmax_cross_entropy(a["logits"], a["targets"], **axis_kwargs))

        return Spelling(softmax)
    if case.variant == "poly1_cross_entropy" and case.target_kind == "dense":
        epsilon = _option(case, "epsilon", 2.0)

        def poly(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            return reduce(
                api.poly_loss_cross_entropy(
                    a["logits"], a["targets"], epsilon=epsilon, **axis_kwargs
                )
            )

        return Spelling(poly)
    if case.variant == "sigmoid_cross_entropy" and case.target_kind in ("hard", "soft"):

        def sigmoid(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            return reduce(api.sigmoid_binary_cross_entropy(a["logits"], a["targets"]))

        return Spelling(sigmoid)
    if case.variant == "sigmoid_focal_loss" and case.target_kind in ("hard", "soft"):
        alpha, gamma = _option(case, "alpha"), _option(case, "gamma", 2.0)

        def focal(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            return reduce(
                api.sigmoid_focal_loss(a["logits"], a["targets"], alpha=alpha, gamma=gamma)
            )

        return Spelling(focal)
    return None


# --- TensorFlow: tf.nn (per-example losses) ------------------------------------------------


def _tf_reduce(reduction: str) -> Callable[[Any], Any]:
    """As :func:`_jax_reduce`, for TensorFlow."""

    def apply(loss: Any) -> Any:
        import tensorflow as tf

        if reduction == "none":
            return loss
        wide = tf.cast(loss, tf.float32) if loss.dtype.size < 4 else loss
        total = tf.reduce_sum(wide) if reduction == "sum" else tf.reduce_mean(wide)
        return tf.cast(total, loss.dtype)

    return apply


def _tensorflow_spell(case: Case) -> Spelling | None:
    if _has(case, "class_weight", "ignore_index", "label_smoothing"):
        return None
    reduce = _tf_reduce(case.reduction)
    if case.variant == "softmax_cross_entropy" and not _has(case, "pos_weight"):
        if case.target_kind == "sparse":
            if not _class_axis_is(case, "last"):
                return None

            def sparse(nn: Any, a: Mapping[str, Any], dtype: str) -> Any:
                return reduce(
                    nn.sparse_softmax_cross_entropy_with_logits(
                        labels=a["targets"], logits=a["logits"]
                    )
                )

            return Spelling(sparse)
        axis = _option(case, "axis", -1)

        def dense(nn: Any, a: Mapping[str, Any], dtype: str) -> Any:
            return reduce(
                nn.softmax_cross_entropy_with_logits(
                    labels=a["targets"], logits=a["logits"], axis=axis
                )
            )

        return Spelling(dense)
    if case.variant == "sigmoid_cross_entropy" and case.target_kind in ("hard", "soft"):
        if not _has(case, "pos_weight"):

            def sigmoid(nn: Any, a: Mapping[str, Any], dtype: str) -> Any:
                return reduce(
                    nn.sigmoid_cross_entropy_with_logits(labels=a["targets"], logits=a["logits"])
                )

            return Spelling(sigmoid)

        def weighted(nn: Any, a: Mapping[str, Any], dtype: str) -> Any:
            pos_weight = a.get("pos_weight", _option(case, "pos_weight"))
            return reduce(
                nn.weighted_cross_entropy_with_logits(
                    labels=a["targets"], logits=a["logits"], pos_weight=pos_weight
                )
            )

        return Spelling(weighted)
    return None


# --- Keras 3: keras.losses classes, called as loss(y_true, y_pred) --------------------------

# core reduction -> Keras reduction; without class weights and ignored targets the core's "mean"
# divides by the number of examples, as "sum_over_batch_size" does
_KERAS_REDUCTIONS = {
    "none": "none",
    "sum": "sum",
    "mean": "sum_over_batch_size",
    "sum_over_batch_size": "sum_over_batch_size",
}


def _keras_spell(case: Case) -> Spelling | None:
    if _has(case, "class_weight", "ignore_index", "pos_weight"):
        return None
    smoothing = _option(case, "label_smoothing", 0.0)
    axis = _option(case, "axis", -1)
    if case.variant in ("sigmoid_cross_entropy", "sigmoid_focal_loss"):
        # Keras averages element-wise losses over the last axis first: only the overall mean
        # is the core's
        if case.reduction not in ("mean", "sum_over_batch_size") or case.target_kind not in (
            "hard",
            "soft",
        ):
            return None
        if case.variant == "sigmoid_cross_entropy":

            def binary(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
                loss = api.BinaryCrossentropy(
                    from_logits=True, label_smoothing=smoothing, dtype=dtype
                )
                return loss(a["targets"], a["logits"])

            return Spelling(binary)
        alpha, gamma = _option(case, "alpha"), _option(case, "gamma", 2.0)

        def binary_focal(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            loss = api.BinaryFocalCrossentropy(
                apply_class_balancing=alpha is not None,
                alpha=0.25 if alpha is None else alpha,
                gamma=gamma,
                from_logits=True,
                label_smoothing=smoothing,
                dtype=dtype,
            )
            return loss(a["targets"], a["logits"])

        return Spelling(binary_focal)
    reduction = _KERAS_REDUCTIONS[case.reduction]
    if case.variant == "softmax_cross_entropy":
        if case.target_kind == "sparse":
            if smoothing or not _class_axis_is(case, "last"):
                return None

            def sparse(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
                loss = api.SparseCategoricalCrossentropy(
                    from_logits=True, reduction=reduction, dtype=dtype
                )
                return loss(a["targets"], a["logits"])

            return Spelling(sparse)

        def categorical(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            loss = api.CategoricalCrossentropy(
                from_logits=True,
                label_smoothing=smoothing,
                axis=axis,
                reduction=reduction,
                dtype=dtype,
            )
            return loss(a["targets"], a["logits"])

        return Spelling(categorical)
    if (
        case.variant == "categorical_cross_entropy"
        and case.target_kind == "dense"
        and _option(case, "normalize", False)
        and _option(case, "epsilon", 1e-7) == 1e-7
    ):

        def from_probs(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            loss = api.CategoricalCrossentropy(
                from_logits=False,
                label_smoothing=smoothing,
                axis=axis,
                reduction=reduction,
                dtype=dtype,
            )
            return loss(a["targets"], a["probs"])

        return Spelling(from_probs)
    if case.variant == "softmax_focal_loss" and case.target_kind == "dense":
        alpha = _option(case, "alpha")
        if "alpha" in case.arrays:
            return None
        gamma = _option(case, "gamma", 2.0)

        def focal(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            loss = api.CategoricalFocalCrossentropy(
                alpha=1.0 if alpha is None else alpha,
                gamma=gamma,
                from_logits=True,
                label_smoothing=smoothing,
                axis=axis,
                reduction=reduction,
                dtype=dtype,
            )
            return loss(a["targets"], a["logits"])

        return Spelling(focal)
    return None


def _module(name: str) -> Callable[[], Any]:
    return lambda: importlib.import_module(name)


DIALECTS: dict[str, Dialect] = {
    "torch": Dialect(
        "torch",
        api=lambda m: m.functional,
        native=lambda: _module("torch.nn.functional")(),
        spell=_torch_spell,
    ),
    "jax": Dialect("jax", api=Names, native=lambda: Names(_module("optax")()), spell=_jax_spell),
    "tensorflow": Dialect(
        "tensorflow",
        api=lambda m: m.nn,
        native=lambda: _module("tensorflow")().nn,
        spell=_tensorflow_spell,
    ),
    "keras": Dialect(
        "keras", api=Names, native=lambda: Names(_module("keras")()), spell=_keras_spell
    ),
}
