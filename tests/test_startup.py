"""Fast start: ``--version`` imports nothing heavy; ``--help`` lists plugin commands from the
command index without importing any plugin; a listed command still runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vt import command_index

PROBE = """
import sys
from vt.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"typer", "pluggy", "numpy", "av",
                                                          "torch", "vt_upscale", "rich"})
print("IMPORTED", " ".join(heavy))
"""


def run(tmp_path: Path, *args: str, plugins: str = "upscale") -> tuple[str, list[str]]:
    env = dict(
        os.environ, VT_CACHE_DIR=str(tmp_path / "cache"), VT_LOAD_PLUGINS=plugins, COLUMNS="200"
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    out, _, imported = result.stdout.rpartition("IMPORTED")
    return out, imported.split()


def test_version_imports_neither_typer_nor_the_plugin_system(tmp_path: Path) -> None:
    out, imported = run(tmp_path, "--version")
    assert out.strip() == "vt 0.1.0"
    assert imported == []


def test_help_lists_plugin_commands_from_the_index_without_importing_them(tmp_path: Path) -> None:
    first, imported_first = run(tmp_path, "--help")
    assert "vt_upscale" in imported_first  # no index yet: plugins load, the index is written
    assert (tmp_path / "cache" / "cli" / command_index.FILE).is_file()
    second, imported = run(tmp_path, "--help")
    assert "upscale" in second and "Upscale a video" in second and "transcode" in second
    assert not {"vt_upscale", "numpy", "av", "torch", "pluggy"} & set(imported), imported
    # a listed command is built when it runs
    sub, imported = run(tmp_path, "upscale", "--help")
    assert "--scale" in sub and "vt_upscale" in imported


def test_index_follows_the_plugins_allowed(tmp_path: Path) -> None:
    run(tmp_path, "--help")
    out, _ = run(tmp_path, "--help", plugins="")
    assert "upscale" not in out.split("Commands")[-1] and "transcode" in out


def test_fingerprint_changes_when_an_editable_plugin_changes(tmp_path: Path) -> None:
    project = tmp_path / "plugin"
    (project / "src").mkdir(parents=True)
    module = project / "src" / "plugin.py"
    module.write_text("x = 1\n")
    before = command_index.fingerprint([str(project)])
    assert command_index.fingerprint([str(project)]) == before  # stable while nothing changes
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    assert command_index.fingerprint([str(project)]) != before


def test_index_is_ignored_when_stale_or_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_CACHE_DIR", str(tmp_path))
    entry = command_index.IndexEntry("hello", "Say hello.", "greeter", "hello")
    command_index.save([entry], [])
    assert command_index.load() == [entry]
    monkeypatch.setenv("VT_LOAD_PLUGINS", "something-else")
    assert command_index.load() is None
    (tmp_path / "cli" / command_index.FILE).write_text("{not json")
    assert command_index.load() is None
    (tmp_path / "cli" / command_index.FILE).write_text("[1, 2]")
    assert command_index.load() is None and command_index.entry_points() is None


VIDEO_PROBE = """
import sys
from vt.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("IMPORTED", " ".join(sorted(sys.modules)))
"""


def test_a_video_command_imports_no_plugin_implementation_and_no_model_library(
    tmp_path: Path,
) -> None:
    """Every installed plugin is loaded (its package and plugin module), but none of their
    implementation, OpenCV, torch, diffusers or numpy: a transcode pays only for what it uses
    (its frames stay FFmpeg's from decoder to encoder)."""
    from vt.testing import make_video

    clip = make_video(tmp_path / "in.mp4", frames=2, width=64, height=48)
    env = dict(os.environ, VT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("VT_LOAD_PLUGINS", None)
    for name in ("first.mkv", "out.mkv"):  # the first run writes the command index
        result = subprocess.run(
            [sys.executable, "-c", VIDEO_PROBE, "transcode", str(clip), str(tmp_path / name), "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    modules = set(result.stdout.rpartition("IMPORTED")[2].split())
    plugin_packages = {
        m.split(".")[0] for m in modules if m.startswith("vt_") and m.endswith(".plugin")
    }
    assert {"vt_upscale", "vt_kizuna"} <= plugin_packages  # the installed plugins did load
    beyond_registration = sorted(
        m
        for m in modules
        if m.split(".")[0] in plugin_packages
        and m not in plugin_packages
        and not m.endswith(".plugin")
    )
    assert beyond_registration == []
    assert not {"cv2", "torch", "diffusers", "transformers", "numpy"} & modules
    # the plugins were found through the index's entry points, not by scanning distributions
    assert "importlib.metadata" not in modules


def test_index_keeps_the_entry_points_importlib_metadata_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt.plugins import PluginHost, _installed_entry_points

    monkeypatch.setenv("VT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("VT_LOAD_PLUGINS", raising=False)
    assert command_index.entry_points() is None  # no index yet
    found = _installed_entry_points()
    assert {"upscale", "kizuna"} <= {ep.name for ep in found}
    command_index.save([], [], found)
    assert command_index.entry_points() == found
    # a host loaded from the index records each plugin as importlib.metadata describes it
    host = PluginHost().load()
    upscale = host.records["upscale"]
    assert (upscale.module, upscale.distribution, upscale.loaded) == (
        "vt_upscale.plugin",
        "vt-upscale",
        True,
    )
    assert "register_commands" in upscale.hooks
    command_index.save([], [])  # an index without entry points: importlib.metadata again
    assert command_index.entry_points() is None


def test_entry_point_values_load_like_importlib_metadata() -> None:
    import os.path

    from vt.plugins import _load_entry_point

    assert _load_entry_point("os.path") is os.path
    assert _load_entry_point("os.path:join") is os.path.join
    assert _load_entry_point("os : path.join [extra]") is os.path.join
    with pytest.raises(ModuleNotFoundError):
        _load_entry_point("no_such_module_here:thing")
