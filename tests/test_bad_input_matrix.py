"""The bad-input matrix: each applicable case of the table in ``docs/bad-input.md``, on every
backend, eagerly and traced.

One row per anchor case (S = class indices, D = class probabilities, B = sigmoid on logits,
P = binary on probabilities, C = categorical on probabilities; I = our information measures,
which have no anchor), mapped to the core function(s) it applies to, with the expected behaviour:

* ``Static(exc, *parts)``: a shape, dtype or option error. It raises ``exc`` with every one of
  ``parts`` in its message, eagerly *and under tracing* (the checks need no values).
* ``Invalid(*parts, nan_at=...)``: a value error (labels, probabilities, targets, weights out of
  range). Eagerly it raises ValueError naming the argument and the value; where values cannot be
  read (``validate=False``, ``jax.jit``, ``tf.function``, XLA, ``torch.compile``) the affected
  rows get a NaN loss and a gradient row holding NaN, and the other rows match the reference.
* ``Reference()``: the loss matches the float64 reference (``tests/reference.py``) evaluated on
  the dtype-rounded inputs, NaN and infinities included, within the tolerance table, and so
  does the gradient of ``sum(loss)`` (an analytic float64 gradient, or central differences of
  the reference).
* ``Exactly(loss, grad)``: values given in the row (contracts the reference does not model).

Modes: ``eager`` (the core function and ``xentropy.value_and_grad`` on numpy, array_api_strict,
torch, jax and tensorflow, in every dtype the backend has), ``novalidate`` (the same with
``validate=False``, which must behave as traced code), ``jax.jit`` (through
``xentropy.backends.jax.apply_op``), ``tf.function`` and ``tf.function(jit_compile=True)``
(through ``xentropy.backends.tensorflow.apply_op``), and ``torch.compile`` (through the torch
adapter's ``apply``). Compiling is slow on a small machine, so ``torch.compile`` runs a few
representative rows: with the ``aot_eager`` backend (dynamo tracing and AOT autograd, the part
that decides which checks run) and one graph with the default inductor backend (marked slow).
Traced functions are cached per (operator, present arrays, mode), so rows with the same operator
and signature share one trace.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import reference
from conftest import require_or_skip
from scipy.special import expit
from tolerances import assert_close

import xentropy
from xentropy import ops

# bad input makes NumPy warn (log of 0, inf - inf): expected here
pytestmark = [
    pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "tensorflow")
SIXTEEN_BIT = ("float16", "bfloat16")
# floating dtypes each backend is run with (jax without x64: no float64)
BACKEND_DTYPES = {
    "numpy": {"float16", "float32", "float64"},
    "array_api_strict": {"float32", "float64"},
    "torch": {"float16", "bfloat16", "float32", "float64"},
    "jax": {"float16", "bfloat16", "float32"},
    "tensorflow": {"float16", "bfloat16", "float32", "float64"},
}
NP_DTYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}
INF, NAN = math.inf, math.nan
SHORT = {
    "softmax_cross_entropy": "softmax",
    "softmax_focal_loss": "focal",
    "poly1_cross_entropy": "poly1",
    "categorical_cross_entropy": "categorical",
}

# --- the inputs the rows start from (the anchors' N = 4, C = 3 set-up) -------------------------

LOGITS = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.5], [1.5, -0.5, 3.0], [0.0, 0.0, 0.0]])
LABELS = np.array([0, 1, 2, 1])
SOFT = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])
ONE_HOT = np.eye(3)[LABELS]
BINARY = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
PROBS = np.array([[0.9, 0.2, 0.6], [0.3, 0.7, 0.5], [0.8, 0.4, 0.1], [0.5, 0.5, 0.5]])
CATEGORICAL = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
# the large-logit rows (S16, D13, B08): the target far ahead, far behind, and a tie
LARGE = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, -0.5], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
LARGE_SOFT = np.array([[0.6, 0.4, 0.0], [0.0, 0.2, 0.8], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])


def with_entry(array: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    out = np.array(array, dtype=np.float64 if array.dtype.kind == "f" else array.dtype)
    out[index] = value
    return out


# --- expectations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Static:
    """Raised in every mode: ``exc`` with each of ``parts`` in the message."""

    exc: type[Exception]
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Invalid:
    """ValueError eagerly; NaN at ``nan_at`` (loss, and the gradient row) where unchecked."""

    parts: tuple[str, ...]
    nan_at: tuple[Any, ...]  # per-example loss indices (a row index, or a tuple for elementwise)


@dataclass(frozen=True)
class Reference:
    """Loss and gradient match the float64 reference on the rounded inputs."""


@dataclass(frozen=True)
class Exactly:
    """Loss and gradient equal these values (within the dtype's tolerance)."""

    loss: Any
    grad: Any


@dataclass(frozen=True)
class Row:
    id: str
    fn: str  # a loss function of xentropy
    inputs: tuple[np.ndarray, ...]  # prediction first (for kl / cross_entropy: p, q)
    expect: Static | Invalid | Reference | Exactly
    options: dict = field(default_factory=dict)
    dtype: str = "float32"  # of the floating inputs
    input_dtypes: tuple[str | None, ...] = ()  # per input: override (None: the row's dtype)
    reference_fn: Callable[..., Any] | None = None  # replaces reference.<fn>
    grad_fn: Callable[..., Any] | None = None  # replaces the default reference gradient
    torch_compile: bool = False  # also run under torch.compile(backend="aot_eager")

    @property
    def prediction_position(self) -> int:
        return 1 if self.fn in ("kl_divergence", "cross_entropy") else 0

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def none(**options: Any) -> dict:
    return {"reduction": "none", **options}


def compute_dtype(dtype: str) -> str:
    return "float32" if dtype in SIXTEEN_BIT else dtype


def clipped_reference(name: str) -> Callable[..., Any]:
    """The reference with the clip bounds in the compute dtype, as the core applies them.

    ``clip(p, 1e-7, 1 - 1e-7)`` in float32 clips at float32(1 - 1e-7) = 1 - 1.19e-7, so
    ``-log(1 - p)`` at ``p = 1`` is 15.94, not float64's 16.12: the float64 reference with the
    float64 bounds would blame the core for the bounds' own rounding.
    """

    def ref(prediction, targets, *, dtype: str, epsilon: float | None = 1e-7, **options):
        if epsilon:
            cd = NP_DTYPES[compute_dtype(dtype)]
            low, high = float(cd(epsilon)), float(cd(1.0 - epsilon))
            prediction = np.clip(prediction, low, high)
        return getattr(reference, name)(prediction, targets, epsilon=None, **options)

    return ref


def clipped_grad(name: str) -> Callable[..., Any]:
    """d sum(loss) / d probs of the clipped probability losses: 0 where the clip is active."""

    def grad(prediction, targets, *, dtype: str, epsilon: float | None = 1e-7, **options):
        cd = NP_DTYPES[compute_dtype(dtype)]
        low, high = float(cd(epsilon)), float(cd(1.0 - epsilon))
        p = np.asarray(prediction, dtype=np.float64)
        active = (p < low) | (p > high)
        if name == "binary_cross_entropy":
            t = np.asarray(targets, dtype=np.float64)
            g = -t / np.where(active, 1.0, p) + (1.0 - t) / np.where(active, 0.5, 1.0 - p)
        else:
            a, _ = reference.target_weights(targets, p.shape[-1], sparse=np.ndim(targets) == 1)
            g = -a / np.where(active, 1.0, p)
        return np.where(active, 0.0, g)

    return grad


# --- the rows ----------------------------------------------------------------------------------


def _label_rows() -> list[Row]:
    rows = []
    for case, labels, bad_row, shown in (
        ("S02", [0, 1, 3, 1], 2, "3"),
        ("S03", [0, 1, 7, 1], 2, "7"),
        ("S04", [0, -1, 2, 1], 1, "-1"),
        ("S05", [0, -100, 2, 1], 1, "-100"),
    ):
        expect = Invalid(("targets", f"class index {shown}", "[0, 3)"), nan_at=(bad_row,))
        rows.append(
            Row(
                f"{case}-softmax",
                "softmax_cross_entropy",
                (LOGITS, np.array(labels)),
                expect,
                none(),
                torch_compile=case in ("S03", "S04"),
            )
        )
    bad = np.array([0, 1, 7, 1])
    expect = Invalid(("targets", "class index 7"), nan_at=(2,))
    rows += [
        Row("S03-focal", "softmax_focal_loss", (LOGITS, bad), expect, none()),
        Row("S03-poly1", "poly1_cross_entropy", (LOGITS, bad), expect, none()),
        Row("S03-categorical", "categorical_cross_entropy", (CATEGORICAL, bad), expect, none()),
    ]
    return rows


def _softmax_rows() -> list[Row]:
    sce = "softmax_cross_entropy"
    static_shape = ("targets", "(4, 3)", "never broadcast")
    rows = _label_rows()
    rows += [
        Row(
            "S05-ignore_index",
            sce,
            (LOGITS, np.array([0, -100, 2, 1])),
            Reference(),
            none(ignore_index=-100),
        ),
        Row(
            "S06-float-labels",
            sce,
            (LOGITS, LABELS.astype(np.float64)),
            Static(TypeError, ("targets", "integer dtype")),
            none(),
        ),
        Row(
            "S07-float-labels-1.5",
            sce,
            (LOGITS, np.array([0.0, 1.5, 2.0, 1.0])),
            Static(TypeError, ("targets", "integer dtype")),
            none(),
        ),
        Row(
            "S08-batch-mismatch",
            sce,
            (LOGITS, np.array([0, 1, 2, 1, 0])),
            Static(ValueError, ("(5,)", *static_shape)),
            none(),
            torch_compile=True,
        ),
        Row(
            "S09-labels-N1",
            sce,
            (LOGITS, LABELS[:, None]),
            Static(ValueError, ("(4, 1)", *static_shape)),
            none(),
        ),
        Row(
            "S10-labels-1",
            sce,
            (LOGITS, np.array([0])),
            Static(ValueError, ("(1,)", *static_shape)),
            none(),
        ),
        Row("S11-nan-logit", sce, (with_entry(LOGITS, (1, 0), NAN), LABELS), Reference(), none()),
        Row("S12-+inf-target", sce, (with_entry(LOGITS, (0, 0), INF), LABELS), Reference(), none()),
        Row(
            "S13--inf-non-target",
            sce,
            (with_entry(LOGITS, (0, 1), -INF), LABELS),
            Reference(),
            none(),
        ),
        Row(
            "S14--inf-target", sce, (with_entry(LOGITS, (0, 0), -INF), LABELS), Reference(), none()
        ),
        Row(
            "S15-row--inf",
            sce,
            (np.concatenate([np.full((1, 3), -INF), LOGITS[1:]]), LABELS),
            Reference(),
            none(),
        ),
        Row(
            "S17-empty-mean",
            sce,
            (np.zeros((0, 3)), np.zeros((0,), dtype=np.int64)),
            Exactly(NAN, np.zeros((0, 3))),
        ),
        Row(
            "S18-all-ignored-mean",
            sce,
            (LOGITS, np.full(4, -100)),
            Exactly(NAN, np.zeros((4, 3))),
            {"ignore_index": -100},
        ),
        Row(
            "S20-smoothing-1.5",
            sce,
            (LOGITS, LABELS),
            Static(ValueError, ("label_smoothing", "1.5")),
            none(label_smoothing=1.5),
        ),
        Row(
            "S21-smoothing--0.1",
            sce,
            (LOGITS, LABELS),
            Static(ValueError, ("label_smoothing", "-0.1")),
            none(label_smoothing=-0.1),
        ),
        Row(
            "S22-int32-logits",
            sce,
            (LOGITS.astype(np.int32), LABELS),
            Static(TypeError, ("logits", "int32")),
            none(),
        ),
        Row("S23-int32-labels", sce, (LOGITS, LABELS.astype(np.int32)), Reference(), none()),
        Row("S24-uint8-labels", sce, (LOGITS, LABELS.astype(np.uint8)), Reference(), none()),
    ]
    weight = np.array([-1.0, 1.0, 1.0])
    for fn, nan_at in (
        (sce, (0,)),  # only the example whose target carries the negative weight
        ("softmax_focal_loss", (0, 1, 2, 3)),  # one-hot x weight: 0 * NaN poisons every row
        ("poly1_cross_entropy", (0, 1, 2, 3)),
    ):
        rows.append(
            Row(
                f"S19-negative-class-weight-{SHORT[fn]}",
                fn,
                (LOGITS, LABELS),
                Invalid(("class_weight", "-1.0"), nan_at=nan_at),
                none(class_weight=weight),
            )
        )
    rows.append(
        Row(
            "S19-negative-alpha-focal",
            "softmax_focal_loss",
            (LOGITS, LABELS),
            Invalid(("alpha", "-0.5"), nan_at=(0, 1, 2, 3)),
            none(alpha=np.array([-0.5, 1.0, 1.0])),
        )
    )
    for dtype in ("float16", "bfloat16", "float32"):
        for scale in (1e4, 1e30):
            rows.append(
                Row(
                    f"S16-{dtype}-{scale:g}",
                    sce,
                    (LARGE * scale, LABELS),
                    Reference(),
                    none(),
                    dtype,
                )
            )
    return rows


def _dense_rows() -> list[Row]:
    sce = "softmax_cross_entropy"
    static_shape = ("targets", "(4, 3)", "never broadcast")
    negative = np.array([[-0.5, 1.5, 0.0], [0.5, -0.5, 1.0], SOFT[2], SOFT[3]])
    masked = with_entry(LOGITS, (2, 0), -INF)  # SOFT[2] puts no mass on class 0
    rows = [
        Row(
            "D02-class-mismatch",
            sce,
            (LOGITS, np.full((4, 5), 0.2)),
            Static(ValueError, ("(4, 5)", *static_shape)),
            none(),
        ),
        Row(
            "D03-batch-mismatch",
            sce,
            (LOGITS, np.full((5, 3), 1 / 3)),
            Static(ValueError, ("(5, 3)", *static_shape)),
            none(),
        ),
        Row(
            "D04-targets-N1",
            sce,
            (LOGITS, np.ones((4, 1))),
            Static(ValueError, ("(4, 1)", *static_shape)),
            none(),
        ),
        Row("D05-rows-sum-to-2", sce, (LOGITS, 2 * SOFT), Reference(), none()),
        Row("D07--inf-where-target-0", sce, (masked, SOFT), Reference(), none()),
        Row("D07-focal", "softmax_focal_loss", (masked, SOFT), Reference(), none()),
        Row("D07-poly1", "poly1_cross_entropy", (masked, SOFT), Reference(), none()),
        Row("D08-nan-logit", sce, (with_entry(LOGITS, (1, 2), NAN), SOFT), Reference(), none()),
        Row(
            "D09-smoothing-1.5",
            sce,
            (LOGITS, SOFT),
            Static(ValueError, ("label_smoothing", "1.5")),
            none(label_smoothing=1.5),
        ),
        Row("D10-bool-one-hot", sce, (LOGITS, ONE_HOT.astype(bool)), Reference(), none()),
        Row("D11-int64-one-hot", sce, (LOGITS, ONE_HOT.astype(np.int64)), Reference(), none()),
        Row(
            "D12-float64-targets",
            sce,
            (LOGITS, SOFT),
            Reference(),
            none(),
            input_dtypes=(None, "float64"),
        ),
        Row(
            "D17-empty-mean",
            sce,
            (np.zeros((0, 3)), np.zeros((0, 3))),
            Exactly(NAN, np.zeros((0, 3))),
        ),
    ]
    for fn, prediction in (
        (sce, LOGITS),
        ("softmax_focal_loss", LOGITS),
        ("poly1_cross_entropy", LOGITS),
        ("categorical_cross_entropy", CATEGORICAL),
    ):
        rows.append(
            Row(
                f"D06-negative-targets-{SHORT[fn]}",
                fn,
                (prediction, negative),
                Invalid(("targets", "-0.5"), nan_at=(0, 1)),
                none(),
                torch_compile=fn == sce,
            )
        )
    for dtype, scale in (("float16", 1e4), ("bfloat16", 1e30), ("float32", 1e30)):
        rows.append(
            Row(
                f"D13-{dtype}-{scale:g}",
                sce,
                (LARGE * scale, LARGE_SOFT),
                Reference(),
                none(),
                dtype,
            )
        )
    return rows


def _sigmoid_rows() -> list[Row]:
    sig = "sigmoid_cross_entropy"
    out_of_range = with_entry(with_entry(BINARY, (0, 1), 1.5), (2, 2), -0.5)
    rows = [
        Row(
            "B02-N-vs-N1",
            sig,
            (LOGITS[:, 0], BINARY[:, :1]),
            Static(ValueError, ("targets", "(4, 1)", "(4,)", "never broadcast")),
            none(),
        ),
        Row(
            "B03-N1-vs-N",
            sig,
            (LOGITS[:, :1], BINARY[:, 0]),
            Static(ValueError, ("targets", "(4,)", "(4, 1)", "never broadcast")),
            none(),
        ),
        Row(
            "B04-targets-outside-01",
            sig,
            (LOGITS, out_of_range),
            Invalid(("targets", "1.5"), nan_at=((0, 1), (2, 2))),
            none(),
            torch_compile=True,
        ),
        Row(
            "B04-focal",
            "sigmoid_focal_loss",
            (LOGITS, out_of_range),
            Invalid(("targets", "1.5"), nan_at=((0, 1), (2, 2))),
            none(),
        ),
        Row("B05-bool-targets", sig, (LOGITS, BINARY.astype(bool)), Reference(), none()),
        Row("B06-int64-targets", sig, (LOGITS, BINARY.astype(np.int64)), Reference(), none()),
        # softplus(-x) (1 - t) x at x = +-inf, t in {0, 1}: 0 * inf. NaN, as torch and optax
        # (the limit would be 0); the gradient is the exact limit sigmoid(x) - t.
        Row(
            "B07-inf-and-nan-logits",
            sig,
            (np.array([INF, -INF, INF, NAN]), np.array([1.0, 0.0, 0.0, 1.0])),
            Exactly([NAN, NAN, INF, NAN], [0.0, 0.0, 1.0, NAN]),
            none(),
        ),
        Row(
            "B09-smoothing-1.5",
            sig,
            (LOGITS, BINARY),
            Static(ValueError, ("label_smoothing", "1.5")),
            none(label_smoothing=1.5),
        ),
        Row(
            "B10-int32-logits",
            sig,
            (LOGITS.astype(np.int32), BINARY),
            Static(TypeError, ("logits", "int32")),
            none(),
        ),
        Row("B11-empty-mean", sig, (np.zeros((0,)), np.zeros((0,))), Exactly(NAN, np.zeros(0))),
        Row(
            "B12-negative-pos-weight",
            sig,
            (LOGITS, BINARY),
            Invalid(("pos_weight", "-1.0"), nan_at=tuple(np.ndindex(4, 3))),
            none(pos_weight=np.array(-1.0)),
        ),
        Row(
            "B12-negative-class-weight",
            sig,
            (LOGITS, BINARY),
            Invalid(("class_weight", "-1.0"), nan_at=((0, 0), (1, 0), (2, 0), (3, 0))),
            none(class_weight=np.array([-1.0, 1.0, 1.0])),
        ),
    ]
    for dtype, scale in (
        ("float32", 1e4),
        ("float16", 1e4),
        ("bfloat16", 1e30),
        ("float32", 1e30),
    ):
        rows.append(
            Row(f"B08-{dtype}-{scale:g}", sig, (LARGE * scale, BINARY), Reference(), none(), dtype)
        )
    return rows


def _probability_rows() -> list[Row]:
    bce, cce = "binary_cross_entropy", "categorical_cross_entropy"
    exact = np.array([0.0, 1.0, 0.0, 1.0])
    exact_targets = np.array([1.0, 0.0, 0.0, 1.0])
    bce_ref, bce_grad = clipped_reference(bce), clipped_grad(bce)
    cce_ref, cce_grad = clipped_reference(cce), clipped_grad(cce)
    saturated = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.0, 0.0, 1.0], [0.0, 0.5, 0.5]])
    return [
        Row(
            "P02-exact-0-1",
            bce,
            (exact, exact_targets),
            Reference(),
            none(),
            reference_fn=bce_ref,
            grad_fn=bce_grad,
        ),
        # torch's convention (no clip, logs floored at -100): the floored log has no slope
        Row(
            "P02-exact-0-1-torch",
            bce,
            (exact, exact_targets),
            Exactly([100.0, 100.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]),
            none(epsilon=None, log_floor=-100.0),
        ),
        Row(
            "P03-probs-outside-01",
            bce,
            (np.array([1.5, -0.1, 0.5, 0.5]), np.array([1.0, 0.0, 1.0, 0.0])),
            Invalid(("probs", "1.5"), nan_at=(0, 1)),
            none(),
            torch_compile=True,
        ),
        Row(
            "P04-nan-prob",
            bce,
            (np.array([0.5, NAN, 0.5, 0.5]), np.array([1.0, 0.0, 1.0, 0.0])),
            Invalid(("probs", "nan"), nan_at=(1,)),
            none(),
        ),
        Row(
            "P05-float16-1-1e-4",
            bce,
            (np.array([1.0 - 1e-4, 1e-4]), np.array([0.0, 1.0])),
            Reference(),
            none(),
            "float16",
            reference_fn=bce_ref,
            grad_fn=bce_grad,
        ),
        Row(
            "P06-targets-outside-01",
            bce,
            (PROBS, with_entry(BINARY, (1, 1), 1.5)),
            Invalid(("targets", "1.5"), nan_at=((1, 1),)),
            none(),
        ),
        Row(
            "C01-exact-1-on-target",
            cce,
            (saturated, LABELS),
            Reference(),
            none(),
            reference_fn=cce_ref,
            grad_fn=cce_grad,
        ),
        Row(
            "C02-rows-sum-to-2",
            cce,
            (np.minimum(2 * CATEGORICAL, 1.0), LABELS),
            Reference(),
            none(),
            reference_fn=cce_ref,
            grad_fn=cce_grad,
        ),
        Row(
            "C02-normalize",
            cce,
            (np.minimum(2 * CATEGORICAL, 1.0), LABELS),
            Reference(),
            none(normalize=True),
        ),
        Row(
            "C03-exact-0-on-target",
            cce,
            (saturated, np.array([0, 1, 2, 0])),
            Reference(),
            none(),
            reference_fn=cce_ref,
            grad_fn=cce_grad,
        ),
        Row(
            "C04-negative-prob",
            cce,
            (with_entry(CATEGORICAL, (1, 0), -0.1), LABELS),
            Invalid(("probs", "-0.1"), nan_at=(1,)),
            none(),
        ),
        Row(
            "S19-negative-class-weight-categorical",
            cce,
            (CATEGORICAL, LABELS),
            Invalid(("class_weight", "-1.0"), nan_at=(0, 1, 2, 3)),
            none(class_weight=np.array([-1.0, 1.0, 1.0])),
        ),
    ]


