"""One clip, as a ``vt.batch`` job: ``scale_clip(input, output, **options)``.

The core's batch runner calls it in a worker process with a temporary output path (it renames
on success and writes the done marker); the dict it returns is the row's report and becomes
the output table's per-clip columns. Models stay loaded across a worker's jobs through the
core's model memo.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vt.errors import ModelUnavailableError

log = logging.getLogger("vt")

METHODS = ("letterbox", "autoencoder")
ALIASES = {"resolution": "letterbox"}


def normalise_method(method: str) -> str:
    from vt.errors import UsageError

    name = ALIASES.get(str(method).lower(), str(method).lower())
    if name not in METHODS:
        raise UsageError(
            f"unknown method {method!r} (use letterbox, autoencoder; resolution "
            "is letterbox's older name)"
        )
    return name


def _pipeline_options(options: dict[str, Any], end: float | None, single_thread: bool) -> Any:
    from vt.media.pipeline import PipelineOptions
    from vt.media.retime import parse_fps

    return PipelineOptions(
        overwrite=True,
        audio=bool(options.get("audio", True)),
        subtitles=False,
        decoder=options.get("decoder"),
        threads=int(options.get("threads", 0)),
        end=end,
        single_thread=single_thread,
        fps=parse_fps(options.get("fps")),
    )


def _encoder(options: dict[str, Any]) -> Any:
    from vt.media.encode import EncoderConfig

    return EncoderConfig(
        codec=options.get("codec", "libx264"),
        crf=options.get("crf", 18),
        preset=options.get("preset", "medium"),
        bitrate=options.get("bitrate"),
        pixel_format=options.get("pix_fmt"),
        audio_codec=options.get("audio_codec", "aac"),
        audio_bitrate=options.get("audio_bitrate", "192k"),
        options=dict(options.get("encoder_options") or {}),
    )


def _end_for(input: str, max_frames: int | None, fps: Any = None) -> float | None:
    """Where to cut for ``max_frames``: the end of output frame N at a new frame rate (the
    converter fills exactly N slots up to there), else the time just before source frame N
    (frame-accurate trim keeps the first N)."""
    if not max_frames:
        return None
    from vt.media.retime import parse_fps

    rate = parse_fps(fps)
    if rate:
        return float(int(max_frames) / rate)
    from vt.media.info import probe

    fps = probe(input, count_frames=False).video.fps
    if not fps:
        return None
    return (int(max_frames) - 0.5) / float(fps)


def build_processors(method: str, options: dict[str, Any]) -> list[Any]:
    """The processors for ``method``: letterbox alone, or the round trip then letterbox."""
    from vt_vae_scale.letterbox import Letterbox

    box = Letterbox(int(options.get("target_size", 224)), options.get("pad_color", "black"))
    if method == "letterbox":
        return [box]
    from vt_vae_scale.roundtrip import VaeRoundtrip

    vae = VaeRoundtrip(
        options["model"],
        device=options.get("device", "auto"),
        dtype=options.get("dtype"),
        chunk_size=int(options.get("chunk_size", 250)),
        batch=int(options.get("batch", 8)),
        sample=bool(options.get("sample")),
        vae_slicing=bool(options.get("vae_slicing")),
        vae_tiling=bool(options.get("vae_tiling")),
    )
    return [vae, box]


def scale_clip(
    input: str, output: str, *, single_thread: bool = False, progress: Any = None, **options: Any
) -> dict[str, Any]:
    """Scale one clip into ``output``; return what the output table records for it.

    ``single_thread`` and ``progress(frames_done, frames_total)`` come from the batch runner
    (one core per job when workers fill the cores; frame progress for the bar)."""
    from vt.media.pipeline import process_video
    from vt_vae_scale.roundtrip import AutoencoderOutOfMemory

    started = time.perf_counter()
    method = normalise_method(options.get("method", "letterbox"))
    reason = options.get("fallback_reason")
    if method == "autoencoder" and reason:
        method = "letterbox"  # decided once, before the batch: the model cannot be had
    end = _end_for(input, options.get("max_frames"), options.get("fps"))
    config = _encoder(options)
    pipeline = _pipeline_options(options, end, single_thread)
    try:
        processors = build_processors(method, options)
    except ModelUnavailableError as exc:
        method, reason = "letterbox", f"autoencoder unavailable: {exc}"
        processors = build_processors(method, options)
    try:
        report = process_video(input, output, processors, config, pipeline, progress)
    except AutoencoderOutOfMemory as exc:
        method, reason = "letterbox", str(exc)
        report = process_video(
            input, output, build_processors(method, options), config, pipeline, progress
        )
    frames, duration = report.frames_out, report.duration_out
    return {
        "method": method,
        "fallback_reason": reason,
        "original_width": report.size_in[0],
        "original_height": report.size_in[1],
        "scaled_width": report.size_out[0],
        "scaled_height": report.size_out[1],
        "frame_count": frames,
        "fps": round(frames / duration, 4) if duration else None,
        "duration": round(duration, 4) if duration is not None else None,
        "audio": report.audio,
        "seconds": round(time.perf_counter() - started, 3),
    }
