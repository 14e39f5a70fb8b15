"""The pipeline: input -> plan (metadata only) -> decode the sampled frames one at a time ->
resize each -> convert into a preallocated output. Never holds more than one decoded frame
(or one small decoder batch) besides the output itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from vt.errors import InputError, UsageError
from vt.media.prefetch import prefetch
from vt_qwen_preprocess.cache import DiskCache, MemoryCache, file_identity, make_key
from vt_qwen_preprocess.config import DEFAULT_DECODERS, PreprocessConfig, Resolved, resolve
from vt_qwen_preprocess.inputs import FrameList, VideoInput, resolve_input
from vt_qwen_preprocess.resize import make_resizer
from vt_qwen_preprocess.sampling import SamplingPlan, SamplingRequest, plan_sampling
from vt_qwen_preprocess.sizing import (
    ceil_by_factor,
    linspace_indices,
    smart_nframes,
    smart_resize,
    video_pixel_budget,
)
from vt_qwen_preprocess.tokens import TokenReport, context_error, count_tokens

if TYPE_CHECKING:  # vt.media.decode imports PyAV: loaded when a video is opened
    from vt.media.decode import VideoReader

DECODE_BATCH = 4  # frames per decoder call (torchcodec/decord); bounded memory
_MEMORY_CACHE = MemoryCache(max_entries=16, max_bytes=1024**3)


# -- plan ------------------------------------------------------------------------------------
@dataclass
class VideoPlan:
    """Everything known before decoding a pixel: what will be sampled and what it costs."""

    input: str
    kind: str  # "video" | "frames"
    decoder: str | None
    width: int
    height: int
    total_frames: int
    video_fps: float
    duration: float
    sampling: SamplingPlan
    resized_height: int
    resized_width: int
    min_pixels: float
    max_pixels: float
    tokens: TokenReport
    profile: str
    padded_frames: int = 0  # frame lists: copies of the last frame added to reach the factor

    @property
    def nframes(self) -> int:
        return len(self.sampling.indices) + self.padded_frames

    @property
    def indices(self) -> list[int]:
        return list(self.sampling.indices) + [self.sampling.indices[-1]] * self.padded_frames

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kind": self.kind,
            "decoder": self.decoder,
            "profile": self.profile,
            "source_resolution": [self.height, self.width],
            "total_frames": self.total_frames,
            "original_fps": self.video_fps,
            "duration": self.duration,
            "strategy": self.sampling.strategy,
            "num_frames": self.nframes,
            "frame_indices": self.indices,
            "sample_fps": self.sampling.sample_fps,
            "resolution": [self.resized_height, self.resized_width],
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "grid_thw": list(self.tokens.grid_thw),
            "tokens_per_frame": self.tokens.tokens_per_frame,
            "total_tokens": self.tokens.total_tokens,
            "max_context_tokens": self.tokens.max_context_tokens,
            "memory_bytes": self.tokens.memory_bytes,
        }


def decoder_timing(reader: Any) -> tuple[int, float]:
    """(frame count, fps) as the decoder itself reports them: qwen-vl-utils samples with its
    backend's own numbers (torchcodec's scanned average fps can differ in the last digits)."""
    count, fps = reader.native_timing()
    if not count:
        raise InputError(f"cannot count the frames of {reader.source.describe()}")
    if not fps or fps <= 0:
        raise InputError(f"{reader.source.describe()} has no usable frame rate")
    return int(count), float(fps)


def sampling_request(r: Resolved) -> SamplingRequest:
    c = r.config
    return SamplingRequest(
        strategy=c.strategy,
        fps=r.fps,
        nframes=r.nframes,
        min_frames=r.min_frames,
        max_frames=r.max_frames,
        frame_factor=r.profile.frame_factor,
        base_interval=c.base_interval,
        start=c.start,
        end=c.end,
        scene_weight=c.scene_weight,
    )


def size_plan(r: Resolved, nframes: int, height: int, width: int
              ) -> tuple[int, int, float, float]:
    """(resized_height, resized_width, min_pixels, max_pixels) for frames of height x width."""
    c, p = r.config, r.profile
    budget = video_pixel_budget(
        nframes,
        p.factor,
        min_pixels=c.min_pixels,
        max_pixels=c.max_pixels,
        total_pixels=c.total_pixels,
        min_tokens=p.min_tokens,
        max_tokens=p.max_tokens,
        model_seq_len=p.max_context_tokens,
        total_ratio=p.total_pixels_ratio,
        frame_factor=p.frame_factor if p.frame_factor > 1 else 2,
    )
    hi = budget.max_pixels if p.max_pixels is None else min(budget.max_pixels, p.max_pixels)
    if c.resized_height is not None and c.resized_width is not None:
        rh, rw = smart_resize(c.resized_height, c.resized_width, p.factor)
    else:
        rh, rw = smart_resize(height, width, p.factor, budget.min_pixels, hi)
    return rh, rw, budget.min_pixels, hi


def _finish_plan(r: Resolved, *, input_name: str, kind: str, decoder: str | None, width: int,
                 height: int, total: int, fps: float, sampling: SamplingPlan, padded: int = 0
                 ) -> VideoPlan:
    n = len(sampling.indices) + padded
    rh, rw, lo, hi = size_plan(r, n, height, width)
    tokens = count_tokens(r.profile, n, rh, rw)
    plan = VideoPlan(input_name, kind, decoder, width, height, total, fps,
                     total / fps if fps else 0.0, sampling, rh, rw, lo, hi, tokens,
                     r.profile.name, padded)
    if r.config.check_context and tokens.total_tokens > tokens.max_context_tokens:
        raise context_error(tokens, r.profile, _fitting_hint(r, n, height, width, fps,
                                                              sampling.range_frames))
    return plan


def _fitting_hint(r: Resolved, n: int, height: int, width: int, video_fps: float,
                  range_frames: int) -> str:
    """A frame count (as --nframes or --fps) and a --max-pixels that fit the context, found by
    re-running the size rules (pixel budgets grow as frames drop, so scaling is not enough)."""
    limit = r.profile.max_context_tokens
    factor = max(r.profile.frame_factor, 1)

    def tokens(frames: int, **pixels: Any) -> int:
        c = replace(r.config, **pixels) if pixels else r.config
        rh, rw, _, _ = size_plan(replace(r, config=c), frames, height, width)
        return count_tokens(r.profile, frames, rh, rw).total_tokens

    hints = []
    fit_n = next((k for k in range(n - factor, factor - 1, -factor) if tokens(k) <= limit), None)
    if fit_n is not None:
        if r.nframes is not None:
            hints.append(f"--nframes {fit_n}")
        else:
            seconds = range_frames / video_fps
            hints.append(f"--fps {math.floor(fit_n / seconds * 100) / 100:g}")
    f2 = r.profile.factor ** 2
    floor = r.config.min_pixels or r.profile.min_tokens * f2
    lo, hi = f2, int(size_plan(r, n, height, width)[3])
    if tokens(n, max_pixels=lo, min_pixels=lo) <= limit:
        while hi - lo > f2:  # largest max_pixels that fits (tokens grow with it)
            mid = (lo + hi) // 2
            fits = tokens(n, max_pixels=mid, min_pixels=min(mid, floor)) <= limit
            lo, hi = (mid, hi) if fits else (lo, mid)
        extra = f" --min-pixels {lo}" if lo < floor else ""
        hints.append(f"--max-pixels {lo}{extra}")
    return ("try " + " or ".join(hints)) if hints else "use a shorter --start/--end range"


def plan_video_reader(reader: Any, r: Resolved, input_name: str) -> VideoPlan:
    total, fps = decoder_timing(reader)
    video = reader.info.video
    c = r.config
    duration = total / fps
    if c.max_video_duration and duration > c.max_video_duration and c.start is None \
            and c.end is None:
        raise InputError(
            f"{input_name} lasts {duration:.1f}s, over the {c.max_video_duration:g}s limit "
            "(raise max_video_duration or pick a --start/--end range)"
        )
    if c.end is not None and c.start is not None and c.end <= c.start:
        raise UsageError(f"--end ({c.end}) must be after --start ({c.start})")
    width, height = video.width, video.height
    if video.rotation % 180 == 90 and reader.decoder_name == "pyav":
        pass  # PyAV hands out frames as stored; rotation is metadata only
    sampling = plan_sampling(
        sampling_request(r), total, fps,
        keyframes=reader.keyframes,
        change_scores=lambda first, last: change_scores(reader, first, last),
    )
    return _finish_plan(r, input_name=input_name, kind="video", decoder=reader.decoder_name,
                        width=width, height=height, total=total, fps=fps, sampling=sampling)


def plan_frame_list(frames: FrameList, r: Resolved, first_frame: np.ndarray, input_name: str
                    ) -> VideoPlan:
    """Frame lists: every frame (padded with the last to the frame factor, as the reference),
    or an even subset when ``nframes`` is asked for."""
    c = r.config
    count = frames.count
    factor = r.profile.frame_factor
    fps = frames.fps or (c.fps if c.fps else 2.0)
    if c.nframes is not None:
        n = smart_nframes(count, fps, nframes=c.nframes, frame_factor=factor)
        indices, padded = linspace_indices(0, count - 1, n), 0
    else:
        indices = list(range(count))
        padded = ceil_by_factor(count, factor) - count
    n = len(indices) + padded
    sampling = SamplingPlan("list", indices, 0, count - 1, count, fps,
                            sample_fps=fps if c.nframes is None else n / count * fps)
    h, w = first_frame.shape[:2]
    return _finish_plan(r, input_name=input_name, kind="frames", decoder=None, width=w,
                        height=h, total=count, fps=fps, sampling=sampling, padded=padded)


def change_scores(reader: Any, first: int, last: int) -> np.ndarray:
    """Mean absolute luma change between consecutive frames (tiny thumbnails)."""
    from vt.media.decode import resize_rgb

    prev = None
    scores = np.zeros(last - first + 1, dtype=np.float64)
    for batch in reader.frames_at(range(first, last + 1), batch_size=DECODE_BATCH):
        for image, index in zip(batch.images, batch.indices, strict=True):
            small = resize_rgb(image, (32, 18), "area").astype(np.float32).mean(axis=2)
            if prev is not None:
                scores[index - first] = float(np.abs(small - prev).mean())
            prev = small
    return scores


# -- output conversion -----------------------------------------------------------------------
_TORCH_DTYPES = {"uint8": "uint8", "float32": "float32", "float16": "float16",
                 "bfloat16": "bfloat16"}


class FrameConverter:
    """(H, W, 3) uint8 RGB -> one output frame (dtype, scaling, channel order, layout).

    Writes straight into a preallocated output, one channel plane at a time (a strided read
    into a contiguous write is several times faster than permuting whole frames)."""

    def __init__(self, config: PreprocessConfig, mean: tuple[float, ...], std: tuple[float, ...]):
        import torch

        self.torch = torch
        self.config = config
        try:
            device = torch.device(config.device)
        except RuntimeError:
            raise UsageError(f"unknown device {config.device!r} (cpu, cuda, cuda:1...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"device {config.device!r} requested but no CUDA GPU is available")
        self.dtype = getattr(torch, _TORCH_DTYPES[config.dtype])
        self.chw = config.layout == "TCHW"
        self.order = [2, 1, 0] if config.channel_order == "bgr" else [0, 1, 2]
        self.scale: list[float] | None = None
        self.shift: list[float] = [0.0, 0.0, 0.0]
        if config.normalize:
            self.scale = [1.0 / (255.0 * std[c]) for c in self.order]
            self.shift = [mean[c] / std[c] for c in self.order]
        elif config.rescale:
            self.scale = [1.0 / 255.0] * 3

    def frame_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (3, height, width) if self.chw else (height, width, 3)

    def allocate(self, n: int, height: int, width: int) -> Any:
        return self.torch.empty((n, *self.frame_shape(height, width)), dtype=self.dtype,
                                device=self.config.device)

    def convert(self, frame: Any) -> Any:
        """One output frame from a (3, H, W) uint8 tensor or an (H, W, 3) uint8 array."""
        chw = _as_chw(frame)
        out = self.allocate(1, chw.shape[1], chw.shape[2])
        self.write(out, 0, chw)
        return out[0]

    def write(self, out: Any, position: int, frame: Any) -> None:
        """Convert one frame (a (3, H, W) uint8 tensor or (H, W, 3) array) into ``out``."""
        chw = _as_chw(frame)
        target = out[position]
        if not self.chw:
            target = target.permute(2, 0, 1)  # a (3, H, W) view of the (H, W, 3) slot
        if self.scale is None and self.order == [0, 1, 2]:
            target.copy_(chw)  # one pass: layout and dtype conversion together
            return
        for dst, src in enumerate(self.order):
            plane = chw[src]
            if self.scale is not None:
                plane = plane.to(self.torch.float32).mul_(self.scale[dst]).sub_(self.shift[dst])
            target[dst].copy_(plane)


def _as_chw(frame: Any) -> Any:
    if isinstance(frame, np.ndarray):
        import torch

        if not frame.flags.writeable:
            frame = np.array(frame)
        return torch.from_numpy(frame).permute(2, 0, 1)
    return frame


def _hwc_array(chw: Any) -> np.ndarray:
    return chw.permute(1, 2, 0).contiguous().numpy()


# -- results ---------------------------------------------------------------------------------
@dataclass
class ProcessedVideo:
    """The frames (``(T, C, H, W)`` tensor unless configured otherwise) and their record."""

    frames: Any
    plan: VideoPlan
    config: PreprocessConfig
    decoder: str | None
    timing: dict[str, float] = field(default_factory=dict)
    cache_hit: str | None = None  # None, "memory" or "disk"

    @property
    def metadata(self) -> dict[str, Any]:
        p = self.plan
        return {
            "num_frames": p.nframes,
            "original_fps": p.video_fps,
            "sample_fps": p.sampling.sample_fps,
            "duration": p.duration,
            "resolution": (p.resized_height, p.resized_width),
            "source_resolution": (p.height, p.width),
            "total_tokens": p.tokens.total_tokens,
            "grid_thw": list(p.tokens.grid_thw),
            "frame_indices": p.indices,
            "timestamps": [i / p.video_fps for i in p.indices],
            "total_frames": p.total_frames,
            "strategy": p.sampling.strategy,
            "profile": p.profile,
            "decoder": self.decoder,
            "dtype": self.config.dtype,
            "layout": self.config.layout,
        }

    def video_metadata(self) -> dict[str, Any]:
        """The ``video_metadata`` transformers' Qwen processors read (real temporal positions)."""
        p = self.plan
        return {
            "fps": p.video_fps,
            "frames_indices": p.indices,
            "total_num_frames": p.total_frames,
            "duration": p.duration,
            "width": p.width,
            "height": p.height,
            "video_backend": self.decoder or "frames",
        }

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "metadata": self.metadata, "timing": dict(self.timing)}

    def record(self) -> dict[str, Any]:
        """JSON-ready metadata and timing (no pixels)."""
        data = {**self.plan.to_dict(), **{k: v for k, v in self.metadata.items()
                                          if k not in ("timestamps",)}}
        data["resolution"] = list(self.metadata["resolution"])
        data["source_resolution"] = list(self.metadata["source_resolution"])
        data["timing"] = dict(self.timing)
        data["cache_hit"] = self.cache_hit
        data["shape"] = list(self.frames.shape)
        return data


# -- running ---------------------------------------------------------------------------------
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
                        writer.write(_hwc_array(small))
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
