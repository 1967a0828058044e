r"""The small synthetic classification task every training example of this folder learns.

Each of ``num_classes`` classes is a mixture of ``clusters_per_class`` Gaussian clusters in
``num_features`` dimensions: cluster centres :math:`\mu_k \sim \mathcal N(0, s^2 I)` and points
:math:`x = \mu_k + \varepsilon,\ \varepsilon \sim \mathcal N(0, I)`. With two clusters per
class the classes are not linearly separable, so a linear model cannot reach the targets of the
examples, and a one-hidden-layer MLP can. Everything is drawn from ``numpy.random.default_rng(
seed)``, so a seed always gives the same arrays (float32 features, int64 labels).

Importing this module imports NumPy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
    """Train and test arrays: features ``(N, D)`` float32, labels ``(N,)`` int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def make_task(
    num_train: int = 2048,
    num_test: int = 1024,
    *,
    num_classes: int = 4,
    num_features: int = 8,
    clusters_per_class: int = 2,
    spread: float = 2.0,
    seed: int = 0,
) -> Split:
    """Draw the task: the same centres for both splits, independent points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(num_classes * clusters_per_class, num_features))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, len(centres), size=n)
        x = centres[cluster] + rng.normal(size=(n, num_features))
        return x.astype(np.float32), (cluster % num_classes).astype(np.int64)

    x_train, y_train = draw(num_train)
    x_test, y_test = draw(num_test)
    return Split(x_train, y_train, x_test, y_test)


def batches(num_examples: int, batch_size: int, rng: np.random.Generator):
    """Index arrays of one shuffled epoch (the last batch may be smaller)."""
    order = rng.permutation(num_examples)
    for start in range(0, num_examples, batch_size):
        yield order[start : start + batch_size]
