"""The examples in the core's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import xentropy

MODULES = sorted(
    name
    for _, name, _ in pkgutil.iter_modules(xentropy.__path__, prefix="xentropy.")
    if name != "xentropy.__main__"
)


@pytest.mark.parametrize("name", ["xentropy", *MODULES])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
