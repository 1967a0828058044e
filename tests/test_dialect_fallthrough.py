"""Dialect modules are complete stand-ins: the framework's other names fall through to it.

Each dialect module defines the framework's cross-entropy family and resolves every other name to
the framework's module (module ``__getattr__``, ``backends/_fallthrough.py``). Checked here:

* per dialect, a small model and its training step written against the framework module, run
  unchanged against ours: optax's ``adam`` / ``apply_updates`` / ``l2_loss`` through
  ``xentropy.backends.jax`` under ``jax.jit``; ``model.fit`` with ``MeanSquaredError`` from
  ``xentropy.backends.keras.losses``; a ``tf.GradientTape`` step with ``nn.relu`` and
  ``nn.l2_loss`` from ``xentropy.backends.tensorflow.nn``, eagerly and in ``tf.function``. The
  framework's run is the reference: the same parameters and losses, to the float32 tolerance;
* the name rules: framework names resolve (attribute and ``from ... import``), ours win, ``dir()``
  lists both, ``__all__`` / ``import *`` keep ours, unknown names raise AttributeError naming our
  module and the framework's, private names never fall through, and the module still pickles,
  inspects and type-checks as before;
* the resolution order on a throw-away package (a submodule of ours beats a framework attribute
  of the same name; a framework that cannot be imported gives AttributeError).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import pkgutil
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from tolerances import assert_close

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # as test_keras_adapter: read at first import


@dataclass(frozen=True)
class Dialect:
    module: str  # ours
    frameworks: tuple[str, ...]  # where the other names fall through, in order
    backend: str  # for require_or_skip
    borrowed: tuple[str, ...]  # framework names a user of the module calls


@dataclass(frozen=True)
class Loaded:
    spec: Dialect
    ours: ModuleType
    frameworks: list[ModuleType]


DIALECTS = {
    "jax": Dialect(
        "xentropy.backends.jax",
        ("optax.losses", "optax"),
        "jax",
        ("adam", "apply_updates", "l2_loss", "hinge_loss", "sgd", "chain", "huber_loss"),
    ),
    "jax.losses": Dialect(
        "xentropy.backends.jax.losses",
        ("optax.losses",),
        "jax",
        ("l2_loss", "hinge_loss", "squared_error", "cosine_distance"),
    ),
    "keras": Dialect(
        "xentropy.backends.keras",
        ("keras.losses",),
        "keras",
        ("MeanSquaredError", "Loss", "get", "serialize", "deserialize", "Huber"),
    ),
    "keras.losses": Dialect(
        "xentropy.backends.keras.losses",
        ("keras.losses",),
        "keras",
        ("MeanSquaredError", "Loss", "get", "serialize", "deserialize", "mean_squared_error"),
    ),
    "tensorflow.nn": Dialect(
        "xentropy.backends.tensorflow.nn",
        ("tensorflow.nn",),
        "tensorflow",
        ("relu", "softmax", "log_softmax", "l2_loss", "sigmoid", "moments"),
    ),
}


@pytest.fixture(params=list(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> Loaded:
    spec = DIALECTS[request.param]
    ours = require_or_skip(spec.backend, spec.module)
    return Loaded(spec, ours, [require_or_skip(spec.backend, name) for name in spec.frameworks])


def own_names(module: ModuleType) -> set[str]:
    return {name for name in vars(module) if not name.startswith("_")}


def first_having(frameworks: list[ModuleType], name: str) -> Any:
    return getattr(next(f for f in frameworks if hasattr(f, name)), name)


# --- the name rules, per dialect --------------------------------------------------------------


def test_framework_names_fall_through(dialect: Loaded) -> None:
    spec, ours, frameworks = dialect.spec, dialect.ours, dialect.frameworks
    for name in spec.borrowed:
        assert name not in vars(ours), name  # really borrowed, not defined here
        assert getattr(ours, name) is first_having(frameworks, name), name


def test_from_import_of_a_framework_name(dialect: Loaded) -> None:
    spec, frameworks = dialect.spec, dialect.frameworks
    namespace: dict[str, Any] = {}
    exec(f"from {spec.module} import {', '.join(spec.borrowed)}", namespace)
    for name in spec.borrowed:
        assert namespace[name] is first_having(frameworks, name), name


def test_our_names_win(dialect: Loaded) -> None:
    ours, frameworks = dialect.ours, dialect.frameworks
    shared = [n for n in ours.__all__ if any(hasattr(f, n) for f in frameworks)]
    assert shared, "a dialect defines some of the framework's names"
    for name in shared:
        assert getattr(ours, name) is vars(ours)[name], name
        assert all(getattr(f, name, None) is not vars(ours)[name] for f in frameworks), name


def test_jax_softmax_cross_entropy_is_ours() -> None:
    optax = require_or_skip("jax", "optax")
    xj = require_or_skip("jax", "xentropy.backends.jax")
    assert xj.softmax_cross_entropy is not optax.softmax_cross_entropy
    assert xj.softmax_cross_entropy is xj.losses.softmax_cross_entropy
    # the submodule named like optax's is ours, itself a stand-in for optax.losses
    assert xj.losses is importlib.import_module("xentropy.backends.jax.losses")
    assert xj.losses.l2_loss is optax.losses.l2_loss


def test_dir_lists_both(dialect: Loaded) -> None:
    ours, frameworks = dialect.ours, dialect.frameworks
    listed = set(dir(ours))
    assert own_names(ours) | set(ours.__all__) <= listed
    for framework in frameworks:
        public = {n for n in dir(framework) if not n.startswith("_")}
        assert public <= listed, sorted(public - listed)[:5]
    assert not {n for n in listed - set(vars(ours)) if n.startswith("_")}  # nothing private added
    for name in listed - set(vars(ours)):  # every listed name resolves
        getattr(ours, name)


def test_all_and_star_import_stay_ours(dialect: Loaded) -> None:
    spec, ours = dialect.spec, dialect.ours
    assert set(ours.__all__) <= own_names(ours)
    namespace: dict[str, Any] = {}
    exec(f"from {spec.module} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(ours.__all__)
    assert not set(spec.borrowed) & set(ours.__all__)


def test_unknown_name_raises_naming_both_modules(dialect: Loaded) -> None:
    spec, ours = dialect.spec, dialect.ours
    name = "no_such_name_anywhere"
    with pytest.raises(AttributeError) as raised:
        getattr(ours, name)
    message = str(raised.value)
    assert repr(spec.module) in message and repr(name) in message
    assert all(repr(framework) in message for framework in spec.frameworks), message
    assert raised.value.name == name and raised.value.obj is ours
    assert not hasattr(ours, name)
    assert getattr(ours, name, "default") == "default"
    with pytest.raises(ImportError):
        exec(f"from {spec.module} import {name}", {})


def test_private_names_do_not_fall_through(dialect: Loaded) -> None:
    ours, frameworks = dialect.ours, dialect.frameworks
    private = {n for f in frameworks for n in dir(f) if n.startswith("_")} - set(vars(ours))
    private |= {"__wrapped__", "_private", "__test__", "_pytestfixturefunction"}
    for name in private:
        assert not hasattr(ours, name), name
    with pytest.raises(AttributeError, match=r"has no attribute '__wrapped__'$"):
        ours.__wrapped__
    assert inspect.unwrap(ours) is ours


def test_module_still_pickles_and_inspects(dialect: Loaded) -> None:
    spec, ours, frameworks = dialect.spec, dialect.ours, dialect.frameworks
    function = vars(ours)[next(n for n in ours.__all__ if inspect.isfunction(vars(ours)[n]))]
    assert pickle.loads(pickle.dumps(function)) is function
    assert inspect.getmodule(function) is sys.modules[function.__module__]
    assert typing.get_type_hints(function)
    members = dict(inspect.getmembers(ours))
    assert members[function.__name__] is function
    borrowed = spec.borrowed[0]
    assert members[borrowed] is first_having(frameworks, borrowed)


# --- packages: submodules load lazily and win --------------------------------------------------


@pytest.mark.parametrize("package", ["jax", "keras", "tensorflow"])
def test_every_public_submodule_is_an_attribute(package: str) -> None:
    """E.g. ``xentropy.backends.tensorflow.losses`` once that file exists."""
    ours = require_or_skip(package, f"xentropy.backends.{package}")
    submodules = [i.name for i in pkgutil.iter_modules(ours.__path__) if i.name[0] != "_"]
    assert submodules
    for name in submodules:
        expected = importlib.import_module(f"{ours.__name__}.{name}")
        assert getattr(ours, name) is expected, name
        assert name in dir(ours)


def test_tensorflow_package_is_not_a_stand_in_for_tf() -> None:
    """The package holds dialect modules (``nn``, ``losses``); ``tf.constant`` is not one of its
    names (``tf.losses`` is Keras's, while ours mirrors ``tf.compat.v1.losses``)."""
    require_or_skip("tensorflow")
    xtf = importlib.import_module("xentropy.backends.tensorflow")
    assert not hasattr(xtf, "constant")
    with pytest.raises(AttributeError, match=r"^module 'xentropy.backends.tensorflow' has no"):
        xtf.constant
    assert xtf.nn is importlib.import_module("xentropy.backends.tensorflow.nn")


def test_resolution_order_on_a_throwaway_package(tmp_path: Path, monkeypatch) -> None:
    """A submodule of ours beats a framework attribute of the same name, also before it is
    imported (``json.decoder`` here); a framework that cannot be imported is an AttributeError."""
    package = tmp_path / "fallthrough_probe"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from xentropy.backends import _fallthrough\n"
        "dumps = 'ours'\n"
        "def __getattr__(name):\n"
        "    return _fallthrough.resolve(__name__, name, ('json', 'no_such_framework_module'))\n"
        "def __dir__():\n"
        "    return _fallthrough.names(__name__, ('json', 'no_such_framework_module'))\n"
    )
    (package / "decoder.py").write_text("MINE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import json

    probe = importlib.import_module("fallthrough_probe")
    try:
        assert probe.dumps == "ours"  # defined here
        assert probe.decoder.MINE  # our submodule, not json.decoder
        assert probe.loads is json.loads  # the first framework
        with pytest.raises(AttributeError, match=r"'no_such_framework_module'.*cannot be imported"):
            probe.not_in_json
        assert {"decoder", "dumps", "loads", "JSONDecoder"} <= set(dir(probe))
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "fallthrough_probe"]:
            del sys.modules[name]


