"""``vt cogvideo benchmark``: one CSV row per mode and run, and the summary snapshot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner
from vt.cli import create_app
from vt.plugins import PluginHost
from vt_cogvideo.benchmark import CSV_COLUMNS
from vt_cogvideo.tiny import TINY_FRAMES

runner = CliRunner()


def test_benchmark_rows_per_mode_and_summary(host: PluginHost, tiny_cogvideo: Path,
                                             cond_image: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "bench" / "benchmarks.csv"
    args = ["cogvideo", "benchmark", "--image", str(cond_image), "--prompt", "press room",
            "--mode", "both", "--csv", str(csv_path), "--steps", "2", "--model",
            str(tiny_cogvideo), "--device", "cpu"]
    result = runner.invoke(create_app(host), args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["mode"] for r in rows] == ["baseline", "optimized"]
    assert [r["scheduler"] for r in rows] == ["ddim", "dpm"]
    for r in rows:
        assert int(r["frames"]) == TINY_FRAMES and float(r["latency_s"]) > 0
        assert abs(float(r["frames_per_s"]) - TINY_FRAMES / float(r["latency_s"])) < 0.05 * \
            float(r["frames_per_s"])
        assert 0 <= float(r["temporal_score"]) <= 1 and float(r["peak_memory_mb"]) > 0
        assert Path(r["output"]).is_file()
    summary = json.loads((csv_path.parent / "PROJECT_SUMMARY.json").read_text())
    assert set(summary["benchmarks"]) == {"baseline", "optimized"}
    assert summary["benchmarks"]["optimized"]["artifacts"] == [rows[1]["output"]]
    assert summary["artifacts"]["benchmark_csv"] == str(csv_path)

    again = runner.invoke(create_app(host), [*args[:7], "baseline", *args[8:], "--json"])
    assert again.exit_code == 0, again.output
    assert len(list(csv.DictReader(csv_path.open()))) == 3  # appended, header once
    summary = json.loads((csv_path.parent / "PROJECT_SUMMARY.json").read_text())
    assert set(summary["benchmarks"]) == {"baseline", "optimized"}  # optimized kept
    assert len(summary["artifacts"]["examples"]) == 3


def test_benchmark_refuses_a_foreign_csv(host: PluginHost, tiny_cogvideo: Path,
                                         cond_image: Path, tmp_path: Path) -> None:
    other = tmp_path / "numbers.csv"
    other.write_text("a,b\n1,2\n")
    result = runner.invoke(create_app(host), [
        "cogvideo", "benchmark", "--image", str(cond_image), "--prompt", "x", "--mode",
        "baseline", "--csv", str(other), "--steps", "2", "--model", str(tiny_cogvideo),
        "--device", "cpu"])
    assert result.exit_code == 2 and "other columns" in result.stderr
    assert other.read_text() == "a,b\n1,2\n"
