"""``xentropy.backends.tensorflow.losses``: parity with ``tf.compat.v1.losses``.

Each cross-entropy function is compared with TensorFlow's function of the same name on seeded
``(4, 3, 5)`` logits, for every ``Reduction``, scalar / per-example / per-element weights (with
zeros, which the default reduction counts) and label smoothing: values, and the gradients of
``sum(cotangent * loss)`` with respect to the logits, the labels (where TensorFlow
differentiates them) and the weights. float64 is also checked against a float64 NumPy reference
(values) and its central differences (gradients), since TensorFlow reduces float64 in float32
(a documented difference). Then 16-bit dtypes, ``tf.function`` with unknown dimensions, XLA,
graph mode and the loss collection, second order, bad input (the exception class TensorFlow
raises, and a message naming the argument), the fall-through to ``tf.compat.v1.losses`` and the
README's YOLO shapes.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from reference import numerical_grad
from tolerances import FINITE_DIFFERENCE_TOLERANCE, assert_close

import xentropy

FUNCTIONS = ("sigmoid_cross_entropy", "softmax_cross_entropy", "sparse_softmax_cross_entropy")
SMOOTHING = {"sigmoid_cross_entropy": (0.0, 0.2), "softmax_cross_entropy": (0.0, 0.2)}
REDUCTIONS = (
    "none",
    "weighted_sum",
    "weighted_mean",
    "weighted_sum_over_batch_size",
    "weighted_sum_by_nonzero_weights",
)
WEIGHTS = ("scalar", "per_example", "per_element")
SHAPE = (4, 3, 5)
# TensorFlow rounds float64 losses through float32: our float64 is compared with it at float32's
# tolerance, and with the float64 reference at float64's.
NATIVE_TOLERANCE_DTYPE = {"float32": "float32", "float64": "float32"}
EPS16 = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


@pytest.fixture(scope="module")
def tf() -> Any:
    return require_or_skip("tensorflow")


@pytest.fixture(scope="module")
def xlosses(tf: Any) -> Any:
    return importlib.import_module("xentropy.backends.tensorflow.losses")


@pytest.fixture(scope="module")
def native(tf: Any) -> Any:
    return tf.compat.v1.losses


def cases() -> list[Any]:
    params = []
    for function in FUNCTIONS:
        for smoothing in SMOOTHING.get(function, (None,)):
            for weights in WEIGHTS:
                for reduction in REDUCTIONS:
                    ident = f"{function}-{weights}-{reduction}-eps={smoothing}"
                    params.append(pytest.param(function, weights, reduction, smoothing, id=ident))
    return params


# --- sample inputs and the float64 reference ---------------------------------------------------


def loss_shape(function: str) -> tuple[int, ...]:
    return SHAPE if function == "sigmoid_cross_entropy" else SHAPE[:-1]


def sample(function: str, weights: str) -> dict[str, np.ndarray]:
    """Float64 logits, labels (soft, hard or indices), weights with some zeros, a cotangent."""
    rng = rng_for("tf_losses", function, weights)
    logits = rng.normal(scale=2.0, size=SHAPE)
    if function == "sigmoid_cross_entropy":
        labels = rng.random(SHAPE)
        labels[..., 0] = np.round(labels[..., 0])
    elif function == "softmax_cross_entropy":
        labels = rng.dirichlet(np.ones(SHAPE[-1]), size=SHAPE[:-1])
    else:
        labels = rng.integers(0, SHAPE[-1], size=SHAPE[:-1])
    shape = loss_shape(function)
    w_shape = {"scalar": (), "per_example": (shape[0],) + (1,) * (len(shape) - 1)}.get(
        weights, shape
    )
    w = rng.uniform(0.5, 2.0, size=w_shape)
    if w.ndim:
        w.reshape(-1)[rng.random(w.size) < 0.3] = 0.0
        w.reshape(-1)[0] = 0.0
    return {"logits": logits, "labels": labels, "weights": w, "cotangent": rng.normal(size=shape)}


def reference_losses(function: str, logits: np.ndarray, labels: np.ndarray, eps: float) -> Any:
    """Per-element (sigmoid) or per-example (softmax) cross entropy in float64."""
    if function == "sigmoid_cross_entropy":
        t = labels * (1 - eps) + eps / 2 if eps > 0 else labels
        return np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))
    shift = logits.max(axis=-1, keepdims=True)
    log_p = logits - shift - np.log(np.exp(logits - shift).sum(axis=-1, keepdims=True))
    if function == "sparse_softmax_cross_entropy":
        return -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    t = labels * (1 - eps) + eps / logits.shape[-1] if eps > 0 else labels
    return -(t * log_p).sum(axis=-1)


def reference_reduction(
    losses: np.ndarray, weights: np.ndarray, reduction: str, count_of: np.ndarray | None = None
) -> np.ndarray:
    """TensorFlow's weighting and reduction in float64 (0/0 = 0). ``count_of``: the weights
    whose non-zeros are counted (held fixed under finite differences, as TF's count is)."""
    w = np.broadcast_to(weights, losses.shape)
    weighted = losses * w
    if reduction == "none":
        return weighted
    total = weighted.sum()
    counted = np.broadcast_to(weights if count_of is None else count_of, losses.shape)
    denominator = {
        "weighted_sum": 1.0,
        "weighted_mean": w.sum(),
        "weighted_sum_over_batch_size": losses.size,
        "weighted_sum_by_nonzero_weights": np.count_nonzero(counted),
    }[reduction]
    return np.asarray(0.0 if denominator == 0 else total / denominator)


def call(module: Any, function: str, labels: Any, logits: Any, eps: float | None, **kw: Any) -> Any:
    if eps is not None:
        kw["label_smoothing"] = eps
    return getattr(module, function)(labels, logits, **kw)


def value_and_grads(tf: Any, fn: Callable[..., Any], tensors: dict[str, Any]) -> tuple[Any, list]:
    """``fn(labels, logits, weights)`` and the gradients of ``sum(cotangent * loss)`` with
    respect to (logits, labels, weights)."""
    sources = [tensors["logits"], tensors["labels"], tensors["weights"]]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([s for s in sources if s.dtype.is_floating])
        loss = fn(tensors["labels"], tensors["logits"], tensors["weights"])
        scalar = tf.reduce_sum(tf.cast(loss, tf.float64) * tensors["cotangent"])
    return loss, tape.gradient(scalar, sources)


def as_tensors(tf: Any, inputs: dict[str, np.ndarray], dtype: str, reduction: str) -> dict:
    labels = inputs["labels"]
    cotangent = inputs["cotangent"] if reduction == "none" else inputs["cotangent"].reshape(-1)[0]
    return {
        "logits": tf.constant(inputs["logits"], dtype),
        "labels": tf.constant(labels) if labels.dtype.kind == "i" else tf.constant(labels, dtype),
        "weights": tf.constant(inputs["weights"], dtype),
        "cotangent": tf.constant(cotangent, tf.float64),
    }


def numpy64(x: Any) -> np.ndarray:
    return np.asarray(x.numpy(), dtype=np.float64)


# --- parity with tf.compat.v1.losses ----------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("function", "weights", "reduction", "smoothing"), cases())
def test_parity(tf, xlosses, native, function, weights, reduction, smoothing, dtype):
    """Values and gradients (logits, labels, weights) equal TensorFlow's."""
    inputs = sample(function, weights)
    tensors = as_tensors(tf, inputs, dtype, reduction)

    def run(module: Any) -> tuple[Any, list]:
        def fn(labels: Any, logits: Any, w: Any) -> Any:
            return call(module, function, labels, logits, smoothing, weights=w, reduction=reduction)

        return value_and_grads(tf, fn, tensors)

    loss, grads = run(xlosses)
    expected_loss, expected_grads = run(native)
    assert loss.dtype == tensors["logits"].dtype
    assert loss.shape == expected_loss.shape
    tolerance_dtype = NATIVE_TOLERANCE_DTYPE[dtype]
    assert_close(numpy64(loss), numpy64(expected_loss), tolerance_dtype, msg="loss")
    for name, grad, expected in zip(
        ("logits", "labels", "weights"), grads, expected_grads, strict=True
    ):
        if expected is None:  # softmax labels (stop_gradient in TF) and class indices
            assert grad is None, name
            continue
        assert grad.dtype == tensors[name].dtype
        assert_close(numpy64(grad), numpy64(expected), tolerance_dtype, grad=True, msg=name)


@pytest.mark.parametrize(("function", "weights", "reduction", "smoothing"), cases())
def test_float64_against_reference(tf, xlosses, function, weights, reduction, smoothing):
    """float64 keeps float64 precision: values against the NumPy reference, gradients against
    its central differences (TensorFlow's own float64 has float32 precision here)."""
    inputs = sample(function, weights)
    tensors = as_tensors(tf, inputs, "float64", reduction)
    eps = smoothing or 0.0
    cotangent = tensors["cotangent"].numpy()

    def fn(labels: Any, logits: Any, w: Any) -> Any:
        return call(xlosses, function, labels, logits, smoothing, weights=w, reduction=reduction)

    loss, (grad_logits, grad_labels, grad_weights) = value_and_grads(tf, fn, tensors)
    x, t, w = inputs["logits"], inputs["labels"], inputs["weights"]

    def reference(x: Any = x, t: Any = t, w: Any = w) -> np.ndarray:
        losses = reference_losses(function, x, t, eps)
        return cotangent * reference_reduction(losses, w, reduction, count_of=inputs["weights"])

    expected = reference_reduction(reference_losses(function, x, t, eps), w, reduction)
    assert_close(numpy64(loss), expected, "float64", msg="loss")
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    fd_logits = numerical_grad(lambda v: reference(x=v), x)
    assert_close(numpy64(grad_logits), fd_logits, "float64", rtol=rtol, atol=atol, msg="logits")
    fd_weights = numerical_grad(lambda v: reference(w=v), w)
    assert_close(numpy64(grad_weights), fd_weights, "float64", rtol=rtol, atol=atol, msg="w")
    if function == "sigmoid_cross_entropy":
        fd_labels = numerical_grad(lambda v: reference(t=v), t)
        assert_close(numpy64(grad_labels), fd_labels, "float64", rtol=rtol, atol=atol, msg="t")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_parity_16bit(tf, xlosses, native, function, dtype):
    """16-bit logits: the loss in that dtype, within a few of its ulps of TensorFlow's (which
    computes some per-element losses in the 16-bit dtype; both reduce in float32)."""
    inputs = sample(function, "per_element")
    tensors = as_tensors(tf, inputs, dtype, "weighted_sum_by_nonzero_weights")
    smoothing = SMOOTHING.get(function, (None, None))[1]

    def run(module: Any) -> tuple[Any, list]:
        def fn(labels: Any, logits: Any, w: Any) -> Any:
            return call(module, function, labels, logits, smoothing, weights=w)

        return value_and_grads(tf, fn, tensors)

    (loss, grads), (expected_loss, expected_grads) = run(xlosses), run(native)
    assert loss.dtype == tensors["logits"].dtype
    eps = EPS16[dtype]
    assert_close(numpy64(loss), numpy64(expected_loss), dtype, rtol=4 * eps, atol=eps * 2**-8)
    for name, grad, expected in zip(
        ("logits", "labels", "weights"), grads, expected_grads, strict=True
    ):
        if expected is None:
            assert grad is None, name
            continue
        assert grad.dtype == tensors[name].dtype
        assert_close(numpy64(grad), numpy64(expected), dtype, rtol=4 * eps, atol=eps / 4, msg=name)


def test_default_arguments_and_python_inputs(tf, xlosses, native):
    """Python lists, the default weights 1.0 and int / bool weights, as TensorFlow takes them."""
    logits = [[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]]
    calls = {
        "sigmoid_cross_entropy": ([[1, 0, 1], [0, 1, 0]], [[1], [0]]),
        "softmax_cross_entropy": ([[1, 0, 0], [0, 1, 0]], [1, 0]),
        "sparse_softmax_cross_entropy": ([[0], [1]], [1, 0]),
    }
    for function, (labels, per_example) in calls.items():
        bools = np.asarray(per_example, dtype=bool).tolist()
        for kwargs in ({}, {"weights": per_example}, {"weights": bools}):
            got = getattr(xlosses, function)(labels, logits, **kwargs)
            expected = getattr(native, function)(labels, logits, **kwargs)
            assert got.dtype == expected.dtype == tf.float32
            assert_close(numpy64(got), numpy64(expected), "float32", msg=f"{function} {kwargs}")


def test_zero_weights_give_zero(tf, xlosses, native):
    """0/0 is 0 (div_no_nan) for every reduction that divides, with a zero gradient."""
    inputs = sample("softmax_cross_entropy", "per_element")
    for reduction in REDUCTIONS[2:]:
        tensors = as_tensors(tf, {**inputs, "weights": np.zeros(SHAPE[:-1])}, "float32", reduction)
        loss, grads = value_and_grads(
            tf,
            lambda t, x, w, r=reduction: xlosses.softmax_cross_entropy(t, x, w, reduction=r),
            tensors,
        )
        expected = native.softmax_cross_entropy(
            tensors["labels"], tensors["logits"], tensors["weights"], reduction=reduction
        )
        assert float(loss) == float(expected) == 0.0
        assert np.all(grads[0].numpy() == 0.0)


# --- label smoothing as a tensor ---------------------------------------------------------------


@pytest.mark.parametrize("function", ["sigmoid_cross_entropy", "softmax_cross_entropy"])
def test_label_smoothing_variable(tf, xlosses, native, function):
    """A tf.Variable label_smoothing: the same value and gradient as TensorFlow (eagerly; the
    softmax gets none, TensorFlow stops it), and the same value from a traced tensor."""
    inputs = sample(function, "per_example")
    tensors = as_tensors(tf, inputs, "float32", "weighted_mean")
    results = []
    for module in (xlosses, native):
        eps = tf.Variable(0.2)
        with tf.GradientTape() as tape:
            loss = getattr(module, function)(
                tensors["labels"], tensors["logits"], tensors["weights"], label_smoothing=eps
            )
        results.append((loss, tape.gradient(loss, eps)))
    (loss, grad), (expected_loss, expected_grad) = results
    assert_close(numpy64(loss), numpy64(expected_loss), "float32")
    if expected_grad is None:
        assert grad is None
    else:
        assert_close(numpy64(grad), numpy64(expected_grad), "float32", grad=True)

    traced = tf.function(lambda t, x, w, e: getattr(xlosses, function)(t, x, w, label_smoothing=e))(
        tensors["labels"], tensors["logits"], tensors["weights"], tf.constant(0.2)
    )
    assert_close(numpy64(traced), numpy64(expected_loss), "float32")


@pytest.mark.parametrize("function", ["sigmoid_cross_entropy", "softmax_cross_entropy"])
def test_negative_label_smoothing_is_no_smoothing(tf, xlosses, native, function):
    """TensorFlow smooths only when ``label_smoothing > 0``: a negative number or tensor is 0."""
    inputs = sample(function, "per_example")
    tensors = as_tensors(tf, inputs, "float32", "weighted_mean")
    args = (tensors["labels"], tensors["logits"], tensors["weights"])
    expected = getattr(native, function)(*args, label_smoothing=-0.5)
    unsmoothed = getattr(native, function)(*args)
    assert float(expected) == float(unsmoothed)
    for eps in (-0.5, tf.constant(-0.5)):
        got = getattr(xlosses, function)(*args, label_smoothing=eps)
        assert_close(numpy64(got), numpy64(expected), "float32", msg=f"label_smoothing={eps}")


# --- execution modes -------------------------------------------------------------------------


def unknown_dims_spec(tf: Any, t: Any, *, keep_last: bool) -> Any:
    shape = [None] * t.shape.rank
    if keep_last and shape:
        shape[-1] = t.shape[-1]
    return tf.TensorSpec(shape, t.dtype)


@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize(
    ("function", "reduction"),
    [
        ("sigmoid_cross_entropy", "weighted_sum_by_nonzero_weights"),
        ("softmax_cross_entropy", "weighted_mean"),
        ("sparse_softmax_cross_entropy", "none"),
    ],
)
def test_traced_modes(tf, xlosses, native, function, reduction, mode):
    """tf.function with every dimension unknown (but the classes) and XLA: eager TF's values
    and gradients."""
    inputs = sample(function, "per_element")
    tensors = as_tensors(tf, inputs, "float32", reduction)
    smoothing = SMOOTHING.get(function, (None, None))[1]

    def run(module: Any) -> Callable[..., Any]:
        def fn(labels: Any, logits: Any, w: Any) -> Any:
            return call(module, function, labels, logits, smoothing, weights=w, reduction=reduction)

        return lambda *args: value_and_grads(
            tf, fn, dict(zip(("labels", "logits", "weights", "cotangent"), args, strict=True))
        )

    args = [tensors[k] for k in ("labels", "logits", "weights", "cotangent")]
    if mode == "xla":
        traced = tf.function(run(xlosses), jit_compile=True)
    else:
        specs = [unknown_dims_spec(tf, a, keep_last=i == 1) for i, a in enumerate(args)]
        traced = tf.function(run(xlosses), input_signature=specs)
    loss, grads = traced(*args)
    expected_loss, expected_grads = run(native)(*args)
    assert_close(numpy64(loss), numpy64(expected_loss), "float32", msg="loss")
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert (grad is None) == (expected is None)
        if expected is not None:
            assert_close(numpy64(grad), numpy64(expected), "float32", grad=True)


def test_sparse_unknown_ranks_are_squeezed_at_run_time(tf, xlosses, native):
    """Labels ``(N, 1)`` and weights ``(N, 1)`` of unknown rank: squeezed when the graph runs."""
    inputs = sample("sparse_softmax_cross_entropy", "per_element")
    logits = tf.constant(inputs["logits"][:, 0], tf.float32)
    labels = tf.constant(inputs["labels"][:, :1])
    weights = tf.constant(inputs["weights"][:, :1], tf.float32)
    specs = [tf.TensorSpec(None, tf.int64), tf.TensorSpec([None, 5]), tf.TensorSpec(None)]
    traced = tf.function(
        lambda y, x, w: xlosses.sparse_softmax_cross_entropy(y, x, w, reduction="none"),
        input_signature=specs,
    )
    expected = native.sparse_softmax_cross_entropy(labels, logits, weights, reduction="none")
    assert_close(numpy64(traced(labels, logits, weights)), numpy64(expected), "float32")


def test_graph_mode_and_loss_collection(tf, xlosses, native):
    """tf.compat.v1 graph mode: the same values and tf.gradients, and the loss is added to
    ``loss_collection`` (none given: nothing); eagerly nothing is collected."""
    inputs = sample("sigmoid_cross_entropy", "per_example")
    results = {}
    for name, module in (("ours", xlosses), ("native", native)):
        graph = tf.Graph()
        with graph.as_default():
            logits = tf.constant(inputs["logits"], tf.float32)
            weights = tf.constant(inputs["weights"], tf.float32)
            loss = module.sigmoid_cross_entropy(inputs["labels"], logits, weights)
            extra = module.sigmoid_cross_entropy(
                inputs["labels"], logits, loss_collection="mine", reduction="weighted_sum"
            )
            module.sigmoid_cross_entropy(
                inputs["labels"], logits, loss_collection=None, reduction="weighted_mean"
            )
            grads = tf.gradients(loss, [logits, weights])
            collected = (
                graph.get_collection(tf.compat.v1.GraphKeys.LOSSES),
                graph.get_collection("mine"),
            )
            assert collected == ([loss], [extra])
            assert graph._last_loss_reduction == "weighted_mean"
            with tf.compat.v1.Session(graph=graph) as session:
                results[name] = session.run([loss, *grads])
    for got, expected in zip(results["ours"], results["native"], strict=True):
        assert_close(got, expected, "float32")
    xlosses.sigmoid_cross_entropy(inputs["labels"], tf.constant(inputs["logits"]))
    assert native.get_losses() == []


def test_collection_under_tf_function(tf, xlosses, native):
    """Inside tf.function, TensorFlow adds the loss to the function graph's collection."""
    counts = {}
    for name, module in (("ours", xlosses), ("native", native)):

        @tf.function
        def traced(x: Any, module: Any = module, name: str = name) -> Any:
            loss = module.softmax_cross_entropy(tf.ones_like(x) / 3.0, x)
            counts[name] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES))
            return loss

        traced(tf.zeros((2, 3)))
    assert counts["ours"] == counts["native"] == 1


