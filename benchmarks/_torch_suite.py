"""PyTorch: ``xentropy.backends.torch.functional`` against ``torch.nn.functional``.

Modes: ``eager`` and ``compile`` (``torch.compile``, ``dynamic=False``; the warm-up call
compiles). Forward+backward is the loss followed by ``torch.autograd.grad`` for the logits.
Mode ``validate`` prices the eager value checks: ours with ``validate=True`` (the default)
against ours with ``validate=False`` in the native column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from _cases import Case, make_inputs
from _suite import Impl, Matchup, SkipBackend, find_attr, version_of
from _timing import MemoryProbe, host_probe

NATIVE_NAMES = {
    "sparse": "cross_entropy",
    "dense": "cross_entropy",
    "sigmoid": "binary_cross_entropy_with_logits",
}
CORE_NAMES = {
    "sparse": "softmax_cross_entropy",
    "dense": "softmax_cross_entropy",
    "sigmoid": "sigmoid_cross_entropy",
}
ADAPTER_MODULES = ("xentropy.backends.torch.functional", "xentropy.backends.torch")


class CudaProbe(MemoryProbe):
    """``torch.cuda.max_memory_allocated`` above the allocation at start."""

    method = "torch.cuda.max_memory_allocated growth"

    def __init__(self, torch: Any) -> None:
        self._torch = torch
        self._base = 0

    def start(self) -> None:
        self._torch.cuda.synchronize()
        self._torch.cuda.reset_peak_memory_stats()
        self._base = self._torch.cuda.memory_allocated()

    def stop(self) -> int | None:
        self._torch.cuda.synchronize()
        return self._torch.cuda.max_memory_allocated() - self._base


def adapter_or_core(
    name: str, core_name: str, modules: tuple[str, ...]
) -> tuple[Callable[..., Any], str, bool, str]:
    """Our loss: the adapter's ``name`` if importable, else the core's ``core_name``.

    Returns ``(function, label, is_adapter, note)``; the core stand-in is differentiated with
    ``xentropy.value_and_grad`` (the analytic backward the adapter registers, minus autograd).
    """
    fn, where = find_attr(tuple((module, name) for module in modules))
    if fn is not None:
        return fn, where, True, ""
    import xentropy

    note = f"adapter missing ({where.split(';')[0]}); ours = core {core_name} + value_and_grad"
    return getattr(xentropy, core_name), f"xentropy.{core_name} (core)", False, note


class TorchSuite:
    """Rows for PyTorch, eager and compiled."""

    name = "torch"

    def setup(self, device: str) -> MemoryProbe:
        try:
            import torch
        except ImportError as exc:
            raise SkipBackend(f"torch not importable: {exc}") from exc
        if device == "cuda" and not torch.cuda.is_available():
            raise SkipBackend("torch has no CUDA device")
        self.torch = torch
        self.device = device
        return CudaProbe(torch) if device == "cuda" else host_probe()

    def versions(self) -> dict[str, str]:
        info = {"torch": self.torch.__version__, "torch_threads": str(self.torch.get_num_threads())}
        if self.device == "cuda":
            info["cuda_device"] = self.torch.cuda.get_device_name()
            info["torch_cuda"] = str(self.torch.version.cuda)
        return info

    def sync(self, out: Any) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def tensors(self, case: Case) -> dict[str, Any]:
        """The case's inputs as tensors on the device."""
        arrays = make_inputs(case)
        return {k: self.torch.from_numpy(v).to(self.device) for k, v in arrays.items()}

    def impl(self, label: str, loss: Callable[..., Any], args: tuple[Any, ...], compiled: bool):
        """An :class:`Impl` from a function ``loss(prediction, *rest)`` that autograd can see."""
        torch = self.torch
        fwd_loss = torch.compile(loss, dynamic=False) if compiled else loss
        bwd_loss = torch.compile(loss, dynamic=False) if compiled else loss
        leaf = args[0].detach().clone().requires_grad_()

        def fwd() -> Any:
            return fwd_loss(*args)

        def fwd_bwd() -> Any:
            value = bwd_loss(leaf, *args[1:])
            return value, torch.autograd.grad(value, (leaf,))[0]

        return Impl(label, fwd, fwd_bwd)

    def core_impl(self, label: str, loss: Callable[..., Any], args: tuple[Any, ...], compiled):
        """An :class:`Impl` for a core function, its gradient from ``xentropy.value_and_grad``."""
        import xentropy

        both = xentropy.value_and_grad(loss)
        compile_ = self.torch.compile
        fwd = compile_(loss, dynamic=False) if compiled else loss
        fwd_bwd = compile_(both, dynamic=False) if compiled else both
        return Impl(label, lambda: fwd(*args), lambda: fwd_bwd(*args))

    def matchups(self, cases: tuple[Case, ...], quick: bool) -> Iterator[Matchup]:
        import torch.nn.functional as F

        for mode in ("eager", "compile"):
            for case in cases:
                compiled = mode == "compile"
                if compiled:
                    self.torch._dynamo.reset()
                t = self.tensors(case)
                args = (t["logits"], t["targets"])
                name = NATIVE_NAMES[case.kind]
                native = self.impl(f"F.{name}", getattr(F, name), args, compiled)
                fn, label, is_adapter, note = adapter_or_core(
                    name, CORE_NAMES[case.kind], ADAPTER_MODULES
                )
                make = self.impl if is_adapter else self.core_impl
                ours = make(label, fn, args, compiled)
                yield Matchup(self.name, mode, case, native, ours, note)
        yield from self.validation_costs(cases)

    def validation_costs(self, cases: tuple[Case, ...]) -> Iterator[Matchup]:
        """Rows pricing ``validate=True`` (ours column) against ``validate=False`` (native)."""
        fns = {}
        for kind, name in NATIVE_NAMES.items():
            fn, label, is_adapter, _ = adapter_or_core(name, CORE_NAMES[kind], ADAPTER_MODULES)
            if is_adapter:
                fns[kind] = (fn, label)
        for case in cases:
            if case.kind not in fns:
                continue
            fn, label = fns[case.kind]
            t = self.tensors(case)
            args = (t["logits"], t["targets"])

            def unchecked(*a: Any, fn: Callable[..., Any] = fn) -> Any:
                return fn(*a, validate=False)

            checked = self.impl(f"{label}(validate=True)", fn, args, False)
            plain = self.impl(f"{label}(validate=False)", unchecked, args, False)
            note = "validate: ours = validate=True, native = validate=False (same adapter)"
            yield Matchup(self.name, "validate", case, plain, checked, note)


def versions() -> dict[str, str]:
    """Package versions without a device (for a skipped backend)."""
    return {"torch": version_of("torch")}
