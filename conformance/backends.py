"""The backends of the matrix: which array library, which dtypes and devices, how to differentiate.

Two layers, in the manner of einops' ``_backends.py``:

* a :class:`Framework` is the array plumbing of one library (is it importable, its dtypes and
  devices, conversion from and to NumPy, and its own autodiff). A framework is imported only
  when a run asks for it.
* a :class:`Backend` is one column of the matrix: either the core (``xentropy``'s functions on
  that framework's arrays, gradients by ``xentropy.value_and_grad``) or an adapter
  (``xentropy.backends.<name>``, called in its framework's own spelling, see
  :mod:`~xentropy.conformance.dialects`, and differentiated by the framework's autodiff).

Derivatives beyond the prediction's gradient (:meth:`Backend.evaluate_derivative`) are the
framework's own autodiff on both kinds of column: the gradient with respect to the targets
(reverse mode), and the Hessian-vector product with respect to the prediction (PyTorch: double
backward, ``autograd.grad(..., create_graph=True)``; JAX: forward over reverse, ``jax.jvp`` of
``jax.vjp``; TensorFlow: nested ``GradientTape``s). NumPy, array-api-strict, Dask and CuPy have
no autodiff (``xentropy.value_and_grad`` gives the prediction's gradient only): their cells are
skipped. The Dask column builds each loss and gradient under a scheduler that refuses to run:
a cell whose call computes anything before the result is asked for fails. CuPy runs on a CUDA
device only, and shows as not installed where CuPy or the device is missing.

:data:`BACKENDS` lists them. A backend whose modules are absent shows as "not installed"; one
whose modules are there but raise on import shows as "installed, but the import fails"
(:func:`is_broken`: a broken environment, which the command line never lets pass). Adding a
backend is one :func:`register_backend` call (or one entry in :data:`BACKENDS`). The
same hook lets a test plant a faulty backend without editing this package::

    class Faulty(Backend):
        def evaluate(self, case, arrays, dtype):
            value, grads = super().evaluate(case, arrays, dtype)
            return value * (1 + 1e-3), grads

    register_backend(Faulty("numpy-faulty", NUMPY))
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import sharded
from .cases import Case
from .dialects import DIALECTS, Spelling
from .tolerances import SECOND_ORDER_DTYPES

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


NOT_INSTALLED = "not installed"
BROKEN = "installed, but the import fails"


def _not_found(name: str) -> bool:
    """Whether the top-level package of module ``name`` cannot be found (nothing imported)."""
    try:
        return importlib.util.find_spec(name.partition(".")[0]) is None
    except (ImportError, ValueError):  # a None in sys.modules
        return True


def _says_absent(name: str, exc: Exception) -> bool:
    """Whether ``exc``, raised importing ``name``, says that ``name`` itself (or a package above
    it) is not there. Any other failure, a dependency of the module missing included, is a
    module that is installed but whose import fails."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    return bool(missing) and (name == missing or name.startswith(f"{missing}."))


def import_problem(*modules: str) -> str | None:
    """None when every module imports; otherwise why the first one does not, starting with
    :data:`BROKEN` where that module is installed but its import raises."""
    absent = [name for name in modules if _not_found(name)]
    if absent:
        return f"{absent[0]}: no module named {absent[0].partition('.')[0]!r}"
    for name in modules:
        try:
            _import(name)
        except Exception as exc:  # a broken install may fail in any way
            text = f"{name}: {type(exc).__name__}: {exc}".splitlines()[0][:160]
            return text if _says_absent(name, exc) else f"{BROKEN} ({text})"
    return None


def is_broken(status: str | None) -> bool:
    """Whether a backend's status (:meth:`Backend.missing`) says that a module it needs is
    installed but fails to import."""
    return status is not None and status.startswith(BROKEN)


