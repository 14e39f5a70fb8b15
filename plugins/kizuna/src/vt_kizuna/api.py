"""The KizunaSR offline processor's Python API, on vt's pipeline.

    from vt_kizuna import (OfflineVideoProcessor, OfflineProcessorConfig, PipelineConfig,
                           EncoderConfig)

    pipeline = PipelineConfig(shader_scale=2)            # or use_ai=True, ai_model_path=...
    config = OfflineProcessorConfig("in.mp4", "out.mp4", pipeline)
    report = OfflineVideoProcessor(config).process(progress=lambda done, total: ...)

The stages are the five registered processors, chained by the core pipeline (decode,
process and encode in three threads, every frame's PTS kept, frame count checked, audio
copied with the automatic AAC fallback, output written atomically). ``EncoderConfig`` is the
core's (``vt.media.encode.EncoderConfig``), whose fields and defaults are the spec's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vt.errors import UsageError
from vt.media.encode import EncoderConfig
from vt.media.output import check_output, resolve_target
from vt.media.pipeline import PipelineOptions, PipelineReport, process_video
from vt.media.processing import FrameProcessor
from vt.media.source import Source
from vt.tempfiles import temp_path
from vt_kizuna.enhance import Enhance
from vt_kizuna.normalize import Normalize
from vt_kizuna.reconstruct import Reconstruct
from vt_kizuna.temporal import TemporalStabilizer
from vt_kizuna.upscale import AIUpscale, ShaderUpscale, check_scale

Progress = Callable[[int, "int | None"], None]


@dataclass
class PipelineConfig:
    """What the KizunaSR chain does (the spec's names and defaults, plus stage toggles)."""

    use_ai: bool = False
    ai_model_path: str | None = None  # a path or a registered name; None: realesr-animevideov3
    ai_scale: int = 2
    ai_tile: int = 0  # tile size in input pixels, 0: whole frame
    ai_device: str = "auto"
    ai_dtype: str = "fp32"
    ai_batch: int = 1
    shader_scale: int = 2
    enable_normalize: bool = True
    enable_reconstruct: bool = True
    enable_enhance: bool = True
    enable_temporal: bool = False
    temporal_strength: float = 0.5
    temporal_radius: int = 1
    reconstruct_strength: float = 1.0
    input_range: str = "full"  # "limited": expand 16-235 RGB to full range

    @property
    def scale(self) -> int:
        return self.ai_scale if self.use_ai else self.shader_scale

    def validate(self) -> None:
        """Raise ``UsageError`` for options no stage could run with (nothing is built)."""
        if self.use_ai:
            check_scale(self.ai_scale, "AI scale")
            if self.ai_tile < 0 or self.ai_batch < 1:
                raise UsageError("ai_tile must be >= 0 and ai_batch >= 1")
        else:
            check_scale(self.shader_scale, "shader scale")
        if not 0.0 <= self.temporal_strength <= 1.0:
            raise UsageError(
                f"temporal strength must be between 0 and 1, got {self.temporal_strength}"
            )
        if not 0.0 <= self.reconstruct_strength <= 1.0:
            raise UsageError(
                f"reconstruct strength must be between 0 and 1, got {self.reconstruct_strength}"
            )

    def build(self) -> list[FrameProcessor]:
        """The processors, in order (temporal adds its source tap first). Loads the model in
        AI mode; on any error the stages already built are closed."""
        self.validate()
        stages: list[FrameProcessor] = []
        temporal = None
        try:
            if self.enable_temporal:
                temporal = TemporalStabilizer(self.temporal_strength, self.temporal_radius)
                stages.append(temporal.tap())
            if self.enable_normalize:
                stages.append(Normalize(self.input_range))
            if self.enable_reconstruct:
                stages.append(Reconstruct(self.reconstruct_strength))
            if self.use_ai:
                stages.append(
                    AIUpscale(
                        self.ai_model_path,
                        self.ai_scale,
                        self.ai_tile,
                        device=self.ai_device,
                        dtype=self.ai_dtype,
                        batch=self.ai_batch,
                    )
                )
            else:
                stages.append(ShaderUpscale(self.shader_scale))
            if self.enable_enhance:
                stages.append(Enhance())
            if temporal is not None:
                stages.append(temporal)
        except BaseException:
            for stage in stages:
                stage.close()
            raise
        return stages


@dataclass
class OfflineProcessorConfig:
    """One job: input, output, the chain, the encoder (the spec's fields), plus vt's own."""

    input_path: str | Path
    output_path: str | Path
    pipeline_config: PipelineConfig = field(default_factory=PipelineConfig)
    encoder_config: EncoderConfig = field(default_factory=EncoderConfig)
    audio_passthrough: bool = True  # False: re-encode audio (encoder_config.audio_codec)
    preserve_metadata: bool = True  # container and stream tags; False writes none
    audio: bool = True  # False drops audio altogether
    subtitles: bool = True
    overwrite: bool = False
    start: float | None = None  # seconds, as ``--start/--end``
    end: float | None = None
    error_policy: str = "abort"  # or "pass": a failing frame's source goes through
    decoder: str | None = None
    threads: int = 0
    progress_callback: Progress | None = None
    # segmented runs (vt.media.segments): --resume, --workers, --segment-seconds, --engine
    resume: bool = False
    workers: int | None = None
    segment_seconds: float | None = None
    engine: str = "local"


@dataclass
class ProcessingReport:
    """What ``process()`` did: frames, time per stage, warnings (JSON-ready via to_dict)."""

    input: str
    output: str
    frames_in: int
    frames_out: int
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    wall_time: float
    fps: float
    stages: list[str]
    details: dict[str, str]  # each stage's own description (the model an AI stage runs…)
    stage_seconds: dict[str, float]
    warnings: list[str]
    audio: str
    pipeline: dict[str, Any]

    @property
    def stage_share(self) -> dict[str, float]:
        """Each stage's share of the time spent in stages (0-1)."""
        total = sum(self.stage_seconds.values())
        return {k: (v / total if total else 0.0) for k, v in self.stage_seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "size_in": list(self.size_in),
            "size_out": list(self.size_out),
            "wall_time": self.wall_time,
            "fps": self.fps,
            "stages": list(self.stages),
            "details": dict(self.details),
            "stage_seconds": dict(self.stage_seconds),
            "stage_share": self.stage_share,
            "warnings": list(self.warnings),
            "audio": self.audio,
            "pipeline": self.pipeline,
        }


@dataclass
class Validation:
    """The spec's checks on a finished output: frame count in == out, audio in sync."""

    frames_in: int
    frames_out: int
    audio_offset: float | None  # seconds, output vs input (None: no audio in both)
    max_offset: float = 0.001

    @property
    def ok(self) -> bool:
        synced = self.audio_offset is None or abs(self.audio_offset) < self.max_offset
        return self.frames_in == self.frames_out and synced

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "audio_offset": self.audio_offset,
            "ok": self.ok,
        }


