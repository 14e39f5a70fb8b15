"""``vt.lazy``: modules and package exports imported on first use, not at import time."""

from __future__ import annotations

import subprocess
import sys

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


def test_lazy_module_imports_on_first_attribute_and_then_acts_as_the_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == [
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