def _information_rows() -> list[Row]:
    p = CATEGORICAL
    q = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3], [0.25, 0.25, 0.5]])
    return [
        Row(
            "I01-q-outside-01",
            "cross_entropy",
            (p, with_entry(q, (1, 1), 1.5)),
            Invalid(("q", "1.5"), nan_at=(1,)),
        ),
        Row(
            "I02-p-negative",
            "kl_divergence",
            (with_entry(p, (2, 0), -0.1), q),
            Invalid(("p", "-0.1"), nan_at=(2,)),
        ),
        Row(
            "I03-p-above-1",
            "entropy",
            (with_entry(p, (0, 0), 1.25),),
            Invalid(("p", "1.25"), nan_at=(0,)),
        ),
    ]


ROWS = _softmax_rows() + _dense_rows() + _sigmoid_rows() + _probability_rows() + _information_rows()
BY_ID = {row.id: row for row in ROWS}
assert len(BY_ID) == len(ROWS), "row ids must be unique"


# --- backends ----------------------------------------------------------------------------------


def backend_module(name: str) -> Any:
    module = {"jax": "jax.numpy", "tensorflow": "tensorflow"}.get(name, name)
    return require_or_skip(name, module)


def floating_dtype(row: Row, position: int) -> str:
    override = row.input_dtypes[position] if position < len(row.input_dtypes) else None
    return override or row.dtype


