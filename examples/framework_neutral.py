r"""One loss function for every array library, through xentropy's core.

``weighted_loss`` below is the kind of function a library writes once and hands any array:
it calls the core's ``xentropy.softmax_cross_entropy``, which finds the array's namespace
(NumPy, PyTorch, JAX, TensorFlow, CuPy, Dask, array-api-strict ...), computes there and returns
an array of the same kind (a ``torch.Tensor`` for torch inputs, a lazy Dask array for Dask
inputs), with no framework imported by xentropy itself. It computes the label-smoothed cross
entropy with per-example weights :math:`s_i`,

.. math::

    \ell = \frac{\sum_i s_i\, \ell_i}{\sum_i s_i}, \qquad
    \ell_i = -\sum_c \Big((1-\varepsilon)[c = y_i] + \frac{\varepsilon}{C}\Big)
        \log \operatorname{softmax}(z_i)_c

The script runs it on the same float32 logits in every framework that is installed (or those
named with ``--frameworks``), and compares each result with a float64 NumPy reference of the
formula above.

Run::

    python examples/framework_neutral.py [--frameworks numpy,torch,jax] [--batch 64]

Prints one line per framework and a result line; exits with 1 if a result differs from the
reference by more than ``--rtol``, or if a framework named in ``--frameworks`` is missing.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import xentropy

LABEL_SMOOTHING = 0.1


def weighted_loss(logits: Any, labels: Any, sample_weight: Any) -> Any:
    """The weighted, label-smoothed mean cross entropy, for arrays of any library."""
    return xentropy.softmax_cross_entropy(
        logits, labels, sample_weight=sample_weight, label_smoothing=LABEL_SMOOTHING
    )


def reference_loss(logits: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray) -> float:
    """The formula of the module docstring in float64 NumPy."""
    z = logits.astype(np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    num_classes = z.shape[-1]
    targets = (1 - LABEL_SMOOTHING) * np.eye(num_classes)[labels] + LABEL_SMOOTHING / num_classes
    per_example = -(targets * log_p).sum(axis=-1)
    return float((sample_weight * per_example).sum() / sample_weight.sum())


class Framework(NamedTuple):
    """How to put a NumPy array into a framework (``to_array``) and a result back out."""

    module: str
    to_array: Callable[[Any, np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]


def _dask_array(da: Any, a: np.ndarray) -> Any:
    return da.from_array(a, chunks=max(1, len(a) // 2))  # two chunks: a real reduction tree


def _cupy_array(cupy: Any, a: np.ndarray) -> Any:
    cupy.cuda.runtime.getDeviceCount()  # raises without a CUDA device
    return cupy.asarray(a)


FRAMEWORKS: dict[str, Framework] = {
    "numpy": Framework("numpy", lambda np_, a: a, np.asarray),
    "array_api_strict": Framework("array_api_strict", lambda x, a: x.asarray(a), np.from_dlpack),
    "dask": Framework("dask.array", _dask_array, lambda r: np.asarray(r.compute())),
    "torch": Framework("torch", lambda torch, a: torch.from_numpy(a), lambda r: r.numpy()),
    "jax": Framework("jax.numpy", lambda jnp, a: jnp.asarray(a), np.asarray),
    "tensorflow": Framework("tensorflow", lambda tf, a: tf.constant(a), lambda r: r.numpy()),
    "cupy": Framework("cupy", _cupy_array, lambda r: r.get()),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "--frameworks",
        default=None,
        help=f"comma list out of {','.join(FRAMEWORKS)} (default: every one installed)",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    requested = args.frameworks.split(",") if args.frameworks else None
    unknown = sorted(set(requested or ()) - set(FRAMEWORKS))
    if unknown:
        raise SystemExit(f"unknown frameworks {unknown}; choose from {list(FRAMEWORKS)}")
    rng = np.random.default_rng(args.seed)
    logits = rng.normal(scale=3.0, size=(args.batch, args.classes)).astype(np.float32)
    labels = rng.integers(0, args.classes, size=args.batch)
    sample_weight = rng.uniform(0.0, 2.0, size=args.batch).astype(np.float32)
    expected = reference_loss(logits, labels, sample_weight)

    ran, missing, wrong = [], [], []
    for name in requested or FRAMEWORKS:
        framework = FRAMEWORKS[name]
        try:
            module = importlib.import_module(framework.module)
            inputs = [framework.to_array(module, a) for a in (logits, labels, sample_weight)]
        except (ImportError, RuntimeError) as exc:  # not installed, or (CuPy) no CUDA device
            print(f"{name:>16}: skipped ({type(exc).__name__}: {exc})")
            missing.append(name)
            continue
        result = weighted_loss(*inputs)
        value = float(framework.to_numpy(result))
        error = abs(value - expected) / abs(expected)
        kind = f"{type(result).__module__}.{type(result).__qualname__}"
        print(f"{name:>16}: {value:.7f}  ({kind}, rel error {error:.1e})")
        ran.append(name)
        if not error <= args.rtol:
            wrong.append(name)

    ok = bool(ran) and not wrong and not (requested and missing)
    print(
        f"framework_neutral: [{','.join(ran)}] match the float64 reference {expected:.7f} "
        f"within {args.rtol:.0e}"
        + (f"; differ: {','.join(wrong)}" if wrong else "")
        + (f"; missing: {','.join(missing)}" if requested and missing else "")
        + f": {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
