"""The PyTorch dialect modules are complete stand-ins for ``torch.nn.functional`` and ``torch.nn``.

``xentropy.backends.torch.functional`` defines the cross-entropy family and hands every other name
to ``torch.nn.functional``; ``xentropy.backends.torch.nn`` does the same with ``torch.nn``
(``backends/_fallthrough.py``). Checked here:

* a small model and its training step (``nn.Sequential`` of ``Linear`` / ``ReLU``, SGD, a
  cross-entropy loss plus torch-only ``F.mse_loss``; and a ``LinearCrossEntropyLoss`` head)
  written against ``F`` / ``nn`` names only, run once with torch's modules and once with ours:
  the same losses and parameters, to the float32 tolerance (torch's run is the reference);
* the name rules: torch names resolve (attribute and ``from ... import``), ours win, ``dir()``
  lists both, ``__all__`` / ``import *`` keep ours, unknown and private names raise
  AttributeError naming both modules; ``nn.functional`` is our ``functional``; the package
  ``xentropy.backends.torch`` is not a stand-in;
* ``torch.compile(fullgraph=True)`` and ``torch.jit.script`` of code reaching torch names through
  our modules.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import require_or_skip, rng_for
from tolerances import assert_close

BORROWED_F = ("relu", "softmax", "log_softmax", "linear", "mse_loss", "dropout", "one_hot")
BORROWED_NN = ("Linear", "Module", "Sequential", "ReLU", "Parameter", "MSELoss", "init", "utils")


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    return require_or_skip("torch")


@pytest.fixture(scope="module")
def X(torch: ModuleType) -> ModuleType:
    return require_or_skip("torch", "xentropy.backends.torch")


@pytest.fixture(params=["functional", "nn"])
def pair(request: pytest.FixtureRequest, torch: ModuleType, X: ModuleType) -> tuple[Any, ...]:
    """(our module, torch's, names a user of the module takes from torch)."""
    if request.param == "functional":
        return X.functional, torch.nn.functional, BORROWED_F
    return X.nn, torch.nn, BORROWED_NN


def own_names(module: ModuleType) -> set[str]:
    return {name for name in vars(module) if not name.startswith("_")}


# --- a model and its training step, written against F / nn ---------------------------------


def training_run(torch: ModuleType, F: Any, nn: Any, steps: int = 4) -> tuple[list[float], list]:
    """An MLP classifier trained by SGD; every loss / layer name comes from ``F`` and ``nn``."""
    rng = rng_for("torch-fallthrough", "mlp")
    x = torch.tensor(rng.normal(size=(16, 4)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, size=16))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        logits = model(x)
        loss = criterion(logits, y) + F.cross_entropy(F.relu(logits), y)
        loss = loss + 1e-2 * F.mse_loss(F.softmax(logits, dim=1), F.one_hot(y, 3).float())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in model.parameters()]


