"""Quality and temporal-consistency metrics: the one implementation every command reuses.

Pure functions on ``(H, W, 3)`` RGB arrays (uint8, uint16 or float in [0, 1]) plus small
streaming meters that keep only the previous frame(s), so a whole video never sits in memory.
Only numpy, OpenCV and PyAV: no model weights, no torch.

Conventions (see ``shared/notes/anchors.md``, "Metrics without model weights"):

- PSNR = 10 log10(MAX² / MSE) over all pixels and channels; MAX from the dtype.
- SSIM follows Wang et al. 2004 as scikit-image computes it with ``gaussian_weights=True``:
  Gaussian window σ = 1.5 (11 taps), population covariances, C1 = (0.01 L)², C2 = (0.03 L)²,
  the map averaged after cropping the 5-pixel border the window cannot cover. By default on
  BT.601 luma (what video tools report as the "Y" SSIM), optionally per RGB channel averaged.
- Warping error after Lai et al. 2018: flow on the *input*, used to warp input and output alike.
- Temporal consistency (the CogVideoX spec's score): m_t = mean optical-flow magnitude between
  frames t and t+1, frames scaled to 256 px wide; score = exp(-Var_t(m_t) / σ²), σ = 1 px by
  default. A still or evenly moving clip scores near 1, a jittering one near 0.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

__all__ = [
    "FrameQualityMeter",
    "QualitySummary",
    "TemporalConsistency",
    "TemporalConsistencyMeter",
    "WarpingError",
    "WarpingErrorMeter",
    "audio_offset",
    "flicker_score",
    "flow",
    "occlusion_mask",
    "psnr",
    "read_audio",
    "ssim",
    "temporal_consistency",
    "to_float",
    "warp",
]

FlowMethod = Literal["dis", "farneback", "tvl1"]
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)  # skimage/scipy truncate=3.5 -> 11x11 window
_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, applied to (full-range) RGB
_FLOW = threading.local()


# -- helpers -------------------------------------------------------------------------------
def _max_value(image: np.ndarray) -> float:
    """MAX for an image's dtype: 255 (uint8), 65535 (uint16), 1.0 (float in [0, 1])."""
    if image.dtype == np.uint8:
        return 255.0
    if image.dtype == np.uint16:
        return 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return 1.0
    raise TypeError(f"unsupported image dtype {image.dtype}")


def to_float(image: np.ndarray) -> np.ndarray:
    """Float32 in [0, 1], so frames of different bit depths compare on one scale."""
    return image.astype(np.float32) / np.float32(_max_value(image))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"images differ in dtype: {a.dtype} vs {b.dtype}")


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to (height, width); area filter when shrinking so detail is averaged, not aliased."""
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def _gray8(image: np.ndarray) -> np.ndarray:
    """8-bit grey for flow estimation (DIS and Farneback want one uint8 channel)."""
    if image.ndim == 2:
        gray = image
    else:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if gray.dtype == np.uint8:
        return gray
    scaled = gray.astype(np.float32) * np.float32(255.0 / _max_value(image))
    out: np.ndarray = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    return out


# -- full-reference quality ----------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray, max_value: float | None = None) -> float:
    """PSNR in dB over all pixels and channels; ``inf`` when the images are identical."""
    _check_pair(a, b)
    peak = _max_value(a) if max_value is None else float(max_value)
    mse = float(np.mean(np.square(a.astype(np.float64) - b.astype(np.float64))))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def _ssim_plane(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    """Mean SSIM of one float64 plane, border of ``_SSIM_RADIUS`` pixels excluded."""
    size = 2 * _SSIM_RADIUS + 1

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (size, size), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = _SSIM_RADIUS
    inner = smap[r:-r, r:-r] if min(smap.shape) > 2 * r else smap
    return float(inner.mean())


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    max_value: float | None = None,
    channels: Literal["luma", "rgb"] = "luma",
) -> float:
    """Mean SSIM (Gaussian σ=1.5 window), 1.0 for identical images.

    ``channels="luma"`` (default) scores BT.601 Y computed from RGB, as video tools report it and
    at a third of the cost; ``"rgb"`` averages the three channels (skimage ``channel_axis=-1``).
    """
    _check_pair(a, b)
    peak = _max_value(a) if max_value is None else float(max_value)
    x, y = a.astype(np.float64), b.astype(np.float64)
    if x.ndim == 2:
        return _ssim_plane(x, y, peak)
    if channels == "luma":
        return _ssim_plane(x @ _LUMA, y @ _LUMA, peak)
    if channels == "rgb":
        return float(np.mean([_ssim_plane(x[..., c], y[..., c], peak) for c in range(x.shape[-1])]))
    raise ValueError(f"channels must be 'luma' or 'rgb', not {channels!r}")


@dataclass
class QualitySummary:
    """Per-frame PSNR/SSIM and their aggregates (JSON-ready via ``as_dict``)."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)  # in [0, 1] units, for the global PSNR

    def as_dict(self, per_frame: bool = True) -> dict[str, object]:
        n = len(self.psnr)
        mean_mse = float(np.mean(self.mse)) if n else math.nan
        out: dict[str, object] = {
            "frames": n,
            "psnr_mean": float(np.mean(self.psnr)) if n else math.nan,
            "psnr_min": float(np.min(self.psnr)) if n else math.nan,
            # ffmpeg's "average": PSNR of the mean MSE, finite unless every frame is identical.
            "psnr_global": (math.inf if mean_mse == 0 else -10.0 * math.log10(mean_mse))
            if n
            else math.nan,
            "ssim_mean": float(np.mean(self.ssim)) if n else math.nan,
            "ssim_min": float(np.min(self.ssim)) if n else math.nan,
        }
        if per_frame:
            out["psnr_per_frame"] = list(self.psnr)
            out["ssim_per_frame"] = list(self.ssim)
        return out


