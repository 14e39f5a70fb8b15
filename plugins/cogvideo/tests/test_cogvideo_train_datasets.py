"""The data-preparation commands: MSR-VTT and VATEX from a local copy, from a (local) server,
and the one-line error when the network cannot be reached; Panda-70M guidance."""

from __future__ import annotations

import io
import json
import shutil
import socket
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cogvideo_train_helpers import cli_host, invoke

from vt.testing import FileHandler, sample_clip, serve_http

MSR_CLIPS = {"video0": "bikes", "video1": "carphone_pristine", "video2": "carphone_distorted"}


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    from vt.plugins import get_host, set_host

    monkeypatch.setenv("VT_CACHE_DIR", str(tmp_path / "vt-cache"))
    previous = get_host()
    yield cli_host(monkeypatch)
    set_host(previous)


def _msr_annotations() -> dict[str, Any]:
    return {
        "annotations": [
            {"image_id": vid, "caption": f"caption of {clip}", "id": i}
            for i, (vid, clip) in enumerate(MSR_CLIPS.items())
        ]
    }


def _msr_source(root: Path) -> Path:
    """A local copy laid out as MSRVTT.zip unpacks (videos/all, annotation/MSR_VTT.json)."""
    videos = root / "MSRVTT" / "videos" / "all"
    videos.mkdir(parents=True)
    for vid, clip in MSR_CLIPS.items():
        shutil.copy(sample_clip(clip), videos / f"{vid}.mp4")
    (root / "MSRVTT" / "annotation").mkdir()
    (root / "MSRVTT" / "annotation" / "MSR_VTT.json").write_text(json.dumps(_msr_annotations()))
    return root


def _closed_port_url(path: str) -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"


def test_msr_vtt_from_a_local_copy_then_prepare_metadata(host: Any, tmp_path: Path) -> None:
    source = _msr_source(tmp_path / "src")
    out = tmp_path / "msr"
    result = invoke(
        host, "download-msr-vtt", "--source", source, "-o", out, "--limit", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["videos"], report["copied"], report["kept"]) == (2, 2, 0)
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["video0.mp4", "video1.mp4"]
    assert (out / "videos" / "video0.mp4").read_bytes() == sample_clip("bikes").read_bytes()
    assert json.loads((out / "captions.json").read_text()) == _msr_annotations()
    again = invoke(
        host, "download-msr-vtt", "--source", source, "-o", out, "--limit", "2", "--json"
    )
    assert json.loads(again.stdout)["kept"] == 2  # nothing copied twice
    # what it wrote is what prepare-metadata reads
    result = invoke(
        host,
        "prepare-metadata",
        "--videos",
        out / "videos",
        "--captions",
        out / "captions.json",
        "-o",
        tmp_path / "m.json",
        "--num-frames",
        "9",
    )
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "m.json").read_text())
    assert [(e["id"], e["prompt"]) for e in entries] == [
        ("video0", "caption of bikes"),
        ("video1", "caption of carphone_pristine"),
    ]


def test_msr_vtt_archive_downloaded_from_a_server(host: Any, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    source = _msr_source(tmp_path / "src")
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(source).as_posix())

    class Handler(FileHandler):
        files: ClassVar[dict[str, bytes]] = {"/MSRVTT.zip": buffer.getvalue()}
        requests: ClassVar[list[str]] = []

    with serve_http(Handler) as base:
        result = invoke(
            host,
            "download-msr-vtt",
            "-o",
            tmp_path / "msr",
            "--url",
            f"{base}/MSRVTT.zip",
            "--limit",
            "1",
            "--json",
        )
        assert result.exit_code == 0, result.output
        # the archive is kept in vt's cache: a second run does not download it again
        again = invoke(
            host,
            "download-msr-vtt",
            "-o",
            tmp_path / "msr2",
            "--url",
            f"{base}/MSRVTT.zip",
            "--json",
        )
        assert again.exit_code == 0, again.output
    assert Handler.requests == ["/MSRVTT.zip"]
    assert json.loads(result.stdout)["videos"] == 1
    assert json.loads(again.stdout)["videos"] == 3
    assert (tmp_path / "msr2" / "videos" / "video2.mp4").read_bytes() == sample_clip(
        "carphone_distorted"
    ).read_bytes()
    assert json.loads((tmp_path / "msr" / "captions.json").read_text()) == _msr_annotations()


@pytest.mark.parametrize("command", ["download-msr-vtt", "download-vatex"])
def test_unreachable_network_is_one_line(host: Any, tmp_path: Path, command: str) -> None:
    result = invoke(host, command, "-o", tmp_path / "out", "--url", _closed_port_url("x"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "is the network reachable?" in result.stderr and "--source DIR" in result.stderr
    assert not list((tmp_path / "out").glob("videos/*"))


def test_vatex_captions_download_and_local_clips(host: Any, tmp_path: Path) -> None:
    captions = [
        {"videoID": "bikes_000000_000010", "enCap": ["people cycle"], "chCap": []},
        {"videoID": "phone_000001_000005", "enCap": ["a call"], "chCap": []},
    ]

    class Handler(FileHandler):
        files: ClassVar[dict[str, bytes]] = {"/vatex.json": json.dumps(captions).encode()}
        requests: ClassVar[list[str]] = []

    with serve_http(Handler) as base:
        result = invoke(
            host, "download-vatex", "-o", tmp_path / "vatex", "--url", f"{base}/vatex.json"
        )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "vatex" / "captions.json").read_text()) == captions
    assert "YouTube segments" in result.stderr
    # clips fetched elsewhere, named by videoID, come in with --source
    source = tmp_path / "vatex-src"
    source.mkdir()
    shutil.copy(sample_clip("bikes"), source / "bikes_000000_000010.mp4")
    (source / "vatex_training_v1.0.json").write_text(json.dumps(captions))
    result = invoke(host, "download-vatex", "--source", source, "-o", tmp_path / "v2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["videos"], report["missing_videos"]) == (1, 1)
    assert (tmp_path / "v2" / "videos" / "bikes_000000_000010.mp4").is_file()


def test_local_copy_errors(host: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(host, "download-msr-vtt", "--source", empty, "-o", tmp_path / "o")
    assert result.exit_code == 1 and "no caption file" in result.stderr
    result = invoke(
        host, "download-msr-vtt", "--source", tmp_path / "missing", "-o", tmp_path / "o"
    )
    assert result.exit_code == 2 and "is not a folder" in result.stderr


def test_panda70m_prints_the_guidance(host: Any) -> None:
    result = invoke(host, "download-panda70m")
    assert result.exit_code == 0
    assert "snap-research/Panda-70M" in result.stdout and "video2dataset" in result.stdout
    assert "prepare-metadata" in result.stdout
