"""Linear cross entropy on PyTorch: our fused loss against three others, forward and backward.

* ``eager``: ``F.linear`` + ``F.cross_entropy``, which materialises the ``(N, V)`` logits and
  their gradient;
* ``vs-torch``: PyTorch's own fused ``torch.nn.functional.linear_cross_entropy(...,
  options=LinearCrossEntropyOptions())`` (its chunked path, PyTorch 2.13 and later; the row is
  left out where torch has none);
* ``vs-liger``: Liger Kernel's ``LigerFusedLinearCrossEntropyFunction``, only where
  ``liger_kernel`` is importable and the device is CUDA (its kernels are Triton's): on a CPU run
  the row is left out, and the run's notes say why.

Ours computes the gradients in the forward pass when autograd records the call (blocks of rows,
three matrix products in all; ``xentropy._linear.gradient_rows``). Forward+backward
differentiates with respect to ``hidden`` and ``weight``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from _cases import LINEAR_CASES, Case
from _suite import Impl, Matchup
from _torch_suite import ADAPTER_MODULES, TorchSuite, adapter_or_core


class LinearSuite(TorchSuite):
    """``linear_cross_entropy`` of the torch adapter (or the core) against each other loss."""

    name = "linear"

    def unfused(self, hidden: Any, weight: Any, targets: Any) -> Impl:
        """``F.cross_entropy(F.linear(hidden, weight), targets)`` with autograd."""
        import torch.nn.functional as F

        def loss(h: Any, w: Any) -> Any:
            return F.cross_entropy(F.linear(h, w), targets)

        return self.autograd_impl("F.linear + F.cross_entropy", loss, hidden, weight)

    def torch_fused(self, hidden: Any, weight: Any, targets: Any) -> Impl | None:
        """PyTorch's ``F.linear_cross_entropy`` with default options (None before 2.13)."""
        F = self.torch.nn.functional
        options_class = getattr(self.torch.nn, "LinearCrossEntropyOptions", None)
        if not hasattr(F, "linear_cross_entropy") or options_class is None:
            return None

        def loss(h: Any, w: Any) -> Any:
            return F.linear_cross_entropy(h, w, targets, options=options_class())

        label = "torch F.linear_cross_entropy(options=LinearCrossEntropyOptions())"
        return self.autograd_impl(label, loss, hidden, weight)

    def liger(self, hidden: Any, weight: Any, targets: Any) -> tuple[Impl | None, str]:
        """Liger Kernel's fused linear cross entropy, or None and why not."""
        if self.device != "cuda":
            return None, "Liger Kernel left out: its kernels are Triton's (CUDA only)"
        try:
            from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
        except ImportError as exc:
            return None, f"Liger Kernel left out: not importable ({exc})"

        def loss(h: Any, w: Any) -> Any:
            return liger_fused_linear_cross_entropy(h, w, targets)

        return self.autograd_impl("liger_fused_linear_cross_entropy", loss, hidden, weight), ""

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
        native_fused = self.torch_fused(*args)
        if native_fused is not None:
            yield Matchup(self.name, "vs-torch", case, native_fused, ours, note)
        liger, why_not = self.liger(*args)
        if liger is None:
            print(f"  linear: {why_not}", file=sys.stderr, flush=True)
        else:
            yield Matchup(self.name, "vs-liger", case, liger, ours, note)
