"""``vt_cogvideo.generation`` on the tiny pipeline: frames, fps, size, tags, sidecar, seeds."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import read_frames
from vt_cogvideo.generation import GenerationRequest, Generator
from vt_cogvideo.tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH


def request(image: Path, **kw: object) -> GenerationRequest:
    base: dict[str, object] = {"prompt": "a cyclist rides past", "num_inference_steps": 2,
                               "seed": 1}
    base.update(kw)
    return GenerationRequest(image=image, **base)  # type: ignore[arg-type]


def test_generate_writes_the_models_frames_at_fps(tiny_cogvideo: Path, cond_image: Path,
                                                  tmp_path: Path) -> None:
    gen = Generator(tiny_cogvideo, device="cpu")
    result = gen.generate(request(cond_image, fps=10), tmp_path / "clip.mp4")
    assert result.output == tmp_path / "clip.mp4"
    assert (result.frames, result.width, result.height) == (TINY_FRAMES, TINY_WIDTH,
                                                            TINY_HEIGHT)
    frames = read_frames(result.output)
    assert frames.shape == (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    with av.open(str(result.output)) as c:
        assert c.streams.video[0].average_rate == Fraction(10)
        tags = dict(c.metadata)
    assert tags.get("title") == "a cyclist rides past"
    settings = json.loads(tags["comment"])
    assert settings["seed"] == 1 and settings["prompt"] == "a cyclist rides past"
    side = json.loads(result.sidecar.read_text())
    assert side["seed"] == 1 and side["frames"] == TINY_FRAMES
    assert 0.0 <= side["temporal_score"] <= 1.0
    assert set(side["timings"]) == {"load_s", "generate_s", "encode_s", "score_s", "total_s"}
    assert result.peak_memory_bytes > 0


def test_same_seed_same_clip_other_seed_other_clip(tiny_cogvideo: Path, cond_image: Path,
                                                   tmp_path: Path) -> None:
    gen = Generator(tiny_cogvideo, device="cpu")
    a = gen.generate(request(cond_image, seed=5), tmp_path / "a.mp4")
    b = gen.generate(request(cond_image, seed=5), tmp_path / "b.mp4")
    c = gen.generate(request(cond_image, seed=6), tmp_path / "c.mp4")
    fa, fb, fc = (read_frames(r.output) for r in (a, b, c))
    assert np.array_equal(fa, fb)
    assert not np.array_equal(fa, fc)
    assert b.timings["load_s"] == 0.0  # the pipeline was loaded once


def test_random_seed_is_reported(tiny_cogvideo: Path, cond_image: Path, tmp_path: Path) -> None:
    result = Generator(tiny_cogvideo, device="cpu").generate(
        request(cond_image, seed=None), tmp_path / "r.mp4")
    assert 0 <= result.seed < 2**32
    assert json.loads(result.sidecar.read_text())["metadata"]["seed"] == result.seed


@pytest.mark.parametrize("field,value", [("height", 32), ("width", 24), ("num_frames", 13)])
def test_sizes_the_model_cannot_take_are_refused(tiny_cogvideo: Path, cond_image: Path,
                                                 field: str, value: int) -> None:
    from vt.errors import UsageError

    with pytest.raises(UsageError, match="learned positional embeddings for 16x16, 9 frames"):
        Generator(tiny_cogvideo, device="cpu").validate(request(cond_image, **{field: value}))
