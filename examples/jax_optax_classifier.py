r"""Train a small JAX classifier with xentropy's optax-compatible loss and optax's optimizer.

Shows the one-import port of an optax training loop: ``xoptax`` below is
:mod:`xentropy.backends.jax`, whose ``softmax_cross_entropy_with_integer_labels`` is xentropy's
(a ``jax.custom_jvp`` with the core's analytic gradient) and whose every other name
(``adam``, ``apply_updates``, ...) falls through to optax's own. The whole training step, loss,
gradient and Adam update, is one ``jax.jit``-compiled function. The model, a one-hidden-layer
MLP, learns the task of ``synthetic_data.py`` on the mean per-example loss

.. math::

    \ell = \frac{1}{N} \sum_i \big(\operatorname{lse}(f_\theta(x_i)) - f_\theta(x_i)_{y_i}\big)

and must reach the target test accuracy.

Run::

    python examples/jax_optax_classifier.py [--epochs 8] [--target-accuracy 0.9]

Prints one result line and exits with 1 if the test accuracy is below the target.
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from synthetic_data import batches, make_task
from xentropy.backends import jax as xoptax  # was: import optax as xoptax

Params = dict[str, jax.Array]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--train", type=int, default=2048, help="training examples")
    parser.add_argument("--test", type=int, default=1024, help="test examples")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32, help="hidden units")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-accuracy", type=float, default=0.9)
    return parser.parse_args(argv)


def init_params(key: jax.Array, sizes: tuple[int, int, int]) -> Params:
    """He-initialised weights of a one-hidden-layer MLP ``sizes = (in, hidden, out)``."""
    k1, k2 = jax.random.split(key)
    d, h, c = sizes
    return {
        "w1": jax.random.normal(k1, (d, h)) * jnp.sqrt(2.0 / d),
        "b1": jnp.zeros(h),
        "w2": jax.random.normal(k2, (h, c)) * jnp.sqrt(2.0 / h),
        "b2": jnp.zeros(c),
    }


def apply_model(params: Params, x: jax.Array) -> jax.Array:
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = apply_model(params, x)
    return xoptax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = make_task(args.train, args.test, seed=args.seed)
    num_classes = int(task.y_train.max()) + 1
    params = init_params(
        jax.random.key(args.seed), (task.x_train.shape[1], args.hidden, num_classes)
    )
    optimizer = xoptax.adam(args.lr)  # optax.adam, through the fall-through
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params: Params, opt_state: Any, x: jax.Array, y: jax.Array):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return xoptax.apply_updates(params, updates), opt_state, loss

    shuffle = np.random.default_rng(args.seed)
    for _ in range(args.epochs):
        # full batches only, so that jit compiles the step once
        for index in batches(len(task.x_train), args.batch_size, shuffle):
            if len(index) == args.batch_size:
                x, y = task.x_train[index], task.y_train[index]
                params, opt_state, _ = train_step(params, opt_state, x, y)

    logits = apply_model(params, task.x_test)
    test_loss = float(loss_fn(params, task.x_test, task.y_test))
    accuracy = float(jnp.mean(jnp.argmax(logits, axis=-1) == task.y_test))
    reached = accuracy >= args.target_accuracy
    print(
        f"jax_optax_classifier: test accuracy {accuracy:.3f} (target {args.target_accuracy:.2f}), "
        f"test loss {test_loss:.3f} after {args.epochs} epochs: {'ok' if reached else 'MISSED'}"
    )
    return 0 if reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
