"""Each dialect raises, for a common mistake, an instance of the class its framework raises.

For every case the native function and ours get the same bad input; ``pytest.raises`` of the
framework's class must pass on both (the native call proves the class is the framework's), and
our message must name the dialect's argument, show the offending value or shape and, where the
framework's own tests match on a phrase, contain it. Where the framework computes with the bad
input and we raise (a documented difference), the native call is shown to return.

The mechanism itself (``xentropy._errors``) is tested first, without any framework.
"""

from __future__ import annotations

import builtins
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip

from xentropy import _errors
from xentropy._errors import (
    ClassIndexOutOfRange,
    Dialect,
    InputError,
    MixedArrayTypes,
    Rule,
    ShapeMismatch,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class Mistake:
    """One bad input: ``native(k)`` and ``ours(k)`` on a namespace ``k`` of modules and arrays.

    ``raises``: the framework's class (a dotted path into ``k``, or a builtin's name), which
    both must raise; ``native_returns``: the framework computes instead (we raise ``raises``).
    ``words``: regular expressions our message must match. ``core``: the error is one of the
    core's (``xentropy._errors``), not one the dialect raises itself.
    """

    native: Callable[[Any], Any]
    ours: Callable[[Any], Any]
    raises: str
    words: tuple[str, ...]
    native_returns: bool = False
    core: bool = True


def resolve(k: Any, path: str) -> type[BaseException]:
    if "." not in path:
        return getattr(builtins, path)
    head, *rest = path.split(".")
    value = getattr(k, head)
    for part in rest:
        value = getattr(value, part)
    return value


def check(k: Any, mistake: Mistake) -> None:
    cls = resolve(k, mistake.raises)
    if mistake.native_returns:
        mistake.native(k)  # the framework computes a number
    else:
        with pytest.raises(cls):
            mistake.native(k)
    with pytest.raises(cls) as ours:
        mistake.ours(k)
    error = ours.value
    assert isinstance(error, InputError) == mistake.core, type(error)
    message = str(error)
    for word in mistake.words:
        assert re.search(word, message), (word, message)
    assert "Multiple namespaces" not in message and "array_api_compat" not in message


# --- the mechanism ----------------------------------------------------------------------------


class FrameworkError(Exception):
    """A framework's class whose initialiser keeps state, as TensorFlow's ``OpError``."""

    def __init__(self, node: Any, message: str) -> None:
        super().__init__()
        self.node, self.message = node, message


def _phrase(error: InputError, names: _errors.Names) -> str:
    return f"{names('targets')} vs {names.prediction}: bad {error.fields['value']}"


FAKE = Dialect("Fake", {ClassIndexOutOfRange: Rule(FrameworkError, _phrase, ("node",))})


def test_translation_renames_and_adds_the_framework_class_and_phrase() -> None:
    error = ClassIndexOutOfRange(
        "{targets} holds class index 7 for {scores} (1 of 4 targets)",
        prediction="scores",
        value=7,
    )
    assert str(error) == "targets holds class index 7 for scores (1 of 4 targets)"
    assert error.references == ("targets", "scores")
    mapping = _errors.dialect_names(("logits", "targets"), ("input", "target"), 0)
    translated = FAKE.translate(error, mapping)
    assert isinstance(translated, ClassIndexOutOfRange) and isinstance(translated, ValueError)
    assert isinstance(translated, FrameworkError) and translated.node == "node"
    # the prediction is named by its position, whatever the core called it
    assert str(translated) == (
        "target holds class index 7 for input (1 of 4 targets); target vs input: bad 7"
    )
    assert translated.args == (str(translated),)
    again = pickle.loads(pickle.dumps(translated))
    assert type(again) is type(translated) and str(again) == str(translated)
    assert again.node == "node"


def test_a_kind_without_a_rule_keeps_the_core_class_and_a_core_call_is_untouched() -> None:
    error = ShapeMismatch("{targets} has shape (3,)", argument="targets")
    translated = FAKE.translate(error, {"targets": "labels"})
    assert type(translated) is ShapeMismatch and str(translated) == "labels has shape (3,)"
    with pytest.raises(ShapeMismatch) as raised, FAKE.raising(None):
        raise error
    assert raised.value is error
    with pytest.raises(ShapeMismatch, match=r"^labels has"), FAKE.raising({"targets": "labels"}):
        raise error


def test_extended_dialect_adds_classes_and_replaces_phrases() -> None:
    keras_like = FAKE.extended("Keras", {ClassIndexOutOfRange: Rule(LookupError, None)})
    error = ClassIndexOutOfRange("{targets} bad", value=1)
    translated = keras_like.translate(error, {"targets": "y_true"})
    assert isinstance(translated, FrameworkError) and isinstance(translated, LookupError)
    assert str(translated).endswith("y_true vs the prediction: bad 1")


def test_a_name_that_cannot_be_a_reference_stays_plain_text() -> None:
    assert _errors.ref("input 0") == "input 0"
    assert str(ShapeMismatch(f"{_errors.ref('input 0')} has {{no}} shape")) == (
        "input 0 has no shape"
    )


# --- the core: mixed array libraries and Python lists -----------------------------------------


def test_core_names_mixed_array_types_and_lists() -> None:
    import xentropy

    torch = require_or_skip("torch")
    logits, labels = np.zeros((2, 3)), np.array([0, 2])
    with pytest.raises(TypeError) as raised:
        xentropy.softmax_cross_entropy(torch.zeros(2, 3), labels)
    assert isinstance(raised.value, MixedArrayTypes)
    assert str(raised.value) == (
        "logits is a torch.Tensor but targets is a numpy.ndarray; convert targets with "
        "torch.as_tensor(targets)"
    )
    with pytest.raises(TypeError, match=r"targets is a Python list, not an array.*numpy\.asarray"):
        xentropy.softmax_cross_entropy(logits, [0, 2])
    with pytest.raises(TypeError, match="probs is a Python list"):
        xentropy.binary_cross_entropy([0.5], [1.0])


def test_core_keeps_its_names_and_classes_on_framework_arrays() -> None:
    """Through the core's own functions a torch tensor gets the core's error, not torch's."""
    import xentropy

    torch = require_or_skip("torch")
    with pytest.raises(ClassIndexOutOfRange) as raised:
        xentropy.softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]))
    assert not isinstance(raised.value, IndexError)
    assert str(raised.value).startswith("targets holds class index 3, outside [0, 3)")


