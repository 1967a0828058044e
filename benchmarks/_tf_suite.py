"""TensorFlow: ``xentropy.backends.tensorflow.nn`` against ``tf.nn``.

Modes: ``eager``, ``function`` (``tf.function``) and ``xla`` (``tf.function(jit_compile=True)``).
Both sides return per-example losses averaged with ``tf.reduce_mean``; forward+backward uses a
``tf.GradientTape`` inside the (compiled) function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from _cases import Case, make_inputs
from _suite import Impl, Matchup, SkipBackend, find_attr
from _timing import MemoryProbe

NN_NAMES = {
    "sparse": "sparse_softmax_cross_entropy_with_logits",
    "dense": "softmax_cross_entropy_with_logits",
    "sigmoid": "sigmoid_cross_entropy_with_logits",
}
CORE_NAMES = {
    "sparse": "softmax_cross_entropy",
    "dense": "softmax_cross_entropy",
    "sigmoid": "sigmoid_cross_entropy",
}
ADAPTER_MODULES = ("xentropy.backends.tensorflow.nn",)


class TfProbe(MemoryProbe):
    """TensorFlow's allocator peak (``get_memory_info(device)['peak']``) above its level at start.

    The host RSS cannot be used for TensorFlow: its CPU allocator keeps freed memory.
    """

    method = "tf.config.experimental.get_memory_info peak growth"

    def __init__(self, tf: Any, device: str) -> None:
        self._tf = tf
        self._device = device
        self._base = 0

    @classmethod
    def or_nothing(cls, tf: Any, device: str) -> MemoryProbe:
        """This probe where the device's allocator keeps statistics; else one measuring nothing.

        TensorFlow's CPU allocator keeps none (``get_memory_info`` raises ``ValueError``).
        """
        try:
            tf.config.experimental.get_memory_info(device)
        except ValueError:
            probe = MemoryProbe()
            probe.method = f"not measured: TensorFlow keeps no allocator statistics on {device}"
            return probe
        return cls(tf, device)

    def start(self) -> None:
        self._tf.config.experimental.reset_memory_stats(self._device)
        self._base = self._tf.config.experimental.get_memory_info(self._device)["current"]

    def stop(self) -> int | None:
        return self._tf.config.experimental.get_memory_info(self._device)["peak"] - self._base


class TensorFlowSuite:
    """Rows for TensorFlow in its three execution modes."""

    name = "tensorflow"

    def setup(self, device: str) -> MemoryProbe:
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise SkipBackend(f"tensorflow not importable: {exc}") from exc
        if device == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise SkipBackend("tensorflow has no GPU")
        self.tf = tf
        self.device_name = "/GPU:0" if device == "cuda" else "/CPU:0"
        return TfProbe.or_nothing(tf, "GPU:0" if device == "cuda" else "CPU:0")

    def versions(self) -> dict[str, str]:
        return {"tensorflow": self.tf.__version__}

    def sync(self, out: Any) -> None:
        """``.numpy()`` of the loss and of one element of each other output."""
        tf = self.tf
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            (tensor if tensor.shape.rank == 0 else tf.reshape(tensor, [-1])[:1]).numpy()

    def on_device(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[], Any]:
        """``fn(*args)`` run under ``tf.device``."""

        def call() -> Any:
            with self.tf.device(self.device_name):
                return fn(*args)

        return call

    def compiled(self, fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
        """``fn`` as the mode runs it."""
        if mode == "eager":
            return fn
        return self.tf.function(fn, jit_compile=mode == "xla", autograph=False)

    def impl(self, label: str, nn_fn: Callable[..., Any], args: tuple, mode: str) -> Impl:
        """An :class:`Impl` of a ``tf.nn``-style ``nn_fn(labels=, logits=)``."""
        tf = self.tf

        def mean_loss(logits: Any, labels: Any) -> Any:
            return tf.reduce_mean(nn_fn(labels=labels, logits=logits))

        def loss_and_grad(logits: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(logits)
                value = mean_loss(logits, labels)
            return value, tape.gradient(value, logits)

        fwd = self.on_device(self.compiled(mean_loss, mode), args)
        return Impl(label, fwd, self.on_device(self.compiled(loss_and_grad, mode), args))

    def ours(self, kind: str, args: tuple, mode: str) -> tuple[Impl, str]:
        """The adapter's function, or the core's with ``xentropy.value_and_grad``."""
        fn, where = find_attr(tuple((m, NN_NAMES[kind]) for m in ADAPTER_MODULES))
        if fn is not None:
            return self.impl(where, fn, args, mode), ""
        import xentropy

        core = getattr(xentropy, CORE_NAMES[kind])
        both = xentropy.value_and_grad(core)
        fwd = self.on_device(self.compiled(core, mode), args)
        fwd_bwd = self.on_device(self.compiled(both, mode), args)
        note = f"adapter missing ({where}); ours = core {CORE_NAMES[kind]}"
        return Impl(f"xentropy.{CORE_NAMES[kind]} (core)", fwd, fwd_bwd), note

    def matchups(self, cases: tuple[Case, ...], quick: bool) -> Iterator[Matchup]:
        tf = self.tf
        for mode in ("eager", "function", "xla"):
            for case in cases:
                arrays = make_inputs(case)
                with tf.device(self.device_name):
                    args = (tf.constant(arrays["logits"]), tf.constant(arrays["targets"]))
                name = NN_NAMES[case.kind]
                native = self.impl(f"tf.nn.{name}", getattr(tf.nn, name), args, mode)
                ours, note = self.ours(case.kind, args, mode)
                yield Matchup(self.name, mode, case, native, ours, note)
