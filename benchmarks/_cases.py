"""The benchmark cases: which loss, which shape, and the (seeded, NumPy) inputs they run on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    """One loss on one shape; ``kind`` is ``sparse``, ``dense``, ``sigmoid`` or ``linear``.

    For ``linear`` the shape is ``(N, D, V)``: hidden ``(N, D)``, weight ``(V, D)``, ``N`` targets.
    """

    kind: str
    shape: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.kind} {'x'.join(str(d) for d in self.shape)}"

    @property
    def elements(self) -> int:
        """Elements of the largest array the loss reads or writes (the logits)."""
        if self.kind == "linear":
            n, _, v = self.shape
            return n * v
        return int(np.prod(self.shape))


FULL_CASES = (
    Case("sparse", (4096, 32000)),
    Case("sparse", (65536, 10)),
    Case("dense", (8192, 1000)),
    Case("sigmoid", (1048576,)),
)
QUICK_CASES = (
    Case("sparse", (1024, 8000)),
    Case("sparse", (4096, 10)),
    Case("dense", (512, 1000)),
    Case("sigmoid", (65536,)),
)
LINEAR_CASES = {
    # (device, quick) -> case. All have the Llama-3 vocabulary and N = 4 D, so that logits and
    # weight gradient stand in the proportion of the GPU case (8192 tokens, width 2048); the CPU
    # one is 1/64 of its work.
    ("cuda", False): Case("linear", (8192, 2048, 128256)),
    ("cuda", True): Case("linear", (2048, 512, 128256)),
    ("cpu", False): Case("linear", (1024, 256, 128256)),
    ("cpu", True): Case("linear", (256, 64, 128256)),
}


def cases(quick: bool) -> tuple[Case, ...]:
    """The softmax/sigmoid cases of a full or a ``--quick`` run."""
    return QUICK_CASES if quick else FULL_CASES


def make_inputs(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 inputs for ``case``: ``logits`` and ``targets`` (``hidden``/``weight`` for linear).

    Sparse targets are int64 class indices; dense targets are rows of probabilities (a softmax
    of random scores); sigmoid targets are 0/1 floats.
    """
    rng = np.random.default_rng(seed)
    if case.kind == "linear":
        n, d, v = case.shape
        return {
            "hidden": rng.standard_normal((n, d), dtype=np.float32),
            "weight": rng.standard_normal((v, d), dtype=np.float32) * np.float32(d**-0.5),
            "targets": rng.integers(0, v, size=(n,), dtype=np.int64),
        }
    logits = rng.standard_normal(case.shape, dtype=np.float32) * np.float32(2.0)
    if case.kind == "sparse":
        targets = rng.integers(0, case.shape[-1], size=case.shape[:-1], dtype=np.int64)
    elif case.kind == "dense":
        scores = rng.standard_normal(case.shape, dtype=np.float32)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        targets = scores / scores.sum(axis=-1, keepdims=True)
    elif case.kind == "sigmoid":
        targets = (rng.random(case.shape, dtype=np.float32) < 0.5).astype(np.float32)
    else:
        raise ValueError(f"unknown case kind {case.kind!r}")
    return {"logits": logits, "targets": targets}
