r"""Train a small PyTorch classifier with xentropy's ``torch.nn.CrossEntropyLoss``.

Shows that porting a PyTorch training loop means changing the imports only: ``xnn`` and ``F``
below are :mod:`xentropy.backends.torch.nn` and :mod:`xentropy.backends.torch.functional`, whose
cross-entropy losses are xentropy's (the core's analytic backward registered with autograd)
and whose every other name (``Sequential``, ``Linear``, ``ReLU``, ...) is PyTorch's own. The
model, a one-hidden-layer MLP, learns the task of ``synthetic_data.py`` (classes that are
mixtures of Gaussian clusters, not linearly separable) with Adam on

.. math::

    \ell = \frac{1}{N} \sum_i -\sum_c \Big((1-\varepsilon)[c = y_i] + \frac{\varepsilon}{C}\Big)
        \log \operatorname{softmax}(f_\theta(x_i))_c

(``nn.CrossEntropyLoss(label_smoothing=ε)``), and must reach the target test accuracy.

Run::

    python examples/torch_classifier.py [--epochs 8] [--target-accuracy 0.9]

Prints one result line and exits with 1 if the test accuracy is below the target.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from synthetic_data import batches, make_task
from xentropy.backends.torch import functional as F  # was: import torch.nn.functional as F
from xentropy.backends.torch import nn as xnn  # was: from torch import nn


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--train", type=int, default=2048, help="training examples")
    parser.add_argument("--test", type=int, default=1024, help="test examples")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32, help="hidden units")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--label-smoothing", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-accuracy", type=float, default=0.9)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    task = make_task(args.train, args.test, seed=args.seed)
    x_train, y_train = torch.from_numpy(task.x_train), torch.from_numpy(task.y_train)
    x_test, y_test = torch.from_numpy(task.x_test), torch.from_numpy(task.y_test)
    num_classes = int(task.y_train.max()) + 1

    model = xnn.Sequential(
        xnn.Linear(x_train.shape[1], args.hidden), xnn.ReLU(), xnn.Linear(args.hidden, num_classes)
    )
    criterion = xnn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shuffle = np.random.default_rng(args.seed)
    for _ in range(args.epochs):
        for index in batches(len(x_train), args.batch_size, shuffle):
            optimizer.zero_grad()
            loss = criterion(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()

    with torch.no_grad():
        logits = model(x_test)
        test_loss = float(F.cross_entropy(logits, y_test))
        accuracy = float((logits.argmax(dim=1) == y_test).float().mean())
    reached = accuracy >= args.target_accuracy
    print(
        f"torch_classifier: test accuracy {accuracy:.3f} (target {args.target_accuracy:.2f}), "
        f"test loss {test_loss:.3f} after {args.epochs} epochs: {'ok' if reached else 'MISSED'}"
    )
    return 0 if reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