# --- second order ----------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["sigmoid_cross_entropy", "softmax_cross_entropy"])
def test_second_order_nested_tapes(tf, xlosses, native, function):
    """Hessian-vector products in the logits, and the mixed second derivative with the weights,
    by nested GradientTapes: TensorFlow's."""
    inputs = sample(function, "per_example")
    tensors = as_tensors(tf, inputs, "float32", "weighted_mean")
    direction = tf.constant(rng_for("hvp", function).normal(size=SHAPE), tf.float32)
    results = []
    for module in (xlosses, native):
        logits, weights = tensors["logits"], tensors["weights"]
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([logits, weights])
            with tf.GradientTape() as inner:
                inner.watch(logits)
                loss = getattr(module, function)(
                    tensors["labels"], logits, weights, reduction="weighted_mean"
                )
            directional = tf.reduce_sum(inner.gradient(loss, logits) * direction)
        results.append(outer.gradient(directional, [logits, weights]))
    for got, expected in zip(*results, strict=True):
        assert_close(numpy64(got), numpy64(expected), "float32", grad=True)


# --- bad input -----------------------------------------------------------------------------------


def _x(tf: Any, shape: tuple[int, ...] = SHAPE) -> Any:
    return tf.constant(rng_for("bad", shape).normal(size=shape), tf.float32)