def test_core_tells_to_squeeze_an_index_column() -> None:
    import xentropy

    with pytest.raises(ShapeMismatch, match=r"targets of shape \(4, 1\).*squeeze the last axis"):
        xentropy.softmax_cross_entropy(np.zeros((4, 3)), np.zeros((4, 1), dtype=int))


# --- PyTorch ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tk() -> SimpleNamespace:
    torch = require_or_skip("torch")
    import torch.nn.functional as F
    from xentropy.backends.torch import functional as X
    from xentropy.backends.torch import nn as Xnn

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g)
    return SimpleNamespace(
        torch=torch,
        F=F,
        X=X,
        Xnn=Xnn,
        x=x,
        logp=torch.log_softmax(x, 1),
        y=torch.tensor([0, 1, 2, 1]),
        p=torch.softmax(torch.randn(4, 3, generator=g), 1),
        b=torch.rand(4, generator=g),
        t=torch.tensor([0.0, 1.0, 1.0, 0.0]),
        h=torch.randn(4, 2, generator=g),
        w=torch.randn(3, 2, generator=g),
    )


def both(call: Callable[[Any, Any], Any]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """``call(k, module)`` as the native (``k.F``-style first module) and our call."""
    return (lambda k: call(k, k.F)), (lambda k: call(k, k.X))


def case(call: Callable[[Any, Any], Any], raises: str, *words: str, **kw: Any) -> Mistake:
    """A :class:`Mistake` that calls ``call(k, k.F)`` natively and ``call(k, k.X)`` for ours."""
    native, ours = both(call)
    return Mistake(native, ours, raises, words, **kw)


TORCH = {
    "ce index == C": case(
        lambda k, m: m.cross_entropy(k.x, k.torch.tensor([0, 1, 3, 1])),
        "IndexError",
        r"^target holds class index 3, outside \[0, 3\)",
        "Target 3 is out of bounds",
    ),
    "ce index -1": case(
        lambda k, m: m.cross_entropy(k.x, k.torch.tensor([0, -1, 2, 1])),
        "IndexError",
        "class index -1",
        "Target -1 is out of bounds",
    ),
    "nll index == C": case(
        lambda k, m: m.nll_loss(k.logp, k.torch.tensor([3, 1, 0, 1])), "IndexError", "index 3"
    ),
    "ce (N, 1) int target": case(
        lambda k, m: m.cross_entropy(k.x, k.y[:, None]),
        "RuntimeError",
        r"target of shape \(4, 1\)",
        r"input \(4, 3\)",
        "squeeze",
    ),
    "nll (N, 1) int target": case(
        lambda k, m: m.nll_loss(k.logp, k.y[:, None]),
        "RuntimeError",
        r"target of shape \(4, 1\)",
        "squeeze axis 1 of target",
    ),
    "ce batch size": case(
        lambda k, m: m.cross_entropy(k.x, k.torch.tensor([0, 1, 2, 1, 0])),
        "ValueError",
        r"target has shape \(5,\)",
        r"Expected input batch_size \(4\) to match target batch_size \(5\)",
    ),
    "ce spatial size": case(
        lambda k, m: m.cross_entropy(k.torch.zeros(2, 3, 5), k.torch.zeros(2, 4).long()),
        "RuntimeError",
        r"target has shape \(2, 4\)",
        r"Expected target size \[2, 5\], got \[2, 4\]",
    ),
    "ce probabilities batch size": case(
        lambda k, m: m.cross_entropy(k.x, k.torch.rand(5, 3)),
        "ValueError",
        r"Expected input batch_size \(4\) to match target batch_size \(5\)",
    ),
    "ce probabilities classes": case(
        lambda k, m: m.cross_entropy(k.x, k.torch.rand(4, 5)),
        "RuntimeError",
        r"target has shape \(4, 5\) but probability targets must have the shape of input",
    ),
    "ce float class indices": case(
        lambda k, m: m.cross_entropy(k.x, k.y.float()),
        "RuntimeError",
        r"^target of shape \(4,\) holds class indices",
        "torch.float32",
        "expected target dtype to be Long or Byte",
    ),
    "ce int logits": case(
        lambda k, m: m.cross_entropy(k.y[:, None].repeat(1, 3), k.y),
        "RuntimeError",
        "^input must be a real floating-point array; got dtype torch.int64",
    ),
    "ce weight shape": case(
        lambda k, m: m.cross_entropy(k.x, k.y, weight=k.torch.ones(2)),
        "RuntimeError",
        r"^weight must have shape \(3,\)",
        "weight tensor should be defined either for all 3 classes or no classes",
    ),
    "ce label_smoothing 1.5": case(
        lambda k, m: m.cross_entropy(k.x, k.y, label_smoothing=1.5),
        "RuntimeError",
        "got 1.5",
        r"label_smoothing must be between 0\.0 and 1\.0",
    ),
    "ce ignore_index with probabilities": case(
        lambda k, m: m.cross_entropy(k.x, k.p, ignore_index=1),
        "RuntimeError",
        "ignore_index is not supported for floating point target",
    ),
    "ce numpy target": case(
        lambda k, m: m.cross_entropy(k.x, k.y.numpy()),
        "TypeError",
        "target must be a torch.Tensor, not a numpy.ndarray",
        r"torch\.as_tensor\(target\)",
    ),
    "ce list target": case(
        lambda k, m: m.cross_entropy(k.x, [0, 1, 2, 1]),
        "TypeError",
        "target must be a torch.Tensor, not a Python list",
    ),
    "ce numpy input": case(
        lambda k, m: m.cross_entropy(k.x.numpy(), k.y), "TypeError", "input must be a torch"
    ),
    "bce target shape": case(
        lambda k, m: m.binary_cross_entropy(k.b, k.t[:, None]),
        "ValueError",
        r"target has shape \(4, 1\) but binary targets must have the shape of input \(4,\)",
    ),
    "bce target 1.5": case(
        lambda k, m: m.binary_cross_entropy(k.b, k.t + 1.5),
        "RuntimeError",
        "got 1.5",
        "all elements of target should be between 0 and 1",
    ),
    "bce input 1.5": case(
        lambda k, m: m.binary_cross_entropy(k.b + 1.5, k.t),
        "RuntimeError",
        "^input must lie in",
        "all elements of input should be between 0 and 1",
    ),
    "bce weight shape": case(
        lambda k, m: m.binary_cross_entropy(k.b, k.t, weight=k.torch.ones(3)),
        "RuntimeError",
        r"^weight of shape \(3,\) does not broadcast to input of shape \(4,\)",
    ),
    "bce_with_logits target shape": case(
        lambda k, m: m.binary_cross_entropy_with_logits(k.b, k.t[:3]),
        "ValueError",
        r"target has shape \(3,\)",
    ),
    "bce_with_logits pos_weight shape": case(
        lambda k, m: m.binary_cross_entropy_with_logits(k.b, k.t, pos_weight=k.torch.ones(3)),
        "RuntimeError",
        r"^pos_weight of shape \(3,\)",
    ),
    "bce_with_logits numpy target": case(
        lambda k, m: m.binary_cross_entropy_with_logits(k.b, k.t.numpy()),
        "TypeError",
        "target must be a torch.Tensor",
    ),
    "bce_with_logits int input with pos_weight": case(
        lambda k, m: m.binary_cross_entropy_with_logits(k.y, k.t, pos_weight=k.torch.ones(4)),
        "RuntimeError",
        "^input must be a real floating-point array; got dtype torch.int64",
    ),
    "multilabel int input with weight": case(
        lambda k, m: m.multilabel_soft_margin_loss(k.y[:, None], k.t[:, None], k.torch.ones(1)),
        "RuntimeError",
        "^input must be a real floating-point array",
    ),
    "kl_div target shape": case(
        lambda k, m: m.kl_div(k.logp, k.torch.rand(4, 5), reduction="batchmean"),
        "RuntimeError",
        r"target has shape \(4, 5\) but it must have the shape of input \(4, 3\)",
    ),
    "kl_div int input": case(
        lambda k, m: m.kl_div(k.y[:, None].repeat(1, 3), k.p, reduction="batchmean"),
        "RuntimeError",
        "^input must be a real floating-point array",
    ),
    "kl_div numpy target": case(
        lambda k, m: m.kl_div(k.logp, k.p.numpy(), reduction="batchmean"),
        "TypeError",
        "target must be a torch.Tensor",
    ),
    "multilabel target shape": case(
        lambda k, m: m.multilabel_soft_margin_loss(k.x, k.torch.ones(4, 5)),
        "RuntimeError",
        r"target has shape \(4, 5\)",
    ),
    "multilabel weight shape": case(
        lambda k, m: m.multilabel_soft_margin_loss(k.x, k.p, weight=k.torch.ones(2)),
        "RuntimeError",
        r"^weight of shape \(2,\)",
    ),
    "multilabel list target": case(
        lambda k, m: m.multilabel_soft_margin_loss(k.x, k.p.tolist()),
        "TypeError",
        "target must be a torch.Tensor, not a Python list",
    ),
    "linear index == V": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.torch.tensor([0, 3, 1, 1])),
        "IndexError",
        "^target holds class index 3",
        "Target 3 is out of bounds",
    ),
    "linear label_smoothing 2": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y, label_smoothing=2.0),
        "RuntimeError",
        r"label_smoothing must be between 0\.0 and 1\.0",
    ),
    "linear weight shape": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y, weight=k.torch.ones(2)),
        "RuntimeError",
        "weight tensor should be defined either for all 3 classes",
    ),
    "linear batch size": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.torch.tensor([0, 1, 2, 1, 0])),
        "ValueError",
        r"^target has shape \(5,\)",
    ),
    "linear float class indices": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y.float()),
        "RuntimeError",
        "float32",
    ),
    "linear numpy target": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y.numpy()),
        "TypeError",
        "target must be a torch.Tensor",
    ),
    # PyTorch computes with these; we raise an error of the class it uses for bad values
    "ce label_smoothing -0.1": case(
        lambda k, m: m.cross_entropy(k.x, k.y, label_smoothing=-0.1),
        "RuntimeError",
        "got -0.1",
        native_returns=True,
    ),
    "ce negative weight": case(
        lambda k, m: m.cross_entropy(k.x, k.y, weight=-k.torch.ones(3)),
        "RuntimeError",
        r"^weight must lie in \[0\.0, inf\]; got -1\.0",
        native_returns=True,
    ),
    "bce_with_logits target 1.5": case(
        lambda k, m: m.binary_cross_entropy_with_logits(k.b, k.t + 1.5),
        "RuntimeError",
        "^target must lie in",
        native_returns=True,
    ),
}


