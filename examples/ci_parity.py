r"""A CI parity gate: one model's loss and gradients, in two frameworks, ours and native.

The kind of check a CI matrix runs after porting a model: the weights of one small MLP are drawn
once (NumPy, fixed seed), and every framework named in ``--frameworks`` (default ``torch,jax``;
``tensorflow`` too) computes the model's mean cross entropy and its gradient with respect to
every weight, twice: with the framework's native loss and with xentropy's dialect of it:

==============  ===============================================  ================================
framework       native                                           xentropy
==============  ===============================================  ================================
``torch``       ``torch.nn.functional.cross_entropy``            ``xentropy.backends.torch
                                                                 .functional.cross_entropy``
``jax``         ``optax.softmax_cross_entropy_with_integer_      ``xentropy.backends.jax`` (same
                labels`` (``optax.softmax_cross_entropy`` of     names)
                ``optax.smooth_labels`` with smoothing)
``tensorflow``  ``tf.nn.sparse_softmax_cross_entropy_with_       ``xentropy.backends.tensorflow
                logits`` (``softmax_cross_entropy_with_logits``  .nn`` (same names)
                of smoothed labels with smoothing)
==============  ===============================================  ================================

for two cases, plain class indices and label smoothing :math:`\varepsilon` (targets
:math:`(1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon / C`). Every result is compared with
the first framework's native one; the relative difference of a gradient is
:math:`\max |g - g_0| / \max |g_0|`, that of the loss :math:`|\ell - \ell_0| / |\ell_0|`.

Run::

    python examples/ci_parity.py [--frameworks torch,jax,tensorflow] [--dtype float64]

Prints a table and a result line; exits with 1 if any difference exceeds ``--rtol`` (default
1e-5 in float32, 1e-12 in float64).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

# name -> (loss, [dL/dW1, dL/db1, dL/dW2, dL/db2]) for one implementation
Results = dict[str, tuple[float, list[np.ndarray]]]
Params = list[np.ndarray]


def make_model(
    rng: np.random.Generator, batch: int, features: int, hidden: int, classes: int, dtype: str
) -> tuple[Params, np.ndarray, np.ndarray]:
    """The weights ``[W1, b1, W2, b2]`` of the MLP, a batch of inputs and class indices."""
    params = [
        rng.normal(scale=features**-0.5, size=(features, hidden)),
        rng.normal(scale=0.1, size=hidden),
        rng.normal(scale=hidden**-0.5, size=(hidden, classes)),
        rng.normal(scale=0.1, size=classes),
    ]
    x = rng.normal(size=(batch, features))
    y = rng.integers(0, classes, size=batch)
    return [p.astype(dtype) for p in params], x.astype(dtype), y


def run_torch(params: Params, x: np.ndarray, y: np.ndarray, smoothing: float) -> Results:
    import torch
    import torch.nn.functional as native
    from xentropy.backends.torch import functional as ours

    results = {}
    for name, loss_fn in (("native", native.cross_entropy), ("xentropy", ours.cross_entropy)):
        weights = [torch.tensor(p, requires_grad=True) for p in params]
        w1, b1, w2, b2 = weights
        logits = torch.relu(torch.from_numpy(x) @ w1 + b1) @ w2 + b2
        loss = loss_fn(logits, torch.from_numpy(y), label_smoothing=smoothing)
        grads = torch.autograd.grad(loss, weights)
        results[name] = (float(loss.detach()), [g.numpy() for g in grads])
    return results


def run_jax(params: Params, x: np.ndarray, y: np.ndarray, smoothing: float) -> Results:
    import jax
    import jax.numpy as jnp
    import optax
    from xentropy.backends import jax as xoptax

    if x.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)

    def model_loss(module: Any) -> Callable[..., Any]:
        def loss(weights: Params, x: jax.Array, y: jax.Array) -> jax.Array:
            w1, b1, w2, b2 = weights
            logits = jax.nn.relu(x @ w1 + b1) @ w2 + b2
            if not smoothing:
                return module.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            targets = optax.smooth_labels(
                jax.nn.one_hot(y, logits.shape[-1], dtype=x.dtype), smoothing
            )
            return module.softmax_cross_entropy(logits, targets).mean()

        return jax.jit(jax.value_and_grad(loss))

    results = {}
    for name, module in (("native", optax), ("xentropy", xoptax)):
        loss, grads = model_loss(module)([jnp.asarray(p) for p in params], jnp.asarray(x), y)
        results[name] = (float(loss), [np.asarray(g) for g in grads])
    return results


def run_tensorflow(params: Params, x: np.ndarray, y: np.ndarray, smoothing: float) -> Results:
    import tensorflow as tf
    from xentropy.backends.tensorflow import nn as ours

    results = {}
    for name, module in (("native", tf.nn), ("xentropy", ours)):
        weights = [tf.Variable(p) for p in params]
        w1, b1, w2, b2 = weights
        with tf.GradientTape() as tape:
            logits = tf.nn.relu(tf.constant(x) @ w1 + b1) @ w2 + b2
            if smoothing:
                onehot = tf.one_hot(y, logits.shape[-1], dtype=logits.dtype)
                targets = (1 - smoothing) * onehot + smoothing / logits.shape[-1]
                per_example = module.softmax_cross_entropy_with_logits(targets, logits)
            else:
                per_example = module.sparse_softmax_cross_entropy_with_logits(y, logits)
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, weights)
        results[name] = (float(loss.detach()), [g.numpy() for g in grads])
    return results


RUNNERS = {"torch": run_torch, "jax": run_jax, "tensorflow": run_tensorflow}
DEFAULT_RTOL = {"float32": 1e-5, "float64": 1e-12}


def relative_differences(
    result: tuple[float, list[np.ndarray]], baseline: tuple[float, list[np.ndarray]]
) -> tuple[float, float]:
    """(loss, largest gradient) relative difference of ``result`` from ``baseline``."""
    (loss, grads), (loss0, grads0) = result, baseline
    grad_diff = max(
        float(np.abs(g - g0).max() / np.abs(g0).max()) for g, g0 in zip(grads, grads0, strict=True)
    )
    return abs(loss - loss0) / abs(loss0), grad_diff


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--frameworks", default="torch,jax", help=f"two or more of {list(RUNNERS)}")
    parser.add_argument("--dtype", choices=sorted(DEFAULT_RTOL), default="float32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=None, help="default: by --dtype")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    frameworks = args.frameworks.split(",")
    if len(frameworks) < 2 or not set(frameworks) <= set(RUNNERS):
        raise SystemExit(f"--frameworks: two or more of {list(RUNNERS)}; got {args.frameworks!r}")
    rtol = DEFAULT_RTOL[args.dtype] if args.rtol is None else args.rtol
    rng = np.random.default_rng(args.seed)
    params, x, y = make_model(rng, args.batch, args.features, args.hidden, args.classes, args.dtype)

    worst = 0.0
    print(f"{'case':<16}{'framework/loss':<22}{'loss':>12}{'loss diff':>11}{'grad diff':>11}")
    for case, smoothing in (
        ("class indices", 0.0),
        (f"smoothing={args.label_smoothing}", args.label_smoothing),
    ):
        results = {
            f"{framework}/{impl}": outcome
            for framework in frameworks
            for impl, outcome in RUNNERS[framework](params, x, y, smoothing).items()
        }
        baseline = results[f"{frameworks[0]}/native"]
        for name, result in results.items():
            loss_diff, grad_diff = relative_differences(result, baseline)
            worst = max(worst, loss_diff, grad_diff)
            print(f"{case:<16}{name:<22}{result[0]:>12.7f}{loss_diff:>11.1e}{grad_diff:>11.1e}")

    ok = worst <= rtol
    print(
        f"ci_parity: {' vs '.join(frameworks)}, native and xentropy, {args.dtype}: largest "
        f"relative difference {worst:.1e} (tolerance {rtol:.0e}): {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
