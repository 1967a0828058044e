"""Checks of ``xentropy.backends.keras`` on one Keras backend, shared by the test module.

Keras picks its backend once, at import (``KERAS_BACKEND``), so the checks for a backend other
than the one the test process loaded run here, in a subprocess::

    KERAS_BACKEND=jax python tests/keras_fit_script.py OUT.json

writes a JSON report with three parts:

* ``parity``: every case of :data:`CASES` against the ``keras.losses`` native on this backend:
  the largest error of the per-example losses, of the reduced loss and of the vector-Jacobian
  product with a random cotangent (see :func:`compare_case`);
* ``fit``: for each of our five classes, a small model trained with ``model.fit`` (the loss
  before and after), the number of calls of the core operator's analytic backward during
  ``fit`` (the proof that autodiff used it), and the ``model.save`` / ``keras.models.load_model``
  round trip (class and config of the loaded loss, largest prediction difference);
* ``out_of_range``: a class index equal to the number of classes (anchor S02), ours eagerly,
  ours traced, and Keras's native.

Importing this module imports no framework: the test module reads :data:`CASES` and runs
:func:`compare_case` in its own process on the backend it loaded.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("jax", "tensorflow", "torch")
# float32 parity: |ours - keras| <= ATOL + RTOL * |keras|, values and gradients alike
RTOL, ATOL = 1e-5, 1e-6

Inputs = tuple[np.ndarray, np.ndarray]


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Case:
    """One option set of one class, with the inputs it is compared on.

    Attributes:
        loss: the class name (``keras.losses.<loss>`` and ``xentropy.backends.keras.<loss>``).
        options: constructor arguments (other than ``reduction``).
        inputs: ``"<kind>:<shape>"`` naming the generator in :func:`make_inputs`.
        backends: the Keras backends whose native loss computes the same thing (others skip).
        note: why some backends are left out.
    """

    loss: str
    options: dict[str, Any]
    inputs: str
    backends: tuple[str, ...] = BACKENDS
    note: str = ""

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options.items()) or "defaults"
        return f"{self.loss}[{opts}]-{self.inputs}"


def make_inputs(spec: str, key: str) -> Inputs:
    """``(y_true, y_pred)`` in float32 (labels in int64) for an input spec of :class:`Case`."""
    rng = _rng(key)
    kind, _, shape_text = spec.partition(":")
    shape = tuple(int(d) for d in shape_text.split("x"))
    axis = 1 if kind.endswith("-axis1") else -1
    kind = kind.removesuffix("-axis1")
    num_classes = shape[axis]
    batch = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]

    def distributions() -> np.ndarray:
        return _softmax(rng.normal(size=shape), axis=axis)

    def labels(low: int = 0) -> np.ndarray:
        return rng.integers(low, num_classes, size=batch)

    y_true: np.ndarray
    if kind == "binary-logits":
        y_pred, y_true = rng.normal(scale=2.0, size=shape), (rng.random(shape) < 0.5) * 1.0
    elif kind == "binary-logits-flat-targets":  # y_pred (N, 1), y_true (N,): B03
        y_pred, y_true = rng.normal(scale=2.0, size=shape), (rng.random(shape[0]) < 0.5) * 1.0
    elif kind == "binary-logits-soft":
        y_pred, y_true = rng.normal(scale=2.0, size=shape), rng.random(shape)
    elif kind == "binary-probs":
        y_pred, y_true = (
            _sigmoid(rng.normal(scale=2.0, size=shape)),
            (rng.random(shape) < 0.5) * 1.0,
        )
    elif kind == "binary-probs-soft":
        y_pred, y_true = _sigmoid(rng.normal(scale=2.0, size=shape)), rng.random(shape)
    elif kind == "binary-probs-saturated":  # exact 0 and 1, and values inside the clip
        y_pred = _sigmoid(rng.normal(scale=2.0, size=shape))
        y_pred.reshape(-1)[:4] = [0.0, 1.0, 1e-9, 1.0 - 1e-9]
        y_true = (rng.random(shape) < 0.5) * 1.0
        y_true.reshape(-1)[:4] = [1.0, 0.0, 1.0, 0.0]
    elif kind == "cat-logits":
        y_pred, y_true = rng.normal(scale=2.0, size=shape), distributions()
    elif kind == "cat-logits-onehot":
        y_pred = rng.normal(scale=2.0, size=shape)
        y_true = np.moveaxis(np.eye(num_classes)[labels()], -1, axis)
    elif kind == "cat-probs":
        y_pred, y_true = distributions(), distributions()
    elif kind == "cat-probs-onehot":
        y_pred = distributions()
        y_true = np.moveaxis(np.eye(num_classes)[labels()], -1, axis)
    elif kind == "cat-probs-unnormalised":  # rows summing to 0.3 .. 1
        scale = np.expand_dims(rng.uniform(0.3, 1.0, size=batch), axis)
        y_pred, y_true = distributions() * scale, distributions()
    elif kind == "cat-probs-saturated":  # exact zeros (on and off the target) and a one-hot row
        y_pred = distributions()
        y_pred[0] = np.eye(num_classes)[0]
        y_pred[1, 2] = 0.0
        y_pred[1] /= y_pred[1].sum()
        y_true = np.eye(num_classes)[labels()]
        y_true[0], y_true[1] = np.eye(num_classes)[1], np.eye(num_classes)[2]
    elif kind == "sparse-logits":
        y_pred, y_true = rng.normal(scale=2.0, size=shape), labels()
    elif kind == "sparse-logits-column":  # labels of shape (N, 1)
        y_pred, y_true = rng.normal(scale=2.0, size=shape), labels()[..., None]
    elif kind == "sparse-logits-ignore":  # some labels are -1 (and ignore_class=1 cases)
        y_pred, y_true = rng.normal(scale=2.0, size=shape), labels(low=-1)
        y_true.reshape(-1)[:2] = [-1, 1]
    elif kind == "sparse-logits-has1":  # labels in range, some of them 1
        y_pred, y_true = rng.normal(scale=2.0, size=shape), labels()
        y_true.reshape(-1)[:2] = [1, 1]
    elif kind == "sparse-probs":
        y_pred, y_true = distributions(), labels()
    elif kind == "sparse-probs-unnormalised":
        scale = np.expand_dims(rng.uniform(0.3, 1.0, size=batch), axis)
        y_pred, y_true = distributions() * scale, labels()
    elif kind == "sparse-probs-ignore":
        y_pred, y_true = distributions(), labels(low=-1)
        y_true.reshape(-1)[:2] = [-1, 1]
    elif kind == "sparse-probs-saturated":  # a one-hot row, and exact zeros off the target
        y_pred = distributions()
        y_pred[0] = np.eye(num_classes)[0]
        y_pred[1] = 0.0
        y_pred[1, :2] = 0.5
        y_true = labels()
        y_true[:2] = [1, 0]
    else:
        raise ValueError(f"unknown input kind {spec!r}")
    y_true = y_true.astype(np.int64 if y_true.dtype.kind == "i" else np.float32)
    return y_true, y_pred.astype(np.float32)


_TF_CLIPS_THEN_NORMALISES = (
    "Keras's TensorFlow backend clips the probabilities before normalising them (JAX and "
    "PyTorch normalise first, as the core does), which differs where the clip is active"
)

_LAST_AXIS_ONLY = "Keras's TensorFlow and JAX backends support the class axis -1 only"

CASES: tuple[Case, ...] = (
    # BinaryCrossentropy
    Case("BinaryCrossentropy", {"from_logits": True}, "binary-logits:6x5"),
    Case(
        "BinaryCrossentropy",
        {"from_logits": True, "label_smoothing": 0.2},
        "binary-logits-soft:6x5",
    ),
    Case("BinaryCrossentropy", {"from_logits": True, "axis": 1}, "binary-logits:3x4x5"),
    Case("BinaryCrossentropy", {"from_logits": True}, "binary-logits:8"),
    Case("BinaryCrossentropy", {"from_logits": True}, "binary-logits-flat-targets:6x1"),
    Case("BinaryCrossentropy", {}, "binary-probs:6x5"),
    Case("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary-probs-soft:6x5"),
    Case("BinaryCrossentropy", {}, "binary-probs-saturated:6x5"),
    Case("BinaryCrossentropy", {"axis": 1}, "binary-probs:3x4x5"),
    # CategoricalCrossentropy
    Case("CategoricalCrossentropy", {"from_logits": True}, "cat-logits:6x5"),
    Case(
        "CategoricalCrossentropy",
        {"from_logits": True, "label_smoothing": 0.1},
        "cat-logits-onehot:6x5",
    ),
    Case("CategoricalCrossentropy", {"from_logits": True, "axis": 1}, "cat-logits-axis1:3x5x4"),
    Case("CategoricalCrossentropy", {}, "cat-probs:6x5"),
    Case("CategoricalCrossentropy", {"label_smoothing": 0.2}, "cat-probs-onehot:6x5"),
    Case("CategoricalCrossentropy", {}, "cat-probs-unnormalised:6x5"),
    Case("CategoricalCrossentropy", {}, "cat-probs-saturated:6x5"),
    Case("CategoricalCrossentropy", {"axis": 1}, "cat-probs-axis1:3x5x4"),
    # SparseCategoricalCrossentropy
    Case("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse-logits:6x5"),
    Case("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse-logits-column:6x5"),
    Case("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse-logits:2x3x5"),
    Case(
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "ignore_class": -1},
        "sparse-logits-ignore:6x5",
    ),
    Case(
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "ignore_class": 1},
        "sparse-logits-has1:6x5",
    ),
    Case(
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "axis": 1},
        "sparse-logits-axis1:3x5x4",
        backends=("torch",),
        note=_LAST_AXIS_ONLY,
    ),
    Case("SparseCategoricalCrossentropy", {}, "sparse-probs:6x5"),
    Case("SparseCategoricalCrossentropy", {}, "sparse-probs-unnormalised:6x5"),
    Case("SparseCategoricalCrossentropy", {"ignore_class": -1}, "sparse-probs-ignore:6x5"),
    Case(
        "SparseCategoricalCrossentropy",
        {},
        "sparse-probs-saturated:6x5",
        backends=("jax", "torch"),
        note=_TF_CLIPS_THEN_NORMALISES,
    ),
    Case(
        "SparseCategoricalCrossentropy",
        {"axis": 1},
        "sparse-probs-axis1:3x5x4",
        backends=("torch",),
        note=_LAST_AXIS_ONLY,
    ),
    # BinaryFocalCrossentropy
    Case("BinaryFocalCrossentropy", {"from_logits": True}, "binary-logits:6x5"),
    Case(
        "BinaryFocalCrossentropy",
        {"from_logits": True, "apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5},
        "binary-logits-soft:6x5",
    ),
    Case(
        "BinaryFocalCrossentropy",
        {"from_logits": True, "gamma": 0.0, "label_smoothing": 0.1},
        "binary-logits:6x5",
    ),
    Case(
        "BinaryFocalCrossentropy",
        {"from_logits": True, "gamma": 3.0, "axis": 1},
        "binary-logits:3x4x5",
    ),
    Case("BinaryFocalCrossentropy", {}, "binary-probs:6x5"),
    Case(
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "gamma": 0.5, "label_smoothing": 0.2},
        "binary-probs-soft:6x5",
    ),
    Case("BinaryFocalCrossentropy", {"apply_class_balancing": True}, "binary-probs-saturated:6x5"),
    # CategoricalFocalCrossentropy
    Case("CategoricalFocalCrossentropy", {"from_logits": True}, "cat-logits:6x5"),
    Case(
        "CategoricalFocalCrossentropy",
        {"from_logits": True, "alpha": [0.1, 0.2, 0.3, 0.4, 0.5], "gamma": 1.0},
        "cat-logits-onehot:6x5",
    ),
    Case(
        "CategoricalFocalCrossentropy",
        {"from_logits": True, "alpha": 1.0, "gamma": 0.0, "label_smoothing": 0.1},
        "cat-logits:6x5",
    ),
    Case(
        "CategoricalFocalCrossentropy", {"from_logits": True, "axis": 1}, "cat-logits-axis1:3x5x4"
    ),
    Case("CategoricalFocalCrossentropy", {}, "cat-probs:6x5"),
    Case(
        "CategoricalFocalCrossentropy",
        {"alpha": [0.5, 1.0, 0.25, 2.0, 1.0], "gamma": 0.5},
        "cat-probs-onehot:6x5",
    ),
    Case(
        "CategoricalFocalCrossentropy",
        {"label_smoothing": 0.2, "gamma": 3.0},
        "cat-probs-unnormalised:6x5",
    ),
    Case("CategoricalFocalCrossentropy", {}, "cat-probs-saturated:6x5"),
)


# --- running a case on the loaded Keras backend ----------------------------------------------


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def value_and_vjp(
    fn: Callable[[Any], Any], x: np.ndarray, cotangent: Callable[[tuple[int, ...]], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``fn(x)`` and its vector-Jacobian product with ``cotangent(shape of fn(x))``.

    The vjp is the Keras backend's own autodiff (``tf.GradientTape``, ``jax.vjp``,
    ``Tensor.backward``) of whatever ``fn`` computes: for our losses it runs the core's
    registered backward.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tx = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(tx)
            value = fn(tx)
        upstream = tf.convert_to_tensor(cotangent(tuple(value.shape)), dtype=value.dtype)
        return to_numpy(value), to_numpy(tape.gradient(value, tx, output_gradients=upstream))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        value, vjp = jax.vjp(fn, jnp.asarray(x))
        (grad,) = vjp(jnp.asarray(cotangent(value.shape), dtype=value.dtype))
        return to_numpy(value), to_numpy(grad)
    if backend == "torch":
        tx = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_(True)
        value = fn(tx)
        value.backward(keras.ops.convert_to_tensor(cotangent(tuple(value.shape)), value.dtype))
        return to_numpy(value), to_numpy(tx.grad)
    raise NotImplementedError(backend)


def max_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest ``|actual - expected| / (ATOL + RTOL |expected|)``: at most 1 passes.

    NaN where one side has NaN or an infinity the other lacks, so that it never passes.
    """
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape {a.shape} != {e.shape}")
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    if a.size == 0 or np.all(same):
        return 0.0
    ratio = np.abs(a - e)[~same] / (ATOL + RTOL * np.abs(e[~same]))
    return float(np.max(ratio)) if np.all(np.isfinite(ratio)) else float("nan")