@pytest.mark.parametrize("case", list(TORCH))
def test_torch(tk: SimpleNamespace, case: str) -> None:
    check(tk, TORCH[case])


def modules(call: Callable[[Any, Any], Any], raises: str, *words: str, **kw: Any) -> Mistake:
    """A :class:`Mistake` that calls ``call(k, torch.nn)`` natively and ``call(k, ours)``."""
    return Mistake(lambda k: call(k, k.torch.nn), lambda k: call(k, k.Xnn), raises, words, **kw)


# PyTorch's own error inputs of linear_cross_entropy and LinearCrossEntropyLoss (torch.testing's
# error_inputs_linear_cross_entropy, module_error_inputs_torch_nn_LinearCrossEntropyLoss): our
# message ends with the words its regexes match, after ours; the core's errors use the names of
# this dialect (input, linear_weight, target), never the core's (hidden, shape[:-1], (V, D))
TORCH_LINEAR = {
    "input 3-d": case(
        lambda k, m: m.linear_cross_entropy(k.h[None], k.w, k.y[None]),
        "RuntimeError",
        r"^input must have 1 or 2 dimensions, \(D,\) or \(N, D\); got shape \(1, 4, 2\)",
        r"input\.flatten\(0, -2\)",
        "expected input with dimensionality 1 or 2, got 3",
        core=False,
    ),
    "linear_weight 1-d": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w[0], k.y),
        "RuntimeError",
        r"^linear_weight must have at least 2 dimensions, \(C, D\); got shape \(2,\)",
        "expected linear_weight with dimensionality at least 2, got 1",
        core=False,
    ),
    "in_features": case(
        lambda k, m: m.linear_cross_entropy(k.torch.zeros(4, 5), k.w, k.y),
        "RuntimeError",
        r"got input \(4, 5\) and linear_weight \(3, 2\)",
        r"expected equal input and linear_weight last dimensions \(in_features\), got 5 and 2, "
        "respectively",
        core=False,
    ),
    "linear_bias shape": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y, linear_bias=k.torch.zeros(2)),
        "RuntimeError",
        r"^linear_bias must have one entry per output of linear_weight \(3, 2\)",
        r"expected linear_bias shape \(3,\), got \(2,\)$",
        core=False,
    ),
    "K-dimensional, unbatched": case(
        lambda k, m: m.linear_cross_entropy(k.h[0], k.torch.zeros(3, 5, 2), k.y[:1]),
        "RuntimeError",
        r"^input must be batched, \(N, 2\), for a K-dimensional loss",
        r"K-dimensional loss defined by linear_weight shape \(3, 5, 2\) requires batched input, "
        r"\(N, 2\), got unbatched input with shape \(2,\)",
        core=False,
    ),
    "ignore_index with probabilities": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.p, ignore_index=1),
        "RuntimeError",
        r"^ignore_index=1 cannot be given when target holds class probabilities",
        "ignore_index cannot be specified when target contains probabilities",
        core=False,
    ),
    # PyTorch's words come from the matrix product here, and depend on its path
    "dtype mismatch": case(
        lambda k, m: m.linear_cross_entropy(k.h.double(), k.w, k.y),
        "RuntimeError",
        "must have the same dtype",
        "got input torch.float64, linear_weight torch.float32$",
        core=False,
    ),
    "probabilities batch size": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.torch.rand(5, 3)),
        "ValueError",
        r"^target has shape \(5, 3\) but probability targets must have the shape of the logits, "
        r"input @ linear_weight\.T: \(4, 3\)",
        r"Expected input batch_size \(4\) to match target batch_size \(5\)",
    ),
    "class indices batch size": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.torch.tensor([0, 1, 2, 1, 0])),
        "ValueError",
        r"^target has shape \(5,\) but class-index targets must have the shape of input "
        r"\(4, 2\) without its last axis: \(4,\)",
        r"Expected input batch_size \(4\) to match target batch_size \(5\)",
    ),
    "(N, 1) int target": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y[:, None]),
        "RuntimeError",
        r"^target of shape \(4, 1\) has an integer dtype, so it holds class indices",
        r"the shape of input \(4, 2\) without its last axis: \(4,\)",
        "squeeze the last axis of target",
    ),
    "float class indices": case(
        lambda k, m: m.linear_cross_entropy(k.h, k.w, k.y.float()),
        "RuntimeError",
        r"^target of shape \(4,\) holds class indices and must have an integer dtype",
        r"pass probabilities of shape \(4, 3\)",
        "expected target dtype to be Long or Byte",
    ),
    "int input": case(
        lambda k, m: m.linear_cross_entropy(k.h.long(), k.w.long(), k.y),
        "RuntimeError",
        "^input must be a real floating-point array; got dtype torch.int64",
    ),
    "module weight shape": modules(
        lambda k, nn: nn.LinearCrossEntropyLoss(2, 3, weight=k.torch.ones(4)),
        "RuntimeError",
        r"^weight must have shape \(3,\), one weight per class; got \(4,\)",
        r"expected weight shape to be \(3,\), got \(4,\)",
        core=False,
    ),
    "module label_smoothing 2": modules(
        lambda k, nn: nn.LinearCrossEntropyLoss(2, 3, label_smoothing=2.0),
        "RuntimeError",
        r"^label_smoothing must be in \[0, 1\]",
        r"expected label_smoothing to be in range \[0, 1\], got 2\.0",
        core=False,
    ),
    "module label_smoothing -0.1": modules(
        lambda k, nn: nn.LinearCrossEntropyLoss(2, 3, label_smoothing=-0.1),
        "RuntimeError",
        r"expected label_smoothing to be in range \[0, 1\], got -0\.1",
        core=False,
    ),
    "module in_features": modules(
        lambda k, nn: nn.LinearCrossEntropyLoss(3, 2)(k.torch.zeros(4, 5), k.torch.zeros(4, 2)),
        "RuntimeError",
        r"expected equal input and linear_weight last dimensions \(in_features\), got 5 and 3, "
        "respectively",
        core=False,
    ),
    "module probabilities batch size": modules(
        lambda k, nn: nn.LinearCrossEntropyLoss(3, 2)(k.torch.zeros(4, 3), k.torch.zeros(5, 2)),
        "ValueError",
        r"Expected input batch_size \(4\) to match target batch_size \(5\)",
    ),
}


