"""Sampling strategies: uniform, fps, duration, keyframe-priority and scene-adaptive."""

from __future__ import annotations

import numpy as np
import pytest

from vt.errors import UsageError
from vt_qwen_preprocess import plan, preprocess
from vt_qwen_preprocess.sampling import (
    SamplingRequest,
    plan_sampling,
    scene_indices,
    snap_to_keyframes,
)


def test_auto_picks_uniform_for_nframes_and_fps_otherwise():
    assert plan_sampling(SamplingRequest(nframes=8), 132, 25.0).strategy == "uniform"
    assert plan_sampling(SamplingRequest(fps=2.0), 132, 25.0).strategy == "fps"
    assert plan_sampling(SamplingRequest(), 132, 25.0).nframes == 10  # 2 fps default


def test_duration_strategy_uses_base_interval():
    # 600 s at 25 fps, one frame per 4 s -> 150 frames
    p = plan_sampling(SamplingRequest(strategy="duration", base_interval=4.0), 15000, 25.0)
    assert p.nframes == 150
    p = plan_sampling(SamplingRequest(strategy="duration", base_interval=10.0), 15000, 25.0)
    assert p.nframes == 60
    # short clips still get min_frames
    assert plan_sampling(SamplingRequest(strategy="duration"), 132, 25.0).nframes == 4
    with pytest.raises(UsageError, match="base_interval"):
        plan_sampling(SamplingRequest(strategy="duration", base_interval=0), 132, 25.0)


def test_snap_to_keyframes_prefers_nearby_keyframes_only():
    targets = [0, 20, 40, 60]
    keys = [0, 18, 50, 100]
    out = snap_to_keyframes(targets, keys, 0, 60)
    assert out[0] == 0 and out[1] == 18  # 18 is within half the spacing of 20
    assert out[2] == 40  # 50 is halfway to the next target: not "near" 40
    assert out == sorted(set(out)) and len(out) == 4


def test_keyframe_strategy_on_a_real_clip(bigbuckbunny):
    p = plan(bigbuckbunny, strategy="keyframe", nframes=8)
    assert p.sampling.strategy == "keyframe"
    assert len(p.sampling.indices) == 8
    assert p.sampling.indices == sorted(set(p.sampling.indices))
    assert p.sampling.indices[0] == 0  # frame 0 is a keyframe


def test_scene_indices_put_more_frames_where_content_changes():
    scores = np.zeros(100)
    scores[60:70] = 10.0  # all the motion in 10% of the clip
    picks = scene_indices(scores, 0, 20, weight=0.8)
    inside = sum(60 <= i < 70 for i in picks)
    assert inside >= 10  # uniform would give 2
    assert picks == sorted(set(picks)) and len(picks) == 20
    # static video: uniform spread
    flat = scene_indices(np.zeros(100), 0, 10)
    assert flat == sorted(set(flat)) and flat[0] < 10 and flat[-1] >= 90


def test_scene_strategy_on_a_generated_cut(tmp_path):
    import av

    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(100):
            if 50 <= i < 60:  # ten frames of noise: the only change in the clip
                img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            else:
                img = np.full((48, 64, 3), 128, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    result = preprocess(path, strategy="scene", nframes=10, cache=False)
    idx = result.plan.indices
    assert len(idx) == 10 and idx == sorted(set(idx))
    assert sum(50 <= i <= 60 for i in idx) >= 4
    assert result.metadata["strategy"] == "scene"


def test_uniform_needs_nframes_and_fps_rejects_nframes():
    with pytest.raises(UsageError, match="nframes"):
        plan_sampling(SamplingRequest(strategy="uniform"), 100, 25.0)
    with pytest.raises(UsageError, match="fps"):
        plan_sampling(SamplingRequest(strategy="fps", nframes=8), 100, 25.0)
    with pytest.raises(UsageError, match="unknown strategy"):
        plan_sampling(SamplingRequest(strategy="magic"), 100, 25.0)


def test_time_range_limits_indices(bikes):
    p = plan(bikes, fps=2.0, start=2.0, end=4.0)
    assert all(50 <= i <= 100 for i in p.indices)
    assert p.indices[0] == 50 and p.indices[-1] == 100
