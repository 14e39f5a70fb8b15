"""Quality metrics: exact values on small cases, known behaviour on real and generated clips."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vt import metrics as M
from vt.testing import make_video


def read_frames(path: Path, count: int = 10) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def translating(count: int, step: tuple[int, int], size: tuple[int, int] = (96, 128)) -> list:
    """A smooth random texture seen through a window that moves ``step`` (dx, dy) px per frame."""
    rng = np.random.default_rng(1)
    h, w = size
    big = rng.random((h // 4 + 20, w // 4 + 20, 3)).astype(np.float32)
    big = cv2.resize(big, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), 1.5)
    big = np.clip(big * 255, 0, 255).astype(np.uint8)
    dx, dy = step
    return [
        big[8 + t * dy : 8 + t * dy + h, 8 + t * dx : 8 + t * dx + w].copy() for t in range(count)
    ]


def add_noise(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    """Fresh Gaussian noise per frame, kept in float so no clipping or rounding bias."""
    rng = np.random.default_rng(seed)
    return [f / 255.0 + rng.normal(0, sigma / 255.0, f.shape) for f in frames]


# -- PSNR ----------------------------------------------------------------------------------
def test_psnr_identical_is_inf() -> None:
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert M.psnr(a, a.copy()) == math.inf


@pytest.mark.parametrize(("dtype", "peak"), [(np.uint8, 255), (np.uint16, 65535)])
def test_psnr_known_mse(dtype: type, peak: int) -> None:
    a = np.full((4, 6, 3), 100, dtype)
    b = a.copy()
    b[:2] += 2  # half the elements off by 2 -> MSE = 2
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(peak**2 / 2), abs=1e-9)


def test_psnr_float_and_explicit_max() -> None:
    a = np.zeros((2, 2, 3))
    assert M.psnr(a, a + 0.1) == pytest.approx(20.0)  # MSE 0.01, MAX 1
    assert M.psnr(a, a + 0.1, max_value=10.0) == pytest.approx(40.0)


def test_psnr_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError):
        M.psnr(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError):
        M.psnr(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint16))


# -- SSIM ----------------------------------------------------------------------------------
def reference_ssim(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    """Wang et al. 2004 spelled out pixel by pixel (11x11 Gaussian, σ 1.5, population stats)."""
    r = 5
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    values = []
    for i in range(r, x.shape[0] - r):
        for j in range(r, x.shape[1] - r):
            px, py = (
                x[i - r : i + r + 1, j - r : j + r + 1],
                y[i - r : i + r + 1, j - r : j + r + 1],
            )
            mx, my = (win * px).sum(), (win * py).sum()
            vx, vy = (win * (px - mx) ** 2).sum(), (win * (py - my) ** 2).sum()
            cov = (win * (px - mx) * (py - my)).sum()
            values.append(
                ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


def test_ssim_identical_is_one() -> None:
    a = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert M.ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(a, a.copy(), channels="rgb") == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_reference_formula() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (18, 21)).astype(np.uint8)
    y = np.clip(x + rng.normal(0, 60, x.shape), 0, 255).astype(np.uint8)
    expected = reference_ssim(x.astype(float), y.astype(float), 255.0)
    assert 0.2 < expected < 0.95
    assert M.ssim(x, y) == pytest.approx(expected, abs=1e-9)


def test_ssim_luma_and_rgb_conventions() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 15, a.shape), 0, 255).astype(np.uint8)
    per_channel = np.mean([M.ssim(a[..., c], b[..., c]) for c in range(3)])
    assert M.ssim(a, b, channels="rgb") == pytest.approx(per_channel, abs=1e-12)
    luma = np.array([0.299, 0.587, 0.114])
    assert M.ssim(a, b) == pytest.approx(
        reference_ssim(a.astype(float) @ luma, b.astype(float) @ luma, 255.0), abs=1e-9
    )


def test_ssim_drops_with_noise(carphone: Path) -> None:
    frame = read_frames(carphone, 1)[0]
    rng = np.random.default_rng(0)
    scores = [
        M.ssim(frame, np.clip(frame + rng.normal(0, s, frame.shape), 0, 255).astype(np.uint8))
        for s in (2, 8, 25)
    ]
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0.1


# -- streaming PSNR/SSIM on real clips ------------------------------------------------------
def test_frame_quality_meter_on_carphone(carphone: Path, carphone_distorted: Path) -> None:
    ref, dist = read_frames(carphone, 8), read_frames(carphone_distorted, 8)
    meter, same = M.FrameQualityMeter(), M.FrameQualityMeter()
    for a, b in zip(ref, dist):
        p, s = meter.update(a, b)
        assert p == pytest.approx(M.psnr(a, b), abs=1e-6)
        assert s == pytest.approx(M.ssim(a, b), abs=1e-6)
        same.update(a, a)
    result = meter.result()
    assert result["frames"] == 8
    assert 20 < result["psnr_min"] <= result["psnr_mean"] < 45
    assert result["psnr_global"] <= result["psnr_mean"]  # PSNR of mean MSE (Jensen)
    assert 0.5 < result["ssim_min"] <= result["ssim_mean"] < 0.995
    assert same.result()["psnr_mean"] == math.inf
    assert same.result()["ssim_min"] == pytest.approx(1.0)


def test_frame_quality_meter_resizes_and_mixes_bit_depths() -> None:
    a = translating(1, (0, 0))[0]
    up = cv2.resize(a, (a.shape[1] * 2, a.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    p, s = M.FrameQualityMeter().update(a, up.astype(np.uint16) * 257)
    assert p > 35 and s > 0.97
    with pytest.raises(ValueError):
        M.FrameQualityMeter(resize=False).update(a, up)


# -- flow and warping error ---------------------------------------------------------------
@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_direction_and_warp(method: str) -> None:
    prev, nxt = translating(2, (3, 2))
    f = M.flow(prev, nxt, method)
    assert f.shape == (*prev.shape[:2], 2)
    # The window moves by (3, 2), so content moves by (-3, -2): prev(x) = next(x - d).
    inner = f[16:-16, 16:-16].reshape(-1, 2)
    assert np.median(inner, axis=0) == pytest.approx([-3, -2], abs=0.25)
    warped = M.warp(nxt, f)
    valid = ~M.occlusion_mask(f, M.flow(nxt, prev, method))
    err = np.abs(warped.astype(float) - prev)[valid].mean()
    assert err < 0.25 * np.abs(nxt.astype(float) - prev).mean()


def test_occlusion_mask_flags_leaving_pixels_and_mismatches() -> None:
    fwd = np.zeros((10, 12, 2), np.float32)
    fwd[..., 0] = -3  # everything moves 3 px left: the first 3 columns leave the frame
    bwd = -fwd
    occ = M.occlusion_mask(fwd, bwd)
    assert occ[:, :3].all() and not occ[:, 3:].any()
    assert M.occlusion_mask(fwd, fwd)[:, 3:].all()  # backward flow disagrees everywhere


def test_warping_error_translation_and_noise() -> None:
    frames = translating(8, (3, 2))
    sigma = 4.0
    identical, noisy = M.WarpingErrorMeter(), M.WarpingErrorMeter()
    for frame, out in zip(frames, add_noise(frames, sigma)):
        identical.update(frame, frame)
        noisy.update(frame, out)
    same, res = identical.result(), noisy.result()
    assert same.pairs == res.pairs == 7
    assert same.ratio == 1.0 and same.e_out == same.e_in
    plain = np.mean([np.mean((a / 255.0 - b / 255.0) ** 2) for a, b in zip(frames, frames[1:])])
    assert same.e_in < 0.001 * plain  # flow-warped error is tiny next to the raw difference
    added = 2 * sigma**2 / 255**2
    assert res.e_in == same.e_in
    assert res.e_out - res.e_in == pytest.approx(added, rel=0.05)
    assert res.ratio > 2


def test_warping_error_on_bikes(bikes: Path) -> None:
    frames = read_frames(bikes, 6)
    sigma = 3.0
    identical, noisy, small = M.WarpingErrorMeter(), M.WarpingErrorMeter(), M.WarpingErrorMeter()
    for frame, out in zip(frames, add_noise(frames, sigma)):
        identical.update(frame, frame)
        noisy.update(frame, out)
        # Output at half size is compared on the input's grid.
        small.update(
            frame,
            cv2.resize(
                frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA
            ),
        )
    assert identical.result().ratio == 1.0
    res = noisy.result()
    assert res.ratio > 1.5
    # Bilinear warping averages part of the noise away on sub-pixel motion: 60-100 % of 2σ².
    assert 0.6 < (res.e_out - res.e_in) / (2 * sigma**2 / 255**2) < 1.1
    assert 0.5 < small.result().ratio < 1.2  # a steady rescale adds no flicker


def test_flicker_score() -> None:
    still = [np.full((8, 8, 3), 128, np.uint8)] * 4
    assert M.flicker_score(still) == 1.0
    blink = [np.full((8, 8, 3), v, np.uint8) for v in (100, 151, 100)]
    assert M.flicker_score(iter(blink)) == pytest.approx(1 - 51 / 255)
    assert M.flicker_score(still[:1]) == 1.0


# -- audio ---------------------------------------------------------------------------------
def click_track(seconds: float, rate: int, delay: float = 0.0) -> np.ndarray:
    """Band-limited clicks at irregular times, sampled at ``t - delay`` (exact sub-sample shift)."""
    t = np.arange(int(seconds * rate)) / rate - delay
    out = np.zeros_like(t)
    for c in np.random.default_rng(7).uniform(0.05, seconds - 0.1, 12):
        u = (t - c) / 0.002  # 2 ms Hann-windowed burst at 2 kHz
        burst = np.where(np.abs(u) < 1, np.cos(np.pi * u / 2) ** 2, 0)
        out += burst * np.sin(2 * np.pi * 2000 * (t - c))
    return out.astype(np.float32)


@pytest.mark.parametrize("rate", [48000, 44100])
def test_audio_offset_recovers_delay(rate: int) -> None:
    a = click_track(2.0, rate)
    for delay in (0.0125, -0.0125, 0.0):
        b = click_track(2.0, rate, delay)
        assert M.audio_offset(a, b, rate) == pytest.approx(delay, abs=0.001)
    assert M.audio_offset(a, a, rate) == 0.0


def test_audio_offset_respects_max_lag() -> None:
    rate = 8000
    a = click_track(2.0, rate)
    b = click_track(2.0, rate, 0.3)
    assert M.audio_offset(a, b, rate, max_lag=1.0) == pytest.approx(0.3, abs=0.001)
    assert abs(M.audio_offset(a, b, rate, max_lag=0.1)) <= 0.1


def write_tone(path: Path, rate: int, start: float, seconds: float) -> Path:
    """Mono click track in Matroska whose first sample is at ``start`` seconds."""
    signal = click_track(seconds, rate)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        first = int(round(start * rate))
        for i in range(0, signal.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                signal[None, i : i + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, first + i
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_read_audio_timeline_and_resampling(tmp_path: Path) -> None:
    a = write_tone(tmp_path / "a.mkv", 48000, 0.0, 2.0)
    b = write_tone(tmp_path / "b.mkv", 48000, 0.25, 2.0)
    sa, ra = M.read_audio(a)
    sb, rb = M.read_audio(b, sample_rate=16000)
    assert (ra, rb) == (48000, 16000) and sa.dtype == np.float32
    assert sa.size == 96000 and abs(sb.size - 16000 * 2.25) <= 64  # leading zeros for the start
    assert not sb[:3900].any()
    sa16, _ = M.read_audio(a, sample_rate=16000)
    assert M.audio_offset(sa16, sb, 16000) == pytest.approx(0.25, abs=0.001)
    short, _ = M.read_audio(a, max_seconds=0.5)
    assert short.size == 24000


def test_read_audio_of_encoded_clip(tmp_path: Path) -> None:
    # AAC through MP4 (encoder priming, edit list): clicks stay at whole seconds.
    path = make_video(tmp_path / "av.mp4", frames=48, audio=True)
    samples, rate = M.read_audio(path)
    assert rate == 48000 and abs(samples.size - 2 * rate) < 2048
    onsets = np.flatnonzero((samples[1:] > 0.6) & (samples[:-1] <= 0.6)) + 1
    assert abs(onsets[0]) <= rate // 1000 or samples[0] > 0.6
    assert any(abs(o - rate) <= rate // 1000 for o in onsets)
    with pytest.raises(ValueError):
        M.read_audio(make_video(tmp_path / "silent.mp4", frames=2))
