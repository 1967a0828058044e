"""Backends, dtypes and Hypothesis profiles shared by every test module.

Backends are test parameters (array-api-extra's ``_lib/_backends.py`` idea): a test that asks for
the ``backend`` fixture runs once per core backend, and a test that asks for ``backend`` and
``dtype`` runs once per (backend, floating dtype) pair that the backend supports. Restrict the
dtypes with ``@pytest.mark.dtypes("float64", ...)``.

``XENTROPY_REQUIRE_BACKENDS`` (a comma list such as ``numpy,array_api_strict,torch,jax``) turns
the skip of a backend whose framework cannot be imported into a failure, so that a CI job cannot
pass by skipping everything; adapter tests use :func:`require_or_skip` for the same effect.

Dask arrays are made with two chunks along every axis of length two or more (the class axis
included), so that every reduction combines partial results. A Dask call spends 50-100 ms
building and scheduling its graph even on these tiny arrays, so a test with more than
``DASK_SAMPLE_ABOVE`` Dask cases runs a fixed sample of one in ``DASK_SAMPLE_EVERY`` of them
(chosen by a hash of the test id; the other backends run every case);
``XENTROPY_DASK_ALL_CASES=1`` runs them all. CuPy runs where CuPy imports and sees a CUDA
device, and is skipped with the reason otherwise.
"""

from __future__ import annotations