# --- a model and its training step, written against the framework, run against ours -----------


def jax_training_run(optax_like: ModuleType, steps: int = 5) -> tuple[Any, list[float]]:
    """A linear classifier trained with Adam; every optax name is taken from ``optax_like``."""
    jax = importlib.import_module("jax")
    jnp = importlib.import_module("jax.numpy")
    rng = rng_for("fallthrough", "jax")
    x = jnp.asarray(rng.normal(size=(16, 4)), dtype=jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=16))
    params = {
        "w": jnp.asarray(rng.normal(size=(4, 3)) * 0.5, dtype=jnp.float32),
        "b": jnp.zeros(3, jnp.float32),
    }
    optimizer = optax_like.adam(learning_rate=0.1)

    def loss_fn(params: dict[str, Any]) -> Any:
        logits = x @ params["w"] + params["b"]
        data = optax_like.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return data + 1e-2 * optax_like.l2_loss(params["w"]).sum()

    @jax.jit
    def step(params: dict[str, Any], state: Any) -> tuple[dict[str, Any], Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return optax_like.apply_updates(params, updates), state, loss

    state = optimizer.init(params)
    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return params, losses


def test_jax_training_step_with_optax_names_from_our_module() -> None:
    optax = require_or_skip("jax", "optax")
    xj = require_or_skip("jax", "xentropy.backends.jax")
    expected_params, expected_losses = jax_training_run(optax)
    params, losses = jax_training_run(xj)
    assert expected_losses[-1] < expected_losses[0]  # it trains
    assert_close(losses, expected_losses, "float32", msg="loss history")
    for name in ("w", "b"):
        assert_close(params[name], expected_params[name], "float32", grad=True, msg=name)


def keras_training_run(losses_like: ModuleType) -> tuple[list[Any], list[float]]:
    """A two-headed model (regression + classification), one epoch of ``model.fit``."""
    keras = importlib.import_module("keras")
    rng = rng_for("fallthrough", "keras")
    x = rng.normal(size=(32, 4)).astype("float32")
    y_regression = rng.normal(size=(32, 1)).astype("float32")
    y_class = np.eye(3, dtype="float32")[rng.integers(0, 3, size=32)]
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = [keras.layers.Dense(1)(hidden), keras.layers.Dense(3)(hidden)]
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1),
        loss=[
            losses_like.MeanSquaredError(),
            losses_like.CategoricalCrossentropy(from_logits=True),
        ],
    )
    history = model.fit(
        x, [y_regression, y_class], batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    return model.get_weights(), history.history["loss"]


def test_keras_fit_with_keras_names_from_our_losses_module() -> None:
    keras = require_or_skip("keras")
    xlosses = require_or_skip("keras", "xentropy.backends.keras.losses")
    assert xlosses.MeanSquaredError is keras.losses.MeanSquaredError
    expected_weights, expected_loss = keras_training_run(keras.losses)
    weights, loss = keras_training_run(xlosses)
    assert_close(loss, expected_loss, "float32", msg="epoch loss")
    for index, (actual, expected) in enumerate(zip(weights, expected_weights, strict=True)):
        assert_close(actual, expected, "float32", grad=True, msg=f"weight {index}")


def test_keras_serialisation_and_lookups_are_unaffected() -> None:
    keras = require_or_skip("keras")
    xlosses = require_or_skip("keras", "xentropy.backends.keras.losses")
    loss = xlosses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    config = xlosses.serialize(loss)  # keras.losses.serialize, reached through our module
    assert config == keras.losses.serialize(loss)
    for deserialize in (keras.losses.deserialize, xlosses.deserialize):
        rebuilt = deserialize(config)
        assert type(rebuilt) is xlosses.CategoricalCrossentropy
        assert rebuilt.get_config() == loss.get_config()
    assert keras.losses.get("categorical_crossentropy") is keras.losses.categorical_crossentropy
    assert xlosses.get("mean_squared_error") is keras.losses.mean_squared_error
    assert type(keras.losses.get(config)) is xlosses.CategoricalCrossentropy
    assert keras.saving.get_registered_object("xentropy>CategoricalCrossentropy") is type(loss)


def tf_training_run(nn_like: ModuleType, *, graph: bool, steps: int = 3) -> list[Any]:
    """A two-layer classifier trained by plain SGD from a ``tf.GradientTape``."""
    tf = importlib.import_module("tensorflow")
    rng = rng_for("fallthrough", "tensorflow")
    x = tf.constant(rng.normal(size=(16, 4)), tf.float32)
    labels = tf.constant(np.eye(3)[rng.integers(0, 3, size=16)], tf.float32)
    variables = [
        tf.Variable(rng.normal(size=(4, 8)) * 0.5, dtype=tf.float32),
        tf.Variable(tf.zeros(8)),
        tf.Variable(rng.normal(size=(8, 3)) * 0.5, dtype=tf.float32),
    ]

    def step() -> Any:
        w1, b1, w2 = variables
        with tf.GradientTape() as tape:
            logits = nn_like.relu(x @ w1 + b1) @ w2
            data = nn_like.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            loss = tf.reduce_mean(data) + 1e-2 * nn_like.l2_loss(w2)
        for variable, gradient in zip(variables, tape.gradient(loss, variables), strict=True):
            variable.assign_sub(0.5 * gradient)
        return loss

    run = tf.function(step) if graph else step
    losses = [run() for _ in range(steps)]
    return [*losses, *variables]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_tf_gradient_tape_step_with_tf_nn_names_from_our_module(graph: bool) -> None:
    tf = require_or_skip("tensorflow")
    xnn = require_or_skip("tensorflow", "xentropy.backends.tensorflow.nn")
    assert xnn.relu is tf.nn.relu
    expected = tf_training_run(tf.nn, graph=graph)
    actual = tf_training_run(xnn, graph=graph)
    assert float(expected[2]) < float(expected[0])  # it trains
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_close(np.asarray(a), np.asarray(e), "float32", grad=True, msg=f"output {index}")
