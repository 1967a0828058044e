r"""Train a small TensorFlow classifier with ``tf.GradientTape`` and xentropy's ``tf.nn`` loss.

Shows the one-import port of a low-level TensorFlow training loop: ``nn`` below is
:mod:`xentropy.backends.tensorflow.nn`, whose ``sparse_softmax_cross_entropy_with_logits`` is
xentropy's (the core's analytic gradient registered with ``tf.custom_gradient``) and whose
every other name (``relu``, ``softmax``, ...) is ``tf.nn``'s own. The step, a
``tf.GradientTape`` and a momentum-SGD update of ``tf.Variable`` weights, runs inside
``tf.function``. The model, a one-hidden-layer MLP, learns the task of ``synthetic_data.py`` on

.. math::

    \ell = \frac{1}{N} \sum_i \big(\operatorname{lse}(f_\theta(x_i)) - f_\theta(x_i)_{y_i}\big),
    \qquad v \leftarrow \mu v + \nabla_\theta \ell, \quad \theta \leftarrow \theta - \eta v

and must reach the target test accuracy.

Run::

    python examples/tensorflow_classifier.py [--epochs 8] [--target-accuracy 0.9]

Prints one result line and exits with 1 if the test accuracy is below the target.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf
from synthetic_data import batches, make_task
from xentropy.backends.tensorflow import nn  # was: from tensorflow import nn


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--train", type=int, default=2048, help="training examples")
    parser.add_argument("--test", type=int, default=1024, help="test examples")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32, help="hidden units")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-accuracy", type=float, default=0.9)
    return parser.parse_args(argv)


class MLP(tf.Module):
    """One hidden ReLU layer; He-initialised from a NumPy generator (reproducible)."""

    def __init__(self, sizes: tuple[int, int, int], rng: np.random.Generator) -> None:
        super().__init__()
        d, h, c = sizes
        self.w1 = tf.Variable(rng.normal(scale=np.sqrt(2 / d), size=(d, h)).astype(np.float32))
        self.b1 = tf.Variable(tf.zeros(h))
        self.w2 = tf.Variable(rng.normal(scale=np.sqrt(2 / h), size=(h, c)).astype(np.float32))
        self.b2 = tf.Variable(tf.zeros(c))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return nn.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    task = make_task(args.train, args.test, seed=args.seed)
    num_classes = int(task.y_train.max()) + 1
    model = MLP((task.x_train.shape[1], args.hidden, num_classes), rng)
    velocity = [tf.Variable(tf.zeros_like(v)) for v in model.trainable_variables]

    @tf.function(reduce_retracing=True)
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            per_example = nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x))
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, model.trainable_variables)
        for variable, v, g in zip(model.trainable_variables, velocity, grads, strict=True):
            v.assign(args.momentum * v + g)
            variable.assign_sub(args.lr * v)
        return loss

    for _ in range(args.epochs):
        for index in batches(len(task.x_train), args.batch_size, rng):
            train_step(tf.constant(task.x_train[index]), tf.constant(task.y_train[index]))

    logits = model(tf.constant(task.x_test))
    labels = tf.constant(task.y_test)
    test_loss = float(tf.reduce_mean(nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))
    accuracy = float(tf.reduce_mean(tf.cast(tf.argmax(logits, axis=1) == labels, tf.float32)))
    reached = accuracy >= args.target_accuracy
    print(
        f"tensorflow_classifier: test accuracy {accuracy:.3f} (target "
        f"{args.target_accuracy:.2f}), test loss {test_loss:.3f} after {args.epochs} epochs: "
        f"{'ok' if reached else 'MISSED'}"
    )
    return 0 if reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
