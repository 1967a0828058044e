"""NumPy's kernels of the core's hot loops, a cache-sized block of rows at a time.

NumPy is eager: each operation of the standard spelling is a pass over whole arrays, which at
several MiB streams them through memory, and each fresh array of that size pays its page faults.
These kernels run the same element-wise operations (the same values, to rounding, and the same
handling of non-finite entries) over blocks that stay in the L2 cache, into arrays the caller
owns. :mod:`._native` calls them for NumPy arrays outside the differentiable spelling; NumPy is
imported only then (it is not a dependency of the core).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# NumPy's kernels below work through their arrays a block of about this many bytes (per array)
# at a time: every pass then reads and writes blocks that stay in the cache, where a pass over a
# whole array of several MiB streams it through memory (the cell sigmoid 1048576 spends 1.3 of
# native's time in that way; 0.9 with the blocks). Each block costs a few NumPy calls, so a
# block far below the L2 cache pays in call overhead: with a 1 MiB L2, 256 KiB blocks took
# 1.10 / 1.13 / 0.49 of native's forward+backward at sparse 4096x32000 / dense 8192x1000 /
# sigmoid 1048576, 1 MiB blocks 1.03 / 0.85 / 0.43 and 2 MiB 1.01 / 0.86 / 0.57.
BLOCK_BYTES = 1 << 20
# Up to this many classes a row maximum is taken column by column (C - 1 strided passes):
# NumPy's reduction over a short last axis pays a loop call per row (3.4 ms against 0.7 at
# 65536x10), and its row sum is an einsum (0.25 ms against 1.0), whose float32 accumulation
# stays within an ulp or so of the pairwise sum at these lengths.
COLUMN_MAX_CLASSES = 16
EINSUM_SUM_CLASSES = 64


def block_starts(total: int, item_bytes: int) -> tuple[int, range]:
    """The block length (in items of ``item_bytes``) and the start of each block."""
    step = max(1, BLOCK_BYTES // max(1, item_bytes))
    return step, range(0, total, step)


def row_max(z: Any, out: Any) -> Any:
    """``max(z, axis=-1, out=out)`` of a 2-d block (NaN-propagating, as ``max``)."""
    if z.shape[-1] > COLUMN_MAX_CLASSES:
        return np.max(z, axis=-1, out=out)
    np.copyto(out, z[:, 0])
    for c in range(1, z.shape[-1]):
        np.maximum(out, z[:, c], out=out)
    return out


def row_sum(e: Any, out: Any) -> Any:
    """``sum(e, axis=-1, out=out)`` of a 2-d block."""
    if e.shape[-1] > EINSUM_SUM_CLASSES:
        return np.sum(e, axis=-1, out=out)
    return np.einsum("ij->i", e, out=out)


def log_sum_exp_and_exps(
    z: Any, weights: Any | None, *, keep: bool
) -> tuple[Any, Any, Any | None, Any | None]:
    r""":func:`_log_sum_exp_and_exps` for NumPy, the same element-wise operations a block of rows
    at a time: the row maximum, :math:`z - m` (into ``exps``, or a block scratch when not
    ``keep``), the weighted sum :math:`-\sum_c a_c (z_c - m)` from it, its ``exp`` in place and
    the row sum all meet the block in the cache, where the standard spelling takes five passes
    over the whole ``(N, C)`` arrays through memory (and a second ``(N, C)`` array when the
    exponentials are not kept).
    """
    num_classes = z.shape[-1]
    lead = tuple(z.shape[:-1])
    z2 = z.reshape(-1, num_classes)
    rows = z2.shape[0]
    big = np.finfo(z.dtype).max
    m = np.empty(rows, dtype=z.dtype)
    shift = np.empty(rows, dtype=z.dtype)
    sums = np.empty(rows, dtype=z.dtype)
    step, starts = block_starts(rows, num_classes * z.dtype.itemsize)
    exps = np.empty(z.shape, dtype=z.dtype) if keep else None
    e2 = (
        exps.reshape(rows, num_classes)
        if exps is not None
        else np.empty((min(step, rows), num_classes), dtype=z.dtype)
    )
    a2 = None
    weighted = None
    if weights is not None:
        a2 = np.broadcast_to(weights, z.shape).reshape(rows, num_classes)
        weighted = np.empty(rows, dtype=np.result_type(weights, z))
    for i in starts:
        j = min(i + step, rows)
        zb = z2[i:j]
        mb = row_max(zb, m[i:j])
        # finite, so that NumPy meets no inf - inf at a +inf logit (the row is NaN anyway)
        sb = np.minimum(np.maximum(mb, -big, out=shift[i:j]), big, out=shift[i:j])
        eb = e2[i:j] if exps is not None else e2[: j - i]
        np.subtract(zb, sb[:, None], out=eb)
        if a2 is not None and weighted is not None:
            weighted[i:j] = weighted_sum_in_place(a2[i:j], eb)
        np.exp(eb, out=eb)
        row_sum(eb, sums[i:j])
    s = np.log(sums, out=sums)
    # m - max(m, -big): 0 for a finite maximum, -inf for -inf (log 0 already) and NaN for +inf
    s += m - np.maximum(m, -big)
    if weighted is not None:
        np.negative(weighted, out=weighted)
        weighted = weighted.reshape(lead)
    return shift.reshape(lead), s.reshape(lead), exps, weighted


def subtract_product(x: Any, a: Any, b: Any) -> Any:
    """``x -= a * b`` by blocks of rows, the product in one cache-sized scratch instead of a
    fresh array of ``x``'s size (at 8192x1000 in float32 its page faults alone take 1.7 ms)."""
    width = x.shape[-1]
    x2 = x.reshape(-1, width)
    a2 = np.broadcast_to(a, x.shape).reshape(x2.shape)
    b2 = np.broadcast_to(b, x.shape).reshape(x2.shape)
    rows = x2.shape[0]
    step, starts = block_starts(rows, width * x.dtype.itemsize)
    product = np.empty((min(step, rows), width), dtype=np.result_type(a, b))
    for i in starts:
        j = min(i + step, rows)
        pb = np.multiply(a2[i:j], b2[i:j], out=product[: j - i])
        x2[i:j] -= pb
    return x


