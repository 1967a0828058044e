"""An Array API (2024.12) namespace over plain TensorFlow ops.

array-api-compat has no TensorFlow support, so xentropy carries its own namespace: this module
object *is* the namespace (``xp = xentropy.backends.tensorflow.namespace``), in the way that
``array_api_strict`` is. Every function takes and returns plain ``tf.Tensor`` objects
(``tf.Variable``, NumPy arrays and Python scalars are accepted as inputs) and is built from ordinary
``tf`` ops, so it works eagerly, inside ``tf.function`` (also with ``None`` static dimensions) and
under XLA (``jit_compile=True``). It never turns on TensorFlow's NumPy behaviour (a process-wide
switch).

What differs from calling ``tf`` directly:

* **Type promotion.** TensorFlow never promotes. The functions here apply the standard's promotion
  table (``add(float32, float64) -> float64``, ``int8 + uint8 -> int16``); Python scalars adopt the
  array's dtype (NumPy scalars such as ``np.float64(1)`` count as arrays). Mixed kinds, which the
  standard leaves open, promote leniently (as PyTorch does): bool with a number gives the number's
  dtype, an integer with a float gives the float's dtype. ``bfloat16`` with ``float16`` gives
  ``float32``. The *operators* of ``tf.Tensor`` (``a + b``) are untouched and still refuse mixed
  dtypes: cast with :func:`astype` before using them.
* **NaN propagation.** :func:`max` and :func:`min` return NaN for slices that contain a NaN, also
  under XLA (where ``tf.reduce_max`` ignores NaN); :func:`maximum`, :func:`minimum` and
  :func:`clip` propagate a NaN from either operand (under XLA ``tf.maximum(a, b)`` drops a NaN in
  ``b``); :func:`argmax` and :func:`argmin` return the index of the first NaN, as NumPy does
  (``tf.argmax`` skips NaN everywhere).
* **Negative indices** wrap around in :func:`take` and :func:`take_along_axis` (``tf.gather``
  rejects them). Out-of-range indices are not checked: ``tf.gather`` raises on CPU, stores 0 on GPU
  and clamps under XLA, so validate indices before calling.
* **Dynamic shapes.** Sizes are read with ``tf.shape`` (never from ``x.shape``, which holds ``None``
  for unknown dimensions while tracing), so functions accept tensors with unknown dimensions. The
  *rank* must be known statically.
* **Dtypes.** The dtype names are ``tf.DType`` objects; every ``dtype=`` argument also accepts NumPy
  dtypes and strings and is normalised with ``tf.as_dtype`` (``tf.float32 == np.float32`` but the
  hashes differ). Default dtypes: ``float32``, ``complex64``, ``int32`` (integral, TF's literal
  default) and ``int64`` (indexing: ``argmax``, ``argsort``, ``nonzero``, ...).
* Ops that TensorFlow lacks for some dtypes are routed through a dtype that has a kernel
  (unsigned ``abs``/``negative``/``sign``, small-integer and unsigned cumulative sums under XLA,
  ``uint16`` tiling and sorting, ``bool`` sorting, small-integer ``matmul``). Floating-point
  functions given integers compute in ``float32`` (TF has no integer kernels for them).
* :func:`mean`, :func:`var` and :func:`std` raise ``TypeError`` for integer input
  (``tf.reduce_mean`` does integer division) and accumulate ``float16``/``bfloat16`` in ``float32``.

Also exported: :func:`is_lazy_array` (``True`` for symbolic tensors and while a graph is being
built), and the module-level helpers :func:`device` and :func:`to_device`.

Functions whose result shape depends on data (``nonzero``, ``unique_*``, ``repeat`` with array
``repeats``, and boolean-mask indexing ``x[mask]``) work eagerly and in graph mode; under XLA some
compile (bounded dynamic shapes) and ``unique_all``/``unique_counts``/``unique_inverse`` do not, so
``capabilities()`` reports them unavailable while tracing. Left out: the ``linalg`` and ``fft``
extensions and in-place updates; ``tf.Tensor.__getitem__`` takes no integer-array indices (use
:func:`take` and :func:`take_along_axis`).
"""

from __future__ import annotations

import builtins
import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
import tensorflow as tf

__array_api_version__ = "2024.12"

Array = tf.Tensor
DType = tf.DType
Device = str

# --------------------------------------------------------------------------------------------
# Data types and constants
# --------------------------------------------------------------------------------------------

bool = tf.bool
int8 = tf.int8
int16 = tf.int16
int32 = tf.int32
int64 = tf.int64
uint8 = tf.uint8
uint16 = tf.uint16
uint32 = tf.uint32
uint64 = tf.uint64
float16 = tf.float16
bfloat16 = tf.bfloat16
float32 = tf.float32
float64 = tf.float64
complex64 = tf.complex64
complex128 = tf.complex128

e = math.e
inf = math.inf
nan = math.nan
pi = math.pi
newaxis = None

_DEFAULT_FLOAT = tf.float32
_DEFAULT_COMPLEX = tf.complex64
_DEFAULT_INT = tf.int32
_DEFAULT_INDEX = tf.int64
_MAX_DIMENSIONS = 254  # tf.zeros([1] * 255) raises InvalidArgumentError

_PY_SCALARS = (builtins.bool, builtins.int, builtins.float, builtins.complex)
_STANDARD_DTYPES = (
    tf.bool, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16, tf.uint32, tf.uint64,
    tf.float16, tf.float32, tf.float64, tf.complex64, tf.complex128,
)  # fmt: skip
_SIGNED_BY_BITS = {8: tf.int8, 16: tf.int16, 32: tf.int32, 64: tf.int64}
_UNSIGNED_BY_BITS = {8: tf.uint8, 16: tf.uint16, 32: tf.uint32, 64: tf.uint64}
_LOW_PRECISION_FLOATS = (tf.float16, tf.bfloat16)


class AxisError(ValueError, IndexError):
    """An axis outside ``[-ndim, ndim)``; a ``ValueError`` and an ``IndexError``, as NumPy's."""


def _api(func: Any) -> Any:
    """Keep AutoGraph out of the namespace functions: they have no tensor-dependent control flow,
    and converting them only slows tracing down."""
    return tf.autograph.experimental.do_not_convert(func)


# --------------------------------------------------------------------------------------------
# Internal helpers
# --------------------------------------------------------------------------------------------


def _dtype(dtype: Any) -> tf.DType | None:
    """Normalise any dtype spelling (``tf.DType``, NumPy dtype or type, string) to ``tf.DType``."""
    return None if dtype is None else tf.as_dtype(dtype)


def _is_py_scalar(x: Any) -> builtins.bool:
    return isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic)


def _t(x: Any) -> tf.Tensor:
    """Any array-like input as a ``tf.Tensor`` (variables are read; others go through asarray)."""
    if isinstance(x, tf.Tensor):
        return x
    if isinstance(x, tf.Variable):
        return tf.convert_to_tensor(x)
    return asarray(x)


def _ndim(x: tf.Tensor, name: str = "this function") -> int:
    rank = x.shape.rank
    if rank is None:
        raise ValueError(f"{name} needs an input of statically known rank, got shape {x.shape}")
    return rank


def _axis(axis: int, ndim: int) -> int:
    """A single axis normalised to ``[0, ndim)``."""
    if not -ndim <= axis < ndim:
        raise AxisError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim


def _axes(axis: int | Sequence[int] | None, ndim: int) -> list[int] | None:
    """``None`` (all axes) or a list of non-negative axes, checked for range and repeats."""
    if axis is None:
        return None
    axes = [_axis(a, ndim) for a in ((axis,) if isinstance(axis, builtins.int) else axis)]
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {axis}")
    return axes


def _const(value: Any, dtype: tf.DType) -> tf.Tensor:
    """A Python value as a tensor of ``dtype`` (``tf.constant`` refuses some conversions)."""
    try:
        return tf.constant(value, dtype=dtype)
    except (TypeError, ValueError):
        return tf.cast(tf.constant(value), dtype)


def _floating(x: Any) -> tf.Tensor:
    """Input for a floating-point function: bool and integer tensors compute in float32."""
    x = _t(x)
    if x.dtype.is_floating or x.dtype.is_complex:
        return x
    return tf.cast(x, _DEFAULT_FLOAT)


def _kind(dtype: tf.DType) -> str:
    if dtype == tf.bool:
        return "b"
    if dtype.is_unsigned:
        return "u"
    if dtype.is_integer:
        return "i"
    if dtype.is_complex:
        return "c"
    return "f"


def _bits(dtype: tf.DType) -> int:
    return dtype.size * 8


