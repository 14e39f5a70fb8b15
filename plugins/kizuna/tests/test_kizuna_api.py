"""The Python API: configs with the spec's names and defaults, reports, metadata, audio."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from vt.compare import compare_videos
from vt.errors import UsageError
from vt.media.encode import EncoderConfig as CoreEncoderConfig
from vt.testing import make_video
from vt_kizuna import (
    EncoderConfig,
    OfflineProcessorConfig,
    OfflineVideoProcessor,
    PipelineConfig,
    validate,
)

FAST = EncoderConfig(preset="ultrafast")
pytestmark = pytest.mark.usefixtures("host")  # built-ins and this plugin only


def _tag(path: Path, tags: dict[str, str], streams: dict[str, dict[str, str]]) -> Path:
    """A copy of ``path`` whose container and streams carry ``tags``/``streams[type]``."""
    tagged = path.with_name("tagged" + path.suffix)
    with av.open(str(path)) as src, av.open(str(tagged), "w") as out:
        out.metadata.update(tags)
        mapping = {}
        for s in src.streams:
            made = out.add_stream_from_template(s)
            made.metadata.update(streams.get(s.type, {}))
            mapping[s.index] = made
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return tagged


def _tags(path: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    with av.open(str(path)) as c:
        return dict(c.metadata), {s.type: dict(s.metadata) for s in c.streams}


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", frames=12, width=64, height=48, fps=24, audio=True)


def test_spec_names_and_defaults() -> None:
    assert EncoderConfig is CoreEncoderConfig  # the core's, not a second copy
    enc = EncoderConfig()
    assert (enc.codec, enc.crf, enc.preset, enc.bitrate, enc.audio_codec, enc.audio_bitrate) == (
        "libx264",
        18,
        "medium",
        None,
        "aac",
        "192k",
    )
    pipe = PipelineConfig()
    assert (pipe.use_ai, pipe.ai_model_path, pipe.ai_scale, pipe.shader_scale) == (
        False,
        None,
        2,
        2,
    )
    assert pipe.enable_reconstruct and pipe.enable_enhance and not pipe.enable_temporal
    assert pipe.temporal_strength == 0.5
    cfg = OfflineProcessorConfig("in.mp4", "out.mp4", pipe)
    assert cfg.audio_passthrough and cfg.preserve_metadata
    assert isinstance(cfg.encoder_config, CoreEncoderConfig)


def test_process_reports_frames_stages_and_progress(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    calls: list[tuple[int, int | None]] = []
    config = OfflineProcessorConfig(clip, out, PipelineConfig(enable_temporal=True), FAST)
    report = OfflineVideoProcessor(config).process(progress=lambda d, t: calls.append((d, t)))
    assert report.frames_in == report.frames_out == 12
    assert report.size_in == (64, 48) and report.size_out == (128, 96)
    assert report.stages == [
        "kizuna-source",
        "kizuna-normalize",
        "kizuna-reconstruct",
        "kizuna-upscale",
        "kizuna-enhance",
        "kizuna-temporal",
    ]
    assert set(report.stage_seconds) == {
        "kizuna-normalize",
        "kizuna-reconstruct",
        "kizuna-upscale",
        "kizuna-enhance",
        "kizuna-temporal",
    }
    assert all(v > 0 for v in report.stage_seconds.values())
    assert abs(sum(report.stage_share.values()) - 1) < 1e-9
    assert calls[-1][0] == 12 and [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert report.audio == "copied" and report.to_dict()["frames_out"] == 12
    result = compare_videos(clip, out, warping=False)
    assert result["frames"]["equal"] and result["max_pts_difference"] < 1e-3
    assert abs(result["audio_offset"]) < 0.001


def test_validation_checks_frame_count_and_audio_sync(tmp_path: Path) -> None:
    # 2 s: the clip's audio clicks at 0, 1 and 2 s, so offsets are unambiguous
    clip = make_video(tmp_path / "long.mp4", frames=48, width=32, height=24, fps=24, audio=True)
    out = tmp_path / "checked.mp4"
    processor = OfflineVideoProcessor(
        OfflineProcessorConfig(
            clip,
            out,
            PipelineConfig(enable_reconstruct=False, enable_enhance=False),
            FAST,
            start=0.25,
        )
    )
    with pytest.raises(UsageError, match="process"):
        processor.validate()
    report = processor.process()
    check = processor.validate()
    assert check.ok and check.frames_in == check.frames_out == report.frames_out == 42
    assert check.audio_offset is not None and abs(check.audio_offset) < 0.001
    # a wrong count, or audio compared from the wrong place, fails
    assert not validate(clip, out, frames_in=43, start=0.25).ok
    shifted = validate(clip, out, 42, start=0.0)
    assert not shifted.ok and abs(shifted.audio_offset) > 0.1


def test_preserve_metadata_copies_container_and_stream_tags(clip: Path, tmp_path: Path) -> None:
    tagged = _tag(
        clip,
        {"title": "Kizuna", "comment": "episode 1"},
        {
            "video": {"title": "main", "language": "jpn"},
            "audio": {"title": "Japanese 2.0", "language": "jpn"},
        },
    )
    out = tmp_path / "kept.mkv"
    OfflineVideoProcessor(
        OfflineProcessorConfig(tagged, out, PipelineConfig(enable_reconstruct=False), FAST)
    ).process()
    container, streams = _tags(out)
    assert container.get("title") == "Kizuna" and container.get("COMMENT") == "episode 1"
    lowered = {k: {n.lower(): v for n, v in t.items()} for k, t in streams.items()}
    assert lowered["audio"]["language"] == "jpn" and lowered["audio"]["title"] == "Japanese 2.0"
    assert lowered["video"]["title"] == "main" and lowered["video"]["language"] == "jpn"
    assert not list(tmp_path.glob(".*vt-tmp*"))  # the intermediate file is gone


def test_preserve_metadata_false_writes_none(clip: Path, tmp_path: Path) -> None:
    tagged = _tag(clip, {"title": "Kizuna"}, {"audio": {"language": "jpn"}})
    out = tmp_path / "bare.mp4"
    OfflineVideoProcessor(
        OfflineProcessorConfig(
            tagged, out, PipelineConfig(enable_reconstruct=False), FAST, preserve_metadata=False
        )
    ).process()
    container, streams = _tags(out)
    assert "title" not in container
    assert streams["audio"].get("language") in (None, "und")


def test_audio_passthrough_false_reencodes_and_stays_in_sync(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "reencoded.mp4"
    report = OfflineVideoProcessor(
        OfflineProcessorConfig(
            clip,
            out,
            PipelineConfig(enable_enhance=False),
            EncoderConfig(preset="ultrafast", audio_bitrate="96k"),
            audio_passthrough=False,
        )
    ).process()
    assert report.audio == "re-encoded"
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert abs(audio.codec_context.bit_rate - 96000) < 20000
    assert abs(compare_videos(clip, out, warping=False)["audio_offset"]) < 0.001


def test_bad_options_fail_before_anything_is_written(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.mp4"
    for bad in (
        PipelineConfig(shader_scale=3),
        PipelineConfig(temporal_strength=1.5),
        PipelineConfig(use_ai=True, ai_scale=3),
    ):
        with pytest.raises(UsageError):
            OfflineVideoProcessor(OfflineProcessorConfig(clip, out, bad)).process()
    assert not out.exists() and not list(tmp_path.glob(".*vt-tmp*"))


def test_existing_output_needs_overwrite(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"precious")
    config = OfflineProcessorConfig(clip, out, PipelineConfig(enable_reconstruct=False), FAST)
    with pytest.raises(Exception, match="exists"):
        OfflineVideoProcessor(config).process()
    assert out.read_bytes() == b"precious"
    config.overwrite = True
    assert OfflineVideoProcessor(config).process().frames_out == 12
