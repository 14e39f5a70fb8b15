"""The pipeline: input -> plan (metadata only) -> decode the sampled frames one at a time ->
resize each -> convert into a preallocated output. Never holds more than one decoded frame
(or one small decoder batch) besides the output itself.

The public entry points (``plan``, ``preprocess``, ``iter_frames``) live here; planning,
analysis, conversion and results have their own modules, re-exported for callers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from vt.errors import InputError
from vt.media.prefetch import prefetch
from vt_qwen_preprocess.analysis import DECODE_BATCH
from vt_qwen_preprocess.cache import DiskCache, MemoryCache, file_identity, make_key
from vt_qwen_preprocess.config import DEFAULT_DECODERS, PreprocessConfig, Resolved, resolve
from vt_qwen_preprocess.convert import FrameConverter, hwc_array
from vt_qwen_preprocess.inputs import VideoInput, resolve_input
from vt_qwen_preprocess.planning import VideoPlan, plan_frame_list, plan_video_reader
from vt_qwen_preprocess.resize import make_resizer
from vt_qwen_preprocess.results import ProcessedVideo

if TYPE_CHECKING:  # vt.media.decode imports PyAV: loaded when a video is opened
    from vt.media.decode import VideoReader

# ProcessedVideo and VideoPlan are re-exported: callers import them from here
__all__ = ["ProcessedVideo", "VideoPlan", "clear_memory_cache", "iter_frames", "plan",
           "preprocess"]

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
    return {"priority": list(c.decoders), "threads": c.threads,
            "options": {"untagged_matrix": "bt601"},
            "try_all": tuple(c.decoders) != DEFAULT_DECODERS}


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


def preprocess(video: Any, config: PreprocessConfig | None = None, **overrides: Any
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


def iter_frames(video: Any, config: PreprocessConfig | None = None, **overrides: Any
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


def _run_frames(inp: VideoInput, r: Resolved) -> ProcessedVideo:
    cfg = r.config
    t0 = time.perf_counter()
    frames = inp.frames
    assert frames is not None
    first = frames.load(0)
    p = plan_frame_list(frames, r, first, inp.describe())
    resize = make_resizer(cfg.resize, p.resized_height, p.resized_width)
    conv = FrameConverter(cfg, r.profile.image_mean, r.profile.image_std)
    out = conv.allocate(p.nframes, p.resized_height, p.resized_width)
    extract = process = 0.0
    for pos, i in enumerate(p.indices):
        ta = time.perf_counter()
        frame = first if i == 0 else frames.load(i)
        tb = time.perf_counter()
        conv.write(out, pos, resize(frame))
        extract += tb - ta
        process += time.perf_counter() - tb
    timing = {"extraction_time": extract, "processing_time": process,
              "plan_time": 0.0, "wall_time": time.perf_counter() - t0}
    return ProcessedVideo(out, p, cfg, None, timing)


def _run_video(inp: VideoInput, r: Resolved) -> ProcessedVideo:
    """Plan and extract with the first decoder of ``--decoders`` that can; when one fails
    while decoding, the next one starts over (the core's decoder fallback chain)."""
    from vt.media.decode import with_fallback

    assert inp.source is not None
    t0 = time.perf_counter()  # plan time counts opening the reader

    def run(reader: VideoReader) -> ProcessedVideo:
        nonlocal t0
        try:
            p = plan_video_reader(reader, r, inp.describe())
            return _extract(inp, reader, p, r, time.perf_counter() - t0)
        finally:
            t0 = time.perf_counter()  # a retry's plan time starts here

    return with_fallback(inp.source, run, describe=inp.describe(), **_decoder_options(r.config))


def _extract(inp: VideoInput, reader: VideoReader, p: VideoPlan, r: Resolved, t_plan: float
             ) -> ProcessedVideo:
    cfg = r.config
    conv = FrameConverter(cfg, r.profile.image_mean, r.profile.image_std)
    memory_key = disk = key = None
    if cfg.cache:
        identity = _identity(inp)
        if identity is not None:
            params = _cache_params(r, p)
            key = make_key(identity, params)
            memory_key = make_key(identity, {**params, "out": asdict(replace(
                cfg, start=None, end=None, cache_dir=None))})
            hit = _MEMORY_CACHE.get(memory_key)
            if hit is not None:
                return replace(hit, timing={**hit.timing, "plan_time": t_plan},
                               cache_hit="memory")
            disk = DiskCache(cfg.cache_dir, cfg.cache_max_bytes)
            loaded = disk.load(key, (p.nframes, p.resized_height, p.resized_width, 3))
            if loaded is not None:
                t1 = time.perf_counter()
                frames, meta = loaded
                out = conv.allocate(len(frames), p.resized_height, p.resized_width)
                for pos in range(len(frames)):
                    conv.write(out, pos, frames[pos])
                timing = {"plan_time": t_plan, "extraction_time": 0.0,
                          "processing_time": time.perf_counter() - t1}
                result = ProcessedVideo(out, p, cfg, meta.get("decoder"), timing, "disk")
                _remember(memory_key, result)
                return result
    n = p.nframes
    out = conv.allocate(n, p.resized_height, p.resized_width)
    resize = make_resizer(cfg.resize, p.resized_height, p.resized_width)
    writer = disk.writer(key, (n, p.resized_height, p.resized_width, 3)) if disk and key else None
    positions: dict[int, list[int]] = {}
    for pos, index in enumerate(p.indices):
        positions.setdefault(index, []).append(pos)
    extract = process = 0.0
    done = 0
    batches: Iterator[Any] = iter(())
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
                if tuple(small.shape[1:]) != (p.resized_height, p.resized_width):
                    raise InputError(
                        f"decoded frame {index} is {image.shape[1]}x{image.shape[0]}, "
                        f"not {p.width}x{p.height} (size changes mid-stream)"
                    )
                for pos in positions.get(index, ()):
                    conv.write(out, pos, small)
                    if writer is not None and not writer.failed:
                        writer.write(hwc_array(small))
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
    result = ProcessedVideo(out, p, cfg, reader.decoder_name,
                            {"plan_time": t_plan, "extraction_time": extract,
                             "processing_time": process})
    if writer is not None:
        writer.commit({"decoder": reader.decoder_name, "plan": p.to_dict()})
    if memory_key is not None:
        _remember(memory_key, result)
    return result


def _remember(key: str, result: ProcessedVideo) -> None:
    frames = result.frames
    nbytes = int(frames.numel() * frames.element_size()) if hasattr(frames, "numel") else 0
    _MEMORY_CACHE.put(key, result, nbytes)


def clear_memory_cache() -> None:
    _MEMORY_CACHE.clear()