@pytest.mark.parametrize("case", list(TORCH_LINEAR))
def test_torch_linear_cross_entropy(tk: SimpleNamespace, case: str) -> None:
    require_or_skip("torch")
    if not hasattr(tk.F, "linear_cross_entropy"):
        pytest.skip("this torch has no F.linear_cross_entropy to compare with")
    check(tk, TORCH_LINEAR[case])
    with pytest.raises(Exception) as raised:
        TORCH_LINEAR[case].ours(tk)
    message = str(raised.value)
    assert not re.search(r"\bhidden\b|shape\[:-1\]|\(V,", message), message


def test_weighted_int_logits_is_a_type_error_too(tfk: SimpleNamespace) -> None:
    """As every other function of the dialect (the weight is converted before the checks)."""
    logits = tfk.tf.cast(tfk.b, tfk.tf.int32)
    with pytest.raises(TypeError) as raised:
        tfk.X.nn.weighted_cross_entropy_with_logits(tfk.t, logits, 2.0)
    assert isinstance(raised.value, tfk.tf.errors.InvalidArgumentError)
    assert "finfo" not in str(raised.value)


def test_torch_errors_are_also_value_errors(tk: SimpleNamespace) -> None:
    """Code written for the core (``except ValueError``) still catches them."""
    with pytest.raises(ValueError):
        tk.X.cross_entropy(tk.x, tk.torch.tensor([0, 1, 3, 1]))
    with pytest.raises(TypeError):
        tk.X.cross_entropy(tk.x, tk.y.float())
    with pytest.raises(IndexError) as error:
        tk.X.nll_loss(tk.logp, tk.torch.tensor([3, 0, 0, 0]))
    again = pickle.loads(pickle.dumps(error.value))
    assert isinstance(again, IndexError) and str(again) == str(error.value)