class Framework:
    """The array plumbing of one array library (subclasses fill it in)."""

    name: str = ""
    module: str = ""
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    differentiates: bool = False  # has an autodiff of its own (autodiff and hvp below work)

    def missing(self) -> str | None:
        """None when the library imports, otherwise the reason."""
        return import_problem(self.module)

    def devices(self) -> tuple[str, ...]:
        """The devices cells run on (``"cpu"``, and ``"cuda"`` where a GPU is usable)."""
        return ("cpu",)

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        """``array`` in this library on ``device``; floating arrays in ``dtype``."""
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy of ``x``: float64 for floating arrays, the same dtype otherwise."""
        raise NotImplementedError

    def dtype_name(self, x: Any) -> str:
        """``"float32"`` etc. for an array of this library."""
        return str(x.dtype).rsplit(".", 1)[-1]

    def autodiff(self, fn: Callable[..., Any], wrt: Sequence[Any]) -> tuple[Any, tuple[Any, ...]]:
        """``(fn(*wrt), d sum(fn(*wrt)) / d wrt)`` by this library's own autodiff."""
        raise NotImplementedError(f"{self.name} has no autodiff")

    def hvp(
        self, fn: Callable[..., Any], wrt: Sequence[Any], directions: Sequence[Any]
    ) -> tuple[Any, ...]:
        """``H v``: the derivative of ``d sum(fn(*wrt)) / d wrt`` along ``directions``, by this
        library's own autodiff, one array per ``wrt``."""
        raise NotImplementedError(f"{self.name} has no autodiff")

    @contextlib.contextmanager
    def placed(self, device: str) -> Iterator[None]:
        """A context in which new arrays and ops go to ``device`` (a no-op for most)."""
        yield


