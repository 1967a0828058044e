r"""Train a small Keras 3 classifier with xentropy's ``keras.losses`` in ``compile`` / ``fit``.

Shows the one-import port of a Keras model: ``losses`` below is
:mod:`xentropy.backends.keras.losses`, whose ``SparseCategoricalCrossentropy`` is xentropy's (a
``keras.losses.Loss`` subclass with Keras's arguments, computed by the core through the current
backend's adapter) and whose every other name is ``keras.losses``'s own. The same script runs on
every Keras backend, chosen as usual by the ``KERAS_BACKEND`` environment variable (``jax``,
``tensorflow`` or ``torch``). The model, a one-hidden-layer MLP, learns the task of
``synthetic_data.py`` with ``model.fit`` on

.. math::

    \ell = \frac{1}{N} \sum_i \big(\operatorname{lse}(f_\theta(x_i)) - f_\theta(x_i)_{y_i}\big)

and must reach the target test accuracy (``model.evaluate``'s ``accuracy`` metric).

Run::

    KERAS_BACKEND=jax python examples/keras_classifier.py [--epochs 8] [--target-accuracy 0.9]

Prints one result line (naming the backend) and exits with 1 if the accuracy is below the target.
"""

from __future__ import annotations

import argparse

import keras
from synthetic_data import make_task
from xentropy.backends.keras import losses  # was: from keras import losses


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    task = make_task(args.train, args.test, seed=args.seed)
    num_classes = int(task.y_train.max()) + 1
    model = keras.Sequential(
        [
            keras.Input(shape=(task.x_train.shape[1],)),
            keras.layers.Dense(args.hidden, activation="relu"),
            keras.layers.Dense(num_classes),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(task.x_train, task.y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    test_loss, accuracy = model.evaluate(task.x_test, task.y_test, verbose=0)
    reached = accuracy >= args.target_accuracy
    print(
        f"keras_classifier[{keras.backend.backend()}]: test accuracy {accuracy:.3f} (target "
        f"{args.target_accuracy:.2f}), test loss {test_loss:.3f} after {args.epochs} epochs: "
        f"{'ok' if reached else 'MISSED'}"
    )
    return 0 if reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
