"""Every exception class in ``src/`` descends from ``InfrAgentError`` and is drawn in ``errors.py``.

Why a test: the tree in the docstring is the map callers use to decide what to catch; a class that
is not on it (or that escapes the root) is an error a loop boundary cannot handle on purpose.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import infragent
from infragent import errors


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(infragent.__path__, "infragent."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def _drawn() -> dict[str, int]:
    """Class name → depth in the drawn tree."""
    tree: dict[str, int] = {}
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?([A-Za-z_]\w*(?:Error|Exception))\b", line)
        if m:
            tree[m.group(2)] = len(m.group(1)) // 4 + (0 if m.group(2) == "InfrAgentError" else 1)
    return tree


def test_the_walk_finds_the_known_classes() -> None:
    names = {cls.__name__ for cls in _exception_classes().values()}
    assert {"InfrAgentError", "WireError", "SpoolFullError", "LeaseLostError", "SeriesCapError"} <= names


def test_every_exception_descends_from_the_root() -> None:
    outside = [
        name for name, cls in _exception_classes().items() if not issubclass(cls, errors.InfrAgentError)
    ]
    assert outside == []


def test_every_exception_is_drawn_in_the_tree_and_nothing_else_is() -> None:
    classes = {cls.__name__ for cls in _exception_classes().values()}
    drawn = set(_drawn())
    assert classes - drawn == set(), "missing from the tree in errors.py"
    assert drawn - classes == set(), "drawn in errors.py but no longer exists"


def test_the_tree_shows_each_class_under_its_parent() -> None:
    depth = _drawn()
    for cls in _exception_classes().values():
        own = [b for b in cls.__mro__[1:] if issubclass(b, errors.InfrAgentError)]
        if cls is errors.InfrAgentError:
            continue
        assert depth[cls.__name__] == depth[own[0].__name__] + 1, cls.__name__
