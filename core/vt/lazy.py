"""Lazy package exports (PEP 562): an exported name's module is imported on first use.

vt imports every plugin's package when it loads plugins, so a package that imported its
implementation eagerly would make every command pay for numpy, OpenCV or torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, exporting ``name -> module`` (a
    module name starting with ``.`` is relative to ``package``). Use in ``__init__.py``:
    ``__getattr__, __dir__ = lazy_exports(__name__, {"Thing": ".things"})``."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


class _LazyModule:
    """Stands in for a module until an attribute is read, then imports it (once)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = import_module(self._name)
        value = getattr(module, attr)
        self.__dict__[attr] = value  # per-frame look-ups then skip this method
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """``name`` imported on first attribute access: for modules on the start-up path of
    commands that may never touch it (a plain transcode never needs numpy). Declare the real
    import for type checkers: ``if TYPE_CHECKING: import numpy as np`` /
    ``else: np = lazy_module("numpy")``."""
    return _LazyModule(name)
