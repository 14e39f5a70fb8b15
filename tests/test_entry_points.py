"""Real entry points: build wheels of throwaway plugins, pip-install them, run vt, uninstall.

These install into the test environment itself (the way users install plugins) and always
uninstall afterwards. They use the plugin template in docs/, so the template stays working.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "plugin-template"
VT = shutil.which("vt", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.slow


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def build_wheel(project: Path, out: Path) -> Path:
    result = pip(
        "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(project)
    )
    assert result.returncode == 0, result.stderr
    return next(out.glob("*.whl"))


def vt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VT, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[callable]:
    names: list[str] = []

    def install(project: Path, dist_name: str) -> None:
        wheel = build_wheel(project, tmp_path / "wheels")
        result = pip("install", "--no-deps", "--no-index", str(wheel))
        assert result.returncode == 0, result.stderr
        names.append(dist_name)

    yield install
    for name in names:
        pip("uninstall", "-y", name)


def test_template_plugin_installs_and_registers(installed, tmp_path: Path) -> None:
    project = tmp_path / "template"
    shutil.copytree(TEMPLATE, project)
    installed(project, "vt-plugin-example")
    help_text = vt("--help").stdout
    assert "invert" in help_text
    plugins = json.loads(vt("plugins", "--json").stdout)
    example = next(p for p in plugins if p["name"] == "example")
    assert example["version"] == "0.1.0" and example["loaded"] and not example["errors"]
    assert example["hooks"] == ["register_commands", "register_processors"]
    assert "apply-model" in help_text
    processors = json.loads(vt("processors", "--json").stdout)
    assert any(p["name"] == "invert" and p["plugin"] == "example" for p in processors)
    # VT_LOAD_PLUGINS= (empty) is the escape hatch: no plugin loads
    import os

    env = dict(os.environ, VT_LOAD_PLUGINS="")
    hidden = subprocess.run([VT, "--help"], capture_output=True, text=True, env=env)
    assert "invert" not in hidden.stdout


def test_template_command_processes_a_real_clip(installed, tmp_path: Path, carphone) -> None:
    project = tmp_path / "template"
    shutil.copytree(TEMPLATE, project)
    installed(project, "vt-plugin-example")
    out = tmp_path / "inv.mp4"
    result = vt("invert", str(carphone), "-o", str(out), "--preset", "ultrafast", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames_in"] == report["frames_out"] == 120 and out.exists()


def test_template_model_processor_runs_a_packaged_model(
    installed, tmp_path: Path, carphone
) -> None:
    project = tmp_path / "template"
    shutil.copytree(TEMPLATE, project)
    installed(project, "vt-plugin-example")
    out = tmp_path / "x2.mp4"
    result = vt(
        "apply-model",
        str(carphone),
        "-m",
        "realesr-animevideov3-x2",
        "-o",
        str(out),
        "--end",
        "0.1",
        "--preset",
        "ultrafast",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames_out"] == 3 and report["size_out"] == [352, 288]
    bad = vt("apply-model", str(carphone), "-m", str(tmp_path / "none.pth"))
    assert bad.returncode == 2 and "model file not found" in bad.stderr


def test_template_uses_only_the_exported_api() -> None:
    source = (TEMPLATE / "src" / "vt_plugin_example" / "plugin.py").read_text()
    imports = [
        line.strip() for line in source.splitlines() if line.startswith(("import ", "from "))
    ]
    assert "import vt" in imports
    assert not [line for line in imports if line.startswith("from vt")], imports


def test_broken_plugin_is_reported_and_vt_keeps_working(installed, tmp_path: Path) -> None:
    project = tmp_path / "broken"
    (project / "src" / "vt_plugin_broken").mkdir(parents=True)
    (project / "src" / "vt_plugin_broken" / "__init__.py").write_text("")
    (project / "src" / "vt_plugin_broken" / "plugin.py").write_text(
        "raise ImportError('this plugin is broken on purpose')\n"
    )
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "vt-plugin-broken"\nversion = "0.0.1"\n'
        '[project.entry-points.vt]\nbroken = "vt_plugin_broken.plugin"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    installed(project, "vt-plugin-broken")
    help_result = vt("--help")
    assert help_result.returncode == 0 and "transcode" in help_result.stdout
    assert help_result.stderr.count("plugin 'broken' failed") == 1
    listing = vt("plugins", "--json")
    assert listing.returncode == 0
    broken = next(p for p in json.loads(listing.stdout) if p["name"] == "broken")
    assert not broken["loaded"]
    assert "ImportError: this plugin is broken on purpose" in broken["errors"][0]