class NumpyFramework(Framework):
    name, module = "numpy", "numpy"
    dtypes = ("float16", "float32", "float64")  # NumPy has no bfloat16 of its own

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        return array.astype(dtype) if dtype and array.dtype.kind == "f" else array.copy()

    def to_numpy(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        return x.astype(np.float64) if x.dtype.kind == "f" else x


class ArrayApiStrictFramework(Framework):
    name, module = "array_api_strict", "array_api_strict"
    dtypes = ("float32", "float64")

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        xp = _import(self.module)
        if dtype and array.dtype.kind == "f":
            array = array.astype(dtype)
        return xp.asarray(array)

    def to_numpy(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        return x.astype(np.float64) if x.dtype.kind == "f" else x


def _half_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks that cut every axis of length two or more in two (the class axis included)."""
    return tuple(max(1, -(-d // 2)) for d in shape)


def _refuse_to_compute(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the call computed a Dask graph: building the loss must stay lazy")


class DaskFramework(Framework):
    """Dask arrays of two chunks along every axis, so that every reduction combines parts."""

    name, module = "dask", "dask.array"
    dtypes = ("float16", "float32", "float64")  # NumPy's chunks: no bfloat16

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        da = _import("dask.array")
        if dtype and array.dtype.kind == "f":
            array = array.astype(dtype)
        return da.from_array(array, chunks=_half_chunks(array.shape))

    def to_numpy(self, x: Any) -> np.ndarray:
        x = np.asarray(x.compute(scheduler="sync"))
        return x.astype(np.float64) if x.dtype.kind == "f" else x

    @contextlib.contextmanager
    def lazy(self) -> Iterator[None]:
        """A block in which computing any Dask graph raises."""
        with _import("dask").config.set(scheduler=_refuse_to_compute):
            yield


class CupyFramework(Framework):
    """CuPy on the first CUDA device; missing where CuPy or a device is."""

    name, module = "cupy", "cupy"
    dtypes = ("float16", "float32", "float64")

    def missing(self) -> str | None:
        problem = import_problem(self.module)
        if problem is not None:
            return problem
        cupy = _import("cupy")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError as exc:
            return f"cupy: the CUDA runtime failed: {exc}".splitlines()[0][:160]
        return None if count else "cupy: no CUDA device is visible"

    def devices(self) -> tuple[str, ...]:
        return ("cuda",)

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        cupy = _import("cupy")
        if dtype and array.dtype.kind == "f":
            array = array.astype(dtype)
        return cupy.asarray(array)

    def to_numpy(self, x: Any) -> np.ndarray:
        x = _import("cupy").asnumpy(x)
        return x.astype(np.float64) if x.dtype.kind == "f" else x

    @contextlib.contextmanager
    def placed(self, device: str) -> Iterator[None]:
        with _import("cupy").cuda.Device(0):
            yield


class TorchFramework(Framework):
    name, module = "torch", "torch"
    differentiates = True

    def devices(self) -> tuple[str, ...]:
        torch = _import("torch")
        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        torch = _import("torch")
        x = torch.from_numpy(np.array(array, order="C"))  # ascontiguousarray makes 0-d 1-d
        if dtype and array.dtype.kind == "f":
            x = x.to(getattr(torch, dtype))
        return x.to(device)

    def to_numpy(self, x: Any) -> np.ndarray:
        x = x.detach().cpu()
        if x.is_floating_point():
            return x.double().numpy()
        return x.numpy()

    def autodiff(self, fn: Callable[..., Any], wrt: Sequence[Any]) -> tuple[Any, tuple[Any, ...]]:
        torch = _import("torch")
        leaves = [w.detach().clone().requires_grad_(True) for w in wrt]
        value = fn(*leaves)
        grads = torch.autograd.grad(value, leaves, grad_outputs=torch.ones_like(value))
        return value.detach(), tuple(grads)

    def hvp(
        self, fn: Callable[..., Any], wrt: Sequence[Any], directions: Sequence[Any]
    ) -> tuple[Any, ...]:
        """Double backward: the gradient with ``create_graph=True``, then its vector-Jacobian
        product with ``v`` (``H`` is symmetric)."""
        torch = _import("torch")
        leaves = [w.detach().clone().requires_grad_(True) for w in wrt]
        value = fn(*leaves)
        grads = torch.autograd.grad(
            value, leaves, grad_outputs=torch.ones_like(value), create_graph=True
        )
        products = torch.autograd.grad(grads, leaves, grad_outputs=list(directions))
        return tuple(p.detach() for p in products)


class JaxFramework(Framework):
    """JAX, with 64-bit types switched on (``jax_enable_x64``) so that float64 cells exist."""

    name, module = "jax", "jax"
    differentiates = True

    def _jax(self) -> ModuleType:
        jax = _import("jax")
        if not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        return jax

    def devices(self) -> tuple[str, ...]:
        try:
            gpus = self._jax().devices("gpu")
        except RuntimeError:
            gpus = []
        return ("cpu", "cuda") if gpus else ("cpu",)

    def _device(self, device: str) -> Any:
        return self._jax().devices("gpu" if device == "cuda" else "cpu")[0]

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        jax = self._jax()
        x = jax.numpy.asarray(array)
        if dtype and array.dtype.kind == "f":
            x = x.astype(dtype)
        return jax.device_put(x, self._device(device))

    def to_numpy(self, x: Any) -> np.ndarray:
        jnp = self._jax().numpy
        if jnp.issubdtype(x.dtype, jnp.floating):
            return np.asarray(x.astype(jnp.float64))
        return np.asarray(x)

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype.name)

    def autodiff(self, fn: Callable[..., Any], wrt: Sequence[Any]) -> tuple[Any, tuple[Any, ...]]:
        jax = self._jax()
        value, pullback = jax.vjp(fn, *wrt)
        return value, tuple(pullback(jax.numpy.ones_like(value)))

    def hvp(
        self, fn: Callable[..., Any], wrt: Sequence[Any], directions: Sequence[Any]
    ) -> tuple[Any, ...]:
        """Forward over reverse: ``jax.jvp`` of the ``jax.vjp`` gradient."""
        jax = self._jax()

        def gradient(*w: Any) -> tuple[Any, ...]:
            value, pullback = jax.vjp(fn, *w)
            return tuple(pullback(jax.numpy.ones_like(value)))

        _, products = jax.jvp(gradient, tuple(wrt), tuple(directions))
        return tuple(products)

    @contextlib.contextmanager
    def placed(self, device: str) -> Iterator[None]:
        with self._jax().default_device(self._device(device)):
            yield


def _no_none(grads: Sequence[Any], what: str) -> tuple[Any, ...]:
    """``grads``, or a LookupError where a tape gave None (no path to an input)."""
    missing = [k for k, g in enumerate(grads) if g is None]
    if missing:
        raise LookupError(f"GradientTape.gradient gave None for the {what} of inputs {missing}")
    return tuple(grads)


class TensorflowFramework(Framework):
    name, module = "tensorflow", "tensorflow"
    differentiates = True

    def devices(self) -> tuple[str, ...]:
        tf = _import("tensorflow")
        return ("cpu", "cuda") if tf.config.list_physical_devices("GPU") else ("cpu",)

    @contextlib.contextmanager
    def placed(self, device: str) -> Iterator[None]:
        tf = _import("tensorflow")
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            yield

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        tf = _import("tensorflow")
        with self.placed(device):
            x = tf.constant(array)
            if dtype and array.dtype.kind == "f":
                x = tf.cast(x, getattr(tf, dtype))
            return tf.identity(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        tf = _import("tensorflow")
        if x.dtype.is_floating:
            return tf.cast(x, tf.float64).numpy()
        return x.numpy()

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype.name)

    def autodiff(self, fn: Callable[..., Any], wrt: Sequence[Any]) -> tuple[Any, tuple[Any, ...]]:
        tf = _import("tensorflow")
        with tf.GradientTape() as tape:
            for w in wrt:
                tape.watch(w)
            value = fn(*wrt)
        grads = tape.gradient(value, list(wrt), output_gradients=tf.ones_like(value))
        return value, _no_none(grads, "gradient")

    def hvp(
        self, fn: Callable[..., Any], wrt: Sequence[Any], directions: Sequence[Any]
    ) -> tuple[Any, ...]:
        """Nested tapes: the inner gradient, recorded by the outer tape, then its vector-Jacobian
        product with ``v``."""
        tf = _import("tensorflow")
        with tf.GradientTape() as outer:
            outer.watch(list(wrt))
            with tf.GradientTape() as inner:
                inner.watch(list(wrt))
                value = fn(*wrt)
            grads = _no_none(
                inner.gradient(value, list(wrt), output_gradients=tf.ones_like(value)), "gradient"
            )
        products = outer.gradient(list(grads), list(wrt), output_gradients=list(directions))
        return _no_none(products, "Hessian-vector product")


class KerasFramework(Framework):
    """Keras 3 on whichever backend it was configured with (``KERAS_BACKEND``)."""

    name, module = "keras", "keras"
    differentiates = True

    def _inner(self) -> Framework:
        backend = _import("keras").backend.backend()
        return {"tensorflow": TENSORFLOW, "jax": JAX, "torch": TORCH}[backend]

    def missing(self) -> str | None:
        problem = import_problem(self.module)
        if problem is None:
            try:
                self._inner()
            except KeyError as exc:
                return f"keras backend {exc} is not covered"
        return problem

    def devices(self) -> tuple[str, ...]:
        return self._inner().devices()

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        return self._inner().asarray(array, dtype, device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self._inner().to_numpy(x)

    def dtype_name(self, x: Any) -> str:
        return self._inner().dtype_name(x)

    def autodiff(self, fn: Callable[..., Any], wrt: Sequence[Any]) -> tuple[Any, tuple[Any, ...]]:
        return self._inner().autodiff(fn, wrt)

    def hvp(
        self, fn: Callable[..., Any], wrt: Sequence[Any], directions: Sequence[Any]
    ) -> tuple[Any, ...]:
        return self._inner().hvp(fn, wrt, directions)

    @contextlib.contextmanager
    def placed(self, device: str) -> Iterator[None]:
        with self._inner().placed(device):
            yield


NUMPY = NumpyFramework()
ARRAY_API_STRICT = ArrayApiStrictFramework()
DASK = DaskFramework()
CUPY = CupyFramework()
TORCH = TorchFramework()
JAX = JaxFramework()
TENSORFLOW = TensorflowFramework()
KERAS = KerasFramework()


@dataclass(frozen=True)
class Backend:
    """One column of the matrix.

    Attributes:
        name: the column name (``--backends``).
        framework: the array plumbing.
        adapter: module of the framework dialect (``xentropy.backends.torch``); None for the
            core called directly on the framework's arrays.
        dialect: key of :data:`~xentropy.conformance.dialects.DIALECTS` that spells the cases
            in the adapter's (= the framework's) own API.
        requires: further modules that must import (the TensorFlow namespace of the core).
        default: part of a run that names no backends. The ``*-native`` backends, which run
            the frameworks' own losses through the dialect cells to validate the spellings,
            are not.
        native: compare an adapter with the framework's own loss as well.
    """

    name: str
    framework: Framework
    adapter: str | None = None
    dialect: str | None = None
    requires: tuple[str, ...] = ()
    default: bool = True
    native: bool = True

    @property
    def kind(self) -> str:
        """``"core"`` or ``"adapter"``."""
        return "core" if self.adapter is None else "adapter"

    def missing(self) -> str | None:
        """None when the backend can run, else why it cannot: ``"not installed (...)"``, or
        ``"installed, but the import fails (...)"`` (:func:`is_broken`)."""
        modules = [self.framework.module, *self.requires]
        if self.adapter is not None:
            modules.append(self.adapter)
        problem = self.framework.missing() or import_problem(*modules)
        if problem is None or is_broken(problem):
            return problem
        return f"{NOT_INSTALLED} ({problem})"

    def dtypes(self) -> tuple[str, ...]:
        return self.framework.dtypes

    def devices(self) -> tuple[str, ...]:
        return self.framework.devices()

    def spelling(self, case: Case) -> Spelling | None:
        """How the adapter spells ``case`` (None: it cannot); core backends return None."""
        if self.dialect is None:
            return None
        return DIALECTS[self.dialect].spell(case)

    def precision(self, dtype: str) -> str:
        """The dtype whose tolerance this column's ``dtype`` results are held to: ``dtype``,
        but on a native column whose framework computes it in a narrower dtype (the dialect's
        ``native_precision``: tf.compat.v1.losses reduces float64 in float32), that one."""
        if self.adapter is None or self.adapter.startswith("xentropy."):
            return dtype
        return self.native_precision(dtype)

    def native_precision(self, dtype: str) -> str:
        """The dtype whose tolerance this dialect's native loss meets on ``dtype`` inputs."""
        if self.dialect is None:
            return dtype
        return DIALECTS[self.dialect].native_precision.get(dtype, dtype)

    def skip_reason(self, case: Case, dtype: str) -> str | None:
        """Why ``case`` does not run on this backend in ``dtype`` (None: it runs)."""
        if dtype in case.excluded_dtypes:
            return case.excluded_dtypes[dtype]
        if self.adapter is not None:
            spelling = self.spelling(case)
            if spelling is None:
                return f"no {self.dialect} spelling of these options"
            if not spelling.native and not self.adapter.startswith("xentropy."):
                return f"an adapter extra: {self.dialect}'s own loss has no such option"
        if (
            self.dialect == "keras"
            and dtype == "float16"
            and case.value_range == "extreme"
            and case.reduction != "none"
        ):
            # Keras's base Loss reduces in the loss dtype: a float16 sum of losses near 1e4
            # overflows to inf (keras.losses does the same); reduction="none" cells check the
            # per-example values
            return "Keras sums float16 losses in float16 (overflows past 65504)"
        return None

    def _api(self) -> Any:
        assert self.dialect is not None and self.adapter is not None
        return DIALECTS[self.dialect].api(_import(self.adapter))

    def evaluate(
        self, case: Case, arrays: Mapping[str, Any], dtype: str
    ) -> tuple[Any, tuple[Any, ...]]:
        """``(loss, gradients)`` of ``case`` on this backend's ``arrays``.

        The core: ``xentropy.value_and_grad`` of the public function. An adapter: its dialect
        spelling, differentiated by the framework's autodiff.
        """
        if self.adapter is None:
            xentropy = _import("xentropy")
            fn = getattr(xentropy, case.variant)
            positional = [arrays[name] for name in case.arguments]
            keywords = {name: arrays[name] for name in case.keyword_arrays}
            value, grads = xentropy.value_and_grad(fn)(*positional, **keywords, **case.options)
            grads = grads if isinstance(grads, tuple) else (grads,)
            return value, tuple(g for g in grads if g is not None)
        return self._autodiff_spelling(self._api(), case, arrays, dtype)

    def derivative_skip_reason(self, case: Case, dtype: str, quantity: str) -> str | None:
        """Why the ``quantity`` (``"target_gradient"`` or ``"hvp"``) cells of ``case`` do not
        run in ``dtype`` (None: they run); asked after :meth:`skip_reason`."""
        if not self.framework.differentiates:
            return (
                f"{self.framework.name} has no autodiff: xentropy.value_and_grad gives the "
                "prediction's gradient only"
            )
        spelling = self.spelling(case)
        stopped = [n for n in spelling.no_gradient if n in case.target_grad_of] if spelling else []
        if quantity == "target_gradient" and stopped:
            return f"the {self.dialect} dialect stops the gradient of {', '.join(stopped)}"
        if quantity == "hvp" and dtype not in SECOND_ORDER_DTYPES:
            return (
                "second order runs in float32 and float64: a 16-bit second derivative by "
                "autodiff rounds its intermediate tangents in 16 bits, not once"
            )
        if (
            self.dialect == "keras"
            and quantity == "target_gradient"
            and "sample_weight" in case.target_grad_of
            and dtype in ("float16", "bfloat16")
        ):
            # d/ds_i of a weighted mean is (l_i - L) / sum(s): Keras (keras.losses as well)
            # weighs and reduces 16-bit losses in 16 bits, where that difference cancels
            return "Keras weighs and reduces 16-bit losses in 16 bits (d/ds cancels there)"
        if (
            self.dialect == "tensorflow-v1-losses"
            and quantity == "target_gradient"
            and "sample_weight" in case.target_grad_of
            and case.reduction == "mean"
            and dtype in ("float16", "bfloat16")
        ):
            # the same difference over the per-element losses, which tf.compat.v1.losses (and
            # the dialect, as it) rounds to 16 bits before weighing them in float32
            return "TF 1 weighs 16-bit losses rounded to 16 bits (d/ds of MEAN cancels there)"
        return None

    def evaluate_derivative(
        self,
        case: Case,
        arrays: Mapping[str, Any],
        dtype: str,
        quantity: str,
        directions: Mapping[str, Any],
    ) -> tuple[Any, ...]:
        """The framework's autodiff of ``case`` on this backend: the gradients of
        ``sum(loss)`` with respect to ``case.target_grad_of`` (``quantity="target_gradient"``),
        or ``H v`` with respect to ``case.grad_of`` along ``directions`` (``"hvp"``)."""
        api = None if self.adapter is None else self._api()
        return self._derivative(api, case, arrays, dtype, quantity, directions)

    def evaluate_native_derivative(
        self,
        case: Case,
        arrays: Mapping[str, Any],
        dtype: str,
        quantity: str,
        directions: Mapping[str, Any],
    ) -> tuple[Any, ...] | None:
        """:meth:`evaluate_derivative` of the framework's own loss (None: nothing to compare
        with)."""
        spelling = self.spelling(case)
        if self.adapter is None or not self.native or spelling is None or not spelling.native:
            return None
        assert self.dialect is not None
        native = DIALECTS[self.dialect].native()
        return self._derivative(native, case, arrays, dtype, quantity, directions)

    def _derivative(
        self,
        api: Any,
        case: Case,
        arrays: Mapping[str, Any],
        dtype: str,
        quantity: str,
        directions: Mapping[str, Any],
    ) -> tuple[Any, ...]:
        if quantity == "target_gradient":
            names = case.target_grad_of
            loss = self._loss(api, case, arrays, dtype, names)
            return self.framework.autodiff(loss, [arrays[n] for n in names])[1]
        if quantity == "hvp":
            names = case.grad_of
            loss = self._loss(api, case, arrays, dtype, names)
            return self.framework.hvp(
                loss, [arrays[n] for n in names], [directions[n] for n in names]
            )
        raise ValueError(f"unknown derivative {quantity!r}")

    def _loss(
        self, api: Any, case: Case, arrays: Mapping[str, Any], dtype: str, names: Sequence[str]
    ) -> Callable[..., Any]:
        """The loss of ``case`` as a function of the arrays ``names``: the core's public
        function (``api`` None) or the spelling on ``api``."""
        if api is None:
            fn = getattr(_import("xentropy"), case.variant)

            def core(*wrt: Any) -> Any:
                a = {**arrays, **dict(zip(names, wrt, strict=True))}
                keywords = {name: a[name] for name in case.keyword_arrays}
                return fn(*(a[name] for name in case.arguments), **keywords, **case.options)

            return core
        spelling = self.spelling(case)
        assert spelling is not None

        def spelled(*wrt: Any) -> Any:
            return spelling.call(api, {**arrays, **dict(zip(names, wrt, strict=True))}, dtype)

        return spelled

    def evaluate_native(
        self, case: Case, arrays: Mapping[str, Any], dtype: str
    ) -> tuple[Any, tuple[Any, ...]] | None:
        """The framework's own loss on the same spelling (None: nothing to compare with)."""
        spelling = self.spelling(case)
        if self.adapter is None or not self.native or spelling is None or not spelling.native:
            return None
        assert self.dialect is not None
        return self._autodiff_spelling(DIALECTS[self.dialect].native(), case, arrays, dtype)

    def _autodiff_spelling(
        self, api: Any, case: Case, arrays: Mapping[str, Any], dtype: str
    ) -> tuple[Any, tuple[Any, ...]]:
        loss = self._loss(api, case, arrays, dtype, case.grad_of)
        return self.framework.autodiff(loss, [arrays[name] for name in case.grad_of])


@dataclass(frozen=True)
class LazyCoreBackend(Backend):
    """The core on a lazy framework (Dask): the call must compute nothing.

    ``evaluate`` builds the loss and gradient inside ``framework.lazy()``, where any compute
    raises (the cell then fails); the comparisons compute them afterwards.
    """

    framework: DaskFramework = DASK

    def evaluate(
        self, case: Case, arrays: Mapping[str, Any], dtype: str
    ) -> tuple[Any, tuple[Any, ...]]:
        with self.framework.lazy():
            return super().evaluate(case, arrays, dtype)


TF_NAMESPACE = "xentropy.backends.tensorflow.namespace"

BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, *, replace: bool = False) -> Backend:
    """Add ``backend`` to :data:`BACKENDS` (the hook for new adapters and for tests).

    Raises:
        ValueError: if the name is taken and ``replace`` is false.
    """
    if backend.name in BACKENDS and not replace:
        raise ValueError(f"a backend named {backend.name!r} is registered already")
    BACKENDS[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Remove the backend ``name`` (no error if absent)."""
    BACKENDS.pop(name, None)


for _backend in (
    Backend("numpy", NUMPY),
    Backend("array_api_strict", ARRAY_API_STRICT),
    LazyCoreBackend("dask", DASK),
    Backend("cupy", CUPY),
    Backend("torch", TORCH),
    Backend("jax", JAX),
    Backend("tensorflow", TENSORFLOW, requires=(TF_NAMESPACE,)),
    Backend("torch-adapter", TORCH, adapter="xentropy.backends.torch", dialect="torch"),
    Backend(
        "jax-adapter", JAX, adapter="xentropy.backends.jax", dialect="jax", requires=("optax",)
    ),
    Backend(
        "tensorflow-adapter",
        TENSORFLOW,
        adapter="xentropy.backends.tensorflow",
        dialect="tensorflow",
    ),
    Backend(
        "tensorflow-v1-adapter",
        TENSORFLOW,
        adapter="xentropy.backends.tensorflow.losses",
        dialect="tensorflow-v1-losses",
    ),
    Backend("keras-adapter", KERAS, adapter="xentropy.backends.keras", dialect="keras"),
    # the frameworks' own losses through the same dialect cells: checks the spellings
    Backend(
        "torch-native", TORCH, adapter="torch.nn", dialect="torch", default=False, native=False
    ),
    Backend("jax-native", JAX, adapter="optax", dialect="jax", default=False, native=False),
    Backend(
        "tensorflow-native",
        TENSORFLOW,
        adapter="tensorflow",
        dialect="tensorflow",
        default=False,
        native=False,
    ),
    Backend(
        "tensorflow-v1-native",
        TENSORFLOW,
        adapter="tensorflow.compat.v1.losses",
        dialect="tensorflow-v1-losses",
        default=False,
        native=False,
    ),
    Backend("keras-native", KERAS, adapter="keras", dialect="keras", default=False, native=False),
):
    register_backend(_backend)


class JaxShardedFramework(JaxFramework):
    """JAX with a mesh of host devices (:mod:`~xentropy.conformance.sharded`); its arrays are
    left uncommitted, for ``shard_map`` to lay out over the mesh."""

    dtypes = sharded.DTYPES

    def missing(self) -> str | None:
        # the plain import: asking about devices must not switch on 64-bit types in a process
        # that runs nothing (``_jax`` does)
        return super().missing() or sharded.host_device_problem(_import("jax"))

    def devices(self) -> tuple[str, ...]:
        return ("cpu",)

    def asarray(self, array: np.ndarray, dtype: str | None, device: str) -> Any:
        x = self._jax().numpy.asarray(array)
        return x.astype(dtype) if dtype and array.dtype.kind == "f" else x


@dataclass(frozen=True)
class DistributedBackend(Backend):
    """The ``torch-distributed`` column: every cell on the gloo ranks of
    :mod:`~xentropy.conformance._rank`."""

    def missing(self) -> str | None:
        problem = super().missing()
        if problem is None and not _import("torch.distributed").is_gloo_available():
            return f"{NOT_INSTALLED} (this torch has no gloo backend)"
        return problem

    def evaluate(
        self, case: Case, arrays: Mapping[str, Any], dtype: str
    ) -> tuple[Any, tuple[Any, ...]]:
        from . import _rank

        rounded = {k: self.framework.to_numpy(v) for k, v in arrays.items()}
        return _rank.group().evaluate(case, rounded, dtype)

    def dtypes(self) -> tuple[str, ...]:
        return sharded.DTYPES

    def derivative_skip_reason(self, case: Case, dtype: str, quantity: str) -> str | None:
        return sharded.FIRST_ORDER_ONLY


for _backend in (
    DistributedBackend(
        "torch-distributed",
        TORCH,
        adapter="xentropy.backends.torch.distributed",
        dialect="torch-distributed",
        native=False,
    ),
    Backend(
        "jax-sharded",
        JaxShardedFramework(),
        adapter="xentropy.backends.jax.sharded",
        dialect="jax-sharded",
        native=False,
    ),
):
    register_backend(_backend)


BUILTIN: dict[str, Backend] = dict(BACKENDS)


def is_builtin(backend: Backend) -> bool:
    """Whether ``backend`` is one this module registers itself (a fresh process knows it)."""
    return BUILTIN.get(backend.name) is backend


def select_backends(names: Sequence[str] | None) -> list[Backend]:
    """The backends named (all default ones for None), in registry order.

    Raises:
        ValueError: for an unknown name.
    """
    if names is None:
        return [b for b in BACKENDS.values() if b.default]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backends {unknown}; choose from {list(BACKENDS)}")
    return [b for b in BACKENDS.values() if b.name in names]
