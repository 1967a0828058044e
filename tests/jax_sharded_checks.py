"""The checks of ``test_jax_sharded.py``, run in a subprocess with several JAX host devices.

JAX fixes its device count when it starts, so ``test_jax_sharded.py`` runs this file as a script
with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` and float64 enabled; it prints one
JSON object per check (``{"name", "ok", "detail"}``). :data:`CHECKS` (importable without JAX)
names them, so that the test has one case per check.

Every sharded loss runs under ``jax.jit`` inside ``jax.shard_map`` over the first ``k`` host
devices, with the class axis padded at its end to ``k * ceil(V / k)`` (logits padded with a huge
value, weight rows with large entries, probability labels with 0.5: padding that leaked into the
loss would show) and ``num_classes=V``. It is compared with the unsharded dialect function (the
same dtype and ``tolerance(dtype)`` of the conformance table; its gradient, JVP and Hessian) and,
in float64, with the independent NumPy reference of ``tests/reference.py``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from typing import Any

V = 10  # classes: uneven over 3 (4, 4, 2) and 4 (3, 3, 3, 1) devices
N = 6
D = 5
WORLD_SIZES = (1, 2, 3, 4)
DTYPES = ("float64", "float32", "bfloat16")
# every world size in float64; float32 and bfloat16 (computed in float32) on uneven splits
WORLD_SIZES_OF = {"float64": WORLD_SIZES, "float32": (3,), "bfloat16": (4,)}
# the world sizes that also check reduction="sum" and the VJP of the per-example losses (the
# others: the per-example losses, the mean and its gradients)
FULL_WORLD_SIZES = (3, 4)

# option sets; "weight": the class weights given globally (V,) or as each device's block (L,)
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "global_weight_ignore": {"weight": "global", "ignore_index": -100},
    "local_weight_smoothing": {"weight": "local", "ignore_index": -100, "label_smoothing": 0.1},
    "all": {
        "weight": "global", "ignore_index": -100, "label_smoothing": 0.2, "z_loss": 0.02,
        "softcap": 4.0,
    },
    "probabilities": {
        "probabilities": True, "weight": "local", "label_smoothing": 0.1, "z_loss": 0.01,
        "softcap": 3.0,
    },
}  # fmt: skip
KINDS = ("plain", "linear")


# the option sets of the other world sizes: these three hold every option (the first two are
# parts of "all")
LIGHT_OPTIONS = ("local_weight_smoothing", "all", "probabilities")


def options_of(k: int) -> tuple[str, ...]:
    return tuple(OPTIONS) if k in FULL_WORLD_SIZES else LIGHT_OPTIONS


def _value_checks() -> list[str]:
    names = []
    for kind in KINDS:
        for dtype in DTYPES:
            for k in WORLD_SIZES_OF[dtype]:
                names.extend(f"{kind}-{option}-{dtype}-k{k}" for option in options_of(k))
    return names


CHECKS: tuple[str, ...] = (
    *_value_checks(),
    "linear-vjp-none-k3",
    "linear-fused-single-device-float64",
    "plain-empty-shard-float64",
    "plain-jvp-hessian-float64",
    "linear-jvp-hessian-float64",
    "plain-traced-label-smoothing-float64",
    "plain-bad-label-nan-every-device",
    "linear-bad-label-nan-every-device",
    "plain-shape-error",
    "num-classes-error",
    "plain-collectives-hlo",
    "linear-collectives-hlo",
    "dialect-hlo-no-all-gather",
)


_START = time.perf_counter()


def _report(name: str, ok: bool, detail: str = "") -> None:
    seconds = round(time.perf_counter() - _START, 1)
    print(json.dumps({"name": name, "ok": bool(ok), "detail": detail, "at_s": seconds}), flush=True)


def main() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import reference
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P
    from xentropy.backends import jax as xjax
    from xentropy.backends.jax.sharded import (
        vocab_parallel_cross_entropy,
        vocab_parallel_linear_cross_entropy,
    )
    from xentropy.conformance.tolerances import tolerance

    import xentropy

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    dtypes = {"float64": jnp.float64, "float32": jnp.float32, "bfloat16": jnp.bfloat16}

    def mesh_of(k: int) -> Any:
        return jax.make_mesh((k,), ("v",), axis_types=(AxisType.Auto,), devices=jax.devices()[:k])

    def block(k: int, vocab: int = V) -> int:
        return -(-vocab // k)

    def pad_last(x: Any, k: int, value: float, vocab: int = V) -> Any:
        extra = block(k, vocab) * k - vocab
        return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)], constant_values=value)

    def pad_rows(w: Any, k: int, value: float) -> Any:
        extra = block(k) * k - V
        return jnp.pad(w, [(0, extra)] + [(0, 0)] * (w.ndim - 1), constant_values=value)

    def close(actual: Any, expected: Any, dtype: str) -> tuple[bool, str]:
        rtol, atol = tolerance(dtype)
        a = np.asarray(jnp.asarray(actual, jnp.float64))
        e = np.asarray(jnp.asarray(expected, jnp.float64))
        if a.shape != e.shape:
            return False, f"shape {a.shape} != {e.shape}"
        ok = bool(np.all((np.abs(a - e) <= atol + rtol * np.abs(e)) | (np.isnan(a) & np.isnan(e))))
        return ok, f"max |a - e| = {np.nanmax(np.abs(a - e), initial=0.0):.3g}"

    # --- data -------------------------------------------------------------------------------
    def representable(x: Any) -> np.ndarray:
        """``x`` rounded to bfloat16: every dtype under test holds the same inputs, so that
        the float64 results are the reference of each (the conformance rule)."""
        return np.asarray(jnp.asarray(x, jnp.bfloat16).astype(jnp.float64))

    logits64 = rng.normal(size=(N, V)) * 3.0
    hidden64 = rng.normal(size=(N, D))
    weight64 = rng.normal(size=(V, D))
    bias64 = rng.normal(size=(V,))
    labels = rng.integers(0, V, size=(N,))
    labels[2] = -100
    labels_kept = np.where(labels < 0, 0, labels)
    probabilities = rng.dirichlet(np.ones(V), size=N)
    class_weight = rng.uniform(0.5, 2.0, size=V)
    cotangent = rng.normal(size=(N,))
    logits64, hidden64, weight64, bias64, probabilities, class_weight, cotangent = (
        representable(a)
        for a in (logits64, hidden64, weight64, bias64, probabilities, class_weight, cotangent)
    )

    def core_options(option: dict[str, Any]) -> dict[str, Any]:
        keys = ("ignore_index", "label_smoothing", "z_loss", "softcap")
        return {key: option[key] for key in keys if key in option}

    def targets_of(option: dict[str, Any]) -> np.ndarray:
        if option.get("probabilities"):
            return probabilities
        return labels if "ignore_index" in option else labels_kept

    # --- loss, gradients and the per-example VJP, sharded and not ------------------------------
    def sharded_plain(k: int, option: dict[str, Any]):
        mesh, local_weight = mesh_of(k), option.get("weight") == "local"
        probs = bool(option.get("probabilities"))

        def on_device(x, t, w, reduction):
            return vocab_parallel_cross_entropy(
                x, t, axis_name="v", num_classes=V, class_weight=w, reduction=reduction,
                **core_options(option),
            )  # fmt: skip

        def loss(x, t, w, reduction):
            x = pad_last(x, k, 1e4)
            if probs:
                t = pad_last(t, k, 0.5)
            if local_weight:
                w = pad_last(w, k, 7.0)
            specs = (P(None, "v"), P(None, "v") if probs else P(), P("v") if local_weight else P())
            mapped = jax.shard_map(
                functools.partial(on_device, reduction=reduction),
                mesh=mesh, in_specs=specs, out_specs=P(),
            )  # fmt: skip
            return mapped(x, t, w)

        return loss

    def unsharded_plain(option: dict[str, Any]):
        def loss(x, t, w, reduction):
            return xentropy.softmax_cross_entropy(
                x, t, class_weight=w, reduction=reduction, **core_options(option)
            )

        return loss

    def sharded_linear(k: int, option: dict[str, Any]):
        mesh, local_weight = mesh_of(k), option.get("weight") == "local"
        probs = bool(option.get("probabilities"))

        def on_device(h, w, b, t, cw, reduction):
            return vocab_parallel_linear_cross_entropy(
                h, w, t, axis_name="v", bias=b, num_classes=V, class_weight=cw,
                reduction=reduction, chunk_size=4, **core_options(option),
            )  # fmt: skip

        def loss(h, w, b, t, cw, reduction):
            w, b = pad_rows(w, k, 50.0), pad_last(b, k, 1e4)
            if probs:
                t = pad_last(t, k, 0.5)
            if local_weight:
                cw = pad_last(cw, k, 7.0)
            specs = (
                P(), P("v", None), P("v"), P(None, "v") if probs else P(),
                P("v") if local_weight else P(),
            )  # fmt: skip
            mapped = jax.shard_map(
                functools.partial(on_device, reduction=reduction),
                mesh=mesh, in_specs=specs, out_specs=P(),
            )  # fmt: skip
            return mapped(h, w, b, t, cw)

        return loss

    def unsharded_linear(option: dict[str, Any]):
        """The single-device softmax cross entropy of the whole logits ``h W^T + b`` (the fused
        single-device op is compared once, in ``linear-fused-single-device-float64``)."""

        def loss(h, w, b, t, cw, reduction):
            logits = h @ w.T + b
            return xentropy.softmax_cross_entropy(
                logits, t, class_weight=cw, reduction=reduction, **core_options(option)
            )

        return loss

    def fused_linear(option: dict[str, Any]):
        def loss(h, w, b, t, cw, reduction):
            return xjax.linear_cross_entropy(
                h, w, t, bias=b, class_weight=cw, reduction=reduction, chunk_size=4,
                **core_options(option),
            )  # fmt: skip

        return loss

    def results(
        cases: list[tuple[Any, tuple[Any, ...], tuple[int, ...]]],
        *,
        full: bool = True,
        vjp: bool = True,
    ) -> list[Any]:
        """For each ``(loss_fn, arrays, grad_positions)``: ``(none, mean, grads of mean)`` and
        with ``full`` ``(sum, VJP of none)`` (the VJP unless not ``vjp``), all in one jitted
        function (one compilation for all the option sets)."""

        def one(loss_fn, arrays, grad_positions):
            def with_reduction(reduction):
                return lambda *a: loss_fn(*a, reduction)

            out = [with_reduction(r)(*arrays) for r in ("none", "mean")]
            grads = jax.grad(with_reduction("mean"), argnums=grad_positions)(*arrays)
            if not full:
                return (*out, grads)
            total = with_reduction("sum")(*arrays)
            if not vjp:
                return (*out, grads, total)
            _, pullback = jax.vjp(
                lambda *d: with_reduction("none")(*_put(arrays, grad_positions, d)),
                *(arrays[p] for p in grad_positions),
            )
            per_example = pullback(jnp.asarray(cotangent, out[0].dtype))
            return (*out, grads, total, per_example)

        def run(all_arrays):
            return [
                one(fn, arrays, positions)
                for (fn, _, positions), arrays in zip(cases, all_arrays, strict=True)
            ]

        return jax.jit(run)([arrays for _, arrays, _ in cases])

    def _put(arrays, positions, values):
        arrays = list(arrays)
        for p, v in zip(positions, values, strict=True):
            arrays[p] = v
        return tuple(arrays)

    def numpy_plain(option: dict[str, Any], x64: np.ndarray, reduction: str) -> np.ndarray:
        w = class_weight if "weight" in option else None
        return reference.softmax_cross_entropy(
            x64, targets_of(option), class_weight=w, reduction=reduction, **core_options(option)
        )

    def compare(name: str, sharded: Any, unsharded: Any, dtype: str, numpy_loss=None) -> None:
        problems, notes = [], []
        labels_ = ("none", "mean", "grad", "sum", "vjp")
        for label, a, e in zip(labels_, sharded, unsharded, strict=False):
            for i, (aa, ee) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(e), strict=True)):
                ok, note = close(aa, ee, dtype)
                notes.append(f"{label}[{i}] {note}")
                if not ok:
                    problems.append(f"{label}[{i}] {note}")
        if numpy_loss is not None:
            for label, a, e in zip(labels_[:2], sharded[:2], numpy_loss, strict=True):
                ok, note = close(a, e, dtype)
                if not ok:
                    problems.append(f"numpy {label} {note}")
        _report(name, not problems, "; ".join(problems or notes[:3]))

    def inputs(kind: str, option: dict[str, Any], dtype: str):
        """``(arrays, grad_positions, NumPy losses or None)`` of one option set."""
        jdtype = dtypes[dtype]
        t = jnp.asarray(targets_of(option))
        if option.get("probabilities"):
            t = t.astype(jdtype)
        cw = jnp.asarray(class_weight, jdtype) if "weight" in option else None
        if kind == "plain":
            x = jnp.asarray(logits64, jdtype)
            rounded = np.asarray(x.astype(jnp.float64))
            numpy_loss = [numpy_plain(option, rounded, r) for r in ("none", "mean")]
            return (x, t, cw), (0,), numpy_loss
        arrays = (
            jnp.asarray(hidden64, jdtype), jnp.asarray(weight64, jdtype),
            jnp.asarray(bias64, jdtype), t, cw,
        )  # fmt: skip
        return arrays, (0, 1, 2), None

    for kind in KINDS if not os.environ.get("SKIP_VALUES") else ():
        plain_of = unsharded_plain if kind == "plain" else unsharded_linear
        make = sharded_plain if kind == "plain" else sharded_linear
        expected: dict[str, Any] = {}
        for dtype in DTYPES:
            prepared = {name: inputs(kind, option, dtype) for name, option in OPTIONS.items()}
            if dtype != "bfloat16":  # bfloat16 is compared with float64 on the same inputs
                expected[dtype] = results(
                    [(plain_of(OPTIONS[n]), a, pos) for n, (a, pos, _) in prepared.items()],
                    vjp=kind == "plain",
                )
            reference_dtype = "float64" if dtype == "bfloat16" else dtype
            for k in WORLD_SIZES_OF[dtype]:
                chosen = options_of(k)
                names = [f"{kind}-{name}-{dtype}-k{k}" for name in chosen]
                try:
                    got = results(
                        [(make(k, OPTIONS[n]), *prepared[n][:2]) for n in chosen],
                        full=k in FULL_WORLD_SIZES,
                        vjp=kind == "plain",  # the fused loss's: linear-vjp-none-k3
                    )
                except Exception as error:  # reported, not raised: the other checks run
                    for name in names:
                        _report(name, False, f"{type(error).__name__}: {error}")
                    continue
                references = dict(zip(OPTIONS, expected[reference_dtype], strict=True))
                for option_name, name, one_got in zip(chosen, names, got, strict=True):
                    numpy_loss = prepared[option_name][2]
                    compare(name, one_got, references[option_name], dtype, numpy_loss)

    # --- the VJP of the fused loss's per-example losses (JAX's autodiff for the weight) -------
    try:
        problems = []
        cases = []
        for dtype in ("float64", "bfloat16"):
            for option_name in ("all",):
                option = OPTIONS[option_name]
                arrays, positions, _ = inputs("linear", option, dtype)
                cases.append((dtype, option, arrays, positions))
        got = results([(sharded_linear(3, o), a, p) for _, o, a, p in cases])
        want = results([(unsharded_linear(o), a, p) for d, o, a, p in cases if d == "float64"])
        for (dtype, _, _, _), one_got, one_want in zip(cases, got, want * 2, strict=True):
            # bfloat16 against float64 on the same (bfloat16-representable) inputs
            for a, e in zip(
                jax.tree.leaves(one_got[-1]), jax.tree.leaves(one_want[-1]), strict=True
            ):
                ok, note = close(a, e, dtype)
                if not ok:
                    problems.append(f"{dtype}: {note}")
        _report("linear-vjp-none-k3", not problems, "; ".join(problems))
    except Exception as error:
        _report("linear-vjp-none-k3", False, f"{type(error).__name__}: {error}")

    # --- the fused single-device op itself --------------------------------------------------
    try:
        option = OPTIONS["all"]
        arrays, positions, _ = inputs("linear", option, "float64")

        def loss_and_grads(fn):
            def run(*a):
                mean = jax.value_and_grad(lambda *b: fn(*b, "mean"), argnums=positions)(*a)
                return fn(*a, "none"), mean

            return jax.jit(run)(*arrays)

        got = loss_and_grads(sharded_linear(3, option))
        want = loss_and_grads(fused_linear(option))
        pairs = zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
        oks = [close(a, e, "float64") for a, e in pairs]
        _report("linear-fused-single-device-float64", all(o for o, _ in oks), str(oks))
    except Exception as error:
        _report("linear-fused-single-device-float64", False, f"{type(error).__name__}: {error}")

    # --- an empty shard: 5 classes over 4 devices (2, 2, 1, 0) ---------------------------------
    try:
        x5 = jnp.asarray(logits64[:, :5])
        y5 = jnp.asarray(labels_kept % 5)
        mesh = mesh_of(4)

        def empty(x):
            mapped = jax.shard_map(
                lambda a, b: vocab_parallel_cross_entropy(
                    a, b, axis_name="v", num_classes=5, reduction="mean", label_smoothing=0.1
                ),
                mesh=mesh, in_specs=(P(None, "v"), P()), out_specs=P(),
            )  # fmt: skip
            return mapped(pad_last(x, 4, 1e4, vocab=5), y5)

        got = jax.jit(jax.value_and_grad(empty))(x5)
        want = jax.jit(
            jax.value_and_grad(lambda x: xentropy.softmax_cross_entropy(x, y5, label_smoothing=0.1))
        )(x5)
        oks = [close(a, e, "float64") for a, e in zip(got, want, strict=True)]
        _report("plain-empty-shard-float64", all(o for o, _ in oks), str(oks))
    except Exception as error:
        _report("plain-empty-shard-float64", False, f"{type(error).__name__}: {error}")

    # --- forward mode and second order against the unsharded function --------------------------
    def derivatives(
        name: str, sharded: Any, unsharded: Any, primal: Any, *, with_hessian: bool = True
    ) -> None:
        """JVP, Hessian-vector products forward-over-reverse and reverse-over-forward, and the
        Hessian itself (``jax.hessian``: jacfwd of jacrev) unless not ``with_hessian``."""
        try:
            tangent = jnp.asarray(rng.normal(size=primal.shape))

            def all_modes(f):
                def run(p):
                    jvp = jax.jvp(f, (p,), (tangent,))
                    hvp_forward = jax.jvp(jax.grad(f), (p,), (tangent,))[1]
                    hvp_reverse = jax.grad(lambda q: jax.jvp(f, (q,), (tangent,))[1])(p)
                    if not with_hessian:
                        return (*jvp, hvp_forward, hvp_reverse)
                    return (*jvp, hvp_forward, hvp_reverse, jax.hessian(f)(p))

                return jax.jit(run)(primal)

            got, want = all_modes(sharded), all_modes(unsharded)
            oks = [close(a, e, "float64") for a, e in zip(got, want, strict=True)]
            _report(name, all(o for o, _ in oks), str(oks))
        except Exception as error:
            _report(name, False, f"{type(error).__name__}: {error}")

    option = OPTIONS["all"]
    x, cw = jnp.asarray(logits64), jnp.asarray(class_weight)
    t = jnp.asarray(labels)
    plain3 = sharded_plain(3, option)
    derivatives(
        "plain-jvp-hessian-float64",
        lambda x: plain3(x, t[:3], cw, "mean"),
        lambda x: unsharded_plain(option)(x, t[:3], cw, "mean"),
        x[:3, :],
    )
    linear3 = sharded_linear(3, option)
    h, w, b = jnp.asarray(hidden64), jnp.asarray(weight64), jnp.asarray(bias64)
    derivatives(
        "linear-jvp-hessian-float64",
        lambda h: linear3(h, w, b, t[:2], cw, "mean"),
        lambda h: unsharded_linear(option)(h, w, b, t[:2], cw, "mean"),
        h[:2, :],
        with_hessian=False,
    )

    # --- a traced label smoothing, differentiated -----------------------------------------------
    try:
        mesh = mesh_of(3)

        def smoothed(x, eps):
            mapped = jax.shard_map(
                lambda a, e: vocab_parallel_cross_entropy(
                    a, t, axis_name="v", num_classes=V, label_smoothing=e, reduction="mean",
                    ignore_index=-100,
                ),
                mesh=mesh, in_specs=(P(None, "v"), P()), out_specs=P(),
            )  # fmt: skip
            return mapped(pad_last(x, 3, 1e4), eps)

        def plain_smoothed(x, eps):
            return xentropy.softmax_cross_entropy(x, t, label_smoothing=eps, ignore_index=-100)

        eps = jnp.asarray(0.15)
        got = jax.jit(jax.value_and_grad(smoothed, argnums=(0, 1)))(x, eps)
        want = jax.jit(jax.value_and_grad(plain_smoothed, argnums=(0, 1)))(x, eps)
        oks = [
            close(a, e, "float64")
            for a, e in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
        ]
        _report("plain-traced-label-smoothing-float64", all(o for o, _ in oks), str(oks))
    except Exception as error:
        _report("plain-traced-label-smoothing-float64", False, f"{type(error).__name__}: {error}")

    # --- a label outside [0, V) under jit: NaN for its row on every device, nothing else --------
    bad = labels_kept.copy()
    bad[1] = V + 3

    def bad_label(kind: str) -> None:
        name = f"{kind}-bad-label-nan-every-device"
        try:
            k, mesh, tb = 4, mesh_of(4), jnp.asarray(bad)
            if kind == "plain":

                def per_device(a, y):
                    loss = vocab_parallel_cross_entropy(a, y, axis_name="v", num_classes=V)
                    grad = jax.grad(
                        lambda a: jnp.sum(
                            vocab_parallel_cross_entropy(a, y, axis_name="v", num_classes=V)
                        )
                    )(a)
                    return loss[None], grad

                specs, args = (P(None, "v"), P()), (pad_last(x, k, 1e4), tb)
            else:

                def per_device(hh, ww, y):
                    def f(ww):
                        return vocab_parallel_linear_cross_entropy(
                            hh, ww, y, axis_name="v", num_classes=V, reduction="none"
                        )

                    return f(ww)[None], jax.grad(lambda ww: jnp.sum(f(ww)))(ww)

                specs, args = (P(), P("v", None), P()), (h, pad_rows(w, k, 50.0), tb)
            grad_spec = P(None, "v") if kind == "plain" else P("v", None)
            losses, grads = jax.jit(
                jax.shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=(P("v"), grad_spec))
            )(*args)
            losses, grads = np.asarray(losses), np.asarray(grads)
            # every device: row 1 NaN, the others finite; the gradient NaN in row 1's entries
            ok = bool(np.all(np.isnan(losses[:, 1])))
            ok &= bool(np.all(np.isfinite(np.delete(losses, 1, axis=1))))
            if kind == "plain":  # (N, k L): row 1 NaN, the real columns of the others finite
                real = grads[:, :V]
                ok &= bool(np.all(np.isnan(real[1]))) and bool(
                    np.all(np.isfinite(np.delete(real, 1, axis=0)))
                )
            else:  # (k L, D): example 1 reaches every row of the weight
                ok &= bool(np.all(np.isnan(grads[:V])))
            _report(name, ok, f"losses per device {losses.tolist()}")
        except Exception as error:
            _report(name, False, f"{type(error).__name__}: {error}")

    bad_label("plain")
    bad_label("linear")

    # --- static errors raise at trace time, the same program on every device --------------------
    def raises(name: str, fn: Any, kind: type, phrase: str) -> None:
        try:
            fn()
        except kind as error:
            _report(name, phrase in str(error), str(error))
        except Exception as error:
            _report(name, False, f"{type(error).__name__}: {error}")
        else:
            _report(name, False, "no error")

    mesh3 = mesh_of(3)
    raises(
        "plain-shape-error",
        lambda: jax.jit(
            jax.shard_map(
                lambda a, y: vocab_parallel_cross_entropy(a, y, axis_name="v"),
                mesh=mesh3,
                in_specs=(P(None, "v"), P()),
                out_specs=P(),
            )
        )(pad_last(x, 3, 0.0), jnp.zeros((N + 1,), jnp.int32)),
        ValueError,
        "labels",
    )
    raises(
        "num-classes-error",
        lambda: jax.jit(
            jax.shard_map(
                lambda a, y: vocab_parallel_cross_entropy(a, y, axis_name="v", num_classes=13),
                mesh=mesh3,
                in_specs=(P(None, "v"), P()),
                out_specs=P(),
            )
        )(pad_last(x, 3, 0.0), t),
        ValueError,
        "num_classes=13",
    )

    # --- the collectives in the compiled HLO --------------------------------------------------
    collective = re.compile(
        r"= (\(?[^=]*?\)?) (all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)"
        r"(?:-start)?\("
    )

    def collectives_of(text: str) -> list[tuple[str, int]]:
        """``(op, largest element count among its results)`` for each collective."""
        found = []
        for line in text.splitlines():
            m = collective.search(line)
            if m:
                sizes = [
                    int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
                    for dims in re.findall(r"\[([\d,]*)\]", m.group(1))
                ]
                found.append((m.group(2), max(sizes or [1])))
        return found

    def hlo_check(name: str, fn: Any, args: tuple[Any, ...], largest: int, wanted: str) -> None:
        try:
            found = collectives_of(jax.jit(fn).lower(*args).compile().as_text())
            gathers = [c for c in found if c[0] != "all-reduce"]
            too_big = [c for c in found if c[1] > largest]
            ok = bool(found) and not gathers and not too_big
            _report(name, ok, f"{wanted}; found {found}")
        except Exception as error:
            _report(name, False, f"{type(error).__name__}: {error}")

    n_big, v_big = 64, 1000
    x_big = jnp.asarray(rng.normal(size=(n_big, v_big)), jnp.float32)
    y_big = jnp.asarray(rng.integers(0, v_big, size=(n_big,)))
    opts = {"label_smoothing": 0.1, "z_loss": 1e-4, "softcap": 30.0, "reduction": "mean"}

    # the inputs padded and placed on the devices as shard_map splits them: a gradient returned
    # for an unsharded input would be gathered for the caller, which says nothing of the loss
    x_padded = jax.device_put(
        pad_last(x_big, 3, 0.0, vocab=v_big), NamedSharding(mesh3, P(None, "v"))
    )

    def plain_value_and_grad(x):
        def f(x):
            mapped = jax.shard_map(
                lambda a, y: vocab_parallel_cross_entropy(
                    a, y, axis_name="v", num_classes=v_big, **opts
                ),
                mesh=mesh3, in_specs=(P(None, "v"), P()), out_specs=P(),
            )  # fmt: skip
            return mapped(x, y_big)

        return jax.value_and_grad(f)(x)

    # the stacked (k, N) sums: at most 4 rows of N
    hlo_check(
        "plain-collectives-hlo", plain_value_and_grad, (x_padded,), 4 * n_big,
        "all-reduces of (N,) vectors or (k, N) stacks only",
    )  # fmt: skip
    d_big = 32
    h_big = jnp.asarray(rng.normal(size=(n_big, d_big)), jnp.float32)
    w_padded = jax.device_put(
        jnp.pad(jnp.asarray(rng.normal(size=(v_big, d_big)), jnp.float32), [(0, 2), (0, 0)]),
        NamedSharding(mesh3, P("v", None)),
    )

    def linear_value_and_grad(h, w):
        def f(h, w):
            mapped = jax.shard_map(
                lambda hh, ww, y: vocab_parallel_linear_cross_entropy(
                    hh, ww, y, axis_name="v", num_classes=v_big, **opts
                ),
                mesh=mesh3, in_specs=(P(), P("v", None), P()), out_specs=P(),
            )  # fmt: skip
            return mapped(h, w, y_big)

        return jax.value_and_grad(f, argnums=(0, 1))(h, w)

    # (N,) vectors, and one all-reduce of the hidden states' (N, D) gradient
    hlo_check(
        "linear-collectives-hlo", linear_value_and_grad, (h_big, w_padded), n_big * d_big,
        "(N,) vectors and the (N, D) gradient of hidden",
    )  # fmt: skip

    # --- the dialect's own loss on arrays sharded over the classes: XLA partitions it ---------
    def dialect_hlo() -> None:
        problems = []
        for k, vocab in ((2, 1024), (4, 1024), (3, 1000)):
            mesh = mesh_of(k)
            xs = jnp.asarray(rng.normal(size=(n_big, vocab)), jnp.float32)
            ys = jnp.asarray(rng.integers(0, vocab, size=(n_big,)))
            sharding = NamedSharding(mesh, P(None, "v"))

            def loss(x, y):
                return jnp.mean(
                    xjax.softmax_cross_entropy_with_integer_labels(x, y, softcap=30.0, z_loss=1e-4)
                )

            if vocab % k == 0:  # a jax.Array can be placed so: the gradient stays sharded too
                fn, args = jax.value_and_grad(loss), (jax.device_put(xs, sharding), ys)
            else:  # an uneven split exists inside a computation only (no sharded (N, V) output)

                def fn(x, y, sharding=sharding):
                    x = jax.lax.with_sharding_constraint(x, sharding)
                    value, grad = jax.value_and_grad(loss)(x, y)
                    return value, jnp.sum(grad * x)

                args = (xs, ys)
            found = collectives_of(jax.jit(fn).lower(*args).compile().as_text())
            bad_ones = [c for c in found if c[0] != "all-reduce" or c[1] > 4 * n_big]
            if bad_ones or not found:
                problems.append(f"k={k} V={vocab}: {found}")
        _report(
            "dialect-hlo-no-all-gather",
            not problems,
            "; ".join(problems) or "all-reduces of (N,) only",
        )

    try:
        dialect_hlo()
    except Exception as error:
        _report("dialect-hlo-no-all-gather", False, f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")
    main()
