"""``vt_cogvideo.generation`` on the tiny pipeline: frames, fps, size, tags, sidecar, seeds."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cogvideo_helpers import read_frames

from vt_cogvideo.generation import GenerationRequest, Generator
from vt_cogvideo.tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH


def request(image: Path, **kw: object) -> GenerationRequest:
    base: dict[str, object] = {
        "prompt": "a cyclist rides past",
        "num_inference_steps": 2,
        "seed": 1,
    }
    base.update(kw)
    return GenerationRequest(image=image, **base)  # type: ignore[arg-type]


def test_generate_writes_the_models_frames_at_fps(
    tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    gen = Generator(tiny_cogvideo, device="cpu")
    result = gen.generate(request(cond_image, fps=10), tmp_path / "clip.mp4")
    assert result.output == tmp_path / "clip.mp4"
    assert (result.frames, result.width, result.height) == (TINY_FRAMES, TINY_WIDTH, TINY_HEIGHT)
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


def test_same_seed_same_clip_other_seed_other_clip(
    tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
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
        request(cond_image, seed=None), tmp_path / "r.mp4"
    )
    assert 0 <= result.seed < 2**32
    assert json.loads(result.sidecar.read_text())["metadata"]["seed"] == result.seed


@pytest.mark.parametrize("field,value", [("height", 32), ("width", 24), ("num_frames", 13)])
def test_sizes_the_model_cannot_take_are_refused(
    tiny_cogvideo: Path, cond_image: Path, field: str, value: int
) -> None:
    from vt.errors import UsageError

    with pytest.raises(UsageError, match="learned positional embeddings for 16x16, 9 frames"):
        Generator(tiny_cogvideo, device="cpu").validate(request(cond_image, **{field: value}))


def test_fit_crop_covers_and_pad_letterboxes() -> None:
    from PIL import Image

    from vt_cogvideo.generation import fit_image

    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    wide.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    crop = np.asarray(fit_image(wide, 16, 16, "crop"))
    assert crop.shape == (16, 16, 3)
    assert crop[:, 0, 0].min() > 200 and crop[:, -1, 2].min() > 200  # both halves, no bars
    pad = np.asarray(fit_image(wide, 16, 16, "pad"))
    assert pad.shape == (16, 16, 3)
    assert pad[:3].max() == 0 and pad[-3:].max() == 0  # black bars above and below
    assert pad[8, 0, 0] > 200 and pad[8, -1, 2] > 200  # the whole width is kept


def test_fit_mode_changes_the_conditioning(
    tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    gen = Generator(tiny_cogvideo, device="cpu")
    crop = gen.generate(request(cond_image, fit="crop"), tmp_path / "crop.mp4")
    pad = gen.generate(request(cond_image, fit="pad"), tmp_path / "pad.mp4")
    assert pad.metadata["fit"] == "pad"
    assert not np.array_equal(read_frames(crop.output), read_frames(pad.output))


def test_lora_changes_the_output_and_switching_it_off_restores_it(
    tiny_cogvideo: Path, tiny_lora: Path, cond_image: Path, tmp_path: Path
) -> None:
    gen = Generator(tiny_cogvideo, device="cpu")
    base = read_frames(gen.generate(request(cond_image), tmp_path / "base.mp4").output)
    with_lora = gen.generate(request(cond_image, lora=tiny_lora), tmp_path / "lora.mp4")
    assert with_lora.metadata["lora"].endswith("pytorch_lora_weights.safetensors")
    assert np.abs(read_frames(with_lora.output).astype(int) - base).mean() > 1.0
    zero = gen.generate(request(cond_image, lora=tiny_lora, lora_scale=0.0), tmp_path / "zero.mp4")
    assert np.array_equal(read_frames(zero.output), base)
    again = gen.generate(request(cond_image), tmp_path / "again.mp4")
    assert np.array_equal(read_frames(again.output), base)
    assert gen.loads == 1  # one pipeline, the LoRA loaded into it once


def test_progress_and_cancel(tiny_cogvideo: Path, cond_image: Path, tmp_path: Path) -> None:
    import threading

    from vt_cogvideo.generation import Cancelled

    gen = Generator(tiny_cogvideo, device="cpu")
    steps: list[tuple[int, int]] = []
    gen.generate(
        request(cond_image, num_inference_steps=3),
        tmp_path / "p.mp4",
        progress=lambda s, n: steps.append((s, n)),
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]
    cancel = threading.Event()

    def stop_after_first(step: int, total: int) -> None:
        cancel.set()

    with pytest.raises(Cancelled, match="step 2 of 3"):
        gen.generate(
            request(cond_image, num_inference_steps=3),
            tmp_path / "c.mp4",
            progress=stop_after_first,
            cancel=cancel,
        )
    assert not (tmp_path / "c.mp4").exists() and not (tmp_path / "c.json").exists()


def test_model_without_learned_positions_takes_other_sizes(
    tiny_cogvideo: Path, tmp_path: Path
) -> None:
    """Limits come from the config: rotary-only models take multiples of 16 px, 4k+1 frames."""
    import shutil

    from vt.errors import UsageError

    folder = tmp_path / "rotary"
    shutil.copytree(tiny_cogvideo, folder)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["use_learned_positional_embeddings"] = False
    config_path.write_text(json.dumps(config))
    gen = Generator(folder, device="cpu")
    ok = gen.validate(request(Path("x.png"), height=32, width=48, num_frames=13))
    assert (ok.height, ok.width, ok.num_frames) == (32, 48, 13)
    with pytest.raises(UsageError, match="multiples of 16"):
        gen.validate(request(Path("x.png"), height=24))
    with pytest.raises(UsageError, match="4k\\+1"):
        gen.validate(request(Path("x.png"), num_frames=12))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("seed", "7", "seed must be an integer"),
        ("num_frames", 9.0, "num_frames must be an integer"),
        ("guidance_scale", "6", "guidance_scale must be a number"),
        ("fps", True, "fps must be"),
        ("prompt", None, "prompt must be a string"),
        ("seed", -1, "seed must be 0.."),
        ("guidance_scale", float("nan"), "guidance must be"),
        ("lora_scale", 11.0, "lora_scale"),
    ],
)
def test_wrong_types_and_ranges_are_usage_errors(
    tiny_cogvideo: Path, field: str, value: object, message: str
) -> None:
    from vt.errors import UsageError

    with pytest.raises(UsageError, match=message):
        Generator(tiny_cogvideo, device="cpu").validate(request(Path("x.png"), **{field: value}))