def _promote_strict(a: tf.DType, b: tf.DType) -> tf.DType | None:
    """The standard's promotion table (plus bfloat16); ``None`` for mixed kinds."""
    if a == b:
        return a
    ka, kb = _kind(a), _kind(b)
    if ka == "b" or kb == "b":
        return None
    if ka in "iu" and kb in "iu":
        if ka == kb:
            return a if _bits(a) >= _bits(b) else b
        signed, unsigned = (a, b) if ka == "i" else (b, a)
        if _bits(signed) > _bits(unsigned):
            return signed
        if _bits(unsigned) == 64:
            raise TypeError(f"no integer dtype can hold both {a.name} and {b.name}")
        return _SIGNED_BY_BITS[2 * _bits(unsigned)]
    if ka in "fc" and kb in "fc":
        if a in _LOW_PRECISION_FLOATS and b in _LOW_PRECISION_FLOATS:
            return tf.float32
        real_bits = builtins.max(_bits(a.real_dtype), _bits(b.real_dtype))
        if "c" in (ka, kb):
            return tf.complex128 if real_bits == 64 else tf.complex64
        return a if _bits(a) >= _bits(b) else b
    return None


def _promote(a: tf.DType, b: tf.DType) -> tf.DType:
    """Standard promotion, extended to mixed kinds (numbers beat bool, floats beat integers)."""
    out = _promote_strict(a, b)
    if out is not None:
        return out
    ka, kb = _kind(a), _kind(b)
    if ka == "b":
        return b
    if kb == "b":
        return a
    return a if ka in "fc" else b


def _scalar_dtype(value: Any, dtype: tf.DType) -> tf.DType:
    """The dtype a Python scalar takes next to an array of ``dtype`` (it adopts it when it can)."""
    kind = _kind(dtype)
    if isinstance(value, builtins.bool):
        return dtype
    if isinstance(value, builtins.int):
        return _DEFAULT_INT if kind == "b" else dtype
    if isinstance(value, builtins.float):
        return dtype if kind in "fc" else _DEFAULT_FLOAT
    # complex
    if kind == "c":
        return dtype
    return tf.complex128 if dtype == tf.float64 else _DEFAULT_COMPLEX


def _promote_all(*args: Any) -> list[tf.Tensor]:
    """Tensors (and Python scalars) converted to one common dtype."""
    tensors = [None if _is_py_scalar(a) else _t(a) for a in args]
    present = [t for t in tensors if t is not None]
    if not present:
        tensors = [asarray(a) for a in args]
        present = tensors
    dtype = present[0].dtype
    for t in present[1:]:
        dtype = _promote(dtype, t.dtype)
    for a in args:
        if _is_py_scalar(a):
            dtype = _promote(dtype, _scalar_dtype(a, dtype))
    return [
        _const(a, dtype) if t is None else (t if t.dtype == dtype else tf.cast(t, dtype))
        for a, t in zip(args, tensors, strict=True)
    ]


def _pair(x1: Any, x2: Any) -> tuple[tf.Tensor, tf.Tensor]:
    a, b = _promote_all(x1, x2)
    return a, b


def _to_bool(x: tf.Tensor) -> tf.Tensor:
    return x if x.dtype == tf.bool else tf.not_equal(x, tf.zeros([], x.dtype))


def _index_tensor(indices: Any, name: str) -> tf.Tensor:
    idx = _t(indices)
    if not idx.dtype.is_integer:
        raise TypeError(f"{name} needs integer indices, got dtype {idx.dtype.name}")
    if idx.dtype not in (tf.int32, tf.int64):
        idx = tf.cast(idx, tf.int64)
    return idx


