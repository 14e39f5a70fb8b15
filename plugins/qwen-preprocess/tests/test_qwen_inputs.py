"""Every input kind: paths, file:// and http(s) URLs (local server), data URIs, bytes, streams,
frame lists and folders; and the one-line errors for bad ones."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vt.cachedirs import cache_dir
from vt.cli import create_app
from vt.errors import InputError
from vt.testing import FileHandler, sample_clip, serve_http
from vt_qwen_preprocess import plan, preprocess
from vt_qwen_preprocess.inputs import resolve_input


class _Handler(FileHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []
    ftp_port = 0

    def route(self, path: str) -> bool:
        if path == "/to-ftp.mp4":
            self.redirect(f"ftp://127.0.0.1:{self.ftp_port}/x")
        elif path == "/loop.mp4":
            self.redirect("/loop.mp4")
        elif path.startswith("/hop/"):  # an endless chain of distinct URLs
            self.redirect(f"/hop/{int(path[5:]) + 1}")
        elif path == "/to-bikes.mp4":
            self.redirect("/bikes.mp4")
        elif path == "/slow.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x" * 100)
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/nolength.mp4":  # size cap must hold without Content-Length
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(50):
                    self.wfile.write(b"y" * 10000)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            return False
        return True


@pytest.fixture(scope="module")
def server(request):
    _Handler.files = {"/bikes.mp4": sample_clip("bikes").read_bytes()}
    with serve_http(_Handler) as url:
        yield url


def test_local_path_and_file_url_agree(bikes):
    a = plan(bikes, fps=2.0)
    b = plan(f"file://{bikes}", fps=2.0)
    assert a.indices == b.indices and a.nframes == 20


def test_http_url_is_downloaded_and_cleaned_up(server, bikes):
    inp = resolve_input(f"{server}/bikes.mp4", max_download_bytes=10**8, timeout=10)
    with inp:
        temp = inp.temp_files[0]
        assert temp.exists() and temp.read_bytes() == Path(bikes).read_bytes()
    assert not temp.exists()
    result = preprocess(f"{server}/bikes.mp4", fps=2.0, cache=False)
    assert result.frames.shape[0] == 20


def test_http_size_cap_is_enforced(server):
    with pytest.raises(InputError, match="too large"):
        preprocess(f"{server}/bikes.mp4", max_download_bytes=1000, cache=False)
    with pytest.raises(InputError, match="too large"):
        preprocess(f"{server}/nolength.mp4", max_download_bytes=50000, cache=False)


def test_http_timeout_is_enforced(server):
    start = time.monotonic()
    with pytest.raises(InputError, match="timed out"):
        preprocess(f"{server}/slow.mp4", download_timeout=1.0, cache=False)
    assert time.monotonic() - start < 5


def test_http_errors_are_one_line(server):
    with pytest.raises(InputError, match="HTTP 404"):
        plan(f"{server}/missing.mp4")


def test_redirect_to_ftp_is_refused_before_connecting(server):
    listener = socket.create_server(("127.0.0.1", 0))  # would see any connection attempt
    _Handler.ftp_port = listener.getsockname()[1]
    try:
        with pytest.raises(InputError) as info:
            resolve_input(f"{server}/to-ftp.mp4", max_download_bytes=10**6, timeout=3)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected to the ftp:// port
    finally:
        listener.close()
    message = str(info.value)
    assert message.startswith("redirect to ftp:// refused") and "\n" not in message
    assert f"ftp://127.0.0.1:{_Handler.ftp_port}/x" in message
    result = CliRunner().invoke(create_app(), ["qwen-preprocess", f"{server}/to-ftp.mp4", "--plan"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"vt: error: {message}"]


def test_redirects_are_followed_and_capped(server, bikes):
    inp = resolve_input(f"{server}/to-bikes.mp4", max_download_bytes=10**8, timeout=10)
    with inp:
        assert inp.temp_files[0].read_bytes() == Path(bikes).read_bytes()
    _Handler.requests.clear()
    with pytest.raises(InputError, match=r"^too many redirects \(more than 5\)"):
        resolve_input(f"{server}/hop/0", max_download_bytes=10**6, timeout=10)
    assert _Handler.requests == [f"/hop/{i}" for i in range(6)]  # the first URL + 5 hops
    with pytest.raises(InputError, match=r"^too many redirects"):
        resolve_input(f"{server}/loop.mp4", max_download_bytes=10**6, timeout=10)


def test_downloads_use_vt_temp_names_and_stale_ones_are_cleaned(server):
    proc = subprocess.Popen(["true"])
    proc.wait()  # its PID is now free: a killed run's leftover
    folder = cache_dir("downloads")
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / f".qwen-download.vt-tmp-{proc.pid}-0123abcd.mp4"
    live = folder / f".qwen-download.vt-tmp-{os.getppid()}-89abcdef.mp4"
    stale.write_bytes(b"partial")
    live.write_bytes(b"in progress elsewhere")
    with resolve_input(f"{server}/bikes.mp4", max_download_bytes=10**8, timeout=10) as inp:
        temp = inp.temp_files[0]
        assert temp.parent == folder and ".vt-tmp-" in temp.name
    assert not stale.exists() and live.exists() and not temp.exists()


def test_other_schemes_are_refused():
    for url in ("ftp://example.com/a.mp4", "s3://bucket/a.mp4", "rtsp://host/stream"):
        with pytest.raises(InputError, match="unsupported URL scheme"):
            plan(url)


def test_base64_data_uri_and_raw_bytes(bikes):
    data = Path(bikes).read_bytes()
    uri = "data:video/mp4;base64," + base64.b64encode(data).decode()
    assert plan(uri, fps=2.0).nframes == 20
    assert plan(data, fps=2.0).nframes == 20
    assert plan(io.BytesIO(data), fps=2.0).nframes == 20
    result = preprocess(data, nframes=4, cache=False)
    assert result.frames.shape == (4, 3, 280, 644)


def test_oversized_base64_is_refused_before_decoding(monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("an oversized payload was decoded")

    monkeypatch.setattr(base64, "b64decode", no_decode)
    uri = "data:video/mp4;base64," + "A" * 4000  # 3000 bytes once decoded
    with pytest.raises(
        InputError,
        match=r"too large: 4000 characters encoded, over the "
        r"1000-byte input limit \(refused before decoding\)",
    ):
        resolve_input(uri, max_bytes=1000)


def test_base64_at_the_limit_is_accepted_with_line_breaks():
    data = bytes(range(256)) * 4  # 1024 bytes
    wrapped = base64.encodebytes(data).decode()  # MIME: a newline every 76 characters
    with resolve_input("data:video/mp4;base64," + wrapped, max_bytes=len(data)) as inp:
        assert inp.source.path.read_bytes() == data
    with pytest.raises(InputError, match="too large"):
        resolve_input("data:video/mp4;base64," + wrapped, max_bytes=len(data) - 1)


def test_bad_base64_is_a_clear_error():
    with pytest.raises(InputError, match="invalid base64"):
        plan("data:video/mp4;base64,!!!not base64!!!")
    with pytest.raises(InputError, match="malformed data URI"):
        plan("data:video/mp4;base64")


def test_corrupted_and_empty_videos(tmp_path, bikes):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 1000)
    with pytest.raises(InputError):
        preprocess(bad, cache=False)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        plan(empty)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(bikes).read_bytes()[:40000])
    with pytest.raises(InputError):
        preprocess(truncated, cache=False)
    with pytest.raises(InputError, match="not found"):
        plan(tmp_path / "nope.mp4")


def test_unsupported_extension_and_images_are_refused(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match="unsupported video format"):
        plan(txt)


def test_max_video_duration(bikes):
    with pytest.raises(InputError, match="limit"):
        plan(bikes, max_video_duration=5)
    assert plan(bikes, max_video_duration=5, start=0.0, end=4.0).nframes == 8


def _frames(n=5, h=60, w=90):
    from vt.testing import pattern_frame

    return [pattern_frame(i, w, h) for i in range(n)]


def test_frame_lists_of_every_kind(tmp_path):
    from PIL import Image

    arrays = _frames()
    pil = [Image.fromarray(a) for a in arrays]
    paths = []
    for i, img in enumerate(pil):
        p = tmp_path / f"f{i:03d}.png"
        img.save(p)
        paths.append(str(p))
    uris = [
        "data:image/png;base64," + base64.b64encode(Path(p).read_bytes()).decode() for p in paths
    ]
    import torch

    tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    outputs = []
    for value in (
        arrays,
        pil,
        paths,
        uris,
        [f"file://{p}" for p in paths],
        np.stack(arrays),
        tensor,
        str(tmp_path),
    ):
        r = preprocess(value, cache=False)
        # 5 frames are padded to 6 (the frame factor) by repeating the last, as the reference
        assert r.frames.shape[0] == 6, type(value)
        assert r.plan.indices == [0, 1, 2, 3, 4, 4]
        outputs.append(r.frames)
    for other in outputs[1:]:
        assert (other - outputs[0]).abs().max().item() == 0


def test_frame_list_with_nframes_subsamples():
    r = preprocess(_frames(10), nframes=4, cache=False)
    assert r.plan.indices == [0, 3, 6, 9]


def test_bad_frames_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="empty"):
        preprocess([], cache=False)
    with pytest.raises(InputError, match="not an image"):
        bad = tmp_path / "x.png"
        bad.write_bytes(b"nope")
        preprocess([str(bad)], cache=False)
    with pytest.raises(InputError, match="invalid base64"):
        preprocess(["data:image/png;base64,@@@"], cache=False)
    with pytest.raises(InputError, match="unsupported input type"):
        preprocess(12345, cache=False)
