"""The pipeline: input -> plan (metadata only) -> decode the sampled frames one at a time ->
resize each -> convert into a preallocated output (``preprocess``), or straight into a file as
each frame is ready (``preprocess_to_file``). Never holds more than one decoded frame (or one
small decoder batch) besides the in-memory output itself; a streamed output holds none.

The public entry points (``plan``, ``preprocess``, ``preprocess_to_file``, ``iter_frames``)
live here; planning, analysis, conversion and results have their own modules, re-exported for
callers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import InputError, UsageError
from vt.media.prefetch import prefetch
from vt_qwen_preprocess.analysis import DECODE_BATCH
from vt_qwen_preprocess.cache import DiskCache, MemoryCache, file_identity, make_key
from vt_qwen_preprocess.config import DEFAULT_DECODERS, PreprocessConfig, Resolved, resolve
from vt_qwen_preprocess.convert import FrameConverter, file_frame_converter, frame_shape
from vt_qwen_preprocess.inputs import VideoInput, resolve_input
from vt_qwen_preprocess.planning import VideoPlan, plan_frame_list, plan_video_reader
from vt_qwen_preprocess.resize import make_resizer
from vt_qwen_preprocess.results import ProcessedVideo
from vt_qwen_preprocess.writers import (
    STREAM_SUFFIXES,
    StreamWriter,
    check_array_format,
    check_target,
    open_writer,
    stream_kind,
)

if TYPE_CHECKING:  # vt.media.decode imports PyAV: loaded when a video is opened
    from vt.media.decode import VideoReader

# ProcessedVideo and VideoPlan are re-exported: callers import them from here
__all__ = [
    "ProcessedVideo",
    "VideoPlan",
    "clear_memory_cache",
    "iter_frames",
    "plan",
    "preprocess",
    "preprocess_to_file",
]

_MEMORY_CACHE = MemoryCache(max_entries=16, max_bytes=1024**3)


def _cache_params(r: Resolved, plan: VideoPlan) -> dict[str, Any]:
    c = r.config
    return {
        "indices": plan.indices,
        "size": [plan.resized_height, plan.resized_width],
        "resize": c.resize,
        "decoders": list(c.decoders),
    }


def _identity(inp: VideoInput) -> Any:
    src = inp.source
    if src is None or src.kind != "file" or src.path is None:
        return None
    # downloads and spooled bytes: their content alone is the identity
    return file_identity(src.path, content_only=src.path in inp.temp_files)


def _decoder_options(c: PreprocessConfig) -> dict[str, Any]:
    """How qwen opens videos: ``--decoders`` is the chain's order; qwen-vl-utils' decoders
    read untagged video with FFmpeg's BT.601 whatever its height; a file FFmpeg cannot open
    is not tried with other backends unless the user chose them."""
    return {
        "priority": list(c.decoders),
        "threads": c.threads,
        "options": {"untagged_matrix": "bt601"},
        "try_all": tuple(c.decoders) != DEFAULT_DECODERS,
    }


def _open_reader(inp: VideoInput, c: PreprocessConfig) -> VideoReader:
    from vt.media.decode import open_video

    assert inp.source is not None
    return open_video(inp.source, **_decoder_options(c))


def plan(video: Any, config: PreprocessConfig | None = None, **overrides: Any) -> VideoPlan:
    """Frames, sizes and tokens for ``video`` without decoding pixels (``--plan``)."""
    cfg = (config or PreprocessConfig()).updated(**overrides)
    r = resolve(cfg)
    with _resolve(video, cfg) as inp:
        if inp.frames is not None:
            return plan_frame_list(inp.frames, r, inp.frames.load(0), inp.describe())
        reader = _open_reader(inp, cfg)
        try:
            return plan_video_reader(reader, r, inp.describe())
        finally:
            reader.close()


def _resolve(video: Any, cfg: PreprocessConfig) -> VideoInput:
    return resolve_input(
        video,
        max_bytes=cfg.max_input_bytes,
        max_download_bytes=cfg.max_download_bytes,
        timeout=cfg.download_timeout,
        supported_formats=cfg.supported_formats,
    )


def preprocess(
    video: Any, config: PreprocessConfig | None = None, **overrides: Any
) -> ProcessedVideo:
    """Sample, resize and convert ``video`` (any supported input) for the configured model."""
    cfg = (config or PreprocessConfig()).updated(**overrides)
    r = resolve(cfg)
    t0 = time.perf_counter()
    with _resolve(video, cfg) as inp:
        if inp.frames is not None:
            result = _run_frames(inp, r)
        else:
            result = _run_video(inp, r)
    result.timing["total_time"] = time.perf_counter() - t0
    return result


@dataclass(frozen=True)
class FileTarget:
    """Where ``preprocess_to_file`` streams frames: a ``writers.stream_kind`` and its path."""

    path: Path
    kind: str
    overwrite: bool = False
    image_format: str = "png"


def preprocess_to_file(
    video: Any,
    path: str | Path,
    config: PreprocessConfig | None = None,
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    image_format: str = "png",
    **overrides: Any,
) -> ProcessedVideo:
    """``preprocess`` ``video`` into ``path`` (``.npy``, ``.npz``, ``.safetensors`` or a folder
    of images), each frame written as soon as it is converted: memory stays a few frames
    whatever the frame count. The file holds the bytes ``save(preprocess(...), path)`` writes
    (an image folder: the resized frames themselves) and appears only when complete. Returns
    the result without frames (``frames`` None, ``output`` the path). Torch is not imported
    unless the configuration needs it (bfloat16, ``--resize bicubic-torch/bicubic-float``).
    The in-memory cache is not used; the disk cache is, as by ``preprocess``."""
    target_path = Path(path)
    if target_path.suffix.lower() in STREAM_SUFFIXES:
        check_array_format(target_path.suffix.lower(), fmt)
    kind = stream_kind(target_path, fmt)
    if kind is None:
        raise UsageError(
            f"{target_path.name}: only .npy, .npz, .safetensors and folders are "
            "streamed (use preprocess() and save() for .pt and .json)"
        )
    check_target(target_path, overwrite, folder=kind == "folder")  # before any decoding
    target = FileTarget(target_path, kind, overwrite, image_format)
    cfg = (config or PreprocessConfig()).updated(**overrides)
    r = resolve(cfg)
    t0 = time.perf_counter()
    with _resolve(video, cfg) as inp:
        if inp.frames is not None:
            result = _run_frames(inp, r, target)
        else:
            result = _run_video(inp, r, target)
    result.timing["total_time"] = time.perf_counter() - t0
    return result


def iter_frames(
    video: Any, config: PreprocessConfig | None = None, **overrides: Any
) -> Iterator[tuple[int, float, Any]]:
    """Stream ``(frame index, timestamp, frame)`` one at a time (nothing accumulated)."""
    cfg = (config or PreprocessConfig()).updated(**overrides)
    r = resolve(cfg)
    profile = r.profile
    conv = FrameConverter(cfg, profile.image_mean, profile.image_std)
    with _resolve(video, cfg) as inp:
        if inp.frames is not None:
            first = inp.frames.load(0)
            p = plan_frame_list(inp.frames, r, first, inp.describe())
            resize = make_resizer(cfg.resize, p.resized_height, p.resized_width)
            for i in p.indices:
                frame = first if i == 0 else inp.frames.load(i)
                yield i, i / p.video_fps, conv.convert(resize(frame))
            return
        reader = _open_reader(inp, cfg)
        try:
            p = plan_video_reader(reader, r, inp.describe())
            resize = make_resizer(cfg.resize, p.resized_height, p.resized_width)
            for batch in reader.frames_at(p.sampling.indices, batch_size=DECODE_BATCH):
                for image, index in zip(batch.images, batch.indices, strict=True):
                    yield index, index / p.video_fps, conv.convert(resize(image))
        finally:
            reader.close()


class _Output:
    """Where converted frames go, position by position: a preallocated tensor (in memory) or
    a streaming file writer (positions must then come in order)."""

    def __init__(
        self, p: VideoPlan, r: Resolved, target: FileTarget | None, decoder: str | None
    ) -> None:
        cfg = r.config
        mean, std = r.profile.image_mean, r.profile.image_std
        self.plan, self.config, self.decoder = p, cfg, decoder
        self.frames: Any = None
        self.writer: StreamWriter | None = None
        self.target = target
        if target is None:
            conv = FrameConverter(cfg, mean, std)
            self.frames = conv.allocate(p.nframes, p.resized_height, p.resized_width)
            self.shape = tuple(self.frames.shape)
            self._write: Callable[[int, Any], None] = lambda pos, image: conv.write(
                self.frames, pos, image
            )
            return
        self.shape = (p.nframes, *frame_shape(cfg, p.resized_height, p.resized_width))
        self.writer = open_writer(
            target.kind,
            target.path,
            self.result({}),
            overwrite=target.overwrite,
            image_format=target.image_format,
        )
        writer = self.writer
        if writer.wants_images:
            self._write = lambda pos, image: writer.write(image)
            return
        convert = file_frame_converter(cfg, mean, std, raw_bfloat16=target.kind == "safetensors")
        self._write = lambda pos, image: writer.write(convert(image))

    def put(self, position: int, image: Any) -> None:
        """Frame ``position`` of the output from its resized (H, W, 3) uint8 RGB image."""
        if self.writer is not None and position != self.writer.written:
            raise RuntimeError(f"frame {position} arrived before frame {self.writer.written}")
        self._write(position, image)

    def result(self, timing: dict[str, float], cache_hit: str | None = None) -> ProcessedVideo:
        return ProcessedVideo(
            self.frames,
            self.plan,
            self.config,
            self.decoder,
            dict(timing),
            cache_hit,
            shape=self.shape,
            output=self.target.path if self.target else None,
        )

    def open(self) -> Any:
        """A context for the writing: the streaming writer's (commits or discards it)."""
        return self.writer if self.writer is not None else nullcontext()

    def finish(self, timing: dict[str, float], cache_hit: str | None = None) -> ProcessedVideo:
        result = self.result(timing, cache_hit)
        if self.writer is not None:
            self.writer.finish(result.record())
        return result


