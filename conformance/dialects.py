r"""The cases in each framework's own spelling, for the adapters and the native losses.

An adapter (``xentropy.backends.torch`` ...) mirrors its framework's names, argument order and
defaults, so one spelling serves both: called on the adapter it is an adapter cell, called on
the framework's own module (``torch.nn.functional``, ``optax``, ``tf.nn``, ``keras.losses``) it
gives the native value the adapter is compared with.

A :class:`Dialect` turns a :class:`~xentropy.conformance.cases.Case` into a :class:`Spelling`
when the framework can express the case *with the core's exact semantics* (so that the float64
reference of the case applies unchanged), and into None otherwise: no class weights for optax,
no ``sum_over_batch_size`` in PyTorch, and so on. ``kl_div_log`` is PyTorch's ``F.kl_div``
(element-wise) and optax's ``kl_divergence`` family (along ``axis``); Keras's ``KLDivergence``
spells ``kl_divergence`` of probabilities. Reductions that a per-example API lacks are
applied outside it (``jnp.mean(optax...)``) where that is exactly the core's reduction.

An adapter's extras (``softcap`` and ``z_loss`` of ``F.cross_entropy``, optax's two softmax
cross entropies and ``F.linear_cross_entropy``, whose ``chunk_size`` too) are spelled with
``Spelling(native=False)``: adapter cells against the reference only, skipped on the
``*-native`` backends. Sample weights are Keras's (``sample_weight=`` of the call, ``mean`` as
``mean_with_sample_weight``); ``where`` is optax's mask of the examples. PyTorch and ``tf.nn``
have neither. ``F.linear_cross_entropy`` rounds the logits to a 16-bit input's dtype before the
loss: its native 16-bit gradients are off the reference by a few ulp, which the native cells
report (the adapter, computing them in float32, is the one compared with the reference).

``tf.compat.v1.losses`` (dialect ``tensorflow-v1-losses``) spells the core's per-example
factors as its ``weights`` :math:`W`: sample weights, the mask, for class indices
``class_weight[y]`` and 0 for an ignored label (which must be a valid class), for the sigmoid
the per-class weights. Its ``MEAN``, :math:`\sum W \ell / \sum W`, is the core's ``mean``
when :math:`W` holds exactly the factors of the core's denominator; ``SUM_OVER_BATCH_SIZE``
divides by every element, the core's ``sum_over_batch_size`` without a mask (and its ``mean``
of the sigmoid with per-class weights only); the default ``SUM_BY_NONZERO_WEIGHTS`` with no
weights is the plain mean. No ``pos_weight``, no smoothing of class indices, no per-class
weights of the softmax, class axis last. TensorFlow stops the gradient of ``onehot_labels``
(no target-gradient cells there), and weighs and reduces float64 losses in float32: its
float64 results are held to float32's tolerance (``native_precision``), the adapter's, which
stay float64, to float64's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .cases import Case

Call = Callable[[Any, Mapping[str, Any], str], Any]


@dataclass(frozen=True)
class Spelling:
    """``call(api, arrays, dtype)`` computes the case with ``api`` (adapter or native)."""

    call: Call
    native: bool = True  # a native loss with the same spelling exists to compare with
    # floating inputs the framework's function gives no gradient (it stops theirs): their
    # target-gradient cells are skipped
    no_gradient: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dialect:
    """How one framework spells losses.

    Attributes:
        api: adapter module -> the object whose attributes carry the framework's loss names.
        native: the framework's own object with those names.
        spell: the spelling of a case, or None when the framework cannot express it.
        native_precision: dtype -> the dtype whose precision the native loss's results have,
            where the framework computes inputs of that dtype in a narrower one (its native
            results are held to that dtype's tolerance; the adapter's to its own).
    """

    name: str
    api: Callable[[ModuleType], Any]
    native: Callable[[], Any]
    spell: Callable[[Case], Spelling | None]
    native_precision: Mapping[str, str] = field(default_factory=dict)


class Names:
    """Attributes looked up in ``module``, then in its ``losses`` submodule (optax, Keras).

    On an adapter module (one of ``xentropy``) only its own names count: a dialect module hands
    every other name to its framework (module ``__getattr__``), and a cell must never compare
    the framework with itself because an adapter lacks a function.
    """

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._own = module.__name__.startswith("xentropy.")

    def __getattr__(self, name: str) -> Any:
        try:
            value = getattr(self._module, name)
        except AttributeError:
            value = getattr(self._module.losses, name)
        if self._own and not getattr(value, "__module__", "").startswith("xentropy."):
            raise AttributeError(
                f"{self._module.__name__} defines no {name!r} of its own (it falls through to "
                f"{getattr(value, '__module__', 'the framework')})"
            )
        return value


def _option(case: Case, name: str, default: Any = None) -> Any:
    return case.options.get(name, default)


def _has(case: Case, *names: str) -> bool:
    """Whether the case sets any of these options (arrays or values, a zero smoothing or
    z-loss aside)."""
    for name in names:
        if name in case.arrays:
            return True
        value = case.options.get(name)
        if value is not None and not (name in ("label_smoothing", "z_loss") and value == 0):
            return True
    return False


# xentropy's LLM options: adapter extras, which no framework's own loss has
LLM_EXTRAS = ("softcap", "z_loss")
# per-example weights and masks (the core's sample_weight and where)
PER_EXAMPLE = ("sample_weight", "where")


def _extras(case: Case, *names: str) -> dict[str, Any]:
    """The options ``names`` that ``case`` sets, as keyword arguments."""
    return {name: case.options[name] for name in names if _has(case, name)}


def _class_axis_is(case: Case, *positions: str) -> bool:
    """Whether the class axis is the last axis (``"last"``) or axis 1 / the only axis."""
    ndim = case.arrays[case.arguments[0]].ndim
    axis = _option(case, "axis", -1) % ndim
    return ("last" in positions and axis == ndim - 1) or (
        "torch" in positions and (axis == 1 or ndim == 1)
    )


# --- PyTorch: torch.nn.functional ---------------------------------------------------------


def _torch_kl_div(case: Case) -> Spelling | None:
    """``F.kl_div``: element-wise terms (no ``axis``), PyTorch's four reductions."""
    if (
        case.reduction not in ("none", "batchmean", "sum", "mean")
        or _option(case, "axis") is not None
        or _option(case, "generalized")
    ):
        return None
    reduction, log_target = case.reduction, bool(_option(case, "log_target"))

    def kl_div(F: Any, a: Mapping[str, Any], dtype: str) -> Any:
        return F.kl_div(
            a["log_predictions"], a["targets"], reduction=reduction, log_target=log_target
        )

    return Spelling(kl_div)


