"""AutoGraph calls xentropy's functions as they are (as it does ``tf.nn``'s), whatever the import
order, and a ``tf.function`` calling them traces and gives the eager value."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import require_or_skip

import xentropy

ORDERS = {
    "tensorflow first": "import tensorflow as tf\nimport xentropy",
    "xentropy first": "import xentropy\nimport tensorflow as tf",
}


@pytest.mark.parametrize("order", ORDERS)
def test_xentropy_is_not_converted(order: str) -> None:
    require_or_skip("tensorflow")
    code = ORDERS[order] + (
        "\nimport numpy as np"
        "\nfrom tensorflow.python.autograph.impl import conversion"
        "\nx, y = tf.constant(np.zeros((2, 3))), tf.constant([0, 2])"
        "\nloss = tf.function(lambda a, b: xentropy.softmax_cross_entropy(a, b))(x, y)"
        "\nassert abs(float(loss) - np.log(3)) < 1e-12, float(loss)"
        "\nfrom xentropy.backends.tensorflow import nn"
        "\nfor f in (xentropy.softmax_cross_entropy, nn.softmax_cross_entropy_with_logits):"
        "\n    assert conversion.is_allowlisted(f), f"
        "\nprint('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_in_process_tf_function_of_the_core_equals_eager() -> None:
    tf = require_or_skip("tensorflow")
    rng = np.random.default_rng(7)
    h, w, y = rng.normal(size=(4, 3)), rng.normal(size=(6, 3)), np.array([0, 5, 2, 1])
    eager = xentropy.linear_cross_entropy(h, w, y, chunk_size=4, z_loss=0.1)
    traced = tf.function(
        lambda a, b, c: xentropy.linear_cross_entropy(a, b, c, chunk_size=4, z_loss=0.1)
    )(tf.constant(h), tf.constant(w), tf.constant(y))
    np.testing.assert_allclose(float(traced), float(eager), rtol=1e-12)