def rounded_inputs(row: Row) -> tuple[np.ndarray, ...]:
    """The inputs as the core sees them: floats rounded to their dtype (then float64).

    For an ``Invalid`` row, class indices are clamped into ``[0, C)`` so that the reference can
    evaluate the rows that stay valid (the others are expected to be NaN).
    """
    out = []
    for i, a in enumerate(row.inputs):
        if a.dtype.kind == "f":
            a = a.astype(NP_DTYPES[floating_dtype(row, i)]).astype(np.float64)
        elif isinstance(row.expect, Invalid) and i == 1 and a.ndim == row.inputs[0].ndim - 1:
            a = np.clip(a, 0, row.inputs[0].shape[-1] - 1)
        out.append(a)
    return tuple(out)


def to_backend(name: str, mod: Any, array: np.ndarray, dtype: str | None = None) -> Any:
    """``array`` in backend ``name``; floats rounded to ``dtype`` in NumPy first (exactly)."""
    array = np.asarray(array)
    if dtype is None:
        if name == "torch":
            return mod.asarray(array)
        return mod.asarray(array) if name != "tensorflow" else mod.constant(array)
    rounded = array.astype(NP_DTYPES[dtype])
    if name in ("numpy", "array_api_strict", "jax"):
        return mod.asarray(rounded)
    carrier = rounded.astype(np.float32) if dtype == "bfloat16" else rounded
    if name == "torch":
        return mod.asarray(carrier).to(getattr(mod, dtype))
    return mod.cast(mod.constant(carrier), dtype)


