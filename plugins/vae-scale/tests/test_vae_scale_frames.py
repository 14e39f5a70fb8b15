"""The letterbox geometry and the autoencoder round trip, in process (no batch, no files)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vt.errors import ModelUnavailableError, UsageError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import ProcessorChain

SIZES = [(36, 64), (64, 36), (48, 48), (45, 27), (27, 45), (33, 33)]  # portrait, landscape...


def batch_of(width: int, height: int, n: int = 3) -> FrameBatch:
    rng = np.random.default_rng(1)
    images = rng.integers(60, 255, (n, height, width, 3), dtype=np.uint8)
    return FrameBatch(images, list(range(n)), Fraction(1, 24), list(range(n)), "rgb24")


def pad_mask(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.all(image == np.array(color, np.uint8), axis=-1)


def check_letterboxed(
    images: np.ndarray, width: int, height: int, target: int, color: tuple[int, int, int]
) -> None:
    assert images.shape[1:3] == (target, target)
    for image in images:
        content = ~pad_mask(image, color)
        # rows/columns that are mostly content (random-weight VAE output may hit the pad
        # colour in a pixel or two); everything outside them must be exactly the pad
        cols = np.flatnonzero(content.mean(axis=0) > 0.5)
        rows = np.flatnonzero(content.mean(axis=1) > 0.5)
        w, h = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
        assert max(w, h) == target  # fills the long side
        # the aspect ratio is kept to the even-size rounding (<= 2 px on the short side)
        assert abs(w / h - width / height) <= 2.5 / min(w, h) * (width / height)
        assert content[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean() > 0.98
        assert not content[: rows[0]].any() and not content[rows[-1] + 1 :].any()
        assert not content[:, : cols[0]].any() and not content[:, cols[-1] + 1 :].any()
        # centred: the margins differ by at most the even alignment
        assert abs(cols[0] - (target - 1 - cols[-1])) <= 2
        assert abs(rows[0] - (target - 1 - rows[-1])) <= 2


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_letterbox_keeps_aspect_and_pads_exactly(width: int, height: int) -> None:
    from vt_vae_scale.letterbox import Letterbox

    color = (0, 160, 0)
    with ProcessorChain([Letterbox(64, pad_color=color)]) as chain:
        assert chain.configure(FrameFormat(width, height)).size == (64, 64)
        out = [b.images for b in chain.feed(batch_of(width, height))] + [
            b.images for b in chain.flush()
        ]
    check_letterboxed(np.concatenate(out), width, height, 64, color)


def test_letterbox_yuv_path_matches_geometry() -> None:
    """The decoded-frame path (no RGB) pads the same area as the RGB path."""
    import av

    from vt_vae_scale.letterbox import Letterbox, fit

    box = Letterbox(64)
    box.configure(FrameFormat(45, 27))
    src = av.VideoFrame.from_ndarray(np.full((27, 46, 3), 200, np.uint8), format="rgb24")
    src = src.reformat(width=45, height=27, format="yuv420p")
    src.pts = 7
    out = box.process_frame(src)
    assert (out.width, out.height, out.format.name, out.pts) == (64, 64, "yuv420p", 7)
    rgb = out.to_ndarray(format="rgb24")
    w, h, x, y = fit(45, 27, 64)
    assert rgb[y + 2 : y + h - 2, x + 2 : x + w - 2].min() > 150
    assert rgb[: y - 1].max() < 30 and rgb[y + h + 1 :].max() < 30


@pytest.mark.parametrize("text", ["purple", "#12345", "1,2", "300,0,0"])
def test_bad_pad_colour_is_a_usage_error(text: str) -> None:
    from vt_vae_scale.letterbox import parse_color

    with pytest.raises(UsageError):
        parse_color(text)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_roundtrip_then_letterbox(tiny_vae: Path, width: int, height: int) -> None:
    """Odd sizes are padded to the model's multiple and cropped back; then letterboxed."""
    from vt_vae_scale.letterbox import Letterbox
    from vt_vae_scale.roundtrip import VaeRoundtrip

    color = (0, 160, 0)
    vae = VaeRoundtrip(str(tiny_vae), device="cpu", chunk_size=2, batch=2)
    with ProcessorChain([vae, Letterbox(64, pad_color=color)]) as chain:
        chain.configure(FrameFormat(width, height))
        out = [b.images for b in chain.feed(batch_of(width, height))]
        out += [b.images for b in chain.flush()]
    images = np.concatenate(out)
    assert len(images) == 3
    check_letterboxed(images, width, height, 64, color)


