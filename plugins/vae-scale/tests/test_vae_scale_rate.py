"""``--fps`` and ``--max-frames`` for training sets, frame progress, single-thread jobs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from vt.media.info import probe
from vt.testing import make_video


def vt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VT_LOAD_PLUGINS": "vae-scale"}
    return subprocess.run(
        [sys.executable, "-m", "vt", "vae-scale", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


@pytest.mark.parametrize(
    ("fps", "max_frames", "frames", "seconds"),
    [
        ("8", None, 16, 2.0),  # 48 frames at 24 fps = 2 s -> 16 frames at 8 fps
        ("30000/1001", None, 60, 2.0),  # up: frames repeated, still 2 s
        ("8", 5, 5, 5 / 8),  # capped at the new rate
    ],
)
def test_fps_resamples_each_clip_with_audio_in_sync(
    tmp_path: Path, fps: str, max_frames: int | None, frames: int, seconds: float
) -> None:
    clip = make_video(tmp_path / "a.mp4", frames=48, fps=24, width=48, height=32, audio=True)
    extra = ("--max-frames", str(max_frames)) if max_frames else ()
    result = vt(
        str(clip),
        "-o",
        "out",
        "--target-size",
        "32",
        "--preset",
        "ultrafast",
        "--fps",
        fps,
        *extra,
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == frames
    (video,) = (tmp_path / "out").glob("*.mp4")
    info = probe(str(video), count_frames=True)
    rate = float(Fraction(fps))
    assert info.video.frame_count == frames
    times = frame_times(video)
    assert times == pytest.approx([k / rate for k in range(frames)], abs=2e-3)
    assert info.audio, "audio dropped"
    assert info.audio[0].duration == pytest.approx(seconds, abs=0.05)
    assert (info.video.width, info.video.height) == (32, 32)


def test_fps_is_part_of_the_job_key_and_bad_rates_exit_2(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "a.mp4", frames=24, fps=24, width=32, height=32)
    base = (str(clip), "-o", "out", "--target-size", "32", "--preset", "ultrafast", "--json")
    assert json.loads(vt(*base, "--fps", "8", cwd=tmp_path).stdout)["done"] == 1
    # the same rate spelt another way is the same job
    assert json.loads(vt(*base, "--fps", "8/1", cwd=tmp_path).stdout)["skipped"] == 1
    assert json.loads(vt(*base, "--fps", "12", cwd=tmp_path).stdout)["done"] == 1
    bad = vt(*base, "--fps", "0", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("vt: error: fps must be")
    assert "Traceback" not in bad.stderr


def test_frame_progress_reaches_every_clip_total(tmp_path: Path) -> None:
    from vt_vae_scale.scale import ScaleSettings, scale_table

    clips = [
        make_video(tmp_path / f"c{n}.mp4", frames=24 + 12 * n, fps=24, width=48, height=32)
        for n in range(2)
    ]
    seen: dict[int, list[tuple[int, int | None]]] = {}
    done: list[int] = []
    result = scale_table(
        None,
        inputs=[str(c) for c in clips],
        output_dir=tmp_path / "out",
        settings=ScaleSettings(target_size=32, preset="ultrafast"),
        workers=2,
        frame_progress=lambda r, d, t: seen.setdefault(r.row, []).append((d, t)),
        progress=lambda r, c: done.append(r.row),
    )
    assert result.report.done == 2 and sorted(done) == [1, 2]
    for row, frames in ((1, 24), (2, 36)):
        assert seen[row][-1] == (frames, frames)
        counts = [d for d, _ in seen[row]]
        assert counts == sorted(counts)


def test_the_runner_decides_single_thread_and_the_flag_forces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt_vae_scale.scale import ScaleSettings, scale_table

    monkeypatch.setattr("vt.batch.runner.usable_cores", lambda: 2)
    clips = [
        str(make_video(tmp_path / f"c{n}.mp4", frames=4, width=32, height=32)) for n in range(2)
    ]
    settings = ScaleSettings(target_size=32, preset="ultrafast")
    two = scale_table(None, inputs=clips, output_dir=tmp_path / "a", settings=settings, workers=2)
    one = scale_table(None, inputs=clips, output_dir=tmp_path / "b", settings=settings, workers=1)
    forced = scale_table(
        None,
        inputs=clips,
        output_dir=tmp_path / "c",
        settings=settings,
        workers=1,
        single_thread=True,
    )
    assert (two.report.single_thread, one.report.single_thread, forced.report.single_thread) == (
        True,
        False,
        True,
    )
    assert [r.status for r in forced.report.results] == ["done", "done"]


def test_the_display_shows_videos_and_frames() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from vt_vae_scale.cli import _progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    bar, on_video, on_frames = _progress(False, console)
    result = SimpleNamespace(row=1, input="/data/clip.mp4", status="pending", report=None)
    with bar:
        on_frames(result, 10, 40)
        on_frames(result, 40, 40)
        assert [t.description for t in bar.tasks] == ["[bold]videos", "  clip.mp4"]
        assert bar.tasks[1].completed == 40 and bar.tasks[1].total == 40
        assert bar.tasks[0].fields["note"] == "40 frames"
        result.status, result.report = "done", {"frame_count": 40}
        on_video(result, SimpleNamespace(finished=1, total=3))
        assert [t.description for t in bar.tasks] == ["[bold]videos"]  # the clip's bar gone
        assert (bar.tasks[0].completed, bar.tasks[0].total) == (1, 3)
        assert bar.tasks[0].fields["note"] == "40 frames"
    quiet = _progress(True, console)
    assert quiet == (None, None, None)
