"""``python -m xentropy``: compute every variant on a small NumPy example and print a table.

The example is fixed (seeded), so the printed values are reproducible; each row also shows the
gradient norm from :func:`xentropy.value_and_grad`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import xentropy as xe


def _examples(np: Any) -> list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5)) * 2.0
    labels = np.array([0, 3, 1, 4])
    soft = rng.dirichlet(np.ones(5), size=4)
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    binary = (rng.uniform(size=(4, 5)) > 0.5).astype(np.float64)
    hidden, projection = rng.normal(size=(4, 8)), rng.normal(size=(5, 8)) * 0.3
    weights = xe.class_weights(np.array([50, 10, 30, 5, 5]), scheme="log_inverse")
    return [
        ("softmax_cross_entropy", xe.softmax_cross_entropy, (logits, labels), {}),
        ("  + class_weight", xe.softmax_cross_entropy, (logits, labels), {"class_weight": weights}),
        (
            "  + label_smoothing=0.1",
            xe.softmax_cross_entropy,
            (logits, labels),
            {"label_smoothing": 0.1},
        ),
        ("  + ignore_index=3", xe.softmax_cross_entropy, (logits, labels), {"ignore_index": 3}),
        ("  soft targets", xe.softmax_cross_entropy, (logits, soft), {}),
        ("categorical_cross_entropy", xe.categorical_cross_entropy, (probs, labels), {}),
        ("sigmoid_cross_entropy", xe.sigmoid_cross_entropy, (logits, binary), {}),
        ("  + pos_weight=2", xe.sigmoid_cross_entropy, (logits, binary), {"pos_weight": 2.0}),
        ("binary_cross_entropy", xe.binary_cross_entropy, (probs, binary), {}),
        ("softmax_focal_loss", xe.softmax_focal_loss, (logits, labels), {"gamma": 2.0}),
        ("sigmoid_focal_loss", xe.sigmoid_focal_loss, (logits, binary), {"alpha": 0.25}),
        ("poly1_cross_entropy", xe.poly1_cross_entropy, (logits, labels), {"epsilon": 1.0}),
        ("entropy", xe.entropy, (soft,), {"reduction": "mean"}),
        ("kl_divergence", xe.kl_divergence, (soft, probs), {"reduction": "mean"}),
        ("cross_entropy", xe.cross_entropy, (soft, probs), {"reduction": "mean"}),
        (
            "linear_cross_entropy",
            xe.linear_cross_entropy,
            (hidden, projection, labels),
            {"chunk_size": 2},
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m xentropy",
        description="Compute every xentropy variant on a small seeded NumPy batch and print "
        "its mean loss and gradient norm. The conformance matrix is xentropy-conformance "
        "(python -m xentropy.conformance); the benchmarks are benchmarks/run.py.",
    ).parse_args(argv)
    try:
        import numpy as np
    except ImportError:
        print("python -m xentropy needs NumPy: pip install numpy", file=sys.stderr)
        return 1

    print(f"xentropy {xe.__version__} on NumPy {np.__version__}: mean loss of a seeded batch")
    print(f"{'variant':28s} {'loss':>12s} {'|grad|':>12s}")
    print("-" * 54)
    for name, fn, args, kwargs in _examples(np):
        value, grad = xe.value_and_grad(fn)(*args, **kwargs)
        grads = grad if isinstance(grad, tuple) else (grad,)
        norm = sum(float(np.sum(g * g)) for g in grads if g is not None) ** 0.5
        print(f"{name:28s} {float(value):12.6f} {norm:12.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
