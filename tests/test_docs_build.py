"""The documentation site builds with warnings as errors, and its pages hold what they promise.

Runs ``mkdocs build --strict`` once (the API reference is generated from the docstrings by
mkdocstrings), then checks that each dialect's API page documents that dialect's public names
and that every migration guide exists and is in the navigation. Skipped when MkDocs is not
installed (``pip install -r requirements-docs.txt``), unless ``XENTROPY_REQUIRE_DOCS=1``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_GUIDES = ["torch", "tensorflow", "jax-optax", "keras", "numpy"]

# page -> the public names its HTML must document (an anchor per name)
API_PAGES = {
    "core": [
        f"xentropy.{name}"
        for name in (
            "softmax_cross_entropy",
            "categorical_cross_entropy",
            "sigmoid_cross_entropy",
            "binary_cross_entropy",
            "softmax_focal_loss",
            "sigmoid_focal_loss",
            "poly1_cross_entropy",
            "linear_cross_entropy",
            "entropy",
            "kl_divergence",
            "cross_entropy",
            "kl_div_log",
            "class_weights",
            "value_and_grad",
        )
    ],
    "errors": ["xentropy.errors.ClassIndexOutOfRange", "xentropy.errors.ShapeMismatch"],
    "ops": ["xentropy.ops.SoftmaxCrossEntropy", "xentropy.ops.checked_operator"],
    "torch": [
        "xentropy.backends.torch.functional.cross_entropy",
        "xentropy.backends.torch.functional.nll_loss",
        "xentropy.backends.torch.functional.binary_cross_entropy_with_logits",
        "xentropy.backends.torch.functional.linear_cross_entropy",
        "xentropy.backends.torch.nn.CrossEntropyLoss",
        "xentropy.backends.torch.nn.BCEWithLogitsLoss",
        "xentropy.backends.torch.fused.linear_cross_entropy",
    ],
    "tensorflow": [
        "xentropy.backends.tensorflow.nn.softmax_cross_entropy_with_logits",
        "xentropy.backends.tensorflow.nn.sparse_softmax_cross_entropy_with_logits",
        "xentropy.backends.tensorflow.nn.sigmoid_cross_entropy_with_logits",
        "xentropy.backends.tensorflow.nn.weighted_cross_entropy_with_logits",
        "xentropy.backends.tensorflow.losses.sparse_softmax_cross_entropy",
        "xentropy.backends.tensorflow.fused.linear_cross_entropy",
        "xentropy.backends.tensorflow.namespace",
    ],
    "jax": [
        "xentropy.backends.jax.softmax_cross_entropy",
        "xentropy.backends.jax.softmax_cross_entropy_with_integer_labels",
        "xentropy.backends.jax.sigmoid_binary_cross_entropy",
        "xentropy.backends.jax.poly_loss_cross_entropy",
        "xentropy.backends.jax.fused.linear_cross_entropy",
    ],
    "keras": [
        "xentropy.backends.keras.losses.SparseCategoricalCrossentropy",
        "xentropy.backends.keras.losses.CategoricalFocalCrossentropy",
        "xentropy.backends.keras.losses.binary_crossentropy",
    ],
    "conformance": ["xentropy.conformance.run", "xentropy.conformance.RunConfig"],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (
        importlib.util.find_spec("mkdocs") is None
        or importlib.util.find_spec("mkdocstrings") is None
    ):
        if os.environ.get("XENTROPY_REQUIRE_DOCS") == "1":
            pytest.fail("XENTROPY_REQUIRE_DOCS=1 but mkdocs / mkdocstrings are not installed")
        pytest.skip("mkdocs is not installed (pip install -r requirements-docs.txt)")
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return site_dir


@pytest.mark.parametrize("page", sorted(API_PAGES))
def test_api_page_documents_public_names(site: Path, page: str) -> None:
    html = (site / "api" / page / "index.html").read_text(encoding="utf-8")
    missing = [name for name in API_PAGES[page] if f'id="{name}"' not in html]
    assert not missing, f"api/{page} lacks {missing}"


def test_api_page_renders_math_and_no_raw_rest(site: Path) -> None:
    html = (site / "api" / "core" / "index.html").read_text(encoding="utf-8")
    assert "<math" in html
    for raw in (".. math::", ":math:`", ":func:`", "&gt;&gt;&gt; import"):
        assert raw not in html, f"unconverted reST {raw!r} in api/core"


@pytest.mark.parametrize("guide", MIGRATION_GUIDES)
def test_migration_guide_exists_and_is_in_nav(site: Path, guide: str) -> None:
    assert (ROOT / "docs" / "migrating" / f"{guide}.md").is_file()
    html = (site / "migrating" / guide / "index.html").read_text(encoding="utf-8")
    assert "differ" in html
    home = (site / "index.html").read_text(encoding="utf-8")
    nav = home[home.find('<nav class="md-nav md-nav--primary"') :]
    assert f"migrating/{guide}/" in nav, f"migrating/{guide}.md is not in the navigation"


def test_pages_name_no_machine_paths(site: Path) -> None:
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert str(ROOT) not in text, f"{page.relative_to(site)} names the checkout's path"
