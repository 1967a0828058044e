r"""The vocabulary-parallel columns: the sharded losses against the unsharded reference.

Two columns run :mod:`xentropy.backends.jax.sharded` and :mod:`xentropy.backends.torch.distributed`
on the cases of ``softmax_cross_entropy`` and ``linear_cross_entropy`` that they can spell (no
``sample_weight`` or ``where``), with the class axis (the vocabulary rows of the projection)
split over :data:`SHARDS` shards. With the cases' 5 classes (7 for the fused loss) the split is
uneven (:func:`xentropy._vocab_parallel.split_sizes`: 2, 2, 1 and 3, 3, 1), so both the padding
of a short last shard and the cross-shard sums are exercised. A cell's value is the loss every
shard returns and its gradient the shards' local gradients put back together; both are held to
the same float64 reference and tolerance as every other column.

* ``jax-sharded``: ``jax.shard_map`` over a mesh of host devices (the class axis padded at its
  end to ``3 L``, ``num_classes=V``), differentiated by ``jax.vjp`` through the map: first and
  second order (Hessian-vector products) and the targets' gradients. JAX fixes the number of
  host devices at its import; the command line asks for 4
  (``--xla_force_host_platform_device_count``, :func:`ask_for_host_devices`) where ``XLA_FLAGS``
  is unset, and a process whose JAX has fewer than 3 devices shows the column as not installed,
  with the reason.
* ``torch-distributed``: gloo ranks. The conformance process is rank 0; the other ranks are
  processes it starts on first use (:mod:`xentropy.conformance._rank`), which serve each cell:
  every rank builds the same inputs, takes its slice, runs the loss and its backward with a
  cotangent of ones, and rank 0 gathers the local gradients. Every collective has a timeout,
  so a rank that dies fails the cell instead of hanging the run. First order only (the torch
  function is a ``torch.autograd.Function`` with the analytic backward).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from .cases import Case
from .dialects import DIALECTS, PER_EXAMPLE, Dialect, Spelling, _has, _option

# 16-bit inputs take the same float32 path in both, so one 16-bit dtype stands for both (each
# cell of these columns costs a compilation or a round of messages: ~1 s)
DTYPES = ("bfloat16", "float32", "float64")
SHARDS = 3  # shards of the class axis in both columns: uneven splits of 5 and 7 classes
HOST_DEVICES = 4
HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"

# the options the sharded losses take, as the core names them (class_weight is an array)
OPTIONS = ("ignore_index", "label_smoothing", "softcap", "z_loss")


def ask_for_host_devices(count: int = HOST_DEVICES) -> None:
    """Ask XLA for ``count`` CPU devices in this process and the processes it starts, unless
    ``XLA_FLAGS`` is set (the user's flags are left as they are) or JAX is imported already
    (then it is too late)."""
    if "XLA_FLAGS" in os.environ or "jax" in sys.modules:
        return
    os.environ["XLA_FLAGS"] = f"{HOST_DEVICE_FLAG}={count}"


def _spellable(case: Case) -> bool:
    """Cases the sharded losses express with the core's exact semantics."""
    if case.variant not in ("softmax_cross_entropy", "linear_cross_entropy"):
        return False
    return not _has(case, *PER_EXAMPLE) and not _option(case, "return_lse")


def _options(case: Case, a: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: case.options[name] for name in OPTIONS if name in case.options}
    out.update({name: a[name] for name in OPTIONS if name in a})
    return {name: value for name, value in out.items() if value is not None}


def _width(num_classes: int) -> int:
    return -(-num_classes // SHARDS)


# --- JAX: shard_map over host devices --------------------------------------------------------


def _jax_pad(x: Any, axis: int, width: int, value: float = 0.0) -> Any:
    import jax.numpy as jnp

    missing = SHARDS * width - x.shape[axis]
    if missing == 0:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, missing)
    return jnp.pad(x, pad, constant_values=value)


def _mesh() -> Any:
    import jax

    return jax.sharding.Mesh(np.array(jax.devices("cpu")[:SHARDS]), ("vocab",))


def _jax_softmax(case: Case) -> Spelling:
    axis = int(_option(case, "axis", -1))
    reduction = case.reduction
    dense = case.target_kind == "dense"

    def call(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
        import jax
        import jax.numpy as jnp
        from jax.sharding import PartitionSpec as P

        logits = jnp.moveaxis(a["logits"], axis, -1)
        targets = jnp.moveaxis(a["targets"], axis, -1) if dense else a["targets"]
        classes = logits.shape[-1]
        width = _width(classes)
        logits = _jax_pad(logits, -1, width)
        if dense:
            targets = _jax_pad(targets, -1, width)
        lead = (None,) * (logits.ndim - 1)
        sharded = P(*lead, "vocab")
        weight = a.get("class_weight")
        options = _options(case, a)

        def loss(z: Any, t: Any, w: Any) -> Any:
            return api.vocab_parallel_cross_entropy(
                z, t, axis_name="vocab", num_classes=classes, class_weight=w,
                reduction=reduction, **options,
            )  # fmt: skip

        mapped = jax.shard_map(
            loss,
            mesh=_mesh(),
            in_specs=(sharded, sharded if dense else P(), P()),
            out_specs=P(),
        )
        return jax.jit(mapped)(logits, targets, weight)  # eager shard_map: one op at a time

    return Spelling(call, native=False)


def _jax_linear(case: Case) -> Spelling:
    reduction = case.reduction
    dense = case.target_kind == "dense"
    chunk = _option(case, "chunk_size")

    def call(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
        import jax
        from jax.sharding import PartitionSpec as P

        vocabulary = a["weight"].shape[0]
        width = _width(vocabulary)
        weight = _jax_pad(a["weight"], 0, width)
        bias = a.get("bias")
        bias = None if bias is None else _jax_pad(bias, 0, width)
        targets = _jax_pad(a["targets"], -1, width) if dense else a["targets"]
        lead = (None,) * (a["hidden"].ndim - 1)
        options = _options(case, a)

        def loss(h: Any, w: Any, t: Any, b: Any, cw: Any) -> Any:
            return api.vocab_parallel_linear_cross_entropy(
                h, w, t, axis_name="vocab", bias=b, num_classes=vocabulary, class_weight=cw,
                chunk_size=chunk, reduction=reduction, **options,
            )  # fmt: skip

        mapped = jax.shard_map(
            loss,
            mesh=_mesh(),
            in_specs=(P(), P("vocab", None), P(*lead, "vocab") if dense else P(), P("vocab"), P()),
            out_specs=P(),
        )
        return jax.jit(mapped)(a["hidden"], weight, targets, bias, a.get("class_weight"))

    return Spelling(call, native=False)


def _jax_spell(case: Case) -> Spelling | None:
    if not _spellable(case):
        return None
    if case.variant == "linear_cross_entropy":
        return _jax_linear(case)
    return _jax_softmax(case)


def host_device_problem(jax: Any) -> str | None:
    """Why JAX in this process cannot hold the mesh (None: it can)."""
    count = len(jax.devices("cpu"))
    if count >= SHARDS:
        return None
    return (
        f"not installed (JAX has {count} CPU device(s), the mesh needs {SHARDS}: set "
        f"XLA_FLAGS={HOST_DEVICE_FLAG}={HOST_DEVICES} before JAX is imported)"
    )


# --- PyTorch: gloo ranks ---------------------------------------------------------------------


def torch_shard_call(
    case: Case, a: Mapping[str, Any], rank: int, world: int
) -> tuple[Any, dict[str, Any]]:
    """This rank's part of ``case`` on the full inputs ``a`` (torch tensors): the loss and the
    local slices it was computed from (leaves whose ``.grad`` the caller reads)."""
    from xentropy.backends.torch import distributed

    from xentropy._vocab_parallel import split_sizes

    options = _options(case, a)
    reduction = case.reduction
    dense = case.target_kind == "dense"
    if case.variant == "linear_cross_entropy":
        sizes = split_sizes(a["weight"].shape[0], world)
        start = sum(sizes[:rank])
        local = {"weight": a["weight"][start : start + sizes[rank]]}
        if "bias" in a:
            local["bias"] = a["bias"][start : start + sizes[rank]]
        local = {k: v.detach().clone().requires_grad_(True) for k, v in local.items()}
        hidden = a["hidden"].detach().clone().requires_grad_(True)
        targets = a["targets"][..., start : start + sizes[rank]] if dense else a["targets"]
        loss = distributed.vocab_parallel_linear_cross_entropy(
            hidden, local["weight"], targets, bias=local.get("bias"),
            class_weight=a.get("class_weight"), reduction=reduction,
            chunk_size=_option(case, "chunk_size"), **options,
        )  # fmt: skip
        return loss, {"hidden": hidden, **local}
    axis = int(_option(case, "axis", -1))
    logits = a["logits"].movedim(axis, -1)
    sizes = split_sizes(logits.shape[-1], world)
    start = sum(sizes[:rank])
    local_logits = logits[..., start : start + sizes[rank]].detach().clone().requires_grad_(True)
    targets = a["targets"]
    if dense:
        targets = targets.movedim(axis, -1)[..., start : start + sizes[rank]]
    loss = distributed.vocab_parallel_cross_entropy(
        local_logits, targets, weight=a.get("class_weight"), reduction=reduction, **options
    )
    return loss, {"logits": local_logits}


def _torch_spell(case: Case) -> Spelling | None:
    if not _spellable(case) or case.reduction not in ("none", "sum", "mean"):  # F.cross_entropy's
        return None
    return Spelling(_torch_unreachable, native=False)


def _torch_unreachable(api: Any, a: Mapping[str, Any], dtype: str) -> Any:
    raise RuntimeError("torch-distributed cells are evaluated by their ranks, not spelled")


# --- registration ----------------------------------------------------------------------------

SHARDED_DIALECTS: dict[str, Dialect] = {
    "jax-sharded": Dialect("jax-sharded", api=lambda m: m, native=lambda: None, spell=_jax_spell),
    "torch-distributed": Dialect(
        "torch-distributed", api=lambda m: m, native=lambda: None, spell=_torch_spell
    ),
}
DIALECTS.update(SHARDED_DIALECTS)

FIRST_ORDER_ONLY = (
    "the distributed loss is a torch.autograd.Function with the analytic first-order backward "
    "(no target or second-order derivatives)"
)


__all__ = [
    "SHARDS",
    "ask_for_host_devices",
    "host_device_problem",
    "torch_shard_call",
]
