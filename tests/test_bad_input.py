"""Bad input: a clear one-line error, a non-zero exit, and nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vt.testing import make_video

VT = shutil.which("vt", path=str(Path(sys.executable).parent))


def vt(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VT_LOAD_PLUGINS="")  # core only: plugins must not matter here
    return subprocess.run([VT, *args], capture_output=True, text=True, timeout=120, env=env)


def y4m(path: Path, width: int, height: int) -> Path:
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + bytes(64))
    return path


def no_video(tmp: Path) -> Path:
    import av
    import numpy as np

    path = tmp / "audio_only.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 48000
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return path


def unknown_codec(tmp: Path) -> Path:
    src = make_video(tmp / "raw.mkv", frames=2, codec="rawvideo", pixel_format="yuv420p")
    data = src.read_bytes().replace(b"V_UNCOMPRESSED", b"V_VTUNKNOWNXXX")
    path = tmp / "unknown_codec.mkv"
    path.write_bytes(data)
    return path


def truncated(tmp: Path) -> Path:
    src = make_video(tmp / "whole.mp4", frames=24, options={"movflags": ""})
    data = src.read_bytes()
    moov = data.find(b"moov")
    path = tmp / "truncated.mp4"
    path.write_bytes(data[: moov - 4] if moov > data.find(b"mdat") else data[: len(data) // 2])
    return path


def jpeg(tmp: Path) -> Path:
    import cv2
    import numpy as np

    path = tmp / "photo.mp4"
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    path.write_bytes(buf.tobytes())
    return path


CASES = {
    "missing": (lambda t: t / "nope.mp4", "input not found"),
    "directory": (
        lambda t: (t / "empty_dir").mkdir() or t / "empty_dir",
        "directory with no images",
    ),
    "empty": (
        lambda t: (t / "empty.mp4").write_bytes(b"") and None or t / "empty.mp4",
        "input is empty",
    ),
    "text": (
        lambda t: (
            (t / "notes.mp4").write_text("hello, not a video\n" * 50) and None or t / "notes.mp4"
        ),
        "not a video file we can read",
    ),
    "jpeg": (jpeg, "single JPEG image, not a video"),
    "truncated": (truncated, "not a video file we can read"),
    "no video": (no_video, "no video stream"),
    "unknown codec": (unknown_codec, "unsupported video codec"),
    "zero size": (lambda t: y4m(t / "zero.y4m", 0, 0), "cannot open|zero-size|not a video"),
    "absurd size": (lambda t: y4m(t / "huge.y4m", 17000, 64), "absurd dimensions"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path) -> None:
    import re

    make, message = CASES[case]
    src = make(tmp_path)
    out = tmp_path / "out.mp4"
    for args in (["info", str(src)], ["transcode", str(src), str(out)]):
        result = vt(*args)
        assert result.returncode == 1, (case, args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vt: error: "), result.stderr
        assert re.search(message, lines[0]), lines[0]
        assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".vt-tmp-" in p.name]


def corrupt_mid_stream(tmp: Path) -> Path:
    src = make_video(
        tmp / "mj.mkv", frames=48, width=128, height=96, codec="mjpeg", pixel_format="yuvj420p"
    )
    data = bytearray(src.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 3000, 7):
        data[offset] ^= 0xFF
    path = tmp / "corrupt.mkv"
    path.write_bytes(bytes(data))
    return path


def test_corrupt_packets_abort_by_default(tmp_path: Path) -> None:
    src = corrupt_mid_stream(tmp_path)
    out = tmp_path / "out.mkv"
    result = vt("transcode", str(src), str(out))
    assert result.returncode == 1
    assert "corrupt video data at" in result.stderr and "--on-frame-error pass" in result.stderr
    assert not out.exists()


def test_corrupt_packets_pass_decodes_what_it_can(tmp_path: Path) -> None:
    src = corrupt_mid_stream(tmp_path)
    out = tmp_path / "out.mkv"
    result = vt("transcode", str(src), str(out), "--on-frame-error", "pass", "--json")
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["decode_errors"] >= 1 and 0 < report["frames_out"] < 48
    assert "corrupt video data" in result.stderr  # the loss is reported, never silent


def test_unwritable_output_folder(tmp_path: Path, carphone: Path) -> None:
    result = vt("transcode", str(carphone), str(tmp_path / "no" / "such" / "dir" / "o.mp4"))
    assert result.returncode == 1 and "output folder does not exist" in result.stderr
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = vt("transcode", str(carphone), str(locked / "o.mp4"))
        assert result.returncode == 1 and "not writable" in result.stderr


def test_unknown_codec_option_is_usage_error(tmp_path: Path, carphone: Path) -> None:
    result = vt("transcode", str(carphone), str(tmp_path / "o.mp4"), "--codec", "nope264")
    assert result.returncode == 2 and "unknown video encoder 'nope264'" in result.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_output_without_extension(tmp_path: Path, carphone: Path) -> None:
    result = vt("transcode", str(carphone), str(tmp_path / "output"))
    assert result.returncode == 2 and "no extension" in result.stderr


@pytest.mark.parametrize("size", [(48, 48), (40, 64)])
def test_libx265_on_frames_that_crash_it_is_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    """PyAV 18.1's x265 aborts the whole process (heap corruption) on these sizes: vt must
    refuse them with one line instead of dying mid-write."""
    width, height = size
    clip = make_video(tmp_path / "small.mkv", frames=3, width=width, height=height, codec="ffv1")
    out = tmp_path / "o.mp4"
    result = vt("transcode", str(clip), str(out), "--codec", "libx265")
    assert result.returncode == 2, result.stderr
    assert "libx265 crashes on frames this small" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    assert list(tmp_path.iterdir()) == [clip]  # no temporary left behind


def test_libx265_at_the_smallest_safe_sizes_encodes(tmp_path: Path) -> None:
    for width, height in ((56, 40), (48, 72)):
        clip = make_video(
            tmp_path / f"in{width}.mkv", frames=3, width=width, height=height, codec="ffv1"
        )
        out = tmp_path / f"o{width}.mp4"
        result = vt("transcode", str(clip), str(out), "--codec", "libx265", "--preset", "ultrafast")
        assert result.returncode == 0, result.stderr
        assert out.stat().st_size > 0
