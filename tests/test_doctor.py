"""``vt doctor``: every area reported, missing pieces with their fix, one broken check alone."""

from __future__ import annotations

import json
import types

import pytest
from typer.testing import CliRunner

from vt import doctor
from vt.cli import create_app
from vt.hookspecs import hookimpl
from vt.plugins import PluginHost
from vt.registry import ModelRef, ModelSpec


def rows_by_name(rows: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {r.name: r for r in rows}


def test_doctor_reports_every_area_as_json(host: PluginHost, tmp_path) -> None:
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")

    @hookimpl
    def register_models(register):
        register(ModelSpec("here", "restoration", lambda: ModelRef(weights)))
        register(ModelSpec("gone", "restoration", lambda: None, sources=("cache",)))

    host.register(types.SimpleNamespace(register_models=register_models), name="models-plugin")
    result = CliRunner().invoke(create_app(host), ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    areas = {r["area"] for r in rows}
    assert {"python", "media", "encoders", "packages", "decoders", "models", "cache"} <= areas
    by_name = {r["name"]: r for r in rows}
    assert by_name["libx264"]["status"] == "ok"
    assert by_name["here"]["status"] == "ok" and str(weights) in by_name["here"]["found"]
    assert by_name["gone"]["status"] == "missing" and "cache" in by_name["gone"]["fix"]


def test_missing_package_comes_with_its_fix(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: None if d == "ray" else real(d))
    ray = rows_by_name(doctor.collect())["ray"]
    assert ray.status == "missing" and ray.fix == "pip install 'vt[ray]'"


def test_one_broken_check_does_not_hide_the_others(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> list[doctor.Check]:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "_pyav", broken)
    rows = doctor.collect()
    assert any(r.status == "error" and "boom" in r.found for r in rows)
    assert rows_by_name(rows)["interpreter"].status == "ok"