# --- TensorFlow -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfk() -> SimpleNamespace:
    tf = require_or_skip("tensorflow")
    from xentropy.backends.tensorflow import losses, nn

    rng = np.random.default_rng(1)
    z = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    return SimpleNamespace(
        tf=tf,
        F=SimpleNamespace(nn=tf.nn, losses=tf.compat.v1.losses),
        X=SimpleNamespace(nn=nn, losses=losses),
        z=z,
        y=tf.constant([0, 1, 2, 1]),
        p=tf.nn.softmax(z),
        b=tf.constant(rng.normal(size=4), tf.float32),
        t=tf.constant([0.0, 1.0, 1.0, 0.0]),
    )


INVALID = "tf.errors.InvalidArgumentError"
SPARSE_WORDS = "Received a label value of 3 which is outside the valid range of \\[0, 3\\)"

TENSORFLOW = {
    "sparse index == C": case(
        lambda k, m: m.nn.sparse_softmax_cross_entropy_with_logits(
            labels=k.tf.constant([0, 1, 3, 1]), logits=k.z
        ),
        INVALID,
        r"^labels holds class index 3, outside \[0, 3\)",
        SPARSE_WORDS,
    ),
    "sparse index -1": case(
        lambda k, m: m.nn.sparse_softmax_cross_entropy_with_logits(
            labels=k.tf.constant([0, -1, 2, 1]), logits=k.z
        ),
        INVALID,
        "Received a label value of -1",
    ),
    "sparse (N, 1) labels": case(
        lambda k, m: m.nn.sparse_softmax_cross_entropy_with_logits(labels=k.y[:, None], logits=k.z),
        "ValueError",
        r"\(4, 1\)",
        "squeeze",
        r"`labels\.shape\.rank` must equal `logits\.shape\.rank - 1`",
        core=False,
    ),
    "sparse batch size": case(
        lambda k, m: m.nn.sparse_softmax_cross_entropy_with_logits(
            labels=k.tf.constant([0, 1, 2, 1, 0]), logits=k.z
        ),
        "ValueError",
        r"^labels has shape \(5,\)",
        r"`labels\.shape` must equal `logits\.shape` except for the last dimension",
    ),
    "sparse float labels": case(
        lambda k, m: m.nn.sparse_softmax_cross_entropy_with_logits(
            labels=k.tf.cast(k.y, k.tf.float32), logits=k.z
        ),
        INVALID,
        r"^labels of shape \(4,\) holds class indices",
        "float32",
    ),
    "sparse int logits": case(
        lambda k, m: m.nn.sparse_softmax_cross_entropy_with_logits(
            labels=k.y, logits=k.tf.cast(k.z, k.tf.int32)
        ),
        INVALID,
        "^logits must be a real floating-point array",
    ),
    "dense labels shape": case(
        lambda k, m: m.nn.softmax_cross_entropy_with_logits(labels=k.tf.ones((4, 5)), logits=k.z),
        INVALID,
        r"^labels has shape \(4, 5\)",
        "`logits` and `labels` must have the same shape",
    ),
    "dense int logits": case(
        lambda k, m: m.nn.softmax_cross_entropy_with_logits(
            labels=k.p, logits=k.tf.cast(k.z, k.tf.int32)
        ),
        INVALID,
        "int32",
    ),
    "sigmoid labels shape": case(
        lambda k, m: m.nn.sigmoid_cross_entropy_with_logits(labels=k.t[:, None], logits=k.b),
        "ValueError",
        r"^labels has shape \(4, 1\)",
        "must have the same shape",
    ),
    "sigmoid int logits": case(
        lambda k, m: m.nn.sigmoid_cross_entropy_with_logits(
            labels=k.tf.cast(k.t, k.tf.int32), logits=k.tf.cast(k.b, k.tf.int32)
        ),
        INVALID,
        "^logits must be a real floating-point array",
    ),
    "weighted int logits": case(
        lambda k, m: m.nn.weighted_cross_entropy_with_logits(k.t, k.tf.cast(k.b, k.tf.int32), 2.0),
        INVALID,
        "^logits must be a real floating-point array; got dtype",
        "int32",
    ),
    "weighted int logits, array pos_weight": case(
        lambda k, m: m.nn.weighted_cross_entropy_with_logits(
            k.t, k.tf.cast(k.b, k.tf.int32), k.tf.constant([1, 2, 3, 4])
        ),
        INVALID,
        "^logits must be a real floating-point array",
    ),
    "weighted pos_weight shape": case(
        lambda k, m: m.nn.weighted_cross_entropy_with_logits(k.t, k.b, k.tf.ones(3)),
        INVALID,
        r"^pos_weight of shape \(3,\)",
    ),
    "v1 sparse index == C": case(
        lambda k, m: m.losses.sparse_softmax_cross_entropy(k.tf.constant([0, 3, 1, 1]), k.z),
        INVALID,
        SPARSE_WORDS,
    ),
    "v1 sparse float labels": case(
        lambda k, m: m.losses.sparse_softmax_cross_entropy(k.tf.cast(k.y, k.tf.float32), k.z),
        INVALID,
        "^labels of shape",
    ),
    "v1 softmax int logits": case(
        lambda k, m: m.losses.softmax_cross_entropy(
            k.tf.one_hot(k.y, 3), k.tf.cast(k.z, k.tf.int32)
        ),
        INVALID,
        "^logits must be",
    ),
    # TensorFlow computes with these; we raise its class for a bad argument
    "sigmoid labels 1.5": case(
        lambda k, m: m.nn.sigmoid_cross_entropy_with_logits(labels=k.t + 1.5, logits=k.b),
        INVALID,
        r"^labels must lie in \[0\.0, 1\.0\]; got 1\.5",
        native_returns=True,
    ),
    "v1 sigmoid labels 1.5": case(
        lambda k, m: m.losses.sigmoid_cross_entropy(k.t[:, None] + 1.5, k.b[:, None]),
        INVALID,
        "^multi_class_labels must lie in",
        native_returns=True,
    ),
    "v1 softmax label_smoothing 1.5": case(
        lambda k, m: m.losses.softmax_cross_entropy(k.p, k.z, label_smoothing=1.5),
        INVALID,
        "^label_smoothing must be a number in",
        native_returns=True,
    ),
}