import importlib
import os
import zlib
from collections.abc import Callable
from enum import Enum
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The backend fixtures (``xp``, ``to_backend``...) are stateless converters, so reusing them
# across the examples of one @given test is safe.
_SHARED_FIXTURES = [HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[*_SHARED_FIXTURES, HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=_SHARED_FIXTURES
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=_SHARED_FIXTURES
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REQUIRE_ENV = "XENTROPY_REQUIRE_BACKENDS"


def required_backends() -> frozenset[str]:
    """Backend names listed in ``XENTROPY_REQUIRE_BACKENDS`` (empty when unset)."""
    names = os.environ.get(REQUIRE_ENV, "")
    return frozenset(name.strip() for name in names.split(",") if name.strip())


def require_or_skip(name: str, module: str | None = None) -> ModuleType:
    """Import and return ``module`` (default: ``name``) for backend ``name``.

    If the import fails the test is skipped, or fails when ``name`` is listed in
    ``XENTROPY_REQUIRE_BACKENDS``.
    """
    try:
        return importlib.import_module(module or name)
    except ImportError as exc:
        reason = f"backend {name!r} is not available: {exc}"
        if name in required_backends():
            pytest.fail(f"{reason}, but {REQUIRE_ENV} requires it", pytrace=False)
        pytest.skip(reason)


class Backend(Enum):
    """The core backends: every test of the core runs on each (value: ``module[:variant]``)."""

    NUMPY = "numpy"
    ARRAY_API_STRICT = "array_api_strict"
    ARRAY_API_STRICT_NO_FLOAT64 = "array_api_strict:no_float64"
    DASK = "dask"
    CUPY = "cupy"

    @property
    def modname(self) -> str:
        return self.value.split(":")[0]

    @property
    def namespace_module(self) -> str:
        """The module of the Array API namespace (array-api-compat's wrapper for Dask, CuPy)."""
        if self in (Backend.DASK, Backend.CUPY):
            return f"array_api_compat.{self.modname}" + (".array" if self is Backend.DASK else "")
        return self.modname

    @property
    def dtypes(self) -> tuple[str, ...]:
        """Floating dtypes this backend is tested with."""
        return {
            Backend.NUMPY: ("float16", "float32", "float64"),
            Backend.ARRAY_API_STRICT: ("float32", "float64"),
            Backend.ARRAY_API_STRICT_NO_FLOAT64: ("float32",),
            # Dask computes with NumPy's kernels, float16 included: that dtype's arithmetic is
            # the NumPy backend's; Dask adds the graph, which float32 and float64 cover
            Backend.DASK: ("float32", "float64"),
            Backend.CUPY: ("float16", "float32", "float64"),
        }[self]

    def namespace(self) -> ModuleType:
        """The array namespace (imported, or the test is skipped / failed)."""
        xp = require_or_skip(self.modname, self.namespace_module)
        if self is Backend.CUPY:
            _require_cuda_device()
        return xp

    def device(self, xp: ModuleType) -> Any:
        """The device arrays are created on (None: the namespace's default)."""
        if self is Backend.ARRAY_API_STRICT_NO_FLOAT64:
            return xp.Device("no_float64")
        return None

    def asarray(self, xp: ModuleType, array: np.ndarray, device: Any) -> Any:
        """``array`` in this backend, on ``device`` (None: the default device)."""
        if self is Backend.DASK:
            import dask.array as da

            return da.from_array(array, chunks=tuple(max(1, -(-d // 2)) for d in array.shape))
        # no device keyword for the default device: NumPy < 2 has none
        return xp.asarray(array) if device is None else xp.asarray(array, device=device)

    def pytest_param(self, *values: Any) -> Any:
        return pytest.param(self, *values, id="-".join([self.value, *map(str, values)]))


def _require_cuda_device() -> None:
    """Skip (or fail, where CuPy is required) unless CuPy sees a CUDA device."""
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        count, why = 0, f"the CUDA runtime failed: {exc}"
    else:
        why = "no CUDA device is visible"
    if count == 0:
        reason = f"backend 'cupy' is installed but {why}"
        if "cupy" in required_backends():
            pytest.fail(f"{reason}, but {REQUIRE_ENV} requires it", pytrace=False)
        pytest.skip(reason)


CORE_BACKENDS = tuple(Backend)
DASK_SAMPLE_ABOVE = 40
DASK_SAMPLE_EVERY = 12


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dtypes(*names): restrict the backend x dtype parametrisation to these dtypes"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``backend`` (and ``dtype`` with it) over the core backends.

    ``@pytest.mark.dtypes(...)`` keeps the dtypes named; a test without a ``dtype`` argument then
    runs on the backends that have one of them.
    """
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("dtypes")
    wanted = set(marker.args) if marker else None
    pairs = [(b, dt) for b in CORE_BACKENDS for dt in b.dtypes if wanted is None or dt in wanted]
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize(("backend", "dtype"), [b.pytest_param(dt) for b, dt in pairs])
    else:
        backends = dict.fromkeys(b for b, _ in pairs)
        metafunc.parametrize("backend", [b.pytest_param() for b in backends])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect all but a fixed sample of the Dask cases of each large case grid."""
    if os.environ.get("XENTROPY_DASK_ALL_CASES") == "1":
        return
    dask_cases: dict[tuple[str, str], list[pytest.Item]] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("backend") is Backend.DASK:
            key = (item.path.name, getattr(item, "originalname", item.name))
            dask_cases.setdefault(key, []).append(item)
    dropped = {
        id(item)
        for cases in dask_cases.values()
        if len(cases) > DASK_SAMPLE_ABOVE
        for item in cases
        if zlib.crc32(item.name.encode()) % DASK_SAMPLE_EVERY
    }
    if dropped:
        config.hook.pytest_deselected(items=[i for i in items if id(i) in dropped])
        items[:] = [i for i in items if id(i) not in dropped]


@pytest.fixture
def xp(backend: Backend) -> ModuleType:
    return backend.namespace()


@pytest.fixture
def device(backend: Backend, xp: ModuleType) -> Any:
    return backend.device(xp)


@pytest.fixture
def to_backend(backend: Backend, xp: ModuleType, device: Any) -> Callable[..., Any]:
    """``to_backend(np_array, dtype=None)``: the array in the backend (on its device).

    ``dtype`` is a name such as ``"float32"`` or ``"int64"``; None keeps the array's own dtype.
    """

    def convert(array: Any, dtype: str | None = None) -> Any:
        array = np.asarray(array)
        if dtype is not None:
            array = array.astype(dtype)
        return backend.asarray(xp, array, device)

    return convert


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a backend array (any dtype, 0-d included); a Dask array is computed."""
    if isinstance(x, np.ndarray | np.generic):
        return np.asarray(x)
    module = type(x).__module__.partition(".")[0]
    if module == "dask":
        return np.asarray(x.compute())
    if module == "cupy":
        return x.get()
    return np.from_dlpack(x).copy()


def rounded(array: Any, dtype: str) -> np.ndarray:
    """``array`` rounded to ``dtype`` and back to float64: what the reference is evaluated on."""
    return np.asarray(array).astype(dtype).astype(np.float64)


def prepare(to_backend: Callable[..., Any], dtype: str, value: Any) -> tuple[Any, Any]:
    """One input as (core argument, reference argument).

    Floating NumPy arrays go to the backend in ``dtype``, and to the reference rounded to ``dtype``
    (in float64); integer and bool arrays keep their dtype; anything else (Python numbers, None,
    strings) is passed to both unchanged.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return to_backend(value, dtype), rounded(value, dtype)
        return to_backend(value), value
    return value, value


@pytest.fixture
def split_inputs(to_backend: Callable[..., Any], dtype: str) -> Callable[..., Any]:
    """``split_inputs(*arrays, **options)`` -> ``((args, kwargs) for the core, (args, kwargs) for
    the reference)``, each value passed through :func:`prepare`."""

    def split(*arrays: Any, **options: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        args = [prepare(to_backend, dtype, a) for a in arrays]
        kwargs = {k: prepare(to_backend, dtype, v) for k, v in options.items()}
        core = (tuple(a for a, _ in args), {k: v for k, (v, _) in kwargs.items()})
        ref = (tuple(r for _, r in args), {k: r for k, (_, r) in kwargs.items()})
        return core, ref

    return split


# --- Sample inputs (PyTorch's ``sample_inputs_*`` idea), shared by the value and gradient tests.
# Every input is drawn from a generator seeded by the case, so a test id always sees the same data.

NUM_CLASSES = 5
# the class-axis layouts of the softmax family: name -> (prediction shape, class axis)
CLASS_AXIS_LAYOUTS: dict[str, tuple[tuple[int, ...], int]] = {
    "NC": ((4, NUM_CLASSES), -1),
    "C": ((NUM_CLASSES,), -1),
    "NddC": ((2, 3, 2, NUM_CLASSES), -1),
    "NCd": ((3, NUM_CLASSES, 4), 1),
}
# the element-wise (sigmoid / binary) family: prediction shapes
ELEMENTWISE_SHAPES: dict[str, tuple[int, ...]] = {
    "NC": (4, NUM_CLASSES),
    "C": (NUM_CLASSES,),
    "NdC": (2, 3, NUM_CLASSES),
}
# per-class arrays used as class_weight / alpha / pos_weight (exact in float16)
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 0.25, 1.5])
PER_CLASS_ALPHA = np.array([0.25, 0.5, 0.75, 1.0, 0.125])
POS_WEIGHT = np.array([2.0, 0.5, 1.0, 3.0, 1.25])


def rng_for(*key: object) -> np.random.Generator:
    """A generator seeded from ``key``: the same inputs for a test id on every run."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def batch_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    axis %= len(shape)
    return shape[:axis] + shape[axis + 1 :]


def random_distributions(rng: np.random.Generator, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Probability vectors along ``axis`` (entries bounded away from 0)."""
    logits = rng.normal(size=(*batch_shape(shape, axis), shape[axis]))
    p = np.exp(logits) / np.sum(np.exp(logits), axis=-1, keepdims=True)
    return np.moveaxis(p, -1, axis)


def class_indices(
    rng: np.random.Generator, shape: tuple[int, ...], axis: int, ignore_index: int | None = None
) -> np.ndarray:
    """Integer class indices for predictions of ``shape``; with ``ignore_index`` some examples
    hold it (at least one, never all, when there are two or more examples)."""
    y = rng.integers(0, shape[axis], size=batch_shape(shape, axis))
    if ignore_index is not None and y.size:
        flat = y.reshape(-1)
        flat[rng.random(flat.size) < 0.3] = ignore_index
        flat[0] = ignore_index
        if flat.size > 1:
            flat[-1] = (ignore_index + 1) % shape[axis]
    return y


def binary_targets(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """Element-wise targets: ``soft`` in [0, 1], ``hard`` 0./1., ``bool``, ``int``."""
    hard = rng.random(shape) < 0.5
    return {
        "soft": rng.random(shape),
        "hard": hard.astype(np.float64),
        "bool": hard,
        "int": hard.astype(np.int64),
    }[kind]


SOFTMAX_FAMILY = (
    "softmax_cross_entropy",
    "categorical_cross_entropy",
    "softmax_focal_loss",
    "poly1_cross_entropy",
)

# option sets of the softmax family: id -> options (class-index and probability targets)
COMMON_OPTIONS: dict[str, dict] = {
    "plain": {},
    "class_weight": {"class_weight": CLASS_WEIGHT},
    "smoothing": {"label_smoothing": 0.15},
    "weight+smoothing": {"class_weight": CLASS_WEIGHT, "label_smoothing": 0.3},
}
# class-index targets only (ignore_index is an error with probability targets)
INDEX_OPTIONS: dict[str, dict] = {
    "ignore=1": {"ignore_index": 1},
    "ignore=-100": {"ignore_index": -100},
    "weight+ignore+smoothing": {
        "class_weight": CLASS_WEIGHT,
        "ignore_index": 1,
        "label_smoothing": 0.2,
    },
}
VARIANT_OPTIONS: dict[str, dict[str, dict]] = {
    "softmax_cross_entropy": {
        "softcap=2": {"softcap": 2.0},
        "z_loss": {"z_loss": 0.05},
        "softcap+z_loss+weight+smoothing": {
            "softcap": 3.0,
            "z_loss": 0.02,
            "class_weight": CLASS_WEIGHT,
            "label_smoothing": 0.1,
        },
    },
    "categorical_cross_entropy": {
        "normalize": {"normalize": True},
        "no_clip": {"epsilon": None},
        "clip=0.05": {"epsilon": 0.05},
        "all": {"class_weight": CLASS_WEIGHT, "label_smoothing": 0.1, "epsilon": 0.05},
    },
    "softmax_focal_loss": {
        "gamma=0": {"gamma": 0.0},
        "gamma=1.5,alpha=0.25": {"gamma": 1.5, "alpha": 0.25},
        "alpha=per_class": {"alpha": PER_CLASS_ALPHA, "class_weight": CLASS_WEIGHT},
    },
    "poly1_cross_entropy": {
        "epsilon=-1": {"epsilon": -1.0},
        "epsilon=0": {"epsilon": 0.0},
        "epsilon=3,weight": {"epsilon": 3.0, "class_weight": CLASS_WEIGHT},
    },
}
# Every option set runs on the (N, C) layout; the layout code is shared by all option sets, so
# the other layouts run a few: (N, C, d) with axis=1 these, (C,) and (N, d1, d2, C) the plain
# case and the one with every option.
FEW_OPTIONS = ("plain", "weight+smoothing", "weight+ignore+smoothing")


def _options_for_layout(layout: str, kind: str, options: dict[str, dict]) -> list[str]:
    if layout == "NC":
        return list(options)
    if layout == "NCd":
        return [o for o in options if o in FEW_OPTIONS]
    return ["plain", "weight+ignore+smoothing" if kind == "index" else "weight+smoothing"]


def softmax_cases():
    """pytest params (variant, layout, kind, option) for the softmax family."""
    for variant in SOFTMAX_FAMILY:
        for kind in ("index", "prob"):
            options = {**COMMON_OPTIONS, **(INDEX_OPTIONS if kind == "index" else {})}
            options.update(VARIANT_OPTIONS[variant])
            for layout in CLASS_AXIS_LAYOUTS:
                for option in _options_for_layout(layout, kind, options):
                    yield pytest.param(
                        variant, layout, kind, option, id=f"{variant}-{layout}-{kind}-{option}"
                    )


def softmax_options(variant: str, option: str) -> dict:
    return {**COMMON_OPTIONS, **INDEX_OPTIONS, **VARIANT_OPTIONS[variant]}[option]


def softmax_sample(variant, layout, kind, option):
    """(prediction, targets, axis) for a softmax-family case, from a seed fixed by the case."""
    rng = rng_for(variant, layout, kind, option)
    shape, axis = CLASS_AXIS_LAYOUTS[layout]
    options = softmax_options(variant, option)
    if variant == "categorical_cross_entropy":
        prediction = random_distributions(rng, shape, axis)
        if options.get("normalize"):
            # rows that do not sum to 1 (still inside [0, 1])
            scale = rng.uniform(0.3, 1.0, size=batch_shape(shape, axis))
            prediction = prediction * np.expand_dims(scale, axis)
    else:
        prediction = rng.normal(scale=2.0, size=shape)
    if kind == "index":
        targets = class_indices(rng, shape, axis, options.get("ignore_index"))
    else:
        targets = random_distributions(rng, shape, axis)
    return prediction, targets, axis


SIGMOID_FAMILY_OPTIONS: dict[str, dict[str, dict]] = {
    "sigmoid_cross_entropy": {
        "plain": {},
        "pos_weight=2.5": {"pos_weight": 2.5},
        "pos_weight=per_class": {"pos_weight": POS_WEIGHT},
        "class_weight": {"class_weight": CLASS_WEIGHT},
        "smoothing": {"label_smoothing": 0.2},
        "all": {"pos_weight": POS_WEIGHT, "class_weight": CLASS_WEIGHT, "label_smoothing": 0.1},
    },
    "binary_cross_entropy": {
        "plain": {},
        "torch": {"epsilon": None, "log_floor": -100.0},
        "class_weight": {"class_weight": CLASS_WEIGHT},
        "smoothing": {"label_smoothing": 0.2},
        "clip=0.05": {"epsilon": 0.05},
        "all": {"class_weight": CLASS_WEIGHT, "label_smoothing": 0.1, "epsilon": 0.05},
    },
    "sigmoid_focal_loss": {
        "plain": {},
        "gamma=0,alpha=0.25": {"gamma": 0.0, "alpha": 0.25},
        "gamma=1.5,alpha=0.75": {"gamma": 1.5, "alpha": 0.75},
        "smoothing": {"label_smoothing": 0.1},
        "all": {"gamma": 1.5, "alpha": 0.75, "label_smoothing": 0.1},
    },
}


EXTREME_LOGITS = np.array(
    [
        [1e4, -1e4, 0.0, 1.0, 1e4 - 8.0],  # target on the maximum: loss near 0
        [1e4, -1e4, 0.0, 1.0, 1e4 - 8.0],  # target on -1e4: loss near 2e4
        [-1e4, -1e4, -1e4, -1e4, -1e4],  # all equal and very negative: log(5)
        [1e4, 1e4, -1e4, -1e4, 1e4],  # a three-way tie at the top
    ]
)
EXTREME_INDEX = np.array([0, 1, 2, 4])

ALL_LOSSES = SOFTMAX_FAMILY + tuple(SIGMOID_FAMILY_OPTIONS)
