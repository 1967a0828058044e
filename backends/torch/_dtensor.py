r"""``cross_entropy`` of a DTensor sharded on its class dimension, computed in parallel.

What ``torch.distributed.tensor.parallel.loss_parallel()`` does for ``F.cross_entropy``, with the
core's numerics (:mod:`.distributed`): the logits stay where they are (``Shard(1)``, or
``Shard(-1)`` of a 2-D input, which DTensor itself names ``Shard(1)``; no redistribution to
``Replicate``), each rank computes on its local slice, and the log-sum-exp is combined by
all-reduces of ``(N,)`` vectors on the mesh dimension that shards the classes. What comes back
is what ``loss_parallel()`` + ``F.cross_entropy`` return: a DTensor with every placement
``Replicate()`` (a scalar, or ``(N, ...)`` for ``reduction="none"``), and a gradient of the
input with the input's own placements (``Shard(1)``). No ``loss_parallel()`` context is needed.

The split of the classes is DTensor's (``torch.chunk``'s ceiling rule, uneven shards
included). ``target`` is a plain tensor of global class indices (the same on every rank) or a
DTensor with every placement ``Replicate()``; class probabilities are a DTensor placed as the
input. ``weight`` is a plain ``(C,)`` tensor, a replicated DTensor, or a DTensor ``Shard(0)`` on
the same mesh dimension as the classes (each rank's slice); ``loss_parallel`` accepts only a
replicated one. Beyond it: label smoothing (``loss_parallel`` fails on it in PyTorch 2.13),
``softcap`` and ``z_loss``. Every mesh dimension but the one sharding the classes must be
``Replicate()``.
"""

from __future__ import annotations

import sys
from typing import Any

from xentropy._vocab_parallel import split_sizes

from .distributed import vocab_parallel_cross_entropy

__all__ = ["cross_entropy", "is_class_sharded"]


def _dtensor_module() -> Any | None:
    """``torch.distributed.tensor`` if something imported it (no DTensor exists otherwise)."""
    return sys.modules.get("torch.distributed.tensor")


def _class_dim(x: Any) -> int:
    return 0 if x.ndim == 1 else 1


def _class_mesh_dim(x: Any) -> int | None:
    """The mesh dimension whose placement shards ``x``'s class dimension, or None."""
    module = _dtensor_module()
    if module is None or not isinstance(x, module.DTensor):
        return None
    dim = _class_dim(x)
    for mesh_dim, placement in enumerate(x.placements):
        if placement.is_shard() and placement.dim % x.ndim == dim:
            return mesh_dim
    return None


def is_class_sharded(input: Any) -> bool:
    """Whether ``input`` is a DTensor sharded on its class dimension (1, or 0 for ``(C,)``)."""
    return _class_mesh_dim(input) is not None


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    validate: bool = True,
) -> Any:
    r"""``F.cross_entropy`` of a DTensor ``input`` sharded on its classes (module docstring).

    .. math::

        \ell_i = -\sum_c w_c \Big((1-\varepsilon)\, t_{ic} + \frac{\varepsilon}{C}\Big)
        \log \operatorname{softmax}(x_i)_c + \lambda_z\, w_{y_i} \operatorname{lse}(x_i)^2

    Returns:
        A DTensor, ``Replicate()`` on every mesh dimension: the loss, the same on every rank.
    """
    module = _dtensor_module()
    mesh_dim = _class_mesh_dim(input)
    if module is None or mesh_dim is None:
        raise ValueError("input must be a DTensor sharded on its class dimension")
    mesh, placements = input.device_mesh, input.placements
    others = [p for d, p in enumerate(placements) if d != mesh_dim and not p.is_replicate()]
    if others:
        raise NotImplementedError(
            f"cross_entropy of a DTensor sharded on its classes needs every other mesh dimension "
            f"Replicate(); got placements {tuple(placements)} (redistribute the other dimensions)"
        )
    if return_lse:
        raise NotImplementedError(
            "return_lse is not available for a DTensor sharded on its classes"
        )
    dim = _class_dim(input)
    logits = input.to_local()
    probabilities = tuple(target.shape) == tuple(input.shape)
    t = _local(target, module, input, mesh_dim, sharded=probabilities)
    if dim != input.ndim - 1:
        logits = logits.movedim(dim, -1)
        if probabilities:
            t = t.movedim(dim, -1)
    loss = vocab_parallel_cross_entropy(
        logits,
        t,
        group=mesh.get_group(mesh_dim),
        weight=_local(weight, module, input, mesh_dim, sharded=None),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        z_loss=z_loss,
        softcap=softcap,
        split=split_sizes(input.shape[dim], mesh.size(mesh_dim)),
        validate=validate,
    )
    replicated = [module.Replicate()] * mesh.ndim
    return module.DTensor.from_local(loss, mesh, replicated, run_check=False)


def _local(x: Any, module: Any, input: Any, mesh_dim: int, *, sharded: bool | None) -> Any:
    """The local tensor of ``target`` / ``weight``: a plain tensor as it is; a DTensor placed as
    ``sharded`` says (True: as ``input``; False: replicated; None: either, for a weight)."""
    if x is None or not isinstance(x, module.DTensor):
        return x
    if x.device_mesh != input.device_mesh:
        raise ValueError("target and weight DTensors must be on the input's device mesh")
    replicated = all(p.is_replicate() for p in x.placements)
    like_input = sharded is not False and (
        tuple(x.placements) == tuple(input.placements)
        if sharded
        else x.placements[mesh_dim] == module.Shard(0)
        and all(p.is_replicate() for d, p in enumerate(x.placements) if d != mesh_dim)
    )
    if not (like_input or (replicated and not sharded)):
        raise ValueError(
            f"a DTensor target must be Replicate() on every mesh dimension (class probabilities: "
            f"placed as the input, {tuple(input.placements)}), and a DTensor weight Replicate() or "
            f"Shard(0) on the classes' mesh dimension; got placements {tuple(x.placements)}"
        )
    return x.to_local()