def test_roundtrip_is_deterministic_with_mean_and_keeps_size(tiny_vae: Path) -> None:
    import torch

    from vt_vae_scale.roundtrip import VaeRoundtrip

    vae = VaeRoundtrip(str(tiny_vae), device="cpu")
    x = torch.rand(2, 3, 27, 45)
    a, b = vae.roundtrip(x), vae.roundtrip(x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    sampled = VaeRoundtrip(str(tiny_vae), device="cpu", sample=True).roundtrip(x)
    assert not torch.equal(sampled, a)


def test_hub_id_loads_from_the_cache_like_a_folder(tiny_vae: Path, offline_hub: Path) -> None:
    from vt_vae_scale import load_hf_autoencoder

    snapshot = offline_hub / "models--tiny-org--tiny-vae" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_vae, snapshot)
    (offline_hub / "models--tiny-org--tiny-vae" / "refs").mkdir()
    (offline_hub / "models--tiny-org--tiny-vae" / "refs" / "main").write_text("a" * 40)
    by_id = load_hf_autoencoder("tiny-org/tiny-vae", device="cpu")
    by_path = load_hf_autoencoder(str(tiny_vae), device="cpu")
    assert by_id.task == by_path.task == "autoencoder"
    assert type(by_id.model).__name__ == "AutoencoderKL"
    assert by_id.size_requirements.multiple_of == 2
    import torch

    for p, q in zip(by_id.model.parameters(), by_path.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_load_errors(tmp_path: Path) -> None:
    from vt_vae_scale import load_hf_autoencoder

    with pytest.raises(UsageError, match="not found"):
        load_hf_autoencoder(str(tmp_path / "typo"))
    with pytest.raises(ModelUnavailableError):
        load_hf_autoencoder("nobody/not-cached")  # HF_HUB_OFFLINE=1, empty cache
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError):
        load_hf_autoencoder(str(tmp_path / "empty"))


class _Flaky:
    """Stands in for a VAE that runs out of memory above ``fits`` frames."""

    def __init__(self, fits: int) -> None:
        self.fits, self.calls = fits, []

    def __call__(self, x):
        self.calls.append(len(x))
        if len(x) > self.fits:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x


def test_out_of_memory_halves_the_batch_then_gives_up(tiny_vae: Path) -> None:
    from vt_vae_scale.roundtrip import AutoencoderOutOfMemory, VaeRoundtrip

    vae = VaeRoundtrip(str(tiny_vae), device="cpu", chunk_size=8, batch=8)
    vae.roundtrip = _Flaky(fits=2)  # type: ignore[method-assign]
    batch = batch_of(16, 16, n=8)
    out = vae.process(batch)
    assert len(out) == 8 and vae.batch == 2 and vae.retries == 2
    assert vae.roundtrip.calls[:3] == [8, 4, 2]
    vae.roundtrip = _Flaky(fits=0)  # type: ignore[method-assign]
    with pytest.raises(AutoencoderOutOfMemory):
        vae.process(batch)


def test_out_of_memory_falls_back_to_letterbox_for_the_clip(
    tiny_vae: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: object
) -> None:
    from vae_scale_helpers import solid_clip

    from vt_vae_scale import jobs
    from vt_vae_scale.roundtrip import VaeRoundtrip

    def always_oom(self, x):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(VaeRoundtrip, "roundtrip", always_oom)
    clip = solid_clip(tmp_path / "in.mp4", 45, 27)
    report = jobs.scale_clip(
        str(clip),
        str(tmp_path / "out.mp4"),
        method="autoencoder",
        model=str(tiny_vae),
        device="cpu",
        target_size=32,
        preset="ultrafast",
    )
    assert report["method"] == "letterbox"
    assert "out of memory" in report["fallback_reason"]
    assert (report["scaled_width"], report["scaled_height"]) == (32, 32)
    assert (tmp_path / "out.mp4").is_file()


def test_processors_are_registered(host: object) -> None:
    from vt_vae_scale.letterbox import Letterbox

    names = host.processors.names()  # type: ignore[attr-defined]
    assert "letterbox" in names and "vae-roundtrip" in names
    built = host.processors.get("letterbox").factory(size=32)  # type: ignore[attr-defined]
    assert isinstance(built, Letterbox)