def _torch_linear(case: Case) -> Spelling | None:
    """``F.linear_cross_entropy`` (PyTorch 2.13), 2-D hidden states only (the fused loss of
    a ``(C, d1, ..., D)`` weight is another layout); ``chunk_size``, ``softcap`` and
    ``z_loss`` are adapter extras. ``ignore_index=None`` means -100 for class indices."""
    if case.arrays["hidden"].ndim != 2:
        return None
    reduction = case.reduction
    extras = _extras(case, "chunk_size", *LLM_EXTRAS)
    ignore = _option(case, "ignore_index")
    smoothing = _option(case, "label_smoothing", 0.0)

    def linear_cross_entropy(F: Any, a: Mapping[str, Any], dtype: str) -> Any:
        return F.linear_cross_entropy(
            a["hidden"],
            a["weight"],
            a["targets"],
            linear_bias=a.get("bias"),
            weight=a.get("class_weight"),
            reduction=reduction,
            ignore_index=ignore,
            label_smoothing=smoothing,
            **extras,
        )

    return Spelling(linear_cross_entropy, native=not extras)


def _torch_spell(case: Case) -> Spelling | None:
    if _has(case, *PER_EXAMPLE):  # PyTorch's losses have no sample weights
        return None
    if case.variant == "kl_div_log":
        return _torch_kl_div(case)
    reduction = case.reduction
    if reduction not in ("none", "sum", "mean"):
        return None
    if case.variant == "linear_cross_entropy":
        return _torch_linear(case)
    if case.variant == "softmax_cross_entropy" and _class_axis_is(case, "torch"):
        ignore = _option(case, "ignore_index")
        extras = _extras(case, *LLM_EXTRAS)  # the adapter's own: no native to compare with

        def cross_entropy(F: Any, a: Mapping[str, Any], dtype: str) -> Any:
            kwargs = {} if ignore is None else {"ignore_index": ignore}
            return F.cross_entropy(
                a["logits"],
                a["targets"],
                weight=a.get("class_weight"),
                reduction=reduction,
                label_smoothing=_option(case, "label_smoothing", 0.0),
                **kwargs,
                **extras,
            )

        return Spelling(cross_entropy, native=not extras)
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


