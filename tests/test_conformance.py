"""The conformance matrix itself: a quick run, its reports, fault detection, the reference.

These run the installed ``xentropy.conformance`` on NumPy and array-api-strict (a few seconds),
and the derivative cells (targets' gradients, Hessian-vector products) on PyTorch's own losses,
which get those right, when PyTorch is installed; the full matrix is
``python -m xentropy.conformance``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from planted_faults import Faulty, registered
from scipy.special import expit, softmax
from xentropy.conformance import cli, precise, report
from xentropy.conformance.backends import (
    FLOAT_DTYPES,
    NUMPY,
    Backend,
    register_backend,
    unregister_backend,
)
from xentropy.conformance.cases import (
    SAMPLE_WEIGHT_VALUES,
    SECOND_ORDER_SETS,
    VARIANTS,
    generate_cases,
)
from xentropy.conformance.dialects import DIALECTS
from xentropy.conformance.reference import (
    hvp_reference,
    mean_weights,
    reduction_scale,
    target_gradient_reference,
    target_weights,
)
from xentropy.conformance.runner import DERIVATIVES, FIRST_ORDER, QUANTITIES, RunConfig, run
from xentropy.conformance.tolerances import HVP_STEP, compare, hvp_slack, tolerance, ulp

CORE = "numpy,array_api_strict"


@pytest.fixture(autouse=True)
def _no_required_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI may require framework backends; these tests select NumPy-only ones on purpose."""
    monkeypatch.delenv(cli.REQUIRE_ENV, raising=False)


@pytest.fixture
def faulty() -> Iterator[Backend]:
    yield from registered(Faulty("numpy-faulty", NUMPY, default=False))


