"""``vt batch`` over ``vt upscale``: a worker loads the model once for all its jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vt.batch import read_status
from vt.testing import make_video


def test_one_worker_loads_the_model_once_for_all_its_jobs(tmp_path: Path, tiny_pth: Path) -> None:
    for n in range(3):
        make_video(tmp_path / f"clip{n}.mp4", frames=4, width=24, height=16)
    rows = [
        {
            "command": "upscale",
            "input": f"clip{n}.mp4",
            "output": f"up/{n}.mp4",
            "model": str(tiny_pth),
            "device": "cpu",
            "preset": "ultrafast",
        }
        for n in range(3)
    ]
    (tmp_path / "jobs.json").write_text(json.dumps(rows))
    vt = Path(sys.executable).parent / "vt"
    env = dict(os.environ, VT_LOAD_PLUGINS="upscale", VT_OFFLINE="1")
    done = subprocess.run(
        [str(vt), "batch", "jobs.json", "--workers", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    status = read_status(tmp_path / "jobs.status.json")
    assert [r["status"] for r in status] == ["done"] * 3
    assert len({r["worker"] for r in status}) == 1  # one worker ran all three…
    assert [r["model_loads"] for r in status] == [1, 1, 1]  # …and loaded the model once
    assert all(r["report"]["size_out"] == [48, 32] for r in status)
