"""``xentropy.backends.tensorflow``: every derivative ``tf.nn`` has, at every order (issue 10).

Against ``tf.nn`` on the same inputs (and, for ``linear_cross_entropy``, an unfused TensorFlow
reference: ``hidden @ weight.T + bias`` then ``tf.nn.sparse_softmax_cross_entropy_with_logits``)
and against float64 finite differences:

* first-order gradients with respect to every floating input ``tf.nn`` differentiates (logits,
  soft labels, ``pos_weight``; hidden, weight and bias), never ``None``;
* second order through nested ``tf.GradientTape`` (eager and in ``tf.function``) and
  ``tf.gradients(tf.gradients(...))`` in graph mode, also with ``grad_ys`` of unknown rank;
  forward mode (``tf.autodiff.ForwardAccumulator``);
* labels of unknown static rank, checked at run time; ``tf.Variable`` inputs to the core; class
  indices of every integer dtype;
* a guard that a plain first-order ``tape.gradient(loss, logits)`` takes the analytic backward.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from reference import numerical_grad
from tolerances import FINITE_DIFFERENCE_TOLERANCE, assert_close

import xentropy
from xentropy import ops

FUNCTIONS = (
    "softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits",
    "weighted_cross_entropy_with_logits",
)
# The floating inputs each function differentiates, in tf.nn and here.
DIFFERENTIABLE = {
    "softmax_cross_entropy_with_logits": ("logits", "labels"),
    "sparse_softmax_cross_entropy_with_logits": ("logits",),
    "sigmoid_cross_entropy_with_logits": ("logits", "labels"),
    "weighted_cross_entropy_with_logits": ("logits", "labels", "pos_weight"),
}
# (rtol, atol) against tf.nn and the unfused reference.
TOLERANCES = {"float32": (1e-5, 1e-6), "float64": (1e-11, 1e-12)}
SECOND_ORDER_MODES = ("eager_tapes", "function_tapes", "graph_gradients")
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@pytest.fixture(scope="module")
def tf() -> Any:
    return require_or_skip("tensorflow")


@pytest.fixture(scope="module")
def xtf(tf: Any) -> Any:
    return importlib.import_module("xentropy.backends.tensorflow")


def sample(function: str) -> dict[str, np.ndarray]:
    """Float64 inputs: logits, labels, pos_weight (weighted), the loss cotangent ``u`` and a
    direction ``v`` of the logits' shape (for Hessian-vector products). Soft labels stay away
    from 0 and 1 (finite differences move them) and softmax label rows sum to 1 (where tf.nn's
    logits gradient is the derivative)."""
    rng = rng_for(function)
    logits = rng.normal(scale=2.0, size=(4, 5))
    if function == "sparse_softmax_cross_entropy_with_logits":
        labels = rng.integers(0, 5, size=4)
    elif function == "softmax_cross_entropy_with_logits":
        labels = 0.9 * rng.dirichlet(np.ones(5), size=4) + 0.02
    else:
        labels = rng.uniform(0.1, 0.9, size=(4, 5))
    loss_shape = (4,) if "softmax" in function else (4, 5)
    inputs = {
        "logits": logits,
        "labels": labels,
        "u": rng.normal(size=loss_shape),
        "v": rng.normal(size=(4, 5)),
    }
    if function == "weighted_cross_entropy_with_logits":
        inputs["pos_weight"] = rng.uniform(0.5, 2.5, size=5)
    return inputs


def tensors(tf: Any, inputs: dict[str, np.ndarray], dtype: str) -> dict[str, Any]:
    return {
        k: tf.constant(a) if a.dtype.kind == "i" else tf.constant(a, dtype)
        for k, a in inputs.items()
    }


def loss_fn(nn: Any, function: str) -> Callable[[dict[str, Any]], Any]:
    """``x -> loss`` for the dict of inputs ``x``, calling ``nn.<function>`` (ours or tf.nn)."""
    fn = getattr(nn, function)
    if function == "weighted_cross_entropy_with_logits":
        return lambda x: fn(x["labels"], x["logits"], x["pos_weight"])
    return lambda x: fn(x["labels"], x["logits"])


def first_order(tf: Any, loss: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """``x -> [d <u, loss(x)> / d x[n] for n in names]`` with one tape."""

    def run(x: dict[str, Any]) -> list[Any]:
        with tf.GradientTape() as tape:
            tape.watch([x[n] for n in names])
            value = loss(x)
        return tape.gradient(value, [x[n] for n in names], output_gradients=x["u"])

    return run


def second_order(
    tf: Any, loss: Callable[..., Any], names: tuple[str, ...], mode: str
) -> Callable[..., Any]:
    """``x -> d <v, d <u, loss> / d logits> / d x[n]`` for ``n`` in ``names``: a Hessian-vector
    product (and the mixed derivatives), by nested tapes eagerly or in ``tf.function``, or by
    ``tf.gradients`` twice in graph mode (``tf.function`` without tapes)."""

    def with_tapes(x: dict[str, Any]) -> list[Any]:
        sources = [x[n] for n in names]
        with tf.GradientTape() as outer:
            outer.watch(sources)
            with tf.GradientTape() as inner:
                inner.watch(x["logits"])
                value = loss(x)
            g = inner.gradient(value, x["logits"], output_gradients=x["u"])
            directional = tf.reduce_sum(g * x["v"])
        return outer.gradient(directional, sources)

    def with_gradients(x: dict[str, Any]) -> list[Any]:
        value = loss(x)
        (g,) = tf.gradients(value, [x["logits"]], grad_ys=x["u"])
        return tf.gradients(tf.reduce_sum(g * x["v"]), [x[n] for n in names])

    if mode == "eager_tapes":
        return with_tapes
    return tf.function(with_gradients if mode == "graph_gradients" else with_tapes)


def numpy64(x: Any) -> np.ndarray:
    return np.asarray(x.numpy(), dtype=np.float64)


def assert_all_close(actual: list[Any], expected: list[Any], dtype: str, names: Any) -> None:
    rtol, atol = TOLERANCES[dtype]
    assert len(actual) == len(expected)
    for name, a, e in zip(names, actual, expected, strict=True):
        assert a is not None, f"no gradient for {name}"
        assert e is not None, f"the reference has no gradient for {name}"
        assert_close(numpy64(a), numpy64(e), dtype, rtol=rtol, atol=atol, msg=str(name))


def finite_difference(
    tf: Any, loss: Callable[..., Any], inputs: dict[str, np.ndarray], name: str
) -> np.ndarray:
    """Float64 central difference of ``<u, loss>`` with respect to ``inputs[name]``."""
    fixed = tensors(tf, inputs, "float64")

    def at(value: np.ndarray) -> np.ndarray:
        x = {**fixed, name: tf.constant(value)}
        return numpy64(loss(x)) * inputs["u"]

    return numerical_grad(at, inputs[name])


# --- first order: every floating input --------------------------------------------------------


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_gradients_of_every_input_equal_tf_nn(tf, xtf, function, dtype, mode):
    """tape.gradient with respect to logits, labels and pos_weight: tensors equal to tf.nn's."""
    x = tensors(tf, sample(function), dtype)
    names = DIFFERENTIABLE[function]
    ours = first_order(tf, loss_fn(xtf.nn, function), names)
    if mode != "eager":
        ours = tf.function(ours, jit_compile=mode == "xla")
    expected = first_order(tf, loss_fn(tf.nn, function), names)(x)
    actual = ours(x)
    assert [g.dtype for g in actual] == [x[n].dtype for n in names]
    assert_all_close(actual, expected, dtype, names)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_gradients_of_every_input_equal_finite_differences(tf, xtf, function):
    inputs = sample(function)
    names = DIFFERENTIABLE[function]
    loss = loss_fn(xtf.nn, function)
    actual = first_order(tf, loss, names)(tensors(tf, inputs, "float64"))
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    for name, grad in zip(names, actual, strict=True):
        expected = finite_difference(tf, loss, inputs, name)
        assert_close(numpy64(grad), expected, "float64", rtol=rtol, atol=atol, msg=name)


