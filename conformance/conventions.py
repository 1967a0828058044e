"""Where a framework's own loss follows another convention than xentropy's core, by name.

The dialects (:mod:`~xentropy.conformance.dialects`) compare an adapter with its framework's loss
only where the framework can express a case with the core's exact semantics; the rest of the
cases have no native comparison. :data:`KNOWN` names, for each (variant, dialect) where it is
known, the convention that differs, in one of the words of :data:`CONVENTIONS`, what the
framework does, and which cases it touches. The reports use it twice: to say why the cases of a
square of the native table could not be compared, and beside a failing cell, which convention
it may have run into.

A case the framework cannot express for want of an option (no class weights in optax, no sample
weights in PyTorch) is not a different convention and is not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cases import Case

CONVENTIONS: dict[str, str] = {
    "epsilon clipping": "how probabilities (or their logs) are kept away from 0 and 1",
    "renormalisation": "whether probabilities are divided by their sum first",
    "label-smoothing formula": "how (and whether) the targets are smoothed",
    "ignore_index default": "which label is ignored when none is named",
    "reduction denominator": "what a mean divides by",
    "reduction precision": "the dtype a loss is weighed and reduced in",
}


@dataclass(frozen=True)
class Difference:
    """One known difference: on ``dialect``'s own loss for ``variants``, ``convention``
    differs (``framework_does`` says how); ``touches(case, dtype)`` is whether a case run in
    ``dtype`` is affected."""

    dialect: str
    variants: tuple[str, ...]
    convention: str
    framework_does: str
    touches: Callable[[Case, str], bool]


def _uses(case: Case, *names: str) -> bool:
    """Whether the case sets any of these options (an array, or a value other than None and
    a zero smoothing)."""
    for name in names:
        if name in case.arrays:
            return True
        value = case.options.get(name)
        if value is not None and not (name == "label_smoothing" and value == 0):
            return True
    return False


def _option(case: Case, name: str, default: Any = None) -> Any:
    return case.options.get(name, default)


SOFTMAX_CLASSES = ("softmax_cross_entropy", "categorical_cross_entropy", "softmax_focal_loss")

KNOWN: tuple[Difference, ...] = (
    Difference(
        "torch",
        ("binary_cross_entropy",),
        "epsilon clipping",
        "F.binary_cross_entropy clamps each log at -100 and does not clip the probabilities "
        "(xentropy clips them into [epsilon, 1 - epsilon], epsilon=1e-7 by default; "
        "epsilon=None, log_floor=-100 is PyTorch's)",
        lambda c, dtype: (
            _option(c, "epsilon", 1e-7) is not None or _option(c, "log_floor") != -100.0
        ),
    ),
    Difference(
        "torch",
        ("softmax_cross_entropy", "linear_cross_entropy"),
        "ignore_index default",
        "F.cross_entropy ignores the label -100 unless told otherwise (xentropy's "
        "ignore_index=None ignores none; the torch adapter keeps PyTorch's -100)",
        lambda c, dtype: (
            c.target_kind == "sparse"
            and _option(c, "ignore_index") is None
            and bool(np.any(np.asarray(c.arrays["targets"]) == -100))
        ),
    ),
    Difference(
        "torch",
        ("sigmoid_cross_entropy", "binary_cross_entropy"),
        "label-smoothing formula",
        "F.binary_cross_entropy(_with_logits) has no label smoothing (xentropy smooths binary "
        "targets as t (1 - eps) + eps / 2)",
        lambda c, dtype: _uses(c, "label_smoothing"),
    ),
    Difference(
        "jax",
        ("softmax_cross_entropy", "poly1_cross_entropy", "sigmoid_cross_entropy"),
        "label-smoothing formula",
        "optax's losses take no label smoothing (optax.smooth_labels, (1 - eps) t + eps / C, "
        "is applied to the targets beforehand)",
        lambda c, dtype: _uses(c, "label_smoothing"),
    ),
    Difference(
        "tensorflow-v1-losses",
        ("softmax_cross_entropy",),
        "label-smoothing formula",
        "sparse_softmax_cross_entropy has no label smoothing (softmax_cross_entropy smooths "
        "one-hot labels as (1 - eps) t + eps / C, xentropy's formula)",
        lambda c, dtype: c.target_kind == "sparse" and _uses(c, "label_smoothing"),
    ),
    Difference(
        "tensorflow-v1-losses",
        ("softmax_cross_entropy",),
        "ignore_index default",
        "tf.compat.v1.losses has no ignore_index: an ignored label is a weight of 0 and must "
        "be a valid class",
        lambda c, dtype: (
            _uses(c, "ignore_index")
            and not 0 <= _option(c, "ignore_index") < c.arrays["logits"].shape[-1]
        ),
    ),
    Difference(
        "tensorflow-v1-losses",
        ("softmax_cross_entropy", "sigmoid_cross_entropy"),
        "reduction denominator",
        "the default SUM_BY_NONZERO_WEIGHTS divides by the number of non-zero weights, "
        "SUM_OVER_BATCH_SIZE by every element (masked ones included)",
        lambda c, dtype: (
            (c.reduction == "sum_over_batch_size" and _uses(c, "where"))
            or (
                c.variant == "sigmoid_cross_entropy"
                and c.reduction == "mean"
                and _uses(c, "class_weight")
                and _uses(c, "sample_weight", "where")
            )
        ),
    ),
    Difference(
        "tensorflow-v1-losses",
        ("softmax_cross_entropy", "sigmoid_cross_entropy"),
        "reduction precision",
        "tf.compat.v1.losses weighs and reduces float64 losses in float32",
        lambda c, dtype: dtype == "float64" and c.reduction != "none",
    ),
    Difference(
        "keras",
        ("categorical_cross_entropy",),
        "renormalisation",
        "CategoricalCrossentropy(from_logits=False) divides the probabilities by their sum "
        "(xentropy's normalize=True; the default is False)",
        lambda c, dtype: not _option(c, "normalize", False),
    ),
    Difference(
        "keras",
        ("categorical_cross_entropy",),
        "epsilon clipping",
        "Keras clips the probabilities into [1e-7, 1 - 1e-7] (xentropy's epsilon=1e-7)",
        lambda c, dtype: _option(c, "epsilon", 1e-7) != 1e-7,
    ),
    Difference(
        "keras",
        ("kl_divergence",),
        "epsilon clipping",
        "KLDivergence clips p and q into [1e-7, 1] (xentropy clips nothing: 0 log 0 = 0)",
        lambda c, dtype: c.value_range != "normal",
    ),
    Difference(
        "keras",
        (*SOFTMAX_CLASSES, "poly1_cross_entropy"),
        "reduction denominator",
        "Keras's sum_over_batch_size divides by the number of examples, xentropy's mean with "
        "class weights or ignored labels by their total weight",
        lambda c, dtype: c.reduction == "mean" and _uses(c, "class_weight", "ignore_index"),
    ),
    Difference(
        "keras",
        ("sigmoid_cross_entropy", "sigmoid_focal_loss"),
        "reduction denominator",
        "Keras averages the element-wise losses over the last axis before reducing (only the "
        "overall mean is xentropy's)",
        lambda c, dtype: c.reduction not in ("mean", "sum_over_batch_size"),
    ),
    Difference(
        "keras",
        ("softmax_cross_entropy",),
        "label-smoothing formula",
        "SparseCategoricalCrossentropy has no label smoothing",
        lambda c, dtype: c.target_kind == "sparse" and _uses(c, "label_smoothing"),
    ),
    Difference(
        "keras",
        (
            *SOFTMAX_CLASSES,
            "poly1_cross_entropy",
            "sigmoid_cross_entropy",
            "sigmoid_focal_loss",
            "kl_divergence",
        ),
        "reduction precision",
        "Keras weighs and reduces 16-bit losses in 16 bits (a float16 sum overflows past 65504)",
        lambda c, dtype: dtype in ("float16", "bfloat16") and c.reduction != "none",
    ),
)
assert all(d.convention in CONVENTIONS for d in KNOWN)


def differences(case: Case, dtype: str, dialect: str | None) -> list[Difference]:
    """The known differences of ``dialect``'s own loss that ``case`` in ``dtype`` touches (none
    for a core column, ``dialect`` None)."""
    if dialect is None:
        return []
    return [
        d
        for d in KNOWN
        if d.dialect == dialect and case.variant in d.variants and d.touches(case, dtype)
    ]


def names(found: Sequence[Difference]) -> list[str]:
    """The convention names of ``found``, each once, in :data:`CONVENTIONS` order."""
    present = {d.convention for d in found}
    return [name for name in CONVENTIONS if name in present]
