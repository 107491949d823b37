"""The examples in the docstrings run: a changed function cannot leave a wrong example behind."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import contract
import stream.domain
import stream.state

PACKAGES = [contract, stream.domain, stream.state]
MODULES = ["nonsite.evidence", "nonsite.statistics", "stream.runtime.topics"]


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(names + MODULES)


@pytest.mark.parametrize("name", modules())
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