def _wrap_negative(idx: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Negative indices counted from the end (``-1`` is the last element)."""
    return tf.where(idx < 0, idx + size, idx)


def _count(x: tf.Tensor, axes: list[int] | None) -> tf.Tensor:
    """Number of elements reduced over ``axes``, as a 0-d int32 tensor (works with None dims)."""
    if axes is None:
        return tf.size(x)
    return tf.reduce_prod(tf.gather(tf.shape(x), tf.constant(axes, tf.int32)))


@contextlib.contextmanager
def _on(device: Device | None) -> Iterator[None]:
    if device is None:
        yield
    else:
        with tf.device(device):
            yield


def _shape_arg(shape: Any) -> Any:
    if isinstance(shape, builtins.int) or (isinstance(shape, tf.Tensor) and shape.shape.rank == 0):
        return [shape]
    if isinstance(shape, tf.TensorShape):
        if not shape.is_fully_defined():
            raise ValueError(
                f"shape {shape} has unknown dimensions; inside tf.function use zeros_like/"
                "full_like or broadcast_to with tf.shape instead"
            )
        return shape.as_list()
    if isinstance(shape, (tuple, list)):
        if builtins.any(d is None for d in shape):
            raise ValueError(
                f"shape {tuple(shape)} has unknown (None) dimensions, as x.shape has while tracing "
                "with unknown sizes; use zeros_like/full_like, or -1 in reshape"
            )
        return list(shape)
    return shape


def _fill_value(value: Any, dtype: tf.DType) -> tf.Tensor:
    return _const(value, dtype) if _is_py_scalar(value) else tf.cast(_t(value), dtype)


def _fill_dtype(value: Any) -> tf.DType:
    if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
        return tf.as_dtype(value.dtype)
    if isinstance(value, builtins.bool):
        return tf.bool
    if isinstance(value, builtins.int):
        return _DEFAULT_INT
    if isinstance(value, builtins.float):
        return _DEFAULT_FLOAT
    if isinstance(value, builtins.complex):
        return _DEFAULT_COMPLEX
    raise TypeError(f"unsupported fill value {value!r}")


# --------------------------------------------------------------------------------------------
# Data type functions
# --------------------------------------------------------------------------------------------


@_api
def isdtype(dtype: Any, kind: Any) -> builtins.bool:
    """Whether ``dtype`` is of ``kind`` (a kind name, a dtype, or a tuple of them).

    ``bfloat16`` counts as ``"real floating"``. NumPy dtypes are accepted for both arguments.
    """
    dtype = tf.as_dtype(dtype)
    if isinstance(kind, tuple):
        return builtins.any(isdtype(dtype, k) for k in kind)
    if not isinstance(kind, str):
        return dtype == tf.as_dtype(kind)
    k = _kind(dtype)
    checks = {
        "bool": k == "b",
        "signed integer": k == "i",
        "unsigned integer": k == "u",
        "integral": k in "iu",
        "real floating": k == "f",
        "complex floating": k == "c",
        "numeric": k in "iufc",
    }
    if kind not in checks:
        raise ValueError(f"unknown dtype kind {kind!r}")
    return checks[kind]


class finfo_object(NamedTuple):
    """Machine limits of a floating-point dtype (``dtype`` is the real dtype for complex ones)."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: tf.DType


class iinfo_object(NamedTuple):
    """Machine limits of an integer dtype."""

    bits: int
    max: int
    min: int
    dtype: tf.DType


@_api
def finfo(type: Any, /) -> finfo_object:
    """Limits of a floating-point dtype or of an array's dtype (``bfloat16`` included)."""
    dtype = tf.as_dtype(type.dtype if hasattr(type, "dtype") else type)
    if not (dtype.is_floating or dtype.is_complex):
        raise TypeError(f"finfo needs a floating-point dtype, got {dtype.name}")
    real = dtype.real_dtype
    info = ml_dtypes.finfo(real.as_numpy_dtype)
    return finfo_object(
        bits=_bits(real),
        eps=builtins.float(info.eps),
        max=builtins.float(info.max),
        min=builtins.float(info.min),
        smallest_normal=builtins.float(info.smallest_normal),
        dtype=real,
    )


@_api
def iinfo(type: Any, /) -> iinfo_object:
    """Limits of an integer dtype or of an array's dtype."""
    dtype = tf.as_dtype(type.dtype if hasattr(type, "dtype") else type)
    if not dtype.is_integer:
        raise TypeError(f"iinfo needs an integer dtype, got {dtype.name}")
    info = np.iinfo(dtype.as_numpy_dtype)
    return iinfo_object(
        bits=_bits(dtype), max=builtins.int(info.max), min=builtins.int(info.min), dtype=dtype
    )


@_api
def result_type(*arrays_and_dtypes: Any) -> tf.DType:
    """The promoted dtype of arrays, dtypes and Python scalars (scalars adopt the array dtype)."""
    dtypes: list[tf.DType] = []
    scalars: list[Any] = []
    for a in arrays_and_dtypes:
        if _is_py_scalar(a):
            scalars.append(a)
        elif isinstance(a, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
            dtypes.append(tf.as_dtype(a.dtype))
        else:
            dtypes.append(tf.as_dtype(a))
    if not dtypes:
        raise ValueError("result_type needs at least one array or dtype")
    out = dtypes[0]
    for d in dtypes[1:]:
        out = _promote(out, d)
    for s in scalars:
        out = _promote(out, _scalar_dtype(s, out))
    return out


@_api
def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Whether the standard's promotion rules allow ``from_ -> to`` (mixed kinds: ``False``)."""
    src = tf.as_dtype(from_.dtype if hasattr(from_, "dtype") else from_)
    dst = tf.as_dtype(to)
    try:
        return _promote_strict(src, dst) == dst
    except TypeError:
        return False


@_api
def astype(
    x: Array, dtype: Any, /, *, copy: builtins.bool = True, device: Device | None = None
) -> Array:
    """``tf.cast`` to ``dtype`` (NumPy dtypes accepted).

    Tensors are immutable, so ``x`` itself is returned when the dtype already matches, whatever
    ``copy`` says (no op is added to the graph). Float-to-integer casts of NaN, infinities and
    out-of-range values give different results on CPU and under XLA (TF leaves them undefined);
    complex-to-real casts drop the imaginary part.
    """
    x = _t(x)
    dtype = tf.as_dtype(dtype)
    with _on(device):
        if x.dtype == dtype:
            return x if device is None else tf.identity(x)
        return tf.cast(x, dtype)


# --------------------------------------------------------------------------------------------
# Creation functions
# --------------------------------------------------------------------------------------------


@_api
def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    device: Device | None = None,
    copy: builtins.bool | None = None,
) -> Array:
    """Convert ``obj`` to a ``tf.Tensor``.

    Tensors keep their dtype unless ``dtype`` is given. NumPy arrays keep theirs (float64 stays
    float64). Python scalars and nested sequences take the default dtypes: bool, int32 (int64 if a
    value does not fit), float32, complex64. ``copy=False`` raises ``ValueError`` when a new tensor
    must be made (a dtype change, a ``tf.Variable``, a Python sequence); NumPy input is always
    converted. Tensors are immutable, so a tensor of the right dtype is returned as is, whatever
    ``copy`` says.
    """
    dtype = _dtype(dtype)
    with _on(device):
        if isinstance(obj, tf.Tensor):
            if dtype is not None and dtype != obj.dtype:
                if copy is False:
                    raise ValueError(f"asarray: copy=False but {obj.dtype.name} -> {dtype.name}")
                return tf.cast(obj, dtype)
            return obj if device is None else tf.identity(obj)
        if isinstance(obj, tf.Variable):
            if copy is False:
                raise ValueError("asarray: copy=False is impossible for a tf.Variable")
            value = tf.convert_to_tensor(obj)
            return value if dtype is None or dtype == value.dtype else tf.cast(value, dtype)
        if isinstance(obj, (np.ndarray, np.generic)) or (
            hasattr(obj, "__array__") and not isinstance(obj, (list, tuple))
        ):
            value = tf.convert_to_tensor(np.asarray(obj))
            return value if dtype is None or dtype == value.dtype else tf.cast(value, dtype)
        if copy is False:
            raise ValueError(f"asarray: copy=False needs an array, got {type(obj).__name__}")
        if dtype is not None:
            return _const(obj, dtype)
        value = tf.constant(obj)
        if value.dtype == tf.complex128:
            return tf.cast(value, _DEFAULT_COMPLEX)
        return value


@_api
def zeros(shape: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """Zeros of ``shape`` (ints, or 0-d int tensors for dynamic sizes); default float32."""
    with _on(device):
        return tf.zeros(_shape_arg(shape), dtype=_dtype(dtype) or _DEFAULT_FLOAT)


@_api
def ones(shape: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """Ones of ``shape``; default float32."""
    with _on(device):
        return tf.ones(_shape_arg(shape), dtype=_dtype(dtype) or _DEFAULT_FLOAT)


@_api
def empty(shape: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """Same as :func:`zeros` (TF has no uninitialised tensors)."""
    return zeros(shape, dtype=dtype, device=device)


@_api
def zeros_like(x: Array, /, *, dtype: Any = None, device: Device | None = None) -> Array:
    with _on(device):
        return tf.zeros_like(_t(x), dtype=_dtype(dtype))


@_api
def ones_like(x: Array, /, *, dtype: Any = None, device: Device | None = None) -> Array:
    with _on(device):
        return tf.ones_like(_t(x), dtype=_dtype(dtype))


@_api
def empty_like(x: Array, /, *, dtype: Any = None, device: Device | None = None) -> Array:
    return zeros_like(x, dtype=dtype, device=device)


@_api
def full(shape: Any, fill_value: Any, *, dtype: Any = None, device: Device | None = None) -> Array:
    """``shape`` filled with ``fill_value``; the dtype defaults to the value's default dtype."""
    dt = _dtype(dtype) or _fill_dtype(fill_value)
    with _on(device):
        value = _fill_value(fill_value, dt)
        return tf.fill(_shape_arg(shape), value)


@_api
def full_like(
    x: Array, /, fill_value: Any, *, dtype: Any = None, device: Device | None = None
) -> Array:
    """``x``'s shape (also when dynamic) filled with ``fill_value``, in ``x``'s dtype by default."""
    x = _t(x)
    dt = _dtype(dtype) or x.dtype
    with _on(device):
        value = _fill_value(fill_value, dt)
        return tf.fill(tf.shape(x), value)


@_api
def arange(
    start: Any,
    /,
    stop: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: Device | None = None,
) -> Array:
    """``tf.range`` with the standard's dtype inference (int32, or float32 if any bound is float).

    Floating ranges are computed in float64 and then cast, so the length matches NumPy's.
    """
    if stop is None:
        start, stop = 0, start
    dt = _dtype(dtype)
    if dt is None:
        is_float = builtins.any(
            isinstance(v, builtins.float)
            or (hasattr(v, "dtype") and tf.as_dtype(v.dtype).is_floating)
            for v in (start, stop, step)
        )
        dt = _DEFAULT_FLOAT if is_float else _DEFAULT_INT
    with _on(device):
        if dt.is_floating:
            return tf.cast(tf.range(start, stop, step, dtype=tf.float64), dt)
        return tf.range(start, stop, step, dtype=dt)


@_api
def eye(
    n_rows: int,
    n_cols: int | None = None,
    /,
    *,
    k: int = 0,
    dtype: Any = None,
    device: Device | None = None,
) -> Array:
    """Identity-like matrix with ones on diagonal ``k`` (``tf.eye`` has no ``k``)."""
    n_cols = n_rows if n_cols is None else n_cols
    with _on(device):
        rows = tf.range(n_rows)[:, None]
        cols = tf.range(n_cols)[None, :]
        return tf.cast(tf.equal(cols - rows, k), _dtype(dtype) or _DEFAULT_FLOAT)


@_api
def linspace(
    start: Any,
    stop: Any,
    /,
    num: int,
    *,
    dtype: Any = None,
    device: Device | None = None,
    endpoint: builtins.bool = True,
) -> Array:
    """``num`` evenly spaced values, computed in float64 and cast to ``dtype`` (default float32)."""
    dt = _dtype(dtype) or _DEFAULT_FLOAT
    with _on(device):
        lo = tf.cast(start, tf.float64)
        hi = tf.cast(stop, tf.float64)
        out = tf.linspace(lo, hi, num) if endpoint else tf.linspace(lo, hi, num + 1)[:-1]
        return tf.cast(out, dt)


@_api
def meshgrid(*arrays: Array, indexing: str = "xy") -> list[Array]:
    if indexing not in ("xy", "ij"):
        raise ValueError(f"indexing must be 'xy' or 'ij', got {indexing!r}")
    return list(tf.meshgrid(*_promote_all(*arrays), indexing=indexing))


def _band_mask(x: tf.Tensor, k: int, lower: builtins.bool) -> tf.Tensor:
    shape = tf.shape(x)
    rows = tf.range(shape[-2])[:, None]
    cols = tf.range(shape[-1])[None, :]
    return (cols - rows <= k) if lower else (cols - rows >= k)


@_api
def tril(x: Array, /, *, k: int = 0) -> Array:
    """Lower triangle of the last two axes (any ``k``, unlike ``tf.linalg.band_part``)."""
    x = _t(x)
    return tf.where(_band_mask(x, k, lower=True), x, tf.zeros([], x.dtype))


@_api
def triu(x: Array, /, *, k: int = 0) -> Array:
    """Upper triangle of the last two axes."""
    x = _t(x)
    return tf.where(_band_mask(x, k, lower=False), x, tf.zeros([], x.dtype))


@_api
def from_dlpack(
    x: Any, /, *, device: Device | None = None, copy: builtins.bool | None = None
) -> Array:
    """A tensor from any object with ``__dlpack__`` (``tf.experimental.dlpack``)."""
    with _on(device):
        out = tf.experimental.dlpack.from_dlpack(x.__dlpack__())
        return tf.identity(out) if copy else out


# --------------------------------------------------------------------------------------------
# Element-wise functions
# --------------------------------------------------------------------------------------------


@_api
def abs(x: Array, /) -> Array:
    """Absolute value (unsigned input returned as is: TF has no unsigned ``abs`` kernel)."""
    x = _t(x)
    return x if x.dtype.is_unsigned else tf.math.abs(x)


@_api
def negative(x: Array, /) -> Array:
    """``-x``; unsigned input wraps modulo ``2**bits`` (TF has no unsigned ``neg`` kernel)."""
    x = _t(x)
    if x.dtype.is_unsigned:
        return tf.zeros([], x.dtype) - x
    return tf.math.negative(x)


@_api
def positive(x: Array, /) -> Array:
    return _t(x)


@_api
def sign(x: Array, /) -> Array:
    """-1, 0 or 1 (NaN stays NaN; ``x / |x|`` for complex; 0 or 1 for unsigned)."""
    x = _t(x)
    if x.dtype.is_unsigned:
        return tf.cast(x > tf.zeros([], x.dtype), x.dtype)
    return tf.math.sign(x)


@_api
def square(x: Array, /) -> Array:
    return tf.math.square(_t(x))


@_api
def sqrt(x: Array, /) -> Array:
    return tf.math.sqrt(_floating(x))


@_api
def exp(x: Array, /) -> Array:
    return tf.math.exp(_floating(x))


@_api
def expm1(x: Array, /) -> Array:
    return tf.math.expm1(_floating(x))


@_api
def log(x: Array, /) -> Array:
    return tf.math.log(_floating(x))


@_api
def log1p(x: Array, /) -> Array:
    return tf.math.log1p(_floating(x))


@_api
def log2(x: Array, /) -> Array:
    """``log(x) / log(2)`` (TF has no ``log2``; may differ from NumPy by an ulp)."""
    x = _floating(x)
    return tf.math.log(x) / tf.cast(math.log(2.0), x.dtype)


@_api
def log10(x: Array, /) -> Array:
    """``log(x) / log(10)`` (TF has no ``log10``; may differ from NumPy by an ulp)."""
    x = _floating(x)
    return tf.math.log(x) / tf.cast(math.log(10.0), x.dtype)


@_api
def sin(x: Array, /) -> Array:
    return tf.math.sin(_floating(x))


@_api
def cos(x: Array, /) -> Array:
    return tf.math.cos(_floating(x))


@_api
def tan(x: Array, /) -> Array:
    return tf.math.tan(_floating(x))


@_api
def asin(x: Array, /) -> Array:
    return tf.math.asin(_floating(x))


@_api
def acos(x: Array, /) -> Array:
    return tf.math.acos(_floating(x))


@_api
def atan(x: Array, /) -> Array:
    return tf.math.atan(_floating(x))


@_api
def sinh(x: Array, /) -> Array:
    return tf.math.sinh(_floating(x))


@_api
def cosh(x: Array, /) -> Array:
    return tf.math.cosh(_floating(x))


@_api
def tanh(x: Array, /) -> Array:
    return tf.math.tanh(_floating(x))


@_api
def asinh(x: Array, /) -> Array:
    return tf.math.asinh(_floating(x))


@_api
def acosh(x: Array, /) -> Array:
    return tf.math.acosh(_floating(x))


@_api
def atanh(x: Array, /) -> Array:
    return tf.math.atanh(_floating(x))


@_api
def reciprocal(x: Array, /) -> Array:
    return tf.math.reciprocal(_floating(x))


@_api
def floor(x: Array, /) -> Array:
    """Floor; integer input is returned unchanged (TF has no integer kernel)."""
    x = _t(x)
    return tf.math.floor(x) if x.dtype.is_floating else x


@_api
def ceil(x: Array, /) -> Array:
    """Ceiling; integer input is returned unchanged."""
    x = _t(x)
    return tf.math.ceil(x) if x.dtype.is_floating else x


@_api
def trunc(x: Array, /) -> Array:
    """Round towards zero (TF has no ``trunc``); integer input is returned unchanged."""
    x = _t(x)
    if not x.dtype.is_floating:
        return x
    return tf.where(x < 0, tf.math.ceil(x), tf.math.floor(x))


@_api
def round(x: Array, /) -> Array:
    """Round half to even; integer input is returned unchanged."""
    x = _t(x)
    return tf.math.round(x) if (x.dtype.is_floating or x.dtype.is_complex) else x


@_api
def isnan(x: Array, /) -> Array:
    """NaN test; all ``False`` for integer and bool input (TF raises for them)."""
    x = _t(x)
    if x.dtype.is_complex:
        return tf.math.is_nan(tf.math.real(x)) | tf.math.is_nan(tf.math.imag(x))
    return tf.math.is_nan(x) if x.dtype.is_floating else tf.zeros_like(x, dtype=tf.bool)


@_api
def isinf(x: Array, /) -> Array:
    """Infinity test; all ``False`` for integer and bool input."""
    x = _t(x)
    if x.dtype.is_complex:
        return tf.math.is_inf(tf.math.real(x)) | tf.math.is_inf(tf.math.imag(x))
    return tf.math.is_inf(x) if x.dtype.is_floating else tf.zeros_like(x, dtype=tf.bool)


@_api
def isfinite(x: Array, /) -> Array:
    """Finiteness test; all ``True`` for integer and bool input."""
    x = _t(x)
    if x.dtype.is_complex:
        return tf.math.is_finite(tf.math.real(x)) & tf.math.is_finite(tf.math.imag(x))
    return tf.math.is_finite(x) if x.dtype.is_floating else tf.ones_like(x, dtype=tf.bool)


@_api
def signbit(x: Array, /) -> Array:
    """Whether the sign bit is set (``True`` for ``-0.0`` and negative NaN), read via bitcast."""
    x = _t(x)
    if not x.dtype.is_floating:
        raise TypeError(f"signbit needs a real floating-point dtype, got {x.dtype.name}")
    return tf.bitcast(x, _SIGNED_BY_BITS[_bits(x.dtype)]) < 0


@_api
def real(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.real(x) if x.dtype.is_complex else x


@_api
def imag(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.imag(x) if x.dtype.is_complex else tf.zeros_like(x)


@_api
def conj(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.conj(x) if x.dtype.is_complex else x


@_api
def add(x1: Array, x2: Array, /) -> Array:
    """``x1 + x2`` after promotion to a common dtype."""
    a, b = _pair(x1, x2)
    return tf.math.add(a, b)


@_api
def subtract(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.subtract(a, b)


@_api
def multiply(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.multiply(a, b)


@_api
def divide(x1: Array, x2: Array, /) -> Array:
    """True division; integer operands give float32 (``tf.math.truediv`` would give float64)."""
    a, b = _pair(x1, x2)
    if not (a.dtype.is_floating or a.dtype.is_complex):
        a, b = tf.cast(a, _DEFAULT_FLOAT), tf.cast(b, _DEFAULT_FLOAT)
    return tf.math.divide(a, b)


@_api
def floor_divide(x1: Array, x2: Array, /) -> Array:
    """Floor division (integer division by zero raises on CPU)."""
    a, b = _pair(x1, x2)
    return tf.math.floordiv(a, b)


@_api
def remainder(x1: Array, x2: Array, /) -> Array:
    """Remainder with the sign of the divisor (Python's ``%``)."""
    a, b = _pair(x1, x2)
    return tf.math.floormod(a, b)


@_api
def pow(x1: Array, x2: Array, /) -> Array:
    """``x1 ** x2`` after promotion (unsigned integers compute in int64 and wrap)."""
    a, b = _pair(x1, x2)
    if a.dtype.is_unsigned:
        return tf.cast(tf.math.pow(tf.cast(a, tf.int64), tf.cast(b, tf.int64)), a.dtype)
    return tf.math.pow(a, b)


def _nan_max(a: tf.Tensor, b: tf.Tensor, largest: builtins.bool = True) -> tf.Tensor:
    """``tf.maximum``/``tf.minimum`` made to propagate NaN from either operand.

    Under XLA on CPU, ``tf.maximum(a, b)`` returns ``a`` where ``b`` is NaN (same-shape operands;
    a NaN in ``a`` does propagate), so the NaN positions are patched in explicitly.
    """
    out = tf.math.maximum(a, b) if largest else tf.math.minimum(a, b)
    if a.dtype.is_floating:
        out = tf.where(tf.math.is_nan(a) | tf.math.is_nan(b), a + b, out)
    return out


@_api
def maximum(x1: Array, x2: Array, /) -> Array:
    """Element-wise maximum; NaN in either operand propagates, also under XLA (where
    ``tf.maximum`` drops a NaN in its second operand)."""
    a, b = _pair(x1, x2)
    return _nan_max(a, b)


@_api
def minimum(x1: Array, x2: Array, /) -> Array:
    """Element-wise minimum; NaN in either operand propagates, also under XLA."""
    a, b = _pair(x1, x2)
    return _nan_max(a, b, largest=False)


@_api
def clip(x: Array, /, min: Any = None, max: Any = None) -> Array:
    """Clamp ``x`` to ``[min, max]``; bounds are cast to ``x``'s dtype and the result keeps it.

    NaN in ``x`` or in a bound gives NaN.
    """
    x = _t(x)
    out = x
    if min is not None:
        lo = _const(min, x.dtype) if _is_py_scalar(min) else tf.cast(_t(min), x.dtype)
        out = _nan_max(out, lo)
    if max is not None:
        hi = _const(max, x.dtype) if _is_py_scalar(max) else tf.cast(_t(max), x.dtype)
        out = _nan_max(out, hi, largest=False)
    return out


@_api
def atan2(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.atan2(_floating(a), _floating(b))


@_api
def hypot(x1: Array, x2: Array, /) -> Array:
    """``sqrt(x1**2 + x2**2)`` without overflow (TF has no ``hypot``); infinity beats NaN."""
    a, b = _pair(x1, x2)
    a, b = tf.math.abs(_floating(a)), tf.math.abs(_floating(b))
    hi = _nan_max(a, b)
    lo = _nan_max(a, b, largest=False)
    safe_hi = tf.where(hi == 0, tf.ones_like(hi), hi)
    ratio = lo / safe_hi
    out = hi * tf.math.sqrt(1 + ratio * ratio)
    out = tf.where(hi == 0, tf.zeros_like(out), out)
    return tf.where(
        tf.math.is_inf(a) | tf.math.is_inf(b), tf.fill(tf.shape(out), tf.cast(inf, out.dtype)), out
    )


@_api
def copysign(x1: Array, x2: Array, /) -> Array:
    """``|x1|`` with the sign bit of ``x2`` (TF has no ``copysign``)."""
    a, b = _pair(x1, x2)
    a, b = _floating(a), _floating(b)
    magnitude = tf.math.abs(a)
    return tf.where(signbit(b), -magnitude, magnitude)


@_api
def nextafter(x1: Array, x2: Array, /) -> Array:
    """Next representable value after ``x1`` towards ``x2``.

    ``tf.math.nextafter`` only has float32/float64 kernels; float16 and bfloat16 step the bits.
    """
    a, b = _pair(x1, x2)
    if not a.dtype.is_floating:
        raise TypeError(f"nextafter needs a real floating-point dtype, got {a.dtype.name}")
    if a.dtype in (tf.float32, tf.float64):
        return tf.math.nextafter(a, b)
    bits = tf.bitcast(a, tf.int16)
    up = b > a
    step = tf.where(up == (bits >= 0), tf.ones_like(bits), -tf.ones_like(bits))
    out = tf.bitcast(bits + step, a.dtype)
    smallest = tf.where(
        b > 0,
        tf.bitcast(tf.constant(1, tf.int16), a.dtype),
        tf.bitcast(tf.constant(-32767, tf.int16), a.dtype),
    )
    out = tf.where(a == 0, smallest, out)
    out = tf.where(a == b, b, out)
    return tf.where(tf.math.is_nan(a) | tf.math.is_nan(b), a + b, out)


@_api
def logaddexp(x1: Array, x2: Array, /) -> Array:
    """``log(exp(x1) + exp(x2))`` computed stably (exact for equal infinities; NaN propagates)."""
    a, b = _pair(x1, x2)
    a, b = _floating(a), _floating(b)
    hi = _nan_max(a, b)
    delta = tf.where(a == b, tf.zeros_like(a), -tf.math.abs(a - b))
    return hi + tf.math.log1p(tf.math.exp(delta))


@_api
def equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.equal(a, b)


@_api
def not_equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.not_equal(a, b)


@_api
def less(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.less(a, b)


@_api
def less_equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.less_equal(a, b)


@_api
def greater(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.greater(a, b)


@_api
def greater_equal(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.greater_equal(a, b)


@_api
def logical_and(x1: Array, x2: Array, /) -> Array:
    """Logical and; non-bool input is compared with zero first."""
    return tf.math.logical_and(_to_bool(_t(x1)), _to_bool(_t(x2)))


@_api
def logical_or(x1: Array, x2: Array, /) -> Array:
    return tf.math.logical_or(_to_bool(_t(x1)), _to_bool(_t(x2)))


@_api
def logical_xor(x1: Array, x2: Array, /) -> Array:
    return tf.math.logical_xor(_to_bool(_t(x1)), _to_bool(_t(x2)))


@_api
def logical_not(x: Array, /) -> Array:
    return tf.math.logical_not(_to_bool(_t(x)))


@_api
def bitwise_and(x1: Array, x2: Array, /) -> Array:
    """Bitwise and (logical and for bool, which ``tf.bitwise`` rejects)."""
    a, b = _pair(x1, x2)
    return tf.math.logical_and(a, b) if a.dtype == tf.bool else tf.bitwise.bitwise_and(a, b)


@_api
def bitwise_or(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.logical_or(a, b) if a.dtype == tf.bool else tf.bitwise.bitwise_or(a, b)


@_api
def bitwise_xor(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.math.logical_xor(a, b) if a.dtype == tf.bool else tf.bitwise.bitwise_xor(a, b)


@_api
def bitwise_invert(x: Array, /) -> Array:
    x = _t(x)
    return tf.math.logical_not(x) if x.dtype == tf.bool else tf.bitwise.invert(x)


@_api
def bitwise_left_shift(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.bitwise.left_shift(a, b)


@_api
def bitwise_right_shift(x1: Array, x2: Array, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.bitwise.right_shift(a, b)


@_api
def where(condition: Array, x1: Any, x2: Any, /) -> Array:
    """Select from ``x1`` where ``condition`` else ``x2``, broadcasting all three, with promotion.

    Both branches are computed: mask the *inputs* of functions that can produce NaN/inf in the
    unused branch, or their gradients become NaN.
    """
    a, b = _pair(x1, x2)
    return tf.where(_to_bool(_t(condition)), a, b)


# --------------------------------------------------------------------------------------------
# Statistical functions
# --------------------------------------------------------------------------------------------


def _sum_dtype(dtype: tf.DType) -> tf.DType:
    """Default accumulator of sum/prod: at least the default integer's width for integers."""
    if dtype == tf.bool:
        return _DEFAULT_INT
    if dtype.is_integer and _bits(dtype) < _bits(_DEFAULT_INT):
        return _UNSIGNED_BY_BITS[32] if dtype.is_unsigned else _DEFAULT_INT
    return dtype


def _reduce_setup(x: Any, axis: Any, name: str) -> tuple[tf.Tensor, list[int] | None]:
    x = _t(x)
    return x, _axes(axis, _ndim(x, name))


@_api
def sum(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Array:
    """Sum; bool and narrow integers accumulate in int32 (uint32 for narrow unsigned)."""
    x, axes = _reduce_setup(x, axis, "sum")
    dt = _dtype(dtype) or _sum_dtype(x.dtype)
    return tf.math.reduce_sum(tf.cast(x, dt), axis=axes, keepdims=keepdims)


@_api
def prod(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Array:
    """Product; accumulator dtypes as in :func:`sum`."""
    x, axes = _reduce_setup(x, axis, "prod")
    dt = _dtype(dtype) or _sum_dtype(x.dtype)
    return tf.math.reduce_prod(tf.cast(x, dt), axis=axes, keepdims=keepdims)


def _require_floating(x: tf.Tensor, name: str, complex_ok: builtins.bool = True) -> None:
    if not (x.dtype.is_floating or (complex_ok and x.dtype.is_complex)):
        raise TypeError(
            f"{name} needs a floating-point array, got dtype {x.dtype.name} "
            f"(tf.reduce_mean would do integer division); cast with astype first"
        )


@_api
def mean(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Arithmetic mean. ``TypeError`` for integer/bool input; float16/bfloat16 accumulate in
    float32 (``tf.reduce_mean`` sums in float16 and overflows past 65504)."""
    x, axes = _reduce_setup(x, axis, "mean")
    _require_floating(x, "mean")
    if x.dtype in _LOW_PRECISION_FLOATS:
        return tf.cast(
            tf.math.reduce_mean(tf.cast(x, tf.float32), axis=axes, keepdims=keepdims), x.dtype
        )
    return tf.math.reduce_mean(x, axis=axes, keepdims=keepdims)


def _var(x: Any, axis: Any, correction: float, keepdims: builtins.bool, name: str) -> tf.Tensor:
    x, axes = _reduce_setup(x, axis, name)
    _require_floating(x, name, complex_ok=False)
    work = tf.float32 if x.dtype in _LOW_PRECISION_FLOATS else x.dtype
    xw = tf.cast(x, work)
    centred = xw - tf.math.reduce_mean(xw, axis=axes, keepdims=True)
    total = tf.math.reduce_sum(tf.math.square(centred), axis=axes, keepdims=keepdims)
    dof = tf.cast(_count(xw, axes), work) - tf.cast(correction, work)
    return total / dof


@_api
def var(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: float = 0.0,
    keepdims: builtins.bool = False,
) -> Array:
    """Variance with ``correction`` degrees of freedom removed (TypeError for integers)."""
    x = _t(x)
    return tf.cast(_var(x, axis, correction, keepdims, "var"), x.dtype)


@_api
def std(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: float = 0.0,
    keepdims: builtins.bool = False,
) -> Array:
    """Standard deviation (see :func:`var`)."""
    x = _t(x)
    return tf.cast(tf.math.sqrt(_var(x, axis, correction, keepdims, "std")), x.dtype)


def _extreme(x: Any, axis: Any, keepdims: builtins.bool, largest: builtins.bool) -> tf.Tensor:
    x, axes = _reduce_setup(x, axis, "max" if largest else "min")
    if x.dtype == tf.bool:
        op = tf.math.reduce_any if largest else tf.math.reduce_all
        return op(x, axis=axes, keepdims=keepdims)
    op = tf.math.reduce_max if largest else tf.math.reduce_min
    out = op(x, axis=axes, keepdims=keepdims)
    if x.dtype.is_floating:
        has_nan = tf.math.reduce_any(tf.math.is_nan(x), axis=axes, keepdims=keepdims)
        out = tf.where(has_nan, tf.constant(nan, x.dtype), out)
    return out


@_api
def max(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Maximum; a slice containing NaN gives NaN, also under XLA (``tf.reduce_max`` then skips
    NaN). Bool input gives ``any``."""
    return _extreme(x, axis, keepdims, largest=True)


@_api
def min(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Minimum; NaN propagates as in :func:`max`. Bool input gives ``all``."""
    return _extreme(x, axis, keepdims, largest=False)


@_api
def any(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Logical or over ``axis`` (non-bool input is compared with zero; NaN counts as true)."""
    x, axes = _reduce_setup(x, axis, "any")
    return tf.math.reduce_any(_to_bool(x), axis=axes, keepdims=keepdims)


@_api
def all(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    x, axes = _reduce_setup(x, axis, "all")
    return tf.math.reduce_all(_to_bool(x), axis=axes, keepdims=keepdims)


@_api
def count_nonzero(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False
) -> Array:
    """Number of non-zero elements, as int64."""
    x, axes = _reduce_setup(x, axis, "count_nonzero")
    return tf.math.reduce_sum(tf.cast(_to_bool(x), _DEFAULT_INDEX), axis=axes, keepdims=keepdims)


def _cumulative(
    x: Any, axis: int | None, dtype: Any, include_initial: builtins.bool, product: builtins.bool
) -> tf.Tensor:
    name = "cumulative_prod" if product else "cumulative_sum"
    x = _t(x)
    ndim = _ndim(x, name)
    if axis is None:
        if ndim != 1:
            raise ValueError(f"{name}: axis is required for a {ndim}-d array")
        axis = 0
    ax = _axis(axis, ndim)
    dt = _dtype(dtype) or _sum_dtype(x.dtype)
    # XLA has no cumsum/cumprod kernels for unsigned or 8/16-bit integers: compute in int64
    # (wrap-around arithmetic gives the same bits) and cast back.
    work = tf.int64 if dt.is_integer and (dt.is_unsigned or _bits(dt) < 32) else dt
    xw = tf.cast(x, work)
    out = tf.math.cumprod(xw, axis=ax) if product else tf.math.cumsum(xw, axis=ax)
    if include_initial:
        paddings = [[0, 0]] * ndim
        paddings[ax] = [1, 0]
        out = tf.pad(out, paddings, constant_values=1 if product else 0)
    return tf.cast(out, dt)


@_api
def cumulative_sum(
    x: Array,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Array:
    """Cumulative sum along ``axis`` (required unless ``x`` is 1-d); dtypes as in :func:`sum`."""
    return _cumulative(x, axis, dtype, include_initial, product=False)


@_api
def cumulative_prod(
    x: Array,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Array:
    """Cumulative product along ``axis``; dtypes as in :func:`sum`."""
    return _cumulative(x, axis, dtype, include_initial, product=True)


@_api
def diff(
    x: Array,
    /,
    *,
    axis: int = -1,
    n: int = 1,
    prepend: Array | None = None,
    append: Array | None = None,
) -> Array:
    """``n``-th forward difference along ``axis`` (``not_equal`` for bool, as NumPy)."""
    parts = [p for p in (prepend, x, append) if p is not None]
    parts = _promote_all(*parts)
    ndim = _ndim(parts[0], "diff")
    ax = _axis(axis, ndim)
    out = parts[0] if len(parts) == 1 else tf.concat(parts, axis=ax)
    head = (slice(None),) * ax
    for _ in range(n):
        hi = out[(*head, slice(1, None))]
        lo = out[(*head, slice(None, -1))]
        out = tf.math.not_equal(hi, lo) if out.dtype == tf.bool else hi - lo
    return out


# --------------------------------------------------------------------------------------------
# Searching and sorting
# --------------------------------------------------------------------------------------------


def _arg_extreme(
    x: Any, axis: int | None, keepdims: builtins.bool, largest: builtins.bool
) -> tf.Tensor:
    x = _t(x)
    ndim = _ndim(x, "argmax" if largest else "argmin")
    if axis is None:
        flat, ax = tf.reshape(x, [-1]), 0
    else:
        flat, ax = x, _axis(axis, ndim)
    op = tf.math.argmax if largest else tf.math.argmin
    idx = op(flat, axis=ax, output_type=_DEFAULT_INDEX)
    if x.dtype.is_floating:  # tf.argmax skips NaN; return the first NaN, as NumPy does
        nan_mask = tf.math.is_nan(flat)
        first_nan = tf.math.argmax(nan_mask, axis=ax, output_type=_DEFAULT_INDEX)
        idx = tf.where(tf.math.reduce_any(nan_mask, axis=ax), first_nan, idx)
    if keepdims:
        idx = tf.reshape(idx, [1] * ndim) if axis is None else tf.expand_dims(idx, ax)
    return idx


@_api
def argmax(x: Array, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Array:
    """Index (int64) of the first maximum; the first NaN if the slice has one."""
    return _arg_extreme(x, axis, keepdims, largest=True)


@_api
def argmin(x: Array, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Array:
    """Index (int64) of the first minimum; the first NaN if the slice has one."""
    return _arg_extreme(x, axis, keepdims, largest=False)


def _sortable(x: tf.Tensor) -> tf.Tensor:
    """A dtype ``tf.sort`` can handle everywhere (no bool kernel, no uint16 under XLA)."""
    if x.dtype == tf.bool:
        return tf.cast(x, tf.int8)
    if x.dtype == tf.uint16:
        return tf.cast(x, tf.int32)
    return x


@_api
def sort(
    x: Array, /, *, axis: int = -1, descending: builtins.bool = False, stable: builtins.bool = True
) -> Array:
    """Sorted copy along ``axis``; NaN sorts last in both directions."""
    x = _t(x)
    direction = "DESCENDING" if descending else "ASCENDING"
    return tf.cast(tf.sort(_sortable(x), axis=axis, direction=direction), x.dtype)


@_api
def argsort(
    x: Array, /, *, axis: int = -1, descending: builtins.bool = False, stable: builtins.bool = True
) -> Array:
    """Sorting indices as int64 (``tf.argsort`` returns int32); always stable."""
    x = _t(x)
    direction = "DESCENDING" if descending else "ASCENDING"
    out = tf.argsort(_sortable(x), axis=axis, direction=direction, stable=True)
    return tf.cast(out, _DEFAULT_INDEX)


@_api
def searchsorted(
    x1: Array, x2: Array, /, *, side: str = "left", sorter: Array | None = None
) -> Array:
    """Insertion points (int64) of ``x2`` into the sorted 1-d ``x1`` (``x2`` of any shape)."""
    a, b = _pair(x1, x2)
    if _ndim(a, "searchsorted") != 1:
        raise ValueError(f"searchsorted needs a 1-d x1, got shape {a.shape}")
    if sorter is not None:
        a = take(a, sorter)
    out = tf.searchsorted(a[None, :], tf.reshape(b, [1, -1]), side=side, out_type=_DEFAULT_INDEX)
    return tf.reshape(out, tf.shape(b))


@_api
def nonzero(x: Array, /) -> tuple[Array, ...]:
    """Indices (int64) of non-zero elements, one array per axis. Data-dependent: not under XLA."""
    x = _t(x)
    ndim = _ndim(x, "nonzero")
    if ndim == 0:
        raise ValueError("nonzero needs an array of at least one dimension")
    coords = tf.where(_to_bool(x))
    return tuple(coords[:, i] for i in range(ndim))


# --------------------------------------------------------------------------------------------
# Set functions (data-dependent shapes: eager and graph mode; UniqueWithCounts has no XLA kernel)
# --------------------------------------------------------------------------------------------


class UniqueAllResult(NamedTuple):
    values: Array
    indices: Array
    inverse_indices: Array
    counts: Array


class UniqueCountsResult(NamedTuple):
    values: Array
    counts: Array


class UniqueInverseResult(NamedTuple):
    values: Array
    inverse_indices: Array


def _unique(x: Any) -> UniqueAllResult:
    """Sorted unique values of the flattened ``x`` (each NaN is distinct), with int64 indices."""
    x = _t(x)
    flat = tf.reshape(x, [-1])
    values, idx, counts = tf.unique_with_counts(flat, out_idx=_DEFAULT_INDEX)
    order = tf.argsort(_sortable(values), stable=True)
    inverse_order = tf.math.invert_permutation(order)
    first = tf.math.unsorted_segment_min(
        tf.range(tf.size(flat, out_type=_DEFAULT_INDEX)), idx, num_segments=tf.size(values)
    )
    return UniqueAllResult(
        values=tf.gather(values, order),
        indices=tf.gather(first, order),
        inverse_indices=tf.reshape(
            tf.gather(tf.cast(inverse_order, _DEFAULT_INDEX), idx), tf.shape(x)
        ),
        counts=tf.gather(counts, order),
    )


@_api
def unique_all(x: Array, /) -> UniqueAllResult:
    return _unique(x)


@_api
def unique_counts(x: Array, /) -> UniqueCountsResult:
    u = _unique(x)
    return UniqueCountsResult(u.values, u.counts)


@_api
def unique_inverse(x: Array, /) -> UniqueInverseResult:
    u = _unique(x)
    return UniqueInverseResult(u.values, u.inverse_indices)


@_api
def unique_values(x: Array, /) -> Array:
    x = _t(x)
    values, _ = tf.unique(tf.reshape(x, [-1]))
    return tf.cast(tf.sort(_sortable(values)), x.dtype)


# --------------------------------------------------------------------------------------------
# Indexing
# --------------------------------------------------------------------------------------------


@_api
def take(x: Array, indices: Array, /, *, axis: int | None = None) -> Array:
    """Elements of ``x`` at ``indices`` along ``axis`` (optional for 1-d ``x``).

    Negative indices wrap around; out-of-range indices are *not* checked (CPU raises, GPU stores 0,
    XLA clamps). int32 and int64 indices are both accepted; other integer dtypes are cast.
    """
    x = _t(x)
    idx = _index_tensor(indices, "take")
    ndim = _ndim(x, "take")
    if axis is None:
        if ndim != 1:
            raise ValueError(f"take: axis is required for a {ndim}-d array")
        axis = 0
    ax = _axis(axis, ndim)
    size = tf.shape(x, out_type=idx.dtype)[ax]
    return tf.gather(x, _wrap_negative(idx, size), axis=ax)


@_api
def take_along_axis(x: Array, indices: Array, /, *, axis: int = -1) -> Array:
    """``x`` gathered along ``axis`` at ``indices`` of the same rank (other axes broadcast).

    Negative indices wrap around; out-of-range indices are not checked (see :func:`take`).
    """
    x = _t(x)
    idx = _index_tensor(indices, "take_along_axis")
    ndim = _ndim(x, "take_along_axis")
    if _ndim(idx, "take_along_axis") != ndim:
        raise ValueError(
            f"take_along_axis: indices must have the rank of x, got {idx.shape} and {x.shape}"
        )
    ax = _axis(axis, ndim)
    idx = _wrap_negative(idx, tf.shape(x, out_type=idx.dtype)[ax])
    last = ndim - 1
    perm = None
    if ax != last:
        perm = [a for a in range(ndim) if a != ax] + [ax]
        x = tf.transpose(x, perm)
        idx = tf.transpose(idx, perm)
    xb, ib = x.shape[:-1], idx.shape[:-1]
    if not (xb.is_fully_defined() and ib.is_fully_defined() and xb == ib):
        batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(idx)[:-1])
        x = tf.broadcast_to(x, tf.concat([batch, tf.shape(x)[-1:]], axis=0))
        idx = tf.broadcast_to(idx, tf.concat([batch, tf.shape(idx)[-1:]], axis=0))
    out = tf.gather(x, idx, axis=last, batch_dims=last)
    if perm is not None:
        out = tf.transpose(out, np.argsort(perm).tolist())
    return out


# --------------------------------------------------------------------------------------------
# Manipulation functions
# --------------------------------------------------------------------------------------------


@_api
def reshape(x: Array, /, shape: Any, *, copy: builtins.bool | None = None) -> Array:
    """``tf.reshape`` (``shape`` may hold one ``-1`` and 0-d int tensors)."""
    return tf.reshape(_t(x), _shape_arg(shape))


@_api
def expand_dims(x: Array, /, *, axis: int = 0) -> Array:
    x = _t(x)
    ndim = _ndim(x, "expand_dims")
    return tf.expand_dims(x, _axis(axis, ndim + 1))


@_api
def squeeze(x: Array, /, axis: int | tuple[int, ...]) -> Array:
    """Remove the given size-1 axes (checked at run time when the sizes are unknown)."""
    x = _t(x)
    axes = _axes(axis, _ndim(x, "squeeze"))
    for a in axes or ():
        size = x.shape[a]
        if size is not None and size != 1:
            raise ValueError(f"squeeze: axis {a} has size {size}, not 1")
    return tf.squeeze(x, axis=axes)


@_api
def permute_dims(x: Array, /, axes: tuple[int, ...]) -> Array:
    return tf.transpose(_t(x), perm=list(axes))


@_api
def matrix_transpose(x: Array, /) -> Array:
    return tf.linalg.matrix_transpose(_t(x))


@_api
def moveaxis(
    x: Array, source: int | tuple[int, ...], destination: int | tuple[int, ...], /
) -> Array:
    x = _t(x)
    ndim = _ndim(x, "moveaxis")
    src = _axes(source, ndim) or []
    dst = _axes(destination, ndim) or []
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination need the same number of axes")
    order = [a for a in range(ndim) if a not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return tf.transpose(x, perm=order)


@_api
def broadcast_to(x: Array, /, shape: Any) -> Array:
    return tf.broadcast_to(_t(x), _shape_arg(shape))


@_api
def broadcast_arrays(*arrays: Array) -> list[Array]:
    """Arrays broadcast to their common shape (computed with ``tf.shape``, so dynamic dims work)."""
    tensors = [_t(a) for a in arrays]
    if not tensors:
        return []
    static = tensors[0].shape
    for t in tensors[1:]:
        static = tf.broadcast_static_shape(static, t.shape)
    if static.is_fully_defined():
        return [t if t.shape == static else tf.broadcast_to(t, static) for t in tensors]
    shape = tf.shape(tensors[0])
    for t in tensors[1:]:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(t))
    return [tf.broadcast_to(t, shape) for t in tensors]


@_api
def concat(arrays: Sequence[Array], /, *, axis: int | None = 0) -> Array:
    """Join arrays (promoted to one dtype) along ``axis``; ``axis=None`` flattens them first."""
    tensors = _promote_all(*arrays)
    if axis is None:
        return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)
    return tf.concat(tensors, axis=_axis(axis, _ndim(tensors[0], "concat")))


@_api
def stack(arrays: Sequence[Array], /, *, axis: int = 0) -> Array:
    tensors = _promote_all(*arrays)
    return tf.stack(tensors, axis=_axis(axis, _ndim(tensors[0], "stack") + 1))


@_api
def unstack(x: Array, /, *, axis: int = 0) -> tuple[Array, ...]:
    """Split along ``axis`` (its size must be known statically)."""
    x = _t(x)
    return tuple(tf.unstack(x, axis=_axis(axis, _ndim(x, "unstack"))))


@_api
def flip(x: Array, /, *, axis: int | tuple[int, ...] | None = None) -> Array:
    x = _t(x)
    ndim = _ndim(x, "flip")
    axes = _axes(axis, ndim)
    return tf.reverse(x, axis=list(range(ndim)) if axes is None else axes)


@_api
def roll(
    x: Array,
    /,
    shift: int | tuple[int, ...],
    *,
    axis: int | tuple[int, ...] | None = None,
) -> Array:
    x = _t(x)
    if axis is None:
        return tf.reshape(tf.roll(tf.reshape(x, [-1]), shift, axis=0), tf.shape(x))
    return tf.roll(x, shift, axis=axis)


@_api
def tile(x: Array, repetitions: tuple[int, ...], /) -> Array:
    """Repeat ``x`` ``repetitions[i]`` times along each axis (rank mismatch padded with ones)."""
    x = _t(x)
    ndim = _ndim(x, "tile")
    reps = list(repetitions)
    if len(reps) < ndim:
        reps = [1] * (ndim - len(reps)) + reps
    elif len(reps) > ndim:
        x = tf.reshape(x, tf.concat([tf.ones([len(reps) - ndim], tf.int32), tf.shape(x)], 0))
    if x.dtype == tf.uint16:  # no uint16 Tile kernel on CPU
        return tf.bitcast(tf.tile(tf.bitcast(x, tf.int16), reps), tf.uint16)
    return tf.tile(x, reps)


@_api
def repeat(x: Array, repeats: int | Array, /, *, axis: int | None = None) -> Array:
    """``tf.repeat``; array ``repeats`` make the shape data-dependent."""
    x = _t(x)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    return tf.repeat(x, repeats, axis=axis)


# --------------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------------


def _matmul_dtype(a: tf.Tensor) -> tf.DType:
    """TF's MatMul has no bool, 8/16-bit or unsigned kernels: compute those in int32/int64."""
    if a.dtype.is_integer and (a.dtype.is_unsigned or _bits(a.dtype) < 32):
        return tf.int64 if _bits(a.dtype) >= 32 else tf.int32
    return a.dtype


@_api
def matmul(x1: Array, x2: Array, /) -> Array:
    """Matrix product with batch broadcasting; 1-d operands as in NumPy."""
    a, b = _pair(x1, x2)
    out_dtype = a.dtype
    work = _matmul_dtype(a)
    a, b = tf.cast(a, work), tf.cast(b, work)
    a_vec = _ndim(a, "matmul") == 1
    b_vec = _ndim(b, "matmul") == 1
    if a_vec:
        a = a[None, :]
    if b_vec:
        b = b[:, None]
    out = tf.linalg.matmul(a, b)
    if a_vec:
        out = tf.squeeze(out, axis=-2)
    if b_vec:
        out = tf.squeeze(out, axis=-1)
    return tf.cast(out, out_dtype)


@_api
def tensordot(
    x1: Array, x2: Array, /, *, axes: int | tuple[Sequence[int], Sequence[int]] = 2
) -> Array:
    a, b = _pair(x1, x2)
    out_dtype = a.dtype
    work = _matmul_dtype(a)
    if not isinstance(axes, builtins.int):
        axes = [list(axes[0]), list(axes[1])]
    return tf.cast(tf.tensordot(tf.cast(a, work), tf.cast(b, work), axes=axes), out_dtype)


@_api
def vecdot(x1: Array, x2: Array, /, *, axis: int = -1) -> Array:
    """``sum(conj(x1) * x2, axis)`` with broadcasting."""
    a, b = _pair(x1, x2)
    if a.dtype.is_complex:
        a = tf.math.conj(a)
    return tf.math.reduce_sum(a * b, axis=axis)


# --------------------------------------------------------------------------------------------
# Devices, laziness, inspection
# --------------------------------------------------------------------------------------------


def _canonical_device(name: str) -> Device:
    spec = tf.DeviceSpec.from_string(name)
    if spec.device_type is None:
        return name
    return f"/device:{spec.device_type}:{spec.device_index or 0}"


def _default_device() -> Device:
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "/device:CPU:0"


@_api
def device(x: Array, /) -> Device:
    """Device of ``x`` as ``"/device:CPU:0"``-style string; while tracing, where a tensor has no
    placement yet, the default device."""
    name = getattr(x, "device", "") or ""
    return _canonical_device(name) if name else _default_device()


@_api
def to_device(x: Array, device: Device, /, *, stream: Any = None) -> Array:
    """A copy of ``x`` placed on ``device`` (``tf.identity`` under ``tf.device``)."""
    if stream is not None:
        raise ValueError("to_device: TensorFlow has no streams")
    with tf.device(device):
        return tf.identity(_t(x))


@_api
def is_lazy_array(x: Any) -> builtins.bool:
    """Whether values computed from ``x`` are symbolic (``bool(...)`` on them is impossible).

    ``True`` for graph tensors and for any TF tensor or variable used while a ``tf.function``
    (XLA included) is being traced; ``False`` for eager tensors and for non-TF objects.
    """
    if not isinstance(x, (tf.Tensor, tf.Variable)):
        return False
    return tf.is_symbolic_tensor(x) or not tf.executing_eagerly()


class _Info:
    """What ``__array_namespace_info__()`` returns."""

    def capabilities(self) -> dict[str, Any]:
        """Boolean indexing and data-dependent shapes are reported only eagerly: they also work
        in graph mode, but not reliably under XLA, and a traced function cannot tell which."""
        eager = tf.executing_eagerly()
        return {
            "boolean indexing": eager,
            "data-dependent shapes": eager,
            "max dimensions": _MAX_DIMENSIONS,
        }

    def default_device(self) -> Device:
        return _default_device()

    def default_dtypes(self, *, device: Device | None = None) -> dict[str, tf.DType]:
        return {
            "real floating": _DEFAULT_FLOAT,
            "complex floating": _DEFAULT_COMPLEX,
            "integral": _DEFAULT_INT,
            "indexing": _DEFAULT_INDEX,
        }

    def devices(self) -> list[Device]:
        return [d.name for d in tf.config.list_logical_devices()]

    def dtypes(
        self, *, device: Device | None = None, kind: str | tuple[str, ...] | None = None
    ) -> dict[str, tf.DType]:
        """The standard dtypes of ``kind`` (``bfloat16`` is supported but not listed here)."""
        return {d.name: d for d in _STANDARD_DTYPES if kind is None or isdtype(d, kind)}


_INFO = _Info()


def __array_namespace_info__() -> _Info:
    return _INFO


__all__ = [
    "AxisError",
    "UniqueAllResult",
    "UniqueCountsResult",
    "UniqueInverseResult",
    "__array_api_version__",
    "__array_namespace_info__",
    "abs",
    "acos",
    "acosh",
    "add",
    "all",
    "any",
    "arange",
    "argmax",
    "argmin",
    "argsort",
    "asarray",
    "asin",
    "asinh",
    "astype",
    "atan",
    "atan2",
    "atanh",
    "bfloat16",
    "bitwise_and",
    "bitwise_invert",
    "bitwise_left_shift",
    "bitwise_or",
    "bitwise_right_shift",
    "bitwise_xor",
    "bool",
    "broadcast_arrays",
    "broadcast_to",
    "can_cast",
    "ceil",
    "clip",
    "complex64",
    "complex128",
    "concat",
    "conj",
    "copysign",
    "cos",
    "cosh",
    "count_nonzero",
    "cumulative_prod",
    "cumulative_sum",
    "device",
    "diff",
    "divide",
    "e",
    "empty",
    "empty_like",
    "equal",
    "exp",
    "expand_dims",
    "expm1",
    "eye",
    "finfo",
    "flip",
    "float16",
    "float32",
    "float64",
    "floor",
    "floor_divide",
    "from_dlpack",
    "full",
    "full_like",
    "greater",
    "greater_equal",
    "hypot",
    "iinfo",
    "imag",
    "inf",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_lazy_array",
    "isdtype",
    "isfinite",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "linspace",
    "log",
    "log1p",
    "log2",
    "log10",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "matmul",
    "matrix_transpose",
    "max",
    "maximum",
    "mean",
    "meshgrid",
    "min",
    "minimum",
    "moveaxis",
    "multiply",
    "nan",
    "negative",
    "newaxis",
    "nextafter",
    "nonzero",
    "not_equal",
    "ones",
    "ones_like",
    "permute_dims",
    "pi",
    "positive",
    "pow",
    "prod",
    "real",
    "reciprocal",
    "remainder",
    "repeat",
    "reshape",
    "result_type",
    "roll",
    "round",
    "searchsorted",
    "sign",
    "signbit",
    "sin",
    "sinh",
    "sort",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "subtract",
    "sum",
    "take",
    "take_along_axis",
    "tan",
    "tanh",
    "tensordot",
    "tile",
    "to_device",
    "tril",
    "triu",
    "trunc",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
    "unstack",
    "var",
    "vecdot",
    "where",
    "zeros",
    "zeros_like",
]
