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
* **Python scalars are rounded once, to the target dtype** (``asarray``, ``full``, a scalar
  operand, ``var``'s ``correction``, ``linspace``'s bounds, the constants of ``log2``/``log10``):
  never through float32, as ``tf.cast(0.1, tf.float64)`` goes; beyond the dtype's range they
  round to ``inf`` (IEEE 754). Signed zeros are built through NumPy, because ``tf.constant``
  caches eager scalars by value and returns ``-0.0`` for ``0.0`` once a ``-0.0`` was made.

Also exported: :func:`is_lazy_array` (``True`` for symbolic tensors and while a graph is being
built), and the module-level helpers :func:`device` and :func:`to_device`.

**What cannot conform**, because ``tf.Tensor`` is TensorFlow's class (the standard's test suite
fails on these; the workaround is the one xentropy's core uses):

* *Operators* (``a + b``, ``a == b``, ``a << b``, ``+a``, ``abs(a)`` ...) do not promote mixed
  dtypes, lack kernels for some dtypes (``-a``, ``abs``, ``**`` on ``uint8``) and some are
  missing (``<<``, ``>>``, unary ``+``). Workaround: cast with :func:`astype` to one dtype, or
  call the functions (:func:`add`, :func:`equal`, ...); operators only between tensors of one
  dtype or with a Python scalar.
* *Item assignment* (``x[i] = v``) is impossible and in-place operators (``x += y``) rebind.
  Workaround: build a new array with :func:`where`, :func:`concat` or :func:`take`.
* *Indexing* takes no integer-array indices (``x[idx]``). Workaround: :func:`take`,
  :func:`take_along_axis`.
* ``x.shape`` is a ``tf.TensorShape``: not a tuple, not a ``collections.abc.Sequence``, and
  ``None`` for sizes unknown while tracing. Workaround: ``tuple(x.shape)`` for static shapes;
  ``reshape(x, (-1,))``, :func:`zeros_like`, :func:`full_like` for dynamic ones.
* Array attributes and methods the standard lists are missing: ``__array_namespace__``,
  ``to_device``, ``T``, ``mT``, ``size``. Workaround: xentropy finds this namespace by the
  tensor's type; :func:`to_device`, :func:`matrix_transpose`, :func:`permute_dims`,
  ``math.prod(tuple(x.shape))``.
* ``x.device`` is TensorFlow's full name (``/job:localhost/replica:0/task:0/device:CPU:0``),
  while :func:`device` and ``__array_namespace_info__().devices()`` give ``/device:CPU:0``; and
  ``x.__dlpack__`` takes no ``dl_device``. Workaround: :func:`device`, never ``x.device``.
* TensorFlow's scalar cache: eagerly, ``tf.constant(0.0)`` (also of a ``np.float64``, a
  ``float`` subclass) returns ``-0.0`` after a ``tf.constant(-0.0)``. Workaround: the core
  never calls ``tf.constant``; scalars go through the namespace functions (built as above)
  and zeros through :func:`zeros_like`/:func:`full_like`.
* Subnormal numbers are flushed to zero by TensorFlow's CPU kernels (``log`` of the smallest
  float64 is ``-inf``, casts to float32 flush). Not worked around; nothing in the core
  depends on subnormals.
* TensorFlow's complex kernels miss special cases of ``expm1``, ``log1p`` and ``tanh`` at
  infinite or NaN components, and ``unique_*`` has no complex kernel. The core uses real
  floating dtypes only.

Functions whose result shape depends on data (``nonzero``, ``unique_*``, ``repeat`` with array
``repeats``, and boolean-mask indexing ``x[mask]``) work eagerly and in graph mode; under XLA some
compile (bounded dynamic shapes) and ``unique_all``/``unique_counts``/``unique_inverse`` do not, so
``capabilities()`` reports them unavailable while tracing. Left out: the ``linalg`` and ``fft``
extensions. Conformance with the standard's own test suite (data-apis/array-api-tests), and the
command that measures it: the TensorFlow page of the API documentation.

