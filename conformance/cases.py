"""The cases of the matrix: every public loss with its option sets, layouts, targets and ranges.

A :class:`Case` fixes one variant, one option set, one layout (shapes and class axis), one kind
of targets and one range of input values, together with the float64 inputs themselves. Inputs are
drawn from a generator seeded by ``(seed, case key)``, so a case always holds the same numbers
for a given seed, whatever else is selected.

Value ranges (:data:`VALUE_RANGES`):

* ``normal``: logits of a few units, probabilities away from 0 and 1;
* ``extreme``: logits of +-1e4 (ties and near-ties included); probabilities of exactly 0 and 1
  and of 1e-30;
* ``huge``: logits of +-1e30 (not run in float16, which cannot hold them);
* ``zero_prob``: ``-inf`` logits and zero probabilities under zero targets (``0 log 0 = 0``).

``kl_div_log`` takes log-probabilities (``log_predictions``) and targets that are probabilities
(kind ``distribution``) or their logs (kind ``log_distribution``, option ``log_target``); with
``generalized`` the target rows are scaled so that they no longer sum to 1.

Per-class arrays hold numbers exact in every dtype (bfloat16 included), so rounding the inputs
never changes them. So do per-example ones, drawn for each case with the shape of its
per-example losses (:class:`PerExample`): ``sample_weight`` (values in
:data:`SAMPLE_WEIGHT_VALUES`, zeros included; for the element-wise losses one weight per row,
broadcast over the labels) and the boolean mask ``where``.

Derivatives beyond the prediction's gradient (the frameworks differentiate these, the matrix checks
them on every backend with autodiff):

* ``Case.target_grad_of`` names the floating inputs other than the prediction: probability, soft
  or binary ``targets``, ``p`` of ``kl_divergence`` and ``cross_entropy``, and ``sample_weight``.
  Class indices, bool/int binary targets and ``where`` have no derivative and no such cells.
* ``Case.directions`` holds, for the option sets of :data:`SECOND_ORDER_SETS` (layout ``NC`` /
  ``ND``, ``normal`` range), one fixed random direction ``v`` per prediction array: those cases
  also check the Hessian-vector product ``H v`` of ``sum(loss)`` with respect to the prediction.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

CLASSES = 5
VOCABULARY = 7
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 0.25, 1.5])
VOCABULARY_WEIGHT = np.array([0.5, 2.0, 1.0, 0.25, 1.5, 0.75, 3.0])  # linear: (V,)
SAMPLE_WEIGHT_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
PER_CLASS_ALPHA = np.array([0.25, 0.5, 0.75, 1.0, 0.125])
POS_WEIGHT = np.array([2.0, 0.5, 1.0, 3.0, 1.25])

VARIANTS: tuple[str, ...] = (
    "softmax_cross_entropy",
    "categorical_cross_entropy",
    "softmax_focal_loss",
    "poly1_cross_entropy",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
    "sigmoid_focal_loss",
    "entropy",
    "kl_divergence",
    "cross_entropy",
    "linear_cross_entropy",
    "kl_div_log",
)
SOFTMAX_FAMILY = VARIANTS[:4]
ELEMENTWISE_FAMILY = VARIANTS[4:7]
INFORMATION_MEASURES = VARIANTS[7:10]
DIVERGENCES = VARIANTS[11:]  # KL divergence terms of log-probabilities (PyTorch's kl_div)

VALUE_RANGES: dict[str, str] = {
    "normal": "logits of a few units; probabilities away from 0 and 1",
    "extreme": "logits of +-1e4; probabilities of exactly 0, 1 and 1e-30",
    "huge": "logits of +-1e30 (float32, bfloat16, float64)",
    "zero_prob": "-inf logits and zero probabilities under zero targets",
}

# layout name -> (prediction shape, class axis); the class axis is None for element-wise losses
LAYOUTS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "NC": ((8, CLASSES), -1),
    "NCd": ((3, CLASSES, 4), 1),  # PyTorch's K-dimensional layout, axis=1
    "NdC": ((2, 3, CLASSES), -1),
    "C": ((CLASSES,), -1),
    "N": ((8,), None),
    "ND": ((6, 4), None),  # linear_cross_entropy: hidden (N, D), weight (V, D)
    "NdD": ((2, 3, 4), None),
}


@dataclass(frozen=True)
class Case:
    """One loss call of the matrix, with its float64 inputs.

    ``arrays`` holds every array argument, positional or keyword (per-class weights and the bias
    of ``linear_cross_entropy`` included), floating ones in float64; a cell converts each to the
    backend in its dtype. ``options`` holds the other keyword options. ``grad_of`` names the
    arrays whose gradients ``xentropy.value_and_grad`` returns, in its order. ``target_grad_of``
    names the other floating arguments (their gradient cells), ``directions`` the direction of
    the Hessian-vector product for each ``grad_of`` array (empty: no second-order cells).
    """

    variant: str
    option_set: str
    layout: str
    target_kind: str
    value_range: str
    arguments: tuple[str, ...]
    arrays: Mapping[str, np.ndarray]
    options: Mapping[str, Any]
    grad_of: tuple[str, ...]
    excluded_dtypes: Mapping[str, str] = field(default_factory=dict)
    quick: bool = False
    target_grad_of: tuple[str, ...] = ()
    directions: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def second_order(self) -> bool:
        """Whether the case has Hessian-vector-product cells."""
        return bool(self.directions)

    @property
    def id(self) -> str:
        """``variant/layout/targets/range/options``, unique in a registry."""
        return "/".join(
            (self.variant, self.layout, self.target_kind, self.value_range, self.option_set)
        )

    @property
    def keyword_arrays(self) -> tuple[str, ...]:
        """Array arguments passed by keyword (``class_weight``, ``bias``, ...)."""
        return tuple(name for name in self.arrays if name not in self.arguments)

    @property
    def reduction(self) -> str:
        """The reduction in effect (the variant's default when the case sets none)."""
        default = "none" if self.variant in (*INFORMATION_MEASURES, *DIVERGENCES) else "mean"
        return str(self.options.get("reduction", default))


@dataclass(frozen=True)
class OptionSet:
    """Named keyword options; ``kinds`` are the target kinds it runs with."""

    name: str
    options: Mapping[str, Any]
    kinds: tuple[str, ...]
    quick: bool = False


def _sets(kinds: tuple[str, ...], *entries: tuple[str, dict[str, Any]]) -> list[OptionSet]:
    return [OptionSet(name, options, kinds) for name, options in entries]


@dataclass(frozen=True)
class PerExample:
    """An option whose array each case draws with its per-example shape: sample weights
    (``"weight"``) or a boolean mask of the examples that count (``"mask"``)."""

    kind: str


SAMPLE_WEIGHT = PerExample("weight")
WHERE = PerExample("mask")


SPARSE_DENSE = ("sparse", "dense")
SPARSE = ("sparse",)
DENSE = ("dense",)
HARD_SOFT = ("hard", "soft")

PLAIN = ("plain", {})
NONE = ("none", {"reduction": "none"})
SUM = ("sum", {"reduction": "sum"})
SUM_OVER_BATCH = ("sum_over_batch_size", {"reduction": "sum_over_batch_size"})
WEIGHT = ("class_weight", {"class_weight": CLASS_WEIGHT})
WEIGHT_SMOOTHING = (
    "class_weight+label_smoothing=0.3",
    {"class_weight": CLASS_WEIGHT, "label_smoothing": 0.3},
)
WEIGHT_IGNORE_SMOOTHING = (
    "class_weight+ignore_index=1+label_smoothing=0.2",
    {"class_weight": CLASS_WEIGHT, "ignore_index": 1, "label_smoothing": 0.2},
)

# the LLM options of softmax_cross_entropy: Gemma 2's soft-cap, PaLM's z-loss
SOFTCAP = ("softcap=5", {"softcap": 5.0})
Z_LOSS = ("z_loss=0.01", {"z_loss": 1e-2})
LLM_WEIGHT = {"softcap": 5.0, "z_loss": 1e-2, "class_weight": CLASS_WEIGHT}
LLM_ALL = ("softcap+z_loss+class_weight+ignore", {**LLM_WEIGHT, "ignore_index": 1})
# per-example weights and masks
SAMPLE = ("sample_weight", {"sample_weight": SAMPLE_WEIGHT})
SAMPLE_WHERE = {"sample_weight": SAMPLE_WEIGHT, "where": WHERE}
SAMPLE_ALL = {**SAMPLE_WHERE, "class_weight": CLASS_WEIGHT, "ignore_index": 1}
SAMPLE_ALL_NAME = "sample_weight+where+class_weight+ignore"
SAMPLE_ALL_SETS = [
    OptionSet(SAMPLE_ALL_NAME, SAMPLE_ALL, ("sparse",), quick=True),
    *_sets(
        ("sparse",),
        (
            SAMPLE_ALL_NAME + "+sum_over_batch_size",
            {**SAMPLE_ALL, "reduction": "sum_over_batch_size"},
        ),
        (SAMPLE_ALL_NAME + "+none", {**SAMPLE_ALL, "reduction": "none"}),
    ),
    *_sets(
        ("dense",),
        ("sample_weight+where+class_weight", {**SAMPLE_WHERE, "class_weight": CLASS_WEIGHT}),
    ),
]

SOFTMAX_SETS = [
    OptionSet("plain", {}, SPARSE_DENSE, quick=True),
    *_sets(
        SPARSE_DENSE,
        NONE,
        SUM,
        SUM_OVER_BATCH,
        WEIGHT,
        ("label_smoothing=0.1", {"label_smoothing": 0.1}),
        WEIGHT_SMOOTHING,
    ),
    *_sets(
        SPARSE,
        ("ignore_index=1", {"ignore_index": 1}),
        ("ignore_index=-100", {"ignore_index": -100}),
    ),
    OptionSet(WEIGHT_IGNORE_SMOOTHING[0], WEIGHT_IGNORE_SMOOTHING[1], SPARSE, quick=True),
    OptionSet(
        WEIGHT_IGNORE_SMOOTHING[0] + "+none",
        {**WEIGHT_IGNORE_SMOOTHING[1], "reduction": "none"},
        SPARSE,
    ),
]
# the other losses of the softmax family share the target handling: fewer common sets
SOFTMAX_SHORT_SETS = [
    OptionSet("plain", {}, SPARSE_DENSE, quick=True),
    *_sets(SPARSE_DENSE, NONE, WEIGHT_SMOOTHING),
    *_sets(SPARSE, WEIGHT_IGNORE_SMOOTHING),
]
VARIANT_SETS: dict[str, list[OptionSet]] = {
    "softmax_cross_entropy": [
        *_sets(
            SPARSE_DENSE,
            SOFTCAP,
            Z_LOSS,
            (
                "softcap+z_loss+label_smoothing=0.1+none",
                {"softcap": 5.0, "z_loss": 1e-2, "label_smoothing": 0.1, "reduction": "none"},
            ),
        ),
        OptionSet(*LLM_ALL, SPARSE, quick=True),
        *_sets(DENSE, ("softcap+z_loss+class_weight", LLM_WEIGHT)),
        OptionSet(*SAMPLE, SPARSE_DENSE, quick=True),
        *_sets(
            SPARSE_DENSE,
            ("sample_weight+sum", {"sample_weight": SAMPLE_WEIGHT, "reduction": "sum"}),
            ("sample_weight+none", {"sample_weight": SAMPLE_WEIGHT, "reduction": "none"}),
            ("where", {"where": WHERE}),
            ("where+sum_over_batch_size", {"where": WHERE, "reduction": "sum_over_batch_size"}),
            ("where+sum", {"where": WHERE, "reduction": "sum"}),
            ("where+none", {"where": WHERE, "reduction": "none"}),
            (
                "sample_weight+where+softcap+z_loss",
                {**SAMPLE_WHERE, "softcap": 5.0, "z_loss": 1e-2},
            ),
        ),
        *SAMPLE_ALL_SETS,
    ],
    "softmax_focal_loss": [
        *_sets(
            SPARSE_DENSE,
            ("gamma=0", {"gamma": 0.0}),
            ("gamma=0.5", {"gamma": 0.5}),
            ("gamma=3+none", {"gamma": 3.0, "reduction": "none"}),
        ),
        OptionSet("gamma=1.5+alpha=0.25", {"gamma": 1.5, "alpha": 0.25}, SPARSE_DENSE, quick=True),
        *_sets(
            SPARSE_DENSE,
            (
                "alpha=per_class+class_weight",
                {"alpha": PER_CLASS_ALPHA, "class_weight": CLASS_WEIGHT},
            ),
        ),
    ],
    "poly1_cross_entropy": [
        *_sets(
            SPARSE_DENSE,
            ("epsilon=-1", {"epsilon": -1.0}),
            ("epsilon=0", {"epsilon": 0.0}),
            (
                "epsilon=1+label_smoothing=0.1+none",
                {"epsilon": 1.0, "label_smoothing": 0.1, "reduction": "none"},
            ),
        ),
        OptionSet(
            "epsilon=3+class_weight",
            {"epsilon": 3.0, "class_weight": CLASS_WEIGHT},
            SPARSE_DENSE,
            quick=True,
        ),
    ],
    "categorical_cross_entropy": [
        *_sets(
            SPARSE_DENSE,
            ("epsilon=None", {"epsilon": None}),
            ("epsilon=0.05", {"epsilon": 0.05}),
            ("normalize", {"normalize": True}),
        ),
        OptionSet(
            "normalize+class_weight+none",
            {"normalize": True, "class_weight": CLASS_WEIGHT, "reduction": "none"},
            SPARSE_DENSE,
            quick=True,
        ),
        OptionSet(*SAMPLE, SPARSE_DENSE, quick=True),
        *_sets(
            SPARSE_DENSE,
            (
                "sample_weight+where+sum_over_batch_size",
                {**SAMPLE_WHERE, "reduction": "sum_over_batch_size"},
            ),
        ),
        *_sets(SPARSE, (SAMPLE_ALL_NAME, SAMPLE_ALL)),
        *_sets(
            DENSE,
            ("where+normalize+none", {"where": WHERE, "normalize": True, "reduction": "none"}),
        ),
    ],
}
# other layouts run a few sets (the layout code is shared by every option set)
SOFTMAX_LAYOUT_SETS: dict[str, list[OptionSet]] = {
    "NCd": [
        *_sets(SPARSE_DENSE, PLAIN, NONE),
        *_sets(SPARSE, WEIGHT_IGNORE_SMOOTHING),
        *_sets(DENSE, WEIGHT_SMOOTHING),
    ],
    "NdC": _sets(SPARSE_DENSE, PLAIN),
    "C": _sets(SPARSE_DENSE, PLAIN, NONE),
}
SOFTMAX_RANGE_SETS: dict[str, list[OptionSet]] = {
    "extreme": [
        *_sets(SPARSE_DENSE, PLAIN, NONE, WEIGHT_SMOOTHING),
        *_sets(SPARSE, WEIGHT_IGNORE_SMOOTHING),
    ],
    "huge": _sets(SPARSE_DENSE, PLAIN, NONE),
    # no label smoothing: it would put weight on the -inf logits
    "zero_prob": [*_sets(SPARSE_DENSE, PLAIN, NONE), *_sets(DENSE, WEIGHT)],
}
# softmax_cross_entropy's own options in the other layouts and ranges (after the shared sets)
SOFTMAX_CE_LAYOUT_SETS: dict[str, list[OptionSet]] = {
    "NCd": [
        *_sets(SPARSE, LLM_ALL, (SAMPLE_ALL_NAME, SAMPLE_ALL)),
        *_sets(DENSE, ("sample_weight+where", SAMPLE_WHERE)),
    ],
    "NdC": _sets(SPARSE_DENSE, ("sample_weight+where+sum", {**SAMPLE_WHERE, "reduction": "sum"})),
    "C": _sets(
        SPARSE_DENSE, SOFTCAP, ("sample_weight+where+none", {**SAMPLE_WHERE, "reduction": "none"})
    ),
}
SOFTMAX_CE_RANGE_SETS: dict[str, list[OptionSet]] = {
    # the cap saturates: tanh(1e4 / 5) is 1 and its derivative 0
    "extreme": [
        *_sets(SPARSE_DENSE, SOFTCAP, ("z_loss=0.01+none", {"z_loss": 1e-2, "reduction": "none"})),
        *_sets(SPARSE, LLM_ALL),
    ],
    "huge": _sets(SPARSE_DENSE, SOFTCAP),
    "zero_prob": [*_sets(SPARSE_DENSE, Z_LOSS), *_sets(DENSE, SAMPLE)],
}
CATEGORICAL_RANGE_SETS: dict[str, list[OptionSet]] = {
    # the default clip keeps log(0) finite, so targets may sit on zero probabilities
    "extreme": [
        *_sets(SPARSE_DENSE, PLAIN, NONE, WEIGHT_SMOOTHING),
        *_sets(SPARSE_DENSE, ("epsilon=None", {"epsilon": None})),
        *_sets(DENSE, ("normalize+none", {"normalize": True, "reduction": "none"})),
    ],
    "zero_prob": _sets(
        SPARSE_DENSE,
        ("epsilon=None", {"epsilon": None}),
        ("epsilon=None+none", {"epsilon": None, "reduction": "none"}),
    ),
}

ALL_WEIGHTS_SMOOTHING = (
    "pos_weight+class_weight+label_smoothing=0.1",
    {"pos_weight": POS_WEIGHT, "class_weight": CLASS_WEIGHT, "label_smoothing": 0.1},
)
ELEMENTWISE_SETS: dict[str, list[OptionSet]] = {
    "sigmoid_cross_entropy": [
        OptionSet("plain", {}, (*HARD_SOFT, "bool", "int"), quick=True),
        *_sets(
            HARD_SOFT,
            NONE,
            SUM,
            SUM_OVER_BATCH,
            ("pos_weight=2.5", {"pos_weight": 2.5}),
            ("pos_weight=per_class", {"pos_weight": POS_WEIGHT}),
            WEIGHT,
            ("label_smoothing=0.2", {"label_smoothing": 0.2}),
        ),
        OptionSet(*ALL_WEIGHTS_SMOOTHING, HARD_SOFT, quick=True),
        OptionSet(*SAMPLE, HARD_SOFT, quick=True),
        *_sets(
            HARD_SOFT,
            ("where+sum_over_batch_size", {"where": WHERE, "reduction": "sum_over_batch_size"}),
            ("sample_weight+where+none", {**SAMPLE_WHERE, "reduction": "none"}),
            (
                "sample_weight+where+pos_weight+class_weight",
                {**SAMPLE_WHERE, "pos_weight": POS_WEIGHT, "class_weight": CLASS_WEIGHT},
            ),
        ),
    ],
    "binary_cross_entropy": [
        OptionSet("plain", {}, (*HARD_SOFT, "bool"), quick=True),
        *_sets(
            HARD_SOFT,
            NONE,
            SUM,
            ("torch", {"epsilon": None, "log_floor": -100.0}),
            WEIGHT,
            ("label_smoothing=0.2", {"label_smoothing": 0.2}),
            ("epsilon=0.05", {"epsilon": 0.05}),
        ),
        OptionSet(
            "class_weight+label_smoothing=0.1+none",
            {"class_weight": CLASS_WEIGHT, "label_smoothing": 0.1, "reduction": "none"},
            HARD_SOFT,
            quick=True,
        ),
    ],
    "sigmoid_focal_loss": [
        OptionSet("plain", {}, HARD_SOFT, quick=True),
        *_sets(
            HARD_SOFT,
            NONE,
            SUM,
            ("gamma=0+alpha=0.25", {"gamma": 0.0, "alpha": 0.25}),
            ("gamma=0.5", {"gamma": 0.5}),
            ("label_smoothing=0.1", {"label_smoothing": 0.1}),
        ),
        OptionSet("gamma=1.5+alpha=0.75", {"gamma": 1.5, "alpha": 0.75}, HARD_SOFT, quick=True),
    ],
}
ELEMENTWISE_LAYOUT_SETS: dict[str, dict[str, list[OptionSet]]] = {
    "sigmoid_cross_entropy": {
        "N": _sets(("soft",), PLAIN, NONE, ("pos_weight=2.5", {"pos_weight": 2.5})),
        "NdC": _sets(
            ("soft",),
            PLAIN,
            ("pos_weight=per_class+none", {"pos_weight": POS_WEIGHT, "reduction": "none"}),
            ("sample_weight+where", SAMPLE_WHERE),
        ),
    },
    "binary_cross_entropy": {"N": _sets(("soft",), PLAIN), "NdC": _sets(("soft",), PLAIN, NONE)},
    "sigmoid_focal_loss": {"N": _sets(("soft",), PLAIN), "NdC": _sets(("soft",), NONE)},
}
ELEMENTWISE_RANGE_SETS: dict[str, dict[str, list[OptionSet]]] = {
    "sigmoid_cross_entropy": {
        "extreme": _sets(
            HARD_SOFT,
            PLAIN,
            NONE,
            (
                "pos_weight=per_class+class_weight",
                {"pos_weight": POS_WEIGHT, "class_weight": CLASS_WEIGHT},
            ),
        ),
        "huge": _sets(HARD_SOFT, PLAIN, NONE),
    },
    "binary_cross_entropy": {
        "extreme": _sets(
            HARD_SOFT,
            PLAIN,
            ("torch", {"epsilon": None, "log_floor": -100.0}),
            ("torch+none", {"epsilon": None, "log_floor": -100.0, "reduction": "none"}),
            ("epsilon=0.05", {"epsilon": 0.05}),
        ),
        # exact 0 and 1 probabilities under equal targets: finite without any clip
        "zero_prob": _sets(
            HARD_SOFT,
            ("epsilon=None", {"epsilon": None}),
            ("epsilon=None+none", {"epsilon": None, "reduction": "none"}),
        ),
    },
    "sigmoid_focal_loss": {
        "extreme": _sets(HARD_SOFT, PLAIN, NONE, ("gamma=0.5", {"gamma": 0.5})),
        "huge": _sets(HARD_SOFT, PLAIN, NONE),
    },
}

INFORMATION_SETS = [
    OptionSet("plain", {}, ("distribution",), quick=True),
    *_sets(
        ("distribution",),
        ("mean", {"reduction": "mean"}),
        SUM,
        SUM_OVER_BATCH,
    ),
]
INFORMATION_LAYOUT_SETS: dict[str, list[OptionSet]] = {
    "NCd": _sets(("distribution",), PLAIN, ("mean", {"reduction": "mean"})),
    "C": _sets(("distribution",), PLAIN),
}
INFORMATION_RANGE_SETS: dict[str, list[OptionSet]] = {
    "zero_prob": _sets(("distribution",), PLAIN, ("mean", {"reduction": "mean"})),
}

PROBABILITY_TARGETS = ("distribution",)
LOG_TARGETS = ("log_distribution",)
BOTH_TARGETS = (*PROBABILITY_TARGETS, *LOG_TARGETS)
BATCHMEAN = ("batchmean", {"reduction": "batchmean"})
ROWS = ("axis=-1", {"axis": -1})
DIVERGENCE_SETS = [
    OptionSet("plain", {}, BOTH_TARGETS, quick=True),
    *_sets(BOTH_TARGETS, SUM, ("mean", {"reduction": "mean"}), BATCHMEAN, ROWS),
    OptionSet("axis=-1+batchmean", {"axis": -1, "reduction": "batchmean"}, BOTH_TARGETS),
    OptionSet("generalized", {"generalized": True}, PROBABILITY_TARGETS, quick=True),
    *_sets(
        PROBABILITY_TARGETS,
        ("generalized+axis=-1", {"generalized": True, "axis": -1}),
        ("axis=-1+sum_over_batch_size", {"axis": -1, "reduction": "sum_over_batch_size"}),
    ),
]
DIVERGENCE_LAYOUT_SETS: dict[str, list[OptionSet]] = {
    "NCd": _sets(BOTH_TARGETS, PLAIN, ("axis=1", {"axis": 1}), BATCHMEAN),
    "NdC": _sets(PROBABILITY_TARGETS, BATCHMEAN, ROWS),
    "C": _sets(BOTH_TARGETS, PLAIN, BATCHMEAN, ROWS),
}
DIVERGENCE_RANGE_SETS: dict[str, list[OptionSet]] = {
    # zero targets, some under -inf log-probabilities: 0 log 0 = 0
    "zero_prob": [
        *_sets(BOTH_TARGETS, PLAIN, SUM, ROWS),
        *_sets(PROBABILITY_TARGETS, ("generalized+axis=-1", {"generalized": True, "axis": -1})),
    ],
}

LINEAR_ALL = {
    "chunk_size": 3,
    "softcap": 5.0,
    "z_loss": 1e-2,
    "ignore_index": 2,
    "label_smoothing": 0.1,
}
VOCABULARY_WEIGHTS = ("class_weight", {"class_weight": VOCABULARY_WEIGHT})
LINEAR_WEIGHTED = {
    "class_weight": VOCABULARY_WEIGHT,
    "ignore_index": 2,
    "label_smoothing": 0.1,
    "z_loss": 1e-2,
}
# probability targets: every option but ignore_index (an error with probabilities)
LINEAR_DENSE_ALL = {
    "bias": True,
    "class_weight": VOCABULARY_WEIGHT,
    "chunk_size": 3,
    "softcap": 5.0,
    "z_loss": 1e-2,
    "label_smoothing": 0.1,
}
LINEAR_SETS = [
    OptionSet("plain", {}, SPARSE_DENSE, quick=True),
    *_sets(SPARSE_DENSE, VOCABULARY_WEIGHTS),
    OptionSet("class_weight+ignore+smoothing+z_loss", LINEAR_WEIGHTED, SPARSE, quick=True),
    OptionSet("bias+class_weight+all", LINEAR_DENSE_ALL, DENSE, quick=True),
    *_sets(
        DENSE,
        (
            "label_smoothing=0.1+z_loss+none",
            {"label_smoothing": 0.1, "z_loss": 1e-2, "reduction": "none"},
        ),
        (
            "sample_weight+class_weight",
            {"sample_weight": SAMPLE_WEIGHT, "class_weight": VOCABULARY_WEIGHT},
        ),
    ),
    *_sets(
        SPARSE,
        ("sample_weight+where+class_weight+ignore+z_loss", {**SAMPLE_WHERE, **LINEAR_WEIGHTED}),
    ),
    *_sets(
        SPARSE,
        NONE,
        SUM,
        ("bias", {"bias": True}),
        ("chunk_size=3", {"chunk_size": 3}),
        ("softcap=5", {"softcap": 5.0}),
        ("z_loss=0.01", {"z_loss": 1e-2}),
        ("ignore_index=2", {"ignore_index": 2}),
        ("label_smoothing=0.1", {"label_smoothing": 0.1}),
        ("bias+all+none", {"bias": True, **LINEAR_ALL, "reduction": "none"}),
    ),
    OptionSet("bias+all", {"bias": True, **LINEAR_ALL}, SPARSE, quick=True),
]
LINEAR_LAYOUT_SETS = {
    "NdD": [
        *_sets(SPARSE, PLAIN, ("bias+all", {"bias": True, **LINEAR_ALL})),
        *_sets(SPARSE, ("class_weight+ignore+smoothing+z_loss", LINEAR_WEIGHTED)),
        *_sets(DENSE, VOCABULARY_WEIGHTS),
    ]
}
LINEAR_RANGE_SETS = {
    "extreme": [
        *_sets(
            SPARSE,
            PLAIN,
            ("softcap=5", {"softcap": 5.0}),
            ("bias+all", {"bias": True, **LINEAR_ALL}),
            # no z-loss here: its 2 lambda lse (logits of about 100) amplifies the float32
            # rounding of h W^T (relative 5e-6 in p) beyond float32's rtol
            (
                "class_weight+ignore+smoothing",
                {"class_weight": VOCABULARY_WEIGHT, "ignore_index": 2, "label_smoothing": 0.1},
            ),
        ),
        *_sets(DENSE, ("bias+class_weight+all", LINEAR_DENSE_ALL)),
    ]
}


# the option sets (layout NC / ND, normal range) with Hessian-vector-product cells: the first of
# each variant exercises its options in the core; a second one is what the dialects can spell
# (torch, optax, tf.nn and Keras have no class weights or label smoothing in common)
SECOND_ORDER_SETS: dict[str, tuple[str, ...]] = {
    "softmax_cross_entropy": (WEIGHT_SMOOTHING[0], "plain", LLM_ALL[0]),
    "categorical_cross_entropy": ("normalize+class_weight+none", "normalize"),
    "softmax_focal_loss": ("gamma=1.5+alpha=0.25",),
    "poly1_cross_entropy": ("epsilon=3+class_weight", "plain"),
    "sigmoid_cross_entropy": (ALL_WEIGHTS_SMOOTHING[0], "plain"),
    "binary_cross_entropy": ("class_weight+label_smoothing=0.1+none", "torch"),
    "sigmoid_focal_loss": ("gamma=1.5+alpha=0.75",),
    "entropy": ("mean",),
    "kl_divergence": ("mean",),
    "cross_entropy": ("mean",),
    "linear_cross_entropy": ("bias+all", "bias+class_weight+all"),
    "kl_div_log": ("generalized", "generalized+axis=-1"),
}
PROBABILITY_INPUTS = ("probs", "p", "q")


# --- inputs -------------------------------------------------------------------------------


def case_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of one case: a function of the seed and the case key only."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _move_last(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    axis %= len(shape)
    return (*shape[:axis], *shape[axis + 1 :], shape[axis])


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _logits(rng: np.random.Generator, shape: tuple[int, ...], value_range: str) -> np.ndarray:
    """Logits (class axis last for the softmax family); ``-inf`` is added by the caller."""
    if value_range == "extreme":
        # +-1e4 and 0 plus small integer offsets: ties, near-ties and gaps of 2e4 in one row
        big = rng.choice([1e4, -1e4, 0.0], size=shape)
        return big + rng.integers(-8, 9, size=shape).astype(np.float64)
    if value_range == "huge":
        return rng.choice([1e30, -1e30, 0.0], size=shape) + rng.normal(scale=2.0, size=shape)
    return rng.normal(scale=2.0, size=shape)


def _dead_entries(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """About a third of the entries, never a whole row (class axis last)."""
    dead = rng.random(shape) < 0.35
    rows = dead.reshape(-1, shape[-1])
    rows[np.all(rows, axis=-1), 0] = False
    return rows.reshape(shape)


def _class_prediction(
    rng: np.random.Generator,
    variant: str,
    shape_last: tuple[int, ...],
    value_range: str,
    options: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction with the class axis last, and the entries under which targets must be 0."""
    no_dead = np.zeros(shape_last, dtype=bool)
    if variant != "categorical_cross_entropy":
        z = _logits(rng, shape_last, value_range)
        if value_range != "zero_prob":
            return z, no_dead
        dead = _dead_entries(rng, shape_last)
        return np.where(dead, -np.inf, z), dead
    p = _softmax_rows(rng.normal(scale=1.5, size=shape_last))
    dead = no_dead
    if value_range in ("extreme", "zero_prob"):
        dead = _dead_entries(rng, shape_last)
        tiny = 1e-30 if value_range == "extreme" else 0.0
        p = np.where(dead, np.where(rng.random(shape_last) < 0.5, tiny, 0.0), p)
        if value_range == "extreme":  # one-hot rows: probabilities of exactly 1
            rows = p.reshape(-1, shape_last[-1])
            hot = np.argmax(rows[0])
            rows[0] = 0.0
            rows[0, hot] = 1.0
            dead.reshape(-1, shape_last[-1])[0] = np.arange(shape_last[-1]) != hot
        p = p / np.sum(p, axis=-1, keepdims=True)
    if options.get("normalize"):  # rows that do not sum to 1, still inside [0, 1]
        p = p * rng.uniform(0.3, 1.0, size=(*shape_last[:-1], 1))
    return p, dead


def _class_targets(
    rng: np.random.Generator,
    kind: str,
    shape_last: tuple[int, ...],
    dead: np.ndarray,
    options: Mapping[str, Any],
    targets_may_hit_dead: bool,
) -> np.ndarray:
    """Class indices (``sparse``) or probabilities (``dense``), class axis last."""
    if kind == "dense":
        t = _softmax_rows(rng.normal(size=shape_last))
        t = np.where(dead, 0.0, t)
        return t / np.sum(t, axis=-1, keepdims=True)
    rows = dead.reshape(-1, shape_last[-1])
    y = np.empty(rows.shape[0], dtype=np.int64)
    for i, row in enumerate(rows):
        allowed = np.arange(shape_last[-1]) if targets_may_hit_dead else np.flatnonzero(~row)
        y[i] = rng.choice(allowed)
    ignore = options.get("ignore_index")
    if ignore is not None and y.size > 1:
        y[rng.random(y.size) < 0.3] = ignore
        y[0] = ignore
        if y[-1] == ignore:
            y[-1] = (ignore + 1) % shape_last[-1]
    return y.reshape(shape_last[:-1])


def _per_example(
    rng: np.random.Generator, marker: PerExample, shape: tuple[int, ...]
) -> np.ndarray:
    """Sample weights (zeros among them, never all zero) or a mask keeping the first example
    and dropping at least one other, of ``shape``."""
    if marker.kind == "weight":
        s = np.array(rng.choice(SAMPLE_WEIGHT_VALUES, size=shape), dtype=np.float64)
        s.flat[0] = 1.5
        return s
    keep = np.array(rng.random(shape) < 0.7)
    keep.flat[0] = True
    if keep.size > 1:
        keep.flat[-1] = False
    return keep


def _array_options(
    options: Mapping[str, Any],
    rng: np.random.Generator | None = None,
    example_shape: tuple[int, ...] = (),
    weight_shape: tuple[int, ...] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The options split into arrays (per-class ones in float64; per-example ones drawn from
    ``rng``: masks of ``example_shape``, weights of ``weight_shape``, default the same) and the
    rest."""
    arrays: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {}
    for k, v in options.items():
        if isinstance(v, np.ndarray):
            arrays[k] = np.asarray(v, dtype=np.float64)
        elif not isinstance(v, PerExample):
            rest[k] = v
    for k, v in options.items():  # drawn last: the other inputs stay those of the seed
        if isinstance(v, PerExample):
            assert rng is not None
            shape = example_shape if v.kind == "mask" or weight_shape is None else weight_shape
            arrays[k] = _per_example(rng, v, shape)
    return arrays, rest


HUGE_EXCLUDED = {"float16": "float16 cannot hold logits of 1e30"}


def class_case(
    variant: str, option_set: OptionSet, layout: str, kind: str, value_range: str, seed: int
) -> Case:
    """A case of the softmax family (softmax, categorical, focal, poly-1)."""
    shape, axis = LAYOUTS[layout]
    assert axis is not None
    key = f"{variant}/{layout}/{kind}/{value_range}/{option_set.name}"
    rng = case_rng(seed, key)
    shape_last = _move_last(shape, axis)
    prediction, dead = _class_prediction(rng, variant, shape_last, value_range, option_set.options)
    clipping = variant == "categorical_cross_entropy" and option_set.options.get("epsilon", 1e-7)
    targets = _class_targets(rng, kind, shape_last, dead, option_set.options, bool(clipping))
    prediction = np.moveaxis(prediction, -1, axis)
    if kind == "dense":
        targets = np.moveaxis(targets, -1, axis)
    arrays, options = _array_options(option_set.options, rng, shape_last[:-1])
    if axis != -1:
        options["axis"] = axis
    name = "probs" if variant == "categorical_cross_entropy" else "logits"
    return Case(
        variant=variant,
        option_set=option_set.name,
        layout=layout,
        target_kind=kind,
        value_range=value_range,
        arguments=(name, "targets"),
        arrays={name: prediction, "targets": targets, **arrays},
        options=options,
        grad_of=(name,),
        excluded_dtypes=HUGE_EXCLUDED if value_range == "huge" else {},
        quick=option_set.quick and layout == "NC" and value_range == "normal",
    )


def _binary_targets(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    hard = rng.random(shape) < 0.5
    if kind == "soft":
        return rng.random(shape)
    if kind == "bool":
        return hard
    if kind == "int":
        return hard.astype(np.int64)
    return hard.astype(np.float64)


def elementwise_case(
    variant: str, option_set: OptionSet, layout: str, kind: str, value_range: str, seed: int
) -> Case:
    """A case of the element-wise family (sigmoid, binary, sigmoid focal)."""
    shape, _ = LAYOUTS[layout]
    key = f"{variant}/{layout}/{kind}/{value_range}/{option_set.name}"
    rng = case_rng(seed, key)
    targets = _binary_targets(rng, kind, shape)
    if variant == "binary_cross_entropy":
        name = "probs"
        prediction = rng.uniform(0.02, 0.98, size=shape)
        if value_range == "extreme":
            special = rng.choice([0.0, 1.0, 1e-30, 1.0 - 2.0**-10], size=shape)
            prediction = np.where(rng.random(shape) < 0.5, special, prediction)
        elif value_range == "zero_prob":  # exact 0 / 1 probabilities under equal targets
            edge = rng.random(shape) < 0.4
            hard = rng.random(shape) < 0.5
            prediction = np.where(edge, hard.astype(np.float64), prediction)
            targets = np.where(edge, hard, targets)
            if kind == "hard":
                targets = targets.astype(np.float64)
    else:
        name = "logits"
        prediction = _logits(rng, shape, value_range)
    # one sample weight per row, broadcast over its labels; the mask entry by entry
    rows = (*shape[:-1], 1) if len(shape) > 1 else shape
    arrays, options = _array_options(option_set.options, rng, shape, rows)
    return Case(
        variant=variant,
        option_set=option_set.name,
        layout=layout,
        target_kind=kind,
        value_range=value_range,
        arguments=(name, "targets"),
        arrays={name: prediction, "targets": targets, **arrays},
        options=options,
        grad_of=(name,),
        excluded_dtypes=HUGE_EXCLUDED if value_range == "huge" else {},
        quick=option_set.quick and layout == "NC" and value_range == "normal",
    )


def information_case(
    variant: str, option_set: OptionSet, layout: str, value_range: str, seed: int
) -> Case:
    """A case of ``entropy`` (gradient w.r.t. ``p``), ``kl_divergence`` or ``cross_entropy``
    (gradient w.r.t. ``q``)."""
    shape, axis = LAYOUTS[layout]
    assert axis is not None
    key = f"{variant}/{layout}/distribution/{value_range}/{option_set.name}"
    rng = case_rng(seed, key)
    shape_last = _move_last(shape, axis)
    p = _softmax_rows(rng.normal(size=shape_last))
    q = _softmax_rows(rng.normal(size=shape_last))
    if value_range == "zero_prob":
        dead = _dead_entries(rng, shape_last)
        p = np.where(dead, 0.0, p)
        p = p / np.sum(p, axis=-1, keepdims=True)
        # q may vanish only where p does
        q = np.where(dead & (rng.random(shape_last) < 0.5), 0.0, q)
        q = q / np.sum(q, axis=-1, keepdims=True)
    p, q = np.moveaxis(p, -1, axis), np.moveaxis(q, -1, axis)
    arguments = ("p",) if variant == "entropy" else ("p", "q")
    arrays = {"p": p} if variant == "entropy" else {"p": p, "q": q}
    options = dict(option_set.options)
    if axis != -1:
        options["axis"] = axis
    return Case(
        variant=variant,
        option_set=option_set.name,
        layout=layout,
        target_kind="distribution",
        value_range=value_range,
        arguments=arguments,
        arrays=arrays,
        options=options,
        grad_of=(arguments[-1],),
        quick=option_set.quick and layout == "NC" and value_range == "normal",
    )


def divergence_case(
    option_set: OptionSet, layout: str, kind: str, value_range: str, seed: int
) -> Case:
    """A case of ``kl_div_log``: gradients of ``log_predictions`` (and of the targets)."""
    shape, axis = LAYOUTS[layout]
    assert axis is not None
    key = f"kl_div_log/{layout}/{kind}/{value_range}/{option_set.name}"
    rng = case_rng(seed, key)
    shape_last = _move_last(shape, axis)
    log_q = np.log(_softmax_rows(rng.normal(scale=1.5, size=shape_last)))
    p = _softmax_rows(rng.normal(size=shape_last))
    options = dict(option_set.options)
    if options.get("generalized"):  # unnormalised measures: rows summing to 0.5 ... 1.5
        p = p * rng.uniform(0.5, 1.5, size=(*shape_last[:-1], 1))
        log_q = log_q + rng.uniform(-0.4, 0.4, size=(*shape_last[:-1], 1))
    if value_range == "zero_prob":
        dead = _dead_entries(rng, shape_last)
        p = np.where(dead, 0.0, p)
        # a zero target may sit under a -inf log-probability
        log_q = np.where(dead & (rng.random(shape_last) < 0.5), -np.inf, log_q)
    with np.errstate(divide="ignore"):
        targets = np.log(p) if kind == "log_distribution" else p
    if kind == "log_distribution":
        options["log_target"] = True
    if "axis" in options and axis != -1:
        options["axis"] = axis
    return Case(
        variant="kl_div_log",
        option_set=option_set.name,
        layout=layout,
        target_kind=kind,
        value_range=value_range,
        arguments=("log_predictions", "targets"),
        arrays={
            "log_predictions": np.moveaxis(log_q, -1, axis),
            "targets": np.moveaxis(targets, -1, axis),
        },
        options=options,
        grad_of=("log_predictions",),
        quick=option_set.quick and layout == "NC" and value_range == "normal",
    )


def linear_case(option_set: OptionSet, layout: str, kind: str, value_range: str, seed: int) -> Case:
    """A case of ``linear_cross_entropy``: gradients of hidden, weight (and bias); class
    indices (``sparse``) or probabilities over the vocabulary (``dense``) as targets."""
    shape, _ = LAYOUTS[layout]
    key = f"linear_cross_entropy/{layout}/{kind}/{value_range}/{option_set.name}"
    rng = case_rng(seed, key)
    scale = 30.0 if value_range == "extreme" else 1.0
    hidden = rng.normal(scale=scale, size=shape)
    weight = rng.normal(scale=0.5, size=(VOCABULARY, shape[-1]))
    targets = rng.integers(0, VOCABULARY, size=shape[:-1])
    drawn = {k: v for k, v in option_set.options.items() if isinstance(v, PerExample)}
    fixed = {k: v for k, v in option_set.options.items() if k not in drawn}
    keyword_arrays, options = _array_options(fixed)
    ignore = options.get("ignore_index")
    if ignore is not None:
        flat = targets.reshape(-1)
        flat[rng.random(flat.size) < 0.3] = ignore
        flat[0] = ignore
        flat[-1] = (ignore + 1) % VOCABULARY
    if kind == "dense":
        targets = _softmax_rows(rng.normal(size=(*shape[:-1], VOCABULARY)))
    arrays = {"hidden": hidden, "weight": weight, "targets": targets}
    grad_of: tuple[str, ...] = ("hidden", "weight")
    if options.pop("bias", False):
        arrays["bias"] = rng.normal(size=(VOCABULARY,))
        grad_of = (*grad_of, "bias")
    per_example, _ = _array_options(drawn, rng, shape[:-1])  # drawn last
    return Case(
        variant="linear_cross_entropy",
        option_set=option_set.name,
        layout=layout,
        target_kind=kind,
        value_range=value_range,
        arguments=("hidden", "weight", "targets"),
        arrays={**arrays, **keyword_arrays, **per_example},
        options=options,
        grad_of=grad_of,
        quick=option_set.quick and layout == "ND" and value_range == "normal",
    )


# --- derivatives beyond the prediction's gradient -----------------------------------------


def _direction(rng: np.random.Generator, case: Case, name: str) -> np.ndarray:
    """A random direction for the array ``name``; relative for probabilities.

    ``x v`` with ``v ~ N(0, 1)`` for class probabilities and ``x (1 - x) v`` for binary ones keeps
    ``x + s v`` inside ``(0, 1)``, away from the clip, for the small steps ``s`` of the finite-
    difference reference, and makes the loss along the line bend on a scale of one unit of ``s``
    (as it does along a logit direction).
    """
    x = case.arrays[name]
    v = rng.normal(size=x.shape)
    if name not in PROBABILITY_INPUTS:
        return v
    return x * (1.0 - x) * v if case.variant == "binary_cross_entropy" else x * v


def with_derivatives(case: Case, seed: int) -> Case:
    """``case`` with its :attr:`Case.target_grad_of` and, for a set of
    :data:`SECOND_ORDER_SETS`, its :attr:`Case.directions`."""
    targets = tuple(
        name
        for name in case.arguments
        if name not in case.grad_of and case.arrays[name].dtype.kind == "f"
    )
    if "sample_weight" in case.arrays:
        targets = (*targets, "sample_weight")
    directions: dict[str, np.ndarray] = {}
    if (
        case.layout in ("NC", "ND")
        and case.value_range == "normal"
        and case.option_set in SECOND_ORDER_SETS[case.variant]
    ):
        rng = case_rng(seed, "direction/" + case.id)
        directions = {name: _direction(rng, case, name) for name in case.grad_of}
    return replace(case, target_grad_of=targets, directions=directions)


# --- the registry -------------------------------------------------------------------------


def _class_plan(variant: str) -> Iterator[tuple[str, str, OptionSet]]:
    common = SOFTMAX_SETS if variant == "softmax_cross_entropy" else SOFTMAX_SHORT_SETS
    for option_set in (*common, *VARIANT_SETS[variant]):
        yield "NC", "normal", option_set
    own = variant == "softmax_cross_entropy"
    for layout, sets in SOFTMAX_LAYOUT_SETS.items():
        for option_set in (*sets, *(SOFTMAX_CE_LAYOUT_SETS.get(layout, []) if own else [])):
            yield layout, "normal", option_set
    ranges = (
        CATEGORICAL_RANGE_SETS if variant == "categorical_cross_entropy" else SOFTMAX_RANGE_SETS
    )
    for value_range, sets in ranges.items():
        for option_set in (*sets, *(SOFTMAX_CE_RANGE_SETS.get(value_range, []) if own else [])):
            yield "NC", value_range, option_set


def generate_cases(
    seed: int = 0, *, variants: Sequence[str] | None = None, quick: bool = False
) -> list[Case]:
    """Every case of the matrix for ``seed`` (a small subset with ``quick``), in a fixed order.

    Raises:
        ValueError: for a name in ``variants`` that is not a variant.
    """
    wanted = tuple(VARIANTS if variants is None else variants)
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    cases: list[Case] = []
    for variant in VARIANTS:
        if variant not in wanted:
            continue
        if variant in SOFTMAX_FAMILY:
            for layout, value_range, option_set in _class_plan(variant):
                for kind in option_set.kinds:
                    cases.append(class_case(variant, option_set, layout, kind, value_range, seed))
        elif variant in ELEMENTWISE_FAMILY:
            plan = [("NC", "normal", s) for s in ELEMENTWISE_SETS[variant]]
            plan += [
                (layout, "normal", s)
                for layout, sets in ELEMENTWISE_LAYOUT_SETS[variant].items()
                for s in sets
            ]
            plan += [
                ("NC", value_range, s)
                for value_range, sets in ELEMENTWISE_RANGE_SETS[variant].items()
                for s in sets
            ]
            for layout, value_range, option_set in plan:
                for kind in option_set.kinds:
                    cases.append(
                        elementwise_case(variant, option_set, layout, kind, value_range, seed)
                    )
        elif variant in INFORMATION_MEASURES:
            plan = [("NC", "normal", s) for s in INFORMATION_SETS]
            plan += [
                (lay, "normal", s) for lay, sets in INFORMATION_LAYOUT_SETS.items() for s in sets
            ]
            plan += [("NC", r, s) for r, sets in INFORMATION_RANGE_SETS.items() for s in sets]
            for layout, value_range, option_set in plan:
                cases.append(information_case(variant, option_set, layout, value_range, seed))
        elif variant in DIVERGENCES:
            plan = [("NC", "normal", s) for s in DIVERGENCE_SETS]
            plan += [
                (lay, "normal", s) for lay, sets in DIVERGENCE_LAYOUT_SETS.items() for s in sets
            ]
            plan += [("NC", r, s) for r, sets in DIVERGENCE_RANGE_SETS.items() for s in sets]
            for layout, value_range, option_set in plan:
                for kind in option_set.kinds:
                    cases.append(divergence_case(option_set, layout, kind, value_range, seed))
        else:
            plan = [("ND", "normal", s) for s in LINEAR_SETS]
            plan += [(lay, "normal", s) for lay, sets in LINEAR_LAYOUT_SETS.items() for s in sets]
            plan += [("ND", r, s) for r, sets in LINEAR_RANGE_SETS.items() for s in sets]
            for layout, value_range, option_set in plan:
                for kind in option_set.kinds:
                    cases.append(linear_case(option_set, layout, kind, value_range, seed))
    if quick:
        cases = [case for case in cases if case.quick]
    cases = [with_derivatives(case, seed) for case in cases]
    ids = [case.id for case in cases]
    if len(set(ids)) != len(ids):  # a registry bug, not a user error
        raise AssertionError("duplicate case ids in the registry")
    return cases
