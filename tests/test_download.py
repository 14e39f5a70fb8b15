"""``vt.download`` and ``vt.cache_dir``: one downloader and one cache folder for every plugin.

Every download goes to a local HTTP server on 127.0.0.1; nothing leaves the machine."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import vt
from vt.download import download
from vt.errors import (
    ChecksumMismatchError,
    DownloadError,
    DownloadRefusedError,
    DownloadTimeoutError,
    DownloadTooLargeError,
    UsageError,
)
from vt.testing import FileHandler, serve_http


class _Handler(FileHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []
    ftp_port = 0

    def route(self, path: str) -> bool:
        if path == "/to-ftp":
            self.redirect(f"ftp://127.0.0.1:{self.ftp_port}/x")
        elif path == "/to-file":
            self.redirect("file:///etc/passwd")
        elif path.startswith("/hop/"):  # an endless chain of distinct URLs
            self.redirect(f"/hop/{int(path[5:]) + 1}")
        elif path == "/to-data":
            self.redirect("/data")
        elif path == "/nolength":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"z" * 5000)
        else:
            return False
        return True


PAYLOAD = b"vt download test payload " * 40


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    _Handler.files = {"/data": PAYLOAD}
    with serve_http(_Handler) as url:
        yield url


@pytest.fixture(autouse=True)
def _clear_requests() -> None:
    _Handler.requests.clear()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- cache folders ---------------------------------------------------------------------------
def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("VT_CACHE_DIR", "XDG_CACHE_HOME", "VT_MODEL_CACHE"):
        monkeypatch.delenv(var, raising=False)
    assert vt.cache_dir("qwen") == tmp_path / "home" / ".cache" / "vt" / "qwen"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert vt.cache_dir("downloads") == tmp_path / "xdg" / "vt" / "downloads"
    monkeypatch.setenv("VT_CACHE_DIR", str(tmp_path / "vt"))
    assert vt.cache_dir("models") == tmp_path / "vt" / "models"
    # VT_MODEL_CACHE (documented) still wins for models, and only for models
    monkeypatch.setenv("VT_MODEL_CACHE", str(tmp_path / "weights"))
    assert vt.cache_dir("models") == tmp_path / "weights"
    assert vt.cache_dir("qwen") == tmp_path / "vt" / "qwen"
    assert not (tmp_path / "vt").exists()  # nothing is created by asking
    with pytest.raises(UsageError, match="invalid cache kind"):
        vt.cache_dir("../elsewhere")


# -- downloads -------------------------------------------------------------------------------
def test_download_is_atomic_and_verified(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "file.bin"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{server}/data", dest, max_bytes=10**6, timeout=10, sha256=sha) == dest
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no temp left


def test_checksum_mismatch_keeps_nothing_and_spares_the_old_file(
    server: str, tmp_path: Path
) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(ChecksumMismatchError, match="failed verification: sha256 .*expected 0+"):
        download(f"{server}/data", dest, max_bytes=10**6, timeout=10, sha256="0" * 64)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_size_limit_from_header_and_while_streaming(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadTooLargeError, match=f"{len(PAYLOAD)} bytes > limit 100"):
        download(f"{server}/data", tmp_path / "a", max_bytes=100, timeout=10)
    with pytest.raises(DownloadTooLargeError, match="over the 1000-byte limit"):
        download(f"{server}/nolength", tmp_path / "b", max_bytes=1000, timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_http_errors_and_other_schemes_are_one_line(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(f"{server}/missing", tmp_path / "a", max_bytes=100, timeout=10)
    assert "\n" not in str(info.value)
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "data:,x"):
        with pytest.raises(DownloadRefusedError, match="refused"):
            download(url, tmp_path / "a", max_bytes=100, timeout=10)


def test_redirects_are_followed_for_http_only(server: str, tmp_path: Path) -> None:
    assert (
        download(f"{server}/to-data", tmp_path / "a", max_bytes=10**6, timeout=10).read_bytes()
        == PAYLOAD
    )
    listener = socket.create_server(("127.0.0.1", 0))
    _Handler.ftp_port = listener.getsockname()[1]
    try:
        with pytest.raises(DownloadRefusedError) as info:
            download(f"{server}/to-ftp", tmp_path / "b", max_bytes=100, timeout=5)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing ever connected to the ftp:// port
            listener.accept()
    finally:
        listener.close()
    assert str(info.value).startswith("redirect to ftp:// refused")
    with pytest.raises(DownloadRefusedError, match="redirect to file:// refused"):
        download(f"{server}/to-file", tmp_path / "c", max_bytes=100, timeout=5)


def test_redirects_are_capped(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadRefusedError, match=r"too many redirects \(more than 3\)"):
        download(f"{server}/hop/0", tmp_path / "a", max_bytes=100, timeout=10, max_redirects=3)
    assert _Handler.requests == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]


def test_total_timeout(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        with pytest.raises(DownloadTimeoutError, match="timed out after 0.3s"):
            download(
                f"http://127.0.0.1:{listener.getsockname()[1]}/x",
                tmp_path / "a",
                max_bytes=100,
                timeout=0.3,
            )
    finally:
        listener.close()


def test_stale_temp_files_are_cleaned_before_a_download(server: str, tmp_path: Path) -> None:
    stale = tmp_path / f".file.bin.vt-tmp-{_dead_pid()}-0123abcd"
    live = tmp_path / f".file.bin.vt-tmp-{os.getppid()}-89abcdef"
    resume = tmp_path / "out.mp4.vt-resume"
    for path in (stale, live):
        path.write_bytes(b"partial")
    resume.mkdir()
    download(f"{server}/data", tmp_path / "file.bin", max_bytes=10**6, timeout=10)
    assert not stale.exists()
    assert live.exists() and resume.is_dir()
