"""The CLI through Typer's runner and through the real ``vt`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vt import __version__
from vt.cli import create_app
from vt.plugins import PluginHost

runner = CliRunner()
VT = shutil.which("vt", path=str(Path(sys.executable).parent))


def run_vt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert VT, "the vt console script is not installed in this environment"
    return subprocess.run([VT, *args], capture_output=True, text=True, env=env, timeout=120)


def test_help_lists_core_commands(host: PluginHost) -> None:
    result = runner.invoke(create_app(host), ["--help"])
    assert result.exit_code == 0
    for name in ("info", "transcode", "compare", "plugins", "list", "install", "models"):
        assert name in result.output


def test_version(host: PluginHost) -> None:
    result = runner.invoke(create_app(host), ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"vt {__version__}"


def test_factory_builds_fresh_apps(host: PluginHost) -> None:
    assert create_app(host) is not create_app(host)


def test_plugins_json_lists_builtins_only_with_all(host: PluginHost) -> None:
    app = create_app(host)
    plain = json.loads(runner.invoke(app, ["plugins", "--json"]).output)
    assert plain == []
    everything = json.loads(runner.invoke(app, ["plugins", "--all", "--json"]).output)
    names = {p["name"] for p in everything}
    assert "vt.builtins.decoders" in names
    decoders = next(p for p in everything if p["name"] == "vt.builtins.decoders")
    assert decoders["hooks"] == ["choose_decoder", "register_decoders"]


@pytest.mark.parametrize("kind", ["decoders", "processors", "encoders", "models"])
def test_list_kinds_and_aliases_agree(host: PluginHost, kind: str) -> None:
    app = create_app(host)
    via_list = runner.invoke(app, ["list", kind, "--json"])
    via_alias = runner.invoke(app, [kind, "--json"])
    assert via_list.exit_code == 0 and via_list.output == via_alias.output


def test_list_decoders_reports_provider_and_availability(host: PluginHost) -> None:
    rows = json.loads(runner.invoke(create_app(host), ["decoders", "--json"]).output)
    pyav = next(r for r in rows if r["name"] == "pyav")
    assert pyav["plugin"] == "vt.builtins.decoders" and pyav["available"] is True


def test_unknown_list_kind_is_usage_error(host: PluginHost) -> None:
    result = runner.invoke(create_app(host), ["list", "gadgets"])
    assert result.exit_code == 2 and "unknown kind 'gadgets'" in result.output


def test_runtime_error_is_one_line_exit_1(host: PluginHost, tmp_path: Path) -> None:
    result = runner.invoke(create_app(host), ["info", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"vt: error: input not found: {tmp_path / 'missing.mp4'}"
    ]


def test_console_script_help_and_version() -> None:
    result = run_vt("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"vt {__version__}"
    assert "transcode" in run_vt("--help").stdout


def test_console_script_exit_codes(tmp_path: Path) -> None:
    missing = run_vt("info", str(tmp_path / "nope.mp4"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == (
        f"vt: error: input not found: {tmp_path / 'nope.mp4'}"
    )
    assert "Traceback" not in missing.stderr
    usage = run_vt("transcode", "--no-such-option")
    assert usage.returncode == 2


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    result = run_vt("--debug", "info", str(tmp_path / "nope.mp4"))
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_python_dash_m_vt_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vt", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and __version__ in result.stdout


def test_install_runs_pip_in_vts_interpreter(host: PluginHost, monkeypatch) -> None:
    calls = []

    class Done:
        returncode = 0

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        return Done()

    monkeypatch.setattr(subprocess, "run", fake_run)
    result = runner.invoke(create_app(host), ["install", "vt-foo", "--upgrade"])
    assert result.exit_code == 0
    assert calls == [[sys.executable, "-m", "pip", "install", "vt-foo", "--upgrade"]]
    result = runner.invoke(create_app(host), ["uninstall", "vt-foo"])
    assert calls[-1] == [sys.executable, "-m", "pip", "uninstall", "-y", "vt-foo"]


HUGE_PAGE_PROBE = """
import os, resource, sys
if sys.argv[1] == "vt":
    from vt.cli import main
    try:
        main(["--help"])
    except SystemExit:
        pass
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.ones(16 << 20)  # 64 MB, written: every page faulted in
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _thp_on_request() -> bool:
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[madvise]" in mode


@pytest.mark.skipif(not _thp_on_request(), reason="huge pages here are not given on request")
def test_vt_has_torch_back_large_cpu_tensors_with_huge_pages() -> None:
    import os

    def faults(how: str, **env: str) -> int:
        environ = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
        out = subprocess.run(
            [sys.executable, "-c", HUGE_PAGE_PROBE, how],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env={**environ, **env},
        )
        return int(out.stdout.split()[-1])

    plain, under_vt = faults("plain"), faults("vt")
    assert plain >= 4 * 16384 * 0.9  # 4 KB pages: 16,384 faults per 64 MB tensor
    assert under_vt < plain / 8
    assert faults("vt", THP_MEM_ALLOC_ENABLE="0") >= plain * 0.9  # the user's choice stands