def _run_frames(inp: VideoInput, r: Resolved, target: FileTarget | None = None) -> ProcessedVideo:
    cfg = r.config
    t0 = time.perf_counter()
    frames = inp.frames
    assert frames is not None
    first = frames.load(0)
    p = plan_frame_list(frames, r, first, inp.describe())
    resize = make_resizer(cfg.resize, p.resized_height, p.resized_width)
    output = _Output(p, r, target, None)
    extract = process = 0.0
    with output.open():
        for pos, i in enumerate(p.indices):
            ta = time.perf_counter()
            frame = first if i == 0 else frames.load(i)
            tb = time.perf_counter()
            output.put(pos, resize(frame))
            extract += tb - ta
            process += time.perf_counter() - tb
        timing = {
            "extraction_time": extract,
            "processing_time": process,
            "plan_time": 0.0,
            "wall_time": time.perf_counter() - t0,
        }
        return output.finish(timing)


def _run_video(inp: VideoInput, r: Resolved, target: FileTarget | None = None) -> ProcessedVideo:
    """Plan and extract with the first decoder of ``--decoders`` that can; when one fails
    while decoding, the next one starts over (the core's decoder fallback chain; a streamed
    file starts over too: the failed attempt's temporary is removed)."""
    from vt.media.decode import with_fallback

    assert inp.source is not None
    t0 = time.perf_counter()  # plan time counts opening the reader

    def run(reader: VideoReader) -> ProcessedVideo:
        nonlocal t0
        try:
            p = plan_video_reader(reader, r, inp.describe())
            return _extract(inp, reader, p, r, time.perf_counter() - t0, target)
        finally:
            t0 = time.perf_counter()  # a retry's plan time starts here

    return with_fallback(inp.source, run, describe=inp.describe(), **_decoder_options(r.config))


