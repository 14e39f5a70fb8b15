"""The command index: every command's name, one-line help and owning plugin, cached.

``vt --help`` lists every installed plugin's commands from this index without importing any
plugin; a command's module is imported only when that command runs. The index is rebuilt
when anything that could change it changes: vt's version, ``VT_LOAD_PLUGINS``, the Python
interpreter, an install or uninstall (the mtime of each ``site-packages`` folder) or the source
of an editable install of vt or a plugin (the newest ``.py``/``.toml`` under its project). No index
is saved while a plugin fails to load, so its error keeps being reported.

The index also keeps the ``vt`` entry points it was built from, so loading the plugins for a
command skips ``importlib.metadata`` (its import and scan of every installed distribution
cost more than the rest of a command's start-up).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from vt import __version__

FILE = "commands.json"
T = TypeVar("T")


@dataclass(frozen=True)
class IndexEntry:
    """A mounted command: its name on the command line, help, and where it comes from."""

    name: str
    help: str
    plugin: str  # the plugin that registers it ("" for an ambiguous name)
    spec: str  # the name it was registered under (differs when qualified: plugin:name)
    ambiguous: str = ""  # the error message when two plugins claim the name


def _index_path() -> Path | None:
    try:
        from vt.cachedirs import cache_dir

        return cache_dir("cli") / FILE
    except Exception:  # noqa: BLE001 - no usable cache folder: no index, just slower
        return None


def _newest_source(folder: str) -> int:
    newest = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith((".", "__pycache__")) and d not in ("build", "dist", "tests")
        ]
        for name in files:
            if name.endswith((".py", ".toml")):
                try:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
                except OSError:
                    pass
    return newest


def fingerprint(editable: list[str]) -> str:
    """What the index depends on (see the module docstring)."""
    parts: list[Any] = [
        __version__,
        sys.version,
        sys.executable,
        os.environ.get("VT_LOAD_PLUGINS", "\0unset"),
    ]
    for entry in sys.path:
        # installs and uninstalls change these folders; the script's or working folder at
        # sys.path[0] says nothing about plugins and differs between ``vt`` and ``python -m``
        if os.path.basename(entry.rstrip(os.sep)) not in ("site-packages", "dist-packages"):
            continue
        try:  # the folder's mtime, and the installed distributions by name and version
            with os.scandir(entry) as found:
                dists = sorted(e.name for e in found if e.name.endswith(".dist-info"))
            parts.append((entry, os.stat(entry).st_mtime_ns, dists))
        except OSError:
            parts.append((entry, None))
    parts += [(folder, _newest_source(folder)) for folder in editable]
    return json.dumps(parts, default=str)  # kept whole: exact, and no hashing library to import


@dataclass(frozen=True)
class EntryPoint:
    """An installed plugin's ``vt`` entry point, as ``importlib.metadata`` gave it."""

    name: str
    value: str  # ``module`` or ``module:attribute``
    version: str | None = None
    distribution: str | None = None


#: the last index found valid in this process, by what would make it differ: the command
#: line's listing and its plugins' loading then compute the fingerprint once
_valid: tuple[Any, dict[str, Any]] | None = None


def _read() -> dict[str, Any] | None:
    global _valid
    path = _index_path()
    if path is None:
        return None
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, os.environ.get("VT_LOAD_PLUGINS"))
        if _valid is not None and _valid[0] == key:
            return _valid[1]
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("fingerprint") != fingerprint(
            list(data.get("editable", []))
        ):
            return None
    except (OSError, ValueError, TypeError):
        return None
    _valid = (key, data)
    return data


def _records(key: str, record: Callable[..., T]) -> list[T] | None:
    data = _read()
    try:
        return None if data is None else [record(**e) for e in data[key]]
    except (KeyError, TypeError):
        return None


def load() -> list[IndexEntry] | None:
    """The saved entries, if the index is still valid."""
    return _records("commands", IndexEntry)


def entry_points() -> list[EntryPoint] | None:
    """The ``vt`` entry points the valid index was built from (None: ask importlib.metadata)."""
    return _records("entry_points", EntryPoint)


def save(
    entries: list[IndexEntry], editable: list[str], entry_points: list[EntryPoint] | None = None
) -> None:
    """Write the index atomically; a failure only means the next start is slower."""
    path = _index_path()
    if path is None:
        return
    from vt.atomic import atomic_file

    data = {
        "fingerprint": fingerprint(editable),
        "editable": editable,
        "commands": [asdict(e) for e in entries],
    }
    if entry_points is not None:
        data["entry_points"] = [asdict(e) for e in entry_points]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(data))
    except OSError:
        pass


def editable_projects(distributions: list[str]) -> list[str]:
    """Project folders of the distributions installed in editable mode (PEP 610)."""
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlparse

    folders = []
    for name in distributions:
        try:
            text = distribution(name).read_text("direct_url.json")
        except (PackageNotFoundError, OSError):
            continue
        try:
            info = json.loads(text or "{}")
        except ValueError:
            continue
        if info.get("dir_info", {}).get("editable") and info.get("url", "").startswith("file:"):
            folders.append(unquote(urlparse(info["url"]).path))
    return folders
