"""``vt cogvideo validate``: scenarios generated with a LoRA, scored, reported, thresholded."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from vt.cli import create_app
from vt.plugins import PluginHost

runner = CliRunner()


def scenarios(tmp_path: Path, cond_image: Path) -> Path:
    shutil.copy(cond_image, tmp_path / "still.png")
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "scenarios:\n"
        "  - {name: briefing, image: still.png, prompt: 'a press briefing', seed: 1,"
        " num_inference_steps: 2}\n"
        "  - {name: market, image: still.png, prompt: 'market news', seed: 2, steps: 2,"
        " lora_scale: 0.5}\n"
    )
    return path


def test_validate_passes_then_fails_above_the_scores(
    host: PluginHost, tiny_cogvideo: Path, tiny_lora: Path, cond_image: Path, tmp_path: Path
) -> None:
    file = scenarios(tmp_path, cond_image)
    out = tmp_path / "report"
    base = [
        "cogvideo",
        "validate",
        "--scenarios",
        str(file),
        "--lora",
        str(tiny_lora),
        "--model",
        str(tiny_cogvideo),
        "--device",
        "cpu",
        "-o",
        str(out),
    ]
    ok = runner.invoke(create_app(host), [*base, "--threshold", "0", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["passed"] == 2 and [s["status"] for s in data["scenarios"]] == ["pass"] * 2
    assert all(s["lora"].endswith("pytorch_lora_weights.safetensors") for s in data["scenarios"])
    rows = list(csv.DictReader((out / "validation_report.csv").open()))
    assert [r["name"] for r in rows] == ["briefing", "market"]
    scores = [float(r["temporal_score"]) for r in rows]
    sidecar = json.loads((out / "briefing.json").read_text())
    assert scores[0] == sidecar["temporal_score"]
    markdown = (out / "validation_report.md").read_text()
    assert "| briefing | PASS |" in markdown and "2 of 2 scenarios passed" in markdown

    again = runner.invoke(create_app(host), base)  # an earlier run's files are kept
    assert again.exit_code == 2 and "use --overwrite" in again.stderr

    # a threshold above both scores (random weights jitter: their scores are below 1)
    limit = max(scores) + (1 - max(scores)) / 2
    bad = runner.invoke(create_app(host), [*base, "--threshold", f"{limit}", "--overwrite"])
    assert bad.exit_code == 1, bad.output
    rows = list(csv.DictReader((out / "validation_report.csv").open()))
    assert [r["status"] for r in rows] == ["fail", "fail"]
    assert "0 of 2 scenarios passed" in (out / "validation_report.md").read_text()


def test_validate_reports_a_scenario_that_cannot_run(
    host: PluginHost, tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    file = scenarios(tmp_path, cond_image)
    file.write_text(file.read_text() + "  - {name: gone, image: none.png, prompt: x}\n")
    out = tmp_path / "report"
    result = runner.invoke(
        create_app(host),
        [
            "cogvideo",
            "validate",
            "--scenarios",
            str(file),
            "--model",
            str(tiny_cogvideo),
            "--device",
            "cpu",
            "-o",
            str(out),
            "--threshold",
            "0",
        ],
    )
    assert result.exit_code == 1
    rows = {r["name"]: r for r in csv.DictReader((out / "validation_report.csv").open())}
    assert rows["briefing"]["status"] == "pass" and rows["gone"]["status"] == "error"
    assert "image not found" in rows["gone"]["error"]


def test_shipped_validation_prompts_parse() -> None:
    from vt_cogvideo.config import config_dir
    from vt_cogvideo.validate import load_scenarios

    folder = config_dir()
    assert folder is not None
    items = load_scenarios(folder / "validation_prompts.yaml")
    assert len(items) >= 3 and all(Path(s.image).is_file() for s in items)