def compare_case(case: Case) -> dict[str, float]:
    """Our class against ``keras.losses`` on the loaded backend; errors as in :func:`max_error`.

    ``values``: per-example losses (``reduction=None``); ``reduced``: the default reduction
    (``sum_over_batch_size``, which uses the mask of ``ignore_class``); ``vjp``: the gradient
    of ``sum(cotangent * losses)`` with respect to ``y_pred``; ``weighted[<reduction>]``: each
    reduction of :data:`WEIGHTED_REDUCTIONS` with :func:`sample_weights`; ``weighted vjp``: the
    gradient of the sample-weighted ``mean_with_sample_weight``.
    """
    import keras
    import xentropy.backends.keras as ours

    y_true, y_pred = make_inputs(case.inputs, case.id)

    def cotangent(shape: tuple[int, ...]) -> np.ndarray:
        return _rng("cotangent" + case.id).uniform(0.5, 1.5, size=shape)

    results: dict[str, dict[str, np.ndarray]] = {}
    weights: np.ndarray | None = None
    for side, module in (("ours", ours), ("keras", keras.losses)):
        cls = getattr(module, case.loss)
        per_example, reduced = cls(**case.options, reduction=None), cls(**case.options)
        values, vjp = value_and_vjp(lambda p, f=per_example: f(y_true, p), y_pred, cotangent)
        total = to_numpy(reduced(y_true, keras.ops.convert_to_tensor(y_pred)))
        results[side] = {"values": values, "reduced": total, "vjp": vjp}
        if weights is None:
            weights = sample_weights(values.shape, case.id)
        for reduction in WEIGHTED_REDUCTIONS:
            weighted = cls(**case.options, reduction=reduction)
            results[side][f"weighted[{reduction}]"] = to_numpy(
                weighted(y_true, keras.ops.convert_to_tensor(y_pred), sample_weight=weights)
            )
        weighted_mean = cls(**case.options, reduction="mean_with_sample_weight")
        _, results[side]["weighted vjp"] = value_and_vjp(
            lambda p, f=weighted_mean, w=weights: f(y_true, p, sample_weight=w), y_pred, cotangent
        )
    return {
        key: max_error(results["ours"][key], results["keras"][key]) for key in results["ours"]
    }


