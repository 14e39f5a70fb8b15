"""vt.metrics temporal consistency (the CogVideoX spec's score) on real clips, and in
``vt compare``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from vt.cli import create_app
from vt.metrics import TemporalConsistencyMeter, temporal_consistency
from vt.testing import sample_clip


def frames(name: str, count: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with av.open(str(sample_clip(name))) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


@pytest.fixture(scope="module")
def carphone() -> list[np.ndarray]:
    return frames("carphone_pristine", 120)


def test_still_clip_scores_one(carphone: list[np.ndarray]) -> None:
    result = temporal_consistency([carphone[0]] * 12)
    assert result.score == pytest.approx(1.0, abs=1e-6)
    assert result.mean_magnitude < 0.01 and len(result.magnitudes) == 11


def test_real_clip_scores_high_and_its_shuffled_frames_low(carphone: list[np.ndarray]) -> None:
    steady = temporal_consistency(carphone)
    order = np.random.default_rng(0).permutation(len(carphone))
    shuffled = temporal_consistency([carphone[i] for i in order])
    assert steady.score > 0.7
    assert shuffled.score < 0.1
    assert shuffled.variance > 10 * steady.variance


def test_score_is_the_documented_formula_and_stable_across_runs(carphone: list[np.ndarray]) -> None:
    clip = carphone[:40]
    a = temporal_consistency(clip, sigma=2.0)
    b = temporal_consistency(clip, sigma=2.0)
    assert a.magnitudes == b.magnitudes and a.score == b.score
    m = np.asarray(a.magnitudes)
    assert a.variance == pytest.approx(float(m.var()))
    assert a.score == pytest.approx(math.exp(-m.var() / 4.0))
    assert temporal_consistency(clip, sigma=1.0).score < a.score  # larger σ is laxer


def test_magnitudes_are_pixels_at_256_wide(carphone: list[np.ndarray]) -> None:
    """A pan of k px at 256 px wide measures ~k whatever the clip's own width."""
    base = cv2.resize(carphone[0], (512, 418), interpolation=cv2.INTER_AREA)
    pan = [np.ascontiguousarray(base[:, 8 * i : 8 * i + 384]) for i in range(6)]  # 8 px at 384
    result = temporal_consistency(pan)
    expected = 8 * 256 / 384
    assert np.median(result.magnitudes) == pytest.approx(expected, rel=0.15)
    assert result.score > 0.9  # an even pan is consistent


def test_tvl1_option_agrees_on_a_pan(carphone: list[np.ndarray]) -> None:
    base = carphone[0]
    pan = [np.ascontiguousarray(base[:, 4 * i : 4 * i + 128]) for i in range(3)]
    dis = temporal_consistency(pan, width=64)
    tvl1 = temporal_consistency(pan, width=64, method="tvl1")
    assert tvl1.method == "tvl1"
    assert np.median(tvl1.magnitudes) == pytest.approx(2.0, rel=0.25)
    assert np.median(dis.magnitudes) == pytest.approx(2.0, rel=0.25)


def test_bad_arguments_are_errors(carphone: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="at least two frames"):
        temporal_consistency(carphone[:1])
    with pytest.raises(ValueError, match="sigma"):
        TemporalConsistencyMeter(sigma=0)
    with pytest.raises(ValueError, match="unknown flow method"):
        TemporalConsistencyMeter(method="lucas")  # type: ignore[arg-type]
    meter = TemporalConsistencyMeter()
    meter.update(carphone[0])
    with pytest.raises(ValueError, match="frame size changed"):
        meter.update(carphone[0][:100])


def test_compare_reports_both_videos_temporal_consistency(
    host: object, carphone: list[np.ndarray], tmp_path: Path
) -> None:
    from fractions import Fraction

    from vt.media.frames import FrameBatch
    from vt.media.pipeline import write_video

    clip = sample_clip("carphone_pristine")
    still = tmp_path / "still.mp4"  # the clip's first frame, held
    write_video(
        [FrameBatch(np.stack([carphone[0]] * 12), [None] * 12, Fraction(1, 30), list(range(12)))],
        still,
        fps=30,
    )
    runner = CliRunner()
    result = runner.invoke(
        create_app(host), ["compare", str(clip), str(still), "--json", "--max-frames", "12"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["temporal_consistency"]
    assert data["b"]["score"] == pytest.approx(1.0, abs=1e-3)
    assert data["a"]["pairs"] == 11 and 0 < data["a"]["score"] <= 1
    text = runner.invoke(
        create_app(host),
        ["compare", str(clip), str(still), "--max-frames", "12", "--temporal-sigma", "2"],
    )
    assert "temporal    A" in text.stdout and "sigma 2 px" in text.stdout
    bad = runner.invoke(
        create_app(host), ["compare", str(clip), str(still), "--temporal-method", "magic"]
    )
    assert bad.exit_code == 2 and "--temporal-method" in bad.stderr
