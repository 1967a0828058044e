"""Linear cross entropy on PyTorch: fused and chunked, against ``F.linear`` + ``F.cross_entropy``.

The unfused path materialises the ``(N, V)`` logits (and their gradient); the fused one never
holds more than a ``(N, chunk)`` block, and recomputes it in the backward pass. Forward+backward
differentiates with respect to ``hidden`` and ``weight``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from _cases import LINEAR_CASES, Case
from _suite import Impl, Matchup
from _torch_suite import ADAPTER_MODULES, TorchSuite, adapter_or_core


class LinearSuite(TorchSuite):
    """One row: ``linear_cross_entropy`` of the torch adapter (or the core) vs the unfused path."""

    name = "linear"

    def unfused(self, hidden: Any, weight: Any, targets: Any) -> Impl:
        """``F.cross_entropy(F.linear(hidden, weight), targets)`` with autograd."""
        import torch.nn.functional as F

        def loss(h: Any, w: Any) -> Any:
            return F.cross_entropy(F.linear(h, w), targets)

        return self.autograd_impl("F.linear + F.cross_entropy", loss, hidden, weight)

    def autograd_impl(self, label: str, loss: Any, hidden: Any, weight: Any) -> Impl:
        """Forward on plain tensors; forward+backward to leaves copied from them."""
        h_leaf = hidden.detach().clone().requires_grad_()
        w_leaf = weight.detach().clone().requires_grad_()

        def fwd_bwd() -> Any:
            value = loss(h_leaf, w_leaf)
            return value, *self.torch.autograd.grad(value, (h_leaf, w_leaf))

        return Impl(label, lambda: loss(hidden, weight), fwd_bwd)

    def fused(self, hidden: Any, weight: Any, targets: Any) -> tuple[Impl, str]:
        """Our fused loss: the adapter's if it has one, else the core's with its backward."""
        fn, label, is_adapter, note = adapter_or_core(
            "linear_cross_entropy", "linear_cross_entropy", ADAPTER_MODULES
        )
        if is_adapter:
            return self.autograd_impl(label, lambda h, w: fn(h, w, targets), hidden, weight), note
        import xentropy

        both = xentropy.value_and_grad(fn)
        impl = Impl(
            label, lambda: fn(hidden, weight, targets), lambda: both(hidden, weight, targets)
        )
        return impl, note

    def matchups(self, cases: tuple[Case, ...], quick: bool) -> Iterator[Matchup]:
        case = LINEAR_CASES[(self.device, quick)]
        t = self.tensors(case)
        args = (t["hidden"], t["weight"], t["targets"])
        ours, note = self.fused(*args)
        yield Matchup(self.name, "eager", case, self.unfused(*args), ours, note)