# Keras's reductions with sample weights (each one the core's weighted reduction in ours)
WEIGHTED_REDUCTIONS = ("sum_over_batch_size", "mean_with_sample_weight", "sum", None)


def sample_weights(shape: tuple[int, ...], key: str) -> np.ndarray:
    """Per-example weights in ``[0, 2)`` for losses of ``shape``, the first one 0."""
    weights = _rng("sample weights" + key).uniform(0.0, 2.0, size=shape).astype(np.float32)
    weights.reshape(-1)[:1] = 0.0
    return weights


# --- model.fit, save and load -----------------------------------------------------------------

# class -> (constructor options, activation of the output layer, target kind); every class
# trains once, with the prediction form (logits or probabilities) alternating between them
FIT_SPECS: dict[str, tuple[dict[str, Any], str | None, str]] = {
    "BinaryCrossentropy": ({"from_logits": True, "label_smoothing": 0.1}, None, "multi-label"),
    "CategoricalCrossentropy": ({}, "softmax", "one-hot"),
    "SparseCategoricalCrossentropy": ({"from_logits": True, "ignore_class": -1}, None, "index"),
    "BinaryFocalCrossentropy": ({"apply_class_balancing": True}, "sigmoid", "multi-label"),
    "CategoricalFocalCrossentropy": ({"alpha": [0.25, 0.5, 0.75, 1.0]}, "softmax", "one-hot"),
}
# the core operators each class may run (their backward is counted during fit)
OPERATORS = (
    "SigmoidCrossEntropy",
    "BinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "CategoricalCrossEntropy",
    "SigmoidFocalLoss",
    "BinaryFocalLoss",
    "SoftmaxFocalLoss",
    "CategoricalFocalLoss",
)