def test_class_indices_get_no_gradient(tf, xtf):
    """As in tf.nn: integer labels are not differentiable (None, also for a watched tensor)."""
    x = tensors(tf, sample("sparse_softmax_cross_entropy_with_logits"), "float64")
    for nn in (xtf.nn, tf.nn):
        with tf.GradientTape() as tape:
            tape.watch(x["labels"])
            loss = nn.sparse_softmax_cross_entropy_with_logits(x["labels"], x["logits"])
        assert tape.gradient(loss, x["labels"]) is None


def test_an_array_passed_twice_gets_the_total_derivative(tf, xtf):
    """sigmoid(z, z): labels and logits are one tensor; its gradient sums both partials."""
    z = tf.constant(rng_for("twice").uniform(0.1, 0.9, size=(3, 4)))
    grads = []
    for nn in (xtf.nn, tf.nn):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = nn.sigmoid_cross_entropy_with_logits(z, z)
        grads.append(tape.gradient(loss, z))
    assert_all_close(grads[:1], grads[1:], "float64", ["z"])


# --- second order -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SECOND_ORDER_MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_hessian_vector_products_equal_tf_nn(tf, xtf, function, dtype, mode):
    """d <v, grad_logits> / d logits (and / d labels, pos_weight where tf.nn's gradient is the
    derivative: not in the dense softmax, whose fused kernel returns softmax - t as a function of
    t; see the finite-difference test)."""
    x = tensors(tf, sample(function), dtype)
    names = DIFFERENTIABLE[function]
    if function == "softmax_cross_entropy_with_logits":
        names = ("logits",)
    actual = second_order(tf, loss_fn(xtf.nn, function), names, mode)(x)
    expected = second_order(tf, loss_fn(tf.nn, function), names, "eager_tapes")(x)
    assert_all_close(actual, expected, dtype, names)


