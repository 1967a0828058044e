"""``xentropy.backends.keras`` against ``keras.losses``: parity, serialisation, training.

Keras fixes its backend at import, so this module works on two levels:

* in this process, on the backend Keras loaded (TensorFlow unless ``KERAS_BACKEND`` says
  otherwise or another module imported Keras first): parity of every case of
  ``keras_fit_script.CASES`` with the native ``keras.losses`` class (per-example losses, the
  default reduction, and the vector-Jacobian product with respect to ``y_pred``; rtol 1e-5,
  atol 1e-6 in float32), signatures, configs, and the documented differences;
* in one subprocess per Keras backend (jax, tensorflow, torch), ``tests/keras_fit_script.py``:
  ``model.fit`` with each of the five classes (the loss decreases; the core's backward is what
  autodiff calls), ``model.save`` / ``keras.models.load_model`` (our class, the same config, the
  same predictions), out-of-range labels, and parity on that backend (the JAX run keeps the
  ``(6, 5)`` cases: every further shape costs JAX hundreds of XLA compilations, and the shape
  handling is checked on the other backends).

The three subprocesses start together when the module's first test runs (if a selected test
needs them), so that they run while the in-process tests do.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # read by Keras at its first import only
import keras_fit_script as script

try:
    keras = require_or_skip("keras")
    xkeras = require_or_skip("keras", "xentropy.backends.keras")
except pytest.skip.Exception as exc:  # a module-level skip needs allow_module_level
    pytest.skip(str(exc), allow_module_level=True)

from xentropy import ops

BACKEND: str = keras.backend.backend()
CLASSES = (
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy",
)
FUNCTIONS = {
    "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "BinaryFocalCrossentropy": "binary_focal_crossentropy",
    "CategoricalFocalCrossentropy": "categorical_focal_crossentropy",
}
# non-default options of each class, for the config tests
OPTIONS: dict[str, dict[str, Any]] = {
    "BinaryCrossentropy": {"from_logits": True, "label_smoothing": 0.1, "axis": 1},
    "CategoricalCrossentropy": {"from_logits": True, "label_smoothing": 0.2, "axis": 1},
    "SparseCategoricalCrossentropy": {"from_logits": True, "ignore_class": 255},
    "BinaryFocalCrossentropy": {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5},
    "CategoricalFocalCrossentropy": {"alpha": [0.2, 0.3, 0.5], "gamma": 1.0, "from_logits": True},
}
# a (N, C) probability / logit pair used by the single-case tests
LOGITS = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [0.0, 3.0, -2.0]], "f4")
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
ONE_HOT = np.eye(3, dtype="f4")[[2, 1, 0, 1]]


def numpy(x: Any) -> np.ndarray:
    return script.to_numpy(x)


def assert_parity(errors: dict[str, float], what: str) -> None:
    """``errors`` from ``compare_case``: each at most 1 (NaN fails)."""
    bad = {k: v for k, v in errors.items() if not v <= 1.0}
    assert not bad, (
        f"{what}: errors beyond rtol={script.RTOL:g}, atol={script.ATOL:g} "
        f"(ratio to the tolerance; NaN: NaN/inf mismatch): {bad}"
    )


# --- parity on the backend loaded in this process -----------------------------------------


@pytest.mark.parametrize("case", script.CASES, ids=[c.id for c in script.CASES])
def test_parity_with_keras(case: script.Case) -> None:
    if BACKEND not in case.backends:
        pytest.skip(f"keras.losses on {BACKEND}: {case.note}")
    assert_parity(script.compare_case(case), f"{case.id} on {BACKEND}")


# --- the class surface --------------------------------------------------------------------


VALIDATE_PARAMETER = ("validate", True, inspect.Parameter.KEYWORD_ONLY)


@pytest.mark.parametrize("name", CLASSES)
def test_constructor_matches_keras(name: str) -> None:
    """Keras's parameters (names, defaults, kinds, order), then keyword-only ``validate``."""
    ours = inspect.signature(getattr(xkeras, name).__init__).parameters
    theirs = inspect.signature(getattr(keras.losses, name).__init__).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        *((p.name, p.default, p.kind) for p in theirs.values()),
        VALIDATE_PARAMETER,
    ]
    loss = getattr(xkeras, name)()
    assert isinstance(loss, keras.losses.Loss)
    assert loss.name == getattr(keras.losses, name)().name
    assert loss.reduction == "sum_over_batch_size"