def _jax_reduce(reduction: str) -> Callable[..., Any]:
    """The core's reduction of per-example losses: in float32 for 16-bit losses, rounded once
    (a float16 sum of losses of 2e4 would overflow where the mean does not). With optax's
    ``where`` mask (masked examples' losses are 0) a mean divides by the examples kept: the
    core's ``mean`` and ``sum_over_batch_size`` without class weights."""

    def apply(loss: Any, where: Any = None) -> Any:
        import jax.numpy as jnp

        if reduction == "none":
            return loss
        wide = loss.astype(jnp.float32) if jnp.finfo(loss.dtype).bits < 32 else loss
        if reduction == "sum":
            total = jnp.sum(wide)
        elif where is None:
            total = jnp.mean(wide)
        else:
            total = jnp.sum(wide) / jnp.sum(where)
        return total.astype(loss.dtype)

    return apply


def _jax_kl_divergence(case: Case) -> Spelling | None:
    """optax's ``kl_divergence`` family: the terms summed along an ``axis``, reduced outside."""
    axis = _option(case, "axis")
    if axis is None or case.reduction == "batchmean":
        return None
    reduce = _jax_reduce(case.reduction)
    if _option(case, "log_target"):
        name = "kl_divergence_with_log_targets"
    elif _option(case, "generalized"):
        name = "convex_kl_divergence"
    else:
        name = "kl_divergence"

    def divergence(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
        return reduce(getattr(api, name)(a["log_predictions"], a["targets"], axis=axis))

    return Spelling(divergence)


def _jax_spell(case: Case) -> Spelling | None:
    if _has(case, "sample_weight"):  # optax's losses take a mask, no sample weights
        return None
    if case.variant == "kl_div_log":
        return _jax_kl_divergence(case)
    # without weights or ignored targets "mean" and "sum_over_batch_size" are jnp.mean
    if _has(case, "class_weight", "ignore_index", "label_smoothing", "pos_weight"):
        return None
    reduce = _jax_reduce(case.reduction)
    axis = _option(case, "axis", -1)
    axis_kwargs = {} if axis == -1 else {"axis": axis}
    if case.variant == "softmax_cross_entropy":
        # where: optax's mask of the examples; softcap and z_loss: the adapter's extras
        extras = _extras(case, *LLM_EXTRAS)
        name = (
            "softmax_cross_entropy_with_integer_labels"
            if case.target_kind == "sparse"
            else "softmax_cross_entropy"
        )

        def softmax(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            where = a.get("where")
            mask = {} if where is None else {"where": where}
            loss = getattr(api, name)(a["logits"], a["targets"], **axis_kwargs, **mask, **extras)
            return reduce(loss, where)

        return Spelling(softmax, native=not extras)
    if _has(case, *PER_EXAMPLE, *LLM_EXTRAS):
        return None
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
    if _has(case, "class_weight", "ignore_index", "label_smoothing", *PER_EXAMPLE, *LLM_EXTRAS):
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


# --- TensorFlow 1: tf.compat.v1.losses (weights and a Reduction; per-element for the sigmoid) -

Weight = Callable[[Mapping[str, Any]], Any]


def _tf1_array(name: str) -> Weight:
    """The array ``name`` as a weight factor in the dtype of the logits (a mask as 0 and 1)."""

    def factor(a: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        return tf.cast(a[name], a["logits"].dtype)

    return factor


def _tf1_example_weights(ignore: int | None) -> Weight:
    r"""``class_weight[y]`` of each example (:math:`e_i` of the core's mean), 0 where
    ``y == ignore_index``; without class weights, 1 and 0."""

    def factor(a: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        y = a["targets"]
        if "class_weight" in a:
            w = tf.gather(a["class_weight"], y)
        else:
            w = tf.ones(tf.shape(y), a["logits"].dtype)
        return w if ignore is None else tf.where(tf.equal(y, ignore), tf.zeros_like(w), w)

    return factor


def _tf1_weights(factors: Sequence[Weight], rank: int) -> Callable[[Mapping[str, Any]], Any]:
    """The product of the weight ``factors`` (broadcast NumPy's way, as the core does) with
    leading axes of size 1 up to the losses' ``rank``, which TensorFlow's weights must have."""

    def weights(a: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        w = factors[0](a)
        for factor in factors[1:]:
            w = w * factor(a)
        return tf.reshape(w, [1] * (rank - len(w.shape)) + list(w.shape))

    return weights


def _tf1_reduction(case: Case, weighted: bool, mean_weights: bool) -> str | None:
    r"""The ``Reduction`` of the core's reduction of :math:`W \ell` (weights :math:`W`), by
    name; ``""`` for the default; None where no ``Reduction`` is the core's.

    With weights :math:`W` the core's ``mean`` is ``MEAN``, :math:`\sum W \ell / \sum W`, when
    :math:`W` holds exactly the factors of the core's denominator (``mean_weights``: sample
    weights, the mask and, for class indices, ``class_weight[y]`` and the ignored examples);
    with per-class weights of the sigmoid only it is ``SUM_OVER_BATCH_SIZE`` (the core divides
    by the number of elements). ``sum_over_batch_size`` divides by the unmasked examples in
    the core and by all in TensorFlow.
    """
    if case.reduction == "none":
        return "NONE"
    if case.reduction == "sum":
        return "SUM"
    if case.reduction == "sum_over_batch_size":
        return None if _has(case, "where") else "SUM_OVER_BATCH_SIZE"
    if case.reduction != "mean":
        return None
    if not weighted:
        return ""  # SUM_BY_NONZERO_WEIGHTS with weights of 1: the mean over the elements
    if mean_weights:
        return "MEAN"
    return None if _has(case, *PER_EXAMPLE) else "SUM_OVER_BATCH_SIZE"


def _tf1_call(
    name: str,
    factors: Sequence[Weight],
    rank: int,
    reduction: str,
    smoothing: float,
) -> Call:
    """``api.<name>(targets, logits, weights=..., label_smoothing=..., reduction=...)``, each
    keyword only where the case sets it (the defaults otherwise)."""
    weights = _tf1_weights(factors, rank) if factors else None

    def call(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
        import tensorflow as tf

        kwargs: dict[str, Any] = {}
        if weights is not None:
            kwargs["weights"] = weights(a)
        if smoothing:
            kwargs["label_smoothing"] = smoothing
        if reduction:
            kwargs["reduction"] = getattr(tf.compat.v1.losses.Reduction, reduction)
        return getattr(api, name)(a["targets"], a["logits"], **kwargs)

    return call


def _tensorflow_v1_spell(case: Case) -> Spelling | None:
    """``tf.compat.v1.losses``: sample weights, the mask and the example weights of class
    indices (``class_weight[y]``, ignored examples) or the sigmoid's per-class weights as
    ``weights``; label smoothing with TF 1's conventions, the core's."""
    if _has(case, "pos_weight", *LLM_EXTRAS):
        return None
    factors = [_tf1_array(name) for name in PER_EXAMPLE if name in case.arrays]
    smoothing = _option(case, "label_smoothing", 0.0) or 0.0
    if case.variant == "softmax_cross_entropy":
        classes = case.arrays["logits"].shape[-1]
        rank = case.arrays["logits"].ndim - 1
        if not _class_axis_is(case, "last"):
            return None
        if case.target_kind == "sparse":
            ignore = _option(case, "ignore_index")
            if smoothing or (ignore is not None and not 0 <= ignore < classes):
                return None  # no label smoothing; an ignored label must be a valid class
            if _has(case, "class_weight", "ignore_index"):
                factors.append(_tf1_example_weights(ignore))
            reduction = _tf1_reduction(case, bool(factors), True)
            if reduction is None:
                return None
            call = _tf1_call("sparse_softmax_cross_entropy", factors, rank, reduction, 0.0)
            return Spelling(call)
        if _has(case, "class_weight", "ignore_index"):  # class_weight: inside the class sum
            return None
        reduction = _tf1_reduction(case, bool(factors), True)
        if reduction is None:
            return None
        call = _tf1_call("softmax_cross_entropy", factors, rank, reduction, smoothing)
        return Spelling(call, no_gradient=("targets",))  # TensorFlow stops onehot_labels'
    if case.variant == "sigmoid_cross_entropy":
        rank = case.arrays["logits"].ndim
        per_class = _has(case, "class_weight")
        if per_class:
            if case.arrays["class_weight"].ndim > rank:
                return None
            factors.append(_tf1_array("class_weight"))
        reduction = _tf1_reduction(case, bool(factors), not per_class)
        if reduction is None:
            return None
        return Spelling(_tf1_call("sigmoid_cross_entropy", factors, rank, reduction, smoothing))
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


def _keras_reduction(case: Case) -> str:
    r"""The Keras reduction of the core's: with sample weights :math:`s` (and no class weights)
    the core's ``mean`` is :math:`\sum s \ell / \sum s`, Keras's ``mean_with_sample_weight``;
    its ``sum_over_batch_size`` divides by the number of examples in both."""
    if case.reduction == "mean" and _has(case, "sample_weight"):
        return "mean_with_sample_weight"
    return _KERAS_REDUCTIONS[case.reduction]


def _keras_kl_divergence(case: Case) -> Spelling | None:
    """``KLDivergence`` clips both sides into ``[1e-7, 1]``: the core's KL divergence where no
    probability is that small (the normal range) and the class axis is last."""
    if case.value_range != "normal" or not _class_axis_is(case, "last"):
        return None
    reduction = _KERAS_REDUCTIONS[case.reduction]

    def kl_divergence(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
        return api.KLDivergence(reduction=reduction, dtype=dtype)(a["p"], a["q"])

    return Spelling(kl_divergence)


def _keras_spell(case: Case) -> Spelling | None:
    if case.variant == "kl_divergence":
        return _keras_kl_divergence(case)
    if case.variant == "kl_div_log":  # Keras has no KL divergence of log-probabilities
        return None
    # sample weights are Keras's own (sample_weight= of every loss call); no mask of examples
    if _has(case, "class_weight", "ignore_index", "pos_weight", "where", *LLM_EXTRAS):
        return None
    smoothing = _option(case, "label_smoothing", 0.0)
    axis = _option(case, "axis", -1)
    if case.variant in ("sigmoid_cross_entropy", "sigmoid_focal_loss"):
        # Keras averages element-wise losses over the last axis first: only the overall mean
        # is the core's (with one sample weight per row, as the cases draw them)
        reduction = _keras_reduction(case)
        if case.reduction not in ("mean", "sum_over_batch_size") or case.target_kind not in (
            "hard",
            "soft",
        ):
            return None
        if case.variant == "sigmoid_cross_entropy":

            def binary(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
                loss = api.BinaryCrossentropy(
                    from_logits=True, label_smoothing=smoothing, reduction=reduction, dtype=dtype
                )
                return loss(a["targets"], a["logits"], sample_weight=a.get("sample_weight"))

            return Spelling(binary)
        alpha, gamma = _option(case, "alpha"), _option(case, "gamma", 2.0)

        def binary_focal(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            loss = api.BinaryFocalCrossentropy(
                apply_class_balancing=alpha is not None,
                alpha=0.25 if alpha is None else alpha,
                gamma=gamma,
                from_logits=True,
                label_smoothing=smoothing,
                reduction=reduction,
                dtype=dtype,
            )
            return loss(a["targets"], a["logits"], sample_weight=a.get("sample_weight"))

        return Spelling(binary_focal)
    reduction = _keras_reduction(case)
    if case.variant == "softmax_cross_entropy":
        if case.target_kind == "sparse":
            if smoothing or not _class_axis_is(case, "last"):
                return None

            def sparse(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
                loss = api.SparseCategoricalCrossentropy(
                    from_logits=True, reduction=reduction, dtype=dtype
                )
                return loss(a["targets"], a["logits"], sample_weight=a.get("sample_weight"))

            return Spelling(sparse)

        def categorical(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
            loss = api.CategoricalCrossentropy(
                from_logits=True,
                label_smoothing=smoothing,
                axis=axis,
                reduction=reduction,
                dtype=dtype,
            )
            return loss(a["targets"], a["logits"], sample_weight=a.get("sample_weight"))

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
            return loss(a["targets"], a["probs"], sample_weight=a.get("sample_weight"))

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
            return loss(a["targets"], a["logits"], sample_weight=a.get("sample_weight"))

        return Spelling(focal)
    return None


def _module(name: str) -> Callable[[], Any]:
    return lambda: importlib.import_module(name)


DIALECTS: dict[str, Dialect] = {
    "torch": Dialect(
        "torch",
        api=lambda m: Names(m.functional),
        native=lambda: _module("torch.nn.functional")(),
        spell=_torch_spell,
    ),
    "jax": Dialect("jax", api=Names, native=lambda: Names(_module("optax")()), spell=_jax_spell),
    "tensorflow": Dialect(
        "tensorflow",
        api=lambda m: Names(m.nn),
        native=lambda: _module("tensorflow")().nn,
        spell=_tensorflow_spell,
    ),
    "tensorflow-v1-losses": Dialect(
        "tensorflow-v1-losses",
        api=Names,
        native=_module("tensorflow.compat.v1.losses"),
        spell=_tensorflow_v1_spell,
        # tf.compat.v1.losses weights and reduces float64 losses in float32 (and casts back)
        native_precision={"float64": "float32"},
    ),
    "keras": Dialect(
        "keras", api=Names, native=lambda: Names(_module("keras")()), spell=_keras_spell
    ),
}
