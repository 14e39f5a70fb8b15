"""The Ray engine, embedded (a local Ray started and stopped by the run): needs ``vt[ray]``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vt.testing import make_video

pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'vt[ray]'")

TESTS = Path(__file__).resolve().parent


def test_a_manifest_and_a_lost_worker_on_embedded_ray(tmp_path: Path) -> None:
    make_video(tmp_path / "clip.mp4", frames=6, width=32, height=24)
    script = textwrap.dedent("""
        import json
        from vt.batch import Job, run_batch
        jobs = [Job("clip.mp4", f"out/{n}.mkv", command="transcode",
                    options={"preset": "ultrafast"}) for n in range(3)]
        jobs.append(Job("missing.mp4", "out/missing.mkv", command="transcode"))
        jobs.append(Job("clip.mp4", "out/copy.mp4", fn="batch_helpers:dies_once",
                        options={"marker": "died"}))
        report = run_batch(jobs, engine="ray", retries=1, status="status.json",
                           base=".")
        print(json.dumps({"report": report.as_dict(),
                          "results": [r.as_dict() for r in report.results]}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # actors import the callable by name: its module must be on their path (on a real
    # cluster: installed on every node)
    path = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    env.update(VT_LOAD_PLUGINS="", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=path)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    report, results = data["report"], {r["row"]: r for r in data["results"]}
    assert report["engine"] == "ray" and report["startup_s"] > 0
    assert (report["done"], report["failed"]) == (4, 1)
    assert [results[n]["status"] for n in (1, 2, 3)] == ["done"] * 3
    assert results[4]["status"] == "failed" and results[4]["attempts"] == 2
    assert "not found" in results[4]["error"]
    # the actor died mid-job: Ray restarted it and ran the task again (vt saw one attempt)
    assert results[5]["status"] == "done" and results[5]["attempts"] == 1
    assert (tmp_path / "died").exists() and (tmp_path / "out/copy.mp4").exists()
    workers = {results[n]["worker"] for n in (1, 2, 3)}
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # actors, not the driver
    assert json.loads((tmp_path / "status.json").read_text())[0]["status"] == "done"


def test_vt_batch_engine_ray_from_the_command_line(tmp_path: Path) -> None:
    make_video(tmp_path / "clip.mp4", frames=6, width=32, height=24)
    rows = [
        {
            "command": "transcode",
            "input": "clip.mp4",
            "output": f"out/{n}.mkv",
            "preset": "ultrafast",
        }
        for n in range(2)
    ]
    (tmp_path / "jobs.yaml").write_text(json.dumps(rows))  # JSON is YAML too
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(VT_LOAD_PLUGINS="", RAY_USAGE_STATS_ENABLED="0")
    vt = Path(sys.executable).parent / "vt"
    done = subprocess.run(
        [str(vt), "batch", "jobs.yaml", "--engine", "ray", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["engine"], summary["done"], summary["failed"]) == ("ray", 2, 0)
    assert (tmp_path / "out/0.mkv").exists() and (tmp_path / "jobs.status.yaml").exists()