class FrameQualityMeter:
    """Streaming PSNR/SSIM of a distorted video ``b`` against a reference ``a``, frame by frame.

    Frames are first brought to [0, 1] floats, so an 8-bit reference can be scored against a
    10-bit output; ``b`` of another size is resized to ``a``'s size (``resize=False`` refuses).
    Keeps one float per frame, never the frames.
    """

    def __init__(self, *, channels: Literal["luma", "rgb"] = "luma", resize: bool = True):
        self.channels = channels
        self.resize = resize
        self.summary = QualitySummary()

    def update(self, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """Score one frame pair; returns ``(psnr_db, ssim)``."""
        if a.shape[:2] != b.shape[:2]:
            if not self.resize:
                raise ValueError(f"frame sizes differ: {a.shape[:2]} vs {b.shape[:2]}")
            b = _resize(b, a.shape[0], a.shape[1])
        x, y = to_float(a), to_float(b)
        mse = float(np.mean(np.square(x.astype(np.float64) - y)))
        p = math.inf if mse == 0 else -10.0 * math.log10(mse)
        s = ssim(x, y, max_value=1.0, channels=self.channels)
        self.summary.psnr.append(p)
        self.summary.ssim.append(s)
        self.summary.mse.append(mse)
        return p, s

    def result(self, per_frame: bool = True) -> dict[str, object]:
        return self.summary.as_dict(per_frame)


# -- optical flow and warping --------------------------------------------------------------
def flow(prev: np.ndarray, next: np.ndarray, method: FlowMethod = "dis") -> np.ndarray:
    """Dense flow ``(H, W, 2)`` float32 from ``prev`` to ``next``: prev(x) ≈ next(x + flow(x)).

    DIS (medium preset) is the default: ~15-20 ms per 640x272 pair on 2 cores, better than
    Farneback on large motion at half its cost, and far cheaper than Dual TV-L1 (``tvl1``,
    OpenCV contrib's ``optflow``: seconds a pair at 640x360). Computed on the 8-bit grey of
    the frames.
    """
    g0, g1 = _gray8(prev), _gray8(next)
    if g0.shape != g1.shape:
        raise ValueError(f"frame sizes differ: {g0.shape} vs {g1.shape}")
    if method == "dis":
        dis = getattr(_FLOW, "instance", None)
        if dis is None:  # one per thread: reuse saves its buffers (~20 % per call)
            create = getattr(cv2, "DISOpticalFlow_create")  # noqa: B009 - missing from cv2's stubs
            dis = _FLOW.instance = create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        result: np.ndarray = dis.calc(g0, g1, None)
        return result
    if method == "farneback":
        farneback: Any = cv2.calcOpticalFlowFarneback  # its stubs reject flow=None
        dense: np.ndarray = farneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return dense
    if method == "tvl1":
        tvl1 = getattr(_FLOW, "tvl1", None)
        if tvl1 is None:
            optflow = getattr(cv2, "optflow", None)
            if optflow is None:
                raise ValueError(
                    "TV-L1 flow needs OpenCV's contrib modules (opencv-contrib-python-headless)"
                )
            tvl1 = _FLOW.tvl1 = optflow.DualTVL1OpticalFlow_create()
        tv: np.ndarray = tvl1.calc(g0, g1, None)
        return tv
    raise ValueError(f"unknown flow method {method!r} (dis, farneback, tvl1)")


def _sample_grid(flo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flo.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flo[..., 0], gy + flo[..., 1]


def warp(image: np.ndarray, flo: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(x) = image(x + flo(x))`` with bilinear sampling, edges replicated.

    With ``flo = flow(prev, next)``, ``warp(next, flo)`` reconstructs ``prev``.
    """
    mx, my = _sample_grid(flo)
    out: np.ndarray = cv2.remap(
        image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out


def occlusion_mask(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``, True where ``fwd`` (prev→next) cannot be trusted.

    Forward-backward check and motion boundaries as in Ruder et al. 2016 / Lai et al. 2018,
    plus pixels whose target ``x + fwd(x)`` falls outside the frame (they have no match).
    """
    h, w = fwd.shape[:2]
    bwd_at = warp(bwd, fwd)  # bwd sampled where each prev pixel lands in next

    def sq(f: np.ndarray) -> np.ndarray:
        squared: np.ndarray = f[..., 0] ** 2 + f[..., 1] ** 2
        return squared

    mismatch = sq(fwd + bwd_at) > 0.01 * (sq(fwd) + sq(bwd_at)) + 0.5
    du_y, du_x = np.gradient(fwd[..., 0])
    dv_y, dv_x = np.gradient(fwd[..., 1])
    boundary = (du_x**2 + du_y**2 + dv_x**2 + dv_y**2) > 0.01 * sq(fwd) + 0.002
    mx, my = _sample_grid(fwd)
    outside = (mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)
    mask: np.ndarray = mismatch | boundary | outside
    return mask


@dataclass(frozen=True)
class WarpingError:
    """Mean warping errors (RGB in [0, 1], per element) of input and output, and their ratio."""

    e_in: float
    e_out: float
    ratio: float
    pairs: int

    def as_dict(self) -> dict[str, float | int]:
        return {"e_in": self.e_in, "e_out": self.e_out, "ratio": self.ratio, "pairs": self.pairs}


class WarpingErrorMeter:
    """Temporal warping error of an output video relative to its input (Lai et al. 2018).

    Feed ``(input_frame, output_frame)`` pairs in order; for each consecutive pair the flow is
    computed on the *input* (forward and backward, for the occlusion check) and applied to input
    and output alike, so ``ratio = E(out) / E(in)`` ≈ 1 means the processing added no flicker,
    and fresh per-frame noise of σ grey levels adds about 2σ²/255² to E.

    Output frames of another size (super-resolution, crops to model multiples) are resized to the
    input size (area filter when shrinking) so both errors live on the same pixel grid; flicker
    finer than the input's pixels is therefore averaged down, not counted. Memory: the previous
    pair only, plus two floats per frame.
    """

    def __init__(self, method: FlowMethod = "dis"):
        self.method = method
        self.per_frame: list[tuple[float, float]] = []
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def update(
        self, input_frame: np.ndarray, output_frame: np.ndarray
    ) -> tuple[float, float] | None:
        """Add one frame pair; returns ``(e_in, e_out)`` for the step from the previous pair."""
        h, w = input_frame.shape[:2]
        gray = _gray8(input_frame)
        x = to_float(input_frame)
        y = to_float(_resize(output_frame, h, w))
        prev, self._prev = self._prev, (gray, x, y)
        if prev is None:
            return None
        g0, x0, y0 = prev
        if g0.shape != gray.shape:
            raise ValueError(f"input frame size changed: {g0.shape} -> {gray.shape}")
        fwd = flow(g0, gray, self.method)
        bwd = flow(gray, g0, self.method)
        valid = ~occlusion_mask(fwd, bwd)
        n = int(valid.sum())
        if n == 0:  # everything occluded (a cut): fall back to the whole frame, as Lai et al.
            valid[:] = True
            n = valid.size

        def err(now: np.ndarray, before: np.ndarray) -> float:
            diff = warp(now, fwd)[valid] - before[valid]  # (n, 3)
            return float(np.square(diff, dtype=np.float64).sum() / (n * now.shape[-1]))

        step = (err(x, x0), err(y, y0))
        self.per_frame.append(step)
        return step

    def result(self) -> WarpingError:
        """Means over all steps; ratio 1.0 when both are 0, inf when only the input is static."""
        if not self.per_frame:
            return WarpingError(math.nan, math.nan, math.nan, 0)
        e_in = float(np.mean([p[0] for p in self.per_frame]))
        e_out = float(np.mean([p[1] for p in self.per_frame]))
        if e_in == 0.0:
            ratio = 1.0 if e_out == 0.0 else math.inf
        else:
            ratio = e_out / e_in
        return WarpingError(e_in, e_out, ratio, len(self.per_frame))


def flicker_score(frames: Iterable[np.ndarray]) -> float:
    """VBench-style temporal flicker score, 1 - mean |I_t - I_{t+1}| in [0, 1] units.

    1.0 is perfectly steady. Meaningful for static cameras only: motion counts as flicker.
    Streams: keeps the previous frame only. Fewer than two frames score 1.0.
    """
    total, steps, prev = 0.0, 0, None
    for frame in frames:
        cur = to_float(frame)
        if prev is not None:
            total += float(np.mean(np.abs(cur - prev), dtype=np.float64))
            steps += 1
        prev = cur
    return 1.0 - total / steps if steps else 1.0


# -- temporal consistency (flow-magnitude variance) ----------------------------------------
#: the frame width flow is measured at, so σ means the same at any resolution
TEMPORAL_WIDTH = 256
TEMPORAL_SIGMA = 1.0
TEMPORAL_THRESHOLD = 0.6


@dataclass
class TemporalConsistency:
    """``score`` = exp(-``variance`` / ``sigma``²) of the per-pair mean flow magnitudes
    ``magnitudes`` (px at ``width`` wide); 1.0 for fewer than three frames (no variance)."""

    score: float
    variance: float
    mean_magnitude: float
    magnitudes: list[float]
    sigma: float
    method: str
    width: int

    @property
    def frames(self) -> int:
        return len(self.magnitudes) + 1 if self.magnitudes else 0

    def as_dict(self, per_frame: bool = False) -> dict[str, object]:
        data: dict[str, object] = {
            "score": self.score,
            "variance": self.variance,
            "mean_magnitude": self.mean_magnitude,
            "pairs": len(self.magnitudes),
            "sigma": self.sigma,
            "method": self.method,
            "width": self.width,
        }
        if per_frame:
            data["magnitudes"] = list(self.magnitudes)
        return data


class TemporalConsistencyMeter:
    """Streaming temporal consistency: feed frames in order, keeps only the previous one.

    m_t is the mean magnitude of the optical flow from frame t to t+1, both scaled to
    ``width`` px wide (aspect kept), so ``sigma`` is in pixels of that width whatever the
    clip's size. Flow by DIS (default, fast) or Dual TV-L1 (``method="tvl1"``, the spec's
    reference, ~100x slower) or Farneback.
    """

    def __init__(
        self,
        *,
        sigma: float = TEMPORAL_SIGMA,
        method: FlowMethod = "dis",
        width: int = TEMPORAL_WIDTH,
    ) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if width < 8:
            raise ValueError(f"width must be at least 8 px, got {width}")
        if method not in ("dis", "farneback", "tvl1"):
            raise ValueError(f"unknown flow method {method!r} (dis, farneback, tvl1)")
        self.sigma, self.method, self.width = float(sigma), method, int(width)
        self.magnitudes: list[float] = []
        self._prev: np.ndarray | None = None
        self._size: tuple[int, int] | None = None

    def _scaled(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (h, w)
        elif self._size != (h, w):
            raise ValueError(f"frame size changed from {self._size[1]}x{self._size[0]} to {w}x{h}")
        height = max(1, round(h * self.width / w))
        return _gray8(_resize(frame, height, self.width))

    def update(self, frame: np.ndarray) -> float | None:
        """Add the next frame; returns m_t for the pair it closes (None for the first)."""
        cur = self._scaled(frame)
        prev, self._prev = self._prev, cur
        if prev is None:
            return None
        f = flow(prev, cur, self.method)
        magnitude = float(np.mean(np.hypot(f[..., 0], f[..., 1]), dtype=np.float64))
        self.magnitudes.append(magnitude)
        return magnitude

    def result(self) -> TemporalConsistency:
        m = np.asarray(self.magnitudes, dtype=np.float64)
        variance = float(m.var()) if m.size else 0.0
        return TemporalConsistency(
            score=math.exp(-variance / self.sigma**2),
            variance=variance,
            mean_magnitude=float(m.mean()) if m.size else 0.0,
            magnitudes=list(self.magnitudes),
            sigma=self.sigma,
            method=self.method,
            width=self.width,
        )


def temporal_consistency(
    frames: Iterable[np.ndarray],
    *,
    sigma: float = TEMPORAL_SIGMA,
    method: FlowMethod = "dis",
    width: int = TEMPORAL_WIDTH,
) -> TemporalConsistency:
    """Temporal consistency of ``frames`` (RGB or grey, any dtype vt uses) in [0, 1]:
    exp(-Var_t(m_t) / σ²) with m_t the mean flow magnitude from frame t to t+1 at ``width``
    px wide. Needs at least two frames."""
    meter = TemporalConsistencyMeter(sigma=sigma, method=method, width=width)
    count = 0
    for frame in frames:
        meter.update(frame)
        count += 1
    if count < 2:
        raise ValueError(f"temporal consistency needs at least two frames, got {count}")
    return meter.result()


# -- audio ---------------------------------------------------------------------------------
def audio_offset(a: np.ndarray, b: np.ndarray, sample_rate: int, max_lag: float = 1.0) -> float:
    """Delay of ``b`` relative to ``a`` in seconds (positive: b's content comes later).

    FFT cross-correlation of the mean-removed mono signals, searched within ±``max_lag``
    seconds, refined to a fraction of a sample by a parabola through the peak.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("audio_offset needs two non-empty signals")
    x, y = x - x.mean(), y - y.mean()
    n = 1 << int(math.ceil(math.log2(x.size + y.size - 1)))
    corr = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)
    # corr[k] = sum_t y[t + k] x[t]; negative lags wrap to the end.
    lag_max = min(int(max_lag * sample_rate), y.size - 1, x.size - 1, n // 2 - 1)
    lags = np.arange(-lag_max, lag_max + 1)
    window = corr[lags % n]
    i = int(np.argmax(window))
    shift = 0.0
    if 0 < i < window.size - 1:
        left, mid, right = window[i - 1], window[i], window[i + 1]
        denom = left - 2 * mid + right
        if denom < 0:
            shift = 0.5 * (left - right) / denom
    return float((lags[i] + shift) / sample_rate)


def read_audio(
    path: str | Path, sample_rate: int | None = None, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """First audio stream of a file as mono float32, on the file's timeline.

    Sample ``i`` is at time ``i / rate``: a stream that starts late is padded with leading
    zeros and encoder priming before 0 is dropped, so two files' arrays can be cross-correlated
    directly. Resampled (libswresample) to ``sample_rate`` when given, so files with different
    rates compare. Raises ``ValueError`` when the file has no audio stream.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        rate = int(sample_rate or stream.codec_context.sample_rate or stream.rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        limit = None if max_seconds is None else int(max_seconds * rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        have = drop = 0
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.time) if frame.time is not None else 0.0
                shift = int(round(start * rate))
                if shift > 0:
                    chunks.append(np.zeros(shift, np.float32))
                    have = shift
                drop = max(0, -shift)
            for out in resampler.resample(frame):
                block = out.to_ndarray().reshape(-1)
                chunks.append(block)
                have += block.size
            if limit is not None and have - drop >= limit:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    samples = samples[drop:]
    if limit is not None:
        samples = samples[:limit]
    return samples, rate