class OfflineVideoProcessor:
    """Runs one :class:`OfflineProcessorConfig`; options are checked here, before any I/O."""

    def __init__(self, config: OfflineProcessorConfig) -> None:
        if config.error_policy not in ("abort", "pass"):
            raise UsageError("error_policy must be 'abort' or 'pass'")
        config.pipeline_config.validate()
        # a missing input or a bad time range is reported now, before any model loads
        self.source = Source.parse(config.input_path)
        self.report: ProcessingReport | None = None
        if config.start is not None or config.end is not None:
            self.source.with_range(config.start, config.end)
        self.config = config

    def process(self, progress: Progress | None = None) -> ProcessingReport:
        """Decode, run the chain, encode; returns a :class:`ProcessingReport`."""
        cfg = self.config
        progress = progress or cfg.progress_callback
        target = resolve_target(cfg.output_path)
        source = self.source
        check_output(target, source, cfg.overwrite)  # before the model loads
        cfg.encoder_config.validate()
        stages = cfg.pipeline_config.build()
        # tags and audio re-encoding beyond the core's writer need one remux at the end: the
        # pipeline then writes a temporary file beside the output first
        finishing = target.kind == "container" and (
            not cfg.preserve_metadata or not cfg.audio_passthrough or _has_stream_tags(source)
        )
        written = temp_path(target.path, target.path.suffix) if finishing else target.path
        options = PipelineOptions(
            overwrite=cfg.overwrite and not finishing,
            audio=cfg.audio,
            subtitles=cfg.subtitles,
            error_policy=cfg.error_policy,
            decoder=cfg.decoder,
            threads=cfg.threads,
            start=cfg.start,
            end=cfg.end,
            resume=cfg.resume,
            workers=cfg.workers,
            segment_seconds=cfg.segment_seconds,
            engine=cfg.engine,
            resume_output=target.path,  # not the temporary name: a rerun must find it
        )
        started = time.perf_counter()
        try:
            report = process_video(source, written, stages, cfg.encoder_config, options, progress)
            warnings = list(report.warnings)
            if finishing:
                from vt_kizuna.streams import finish, needs_finish

                if needs_finish(
                    cfg.input_path,
                    written,
                    cfg.preserve_metadata,
                    not cfg.audio_passthrough,
                    report.audio,
                ):
                    warnings += finish(
                        Path(written),
                        target,
                        cfg.input_path,
                        preserve_metadata=cfg.preserve_metadata,
                        reencode_audio=not cfg.audio_passthrough and report.audio == "copied",
                        audio_codec=cfg.encoder_config.audio_codec,
                        audio_bitrate=cfg.encoder_config.audio_bitrate,
                        overwrite=cfg.overwrite,
                        container_format=cfg.encoder_config.format,
                    )
                    if not cfg.audio_passthrough and report.audio == "copied":
                        report.audio = "re-encoded"
                else:
                    from vt.media.output import atomic_output

                    with atomic_output(target, cfg.overwrite) as tmp:
                        Path(written).replace(tmp.path)
        finally:
            for stage in stages:  # the pipeline closes them too; closing twice is harmless
                stage.close()
            if finishing:
                Path(written).unlink(missing_ok=True)
        wall = time.perf_counter() - started
        self.report = _report(cfg, report, stages, warnings, wall)
        return self.report

    def validate(self, max_offset: float = 0.001) -> Validation:
        """The spec's validation of the last ``process()``: frames in == out, A/V offset."""
        if self.report is None:
            raise UsageError("validate() needs a finished process() first")
        return validate(
            self.config.input_path,
            self.config.output_path,
            self.report.frames_in,
            self.config.start,
            max_offset,
        )