def to_float64(x: Any) -> np.ndarray:
    module = type(x).__module__.partition(".")[0]
    if module == "torch":
        return x.detach().double().cpu().numpy()
    if module == "tensorflow":
        return np.asarray(x.numpy()).astype(np.float64)
    if module == "array_api_strict":
        return np.from_dlpack(x).astype(np.float64)
    return np.asarray(x).astype(np.float64)


def dtype_of(x: Any) -> str:
    name = getattr(x.dtype, "name", None)
    return name if isinstance(name, str) else str(x.dtype).rsplit(".", 1)[-1]


def needs_dtype(name: str, row: Row) -> bool:
    dtypes = {floating_dtype(row, i) for i, a in enumerate(row.inputs) if a.dtype.kind == "f"}
    dtypes |= {compute_dtype(row.dtype) for v in row.options.values() if isinstance(v, np.ndarray)}
    return dtypes <= BACKEND_DTYPES[name]


def backend_arrays(name: str, mod: Any, row: Row) -> tuple[list[Any], dict]:
    """The row's inputs and options in backend ``name`` (option arrays in the compute dtype)."""
    arrays = [
        to_backend(name, mod, a, floating_dtype(row, i) if a.dtype.kind == "f" else None)
        for i, a in enumerate(row.inputs)
    ]
    options = {
        k: to_backend(name, mod, v, compute_dtype(row.dtype)) if isinstance(v, np.ndarray) else v
        for k, v in row.options.items()
    }
    return arrays, options


