"""Every module's doctests run: one test per module of kb (kb.scrapers included)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import kb
import kb.scrapers

# kb.scrapers lives in scrapers/ (setup.cfg package_dir), so it is walked on its own path
MODULES = sorted({"kb", "kb.scrapers"} | {
    m.name for package in (kb, kb.scrapers)
    for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")})


def test_every_module_is_collected() -> None:
    assert {"kb.query.graph", "kb.identifiers", "kb.scrapers.webpage", "kb.store"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    """A module's examples pass, and a module whose source shows examples has them run."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if ">>> " in Path(module.__file__ or "").read_text(encoding="utf-8"):
        assert result.attempted > 0, f"{name} shows examples that doctest does not find"
