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

Per-class arrays hold numbers exact in every dtype (bfloat16 included), so rounding the inputs
never changes them.

Derivatives beyond the prediction's gradient (the frameworks differentiate these, the matrix checks
them on every backend with autodiff):

* ``Case.target_grad_of`` names the floating inputs other than the prediction: probability, soft
  or binary ``targets``, and ``p`` of ``kl_divergence`` and ``cross_entropy``. Class indices and
  bool/int binary targets have no derivative and no such cells.
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
)
SOFTMAX_FAMILY = VARIANTS[:4]
ELEMENTWISE_FAMILY = VARIANTS[4:7]
INFORMATION_MEASURES = VARIANTS[7:10]

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
        default = "none" if self.variant in INFORMATION_MEASURES else "mean"
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
    "softmax_cross_entropy": [],
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

LINEAR_ALL = {
    "chunk_size": 3,
    "softcap": 5.0,
    "z_loss": 1e-2,
    "ignore_index": 2,
    "label_smoothing": 0.1,
}
LINEAR_SETS = [
    OptionSet("plain", {}, SPARSE, quick=True),
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
LINEAR_LAYOUT_SETS = {"NdD": _sets(SPARSE, PLAIN, ("bias+all", {"bias": True, **LINEAR_ALL}))}
LINEAR_RANGE_SETS = {
    "extreme": _sets(
        SPARSE, PLAIN, ("softcap=5", {"softcap": 5.0}), ("bias+all", {"bias": True, **LINEAR_ALL})
    )
}


# the option sets (layout NC / ND, normal range) with Hessian-vector-product cells: the first of
# each variant exercises its options in the core; a second one is what the dialects can spell
# (torch, optax, tf.nn and Keras have no class weights or label smoothing in common)
SECOND_ORDER_SETS: dict[str, tuple[str, ...]] = {
    "softmax_cross_entropy": (WEIGHT_SMOOTHING[0], "plain"),
    "categorical_cross_entropy": ("normalize+class_weight+none", "normalize"),
    "softmax_focal_loss": ("gamma=1.5+alpha=0.25",),
    "poly1_cross_entropy": ("epsilon=3+class_weight", "plain"),
    "sigmoid_cross_entropy": (ALL_WEIGHTS_SMOOTHING[0], "plain"),
    "binary_cross_entropy": ("class_weight+label_smoothing=0.1+none", "torch"),
    "sigmoid_focal_loss": ("gamma=1.5+alpha=0.75",),
    "entropy": ("mean",),
    "kl_divergence": ("mean",),
    "cross_entropy": ("mean",),
    "linear_cross_entropy": ("bias+all",),
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


def _array_options(options: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {
        k: np.asarray(v, dtype=np.float64) for k, v in options.items() if isinstance(v, np.ndarray)
    }
    rest = {k: v for k, v in options.items() if not isinstance(v, np.ndarray)}
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
    arrays, options = _array_options(option_set.options)
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
    arrays, options = _array_options(option_set.options)
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


def linear_case(option_set: OptionSet, layout: str, value_range: str, seed: int) -> Case:
    """A case of ``linear_cross_entropy``: gradients of hidden, weight (and bias)."""
    shape, _ = LAYOUTS[layout]
    key = f"linear_cross_entropy/{layout}/sparse/{value_range}/{option_set.name}"
    rng = case_rng(seed, key)
    scale = 30.0 if value_range == "extreme" else 1.0
    hidden = rng.normal(scale=scale, size=shape)
    weight = rng.normal(scale=0.5, size=(VOCABULARY, shape[-1]))
    targets = rng.integers(0, VOCABULARY, size=shape[:-1])
    options = dict(option_set.options)
    ignore = options.get("ignore_index")
    if ignore is not None:
        flat = targets.reshape(-1)
        flat[rng.random(flat.size) < 0.3] = ignore
        flat[0] = ignore
        flat[-1] = (ignore + 1) % VOCABULARY
    arrays = {"hidden": hidden, "weight": weight, "targets": targets}
    grad_of: tuple[str, ...] = ("hidden", "weight")
    if options.pop("bias", False):
        arrays["bias"] = rng.normal(size=(VOCABULARY,))
        grad_of = (*grad_of, "bias")
    return Case(
        variant="linear_cross_entropy",
        option_set=option_set.name,
        layout=layout,
        target_kind="sparse",
        value_range=value_range,
        arguments=("hidden", "weight", "targets"),
        arrays=arrays,
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
    for layout, sets in SOFTMAX_LAYOUT_SETS.items():
        for option_set in sets:
            yield layout, "normal", option_set
    ranges = (
        CATEGORICAL_RANGE_SETS if variant == "categorical_cross_entropy" else SOFTMAX_RANGE_SETS
    )
    for value_range, sets in ranges.items():
        for option_set in sets:
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
        else:
            plan = [("ND", "normal", s) for s in LINEAR_SETS]
            plan += [(lay, "normal", s) for lay, sets in LINEAR_LAYOUT_SETS.items() for s in sets]
            plan += [("ND", r, s) for r, sets in LINEAR_RANGE_SETS.items() for s in sets]
            for layout, value_range, option_set in plan:
                cases.append(linear_case(option_set, layout, value_range, seed))
    if quick:
        cases = [case for case in cases if case.quick]
    cases = [with_derivatives(case, seed) for case in cases]
    ids = [case.id for case in cases]
    if len(set(ids)) != len(ids):  # a registry bug, not a user error
        raise AssertionError("duplicate case ids in the registry")
    return cases