def sigmoid_cross_entropy(x: Any, t: Any, *, summed: bool = False) -> tuple[Any, tuple[Any, Any]]:
    """The losses (their sum if ``summed``), ``exp(-|x|)`` and ``x >= 0``, a cache-sized block at
    a time (see ``BLOCK_BYTES``); :math:`x (H - t)` goes through one block scratch.

    The sum is pairwise within each block, then over the block sums: an error of the order of
    NumPy's pairwise ``sum`` of the whole array.
    """
    exps = np.empty(x.shape, dtype=x.dtype)
    positive = np.empty(x.shape, dtype=bool)
    xs, ts = x.reshape(-1), t.reshape(-1)
    es, ps = exps.reshape(-1), positive.reshape(-1)
    step, starts = block_starts(xs.size, x.dtype.itemsize)
    scratch = np.empty(min(step, xs.size), dtype=x.dtype)
    loss = np.empty(len(starts) if summed else x.shape, dtype=x.dtype)
    losses = np.empty(min(step, xs.size), dtype=x.dtype) if summed else loss.reshape(-1)
    bits = np.dtype(f"u{x.dtype.itemsize}")
    sign = bits.type(1 << (8 * x.dtype.itemsize - 1))
    for k, i in enumerate(starts):
        j = min(i + step, xs.size)
        xb, eb, cb = xs[i:j], es[i:j], scratch[: j - i]
        lb = losses[: j - i] if summed else losses[i:j]
        np.bitwise_or(xb.view(bits), sign, out=eb.view(bits))  # -|x|, bit for bit, in one pass
        np.exp(eb, out=eb)
        np.log1p(eb, out=lb)
        np.subtract(np.greater_equal(xb, 0, out=ps[i:j]), ts[i:j], out=cb)  # H(x) - t
        cb *= xb
        lb += cb
        if summed:
            loss[k] = np.sum(lb)
    return (np.sum(loss) if summed else loss), (exps, positive)


def sigmoid_gradient(exps: Any, positive: Any, t: Any | None, scale: Any | None) -> Any:
    r""":math:`(\max(e, [x \ge 0]) / (1 + e) - t)\,s` in ``exps``: the numerator is ``1`` or
    ``e`` exactly (:math:`e \le 1`), by a maximum rather than a masked copy (``copyto`` with a
    random mask takes 5 ms at 1048576 elements, the maximum 0.4)."""
    es, ps = exps.reshape(-1), positive.reshape(-1)
    ts = None if t is None else t.reshape(-1)
    step, starts = block_starts(es.size, exps.dtype.itemsize)
    denominator = np.empty(min(step, es.size), dtype=exps.dtype)
    for i in starts:
        j = min(i + step, es.size)
        eb, db = es[i:j], denominator[: j - i]
        np.add(eb, 1.0, out=db)
        np.maximum(eb, ps[i:j], out=eb)
        np.divide(eb, db, out=eb)
        if ts is not None:
            eb -= ts[i:j]
        if scale is not None:
            eb *= scale
    return exps


def weighted_sum_in_place(a: Any, d: Any) -> Any:
    r""":math:`\sum_c a_c d_c` over the last axis with :math:`0 \cdot \infty = 0`, for ``d`` a fresh
    array the caller gives up: one ``einsum`` pass without a temporary; only a row where
    ``0 * inf`` made NaN (or a NaN input, which stays NaN) takes the masked product, NumPy being
    eager (four passes over ``(N, C)`` less)."""
    total = np.einsum("...c,...c->...", a, d)
    redo = np.isnan(total)
    if redo.any():
        d, a = d[redo], np.broadcast_to(a, total.shape + a.shape[-1:])[redo]
        np.copyto(d, 0.0, where=a == 0)
        d *= a
        total[redo] = np.sum(d, axis=-1)
    return total