def _t(tf: Any, shape: tuple[int, ...] = SHAPE) -> Any:
    """Valid labels for both the sigmoid and the softmax: the bad input is elsewhere."""
    return tf.constant(
        rng_for("labels", shape).dirichlet(np.ones(shape[-1]), shape[:-1]), tf.float32
    )


BAD_INPUTS: dict[str, tuple[str, Callable[..., Any], str]] = {
    # id: (function, lambda tf -> kwargs, the name our message must contain)
    "sigmoid-labels-shape": (
        "sigmoid_cross_entropy",
        lambda tf: {"multi_class_labels": _t(tf, (4, 3, 4)), "logits": _x(tf)},
        "multi_class_labels",
    ),
    "sigmoid-labels-rank": (
        "sigmoid_cross_entropy",
        lambda tf: {"multi_class_labels": _t(tf, (4, 3)), "logits": _x(tf)},
        "multi_class_labels",
    ),
    "softmax-labels-shape": (
        "softmax_cross_entropy",
        lambda tf: {"onehot_labels": _t(tf, (4, 3, 4)), "logits": _x(tf)},
        "onehot_labels",
    ),
    "sparse-labels-shape": (
        "sparse_softmax_cross_entropy",
        lambda tf: {"labels": tf.zeros((4, 2), tf.int32), "logits": _x(tf)},
        "labels",
    ),
    "sigmoid-per-example-weights-of-rank-1": (
        "sigmoid_cross_entropy",
        lambda tf: {"multi_class_labels": _t(tf), "logits": _x(tf), "weights": tf.ones(4)},
        "weights",
    ),
    "sigmoid-weights-dimension": (
        "sigmoid_cross_entropy",
        lambda tf: {"multi_class_labels": _t(tf), "logits": _x(tf), "weights": tf.ones((4, 3, 2))},
        "weights",
    ),
    "softmax-weights-rank": (
        "softmax_cross_entropy",
        lambda tf: {"onehot_labels": _t(tf), "logits": _x(tf), "weights": tf.ones((4, 3, 1, 1))},
        "weights",
    ),
    "sparse-weights-one-axis-more": (
        "sparse_softmax_cross_entropy",
        lambda tf: {
            "labels": tf.zeros((4, 3), tf.int32),
            "logits": _x(tf),
            "weights": tf.ones((4, 3, 2)),
        },
        "weights",
    ),
    "weights-none": (
        "softmax_cross_entropy",
        lambda tf: {"onehot_labels": _t(tf), "logits": _x(tf), "weights": None},
        "weights",
    ),
    "labels-none": (
        "sigmoid_cross_entropy",
        lambda tf: {"multi_class_labels": None, "logits": _x(tf)},
        "multi_class_labels",
    ),
    "logits-none": (
        "sparse_softmax_cross_entropy",
        lambda tf: {"labels": tf.zeros((4, 3), tf.int32), "logits": None},
        "logits",
    ),
    "reduction": (
        "softmax_cross_entropy",
        lambda tf: {"onehot_labels": _t(tf), "logits": _x(tf), "reduction": "mean"},
        "reduction",
    ),
}


