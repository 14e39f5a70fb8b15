"""vt's one cache folder, shared by every plugin.

``cache_dir(kind)`` is ``<root>/<kind>``, where the root is ``$VT_CACHE_DIR``, else
``$XDG_CACHE_HOME/vt``, else ``~/.cache/vt``. Kinds in use: ``models`` (model weights),
``qwen`` (vt-qwen-preprocess frames), ``downloads`` (inputs fetched from URLs while a command
runs). ``$VT_MODEL_CACHE``, when set, replaces the ``models`` folder (documented since the
first release). Plugin options that name a folder (``--cache-dir``, ``VT_QWEN_CACHE_DIR``)
win over all of these. Nothing is created here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vt.errors import UsageError

KINDS = ("models", "qwen", "downloads")
#: per-kind environment overrides, checked before ``VT_CACHE_DIR``
OVERRIDES = {"models": "VT_MODEL_CACHE"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def cache_root() -> Path:
    """``$VT_CACHE_DIR``, else ``$XDG_CACHE_HOME/vt``, else ``~/.cache/vt``."""
    explicit = os.environ.get("VT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vt"


def cache_dir(kind: str) -> Path:
    """The folder for one kind of cached data (see the module docstring for precedence)."""
    if not _NAME.match(kind):  # a kind is one folder name, never a path
        raise UsageError(f"invalid cache kind {kind!r}")
    override = OVERRIDES.get(kind)
    if override and os.environ.get(override):
        return Path(os.environ[override]).expanduser()
    return cache_root() / kind
