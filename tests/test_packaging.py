"""Distributions: the core wheel carries no plugin; each plugin folder builds on its own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))

pytestmark = pytest.mark.slow


def build(project: Path, out: Path) -> Path:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return next(out.glob("*.whl"))


def metadata(wheel: Path) -> tuple[str, str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        eps = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        return z.read(meta).decode(), z.read(eps[0]).decode() if eps else ""


def test_core_wheel_has_the_console_script_and_no_plugin(tmp_path: Path) -> None:
    wheel = build(ROOT, tmp_path)
    meta, eps = metadata(wheel)
    assert "[console_scripts]\nvt = vt.cli:main" in eps
    assert "[vt]" not in eps  # the core registers its built-ins itself, not as entry points
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "vt/hookspecs.py" in names and not any(n.startswith("vt_") for n in names)
    for dep in ("typer", "rich", "pluggy", "av", "numpy"):
        assert f"Requires-Dist: {dep}" in meta


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_each_plugin_builds_alone_and_registers_in_group_vt(plugin: Path, tmp_path: Path) -> None:
    wheel = build(plugin, tmp_path)
    meta, eps = metadata(wheel)
    assert "[vt]" in eps, "a plugin must register in the 'vt' entry-point group"
    assert "Requires-Dist: vt" in meta
