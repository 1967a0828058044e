"""JAX: ``xentropy.backends.jax`` against optax, both under ``jax.jit``.

Both sides return per-example losses (optax's convention) and are averaged inside the jitted
function; forward+backward is ``jax.jit(jax.value_and_grad(...))``. Without optax the native side
is the same formula written with ``jax.nn`` (noted in the row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from _cases import Case, make_inputs
from _suite import Impl, Matchup, SkipBackend, find_attr
from _timing import MemoryProbe

OPTAX_NAMES = {
    "sparse": "softmax_cross_entropy_with_integer_labels",
    "dense": "softmax_cross_entropy",
    "sigmoid": "sigmoid_binary_cross_entropy",
}
CORE_NAMES = {
    "sparse": "softmax_cross_entropy",
    "dense": "softmax_cross_entropy",
    "sigmoid": "sigmoid_cross_entropy",
}
ADAPTER_MODULES = ("xentropy.backends.jax", "xentropy.backends.jax.losses")


def jax_nn_losses(jax: Any) -> dict[str, Callable[[Any, Any], Any]]:
    """optax's three losses written with ``jax.nn``, for a machine without optax."""
    jnp = jax.numpy

    def sparse(logits: Any, labels: Any) -> Any:
        picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
        return jax.nn.logsumexp(logits, axis=-1) - picked

    def dense(logits: Any, labels: Any) -> Any:
        return -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)

    def sigmoid(logits: Any, labels: Any) -> Any:
        return -labels * jax.nn.log_sigmoid(logits) - (1 - labels) * jax.nn.log_sigmoid(-logits)

    return {"sparse": sparse, "dense": dense, "sigmoid": sigmoid}


class JaxSuite:
    """Rows for JAX under ``jit``."""

    name = "jax"

    def setup(self, device: str) -> MemoryProbe:
        try:
            import jax
        except ImportError as exc:
            raise SkipBackend(f"jax not importable: {exc}") from exc
        try:
            self.dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        except RuntimeError as exc:
            raise SkipBackend(f"jax has no {device} device: {exc}") from exc
        self.jax = jax
        self.device = device
        # No probe: JAX frees buffers asynchronously, which makes the host RSS unreliable, and
        # on a GPU it says nothing. XLA's own estimate (Impl.static_peak) is reported instead.
        probe = MemoryProbe()
        probe.method = "XLA's estimate: compiled memory_analysis() temp + output bytes"
        return probe

    def versions(self) -> dict[str, str]:
        import jaxlib
        from _suite import version_of

        return {
            "jax": self.jax.__version__,
            "jaxlib": jaxlib.__version__,
            "optax": version_of("optax"),
            "jax_device": str(self.dev.device_kind),
        }

    def sync(self, out: Any) -> None:
        self.jax.block_until_ready(out)

    def native(self, kind: str) -> tuple[Callable[[Any, Any], Any], str, str]:
        """optax's loss for ``kind`` (or the ``jax.nn`` formula), its label and a note."""
        fn, where = find_attr((("optax", OPTAX_NAMES[kind]),))
        if fn is not None:
            return fn, where, ""
        return jax_nn_losses(self.jax)[kind], f"jax.nn {kind} formula", "optax absent"

    def impl(self, label: str, per_example: Callable[..., Any], args: tuple[Any, ...]) -> Impl:
        """Jitted mean of ``per_example(logits, targets)`` and its ``value_and_grad``."""
        jax = self.jax

        def mean_loss(logits: Any, targets: Any) -> Any:
            return per_example(logits, targets).mean()

        return self.jitted(label, mean_loss, jax.value_and_grad(mean_loss), args)

    def jitted(self, label: str, fwd: Callable, fwd_bwd: Callable, args: tuple) -> Impl:
        """An :class:`Impl` of two functions jitted with their arrays as arguments."""
        fwd_jit, fwd_bwd_jit = self.jax.jit(fwd), self.jax.jit(fwd_bwd)
        by_pass = {"fwd": fwd_jit, "fwd_bwd": fwd_bwd_jit}

        def static_peak(pass_name: str) -> int | None:
            analysis = by_pass[pass_name].lower(*args).compile().memory_analysis()
            if analysis is None:
                return None
            return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)

        return Impl(label, lambda: fwd_jit(*args), lambda: fwd_bwd_jit(*args), static_peak)

    def ours(self, kind: str, args: tuple[Any, ...]) -> tuple[Impl, str]:
        """The adapter's loss, or the core's with ``xentropy.value_and_grad`` if it is missing."""
        fn, where = find_attr(tuple((m, OPTAX_NAMES[kind]) for m in ADAPTER_MODULES))
        if fn is not None:
            return self.impl(where, fn, args), ""
        import xentropy

        core = getattr(xentropy, CORE_NAMES[kind])
        note = f"adapter missing ({where.split(';')[0]}); ours = core {CORE_NAMES[kind]}"
        label = f"xentropy.{CORE_NAMES[kind]} (core)"
        return self.jitted(label, core, xentropy.value_and_grad(core), args), note

    def matchups(self, cases: tuple[Case, ...], quick: bool) -> Iterator[Matchup]:
        for case in cases:
            arrays = make_inputs(case)
            if case.kind == "sparse":
                arrays["targets"] = arrays["targets"].astype("int32")
            args = (
                self.jax.device_put(arrays["logits"], self.dev),
                self.jax.device_put(arrays["targets"], self.dev),
            )
            fn, label, native_note = self.native(case.kind)
            ours, note = self.ours(case.kind, args)
            notes = "; ".join(n for n in (native_note, note) if n)
            yield Matchup(self.name, "jit", case, self.impl(label, fn, args), ours, notes)