def _raised(fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except Exception as exc:  # the class is what is compared
        return exc
    raise AssertionError("no exception raised")


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_as_tensorflow(tf, xlosses, native, case):
    """The exception class TensorFlow raises, with a message that names the argument."""
    function, make, argument = BAD_INPUTS[case]
    expected = _raised(lambda: getattr(native, function)(**make(tf)))
    got = _raised(lambda: getattr(xlosses, function)(**make(tf)))
    assert type(got) is type(expected), (got, expected)
    assert f"`{argument}`" in str(got)


def test_bad_weights_shape_at_run_time(tf, xlosses, native):
    """Shapes known only when the graph runs: InvalidArgumentError, as in TensorFlow."""
    spec = [
        tf.TensorSpec([None, 3, 5]),
        tf.TensorSpec([None, 3, 5]),
        tf.TensorSpec([None, 3, None]),
    ]
    args = (_t(tf), _x(tf), tf.ones((4, 3, 2)))
    for module in (native, xlosses):
        traced = tf.function(
            lambda t, x, w, m=module: m.sigmoid_cross_entropy(t, x, w), input_signature=spec
        )
        with pytest.raises(tf.errors.InvalidArgumentError, match="weights"):
            traced(*args)
    good = tf.function(lambda t, x, w: xlosses.sigmoid_cross_entropy(t, x, w), input_signature=spec)
    assert np.isfinite(good(*args[:2], tf.ones((4, 3, 1))).numpy())


# --- the module ------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_signatures_match(tf, xlosses, native, function):
    """TensorFlow's parameters, names, order and defaults, then the keyword-only ``validate``."""
    ours = list(inspect.signature(getattr(xlosses, function)).parameters.values())
    theirs = list(inspect.signature(getattr(native, function)).parameters.values())
    assert [(p.name, p.default, p.kind) for p in ours[:-1]] == [
        (p.name, p.default, p.kind) for p in theirs
    ]
    validate = ours[-1]
    assert (validate.name, validate.kind, validate.default) == (
        "validate",
        validate.KEYWORD_ONLY,
        True,
    )


def test_falls_through_to_tensorflow(tf, xlosses, native):
    assert xlosses.Reduction is native.Reduction
    assert xlosses.mean_squared_error is native.mean_squared_error
    assert xlosses.compute_weighted_loss is native.compute_weighted_loss
    assert {"mean_squared_error", "Reduction", "sigmoid_cross_entropy"} <= set(dir(xlosses))
    assert "_module_wrapper" not in dir(xlosses) and "_sys" not in dir(xlosses)
    with pytest.raises(AttributeError):
        xlosses._module_wrapper  # private names do not fall through
    with pytest.raises(AttributeError, match="no_such_loss"):
        xlosses.no_such_loss
    from xentropy.backends.tensorflow import losses

    assert losses is xlosses


def test_docstring_examples(tf, xlosses):
    result = doctest.testmod(
        xlosses, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted >= 3 and result.failed == 0


# --- the README's YOLO example ---------------------------------------------------------------


def test_readme_yolo_shapes(tf, xlosses):
    """``[b, 13, 13, 3, 20]`` logits: tf.nn's sigmoid CE is element-wise, its softmax CE sums the
    class axis, tf.compat.v1.losses returns one scalar (the mean over every element), and the
    core's ``reduction="none"`` equals tf.nn's (README, "A YOLO head: which call returns what")."""
    rng = rng_for("yolo")
    logits = tf.constant(rng.normal(size=(2, 13, 13, 3, 20)), tf.float32)
    multi = tf.constant((rng.random((2, 13, 13, 3, 20)) < 0.05).astype(np.float32))
    onehot = tf.one_hot(rng.integers(0, 20, size=(2, 13, 13, 3)), 20)

    sigmoid_nn = tf.nn.sigmoid_cross_entropy_with_logits(labels=multi, logits=logits)
    sigmoid_core = xentropy.sigmoid_cross_entropy(logits, multi, reduction="none")
    assert sigmoid_nn.shape == sigmoid_core.shape == (2, 13, 13, 3, 20)
    assert_close(numpy64(sigmoid_core), numpy64(sigmoid_nn), "float32")
    softmax_nn = tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits)
    softmax_core = xentropy.softmax_cross_entropy(logits, onehot, reduction="none")
    assert softmax_nn.shape == softmax_core.shape == (2, 13, 13, 3)
    assert_close(numpy64(softmax_core), numpy64(softmax_nn), "float32")

    for module in (tf.compat.v1.losses, xlosses):
        sigmoid_v1 = module.sigmoid_cross_entropy(multi, logits)
        softmax_v1 = module.softmax_cross_entropy(onehot, logits)
        assert sigmoid_v1.shape == softmax_v1.shape == ()
        assert_close(numpy64(sigmoid_v1), np.mean(numpy64(sigmoid_nn)), "float32")
        assert_close(numpy64(softmax_v1), np.mean(numpy64(softmax_nn)), "float32")
    scalar = numpy64(tf.compat.v1.losses.sigmoid_cross_entropy(multi, logits))
    assert_close(numpy64(xentropy.sigmoid_cross_entropy(logits, multi)), scalar, "float32")
    # "the same losses summed over the 20 classes and averaged over the anchors: 20 times it"
    per_anchor = tf.reduce_mean(tf.reduce_sum(sigmoid_core, axis=-1))
    assert_close(numpy64(per_anchor), 20 * scalar, "float32")