# --- what each row should give -----------------------------------------------------------------


def reference_loss(row: Row) -> np.ndarray:
    inputs = rounded_inputs(row)
    options = {
        k: np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v
        for k, v in row.options.items()
    }
    with np.errstate(all="ignore"):
        if row.reference_fn is not None:
            return np.asarray(row.reference_fn(*inputs, dtype=row.dtype, **options))
        return np.asarray(getattr(reference, row.fn)(*inputs, **options))


def _finite_difference(row: Row, inputs: tuple[np.ndarray, ...], keep: np.ndarray) -> np.ndarray:
    """Central differences of the kept per-example reference losses (non-finite entries: 0)."""
    position = row.prediction_position
    x = inputs[position]
    finite = np.isfinite(x)

    def kept_loss(moved: np.ndarray) -> np.ndarray:
        args = list(inputs)
        args[position] = np.where(finite, moved, x)
        with np.errstate(all="ignore"):
            loss = np.asarray(getattr(reference, row.fn)(*args, **row.options))
        return np.where(keep, loss, 0.0)

    grad = reference.numerical_grad(kept_loss, np.where(finite, x, 0.0))
    return np.where(finite, grad, 0.0)


def reference_grad(row: Row, keep: np.ndarray) -> np.ndarray:
    """d sum(loss[keep]) / d prediction in float64."""
    inputs = rounded_inputs(row)
    options = dict(row.options)
    with np.errstate(all="ignore"):
        if row.grad_fn is not None:
            return row.grad_fn(*inputs, dtype=row.dtype, **options)
        if row.fn == "softmax_cross_entropy":
            grad = reference.softmax_cross_entropy_grad(*inputs, **options)
            return np.where(np.reshape(keep, (*keep.shape, 1)), grad, 0.0)
        if row.fn == "sigmoid_cross_entropy":
            x, t = inputs
            pw = options.get("pos_weight", 1.0)
            w = options.get("class_weight", 1.0)
            return np.where(keep, w * ((1.0 - t) * expit(x) - pw * t * expit(-x)), 0.0)
    return _finite_difference(row, inputs, keep)


