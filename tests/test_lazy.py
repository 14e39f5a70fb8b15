"""``vt.lazy``: modules and package exports imported on first use, not at import time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from vt.lazy import lazy_module
wave = lazy_module("wave")
print("before", "wave" in sys.modules, repr(wave))
print("value", wave.WAVE_FORMAT_PCM, "wave" in sys.modules)
print("same", wave.open is sys.modules["wave"].open)
try:
    wave.no_such_name
except AttributeError:
    print("missing raises AttributeError")
"""


def _probe(code: str, cwd: Path | None = None) -> list[str]:
    """``code``'s printed lines, run in a fresh interpreter (nothing imported yet)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_lazy_module_imports_on_first_attribute_and_then_acts_as_the_module() -> None:
    assert _probe(PROBE) == [
        "before False <lazy module 'wave'>",
        "value 1 True",
        "same True",
        "missing raises AttributeError",
    ]


def test_lazy_exports_resolve_once_and_list_the_names() -> None:
    import vt

    assert "hookimpl" in dir(vt)
    first = vt.hookimpl
    assert vt.__dict__["hookimpl"] is first  # cached in the namespace after the first look-up
    try:
        vt.no_such_export  # noqa: B018
    except AttributeError as exc:
        assert "no_such_export" in str(exc)
    else:
        raise AssertionError("an unknown export must raise AttributeError")


DEFERRED_PROBE = """
import sys
from vt.lazy import deferred_imports
with deferred_imports("heavy.funcs", "os"):
    import user
print("after import", "heavy" in sys.modules, "heavy.funcs" in sys.modules, repr(user.double))
print("imported modules stay", user.sep == "/")
print("called", user.double(3), "heavy" in sys.modules)
print("attribute", user.Mode.A)
import heavy.funcs
print("real module", sys.modules["heavy.funcs"].double(4), type(heavy.funcs).__name__)
try:
    with deferred_imports("heavy.other"):
        import subclasses
except TypeError:
    print("base class fails, stand-in gone", "heavy.other" not in sys.modules)
"""


def test_deferred_imports_bind_names_that_import_their_module_when_first_used(
    tmp_path: Path,
) -> None:
    heavy = tmp_path / "heavy"
    heavy.mkdir()
    (heavy / "__init__.py").write_text("")
    (heavy / "funcs.py").write_text("def double(x):\n    return 2 * x\n\nclass Mode:\n    A = 1\n")
    (heavy / "other.py").write_text("class Base:\n    pass\n")
    (tmp_path / "user.py").write_text("from os import sep\nfrom heavy.funcs import Mode, double\n")
    (tmp_path / "subclasses.py").write_text(
        "from heavy.other import Base\n\nclass Child(Base):\n    pass\n"
    )
    assert _probe(DEFERRED_PROBE, cwd=tmp_path) == [
        "after import False False <deferred heavy.funcs.double>",
        "imported modules stay True",
        "called 6 True",
        "attribute 1",
        "real module 8 module",
        "base class fails, stand-in gone True",
    ]