def count_backward_calls() -> dict[str, int]:
    """Wrap each core operator's ``backward`` so that its calls (or traces) are counted."""
    from xentropy import ops

    counts = dict.fromkeys(OPERATORS, 0)
    for name in OPERATORS:
        cls = getattr(ops, name)
        original = cls.backward

        def counted(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            counts[_name] += 1
            return _original(self, *args)

        cls.backward = counted
    return counts


def fit_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = _rng("fit")
    x = rng.normal(size=(96, 6)).astype(np.float32)
    scores = x @ rng.normal(size=(6, 4))
    index = np.argmax(scores, axis=-1)
    index_with_ignored = np.where(rng.random(96) < 0.1, -1, index)
    return {
        "multi-label": (x, (scores > 0).astype(np.float32)),
        "one-hot": (x, np.eye(4, dtype=np.float32)[index]),
        "index": (x, index_with_ignored.astype(np.int64)),
    }


def fit_checks(directory: Path) -> dict[str, dict[str, Any]]:
    import keras
    import xentropy.backends.keras as ours

    counts = count_backward_calls()
    data = fit_data()
    report: dict[str, dict[str, Any]] = {}
    for name, (options, activation, target_kind) in FIT_SPECS.items():
        keras.utils.set_random_seed(0)
        x, y = data[target_kind]
        loss = getattr(ours, name)(**options)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation=activation)])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        before = float(to_numpy(loss(y, model(x))))
        calls_before = sum(counts.values())
        # sample weights in [0.5, 1.5): model.fit hands them to the loss's __call__
        weights = _rng("fit weights" + name).uniform(0.5, 1.5, size=len(x)).astype(np.float32)
        history = model.fit(
            x, y, sample_weight=weights, epochs=2, batch_size=32, verbose=0, shuffle=False
        )
        backward_calls = sum(counts.values()) - calls_before
        after = float(to_numpy(loss(y, model(x))))
        path = directory / f"{name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        prediction, loaded_prediction = to_numpy(model(x)), to_numpy(loaded(x))
        loaded_loss = loaded.loss
        report[name] = {
            "before": before,
            "after": after,
            "history": [float(v) for v in history.history["loss"]],
            "backward_calls": backward_calls,
            "loaded_class": f"{type(loaded_loss).__module__}.{type(loaded_loss).__qualname__}",
            "config": loss.get_config(),
            "loaded_config": loaded_loss.get_config(),
            "prediction_difference": float(np.max(np.abs(prediction - loaded_prediction))),
            "loaded_loss_difference": abs(
                float(to_numpy(loaded_loss(y, loaded_prediction))) - after
            ),
        }
    return report


