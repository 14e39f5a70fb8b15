"""The temporal stage: frames held and flushed exactly once, cuts, context, less flicker."""

from __future__ import annotations

import numpy as np
import pytest
from kizuna_helpers import batches, mean_psnr, run_chain, to8

from vt.errors import UsageError
from vt.media.frames import FrameFormat
from vt.metrics import WarpingErrorMeter
from vt_kizuna.api import PipelineConfig
from vt_kizuna.lineart import downscale_x2
from vt_kizuna.temporal import TemporalStabilizer


def _flickery(frames: np.ndarray, seed: int = 0, amount: float = 6.0) -> np.ndarray:
    """What a per-frame stage does to a static detail: the same frames plus fresh noise."""
    rng = np.random.default_rng(seed)
    noisy = frames.astype(np.float32) + rng.normal(0, amount, frames.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def _warping_ratio(source: np.ndarray, output: np.ndarray) -> float:
    meter = WarpingErrorMeter()
    for a, b in zip(source, output):
        meter.update(a, b)
    return meter.result().ratio


def test_every_frame_comes_out_once_with_its_pts_held_then_flushed(
    carphone_frames: np.ndarray,
) -> None:
    stage = TemporalStabilizer(radius=2)
    assert stage.temporal and stage.context_frames == (2, 2)
    fmt = stage.configure(FrameFormat(176, 144))
    assert fmt.size == (176, 144)
    seen: list[int] = []
    for i, batch in enumerate(batches(carphone_frames[:6], 1)):
        out = stage.process(batch)
        got = [] if out is None else out.pts
        assert got == ([] if i < 2 else [i - 2])  # holds back exactly `radius` frames
        seen += got
    flushed = stage.flush()
    assert [p for b in flushed for p in b.pts] == [4, 5]
    seen += [p for b in flushed for p in b.pts]
    assert seen == list(range(6))
    assert stage.flush() == []  # nothing left; the next stream starts afresh


def test_temporal_lowers_the_flicker_per_frame_stages_add(carphone_frames: np.ndarray) -> None:
    source = carphone_frames
    processed = _flickery(source)
    stage = TemporalStabilizer(strength=1.0)
    # standalone: no source tap, it stabilizes its input's detail layer
    steady = run_chain([stage], processed).images
    assert _warping_ratio(source, steady) < 0.8 * _warping_ratio(source, processed)
    assert mean_psnr(source, steady) > mean_psnr(source, processed)  # noise averaged out


def test_full_chain_with_temporal_flickers_less_on_a_real_clip(carphone_frames: np.ndarray) -> None:
    pristine = carphone_frames
    small = downscale_x2(pristine)

    def run(temporal: bool) -> np.ndarray:
        stages = PipelineConfig(enable_temporal=temporal, temporal_strength=1.0).build()
        return to8(run_chain(stages, small).images)

    plain, steady = run(False), run(True)
    assert _warping_ratio(small, steady) < _warping_ratio(small, plain)
    assert mean_psnr(pristine, steady) > mean_psnr(pristine, plain) - 0.2


def test_nothing_is_blended_across_a_scene_cut(
    carphone_frames: np.ndarray, line_art: np.ndarray
) -> None:
    a = carphone_frames[:3, :128, :176]
    b = np.ascontiguousarray(line_art[:3, :, :176])
    frames = np.concatenate([a, b])
    processed = _flickery(frames, seed=3)
    stage = TemporalStabilizer(strength=1.0, radius=1)
    out = run_chain([stage], processed).images
    assert stage.stats["cuts"] == 1
    # the frames on either side of the cut have their only other neighbour across it...
    one_sided = run_chain([TemporalStabilizer(strength=1.0)], processed[:3]).images
    assert np.array_equal(out[:3], one_sided)  # ...so the first shot ends as if alone
    assert not np.array_equal(out[1], processed[1])  # inside a shot, frames are blended


def test_a_segment_with_its_context_matches_one_pass(carphone_frames: np.ndarray) -> None:
    processed = _flickery(carphone_frames, seed=5)
    full = run_chain([TemporalStabilizer(strength=0.7, radius=2)], processed)
    before, after = TemporalStabilizer(radius=2).context_frames
    start, end = 3, 6  # frames [3, 6), fed with their context
    part = run_chain(
        [TemporalStabilizer(strength=0.7, radius=2)],
        processed[start - before : end + after],
        start=start - before,
    )
    keep = [i for i, index in enumerate(part.indices) if start <= index < end]
    assert np.array_equal(part.images[keep], full.images[start:end])


def test_strength_zero_and_bad_options(carphone_frames: np.ndarray) -> None:
    frames = _flickery(carphone_frames[:4])
    assert np.array_equal(run_chain([TemporalStabilizer(strength=0.0)], frames).images, frames)
    for bad in (-0.1, 1.5):
        with pytest.raises(UsageError, match="strength"):
            TemporalStabilizer(strength=bad)
    with pytest.raises(UsageError, match="radius"):
        TemporalStabilizer(radius=0)


def test_chain_with_tap_uses_the_source_frames(carphone_frames: np.ndarray) -> None:
    stage = TemporalStabilizer(strength=1.0)
    tap = stage.tap()
    from vt_kizuna.upscale import ShaderUpscale

    out = run_chain([tap, ShaderUpscale(2), stage], carphone_frames[:4])
    assert out.images.shape == (4, 288, 352, 3) and out.pts == [0, 1, 2, 3]
    assert tap.frames == {}  # every source frame handed over: nothing accumulates
    assert stage.stats["frames"] == 4 and stage.stats["fallbacks"] == 0
