r"""A language-model step with the fused ``linear_cross_entropy``, against the unfused pair.

A tiny next-token model (an embedding, one tanh mixing layer and a linear head over a
vocabulary of ``V`` tokens) takes one forward and backward pass twice on the same batch:

* fused: xentropy's ``F.linear_cross_entropy(input, linear_weight, target, ...)`` (PyTorch
  2.13's signature, from :mod:`xentropy.backends.torch.functional`, with xentropy's extras
  ``chunk_size``, ``softcap``, ``z_loss``), which never materialises the ``(N, V)`` logits: the
  vocabulary is processed ``chunk_size`` classes at a time, forward and backward;
* unfused: PyTorch's own ``torch.nn.functional.linear`` then ``cross_entropy`` (the soft-cap and
  the z-loss, when asked for, written out in torch ops).

Both compute, over the ``N`` tokens whose target is not ``ignore_index`` (the last position of
each sequence has no next token and is ignored),

.. math::

    z_i = s \tanh\!\big(W h_i / s\big), \qquad
    \ell = \frac{1}{N} \sum_i \big(\operatorname{lse}(z_i) - z_{i y_i}\big)
        + \lambda_z \operatorname{lse}(z_i)^2

(no cap without ``--softcap``; :math:`\lambda_z` is ``--z-loss``). The script prints the two
losses, the largest relative difference of the gradients of every parameter, and the memory
each pass takes. What is measured as memory:

* on CUDA, ``torch.cuda.max_memory_allocated()`` during the step minus the memory allocated
  before it: the peak of the step's own allocations (logits, their gradient, temporaries, the
  parameters' gradients);
* on CPU, the same peak from PyTorch's CPU allocator: ``torch.profiler`` with
  ``profile_memory=True`` records every allocation and free of the step, and the peak of their
  running sum is taken (the ``total_allocated`` the profiler reports agrees with it);
* on both, the bytes of the tensors autograd saves for the backward
  (``torch.autograd.graph.saved_tensors_hooks``), parameters and the batch excluded: the
  activations the step keeps alive between forward and backward.

It exits with 1 if the losses or gradients differ beyond ``--rtol``, or if the fused peak is
above ``--max-memory-ratio`` times the unfused peak. The memory target is for vocabularies
several times ``chunk_size``: with ``V <= chunk_size`` there is one chunk, and the two peaks are
about the same.

Run::

    python examples/lm_linear_cross_entropy.py [--vocab 8192] [--chunk-size 1024]
        [--softcap 30] [--z-loss 1e-4] [--device cuda]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as torch_F
from torch.profiler import ProfilerActivity, profile
from xentropy.backends.torch import functional as F
from xentropy.backends.torch import nn as xnn

IGNORE_INDEX = -100
MiB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="sequences")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--chunk-size", type=int, default=1024, help="classes per fused chunk")
    parser.add_argument("--softcap", type=float, default=None)
    parser.add_argument("--z-loss", type=float, default=0.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-5, help="loss and gradient tolerance")
    parser.add_argument("--max-memory-ratio", type=float, default=0.5, help="fused / unfused")
    return parser.parse_args(argv)


class TinyLM(xnn.Module):
    """Embedding, one tanh mixing layer, and a bias-free head whose weight is ``(V, D)``."""

    def __init__(self, vocab: int, d_model: int) -> None:
        super().__init__()
        self.embed = xnn.Embedding(vocab, d_model)
        self.mix = xnn.Linear(d_model, d_model)
        self.head = xnn.Linear(d_model, vocab, bias=False)
        xnn.init.normal_(self.head.weight, std=d_model**-0.5)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` tokens to ``(B * T, D)`` hidden states, as ``linear_cross_entropy`` takes."""
        return torch.tanh(self.mix(self.embed(tokens))).flatten(0, 1)


def fused_loss(
    model: TinyLM, tokens: torch.Tensor, target: torch.Tensor, args: argparse.Namespace
) -> torch.Tensor:
    return F.linear_cross_entropy(
        model.hidden(tokens),
        model.head.weight,
        target,
        ignore_index=IGNORE_INDEX,
        chunk_size=args.chunk_size,
        softcap=args.softcap,
        z_loss=args.z_loss,
    )


