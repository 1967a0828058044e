"""xentropy on Dask arrays: every public function builds its result lazily and agrees with NumPy.

Dask arrays are lazy (``xentropy.ops.is_lazy``): reading one value computes the whole graph. So a
call on Dask arrays computes nothing, the value checks are skipped as under tracing, and a value
they would reject gives NaN for the affected rows, loss and gradient, exactly as NumPy does with
``validate=False``. Shapes, dtypes and options are still checked, eagerly.

Every call below is built under a scheduler that refuses to run (:func:`refusing_compute`); the
results are computed afterwards and compared with the same call on NumPy arrays, whose values the
other test modules check against float64 references. The arrays are cut into two chunks along
every axis, the class axis included, so that every reduction combines partial results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import CLASS_WEIGHT, PER_CLASS_ALPHA, POS_WEIGHT, random_distributions, rng_for
from tolerances import assert_close

import xentropy
from xentropy.ops import is_lazy

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

N, C = 6, 5
DTYPES = ("float32", "float64")


@contextlib.contextmanager
def refusing_compute() -> Iterator[list[object]]:
    """A block in which computing any Dask graph raises; yields the list of attempts."""
    attempts: list[object] = []

    def refuse(graph: object, keys: object, **kwargs: Any) -> Any:
        attempts.append(keys)
        raise RuntimeError("a Dask graph was computed while the result was being built")

    with dask.config.set(scheduler=refuse):
        yield attempts
    assert attempts == []


def to_dask(array: Any) -> Any:
    array = np.asarray(array)
    return da.from_array(array, chunks=tuple(max(1, -(-d // 2)) for d in array.shape))


def computed(x: Any) -> Any:
    """NumPy values of a (possibly nested) result; ``None`` stays ``None``."""
    if isinstance(x, tuple):
        return tuple(computed(e) for e in x)
    return None if x is None else np.asarray(x.compute(scheduler="sync"))


def _floats(array: np.ndarray, dtype: str) -> np.ndarray:
    return array.astype(dtype) if array.dtype.kind == "f" else array


def _softmax_inputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(scale=2.0, size=(N, C)), rng.integers(0, C, size=N)


def _case(name: str, rng: np.random.Generator) -> tuple[tuple, dict]:
    """(args, options) of one call of ``xentropy.<name>`` on NumPy arrays."""
    logits, labels = _softmax_inputs(rng)
    probs = random_distributions(rng, (N, C), -1)
    soft = rng.random((N, C))
    labels[0] = 1  # an ignored example
    index_options = {"class_weight": CLASS_WEIGHT, "ignore_index": 1, "label_smoothing": 0.1}
    return {
        "softmax_cross_entropy": ((logits, labels), index_options),
        "categorical_cross_entropy": ((probs, probs[::-1].copy()), {"epsilon": 0.05}),
        "sigmoid_cross_entropy": ((logits, soft), {"pos_weight": POS_WEIGHT}),
        "binary_cross_entropy": ((probs, soft), {"class_weight": CLASS_WEIGHT}),
        "softmax_focal_loss": ((logits, labels), {**index_options, "alpha": PER_CLASS_ALPHA}),
        "sigmoid_focal_loss": ((logits, soft), {"alpha": 0.25, "label_smoothing": 0.1}),
        "poly1_cross_entropy": ((logits, probs), {"epsilon": 3.0, "class_weight": CLASS_WEIGHT}),
        "linear_cross_entropy": (
            (rng.normal(size=(N, 4)), rng.normal(size=(C, 4)), labels),
            {"bias": rng.normal(size=C), "chunk_size": 2, "softcap": 3.0, "ignore_index": 1},
        ),
        "entropy": ((probs,), {"reduction": "mean"}),
        "kl_divergence": ((probs, probs[::-1].copy()), {"reduction": "sum"}),
        "cross_entropy": ((probs, probs[::-1].copy()), {}),
    }[name]


LOSSES = (
    "softmax_cross_entropy",
    "categorical_cross_entropy",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
    "softmax_focal_loss",
    "sigmoid_focal_loss",
    "poly1_cross_entropy",
    "linear_cross_entropy",
    "entropy",
    "kl_divergence",
    "cross_entropy",
)


def in_dtype(args: tuple, options: dict, dtype: str) -> tuple[tuple, dict]:
    """The NumPy inputs with their floating arrays in ``dtype``."""
    args = tuple(_floats(np.asarray(a), dtype) for a in args)
    return args, {
        k: _floats(v, dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }


def lazily(fn: Callable[..., Any], args: tuple, options: dict) -> Any:
    """``fn`` on Dask copies of the NumPy inputs, built lazily, then computed."""
    dask_options = {k: to_dask(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with refusing_compute():
        lazy = fn(*(to_dask(a) for a in args), **dask_options)
    return computed(lazy)


def on_both(fn: Callable[..., Any], args: tuple, options: dict, dtype: str) -> tuple[Any, Any]:
    """``fn`` on Dask arrays (built lazily, then computed) and on the same NumPy arrays."""
    args, options = in_dtype(args, options, dtype)
    return lazily(fn, args, options), fn(*args, **options)


def assert_same(actual: Any, expected: Any, dtype: str) -> None:
    if isinstance(expected, tuple):
        for a, e in zip(actual, expected, strict=True):
            assert_same(a, e, dtype)
        return
    if expected is None:
        assert actual is None
        return
    assert actual.dtype == expected.dtype
    assert_close(actual, expected, dtype)


def test_a_compute_inside_the_block_is_refused():
    """The check below can fail: reading a value is a compute, and raises here."""
    x = to_dask(np.ones(4))
    with pytest.raises(RuntimeError, match="computed"), refusing_compute():
        float(xentropy.entropy(x))
    assert is_lazy(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_value_and_gradient_lazy_and_equal_to_numpy(name, dtype):
    args, options = _case(name, rng_for("dask", name))
    value_and_grad = xentropy.value_and_grad(getattr(xentropy, name))
    (value, grad), (expected_value, expected_grad) = on_both(value_and_grad, args, options, dtype)
    assert_same(value, expected_value, dtype)
    assert_same(grad, expected_grad, dtype)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("scheme", ["inverse", "log_inverse", "effective_number"])
def test_class_weights_lazy_and_equal_to_numpy(scheme, normalize):
    counts = np.array([1000, 2300, 20310, 6700, 3])
    actual, expected = on_both(
        xentropy.class_weights, (counts,), {"scheme": scheme, "normalize": normalize}, "float64"
    )
    assert_same(actual, expected, "float64")


def test_array_hyperparameter_stays_lazy():
    """A 0-d Dask label_smoothing is used as an array, like a traced one, and never read."""
    logits, labels = _softmax_inputs(rng_for("dask", "hyperparameter"))
    with refusing_compute():
        loss = xentropy.softmax_cross_entropy(
            to_dask(logits), to_dask(labels), label_smoothing=da.asarray(0.2)
        )
    expected = xentropy.softmax_cross_entropy(logits, labels, label_smoothing=0.2)
    assert_close(computed(loss), expected, "float64")


def test_empty_batch():
    """A mean over no example is a 0-d NaN with an empty gradient, as on NumPy."""
    logits, labels = np.zeros((0, C)), np.zeros((0,), dtype=np.int64)
    value_and_grad = xentropy.value_and_grad(xentropy.softmax_cross_entropy)
    (value, grad), (expected_value, expected_grad) = on_both(
        value_and_grad, (logits, labels), {}, "float64"
    )
    assert np.isnan(value) and np.isnan(expected_value)
    assert grad.shape == expected_grad.shape == (0, C)


# --- values are not checked: NaN where NumPy raises ----------------------------------------------

BAD_VALUES = {
    "label=C": ("softmax_cross_entropy", lambda a: a[1].__setitem__(2, C), {}),
    "label=-1": ("poly1_cross_entropy", lambda a: a[1].__setitem__(2, -1), {}),
    "negative weight": (
        "softmax_focal_loss",
        lambda a: None,
        {"class_weight": np.array([1.0, -1.0, 1.0, 1.0, 1.0])},
    ),
    "probability 1.5": ("categorical_cross_entropy", lambda a: a[0].__setitem__((2, 0), 1.5), {}),
    "binary target -0.5": ("binary_cross_entropy", lambda a: a[1].__setitem__((2, 0), -0.5), {}),
    "negative p": ("entropy", lambda a: a[0].__setitem__((2, 0), -0.1), {}),
}


def _bad_inputs(name: str, spoil: Callable[[list], None]) -> list[np.ndarray]:
    rng = rng_for("dask", "bad", name)
    logits, labels = _softmax_inputs(rng)
    probs = random_distributions(rng, (N, C), -1)
    arrays = {
        "softmax_cross_entropy": [logits, labels],
        "poly1_cross_entropy": [logits, labels],
        "softmax_focal_loss": [logits, labels],
        "categorical_cross_entropy": [probs, labels],
        "binary_cross_entropy": [probs, rng.random((N, C))],
        "entropy": [probs],
    }[name]
    spoil(arrays)
    return arrays


@pytest.mark.parametrize("bad", list(BAD_VALUES))
def test_bad_values_give_nan_lazily(bad):
    """NumPy raises; Dask, unread, gives what NumPy gives with ``validate=False``: NaN rows."""
    name, spoil, options = BAD_VALUES[bad]
    args = _bad_inputs(name, spoil)
    fn = getattr(xentropy, name)
    with pytest.raises(ValueError):
        fn(*args, **options)
    options = {"reduction": "none", **options}
    value_and_grad = xentropy.value_and_grad(fn)
    value, grad = lazily(value_and_grad, tuple(args), options)
    expected_value, expected_grad = value_and_grad(*args, **options, validate=False)
    assert np.any(np.isnan(expected_value)) and np.any(np.isnan(expected_grad))
    assert_close(value, expected_value, "float64")
    assert_close(grad, expected_grad, "float64")


def test_label_smoothing_array_out_of_range_gives_nan():
    logits, labels = _softmax_inputs(rng_for("dask", "smoothing"))
    with refusing_compute():
        loss = xentropy.softmax_cross_entropy(
            to_dask(logits), to_dask(labels), label_smoothing=da.asarray(1.5), reduction="none"
        )
    assert np.all(np.isnan(computed(loss)))


def test_shapes_are_still_checked_eagerly():
    logits, labels = _softmax_inputs(rng_for("dask", "shapes"))
    with refusing_compute(), pytest.raises(ValueError, match=r"\(5,\)"):
        xentropy.softmax_cross_entropy(to_dask(logits), to_dask(labels[:5]))
    with refusing_compute(), pytest.raises(TypeError, match="float"):
        xentropy.softmax_cross_entropy(to_dask(logits), to_dask(labels.astype(np.float64)))
