"""Lazy package exports (PEP 562): an exported name's module is imported on first use.

vt imports every plugin's package when it loads plugins, so a package that imported its
implementation eagerly would make every command pay for numpy, OpenCV or torch.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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


_UNSET = object()


class _Deferred:
    """``module.name``, imported when first called or read."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name
        self._value: Any = _UNSET

    def _resolve(self) -> Any:
        if self._value is _UNSET:
            module = import_module(self._module)
            if getattr(module, "__vt_stand_in__", False):
                raise ImportError(f"{self._module}.{self._name} was used while deferred")
            self._value = getattr(module, self._name)
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # Python's own protocol look-ups (__mro_entries__, ...)
            raise AttributeError(attr)
        return getattr(self._resolve(), attr)

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


@contextmanager
def deferred_imports(*modules: str) -> Iterator[None]:
    """While the block runs, each of ``modules`` not yet imported is a stand-in:
    ``from module import name`` binds a :class:`_Deferred` that imports ``module`` when
    ``name`` is first called or one of its attributes read. For a package whose import pulls
    in heavy modules for code vt never runs. The stand-ins are taken out when the block ends;
    what bound their names keeps the deferred values.

    Only for names the package calls or reads attributes of: a deferred value is no class
    (``isinstance``, ``except``, subclassing fail) and has no dunder attributes
    (``__name__``, ``__wrapped__``). A deferred name used at import time makes the block's
    import fail: import again without the block. The stand-ins are in the process-wide
    ``sys.modules``: callers serialise the block (another thread importing ``modules`` meanwhile
    gets an ImportError when it uses them)."""
    placed: list[tuple[str, types.ModuleType]] = []
    for module in modules:
        if module in sys.modules:
            continue
        stand_in = types.ModuleType(module)
        stand_in.__vt_stand_in__ = True  # type: ignore[attr-defined]

        def getattr_(name: str, module: str = module) -> Any:
            if name.startswith("__"):  # the import system's own look-ups (__path__, ...)
                raise AttributeError(name)
            return _Deferred(module, name)

        stand_in.__getattr__ = getattr_  # type: ignore[method-assign]
        sys.modules[module] = stand_in
        placed.append((module, stand_in))
    try:
        yield
    finally:
        for module, stand_in in placed:
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]
