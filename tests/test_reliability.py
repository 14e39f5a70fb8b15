"""Regression tests from the hostile run (issue 8): no data loss, no surprises.

Each test names the item it guards; each failed on the code before the fix.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from vt.errors import OutputError, UsageError
from vt.media.encode import EncoderConfig
from vt.media.output import FRAMES_MARKER
from vt.media.pipeline import PipelineOptions, process_video
from vt.tempfiles import temp_path
from vt.testing import make_video

VT = shutil.which("vt", path=str(Path(sys.executable).parent))
FAST = EncoderConfig(preset="ultrafast")


def vt(
    *args: str, cwd: Path | None = None, plugins: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, **(env or {}))
    if not plugins:
        environ["VT_LOAD_PLUGINS"] = ""
    return subprocess.run(
        [VT, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=environ
    )


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".vt-tmp-" in p.name]


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vt: error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "in.mp4", frames=12, width=64, height=48, fps=24)


# -- 1. a folder given as the output is never wiped -------------------------------------------
def test_folder_holding_the_input_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_video(work / "in.mp4", frames=6)
    (work / "notes.txt").write_text("mine")
    result = vt("transcode", str(src), str(work), "--end", "0.12", "-y")
    assert "holds the input" in one_line_error(result, 2)
    assert sorted(p.name for p in work.iterdir()) == ["in.mp4", "notes.txt"]


def test_working_folder_as_output_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    make_video(work / "in.mp4", frames=6)
    result = vt("transcode", "in.mp4", ".", "-y", cwd=work)
    assert "working folder" in one_line_error(result, 2)
    assert [p.name for p in work.iterdir()] == ["in.mp4"]


def test_folder_not_made_by_vt_is_never_replaced(clip: Path, tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"precious")
    result = vt("transcode", str(clip), str(mine), "-y")
    assert FRAMES_MARKER in one_line_error(result, 2)
    assert (mine / "holiday.png").read_bytes() == b"precious"
    assert not (mine / FRAMES_MARKER).exists()


def test_empty_folder_is_filled_and_marked(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    out.mkdir()
    process_video(clip, out, options=PipelineOptions())
    assert len(list(out.glob("*.png"))) == 12
    assert (out / FRAMES_MARKER).is_file()


# -- 4. replacing a frame folder replaces all of it -------------------------------------------
@pytest.mark.parametrize("form", ["folder/", "folder/%04d.png"])
def test_overwriting_a_frame_folder_leaves_only_the_new_frames(
    clip: Path, tmp_path: Path, form: str
) -> None:
    out = f"{tmp_path}/{form}"
    process_video(clip, out, options=PipelineOptions())
    assert len(list((tmp_path / "folder").glob("*.png"))) == 12
    process_video(clip, out, options=PipelineOptions(overwrite=True, end=4 / 24))
    names = sorted(p.name for p in (tmp_path / "folder").iterdir())
    assert [n for n in names if n.endswith(".png")] == [
        (Path(form).name if "%" in form else "%06d.png") % i for i in range(1, 5)
    ]
    assert FRAMES_MARKER in names
    assert not leftovers(tmp_path)


# -- 2. a target that appears while writing is not replaced without --overwrite ---------------
def test_output_appearing_during_the_run_is_not_replaced(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"

    def other_job_finishes(done: int, total: int | None) -> None:
        if done == 6:
            out.write_bytes(b"the other job's result")

    with pytest.raises(OutputError, match="appeared while vt was writing"):
        process_video(clip, out, config=FAST, progress=other_job_finishes)
    assert out.read_bytes() == b"the other job's result"
    assert not leftovers(tmp_path)


def test_frame_folder_appearing_during_the_run_is_not_replaced(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"

    def other_job_finishes(done: int, total: int | None) -> None:
        if done == 6 and not out.exists():
            out.mkdir()
            (out / "000001.png").write_bytes(b"theirs")

    with pytest.raises(OutputError, match="appeared while vt was writing"):
        process_video(clip, str(out) + "/", progress=other_job_finishes)
    assert [p.name for p in out.iterdir()] == ["000001.png"]
    assert not leftovers(tmp_path)


def test_two_concurrent_jobs_one_wins(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=48, width=160, height=120)
    out = tmp_path / "out.mp4"
    jobs = [
        subprocess.Popen(
            [VT, "transcode", str(src), str(out), "--preset", "ultrafast", "-q"],
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, VT_LOAD_PLUGINS=""),
        )
        for _ in range(2)
    ]
    results = [(job.wait(timeout=120), job.stderr.read()) for job in jobs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    assert any("exists" in err or "appeared" in err for _, err in results)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 48
    assert not leftovers(tmp_path)


# -- 3. a start past the end is an error, and nothing is written -------------------------------
@pytest.mark.parametrize("name", ["o.mp4", "o.mkv", "frames/"])
def test_start_past_the_end_is_a_usage_error(clip: Path, tmp_path: Path, name: str) -> None:
    result = vt("transcode", str(clip), f"{tmp_path}/{name}", "--start", "100")
    line = one_line_error(result, 2)
    assert "no frames selected" in line and "0.500 s" in line  # 12 frames at 24 fps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_empty_selection_inside_the_clip_is_an_error(clip: Path, tmp_path: Path) -> None:
    # a range between two frames selects none, though it starts before the end
    with pytest.raises(UsageError, match="no frames selected"):
        process_video(
            clip, tmp_path / "o.mp4", config=FAST, options=PipelineOptions(start=0.001, end=0.002)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# -- 11. SIGHUP cleans up like SIGTERM; leftovers of dead processes are removed ----------------
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_termination_signal_removes_the_partial_output(tmp_path: Path, sig: int) -> None:
    src = make_video(tmp_path / "in.mp4", frames=240, width=320, height=240)
    out = tmp_path / "out.mkv"
    job = subprocess.Popen(
        [VT, "transcode", str(src), str(out), "--preset", "veryslow", "-q"],
        env=dict(os.environ, VT_LOAD_PLUGINS=""),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    assert leftovers(tmp_path), "the run never started writing"
    job.send_signal(sig)
    assert job.wait(timeout=60) != 0
    assert not out.exists()
    assert not leftovers(tmp_path)


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_stale_temporaries_of_dead_runs_are_removed_and_others_kept(
    clip: Path, tmp_path: Path
) -> None:
    dead = tmp_path / f".old.mp4.vt-tmp-{_dead_pid()}-0123abcd.mp4"
    dead.write_bytes(b"x" * 1000)
    dead_dir = tmp_path / f".old.vt-tmp-{_dead_pid()}-89abcdef"
    dead_dir.mkdir()
    (dead_dir / "000001.png").write_bytes(b"x")
    alive = temp_path(tmp_path / "busy.mp4", ".mp4")  # this process: alive
    alive.write_bytes(b"y")
    resume = tmp_path / "out.mp4.vt-resume"
    resume.mkdir()
    (resume / "state.json").write_text("{}")
    lookalike = tmp_path / "notes.vt-tmp-1-0123abcd.txt"  # not hidden: not ours
    lookalike.write_text("mine")
    process_video(clip, tmp_path / "out.mp4", config=FAST)
    assert not dead.exists() and not dead_dir.exists()
    assert alive.exists() and (resume / "state.json").exists() and lookalike.exists()


# -- 12. modes follow the umask; -y keeps the replaced file's mode ----------------------------
def test_outputs_follow_the_umask(clip: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        process_video(clip, tmp_path / "a.mp4", config=FAST)
        process_video(clip, f"{tmp_path}/frames/", options=PipelineOptions(end=0.1))
        os.umask(0o027)
        process_video(clip, tmp_path / "b.mp4", config=FAST)
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "a.mp4") == 0o644
    assert mode(tmp_path / "frames") == 0o755
    assert {mode(p) for p in (tmp_path / "frames").iterdir()} == {0o644}
    assert mode(tmp_path / "b.mp4") == 0o640


def test_overwrite_keeps_the_mode_of_the_replaced_file(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    out.write_bytes(b"old")
    os.chmod(out, 0o664)
    process_video(clip, out, config=FAST, options=PipelineOptions(overwrite=True))
    assert stat.S_IMODE(out.stat().st_mode) == 0o664
    assert out.stat().st_size > 100


# -- 13. absurd values are usage errors, checked before anything runs ------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["--start", "nan"], "start time"),
        (["--end", "inf"], "end time"),
        (["--threads", "-5"], "--threads"),
        (["-e", "bogus=1"], "unknown option(s) for encoder libx264: bogus=1"),
        (["-e", "crf=abc"], "rejected by libx264"),
    ],
)
def test_bad_option_values_are_usage_errors(
    clip: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    result = vt("transcode", str(clip), str(tmp_path / "o.mp4"), *args)
    assert words in one_line_error(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_valid_encoder_option_is_accepted(clip: Path, tmp_path: Path) -> None:
    result = vt(
        "transcode",
        str(clip),
        str(tmp_path / "o.mp4"),
        "-e",
        "tune=film",
        "--preset",
        "ultrafast",
        "-q",
    )
    assert result.returncode == 0, result.stderr


# -- 15. a file FFmpeg cannot open is not handed to heavier backends ---------------------------
PROBE = """
import sys
from vt.media.decode import open_video
try:
    open_video(sys.argv[1])
except Exception as exc:
    print(type(exc).__name__, exc)
print("torchcodec" in sys.modules, "decord" in sys.modules)
"""


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4"])
@pytest.mark.parametrize(
    "priority, tried", [(None, "False False"), ("pyav,torchcodec", "True False")]
)
def test_text_file_is_not_tried_with_other_backends(
    tmp_path: Path, priority: str | None, tried: str, name: str
) -> None:
    text = tmp_path / name
    text.write_text("this is not a video\n" * 50)
    env = dict(os.environ)
    env.pop("VT_DECODER_PRIORITY", None)
    if priority:
        env["VT_DECODER_PRIORITY"] = priority
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(text)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(("UnreadableInputError", "InputError")), result.stdout
    assert "not a video file we can read" in lines[0]
    if priority is None or _torchcodec_available():
        assert lines[-1] == tried


def _torchcodec_available() -> bool:
    from vt.plugins import get_host

    return get_host().decoders.get("torchcodec").available() is None