def _extract(
    inp: VideoInput,
    reader: VideoReader,
    p: VideoPlan,
    r: Resolved,
    t_plan: float,
    target: FileTarget | None = None,
) -> ProcessedVideo:
    cfg = r.config
    memory_key = disk = key = None
    shape = (p.nframes, p.resized_height, p.resized_width, 3)  # what the frame cache holds
    if cfg.cache:
        identity = _identity(inp)
        if identity is not None:
            params = _cache_params(r, p)
            key = make_key(identity, params)
            if target is None:  # the memory cache holds in-memory results only
                memory_key = make_key(
                    identity,
                    {**params, "out": asdict(replace(cfg, start=None, end=None, cache_dir=None))},
                )
                hit = _MEMORY_CACHE.get(memory_key)
                if hit is not None:
                    return replace(
                        hit, timing={**hit.timing, "plan_time": t_plan}, cache_hit="memory"
                    )
            disk = DiskCache(cfg.cache_dir, cfg.cache_max_bytes)
            # streamed outputs read frames with ordinary reads: a memory map's pages would
            # stay resident (in RSS) once touched
            loaded = disk.load(key, shape) if target is None else disk.load_stream(key, shape)
            if loaded is not None:
                t1 = time.perf_counter()
                frames, meta = loaded
                output = _Output(p, r, target, meta.get("decoder"))
                with output.open():
                    for pos, frame in enumerate(frames):
                        output.put(pos, frame)
                    result = output.finish(
                        {
                            "plan_time": t_plan,
                            "extraction_time": 0.0,
                            "processing_time": time.perf_counter() - t1,
                        },
                        "disk",
                    )
                if memory_key is not None:
                    _remember(memory_key, result)
                return result
    n = p.nframes
    output = _Output(p, r, target, reader.decoder_name)
    resize = make_resizer(cfg.resize, p.resized_height, p.resized_width)
    writer = disk.writer(key, shape) if disk and key else None
    positions: dict[int, list[int]] = {}
    for pos, index in enumerate(p.indices):
        positions.setdefault(index, []).append(pos)
    extract = process = 0.0
    done = 0
    batches: Iterator[Any] = iter(())
    with output.open():
        try:
            ta = time.perf_counter()
            batches = reader.frames_at(p.sampling.indices, batch_size=DECODE_BATCH)
            if cfg.threads != 1:  # decoding (which releases the GIL) overlaps the resizing
                batches = prefetch(batches, 2, "vt-qwen-decode")
            for batch in batches:
                tb = time.perf_counter()
                extract += tb - ta
                for image, index in zip(batch.images, batch.indices, strict=True):
                    small = resize(image)
                    if tuple(small.shape[:2]) != (p.resized_height, p.resized_width):
                        raise InputError(
                            f"decoded frame {index} is {image.shape[1]}x{image.shape[0]}, "
                            f"not {p.width}x{p.height} (size changes mid-stream)"
                        )
                    for pos in positions.get(index, ()):
                        output.put(pos, small)
                        if writer is not None and not writer.failed:
                            writer.write(small)
                        done += 1
                del batch
                ta = time.perf_counter()
                process += ta - tb
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # the decode thread stops before its reader is closed
        if done != n:
            if writer is not None:
                writer.abort()
            raise InputError(f"decoded {done} of {n} sampled frames from {inp.describe()}")
        if writer is not None:
            writer.commit({"decoder": reader.decoder_name, "plan": p.to_dict()})
        result = output.finish(
            {"plan_time": t_plan, "extraction_time": extract, "processing_time": process}
        )
    if memory_key is not None:
        _remember(memory_key, result)
    return result


def _remember(key: str, result: ProcessedVideo) -> None:
    frames = result.frames
    nbytes = int(frames.numel() * frames.element_size()) if hasattr(frames, "numel") else 0
    _MEMORY_CACHE.put(key, result, nbytes)


def clear_memory_cache() -> None:
    _MEMORY_CACHE.clear()