def test_quick_run_passes_and_writes_the_four_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    status = cli.main(
        ["--quick", "--backends", CORE, "--out-dir", str(tmp_path), "--no-progress", "--jobs", "1"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "\033[" not in out  # no colour when stdout is not a terminal
    assert "PASS" in out.splitlines()[0]
    for name in ("conformance.json", "conformance.md", "conformance.html", "conformance.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["ok"] is True
    assert data["summary"]["failed"] == 0
    assert data["summary"]["checked"] >= 300
    assert {c["backend"] for c in data["cells"]} == {"numpy", "array_api_strict"}
    assert {c["variant"] for c in data["cells"]} == set(VARIANTS)
    assert {c["quantity"] for c in data["cells"]} == set(QUANTITIES)
    assert set(data["summary"]["by_quantity"]) == set(QUANTITIES)
    assert "## By quantity" in (tmp_path / "conformance.md").read_text()
    assert all(check["passed"] for check in data["reference_checks"])
    assert (tmp_path / "conformance.png").read_bytes().startswith(b"\x89PNG")
    assert "softmax_cross_entropy" in (tmp_path / "conformance.md").read_text()
    assert "<table>" in (tmp_path / "conformance.html").read_text()


def test_a_planted_fault_fails_the_run(faulty: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["--quick", "--backends", f"numpy,{faulty.name}", "--no-progress", "--no-reference-check"]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL" in out.splitlines()[0]
    # the first failures listed (float16 ones come first) are the planted backend's values
    assert any(f"{faulty.name} {d} cpu value vs reference" in out for d in ("float16", "float32"))


def test_the_planted_fault_is_caught_in_every_dtype_and_only_in_values(faulty: Backend) -> None:
    result = run(RunConfig(backends=[faulty.name], quick=True, check_reference=False))
    failed = result.failed
    assert failed and all(c.quantity == "value" for c in failed)
    assert {c.dtype for c in failed} == {"float16", "float32", "float64"}
    # 1e-3 is one float16 ulp: within its tolerance except near the top of a binade
    assert all(
        c.status == "fail" for c in result.cells if c.quantity == "value" and c.dtype != "float16"
    )


def test_a_backend_that_is_not_installed_is_not_a_failure_with_allow_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Named in --backends it stops the run (tests/test_conformance_gate.py); with
    --allow-missing the others run and it shows as not installed."""
    ghost = register_backend(
        Backend(
            "ghost-adapter",
            NUMPY,
            adapter="xentropy.backends.ghost",
            dialect="torch",
            default=False,
        )
    )
    try:
        status = cli.main(
            [
                "--quick",
                "--backends",
                f"numpy,{ghost.name}",
                "--no-progress",
                "--no-reference-check",
                "--variants",
                "softmax_cross_entropy",
                "--allow-missing",
            ]
        )
    finally:
        unregister_backend(ghost.name)
    out = capsys.readouterr().out
    assert status == 0
    assert "not installed" in out and report.NOT_INSTALLED in out


def test_parallel_run_matches_the_serial_one() -> None:
    config = RunConfig(
        backends=CORE.split(","),
        quick=True,
        variants=["softmax_cross_entropy", "binary_cross_entropy"],
    )
    serial, parallel = run(config), run(config, jobs=2)
    assert [c.to_dict() for c in serial.cells] == [c.to_dict() for c in parallel.cells]
    assert serial.backends == parallel.backends
    assert len(parallel.reference_checks) == len(serial.reference_checks) > 0


def test_bad_arguments_exit_with_status_2() -> None:
    for argv in (["--backends", "nonesuch"], ["--dtypes", "float8"], ["--variants", "hinge"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "cases:" in out


def test_float64_reference_agrees_with_mpmath_on_a_sample() -> None:
    cases = precise.sample_cases(generate_cases(0, quick=True))
    cases += [
        c
        for c in generate_cases(
            0, variants=["softmax_cross_entropy", "sigmoid_focal_loss", "binary_cross_entropy"]
        )
        if c.value_range != "normal"
    ][:12]
    checks = [precise.check_reference(case) for case in cases]
    assert all(check.passed for check in checks), [c for c in checks if not c.passed]
    assert sum(check.coordinates for check in checks) > 50


def test_mpmath_check_detects_a_wrong_target_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check covers the targets' gradients: one off by 1e-9 relative fails it."""
    from xentropy.conformance import reference

    case = next(
        c
        for c in generate_cases(0, variants=["sigmoid_focal_loss"], quick=True)
        if c.target_kind == "soft"
    )
    assert precise.check_reference(case).passed
    exact = reference.TARGET_GRADIENTS["sigmoid_focal_loss"]

    def off(arrays: Any, options: Any) -> Any:
        return {k: (g * (1 + 1e-9), d) for k, (g, d) in exact(arrays, options).items()}

    monkeypatch.setitem(reference.TARGET_GRADIENTS, "sigmoid_focal_loss", off)
    assert not precise.check_reference(case).passed


def test_mpmath_check_detects_a_wrong_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check has teeth: a reference off by 1e-9 relative fails it."""
    from xentropy.conformance import reference

    case = generate_cases(0, variants=["softmax_cross_entropy"], quick=True)[0]
    exact = reference.REFERENCES["softmax_cross_entropy"]

    def off(arrays: Any, options: Any) -> Any:
        value, grads = exact(arrays, options)
        return value * (1 + 1e-9), grads

    monkeypatch.setitem(reference.REFERENCES, "softmax_cross_entropy", off)
    assert not precise.check_reference(case).passed


def test_cases_are_a_function_of_the_seed() -> None:
    first, again, other = (generate_cases(seed) for seed in (0, 0, 1))
    assert [c.id for c in first] == [c.id for c in other]
    assert len(first) >= 300
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    differs = [
        not np.array_equal(a.arrays[a.arguments[0]], b.arrays[b.arguments[0]])
        for a, b in zip(first, other, strict=True)
    ]
    assert sum(differs) > 0.9 * len(differs)


def test_compare_follows_the_table() -> None:
    rtol, atol = tolerance("float32")
    expected = np.array([1.0, 100.0, 0.0])
    assert compare(expected * (1 + 0.5 * rtol), expected, "float32").passed
    assert not compare(expected * (1 + 3 * rtol), expected, "float32").passed
    assert compare(np.array([atol / 2]), np.array([0.0]), "float32").passed
    nan_inf = np.array([np.nan, np.inf, 1.0])
    assert compare(nan_inf, nan_inf, "float64").passed
    assert not compare(np.array([0.0, np.inf, 1.0]), nan_inf, "float64").passed
    assert not compare(np.array([np.nan, -np.inf, 1.0]), nan_inf, "float64").passed
    # a float16 result of 1e5 is inf: the correctly rounded value
    assert compare(np.array([np.inf]), np.array([1e5]), "float16").passed


def test_ulp() -> None:
    assert ulp(np.array(1.0), "float32") == 2.0**-23
    assert ulp(np.array(1.0), "bfloat16") == 2.0**-7
    assert ulp(np.array(3.0), "float16") == 2.0**-9
    assert ulp(np.array(0.0), "float16") == 2.0**-24  # the subnormal spacing


# --- derivatives beyond the prediction's gradient ------------------------------------------

TORCH_VARIANTS = ["softmax_cross_entropy", "sigmoid_cross_entropy", "binary_cross_entropy"]


def _derivative_cells(result: Any, quantity: str) -> list[Any]:
    return [c for c in result.cells if c.quantity == quantity]


def test_every_variant_with_floating_targets_has_target_cases_and_second_order_sets() -> None:
    cases = generate_cases(0)
    with_targets = {c.variant for c in cases if c.target_grad_of}
    assert with_targets == set(VARIANTS) - {"entropy"}
    # class indices and bool/int labels have no derivative (sample weights do)
    assert not any(
        set(c.target_grad_of) - {"sample_weight"}
        for c in cases
        if c.target_kind in ("sparse", "bool", "int")
    )
    assert {c.target_grad_of for c in cases if c.variant == "kl_divergence"} == {("p",)}
    second = [c for c in cases if c.second_order]
    assert {c.variant for c in second} == set(VARIANTS)
    assert {(c.variant, c.option_set) for c in second} == {
        (v, name) for v, names in SECOND_ORDER_SETS.items() for name in names
    }
    for case in second:
        assert set(case.directions) == set(case.grad_of)
        for name, v in case.directions.items():
            assert v.shape == case.arrays[name].shape and np.all(np.isfinite(v))


def test_numpy_has_derivative_cells_skipped_for_want_of_autodiff() -> None:
    result = run(RunConfig(backends=CORE.split(","), quick=True, check_reference=False))
    cases = generate_cases(0, quick=True)
    for quantity, count in (
        ("target_gradient", sum(bool(c.target_grad_of) for c in cases)),
        ("hvp", sum(c.second_order for c in cases)),
    ):
        cells = _derivative_cells(result, quantity)
        assert count > 0
        assert len(cells) == count * 5  # numpy: 3 dtypes, array-api-strict: 2
        assert all(c.status == "skip" and "no autodiff" in c.detail for c in cells)


def test_target_reference_masks_only_the_undefined_entries() -> None:
    case = next(
        c
        for c in generate_cases(0, variants=["softmax_cross_entropy"])
        if c.target_kind == "dense" and c.value_range == "zero_prob"
    )
    (grad,), (defined,) = target_gradient_reference(
        case.variant, case.arrays, case.options, case.target_grad_of
    )
    dead = np.isneginf(case.arrays["logits"])
    assert dead.any() and np.array_equal(defined, ~dead)
    assert np.all(np.isfinite(grad[defined]))


def _closed_form_hvp(case: Any) -> np.ndarray:
    """``H v`` written out for losses with a short Hessian (independent of the finite
    differences of ``hvp_reference``)."""
    a, v = case.arrays, case.directions[case.grad_of[0]]
    options = case.options
    if case.variant == "softmax_cross_entropy":  # H = A (diag(p) - p p^T), A = sum_c a_c
        z = a["logits"]
        sparse = a["targets"].ndim == z.ndim - 1
        weights, total = target_weights(
            a["targets"],
            z.shape[-1],
            sparse=sparse,
            class_weight=a.get("class_weight"),
            ignore_index=options.get("ignore_index"),
            label_smoothing=options.get("label_smoothing", 0.0),
        )
        p = softmax(z, axis=-1)
        scale = reduction_scale(z.shape[0], case.reduction, total)
        pv = np.sum(p * v, axis=-1, keepdims=True)
        return np.sum(weights, axis=-1, keepdims=True) * p * (v - pv) * scale
    if case.variant == "sigmoid_cross_entropy":  # d^2 l / dx^2 = w ((1-t) + pw t) s(x) s(-x)
        x = a["logits"]
        eps = options.get("label_smoothing", 0.0)
        t = a["targets"] * (1.0 - eps) + eps / 2.0
        pw = a.get("pos_weight", options.get("pos_weight", 1.0))
        w = a.get("class_weight", 1.0)
        curvature = w * ((1.0 - t) + pw * t) * expit(x) * expit(-x)
        return curvature * v * reduction_scale(x.size, case.reduction)
    if case.variant == "binary_cross_entropy":  # w (t / p^2 + (1-t) / (1-p)^2)
        q, t = a["probs"], a["targets"]
        eps = options.get("label_smoothing", 0.0)
        t = t * (1.0 - eps) + eps / 2.0
        curvature = a.get("class_weight", 1.0) * (t / q**2 + (1.0 - t) / (1.0 - q) ** 2)
        return curvature * v * reduction_scale(q.size, case.reduction)
    rows = case.arrays["p"].shape[0]
    if case.variant == "entropy":  # H = diag(-1 / p)
        return -v / a["p"] * reduction_scale(rows, case.reduction)
    assert case.variant in ("cross_entropy", "kl_divergence")  # H = diag(p / q^2)
    return a["p"] / a["q"] ** 2 * v * reduction_scale(rows, case.reduction)


def test_hvp_reference_agrees_with_closed_forms_within_its_slack() -> None:
    variants = [*TORCH_VARIANTS, "entropy", "kl_divergence", "cross_entropy"]
    cases = [
        c
        for c in generate_cases(0, variants=variants)
        if c.second_order and "softcap" not in c.options and "z_loss" not in c.options
    ]
    assert len(cases) >= 10
    for case in cases:
        exact = _closed_form_hvp(case)
        (approx,) = hvp_reference(
            case.variant, case.arrays, case.options, case.grad_of, case.directions, HVP_STEP
        )
        error = float(np.max(np.abs(approx - exact)))
        assert error <= 2e-12 * float(np.max(np.abs(exact))), case.id
        assert error <= hvp_slack(approx) / 4, case.id


class FaultyDerivative(Backend):
    """PyTorch's own losses with one derivative quantity off by a relative 1e-3 (a planted
    bug): the target gradients or the Hessian-vector products."""

    def __init__(self, name: str, base: Backend, quantity: str) -> None:
        super().__init__(
            name,
            base.framework,
            adapter=base.adapter,
            dialect=base.dialect,
            default=False,
            native=False,
        )
        object.__setattr__(self, "_faulty", quantity)

    def evaluate_derivative(self, case: Any, arrays: Any, dtype: str, quantity: str, d: Any):
        result = super().evaluate_derivative(case, arrays, dtype, quantity, d)
        if quantity != self._faulty:
            return result
        return tuple(r * (1 + 1e-3) for r in result)


def _torch_native() -> Backend:
    pytest.importorskip("torch")
    from xentropy.conformance.backends import BACKENDS

    return BACKENDS["torch-native"]


def test_torch_native_passes_every_derivative_cell() -> None:
    """PyTorch's own losses give the right target gradients and double backward: the new
    cells run on them and pass (in float32 and float64, where torch computes in the dtype)."""
    native = _torch_native()
    result = run(
        RunConfig(
            backends=[native.name],
            variants=TORCH_VARIANTS,
            dtypes=["float32", "float64"],
            check_reference=False,
        )
    )
    for quantity in DERIVATIVES:
        cells = _derivative_cells(result, quantity)
        checked = [c for c in cells if c.status != "skip"]
        assert len(checked) >= 8, quantity
        # torch's own target backward of binary_cross_entropy ignores its log clamp at -100
        # (infinite at probabilities of exactly 0 and 1): only the extreme range differs; its
        # double backward adds eps = 1e-12 to p and 1 - p, a float64 H v off by about 2e-12 / p,
        # beyond float64's derived tolerance (the adapter's is not)
        failing = [c for c in checked if c.status == "fail"]
        assert all(
            c.variant == "binary_cross_entropy"
            and (c.value_range == "extreme" or (c.quantity == "hvp" and c.dtype == "float64"))
            for c in failing
        ), [(c.case, c.detail) for c in failing]
        assert len(failing) < len(checked) / 4
    assert {c.variant for c in result.cells if c.quantity == "hvp" and c.status == "pass"} == set(
        TORCH_VARIANTS
    )


@pytest.mark.parametrize("quantity", DERIVATIVES)
def test_a_planted_derivative_fault_fails_only_its_cells(quantity: str) -> None:
    native = _torch_native()
    faulty = register_backend(FaultyDerivative(f"torch-faulty-{quantity}", native, quantity))
    try:
        result = run(
            RunConfig(
                backends=[faulty.name],
                variants=TORCH_VARIANTS,
                dtypes=["float32", "float64"],
                quick=True,
                check_reference=False,
            )
        )
    finally:
        unregister_backend(faulty.name)
    assert not result.ok
    assert {c.quantity for c in result.failed} == {quantity}
    cells = [c for c in result.cells if c.quantity == quantity and c.status != "skip"]
    wide = [c for c in cells if c.dtype == "float64"]
    assert len(wide) >= 3 and all(c.status == "fail" for c in wide), wide
    # float32's atol of 1e-5 can hide 1e-3 of an entry below 0.01 (a mean over 40 elements)
    narrow = [c for c in cells if c.dtype == "float32"]
    assert sum(c.status == "fail" for c in narrow) >= len(narrow) / 2 > 1


# --- per-example weights and masks, LLM options, linear cross entropy ------------------------

PER_EXAMPLE_VARIANTS = [
    "softmax_cross_entropy",
    "categorical_cross_entropy",
    "sigmoid_cross_entropy",
    "linear_cross_entropy",
]


def _per_example_shape(case: Any) -> tuple[int, ...]:
    prediction = case.arrays[case.arguments[0]]
    if case.variant == "sigmoid_cross_entropy":
        return prediction.shape
    if case.variant == "linear_cross_entropy":
        return prediction.shape[:-1]
    axis = case.options.get("axis", -1) % prediction.ndim
    return prediction.shape[:axis] + prediction.shape[axis + 1 :]


def test_sample_weights_and_masks_are_drawn_per_example_with_a_positive_denominator() -> None:
    cases = [
        c
        for c in generate_cases(0, variants=PER_EXAMPLE_VARIANTS)
        if "sample_weight" in c.arrays or "where" in c.arrays
    ]
    assert {c.variant for c in cases} == set(PER_EXAMPLE_VARIANTS)
    assert {c.layout for c in cases} >= {"NC", "NCd", "NdC", "C", "ND"}
    for case in cases:
        shape = _per_example_shape(case)
        s = case.arrays.get("sample_weight", np.ones(shape))
        m = case.arrays.get("where", np.ones(shape, bool))
        assert m.dtype == bool and m.shape == shape, case.id
        assert np.broadcast_to(s, shape).shape == shape and set(np.unique(s)) <= set(
            SAMPLE_WEIGHT_VALUES
        ), case.id
        if "sample_weight" in case.arrays:
            assert "sample_weight" in case.target_grad_of, case.id
        e = np.ones(shape)
        if case.target_kind == "sparse":
            classes = case.arrays["weight"].shape[0] if "weight" in case.arrays else 5
            e = mean_weights(
                case.arrays["targets"],
                classes,
                sparse=True,
                class_weight=case.arrays.get("class_weight"),
                ignore_index=case.options.get("ignore_index"),
            )
        factor = np.where(m, np.broadcast_to(s, shape), 0.0)
        assert np.sum(factor * e) > 0 and np.sum(m) > 0, case.id
        if "where" in case.arrays and m.size > 1:
            assert not m.all(), case.id  # the mask drops at least one example


def test_mpmath_check_detects_a_wrong_weighted_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference dividing the sample-weighted mean by sum(s m) instead of sum(s m e) (class
    weights forgotten) fails the mpmath check; so does a wrong sample-weight gradient."""
    from xentropy.conformance import reference

    case = next(
        c
        for c in generate_cases(0, variants=["softmax_cross_entropy"], quick=True)
        if c.option_set == "sample_weight+where+class_weight+ignore"
    )
    assert precise.check_reference(case).passed
    exact = reference.weighted_reduce

    def forgets_class_weights(loss: Any, arrays: Any, reduction: str, e: Any = None) -> Any:
        return exact(loss, arrays, reduction, None)

    monkeypatch.setattr(reference, "weighted_reduce", forgets_class_weights)
    assert not precise.check_reference(case).passed
    monkeypatch.setattr(reference, "weighted_reduce", exact)
    gradient = reference.sample_weight_gradient

    def off(*args: Any) -> Any:
        g, defined = gradient(*args)
        return g * (1 + 1e-9), defined

    monkeypatch.setattr(reference, "sample_weight_gradient", off)
    assert not precise.check_reference(case).passed


def test_mpmath_check_covers_the_llm_options_and_linear_targets() -> None:
    wanted = {
        ("softmax_cross_entropy", "softcap+z_loss+class_weight+ignore"),
        ("linear_cross_entropy", "class_weight+ignore+smoothing+z_loss"),
        ("linear_cross_entropy", "bias+class_weight+all"),
        ("sigmoid_cross_entropy", "sample_weight"),
    }
    cases = precise.sample_cases(generate_cases(0, variants=sorted({v for v, _ in wanted})))
    chosen = [c for c in cases if (c.variant, c.option_set) in wanted]
    assert {(c.variant, c.option_set) for c in chosen} == wanted
    checks = [precise.check_reference(c) for c in chosen]
    assert all(check.passed for check in checks), [c for c in checks if not c.passed]
    assert all(check.coordinates >= 3 for check in checks)


def _spelled(dialect: str, variant: str, option_set: str, kind: str, layout: str) -> Any:
    case = next(
        c
        for c in generate_cases(0, variants=[variant])
        if (c.option_set, c.target_kind, c.layout) == (option_set, kind, layout)
    )
    return DIALECTS[dialect].spell(case)


def test_adapter_extras_have_no_native_and_sample_weights_only_where_expressible() -> None:
    for dialect in ("torch", "jax"):
        for option_set in ("softcap=5", "z_loss=0.01"):
            spelling = _spelled(dialect, "softmax_cross_entropy", option_set, "sparse", "NC")
            assert spelling is not None and not spelling.native, (dialect, option_set)
    linear = "linear_cross_entropy"
    assert _spelled("torch", linear, "class_weight", "dense", "ND").native
    assert not _spelled("torch", linear, "chunk_size=3", "sparse", "ND").native
    assert _spelled("torch", linear, "plain", "sparse", "NdD") is None
    sample = ("softmax_cross_entropy", "sample_weight", "sparse", "NC")
    assert _spelled("keras", *sample).native
    assert all(_spelled(d, *sample) is None for d in ("torch", "jax", "tensorflow"))
    where = ("softmax_cross_entropy", "where", "dense", "NC")
    assert _spelled("jax", *where).native
    assert all(_spelled(d, *where) is None for d in ("torch", "tensorflow", "keras"))


def test_torch_adapter_matches_native_linear_cross_entropy_with_weights_and_soft_targets() -> None:
    pytest.importorskip("torch")
    result = run(
        RunConfig(
            backends=["torch-adapter"],
            variants=["linear_cross_entropy"],
            dtypes=["float32", "float64"],
            check_reference=False,
        )
    )
    assert result.ok, [(c.case, c.dtype, c.quantity, c.detail) for c in result.failed]
    native = [c for c in result.cells if c.against == "native" and c.status == "pass"]
    assert {(c.option_set, c.target_kind) for c in native} >= {
        ("class_weight", "sparse"),
        ("class_weight", "dense"),
        ("plain", "dense"),
    }
    assert {c.quantity for c in native} == {"value", "gradient", "target_gradient"}


# --- tf.compat.v1.losses: the TensorFlow 1 dialect ---------------------------------------

TF1_VARIANTS = ["softmax_cross_entropy", "sigmoid_cross_entropy"]


def _tf1_backends() -> tuple[Backend, Backend]:
    pytest.importorskip("tensorflow")
    from xentropy.conformance.backends import BACKENDS

    return BACKENDS["tensorflow-v1-adapter"], BACKENDS["tensorflow-v1-native"]


def _checked_kinds(result: Any, against: str) -> set[tuple[str, str]]:
    return {
        (c.variant, c.target_kind)
        for c in result.cells
        if c.against == against and c.status == "pass" and c.quantity in FIRST_ORDER
    }


def test_tf1_losses_column_checks_softmax_and_sigmoid_against_reference_and_native() -> None:
    adapter, _ = _tf1_backends()
    result = run(RunConfig(backends=[adapter.name], variants=TF1_VARIANTS, check_reference=False))
    assert result.ok, [(c.case, c.dtype, c.quantity, c.against, c.detail) for c in result.failed]
    wanted = {
        ("softmax_cross_entropy", "sparse"),
        ("softmax_cross_entropy", "dense"),
        ("sigmoid_cross_entropy", "hard"),
        ("sigmoid_cross_entropy", "soft"),
    }
    assert _checked_kinds(result, "reference") >= wanted
    assert _checked_kinds(result, "native") >= wanted
    checked = [c for c in result.cells if c.status != "skip"]
    assert {c.dtype for c in checked if c.against == "native"} == set(FLOAT_DTYPES)
    # weights, reductions and TF 1's label smoothing are all spelled
    options = {c.option_set for c in checked}
    assert {"class_weight", "sample_weight+where+class_weight+ignore", "where+none"} <= options
    assert {"label_smoothing=0.1", "label_smoothing=0.2", "sum_over_batch_size"} <= options
    assert {c.quantity for c in checked} == set(QUANTITIES)


def test_tf1_native_float64_is_held_to_float32_precision_and_ours_to_float64() -> None:
    """tf.compat.v1.losses reduces float64 losses in float32: its column and the comparisons
    with it use float32's tolerance in float64; the adapter keeps float64's against the
    reference."""
    adapter, native = _tf1_backends()
    assert native.precision("float64") == "float32" and native.precision("float32") == "float32"
    assert adapter.precision("float64") == "float64"
    assert adapter.native_precision("float64") == "float32"
    result = run(
        RunConfig(
            backends=[native.name],
            variants=TF1_VARIANTS,
            dtypes=["float64"],
            check_reference=False,
        )
    )
    # TensorFlow's one known difference in float64: NaN where a -inf logit meets a zero label
    assert all(
        c.value_range == "zero_prob" and c.target_kind == "dense" and "NaN" in c.detail
        for c in result.failed
    ), [(c.case, c.detail) for c in result.failed]
    assert len(result.checked) - len(result.failed) >= 150


class FaultyTf1(Backend):
    """The TF 1 dialect column with its loss values off by a relative ``error`` in the dtypes
    ``dtypes`` (a planted bug)."""

    def __init__(self, name: str, base: Backend, error: float, dtypes: tuple[str, ...]) -> None:
        super().__init__(
            name, base.framework, adapter=base.adapter, dialect=base.dialect, default=False
        )
        object.__setattr__(self, "_fault", (error, dtypes))

    def evaluate(self, case: Any, arrays: Any, dtype: str) -> tuple[Any, tuple[Any, ...]]:
        value, grads = super().evaluate(case, arrays, dtype)
        error, dtypes = self._fault
        return (value * (1 + error) if dtype in dtypes else value), grads


def _run_faulty_tf1(error: float, dtypes: tuple[str, ...]) -> Any:
    adapter, _ = _tf1_backends()
    faulty = register_backend(FaultyTf1(f"tf1-faulty-{error:g}", adapter, error, dtypes))
    try:
        return run(
            RunConfig(
                backends=[faulty.name],
                variants=TF1_VARIANTS,
                dtypes=["float32", "float64"],
                quick=True,
                check_reference=False,
            )
        )
    finally:
        unregister_backend(faulty.name)


def test_a_planted_fault_in_the_tf1_column_fails_against_reference_and_native() -> None:
    result = _run_faulty_tf1(1e-3, ("float32", "float64"))
    values = [c for c in result.cells if c.quantity == "value" and c.status != "skip"]
    assert {c.against for c in values} == {"reference", "native"}
    assert all(c.status == "fail" for c in values), [c for c in values if c.status != "fail"]
    assert {(c.variant, c.target_kind) for c in values} >= {
        ("softmax_cross_entropy", "sparse"),
        ("softmax_cross_entropy", "dense"),
        ("sigmoid_cross_entropy", "soft"),
    }
    assert {c.quantity for c in result.failed} == {"value"}


def test_a_float64_fault_below_float32_precision_still_fails_against_the_reference() -> None:
    """The native comparison in float64 is at float32's tolerance; the reference one is not."""
    result = _run_faulty_tf1(2e-6, ("float64",))
    values = [c for c in result.cells if c.quantity == "value" and c.status != "skip"]
    wide = [c for c in values if c.dtype == "float64"]
    assert len(wide) >= 10
    assert all(c.status == "fail" for c in wide if c.against == "reference")
    assert all(c.status == "pass" for c in wide if c.against == "native")
    assert {c.dtype for c in result.failed} == {"float64"}