@pytest.mark.parametrize("mode", SECOND_ORDER_MODES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_second_derivatives_equal_finite_differences(tf, xtf, function, mode):
    """The same products against a float64 central difference of the first-order gradient."""
    inputs = sample(function)
    names = DIFFERENTIABLE[function]
    loss = loss_fn(xtf.nn, function)
    actual = second_order(tf, loss, names, mode)(tensors(tf, inputs, "float64"))
    grad_logits = first_order(tf, loss, ("logits",))
    fixed = tensors(tf, inputs, "float64")
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    for name, result in zip(names, actual, strict=True):

        def directional(value: np.ndarray, name: str = name) -> np.ndarray:
            (g,) = grad_logits({**fixed, name: tf.constant(value)})
            return numpy64(g) * inputs["v"]

        expected = numerical_grad(directional, inputs[name])
        assert_close(numpy64(result), expected, "float64", rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_gradients_with_grad_ys_of_unknown_rank(tf, xtf, function):
    """tf.gradients inside a tf.function whose grad_ys has no static rank: the first and second
    derivatives equal tf.nn's."""
    inputs = sample(function)
    x = tensors(tf, inputs, "float64")
    results = []
    for nn in (xtf.nn, tf.nn):
        loss = loss_fn(nn, function)

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float64)])
        def run(u: Any, loss: Callable[..., Any] = loss) -> list[Any]:
            assert u.shape.rank is None
            (g,) = tf.gradients(loss(x), [x["logits"]], grad_ys=u)
            return [g, *tf.gradients(tf.reduce_sum(g * x["v"]), [x["logits"], u])]

        results.append(run(x["u"]))
    assert_all_close(results[0], results[1], "float64", ["grad", "hvp", "d/du"])


@pytest.mark.parametrize(
    "function", ["softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits"]
)
def test_forward_mode_equals_tf_nn(tf, xtf, function):
    """tf.autodiff.ForwardAccumulator: Jacobian-vector products in the logits and labels."""
    x = tensors(tf, sample(function), "float64")
    tangents = [x["v"], tf.constant(rng_for("tangent").normal(size=(4, 5)))]
    jvps = []
    for nn in (xtf.nn, tf.nn):
        with tf.autodiff.ForwardAccumulator([x["logits"], x["labels"]], tangents) as acc:
            loss = loss_fn(nn, function)(x)
        jvps.append(acc.jvp(loss))
    assert_all_close(jvps[:1], jvps[1:], "float64", ["jvp"])


