"""Timing (median after warm-up, interleaved contenders) and peak-memory probes."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Policy:
    """How many timed repeats: enough to fill ``target_s`` per contender, within bounds."""

    min_repeats: int = 3
    max_repeats: int = 25
    target_s: float = 1.5

    def repeats(self, first_call_s: float) -> int:
        wanted = math.ceil(self.target_s / max(first_call_s, 1e-6))
        return max(self.min_repeats, min(self.max_repeats, wanted))


@dataclass
class Timing:
    """Wall-clock times (ms) of one contender: the warm-up call and the timed repeats."""

    warmup_ms: float
    times_ms: list[float] = field(default_factory=list)
    peak_bytes: int | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "times_ms": self.times_ms,
            "warmup_ms": self.warmup_ms,
            "peak_bytes": self.peak_bytes,
        }


class MemoryProbe:
    """Peak memory above what was in use at :meth:`start`; this base class measures nothing."""

    method = "not measured"

    def start(self) -> None:
        """Reset the peak and remember the current level."""

    def stop(self) -> int | None:
        """Bytes of the peak above the level at :meth:`start` (None: not measurable)."""
        return None


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{key}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {key}")
    return int(match.group(1))


class RssProbe(MemoryProbe):
    """Growth of the process's peak resident set (``VmHWM``) over its resident set at start.

    Linux resets ``VmHWM`` to the current RSS when ``5`` is written to ``/proc/self/clear_refs``,
    so every measurement has its own peak without a fresh process. Free heap memory is first
    returned with glibc's ``malloc_trim(0)``, so that an allocation served from already-resident
    free chunks still shows. It counts all host memory (framework allocators included), so it is
    meaningful for CPU runs only; allocator caches that the framework keeps itself are invisible.
    """

    method = "host peak RSS growth (malloc_trim, then VmHWM reset via /proc/self/clear_refs)"

    def __init__(self) -> None:
        self._base_kib = 0
        self._libc = _libc()

    @staticmethod
    def available() -> bool:
        try:
            RssProbe._reset()
            _status_kib("VmHWM")
        except OSError:
            return False
        return True

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")

    def start(self) -> None:
        if self._libc is not None:
            # Hand free heap pages back to the OS, so that reusing them counts as growth.
            self._libc.malloc_trim(0)
        self._reset()
        self._base_kib = _status_kib("VmRSS")

    def stop(self) -> int | None:
        return max(0, _status_kib("VmHWM") - self._base_kib) * 1024


def _libc() -> ctypes.CDLL | None:
    """glibc, for ``malloc_trim``; None elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def host_probe() -> MemoryProbe:
    """The RSS probe where Linux supports resetting the peak, else none."""
    return RssProbe() if RssProbe.available() else MemoryProbe()


def _timed_call(
    fn: Callable[[], Any], sync: Callable[[Any], None], inspect: Callable[[Any], None] | None = None
) -> float:
    """Seconds for ``fn()`` and its synchronisation; ``inspect`` then sees the output."""
    start = time.perf_counter()
    out = fn()
    sync(out)
    elapsed = time.perf_counter() - start
    if inspect is not None:
        inspect(out)
    del out
    return elapsed


def race(
    contenders: dict[str, Callable[[], Any]],
    sync: Callable[[Any], None],
    probe: MemoryProbe,
    policy: Policy,
    inspect: Callable[[str, Any], None] | None = None,
) -> dict[str, Timing]:
    """Time ``contenders`` on the same inputs: one warm-up each, then interleaved repeats.

    Interleaving (a, b, a, b, ...) exposes every contender to the same drift of a shared, noisy
    machine, so their ratio is fairer than that of back-to-back blocks. The first timed repeat
    of each contender also records its peak memory. The garbage collector is off while timing.
    ``inspect(name, output)`` sees each warm-up call's output (to check that the values agree).
    """
    results: dict[str, Timing] = {}
    gc.collect()
    for name, fn in contenders.items():
        look = None if inspect is None else functools.partial(inspect, name)
        results[name] = Timing(warmup_ms=_timed_call(fn, sync, look) * 1e3)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name, fn in contenders.items():
            gc.collect()
            probe.start()
            results[name].times_ms.append(_timed_call(fn, sync) * 1e3)
            results[name].peak_bytes = probe.stop()
        slowest = max(t.times_ms[0] for t in results.values()) / 1e3
        for _ in range(policy.repeats(slowest) - 1):
            for name, fn in contenders.items():
                results[name].times_ms.append(_timed_call(fn, sync) * 1e3)
    finally:
        if gc_was_enabled:
            gc.enable()
    return results
