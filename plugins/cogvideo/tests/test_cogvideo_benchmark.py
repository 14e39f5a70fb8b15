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


def test_benchmark_rows_per_mode_and_summary(
    host: PluginHost, tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    csv_path = tmp_path / "bench" / "benchmarks.csv"
    args = [
        "cogvideo",
        "benchmark",
        "--image",
        str(cond_image),
        "--prompt",
        "press room",
        "--mode",
        "both",
        "--csv",
        str(csv_path),
        "--steps",
        "2",
        "--model",
        str(tiny_cogvideo),
        "--device",
        "cpu",
    ]
    result = runner.invoke(create_app(host), args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["mode"] for r in rows] == ["baseline", "optimized"]
    assert [r["scheduler"] for r in rows] == ["ddim", "dpm"]
    for r in rows:
        assert int(r["frames"]) == TINY_FRAMES and float(r["latency_s"]) > 0
        assert abs(float(r["frames_per_s"]) - TINY_FRAMES / float(r["latency_s"])) < 0.05 * float(
            r["frames_per_s"]
        )
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


def test_benchmark_refuses_a_foreign_csv(
    host: PluginHost, tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    other = tmp_path / "numbers.csv"
    other.write_text("a,b\n1,2\n")
    result = runner.invoke(
        create_app(host),
        [
            "cogvideo",
            "benchmark",
            "--image",
            str(cond_image),
            "--prompt",
            "x",
            "--mode",
            "baseline",
            "--csv",
            str(other),
            "--steps",
            "2",
            "--model",
            str(tiny_cogvideo),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2 and "other columns" in result.stderr
    assert other.read_text() == "a,b\n1,2\n"


def test_tracking_goes_through_accelerate_trackers(tmp_path: Path) -> None:
    from accelerate.tracking import GeneralTracker

    from vt_cogvideo.tracking import Tracker

    class Recorder(GeneralTracker):
        name = "recorder"
        requires_logging_directory = False

        def __init__(self) -> None:
            super().__init__()
            self.logged: list[tuple[dict, int | None]] = []
            self.config: dict = {}

        @property
        def tracker(self) -> object:
            return self

        def store_init_configuration(self, values: dict) -> None:
            self.config = values

        def log(self, values: dict, step: int | None = None, **kwargs: object) -> None:
            self.logged.append((values, step))

    recorder = Recorder()
    tracker = Tracker(
        recorder, logging_dir=tmp_path / "t", run="x", config={"mode": "baseline", "skip": [1]}
    )
    tracker.log({"temporal_score": 0.9, "mode": "baseline", "flag": True}, step=3)
    tracker.close()
    assert recorder.config == {"mode": "baseline"}
    assert recorder.logged == [({"temporal_score": 0.9}, 3)]
    silent = Tracker(None, logging_dir=tmp_path / "none", run="x")
    silent.log({"a": 1}, step=1)
    assert not silent.active and not (tmp_path / "none").exists()


def test_track_with_a_tracker_not_installed_is_a_usage_error(
    host: PluginHost, tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    from accelerate.tracking import get_available_trackers

    missing = next(
        n
        for n in ("tensorboard", "wandb", "mlflow", "aim")
        if n not in [str(t) for t in get_available_trackers()]
    )
    result = runner.invoke(
        create_app(host),
        [
            "cogvideo",
            "benchmark",
            "--image",
            str(cond_image),
            "--prompt",
            "x",
            "--csv",
            str(tmp_path / "b.csv"),
            "--model",
            str(tiny_cogvideo),
            "--track",
            missing,
        ],
    )
    assert result.exit_code == 2 and f"--track {missing}: not installed" in result.stderr
    assert not (tmp_path / "b.csv").exists()