# --- a class index out of range (anchor S02) --------------------------------------------------


def out_of_range_checks() -> dict[str, Any]:
    """``SparseCategoricalCrossentropy(from_logits=True, reduction=None)`` with label C = 3.

    ``ours_eager``: the exception raised (or the values); ``ours_traced``: values and gradient
    rows under the backend's tracing (``jax.jit``, ``tf.function``; PyTorch runs eagerly in
    Keras, so there is none); ``keras``: what ``keras.losses`` does eagerly.
    """
    import keras
    import xentropy.backends.keras as ours

    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [0.0, 3.0, -2.0]])
    logits = logits.astype(np.float32)
    labels = np.array([2, 1, 3, 0])

    def outcome(fn: Callable[[], Any]) -> Any:
        try:
            return [float(v) for v in to_numpy(fn()).reshape(-1)]
        except Exception as exc:
            return type(exc).__name__

    report: dict[str, Any] = {}
    for side, module in (("ours", ours), ("keras", keras.losses)):
        loss = module.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        report[f"{side}_eager"] = outcome(lambda loss=loss: loss(labels, logits))
    loss = ours.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        traced = jax.jit(jax.value_and_grad(lambda z: keras.ops.sum(loss(labels, z))))
        value, grad = traced(logits)
        per_example = jax.jit(lambda z: loss(labels, z))(logits)
        report["ours_traced"] = [float(v) for v in to_numpy(per_example)]
        report["ours_traced_grad_rows_nan"] = [bool(v) for v in np.isnan(to_numpy(grad)).any(-1)]
        report["ours_traced_sum"] = float(value)
    elif backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def traced(z: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(z)
                values = loss(labels, z)
            return values, tape.gradient(values, z)

        values, grad = traced(tf.constant(logits))
        report["ours_traced"] = [float(v) for v in to_numpy(values)]
        report["ours_traced_grad_rows_nan"] = [bool(v) for v in np.isnan(to_numpy(grad)).any(-1)]
    return report


# the cases of the main (6, 5) layout: every further shape costs JAX hundreds of compilations
MAIN_LAYOUT = ":6x5"


def parity_cases(backend: str, which: str) -> tuple[dict[str, Case], dict[str, str]]:
    """The cases to run on ``backend`` (``which``: all, main or none), and why others are not."""
    run: dict[str, Case] = {}
    skipped: dict[str, str] = {}
    for case in CASES if which != "none" else ():
        if backend not in case.backends:
            skipped[case.id] = case.note
        elif which == "main" and not case.inputs.endswith(MAIN_LAYOUT):
            skipped[case.id] = "other layouts: run on the other backends"
        else:
            run[case.id] = case
    return run, skipped


def main(argv: list[str]) -> int:
    """``keras_fit_script.py OUT.json [--parity=all|main|none]`` on KERAS_BACKEND's backend."""
    out = Path(argv[1])
    which = next((a.split("=", 1)[1] for a in argv[2:] if a.startswith("--parity=")), "all")
    backend = os.environ["KERAS_BACKEND"]
    if backend != "tensorflow":
        # As in an installation without TensorFlow: Keras would import it (seconds) only to
        # look for tf.TensorShape while serialising the model.
        sys.modules["tensorflow"] = None  # type: ignore[assignment]
    import keras

    assert keras.backend.backend() == backend, keras.backend.backend()
    cases, skipped = parity_cases(backend, which)
    report: dict[str, Any] = {"backend": backend, "skipped": skipped}
    report["parity"] = {case_id: compare_case(case) for case_id, case in cases.items()}
    with tempfile.TemporaryDirectory() as directory:
        report["fit"] = fit_checks(Path(directory))
    report["out_of_range"] = out_of_range_checks()
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
