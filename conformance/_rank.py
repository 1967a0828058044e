"""The gloo ranks of the ``torch-distributed`` column, and the coordinator that feeds them.

The conformance process holds no process group: it starts :data:`~.sharded.SHARDS` rank
processes (``python -m xentropy.conformance._rank``) that form one gloo group among themselves,
and talks to each over a local authenticated connection. A cell is one message to every rank
(the case, its dtype-rounded float64 inputs and the dtype); each rank builds the same tensors,
runs its slice (:func:`~.sharded.torch_shard_call`) and its backward, and answers with the loss
and its local gradients, which the coordinator puts back together. A rank that raises answers
with the error (the cell fails with it); a rank that hangs or dies is caught by the reply's
timeout and by the group's own collective timeout, and the group is started afresh for the next
cell.
"""

from __future__ import annotations

import atexit
import datetime
import os
import secrets
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

import numpy as np

from .cases import Case

REPLY_TIMEOUT_S = 120.0  # one cell, all ranks (starting the group included)
COLLECTIVE_TIMEOUT_S = 60.0  # gloo gives up on a collective after this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RankGroup:
    """``world`` rank processes in one gloo group, serving cells."""

    def __init__(self, world: int) -> None:
        self.world = world
        self._closed = False
        key = secrets.token_bytes(16)
        self._listener = Listener(("127.0.0.1", 0), authkey=key)
        host, port = self._listener.address
        env = {**os.environ, "XENTROPY_RANK_KEY": key.hex()}
        master = str(_free_port())
        self._processes = [
            subprocess.Popen(
                [sys.executable, "-m", __name__, *map(str, (rank, world, master, host, port))],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            for rank in range(world)
        ]
        self._connections: list[Connection] = [None] * world  # type: ignore[list-item]
        # Listener.accept has no timeout: it runs in a daemon thread, which a rank that never
        # calls leaves blocked (and the process exits past it)
        accepting = threading.Thread(target=self._accept_ranks, daemon=True)
        accepting.start()
        accepting.join(REPLY_TIMEOUT_S)
        if accepting.is_alive() or any(c is None for c in self._connections):
            self.close()
            raise TimeoutError(
                f"the {world} gloo ranks did not all connect within {REPLY_TIMEOUT_S:.0f} s"
            )

    def _accept_ranks(self) -> None:
        for _ in range(self.world):
            connection = self._listener.accept()
            rank = connection.recv()
            self._connections[rank] = connection

    def alive(self) -> bool:
        return not self._closed and all(p.poll() is None for p in self._processes)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in self._connections:
            try:
                connection.send(None)
                connection.close()
            except (OSError, AttributeError):
                pass
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self._listener.close()

    def evaluate(
        self, case: Case, arrays: Mapping[str, np.ndarray], dtype: str
    ) -> tuple[Any, tuple[Any, ...]]:
        """The loss (every rank's, checked equal) and the gradients of ``case.grad_of``, as
        torch tensors of ``dtype``."""
        import torch

        for connection in self._connections:
            connection.send((case, dict(arrays), dtype))
        answers = []
        for rank, connection in enumerate(self._connections):
            if not connection.poll(REPLY_TIMEOUT_S):
                self.close()  # out of step: the next cell gets a fresh group
                raise TimeoutError(f"rank {rank} gave no answer in {REPLY_TIMEOUT_S:.0f} s")
            answers.append(connection.recv())  # every rank's, so none is left for the next cell
        errors = [f"rank {r}: {payload}" for r, (s, payload) in enumerate(answers) if s == "error"]
        if errors:
            raise RuntimeError("; ".join(errors))
        replies = [payload for _, payload in answers]
        losses = [loss for loss, _ in replies]
        for rank, loss in enumerate(losses[1:], start=1):
            if not np.array_equal(loss, losses[0], equal_nan=True):
                raise AssertionError(f"rank {rank}'s loss {loss} is not rank 0's {losses[0]}")
        grads = _assembled(case, [g for _, g in replies])
        as_torch = getattr(torch, dtype)
        value = torch.from_numpy(losses[0]).to(as_torch)
        return value, tuple(torch.from_numpy(g).to(as_torch) for g in grads)


def _assembled(case: Case, local: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The full gradients from the ranks' local ones: class slices concatenated in rank
    order; the replicated hidden states' (summed over the ranks by the loss) from rank 0."""
    out = []
    for name in case.grad_of:
        if name == "hidden":
            out.append(local[0][name])
        elif name == "logits":
            axis = int(case.options.get("axis", -1))
            whole = np.concatenate([g[name] for g in local], axis=-1)
            out.append(np.moveaxis(whole, -1, axis))
        else:  # weight rows, bias entries
            out.append(np.concatenate([g[name] for g in local], axis=0))
    return out


_GROUP: RankGroup | None = None


def group() -> RankGroup:
    """The rank group of this process, started on first use (and again after a failure)."""
    global _GROUP
    from .sharded import SHARDS

    if _GROUP is not None and not _GROUP.alive():
        _GROUP.close()
        _GROUP = None
    if _GROUP is None:
        _GROUP = RankGroup(SHARDS)
        atexit.register(_GROUP.close)
    return _GROUP


# --- the rank process --------------------------------------------------------------------------


def _tensors(arrays: Mapping[str, np.ndarray], dtype: str) -> dict[str, Any]:
    import torch

    as_torch = getattr(torch, dtype)
    return {
        name: torch.from_numpy(np.array(v)).to(as_torch)  # a copy, 0-d arrays kept 0-d
        if v.dtype.kind == "f"
        else torch.from_numpy(np.array(v))
        for name, v in arrays.items()
    }


def _serve_cell(case: Case, arrays: Mapping[str, np.ndarray], dtype: str, rank: int, world: int):
    import torch

    from .sharded import torch_shard_call

    loss, leaves = torch_shard_call(case, _tensors(arrays, dtype), rank, world)
    torch.autograd.backward(loss, torch.ones_like(loss))
    grads = {}
    for name, leaf in leaves.items():
        grad = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad
        grads[name] = grad.detach().double().numpy()
    return loss.detach().double().numpy(), grads


def _serve(rank: int, world: int, master: int, address: tuple[str, int]) -> None:
    import torch.distributed as dist

    connection = Client(address, authkey=bytes.fromhex(os.environ["XENTROPY_RANK_KEY"]))
    connection.send(rank)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{master}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )
    try:
        while (message := connection.recv()) is not None:
            case, arrays, dtype = message
            try:
                connection.send(("ok", _serve_cell(case, arrays, dtype, rank, world)))
            except Exception as exc:
                text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                connection.send(("error", text))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank, _world, _master, _host, _port = sys.argv[1:6]
    _serve(int(_rank), int(_world), int(_master), (_host, int(_port)))
