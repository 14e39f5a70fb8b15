"""``vt cogvideo batch`` on the core's batch runner: a failing job, status, reruns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vt.batch import read_status
from vt.cli import create_app
from vt.plugins import PluginHost

runner = CliRunner()


@pytest.mark.slow  # a worker process imports torch and diffusers (~5-10 s on 2 cores)
def test_batch_failing_job_status_and_rerun(
    host: PluginHost,
    tiny_cogvideo: Path,
    tiny_lora: Path,
    cond_image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VT_LOAD_PLUGINS", "cogvideo")  # the worker's vt: this plugin only
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(cond_image, images / "bikes.png")
    jobs = [
        {
            "image": "images/bikes.png",
            "prompt": "a cyclist",
            "output": "a.mp4",
            "seed": 1,
            "steps": 2,
        },
        {
            "image": "images/later.png",
            "prompt": "missing image",
            "output": "b.mp4",
            "num_inference_steps": 2,
        },
        {
            "image": "images/bikes.png",
            "prompt": "with a LoRA",
            "seed": 2,
            "steps": 2,
            "lora": str(tiny_lora),
            "lora-scale": 0.5,
        },
    ]
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    out = tmp_path / "out"
    args = [
        "cogvideo",
        "batch",
        "--jobs-file",
        str(jobs_file),
        "--output-dir",
        str(out),
        "--model",
        str(tiny_cogvideo),
        "--device",
        "cpu",
        "--mode",
        "baseline",
        "--json",
    ]
    first = runner.invoke(create_app(host), args)
    assert first.exit_code == 1, first.output  # a job failed; the others ran
    report = json.loads(first.stdout)
    assert (report["done"], report["failed"], report["skipped"]) == (2, 1, 0)
    rows = read_status(out / "batch_status.json")
    by_prompt = {r["row"]: r for r in rows}
    assert by_prompt[2]["status"] == "failed" and "image not found" in by_prompt[2]["error"]
    done = [by_prompt[1]["report"], by_prompt[3]["report"]]
    assert all(0.0 <= d["temporal_score"] <= 1.0 and d["timings"]["generate_s"] > 0 for d in done)
    # one worker: the pipeline loaded for the first job only, the LoRA added to it
    assert [d["pipeline_loaded"] for d in done] == [True, False]
    assert done[1]["pipeline_loads"] == 1 and done[1]["lora"].endswith(".safetensors")
    assert (out / "a.mp4").is_file() and json.loads((out / "a.json").read_text())["output"] == str(
        (out / "a.mp4").resolve()
    )
    derived = Path(done[1]["output"])
    assert derived.parent == out.resolve() and derived.name.startswith("bikes-")
    stamp = (out / "a.mp4").stat().st_mtime_ns

    shutil.copy(cond_image, images / "later.png")  # fix the failing job, run again
    second = runner.invoke(create_app(host), args)
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert (again["done"], again["failed"], again["skipped"]) == (1, 0, 2)
    assert (out / "a.mp4").stat().st_mtime_ns == stamp  # finished jobs were not redone
    assert {r["status"] for r in read_status(out / "batch_status.json")} <= {"done", "skipped"}


def test_bad_jobs_files_are_usage_errors(host: PluginHost, tmp_path: Path) -> None:
    cases = {
        "notalist.json": ('{"image": "a.png"}', "expected a list"),
        "badkey.yaml": ("- {image: a.png, prompt: x, colour: red}\n", "unknown option 'colour'"),
        "noprompt.json": ('[{"image": "a.png"}]', "job 1: no prompt"),
        "badseed.json": (
            '[{"image": "a.png", "prompt": "x", "seed": "abc"}]',
            "seed must be an integer",
        ),
        "broken.yaml": ("- [unclosed\n", "not valid YAML"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = runner.invoke(
            create_app(host),
            ["cogvideo", "batch", "--jobs-file", str(path), "--output-dir", str(tmp_path / "out")],
        )
        assert result.exit_code == 2, (name, result.output)
        assert message in result.stderr.strip().splitlines()[-1], (name, result.stderr)
    assert not (tmp_path / "out").exists()