@pytest.mark.parametrize("case", list(TENSORFLOW))
def test_tensorflow(tfk: SimpleNamespace, case: str) -> None:
    check(tfk, TENSORFLOW[case])


def test_tensorflow_errors_are_also_value_errors(tfk: SimpleNamespace) -> None:
    labels = tfk.tf.constant([0, 1, 3, 1])
    with pytest.raises(ValueError) as raised:
        tfk.X.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tfk.z)
    assert isinstance(raised.value, tfk.tf.errors.InvalidArgumentError)
    assert raised.value.message == str(raised.value)  # OpError's own accessor
    again = pickle.loads(pickle.dumps(raised.value))
    assert isinstance(again, tfk.tf.errors.InvalidArgumentError) and str(again) == str(raised.value)


# --- optax ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jk() -> SimpleNamespace:
    jax = require_or_skip("jax")
    optax = require_or_skip("optax")
    import jax.numpy as jnp
    from xentropy.backends import jax as X

    z = jax.random.normal(jax.random.key(0), (4, 3))
    return SimpleNamespace(
        jnp=jnp,
        F=optax.losses,
        X=X,
        z=z,
        y=jnp.array([0, 1, 2, 1]),
        p=jax.nn.softmax(z),
        b=jnp.array([0.5, -1.0, 2.0, 0.0]),
        t=jnp.array([0.0, 1.0, 1.0, 0.0]),
    )