def check_contract(row: Row, loss: Any, grad: Any, *, checked: bool) -> None:
    """The loss and gradient of ``row`` from any mode; ``checked``: values were validated."""
    prediction_dtype = floating_dtype(row, row.prediction_position)
    assert dtype_of(loss) == prediction_dtype, f"loss dtype {dtype_of(loss)}"
    assert dtype_of(grad) == prediction_dtype, f"gradient dtype {dtype_of(grad)}"
    loss, grad = to_float64(loss), to_float64(grad)
    shape = row.inputs[row.prediction_position].shape
    assert grad.shape == shape, f"gradient shape {grad.shape} != {shape}"
    expect = row.expect
    if isinstance(expect, Exactly):
        assert_close(loss, np.asarray(expect.loss, np.float64), row.dtype, msg="loss")
        assert_close(grad, np.asarray(expect.grad, np.float64), row.dtype, grad=True, msg="grad")
        return
    expected = reference_loss(row)
    keep = np.ones(expected.shape, dtype=bool)
    if isinstance(expect, Invalid):
        assert not checked, "a value error must raise where values are checked"
        for index in expect.nan_at:
            keep[index] = False
        assert np.isnan(loss[~keep]).all(), f"affected rows must be NaN: {loss}"
        expected = np.where(keep, expected, NAN)
    assert_close(loss, expected, row.dtype, msg="loss")
    # A row whose gradient is undefined must carry NaN; it need not be NaN throughout (TF's
    # fused softmax leaves the other entries of a row holding NaN or +inf finite, as TF does).
    expected_grad = reference_grad(row, keep)
    grad_rows = grad.reshape(*keep.shape, -1)
    expected_rows = expected_grad.reshape(*keep.shape, -1)
    must_be_nan = ~keep | np.isnan(expected_rows).any(axis=-1)
    is_nan = np.isnan(grad_rows).any(axis=-1)
    assert is_nan[must_be_nan].all(), f"gradient rows {np.argwhere(must_be_nan)} need NaN:\n{grad}"
    assert_close(
        np.where(must_be_nan[..., None], 0.0, grad_rows),
        np.where(must_be_nan[..., None], 0.0, expected_rows),
        row.dtype,
        grad=True,
        msg="gradient",
    )