def unfused_loss(
    model: TinyLM, tokens: torch.Tensor, target: torch.Tensor, args: argparse.Namespace
) -> torch.Tensor:
    logits = torch_F.linear(model.hidden(tokens), model.head.weight)
    if args.softcap is not None:
        logits = args.softcap * torch.tanh(logits / args.softcap)
    loss = torch_F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    if args.z_loss:
        kept = target != IGNORE_INDEX
        lse = torch.logsumexp(logits, dim=-1)
        loss = loss + args.z_loss * (lse[kept] ** 2).mean()
    return loss


@contextmanager
def saved_activation_bytes(exclude: list[torch.Tensor]) -> Iterator[dict[int, int]]:
    """Bytes of the distinct storages autograd saves inside the block, ``exclude``'s left out."""
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in excluded:
            storages[pointer] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield storages


def _allocations(nodes) -> Iterator:
    for node in nodes:
        if type(node.extra_fields).__name__ == "_ExtraFields_Allocation":
            yield node
        yield from _allocations(node.children)


def peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Peak of the bytes allocated by ``step`` (above what was allocated before it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = _allocations(prof.profiler.kineto_results.experimental_event_tree())
    running = peak = 0
    for record in sorted(records, key=lambda r: r.start_time_ns):
        running += record.extra_fields.alloc_size
        peak = max(peak, running)
    return peak


def measure(loss_fn, model, tokens, target, args, device):
    """(loss, gradients by parameter name, peak bytes, saved activation bytes) of one step."""
    outputs: list = []

    def step() -> None:
        with saved_activation_bytes([*model.parameters(), tokens, target]) as saved:
            loss = loss_fn(model, tokens, target, args)
        loss.backward()
        outputs.append((loss.detach(), sum(saved.values())))

    step()  # warm-up: one-time allocations stay out of the measured step
    model.zero_grad(set_to_none=True)
    outputs.clear()
    peak = peak_bytes(step, device)
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    [(loss, saved)] = outputs
    return loss, grads, peak, saved


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = TinyLM(args.vocab, args.d_model).to(device)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len), device=device)
    # next-token targets; the last position of each sequence has none
    target = torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], IGNORE_INDEX)], dim=1)
    target = target.flatten()

    fused, fused_grads, fused_peak, fused_saved = measure(
        fused_loss, model, tokens, target, args, device
    )
    unfused, unfused_grads, unfused_peak, unfused_saved = measure(
        unfused_loss, model, tokens, target, args, device
    )

    loss_diff = abs(float(fused) - float(unfused)) / abs(float(unfused))
    grad_diff = max(
        float((fused_grads[n] - g).abs().max() / g.abs().max()) for n, g in unfused_grads.items()
    )
    ratio = fused_peak / unfused_peak
    print(
        f"tokens N={target.numel()} (ignored {int((target == IGNORE_INDEX).sum())}), "
        f"V={args.vocab}, D={args.d_model}, chunk_size={args.chunk_size}, "
        f"softcap={args.softcap}, z_loss={args.z_loss}, device={device.type}"
    )
    print(
        f"loss     fused {float(fused):.6f}  unfused {float(unfused):.6f}  rel diff {loss_diff:.1e}"
    )
    print(f"grads    largest rel diff (max |diff| / max |grad|, over parameters) {grad_diff:.1e}")
    print(
        f"peak     fused {fused_peak / MiB:.2f} MiB  unfused {unfused_peak / MiB:.2f} MiB"
        f"  ratio {ratio:.3f}"
    )
    print(
        f"saved    fused {fused_saved / MiB:.2f} MiB  unfused {unfused_saved / MiB:.2f} MiB"
        "  (activations saved for backward)"
    )
    ok = loss_diff <= args.rtol and grad_diff <= args.rtol and ratio <= args.max_memory_ratio
    print(
        f"lm_linear_cross_entropy: loss rel diff {loss_diff:.1e}, grad rel diff {grad_diff:.1e} "
        f"(tolerance {args.rtol:.0e}), peak memory ratio {ratio:.3f} (target <= "
        f"{args.max_memory_ratio}): {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