OPTAX = {
    "integer labels float": case(
        lambda k, m: m.softmax_cross_entropy_with_integer_labels(k.z, k.y.astype(float)),
        "TypeError",
        r"^labels of shape \(4,\) holds class indices",
        "float32",
    ),
    "integer labels int logits": case(
        lambda k, m: m.softmax_cross_entropy_with_integer_labels(k.z.astype(int), k.y),
        "TypeError",
        "^logits must be a real floating-point array; got dtype int32",
    ),
    "integer labels (N, 1)": case(
        lambda k, m: m.softmax_cross_entropy_with_integer_labels(k.z, k.y[:, None]),
        "ValueError",
        r"labels of shape \(4, 1\)",
        "squeeze",
        core=False,
    ),
    "integer labels batch size": case(
        lambda k, m: m.softmax_cross_entropy_with_integer_labels(k.z, k.jnp.array([0, 1, 2, 1, 0])),
        "ValueError",
        r"^labels has shape \(5,\)",
    ),
    "softmax labels shape": case(
        lambda k, m: m.softmax_cross_entropy(k.z, k.jnp.ones((4, 5))),
        "TypeError",
        r"^labels has shape \(4, 5\) but probability targets must have the shape of logits",
    ),
    "poly labels shape": case(
        lambda k, m: m.poly_loss_cross_entropy(k.z, k.jnp.ones((4, 5))),
        "TypeError",
        r"^labels has shape \(4, 5\)",
    ),
    "kl_divergence targets shape": case(
        lambda k, m: m.kl_divergence(k.z, k.jnp.ones((4, 5))),
        "TypeError",
        r"^targets has shape \(4, 5\) but it must have the shape of log_predictions",
    ),
    "sigmoid labels shape": case(
        lambda k, m: m.sigmoid_binary_cross_entropy(k.b, k.t[:3]),
        "TypeError",
        r"^labels has shape \(3,\) but binary targets must have the shape of logits \(4,\)",
    ),
    "focal labels shape": case(
        lambda k, m: m.sigmoid_focal_loss(k.b, k.t[:3]), "TypeError", r"^labels has shape"
    ),
    "softmax int logits": case(
        lambda k, m: m.softmax_cross_entropy(k.z.astype(int), k.p),
        "TypeError",
        "^logits must be a real floating-point array",
    ),
    # optax computes with these (a NaN loss, a negative loss); we raise
    "integer labels index == C": case(
        lambda k, m: m.softmax_cross_entropy_with_integer_labels(k.z, k.jnp.array([0, 3, 1, 1])),
        "ValueError",
        r"^labels holds class index 3",
        native_returns=True,
    ),
    "sigmoid labels 1.5": case(
        lambda k, m: m.sigmoid_binary_cross_entropy(k.b, k.t + 1.5),
        "ValueError",
        r"^labels must lie in \[0\.0, 1\.0\]; got 1\.5",
        native_returns=True,
    ),
}