def check_raises(row: Row, run: Callable[[], Any], *, checked: bool) -> bool:
    """Run ``run`` under the row's error expectation; True when it was an expected raise."""
    expect = row.expect
    if isinstance(expect, Static) or (isinstance(expect, Invalid) and checked):
        exc, parts = (
            (expect.exc, expect.parts)
            if isinstance(expect, Static)
            else (
                ValueError,
                expect.parts,
            )
        )
        with pytest.raises(exc) as info:
            run()
        message = str(info.value)
        missing = [p for p in parts if p not in message]
        assert not missing, f"{missing} not in the message: {message!r}"
        return True
    return False


# --- eager: the core functions -----------------------------------------------------------------


def run_core(name: str, row: Row, *, validate: bool) -> tuple[Any, Any]:
    mod = backend_module(name)
    arrays, options = backend_arrays(name, mod, row)
    fn = getattr(xentropy, row.fn)
    return xentropy.value_and_grad(fn)(*arrays, **options, validate=validate)


def _eager_params():
    for row in ROWS:
        for name in BACKENDS:
            marks = () if needs_dtype(name, row) else pytest.mark.skip(reason="dtype not there")
            yield pytest.param(name, row, id=f"{row.id}-{name}", marks=marks)


@pytest.mark.parametrize(("framework", "row"), list(_eager_params()))
def test_eager(framework, row):
    run = functools.partial(run_core, framework, row, validate=True)
    if not check_raises(row, run, checked=True):
        check_contract(row, *run(), checked=True)


@pytest.mark.parametrize(
    ("framework", "row"),
    [p for p in _eager_params() if isinstance(p.values[1].expect, Invalid)],
)
def test_eager_without_validation_is_nan(framework, row):
    """``validate=False`` skips the value checks as tracing does: NaN rows, never a number."""
    check_contract(row, *run_core(framework, row, validate=False), checked=False)


# --- traced: the operators behind the functions, through each adapter ---------------------------


def operator_for(row: Row, arrays: list[Any], options: dict) -> tuple[Any, tuple[Any, ...]]:
    """The core operator of ``row.fn`` and the arrays its ``forward`` takes."""
    options = dict(options)
    reduction = options.pop("reduction", "mean" if row.fn not in INFORMATION else "none")
    prediction, *rest = arrays
    if row.fn in INFORMATION:
        op = ops.InformationMeasure(measure=row.fn, reduction=reduction, **options)
        return op, tuple(arrays)
    targets = rest[0]
    if row.fn == "softmax_cross_entropy":
        weight = options.pop("class_weight", None)
        return ops.SoftmaxCrossEntropy(reduction=reduction, **options), (
            prediction,
            targets,
            weight,
        )
    if row.fn == "categorical_cross_entropy":
        weight = options.pop("class_weight", None)
        op = ops.CategoricalCrossEntropy(reduction=reduction, **options)
        return op, (prediction, targets, weight)
    if row.fn == "softmax_focal_loss":
        alpha = options.pop("alpha", None)
        weight = options.pop("class_weight", None)
        op = ops.SoftmaxFocalLoss(reduction=reduction, **options)
        return op, (prediction, targets, alpha, weight)
    if row.fn == "poly1_cross_entropy":
        weight = options.pop("class_weight", None)
        return ops.Poly1CrossEntropy(reduction=reduction, **options), (prediction, targets, weight)
    if row.fn == "sigmoid_cross_entropy":
        pos_weight = options.pop("pos_weight", None)
        weight = options.pop("class_weight", None)
        op = ops.SigmoidCrossEntropy(reduction=reduction, **options)
        return op, (prediction, targets, pos_weight, weight)
    if row.fn == "binary_cross_entropy":
        weight = options.pop("class_weight", None)
        return ops.BinaryCrossEntropy(reduction=reduction, **options), (prediction, targets, weight)
    if row.fn == "sigmoid_focal_loss":
        return ops.SigmoidFocalLoss(reduction=reduction, **options), (prediction, targets)
    raise AssertionError(row.fn)


INFORMATION = ("entropy", "kl_divergence", "cross_entropy")