The functions live in the private package ``xentropy.backends.tensorflow._namespace``, one module
per theme, and this module re-exports them (it is the namespace; import nothing from those
modules directly):

* ``_dtypes``: the dtype objects, :func:`isdtype`, :func:`finfo`, :func:`iinfo`,
  :func:`result_type`, :func:`can_cast`, :func:`astype`; ``_constants``: ``e``, ``inf``,
  ``nan``, ``pi``, ``newaxis``.
* ``_conversion``: :func:`asarray` and the input conversions every function starts with;
  ``_promotion``: the promotion rules above.
* ``_creation``: the other creation functions (``zeros`` ... ``tril``, ``from_dlpack``).
* ``_elementwise``: the element-wise functions and :func:`where`.
* ``_reductions``: ``sum`` ... ``count_nonzero``, the cumulative functions and :func:`diff`.
* ``_indexing``: searching, sorting, set functions, :func:`take` and :func:`take_along_axis`.
* ``_manipulation``: shapes, axes, joining and repeating; ``_linalg``: :func:`matmul`,
  :func:`tensordot`, :func:`vecdot`.
* ``_inspection``: :func:`device`, :func:`to_device`, :func:`is_lazy_array` and
  ``__array_namespace_info__``; ``_helpers``: the private helpers they share.
"""

from __future__ import annotations

from ._namespace._constants import e, inf, nan, newaxis, pi
from ._namespace._conversion import asarray
from ._namespace._creation import (
    arange,
    empty,
    empty_like,
    eye,
    from_dlpack,
    full,
    full_like,
    linspace,
    meshgrid,
    ones,
    ones_like,
    tril,
    triu,
    zeros,
    zeros_like,
)
from ._namespace._dtypes import (
    astype,
    bfloat16,
    bool,
    can_cast,
    complex64,
    complex128,
    finfo,
    float16,
    float32,
    float64,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    isdtype,
    result_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from ._namespace._dtypes import finfo_object as finfo_object
from ._namespace._dtypes import iinfo_object as iinfo_object
from ._namespace._elementwise import (
    abs,
    acos,
    acosh,
    add,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    bitwise_and,
    bitwise_invert,
    bitwise_left_shift,
    bitwise_or,
    bitwise_right_shift,
    bitwise_xor,
    ceil,
    clip,
    conj,
    copysign,
    cos,
    cosh,
    divide,
    equal,
    exp,
    expm1,
    floor,
    floor_divide,
    greater,
    greater_equal,
    hypot,
    imag,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    multiply,
    negative,
    nextafter,
    not_equal,
    positive,
    pow,
    real,
    reciprocal,
    remainder,
    round,
    sign,
    signbit,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    trunc,
    where,
)
from ._namespace._helpers import Array as Array
from ._namespace._helpers import AxisError
from ._namespace._helpers import Device as Device
from ._namespace._helpers import DType as DType
from ._namespace._indexing import (
    UniqueAllResult,
    UniqueCountsResult,
    UniqueInverseResult,
    argmax,
    argmin,
    argsort,
    nonzero,
    searchsorted,
    sort,
    take,
    take_along_axis,
    unique_all,
    unique_counts,
    unique_inverse,
    unique_values,
)
from ._namespace._inspection import __array_namespace_info__, device, is_lazy_array, to_device
from ._namespace._linalg import matmul, tensordot, vecdot
from ._namespace._manipulation import (
    broadcast_arrays,
    broadcast_to,
    concat,
    expand_dims,
    flip,
    matrix_transpose,
    moveaxis,
    permute_dims,
    repeat,
    reshape,
    roll,
    squeeze,
    stack,
    tile,
    unstack,
)
from ._namespace._reductions import (
    all,
    any,
    count_nonzero,
    cumulative_prod,
    cumulative_sum,
    diff,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)

__array_api_version__ = "2024.12"

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