@pytest.mark.parametrize("case", list(OPTAX))
def test_optax(jk: SimpleNamespace, case: str) -> None:
    check(jk, OPTAX[case])


# --- Keras (the backend of this process) -------------------------------------------------------


@pytest.fixture(scope="module")
def kk() -> SimpleNamespace:
    keras = require_or_skip("keras")
    from xentropy.backends.keras import losses as X

    backend = keras.backend.backend()
    classes = {"tensorflow": "tf.errors.InvalidArgumentError", "torch": "IndexError"}
    namespace = SimpleNamespace(
        keras=keras,
        backend=backend,
        F=keras.losses,
        X=X,
        index_error=classes.get(backend),
        probs=np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]], "float32"),
        column=np.array([[0], [1], [2]]),
        y=np.array([0, 1, 2]),
    )
    if backend == "tensorflow":
        import tensorflow as tf

        namespace.tf = tf
    return namespace


SAME_SHAPE = "Arguments `y_true` and `y_pred` must have the same shape"

KERAS = {
    # keras/src/losses/losses_test.py's own test_shape_mismatch cases
    "CategoricalCrossentropy column": case(
        lambda k, m: m.CategoricalCrossentropy()(k.column, k.probs),
        "ValueError",
        r"^y_true has shape \(3, 1\)",
        r"y_pred \(3, 3\)",
        "must have the same shape",
        SAME_SHAPE,
    ),
    "BinaryCrossentropy column": case(
        lambda k, m: m.BinaryCrossentropy()(k.column, k.probs),
        "ValueError",
        r"^y_true has shape \(3, 1\)",
        "must have the same shape",
    ),
    "categorical_crossentropy shape": case(
        lambda k, m: m.categorical_crossentropy(np.ones((3, 5), "float32"), k.probs),
        "ValueError",
        r"^y_true has shape \(3, 5\)",
        SAME_SHAPE,
    ),
    "SparseCategoricalCrossentropy batch size": case(
        lambda k, m: m.SparseCategoricalCrossentropy()(np.array([0, 1, 2, 1]), k.probs),
        "ValueError",
        r"^y_true has shape \(4,\)",
        f"{SAME_SHAPE} up until the last dimension",
    ),
}

KERAS_INDEX = case(
    lambda k, m: m.SparseCategoricalCrossentropy()(np.array([0, 3, 1]), k.probs),
    "index_error",
    r"^y_true holds class index 3, outside \[0, 3\)",
)


@pytest.mark.parametrize("case", list(KERAS))
def test_keras(kk: SimpleNamespace, case: str) -> None:
    check(kk, KERAS[case])


def test_keras_class_index_out_of_range(kk: SimpleNamespace) -> None:
    """Keras raises its backend's error (TensorFlow's, PyTorch's); on JAX it returns 0."""
    if kk.index_error is None:
        check(kk, Mistake(KERAS_INDEX.native, KERAS_INDEX.ours, "ValueError", (), True))
    else:
        check(kk, Mistake(KERAS_INDEX.native, KERAS_INDEX.ours, kk.index_error, ()))


def test_keras_loss_classes_take_lists_as_keras_functions_do(kk: SimpleNamespace) -> None:
    ours = kk.X.CategoricalCrossentropy()([[1.0, 0.0, 0.0]], kk.probs[:1])
    native = kk.F.categorical_crossentropy([[1.0, 0.0, 0.0]], kk.probs[:1])
    np.testing.assert_allclose(np.asarray(ours), np.asarray(native)[0], rtol=1e-6)
