"""``vt kizuna --temporal`` in segments (issue 17): the temporal stage declares its context
(``temporal_context``), so segments run in worker processes give one pass's frames."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av

from vt.testing import make_video
from vt_kizuna.temporal import TemporalStabilizer

VT = shutil.which("vt", path=str(Path(sys.executable).parent))


def _frames(path: Path) -> tuple[list[float], str]:
    digest, times = hashlib.sha256(), []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            times.append(float(frame.pts * frame.time_base))
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
    return times, digest.hexdigest()


def test_temporal_stage_declares_its_context() -> None:
    assert TemporalStabilizer(radius=2).temporal_context == (2, 2)


def test_segmented_temporal_run_in_two_workers_equals_one_pass(tmp_path: Path) -> None:
    clip = make_video(
        tmp_path / "c.mp4", frames=40, width=64, height=48, fps=25, audio=True, options={"g": "8"}
    )
    env = dict(os.environ, VT_LOAD_PLUGINS="kizuna")
    common = [VT, "kizuna", str(clip), "--temporal", "-c", "ffv1", "-q"]
    one = subprocess.run(
        [*common, "-o", str(tmp_path / "one.mkv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    seg = subprocess.run(
        [
            *common[:-1],
            "-o",
            str(tmp_path / "seg.mkv"),
            "--json",
            "--segment-seconds",
            "0.3",
            "--workers",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seg.returncode == 0, seg.stderr
    segments = json.loads(seg.stdout)["pipeline"]["segments"]  # the core's report
    assert segments["count"] >= 3 and segments["workers"] == 2
    times, pixels = _frames(tmp_path / "one.mkv")
    assert len(times) == 40
    assert _frames(tmp_path / "seg.mkv") == (times, pixels)