def lm_head_run(torch: ModuleType, F: Any, nn: Any, steps: int = 4) -> tuple[list[float], list]:
    """A body ``Sequential(Linear, ReLU)`` and a ``LinearCrossEntropyLoss`` head, trained by
    SGD: the head's parameters come from the same seed on both sides."""
    rng = rng_for("torch-fallthrough", "lm-head")
    x = torch.tensor(rng.normal(size=(12, 4)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 9, size=12))
    y[3] = -100  # ignored: ignore_index=None is -100 for class indices
    torch.manual_seed(1)
    body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    head = nn.LinearCrossEntropyLoss(6, 9, bias=True, label_smoothing=0.1)
    params = [*body.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.5)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = head(body(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in params]


@pytest.mark.parametrize("run", [training_run, lm_head_run], ids=["mlp", "lm-head"])
def test_training_step_written_against_torch_names(torch, X, run: Callable[..., Any]) -> None:
    if run is lm_head_run and not hasattr(torch.nn, "LinearCrossEntropyLoss"):
        pytest.skip(f"torch {torch.__version__} has no nn.LinearCrossEntropyLoss (2.13+)")
    expected_losses, expected_params = run(torch, torch.nn.functional, torch.nn)
    losses, params = run(torch, X.functional, X.nn)
    assert expected_losses[-1] < expected_losses[0]  # it trains
    assert_close(losses, expected_losses, "float32", msg="loss history")
    assert len(params) == len(expected_params)
    for index, (actual, expected) in enumerate(zip(params, expected_params, strict=True)):
        assert_close(actual, expected, "float32", grad=True, msg=f"parameter {index}")


# --- the name rules ---------------------------------------------------------------------------


def test_torch_names_fall_through(pair) -> None:
    ours, theirs, borrowed = pair
    for name in borrowed:
        assert name not in vars(ours), name  # really borrowed, not defined here
        assert getattr(ours, name) is getattr(theirs, name), name


def test_from_import_of_a_torch_name(pair) -> None:
    ours, theirs, borrowed = pair
    namespace: dict[str, Any] = {}
    exec(f"from {ours.__name__} import {', '.join(borrowed)}", namespace)
    for name in borrowed:
        assert namespace[name] is getattr(theirs, name), name


def test_from_import_of_relu(torch) -> None:
    from xentropy.backends.torch.functional import relu

    assert relu is torch.nn.functional.relu


def test_our_names_win(pair) -> None:
    ours, theirs, _ = pair
    # LinearCrossEntropyOptions is torch's own dataclass, re-exported (where torch has one)
    shared = [n for n in ours.__all__ if hasattr(theirs, n) and n != "LinearCrossEntropyOptions"]
    assert "linear_cross_entropy" in shared or "LinearCrossEntropyLoss" in shared
    for name in shared:
        assert getattr(ours, name) is vars(ours)[name], name
        assert getattr(theirs, name) is not vars(ours)[name], name


def test_nn_functional_is_our_functional(torch, X) -> None:
    assert X.nn.functional is X.functional
    assert X.nn.functional.cross_entropy is not torch.nn.functional.cross_entropy
    assert X.nn.functional.relu is torch.nn.functional.relu
    assert X.nn.LinearCrossEntropyOptions is X.LinearCrossEntropyOptions
    assert X.functional.linear_cross_entropy is X.fused.linear_cross_entropy


def test_dir_lists_both(pair) -> None:
    ours, theirs, _ = pair
    listed = set(dir(ours))
    assert own_names(ours) | set(ours.__all__) <= listed
    public = {name for name in dir(theirs) if not name.startswith("_")}
    assert public <= listed, sorted(public - listed)[:5]
    assert not {n for n in listed - set(vars(ours)) if n.startswith("_")}  # nothing private added
    for name in listed - set(vars(ours)):  # every listed name resolves
        getattr(ours, name)


def test_all_and_star_import_stay_ours(pair) -> None:
    ours, _, borrowed = pair
    assert set(ours.__all__) <= own_names(ours)
    namespace: dict[str, Any] = {}
    exec(f"from {ours.__name__} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(ours.__all__)
    assert not set(borrowed) & set(ours.__all__)


def test_unknown_name_raises_naming_both_modules(pair) -> None:
    ours, theirs, _ = pair
    name = "no_such_name_anywhere"
    with pytest.raises(AttributeError) as raised:
        getattr(ours, name)
    message = str(raised.value)
    assert repr(ours.__name__) in message and repr(name) in message
    assert repr(theirs.__name__) in message, message
    assert raised.value.name == name and raised.value.obj is ours
    assert getattr(ours, name, "default") == "default"
    with pytest.raises(ImportError):
        exec(f"from {ours.__name__} import {name}", {})


def test_private_names_do_not_fall_through(pair) -> None:
    ours, theirs, _ = pair
    private = {n for n in dir(theirs) if n.startswith("_")} - set(vars(ours))
    assert private  # e.g. torch.nn.functional._Reduction, torch.nn._reduction
    for name in private | {"__wrapped__", "_private"}:
        assert not hasattr(ours, name), name
    assert inspect.unwrap(ours) is ours


def test_package_is_not_a_stand_in(torch, X) -> None:
    """The package collects functional and nn names; torch's other names are not its own."""
    for name in ("relu", "Linear", "softmax"):
        assert not hasattr(X, name), name
    with pytest.raises(AttributeError, match=r"^module 'xentropy.backends.torch' has no"):
        X.relu
    assert X.functional is importlib.import_module("xentropy.backends.torch.functional")
    assert {"functional", "nn", "fused", "LinearCrossEntropyLoss"} <= set(dir(X))


def test_functions_still_pickle_and_inspect(X) -> None:
    for module in (X.functional, X.nn):
        members = dict(inspect.getmembers(module))
        for name in module.__all__:
            value = vars(module)[name]
            assert members[name] is value, name
            if inspect.isfunction(value) or inspect.isclass(value):
                assert pickle.loads(pickle.dumps(value)) is value, name


# --- compilers ------------------------------------------------------------------------------


# torch's own notices while compiling
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`:UserWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_fullgraph_through_our_modules(torch, X) -> None:
    """One graph (``fullgraph=True``) with our cross_entropy and linear_cross_entropy (fused and
    with class weights) and torch's relu / softmax / Linear reached through our modules:
    values and gradients as eager. (``aot_eager``: dynamo and autograd tracing are what the
    module ``__getattr__`` could break; inductor is covered in test_torch_adapter.)"""
    F, nn = X.functional, X.nn
    rng = rng_for("torch-fallthrough", "compile")
    x0 = torch.tensor(rng.normal(size=(6, 5)), dtype=torch.float32)
    w0 = torch.tensor(rng.normal(size=(7, 5)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 7, size=6))
    class_weight = torch.tensor(rng.uniform(0.5, 2.0, size=7), dtype=torch.float32)
    torch.manual_seed(0)
    layer = nn.Linear(5, 5)

    def loss_fn(x: Any, w: Any) -> Any:
        h = F.relu(layer(x))
        fused = F.linear_cross_entropy(h, w, y, label_smoothing=0.1)
        weighted = F.linear_cross_entropy(h, w, y, weight=class_weight)
        return fused + weighted + F.cross_entropy(F.softmax(x, dim=1), y % 5)

    def value_and_grads(fn: Callable[..., Any]) -> list[np.ndarray]:
        x, w = (a.clone().requires_grad_(True) for a in (x0, w0))
        loss = fn(x, w)
        return [t.detach().numpy() for t in (loss, *torch.autograd.grad(loss, (x, w)))]

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    for got, expected in zip(value_and_grads(compiled), value_and_grads(loss_fn), strict=True):
        assert_close(got, expected, "float32", rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torch_jit_script_resolves_torch_names(torch, X) -> None:
    F = X.functional

    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) + F.softmax(x, dim=-1)

    x = torch.tensor(rng_for("torch-fallthrough", "jit").normal(size=(3, 4)))
    torch.testing.assert_close(torch.jit.script(fn)(x), fn(x))
