"""Operators whose inputs passed the eager value checks skip the NaN masks, and nothing else.

``checked_operator`` sets ``values_checked`` only when the value checks ran (eager prediction,
``validate=True``). The forward and backward passes of such an operator leave out the masks that
turn values the checks reject into NaN; on valid input both forms must agree exactly, for every
operator (the cases of ``test_gradient_checks``, each with an ``ignore_index`` variant where the
operator takes one).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import require_or_skip
from test_gradient_checks import CASES

from xentropy import ops


def _variants():
    for case in CASES:
        yield pytest.param(case.op, case, id=case.id)
        arrays = case.inputs()
        class_indices = len(arrays) > 1 and arrays[1].ndim == arrays[0].ndim - 1
        if class_indices and getattr(case.op, "ignore_index", "absent") is None:
            op = dataclasses.replace(case.op, ignore_index=3)  # label 3 occurs in the cases
            yield pytest.param(op, case, id=f"{case.id}-ignore3")


def _as_tuple(grad):
    return grad if isinstance(grad, tuple) else (grad,)


@pytest.mark.parametrize(("op", "case"), list(_variants()))
def test_checked_and_unchecked_agree_on_valid_input(op, case):
    arrays = case.inputs()
    xp, checked = ops.checked_operator(op, *arrays, prediction=arrays[0], validate=True)
    assert checked.values_checked and not op.values_checked
    results = []
    for variant in (op, checked):
        loss, residuals = variant.forward(xp, *arrays)
        grads = _as_tuple(variant.backward(xp, residuals, np.ones_like(loss)))
        results.append((loss, grads))
    (loss, grads), (loss_checked, grads_checked) = results
    np.testing.assert_array_equal(loss_checked, loss)
    for grad, grad_checked in zip(grads, grads_checked, strict=True):
        if grad is None:
            assert grad_checked is None
        else:
            np.testing.assert_array_equal(grad_checked, grad)


def test_unchecked_without_validation():
    op = ops.SoftmaxCrossEntropy()
    logits, labels = np.zeros((2, 3)), np.array([0, 2])
    _, same = ops.checked_operator(op, logits, labels, None, prediction=logits, validate=False)
    assert same is op


def test_unchecked_under_jax_jit():
    jax = require_or_skip("jax")
    jnp = require_or_skip("jax.numpy")
    seen = []

    def loss(logits, labels):
        _, op = ops.checked_operator(
            ops.SoftmaxCrossEntropy(), logits, labels, None, prediction=logits, validate=True
        )
        seen.append(op.values_checked)
        return jnp.sum(logits)

    jax.jit(loss)(jnp.zeros((2, 3)), jnp.array([0, 2]))
    assert seen == [False]