@pytest.mark.parametrize("name", CLASSES)
def test_function_signatures_match_keras(name: str) -> None:
    function = FUNCTIONS[name]
    ours = inspect.signature(getattr(xkeras, function)).parameters
    theirs = inspect.signature(getattr(keras.losses, function)).parameters
    assert [(p.name, p.default) for p in ours.values()] == [
        *((p.name, p.default) for p in theirs.values()),
        VALIDATE_PARAMETER[:2],
    ]
    assert ours["validate"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("name", CLASSES)
def test_config_round_trip(name: str) -> None:
    cls = getattr(xkeras, name)
    loss = cls(**OPTIONS[name], reduction="sum", name="my_loss")
    config = loss.get_config()
    # Keras's config is a subset of ours, with the same values
    native = getattr(keras.losses, name)(**OPTIONS[name], reduction="sum", name="my_loss")
    assert {k: config[k] for k in native.get_config()} == native.get_config()
    assert cls.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(loss)
    assert serialized["registered_name"] == f"xentropy>{name}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is cls
    assert restored.get_config() == config
    for key, value in OPTIONS[name].items():
        assert getattr(restored, key) == value


def test_config_keeps_what_keras_drops() -> None:
    """``axis`` of SparseCategoricalCrossentropy and an explicit ``dtype`` survive a round trip
    (``keras.losses`` drops both)."""
    loss = xkeras.SparseCategoricalCrossentropy(axis=1, dtype="float16")
    config = loss.get_config()
    assert config["axis"] == 1 and config["dtype"] == "float16"
    assert "axis" not in keras.losses.SparseCategoricalCrossentropy(axis=1).get_config()
    clone = xkeras.SparseCategoricalCrossentropy.from_config(config)
    assert clone.axis == 1 and clone.dtype == "float16"
    assert "dtype" not in xkeras.SparseCategoricalCrossentropy().get_config()


@pytest.mark.parametrize("name", CLASSES)
def test_functions_are_the_classes_without_reduction(name: str) -> None:
    options = {k: v for k, v in OPTIONS[name].items() if k != "axis"}
    y_true = np.array([2, 1, 0, 1]) if name.startswith("Sparse") else ONE_HOT
    y_pred = LOGITS if options.get("from_logits") else PROBS
    by_class = getattr(xkeras, name)(**options, reduction=None)(y_true, y_pred)
    by_function = getattr(xkeras, FUNCTIONS[name])(y_true, y_pred, **options)
    np.testing.assert_array_equal(numpy(by_class), numpy(by_function))


def test_options_are_read_at_each_call() -> None:
    loss = xkeras.CategoricalCrossentropy(reduction=None)
    loss.from_logits = True
    expected = xkeras.CategoricalCrossentropy(from_logits=True, reduction=None)(ONE_HOT, LOGITS)
    np.testing.assert_array_equal(numpy(loss(ONE_HOT, LOGITS)), numpy(expected))
    assert loss.get_config()["from_logits"] is True


@pytest.mark.parametrize("reduction", ["sum", "mean_with_sample_weight", "sum_over_batch_size"])
def test_sample_weight_and_reduction_are_keras_own(reduction: str) -> None:
    weights = np.array([0.5, 2.0, 0.0, 1.0], "f4")
    for name in ("CategoricalCrossentropy", "SparseCategoricalCrossentropy"):
        y_true = np.array([2, 1, 0, 1]) if name.startswith("Sparse") else ONE_HOT
        ours = getattr(xkeras, name)(from_logits=True, reduction=reduction)
        theirs = getattr(keras.losses, name)(from_logits=True, reduction=reduction)
        np.testing.assert_allclose(
            numpy(ours(y_true, LOGITS, sample_weight=weights)),
            numpy(theirs(y_true, LOGITS, sample_weight=weights)),
            rtol=script.RTOL,
            atol=script.ATOL,
        )


def test_16_bit_dtype_computes_in_float32() -> None:
    """``dtype="float16"``: the loss comes back in float16, rounded once from float32."""
    loss = xkeras.CategoricalCrossentropy(from_logits=True, dtype="float16", reduction=None)
    value = numpy(loss(ONE_HOT, LOGITS))
    assert value.dtype == np.float16
    exact = xkeras.CategoricalCrossentropy(from_logits=True, reduction=None)(
        ONE_HOT, LOGITS.astype("float16").astype("float32")
    )
    np.testing.assert_array_equal(value, numpy(exact).astype(np.float16))


def test_sparse_class_axis_other_than_last() -> None:
    """Ours takes any class axis (Keras's TensorFlow and JAX backends only the last one): the
    same as CategoricalCrossentropy (parity-tested above) on the one-hot targets."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype("f4")
    labels = rng.integers(0, 5, size=(3, 4))
    one_hot = np.moveaxis(np.eye(5, dtype="f4")[labels], -1, 1)
    for from_logits, y_pred in ((True, logits), (False, script._softmax(logits, axis=1))):
        sparse = xkeras.SparseCategoricalCrossentropy(from_logits=from_logits, axis=1)
        dense = xkeras.CategoricalCrossentropy(from_logits=from_logits, axis=1)
        np.testing.assert_allclose(
            numpy(sparse(labels, y_pred)), numpy(dense(one_hot, y_pred)), rtol=1e-6
        )


# --- the documented differences from keras.losses -----------------------------------------


def test_out_of_range_label_raises_eagerly_and_is_nan_traced() -> None:
    """S02: a label equal to C. Ours: a ValueError eagerly (also the backend's own class, where
    Keras raises one); NaN loss and gradient row traced."""
    report = script.out_of_range_checks()
    check_out_of_range(report, BACKEND)


def check_out_of_range(report: dict[str, Any], backend: str) -> None:
    # the class name: ClassIndexOutOfRange (a ValueError), [and the backend's class]
    assert report["ours_eager"].startswith("ClassIndexOutOfRange"), report
    # what keras.losses does (asserted so that this documentation notices a Keras change)
    native = {"tensorflow": "InvalidArgumentError", "torch": "IndexError"}
    if backend == "jax":
        assert report["keras_eager"][2] == 0.0, report  # silently 0
        assert report["ours_eager"] == "ClassIndexOutOfRange", report
    else:
        assert report["keras_eager"] == native[backend], report
        assert report["ours_eager"] == f"ClassIndexOutOfRange[{native[backend]}]", report
    if "ours_traced" in report:  # torch: Keras trains eagerly, the checks always run
        traced = report["ours_traced"]
        assert math.isnan(traced[2]) and all(math.isfinite(v) for v in traced[:2] + traced[3:])
        assert report["ours_traced_grad_rows_nan"] == [False, False, True, False], report


@pytest.mark.parametrize(
    ("anchor", "name", "options", "y_true", "y_pred", "argument"),
    [
        # a negative probability (Keras clips it)
        ("C04", "CategoricalCrossentropy", {}, ONE_HOT, PROBS * [[-1.0, 1.0, 1.0]], "y_pred"),
        # a negative target entry (Keras returns a negative loss)
        (
            "D06",
            "CategoricalCrossentropy",
            {"from_logits": True},
            ONE_HOT * -0.5,
            LOGITS,
            "y_true",
        ),
        # a probability above 1
        ("P03", "BinaryCrossentropy", {}, ONE_HOT, PROBS * 2.0, "y_pred"),
        # a target outside [0, 1]
        ("B04", "BinaryCrossentropy", {"from_logits": True}, ONE_HOT * 1.5, LOGITS, "y_true"),
        ("P06", "BinaryFocalCrossentropy", {}, ONE_HOT * 1.5, PROBS, "y_true"),
        ("C04", "CategoricalFocalCrossentropy", {}, ONE_HOT, PROBS * [[-1.0, 1.0, 1.0]], "y_pred"),
    ],
    ids=["C04", "D06", "P03", "B04", "P06-focal", "C04-focal"],
)
def test_values_outside_the_domain_raise(
    anchor: str, name: str, options: dict[str, Any], y_true: Any, y_pred: Any, argument: str
) -> None:
    y_true, y_pred = np.asarray(y_true, "f4"), np.asarray(y_pred, "f4")
    native = getattr(keras.losses, name)(**options)
    if BACKEND == "torch" and anchor == "P06":  # F.binary_cross_entropy checks its targets
        with pytest.raises(RuntimeError):
            native(y_true, y_pred)
    else:
        assert np.isfinite(numpy(native(y_true, y_pred)))  # Keras computes a number
    with pytest.raises(ValueError, match=f"{argument} must lie in"):
        getattr(xkeras, name)(**options)(y_true, y_pred)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="only Keras's TensorFlow backend does it")
def test_cached_logits_of_an_activation_are_not_used() -> None:
    """Keras on TensorFlow swaps a softmax/sigmoid output for the logits cached on it; we use
    the probabilities given, as Keras on JAX and PyTorch does."""
    z = keras.ops.convert_to_tensor(np.array([[20.0, 0.0, -20.0]], "f4"))
    y_true = np.array([[0.0, 0.0, 1.0]], "f4")
    softmax_output = keras.activations.softmax(z)
    plain = np.asarray(softmax_output)  # the same probabilities, without the cached logits
    ours = xkeras.CategoricalCrossentropy(reduction=None)
    theirs = keras.losses.CategoricalCrossentropy(reduction=None)
    np.testing.assert_allclose(numpy(theirs(y_true, softmax_output)), [40.0], rtol=1e-6)
    np.testing.assert_allclose(numpy(ours(y_true, softmax_output)), [-math.log(1e-7)], rtol=1e-6)
    np.testing.assert_array_equal(numpy(ours(y_true, softmax_output)), numpy(theirs(y_true, plain)))
    # whatever the activation: Keras's BinaryCrossentropy of a softmax output is a sigmoid
    # cross entropy of the softmax's logits
    z2 = keras.ops.convert_to_tensor(np.array([[2.0, -1.0], [0.5, 0.3]], "f4"))
    t2 = np.array([[1.0, 0.0], [0.0, 1.0]], "f4")
    output = keras.activations.softmax(z2)
    bce_ours = numpy(xkeras.BinaryCrossentropy(reduction=None)(t2, output))
    bce_theirs = numpy(keras.losses.BinaryCrossentropy(reduction=None)(t2, output))
    bce_plain = numpy(keras.losses.BinaryCrossentropy(reduction=None)(t2, np.asarray(output)))
    np.testing.assert_allclose(bce_ours, bce_plain, rtol=1e-6)
    assert not np.allclose(bce_theirs, bce_plain, rtol=0.1)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="only Keras's TensorFlow backend does it")
def test_sparse_probabilities_are_normalised_before_the_clip() -> None:
    """Keras on TensorFlow clips the probabilities, then normalises them (a sparse softmax of
    their log), so its gradient is 0 at an exact 0; we normalise first, as Keras on JAX and
    PyTorch does (the ``sparse-probs-saturated`` parity case there), and the normalisation's
    gradient reaches every entry. The values agree."""
    probs, labels = np.array([[0.5, 0.5, 0.0, 0.0, 0.0]], "f4"), np.array([0])
    results = {}
    for side, module in (("ours", xkeras), ("keras", keras.losses)):
        loss = module.SparseCategoricalCrossentropy(reduction=None)
        results[side] = script.value_and_vjp(lambda p, f=loss: f(labels, p), probs, np.ones)
    np.testing.assert_allclose(results["ours"][0], results["keras"][0], rtol=1e-6)
    np.testing.assert_allclose(results["ours"][1], [[-1.0, 1.0, 1.0, 1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(results["keras"][1], [[-1.0, 1.0, 0.0, 0.0, 0.0]], rtol=1e-6)


def test_focal_losses_from_logits_are_exact() -> None:
    """Keras clips softmax / sigmoid probabilities in its focal losses (categorical on every
    backend, binary on JAX and PyTorch); ours are the exact formulas for logits of any size."""
    z = np.array([[30.0, 0.0, -30.0], [0.0, 1.0, 2.0]], "f4")
    t = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], "f4")
    z64 = z.astype(np.float64)
    log_p = z64 - np.log(np.exp(z64 - z64.max(-1, keepdims=True)).sum(-1, keepdims=True))
    log_p -= z64.max(-1, keepdims=True)
    p = np.exp(log_p)
    categorical = -(0.25 * t * (1 - p) ** 2 * log_p).sum(-1)
    ours = xkeras.CategoricalFocalCrossentropy(from_logits=True, reduction=None)(t, z)
    np.testing.assert_allclose(numpy(ours), categorical, rtol=1e-6)
    theirs = keras.losses.CategoricalFocalCrossentropy(from_logits=True, reduction=None)(t, z)
    assert numpy(theirs)[0] == pytest.approx(0.25 * -math.log(1e-7), rel=1e-5)  # clipped
    x = np.array([[40.0, -40.0, 3.0]], "f4")
    y = np.array([[0.0, 1.0, 1.0]], "f4")
    x64 = x.astype(np.float64)
    sig = 1 / (1 + np.exp(-x64))
    ce = np.maximum(x64, 0) - x64 * y + np.log1p(np.exp(-np.abs(x64)))
    miss = y * (1 - sig) + (1 - y) * sig
    binary = (ce * miss**2).mean(-1)
    ours_binary = xkeras.BinaryFocalCrossentropy(from_logits=True, reduction=None)(y, x)
    np.testing.assert_allclose(numpy(ours_binary), binary, rtol=1e-6)


# --- validate: the eager value checks, on by default --------------------------------------

BAD_ONE_HOT = ONE_HOT.copy()
BAD_ONE_HOT[1, 0] = -0.5  # a negative target: categorical rows
BAD_BINARY = ONE_HOT.copy()
BAD_BINARY[1, 0] = 1.5  # a target above 1: binary entries, averaged over the row
# name -> (options, bad y_true, the same with valid values, y_pred, what the error names); the
# bad entry is in example 1 each time
VALIDATE_CASES: dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, str]] = {
    "BinaryCrossentropy": ({"from_logits": True}, BAD_BINARY, ONE_HOT, LOGITS, r"got 1\.5"),
    "CategoricalCrossentropy": ({"from_logits": True}, BAD_ONE_HOT, ONE_HOT, LOGITS, r"got -0\.5"),
    "SparseCategoricalCrossentropy": (
        {"from_logits": True},
        np.array([2, 3, 0, 1]),
        np.array([2, 1, 0, 1]),
        LOGITS,
        "class index 3",
    ),
    "BinaryFocalCrossentropy": ({}, BAD_BINARY, ONE_HOT, PROBS, r"got 1\.5"),
    "CategoricalFocalCrossentropy": ({}, BAD_ONE_HOT, ONE_HOT, PROBS, r"got -0\.5"),
}
BAD_EXAMPLE = np.array([False, True, False, False])


@pytest.mark.parametrize("name", CLASSES)
def test_validate_is_on_by_default(name: str) -> None:
    """An invalid target raises ValueError naming the value: class and function, by default."""
    options, bad, _, y_pred, match = VALIDATE_CASES[name]
    assert getattr(xkeras, name)().validate is True
    with pytest.raises(ValueError, match=match):
        getattr(xkeras, name)(**options)(bad, y_pred)
    with pytest.raises(ValueError, match=match):
        getattr(xkeras, FUNCTIONS[name])(bad, y_pred, **options)


@pytest.mark.parametrize("name", CLASSES)
def test_validate_false_gives_nan_for_the_bad_example_only(name: str) -> None:
    """validate=False (class or function): no error; the bad example's loss is NaN, the others
    equal the validated loss on valid targets."""
    options, bad, good, y_pred, _ = VALIDATE_CASES[name]
    expected = numpy(getattr(xkeras, name)(**options, reduction=None)(good, y_pred))
    by_class = getattr(xkeras, name)(**options, reduction=None, validate=False)(bad, y_pred)
    by_function = getattr(xkeras, FUNCTIONS[name])(bad, y_pred, **options, validate=False)
    for losses in (numpy(by_class), numpy(by_function)):
        assert np.isnan(losses[BAD_EXAMPLE]).all() and np.isfinite(losses[~BAD_EXAMPLE]).all()
        np.testing.assert_allclose(losses[~BAD_EXAMPLE], expected[~BAD_EXAMPLE], rtol=1e-6)
    # the default reduction: NaN, not an error
    assert np.isnan(numpy(getattr(xkeras, name)(**options, validate=False)(bad, y_pred)))


@pytest.mark.parametrize("name", CLASSES)
def test_validate_config_round_trip(name: str) -> None:
    """``validate`` is kept by ``get_config`` (True by default), restored by ``from_config`` and
    by Keras's serialisation, and honoured by the restored loss."""
    cls = getattr(xkeras, name)
    assert cls().get_config()["validate"] is True
    loss = cls(**OPTIONS[name], validate=False)
    config = loss.get_config()
    assert config["validate"] is False
    assert cls.from_config(config).validate is False
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(loss)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls and restored.validate is False
    assert restored.get_config() == config
    options, bad, _, y_pred, _ = VALIDATE_CASES[name]
    restored = cls.from_config({**cls(**options, validate=False).get_config(), "reduction": None})
    assert np.isnan(numpy(restored(bad, y_pred))[1])


def test_validate_is_keyword_only_and_read_at_each_call() -> None:
    with pytest.raises(TypeError):
        xkeras.SparseCategoricalCrossentropy(
            True, None, "sum_over_batch_size", -1, "name", None, False
        )
    options, bad, _, y_pred, match = VALIDATE_CASES["SparseCategoricalCrossentropy"]
    loss = xkeras.SparseCategoricalCrossentropy(**options, reduction=None)
    loss.validate = False
    assert np.isnan(numpy(loss(bad, y_pred))[1])
    assert loss.get_config()["validate"] is False
    loss.validate = True
    with pytest.raises(ValueError, match=match):
        loss(bad, y_pred)


# --- one subprocess per Keras backend: model.fit, save / load, parity there ---------------

SCRIPT = Path(__file__).with_name("keras_fit_script.py")
SUBPROCESS_TIMEOUT = 600


def _parity_flag(backend: str) -> str:
    if backend == BACKEND:
        return "--parity=none"  # done in this process
    return "--parity=main" if backend == "jax" else "--parity=all"


class _Runs:
    """The subprocess of each backend, all started on first use, each awaited on demand."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory()
        self._started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
        self._reports: dict[str, dict[str, Any]] = {}

    def start_all(self) -> None:
        if self._started:
            return
        for backend in script.BACKENDS:
            out = Path(self._directory.name) / f"{backend}.json"
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            command = [sys.executable, str(SCRIPT), str(out), _parity_flag(backend)]
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            self._started[backend] = (process, out)

    def report(self, backend: str) -> dict[str, Any]:
        if backend not in self._reports:
            self.start_all()
            process, out = self._started[backend]
            try:
                output, _ = process.communicate(timeout=SUBPROCESS_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                pytest.fail(f"keras_fit_script on {backend} timed out:\n{output[-4000:]}")
            if process.returncode != 0:
                pytest.fail(f"keras_fit_script on {backend} failed:\n{output[-4000:]}")
            self._reports[backend] = json.loads(out.read_text())
        return self._reports[backend]

    def close(self) -> None:
        for process, _ in self._started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
        self._directory.cleanup()


@pytest.fixture(scope="module")
def runs() -> Any:
    started = _Runs()
    yield started
    started.close()


@pytest.fixture(scope="module", autouse=True)
def _start_subprocesses_early(request: pytest.FixtureRequest, runs: _Runs) -> None:
    """Start the subprocesses before the in-process tests, if a selected test needs them."""
    if any(
        item.module is request.module and "runs" in getattr(item, "fixturenames", ())
        for item in request.session.items
    ):
        runs.start_all()


def backend_report(runs: _Runs, keras_backend: str) -> dict[str, Any]:
    require_or_skip(keras_backend)
    return runs.report(keras_backend)


@pytest.mark.parametrize("keras_backend", script.BACKENDS)
@pytest.mark.parametrize("name", CLASSES)
def test_fit_save_load(runs: _Runs, keras_backend: str, name: str) -> None:
    fit = backend_report(runs, keras_backend)["fit"][name]
    assert fit["after"] < fit["before"], fit
    assert fit["history"][-1] < fit["history"][0], fit
    # autodiff called (traced) the core operator's analytic backward during fit
    assert fit["backward_calls"] > 0, fit
    assert fit["loaded_class"] == f"xentropy.backends.keras.losses.{name}"
    assert fit["loaded_config"] == fit["config"]
    expected = getattr(xkeras, name)(**script.FIT_SPECS[name][0]).get_config()
    assert fit["config"] == json.loads(json.dumps(expected))
    assert fit["prediction_difference"] == 0.0
    assert fit["loaded_loss_difference"] <= 1e-6


@pytest.mark.parametrize("keras_backend", script.BACKENDS)
def test_parity_in_subprocess(runs: _Runs, keras_backend: str) -> None:
    if keras_backend == BACKEND:
        pytest.skip(f"{keras_backend} is this process's backend: test_parity_with_keras covers it")
    report = backend_report(runs, keras_backend)
    assert report["parity"], "no case ran"
    for case_id, errors in report["parity"].items():
        assert_parity(errors, f"{case_id} on {keras_backend}")
    for case in script.CASES:
        assert case.id in report["parity"] or case.id in report["skipped"], case.id


@pytest.mark.parametrize("keras_backend", script.BACKENDS)
def test_out_of_range_label_in_subprocess(runs: _Runs, keras_backend: str) -> None:
    check_out_of_range(backend_report(runs, keras_backend)["out_of_range"], keras_backend)


def test_new_core_operators_are_exported() -> None:
    """The probability forms of the focal losses the Keras adapter needed (``xentropy.ops``)."""
    assert {"BinaryFocalLoss", "CategoricalFocalLoss"} <= set(ops.__all__)