def traced_row(name: str, row: Row, run: Callable[[Any, int, tuple[Any, ...]], Any]) -> None:
    mod = backend_module(name)
    arrays, options = backend_arrays(name, mod, row)
    op, op_arrays = operator_for(row, arrays, options)
    position = ops.op_prediction_position(op, len(op_arrays))

    def go():
        return run(op, position, op_arrays)

    if not check_raises(row, go, checked=False):
        check_contract(row, *go(), checked=False)


def _traced_params(backend: str, predicate: Callable[[Row], bool] = lambda row: True):
    for row in ROWS:
        if predicate(row):
            marks = () if needs_dtype(backend, row) else pytest.mark.skip(reason="no such dtype")
            yield pytest.param(row, id=row.id, marks=marks)


# jax.jit ------------------------------------------------------------------------------------------


@functools.cache
def _jax_loss_and_grad() -> Callable[..., Any]:
    jax = require_or_skip("jax")
    jnp = require_or_skip("jax", "jax.numpy")
    xjax = require_or_skip("jax", "xentropy.backends.jax")

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def loss_and_grad(op, position, *arrays):
        def loss_of(prediction):
            full = list(arrays)
            full[position] = prediction
            return xjax.apply_op(op, *full)

        loss, vjp = jax.vjp(loss_of, arrays[position])
        (grad,) = vjp(jnp.ones_like(loss))
        return loss, grad

    return loss_and_grad


@pytest.mark.parametrize("row", list(_traced_params("jax")))
def test_jax_jit(row):
    loss_and_grad = _jax_loss_and_grad()
    traced_row("jax", row, lambda op, position, arrays: loss_and_grad(op, position, *arrays))


# tf.function and XLA -----------------------------------------------------------------------------


@functools.cache
def _tf_function(op: Any, position: int, present: tuple[int, ...], size: int, jit: bool):
    """One ``tf.function`` per operator and array layout (TF retraces per new signature)."""
    tf = require_or_skip("tensorflow")
    xtf = require_or_skip("tensorflow", "xentropy.backends.tensorflow")

    @tf.function(jit_compile=jit, autograph=False)
    def loss_and_grad(*given):
        full = [None] * size
        for i, t in zip(present, given, strict=True):
            full[i] = t
        with tf.GradientTape() as tape:
            tape.watch(full[position])
            loss = xtf.apply_op(op, *full)
        return loss, tape.gradient(loss, full[position])

    return loss_and_grad


def _run_tf(jit: bool) -> Callable[..., Any]:
    def run(op, position, arrays):
        present = tuple(i for i, a in enumerate(arrays) if a is not None)
        fn = _tf_function(op, position, present, len(arrays), jit)
        return fn(*(arrays[i] for i in present))

    return run


@pytest.mark.parametrize("jit", [False, True], ids=["tf.function", "xla"])
@pytest.mark.parametrize("row", list(_traced_params("tensorflow")))
def test_tf_function(row, jit):
    traced_row("tensorflow", row, _run_tf(jit))


# torch.compile -----------------------------------------------------------------------------------


@functools.cache
def _torch_compiled(op: Any, size: int, backend: str) -> Callable[..., Any]:
    torch = require_or_skip("torch")
    autograd = require_or_skip("torch", "xentropy.backends.torch._autograd")
    names = tuple(f"array{i}" for i in range(size))
    return torch.compile(functools.partial(autograd.apply, op, names), backend=backend)


def _run_torch(backend: str) -> Callable[..., Any]:
    torch = require_or_skip("torch")

    def run(op, position, arrays):
        arrays = list(arrays)
        prediction = arrays[position]
        if prediction.is_floating_point():
            arrays[position] = prediction = prediction.detach().requires_grad_(True)
        loss = _torch_compiled(op, len(arrays), backend)(*arrays)
        (grad,) = torch.autograd.grad(loss, prediction, torch.ones_like(loss))
        return loss, grad

    return run


@pytest.mark.parametrize("row", list(_traced_params("torch", lambda row: row.torch_compile)))
def test_torch_compile(row):
    traced_row("torch", row, _run_torch("aot_eager"))


@pytest.mark.slow
@pytest.mark.parametrize("row", [BY_ID["S03-softmax"].param(), BY_ID["S04-softmax"].param()])
def test_torch_compile_inductor(row):
    """One inductor graph (S04 reuses S03's): its fusions must keep the NaN rows."""
    traced_row("torch", row, _run_torch("inductor"))


# --- the decisions of the brief, stated once more as plain assertions ---------------------------


def test_every_anchor_case_is_mapped():
    """Each anchor id of the bad-input table has a row (S25 lives in ``test_precision.py``;
    the baselines S01, D01, B01, P01 are the unmodified inputs of the rows)."""
    applicable = (
        [f"S{i:02d}" for i in range(2, 25)]
        + [f"D{i:02d}" for i in range(2, 14)]
        + [f"B{i:02d}" for i in range(2, 13)]
        + [f"P{i:02d}" for i in range(2, 7)]
        + [f"C{i:02d}" for i in range(1, 5)]
    )
    prefixes = {row.id.split("-")[0] for row in ROWS}
    assert [case for case in applicable if case not in prefixes] == []
