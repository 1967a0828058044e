"""``import xentropy`` imports no array framework (array-api-compat's test_no_dependencies idea).

Each check runs in a fresh interpreter, so that what other tests imported does not count.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras")

SCRIPTS = {
    "import": "import xentropy",
    "numpy-call": (
        "import numpy as np, xentropy\n"
        "xentropy.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 2]))\n"
        "xentropy.value_and_grad(xentropy.sigmoid_cross_entropy)(np.zeros(3), np.ones(3))"
    ),
    "array_api_strict-call": (
        "import array_api_strict as xp, xentropy\n"
        "xentropy.softmax_cross_entropy(xp.zeros((2, 3)), xp.asarray([0, 2]))"
    ),
}


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_no_framework_imported(script):
    check = (
        f"{SCRIPTS[script]}\n"
        "import sys\n"
        f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    imported = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert imported == "", f"{script!r} imported {imported}"
