"""NumPy: the core (with ``xentropy.value_and_grad``) against plain NumPy/SciPy.

The native side is what a careful NumPy user writes: one ``(N, C)`` temporary, updated in
place, and the hand-written gradient ``(softmax - onehot) / N`` (or ``sigmoid(x) - t``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from _cases import Case, make_inputs
from _suite import Impl, Matchup, version_of
from _timing import MemoryProbe, host_probe


def _shifted_exp(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``exp(x - max)`` (one new array), the row maxima and the row sums, keepdims."""
    m = x.max(axis=-1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    return e, m, e.sum(axis=-1, keepdims=True)


def sparse_loss(x: np.ndarray, y: np.ndarray) -> Any:
    """Mean of ``logsumexp(x_i) - x_{i y_i}``."""
    _, m, s = _shifted_exp(x)
    picked = np.take_along_axis(x, y[:, None], axis=-1)
    return np.mean(np.log(s) + m - picked)


def sparse_loss_and_grad(x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """The loss and ``(softmax(x) - onehot(y)) / N``, the softmax made in place."""
    n = x.shape[0]
    p, m, s = _shifted_exp(x)
    picked = np.take_along_axis(x, y[:, None], axis=-1)
    loss = np.mean(np.log(s) + m - picked)
    p *= 1.0 / (s * n)
    p[np.arange(n), y] -= 1.0 / n
    return loss, p


def dense_loss(x: np.ndarray, t: np.ndarray) -> Any:
    """Mean over rows of ``-sum_c t_c log softmax(x)_c``, without forming ``log softmax``."""
    _, m, s = _shifted_exp(x)
    shift = (np.log(s) + m)[:, 0]
    return np.mean(t.sum(axis=-1) * shift - np.einsum("ij,ij->i", t, x))


def dense_loss_and_grad(x: np.ndarray, t: np.ndarray) -> tuple[Any, np.ndarray]:
    """The loss and ``(softmax(x) * sum(t) - t) / N``."""
    n = x.shape[0]
    p, m, s = _shifted_exp(x)
    t_sum = t.sum(axis=-1, keepdims=True)
    loss = np.mean(t_sum[:, 0] * (np.log(s) + m)[:, 0] - np.einsum("ij,ij->i", t, x))
    p *= t_sum / (s * n)
    p -= t * (1.0 / n)
    return loss, p


def sigmoid_loss(x: np.ndarray, t: np.ndarray) -> Any:
    """Mean of ``max(x, 0) - x t + log1p(exp(-|x|))``."""
    a = np.abs(x)
    np.negative(a, out=a)
    np.exp(a, out=a)
    np.log1p(a, out=a)
    a += np.maximum(x, 0.0)
    a -= x * t
    return a.mean()


def sigmoid_loss_and_grad(x: np.ndarray, t: np.ndarray) -> tuple[Any, np.ndarray]:
    """The loss and ``(sigmoid(x) - t) / n`` (``scipy.special.expit``)."""
    from scipy.special import expit

    g = expit(x)
    g -= t
    g *= 1.0 / x.size
    return sigmoid_loss(x, t), g


NATIVE: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "sparse": (sparse_loss, sparse_loss_and_grad),
    "dense": (dense_loss, dense_loss_and_grad),
    "sigmoid": (sigmoid_loss, sigmoid_loss_and_grad),
}
CORE_NAMES = {
    "sparse": "softmax_cross_entropy",
    "dense": "softmax_cross_entropy",
    "sigmoid": "sigmoid_cross_entropy",
}


class NumpySuite:
    """Rows for NumPy (the core is the NumPy dialect)."""

    name = "numpy"

    def setup(self, device: str) -> MemoryProbe:
        if device != "cpu":
            from _suite import SkipBackend

            raise SkipBackend("NumPy runs on the CPU only")
        return host_probe()

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__, "scipy": version_of("scipy")}

    def sync(self, out: Any) -> None:
        """NumPy is synchronous."""

    def matchups(self, cases: tuple[Case, ...], quick: bool) -> Iterator[Matchup]:
        import xentropy

        for case in cases:
            arrays = make_inputs(case)
            args = (arrays["logits"], arrays["targets"])
            native = Impl(f"numpy {case.kind}", *_bound(NATIVE[case.kind], args))
            core = getattr(xentropy, CORE_NAMES[case.kind])
            pair = (core, xentropy.value_and_grad(core))
            ours = Impl(f"xentropy.{CORE_NAMES[case.kind]}", *_bound(pair, args))
            yield Matchup(self.name, "eager", case, native, ours)


def _bound(pair: tuple[Callable[..., Any], ...], args: tuple[Any, ...]) -> list[Callable[[], Any]]:
    """Each function of ``pair`` with ``args`` bound."""
    return [functools.partial(fn, *args) for fn in pair]