# --- linear cross entropy ----------------------------------------------------------------------


def linear_sample(dtype: str, tf: Any) -> dict[str, Any]:
    rng = rng_for("linear")
    return {
        "hidden": tf.constant(rng.normal(size=(6, 3)), dtype),
        "weight": tf.constant(rng.normal(size=(5, 3)), dtype),
        "bias": tf.constant(rng.normal(size=5), dtype),
        "targets": tf.constant(rng.integers(0, 5, size=6)),
        "v": tf.constant(rng.normal(size=(6, 3)), dtype),
        "u": tf.constant(1.7, dtype),
    }


LINEAR = ("hidden", "weight", "bias")


def fused_loss(xtf: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda x: xtf.linear_cross_entropy(
        x["hidden"], x["weight"], x["targets"], bias=x["bias"], chunk_size=2
    )


def unfused_loss(tf: Any) -> Callable[[dict[str, Any]], Any]:
    def loss(x: dict[str, Any]) -> Any:
        logits = tf.matmul(x["hidden"], x["weight"], transpose_b=True) + x["bias"]
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(x["targets"], logits)
        return tf.reduce_mean(per_row)

    return loss


def linear_second_order(tf: Any, loss: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """``d <v, d loss / d hidden> / d (hidden, weight, bias)``."""

    def with_tapes(x: dict[str, Any]) -> list[Any]:
        sources = [x[n] for n in LINEAR]
        with tf.GradientTape() as outer:
            outer.watch(sources)
            with tf.GradientTape() as inner:
                inner.watch(sources)
                value = loss(x) * x["u"]
            g = inner.gradient(value, x["hidden"])
            directional = tf.reduce_sum(g * x["v"])
        return outer.gradient(directional, sources)

    def with_gradients(x: dict[str, Any]) -> list[Any]:
        (g,) = tf.gradients(loss(x), [x["hidden"]], grad_ys=x["u"])
        return tf.gradients(tf.reduce_sum(g * x["v"]), [x[n] for n in LINEAR])

    if mode == "eager_tapes":
        return with_tapes
    return tf.function(with_gradients if mode == "graph_gradients" else with_tapes)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_cross_entropy_gradients_equal_unfused(tf, xtf, dtype):
    x = linear_sample(dtype, tf)
    actual = first_order(tf, fused_loss(xtf), LINEAR)(x)
    expected = first_order(tf, unfused_loss(tf), LINEAR)(x)
    assert_all_close(actual, expected, dtype, LINEAR)


def test_linear_cross_entropy_gradients_equal_finite_differences(tf, xtf):
    x = linear_sample("float64", tf)
    actual = first_order(tf, fused_loss(xtf), LINEAR)(x)
    inputs = {k: t.numpy() for k, t in x.items()}
    rtol, atol = FINITE_DIFFERENCE_TOLERANCE
    for name, grad in zip(LINEAR, actual, strict=True):
        expected = finite_difference(tf, fused_loss(xtf), inputs, name)
        assert_close(numpy64(grad), expected, "float64", rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("mode", SECOND_ORDER_MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_cross_entropy_second_order_equals_unfused(tf, xtf, dtype, mode):
    x = linear_sample(dtype, tf)
    actual = linear_second_order(tf, fused_loss(xtf), mode)(x)
    expected = linear_second_order(tf, unfused_loss(tf), "eager_tapes")(x)
    assert_all_close(actual, expected, dtype, LINEAR)


# --- labels of unknown static rank ------------------------------------------------------------


def unknown_rank_labels(tf: Any, labels: Any) -> Any:
    """``labels`` reshaped so that the static rank is lost (a ``tf.squeeze`` of ``[None, 1]``
    for class indices, a dynamic reshape otherwise)."""
    if labels.dtype.is_integer:
        return tf.squeeze(labels)
    return tf.reshape(labels, tf.shape(labels))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_labels_of_unknown_rank_are_accepted(tf, xtf, function):
    """As tf.nn accepts them (checked at run time): the same loss and gradients."""
    inputs = sample(function)
    sparse = function == "sparse_softmax_cross_entropy_with_logits"
    if sparse:
        inputs["labels"] = inputs["labels"][:, None]  # squeezed inside
    x = tensors(tf, inputs, "float64")
    names = DIFFERENTIABLE[function]
    specs = {k: tf.TensorSpec([None] * t.shape.rank, t.dtype) for k, t in x.items()}
    specs["logits"] = tf.TensorSpec([None, 5], tf.float64)
    if not sparse:
        specs["labels"] = tf.TensorSpec(None, tf.float64)
    results = []
    for nn in (xtf.nn, tf.nn):
        loss = loss_fn(nn, function)

        @tf.function(input_signature=[specs])
        def run(x: dict[str, Any], loss: Callable[..., Any] = loss) -> list[Any]:
            with tf.GradientTape() as tape:
                tape.watch([x[n] for n in names])
                labels = unknown_rank_labels(tf, x["labels"])
                assert labels.shape.rank is None
                value = loss({**x, "labels": labels})
            return [value, *tape.gradient(value, [x[n] for n in names], output_gradients=x["u"])]

        results.append(run(x))
    assert_all_close(results[0], results[1], "float64", ["loss", *names])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_labels_of_unknown_rank_are_checked_at_run_time(tf, xtf, function):
    inputs = sample(function)
    sparse = function == "sparse_softmax_cross_entropy_with_logits"
    bad_labels = inputs["labels"][:3, None] if sparse else inputs["labels"][:, :, None]
    x = tensors(tf, {**inputs, "labels": bad_labels}, "float64")
    loss = loss_fn(xtf.nn, function)

    specs = {k: tf.TensorSpec([None] * t.shape.rank, t.dtype) for k, t in x.items()}
    specs.update(
        labels=tf.TensorSpec(None, x["labels"].dtype), logits=tf.TensorSpec(None, tf.float64)
    )

    @tf.function(input_signature=[specs])
    def run(x: dict[str, Any]) -> Any:
        logits = tf.ensure_shape(x["logits"], [None, 5])
        return loss({**x, "logits": logits, "labels": unknown_rank_labels(tf, x["labels"])})

    with pytest.raises(tf.errors.InvalidArgumentError, match="`labels` must have"):
        run(x)


# --- tf.Variable inputs to the core ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_variables_as_core_inputs(tf, xtf, mode):
    """xentropy's own functions on tf.Variable logits and targets: the loss and gradients of
    the same values as constant tensors."""
    rng = rng_for("variables")
    logits = rng.normal(size=(4, 5))
    probabilities = rng.dirichlet(np.ones(5), size=4)
    hidden, weight = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    indices = tf.constant([0, 4, 2, 1])
    calls = {
        "indices": lambda a, b: xentropy.softmax_cross_entropy(a, indices),
        "probabilities": lambda a, b: xentropy.softmax_cross_entropy(a, b),
        "sigmoid": lambda a, b: xentropy.sigmoid_cross_entropy(a, tf.sigmoid(b)),
        "linear": lambda a, b: xentropy.linear_cross_entropy(a, b, indices),
    }
    values = {
        "indices": (logits, probabilities),
        "probabilities": (logits, probabilities),
        "sigmoid": (logits, probabilities),
        "linear": (hidden, weight),
    }
    for name, call in calls.items():
        first, second = values[name]
        variables = [tf.Variable(first), tf.Variable(second)]

        def with_variables(
            call: Callable[..., Any] = call, variables: list[Any] = variables
        ) -> Any:
            with tf.GradientTape() as tape:
                value = call(*variables)
            return [value, *tape.gradient(value, variables)]

        run = with_variables if mode == "eager" else tf.function(with_variables)
        actual = run()
        constants = [tf.constant(first), tf.constant(second)]
        with tf.GradientTape() as tape:
            tape.watch(constants)
            value = call(*constants)
        expected = [value, *tape.gradient(value, constants)]
        if name == "indices":
            actual, expected = actual[:2], expected[:2]  # the unused variable has no gradient
        labels = [f"{name}: {i}" for i in range(len(actual))]
        assert_all_close(actual, expected, "float64", labels)


def test_variables_as_dialect_labels(tf, xtf):
    rng = rng_for("variable labels")
    labels = tf.Variable(0.9 * rng.dirichlet(np.ones(5), size=4) + 0.02)
    logits = tf.Variable(rng.normal(size=(4, 5)))
    grads = []
    for nn in (xtf.nn, tf.nn):
        with tf.GradientTape() as tape:
            loss = nn.softmax_cross_entropy_with_logits(labels, logits)
        grads.append(tape.gradient(loss, [logits, labels]))
    assert_all_close(grads[0], grads[1], "float64", ["logits", "labels"])


# --- class indices of every integer dtype ------------------------------------------------------


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_every_integer_label_dtype_equals_int64(tf, xtf, dtype, mode):
    """200 classes, above the signed range of 8 bits: class 156 (what -100 wraps to in uint8)
    is a class like any other; int8 gets its largest indices instead."""
    rng = rng_for("integer labels")
    logits = tf.constant(rng.normal(size=(3, 200)))
    labels = np.array([100, 3, 127]) if dtype == "int8" else np.array([156, 3, 199])

    def loss_and_grad(labels: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = xtf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        return [value, tape.gradient(value, logits)]

    ours = loss_and_grad if mode == "eager" else tf.function(loss_and_grad)
    actual = ours(tf.constant(labels, dtype))
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(labels, "int64"), logits)
    expected = [value, tape.gradient(value, logits)]
    assert_all_close(actual, expected, "float64", ["loss", "grad"])


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16"])
def test_small_index_dtypes_with_ignore_index_in_the_core(tf, xtf, dtype):
    """The core and linear_cross_entropy with ignore_index=-100: class 156 of uint8 labels is
    kept (in uint8, -100 wraps to 156), as with int64 labels."""
    rng = rng_for("ignore", dtype)
    logits = tf.constant(rng.normal(size=(3, 200)))
    hidden, weight = tf.constant(rng.normal(size=(3, 4))), tf.constant(rng.normal(size=(200, 4)))
    labels = np.array([156, 3, 199])
    for call in (
        lambda y: xentropy.softmax_cross_entropy(logits, y, ignore_index=-100, reduction="none"),
        lambda y: xtf.linear_cross_entropy(hidden, weight, y, ignore_index=-100, reduction="none"),
    ):
        actual = call(tf.constant(labels, dtype))
        expected = call(tf.constant(labels, "int64"))
        assert np.isfinite(actual.numpy()).all() and (actual.numpy() > 0).all()
        assert_all_close([actual], [expected], "float64", ["loss"])


# --- the fast path --------------------------------------------------------------------------------


@pytest.fixture
def exact_calls(xtf: Any, monkeypatch: Any) -> list[Any]:
    """Records each call of the exact path (``differentiable_loss``) by the TF adapter."""
    module = importlib.import_module("xentropy.backends.tensorflow._custom_gradient")
    calls: list[Any] = []
    original = module.differentiable_loss

    def recording(op: Any, *args: Any) -> Any:
        calls.append(op)
        return original(op, *args)

    monkeypatch.setattr(module, "differentiable_loss", recording)
    return calls


@pytest.mark.parametrize("function", FUNCTIONS)
def test_first_order_logits_gradient_takes_the_analytic_backward(tf, xtf, function, exact_calls):
    """A plain tape.gradient(loss, logits), eagerly: op.backward only, never the exact path
    (which the labels' gradient and a nested tape do take)."""
    x = tensors(tf, sample(function), "float32")
    loss = loss_fn(xtf.nn, function)
    (grad,) = first_order(tf, loss, ("logits",))(x)
    (expected,) = first_order(tf, loss_fn(tf.nn, function), ("logits",))(x)
    assert_all_close([grad], [expected], "float32", ["logits"])
    assert exact_calls == []
    second_order(tf, loss, ("logits",), "eager_tapes")(x)
    assert len(exact_calls) == 1
    if len(DIFFERENTIABLE[function]) > 1:
        first_order(tf, loss, DIFFERENTIABLE[function])(x)
        assert len(exact_calls) == 2


def test_first_order_in_a_function_takes_the_analytic_backward(tf, xtf, exact_calls):
    """Traced, class indices: nothing but op.backward is built for the gradient."""
    x = tensors(tf, sample("sparse_softmax_cross_entropy_with_logits"), "float32")
    loss = loss_fn(xtf.nn, "sparse_softmax_cross_entropy_with_logits")
    tf.function(first_order(tf, loss, ("logits",)))(x)
    assert exact_calls == []
    linear = linear_sample("float32", tf)
    tf.function(first_order(tf, fused_loss(xtf), LINEAR))(linear)
    assert exact_calls == []


# --- array hyperparameters: the exact path -------------------------------------------------------


def test_variable_hyperparameter_is_differentiated(tf, xtf):
    """label_smoothing as a tf.Variable: the loss and its gradient in the logits and the
    smoothing equal those of the loss written in TF ops."""
    rng = rng_for("smoothing")
    logits = tf.constant(rng.normal(size=(4, 5)))
    labels = tf.constant([0, 4, 2, 1])
    smoothing = tf.Variable(0.2, dtype=tf.float64)
    try:
        op = ops.SoftmaxCrossEntropy(label_smoothing=smoothing, reduction="sum")
        ops.checked_operator(op, logits, labels, None, prediction=logits, validate=True)
    except (TypeError, ValueError) as exc:
        pytest.skip(f"the core does not take array hyperparameters yet: {exc}")
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = xtf.apply_op(op, logits, labels, None)
    actual = [value, *tape.gradient(value, [logits, smoothing])]
    with tf.GradientTape() as tape:
        tape.watch(logits)
        expected = tf.reduce_sum(
            tf.nn.softmax_cross_entropy_with_logits(
                tf.one_hot(labels, 5, dtype=tf.float64) * (1 - smoothing) + smoothing / 5, logits
            )
        )
    reference = [expected, *tape.gradient(expected, [logits, smoothing])]
    assert_all_close(actual, reference, "float64", ["loss", "logits", "label_smoothing"])


def test_traced_hyperparameter_in_a_function(tf, xtf):
    """label_smoothing as an argument of a tf.function (a traced tensor), through the core: one
    trace for two values, each equal to the loss with that number."""
    rng = rng_for("traced smoothing")
    logits = tf.constant(rng.normal(size=(4, 5)))
    labels = tf.constant([0, 4, 2, 1])

    @tf.function
    def run(smoothing: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            tape.watch([logits, smoothing])
            value = xentropy.softmax_cross_entropy(logits, labels, label_smoothing=smoothing)
        return [value, *tape.gradient(value, [logits, smoothing])]

    try:
        results = [run(tf.constant(s, tf.float64)) for s in (0.1, 0.3)]
    except (TypeError, ValueError) as exc:
        pytest.skip(f"the core does not take traced hyperparameters yet: {exc}")
    assert run.experimental_get_tracing_count() == 1
    for s, actual in zip((0.1, 0.3), results, strict=True):
        smoothing = tf.constant(s, tf.float64)
        with tf.GradientTape() as tape:
            tape.watch([logits, smoothing])
            smoothed = tf.one_hot(labels, 5, dtype=tf.float64) * (1 - smoothing) + smoothing / 5
            value = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(smoothed, logits))
        expected = [value, *tape.gradient(value, [logits, smoothing])]
        assert_all_close(actual, expected, "float64", ["loss", "logits", "label_smoothing"])


# --- graph mode (TF1) and higher orders -------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_tf1_graph_gradients_of_gradients(tf, xtf, function):
    """tf.gradients three times in a tf.Graph run by a Session: tf.nn's derivatives."""
    inputs = sample(function)
    names = DIFFERENTIABLE[function]
    if function == "softmax_cross_entropy_with_logits":
        names = ("logits",)  # mixed derivatives: see test_hessian_vector_products_equal_tf_nn
    results = []
    for nn in (xtf.nn, tf.nn):
        graph = tf.Graph()
        with graph.as_default():
            x = tensors(tf, inputs, "float64")
            (g,) = tf.gradients(loss_fn(nn, function)(x), [x["logits"]], grad_ys=x["u"])
            second = tf.gradients(tf.reduce_sum(g * x["v"]), [x[n] for n in names])
            third = tf.gradients(tf.reduce_sum(second[0] * x["v"]), [x["logits"]])
            with tf.compat.v1.Session(graph=graph) as session:
                results.append(session.run([g, *second, *third]))
    rtol, atol = TOLERANCES["float64"]
    for name, actual, expected in zip(["grad", *names, "third"], *results, strict=True):
        assert_close(actual, expected, "float64", rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_third_order_with_nested_tapes(tf, xtf, function):
    x = tensors(tf, sample(function), "float64")
    results = []
    for nn in (xtf.nn, tf.nn):
        hvp = second_order(tf, loss_fn(nn, function), ("logits",), "eager_tapes")
        with tf.GradientTape() as tape:
            tape.watch(x["logits"])
            (h,) = hvp(x)
            directional = tf.reduce_sum(h * x["v"])
        results.append(tape.gradient(directional, x["logits"]))
    assert_all_close(results[:1], results[1:], "float64", ["third"])


def test_dense_softmax_mixed_second_derivative_is_the_derivative(tf, xtf):
    """Deliberate difference (nn's docstring): d <v, grad_logits> / d labels is
    sum_j v_j softmax_j - v_c here, the derivative; tf.nn returns zeros."""
    function = "softmax_cross_entropy_with_logits"
    x = tensors(tf, sample(function), "float64")
    u = x["u"].numpy()[:, None]
    p, v = tf.nn.softmax(x["logits"]).numpy(), x["v"].numpy()
    expected = u * ((p * v).sum(axis=1, keepdims=True) - v)
    (ours,) = second_order(tf, loss_fn(xtf.nn, function), ("labels",), "eager_tapes")(x)
    (theirs,) = second_order(tf, loss_fn(tf.nn, function), ("labels",), "eager_tapes")(x)
    assert_close(numpy64(ours), expected, "float64", rtol=1e-12, atol=1e-12)
    assert not numpy64(theirs).any()


def test_variable_weights_in_the_core(tf, xtf):
    """class_weight and pos_weight as tf.Variable: the gradient of the weights too, equal to the
    loss written with tf.nn (a weighted mean over the examples; a mean over the elements)."""
    rng = rng_for("variable weights")
    logits = tf.Variable(rng.normal(size=(4, 5)))
    indices = tf.constant([0, 4, 2, 4])
    targets = tf.Variable(rng.uniform(0.1, 0.9, size=(4, 5)))
    class_weight = tf.Variable(rng.uniform(0.5, 2.0, size=5))
    pos_weight = tf.Variable(rng.uniform(0.5, 2.0, size=5))

    def softmax_reference() -> Any:
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(indices, logits)
        weights = tf.gather(class_weight, indices)
        return tf.reduce_sum(weights * per_row) / tf.reduce_sum(weights)

    def sigmoid_reference() -> Any:
        per_entry = tf.nn.weighted_cross_entropy_with_logits(targets, logits, pos_weight)
        return tf.reduce_mean(per_entry)

    cases = [
        (
            lambda: xentropy.softmax_cross_entropy(logits, indices, class_weight=class_weight),
            softmax_reference,
            [logits, class_weight],
        ),
        (
            lambda: xentropy.sigmoid_cross_entropy(logits, targets, pos_weight=pos_weight),
            sigmoid_reference,
            [logits, targets, pos_weight],
        ),
    ]
    for ours, reference, variables in cases:
        results = []
        for fn in (ours, reference):
            with tf.GradientTape() as tape:
                value = fn()
            grads = tape.gradient(value, variables)  # tf.gather's are IndexedSlices
            results.append([value, *(tf.convert_to_tensor(g) for g in grads)])
        assert_all_close(results[0], results[1], "float64", range(len(variables) + 1))