def validate(
    input_path: str | Path,
    output_path: str | Path,
    frames_in: int,
    start: float | None = None,
    max_offset: float = 0.001,
) -> Validation:
    """Count the output's video frames (its packets: no decoding) and cross-correlate its
    audio with the input's from ``start`` (``vt.metrics.audio_offset``, as ``vt compare``)."""
    import av

    from vt.metrics import audio_offset, read_audio

    with av.open(str(output_path)) as c:
        stream = c.streams.video[0]
        frames_out = sum(1 for p in c.demux(stream) if p.size)
        has_audio = bool(c.streams.audio)
    offset = None
    with av.open(str(input_path)) as c:
        has_audio = has_audio and bool(c.streams.audio)
    if has_audio:
        rate = 16000
        skip = round((start or 0.0) * rate)
        source, _ = read_audio(input_path, rate, skip / rate + 30.0)
        written, _ = read_audio(output_path, rate, 30.0)
        source = source[skip:]
        span = min(len(source), len(written))
        if span > rate // 10:  # at least 0.1 s to correlate
            offset = audio_offset(
                source[:span], written[:span], rate, max_lag=min(1.0, span / rate / 2)
            )
    return Validation(frames_in, frames_out, offset, max_offset)


def _has_stream_tags(source: Source) -> bool:
    """Whether the input's streams carry tags the core's writer does not copy."""
    if source.kind != "file":
        return False
    from vt_kizuna.streams import read_tags

    try:
        tags = read_tags(source.path)
    except Exception:  # noqa: BLE001 - unreadable: the pipeline reports it properly
        return False
    video = [{k: v for k, v in t.items() if k.lower() != "language"} for t in tags["video"]]
    return any(video) or any(tags["audio"]) or any(tags["subtitle"])


def _report(
    cfg: OfflineProcessorConfig,
    report: PipelineReport,
    stages: list[Any],
    warnings: list[str],
    wall: float,
) -> ProcessingReport:
    seconds: dict[str, float] = {}
    names: list[str] = []
    for stage in stages:
        names.append(stage.name)
        spent = getattr(stage, "seconds", None)
        if spent is not None:
            seconds[stage.name] = seconds.get(stage.name, 0.0) + float(spent)
    data = report.to_dict()
    data["output"] = str(cfg.output_path)
    return ProcessingReport(
        input=str(cfg.input_path),
        output=str(cfg.output_path),
        frames_in=report.frames_in,
        frames_out=report.frames_out,
        size_in=tuple(report.size_in),
        size_out=tuple(report.size_out),
        wall_time=wall,
        fps=report.frames_out / wall if wall else 0.0,
        stages=names,
        details={stage.name: stage.describe() for stage in stages},
        stage_seconds=seconds,
        warnings=warnings,
        audio=report.audio,
        pipeline=data,
    )


__all__ = [
    "EncoderConfig",
    "OfflineProcessorConfig",
    "OfflineVideoProcessor",
    "PipelineConfig",
    "ProcessingReport",
    "Validation",
    "validate",
]
