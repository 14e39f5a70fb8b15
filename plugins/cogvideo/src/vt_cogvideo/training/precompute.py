"""Video latents and T5 prompt embeddings, computed once per clip and cached on disk.

Training never runs the VAE encoder or the T5 encoder in its loop: before the first step every
clip's frames are read (sampled at the configured fps, covered and centre-cropped to the
training size), encoded by the VAE into a latent distribution (mean and log-variance, sampled
afresh each step as diffusers' example does), the first frame lightly noised and encoded the
same way (the I2V conditioning), and the prompt encoded by T5. Each result is a safetensors
file under the cache folder, written atomically, keyed on the content of what made it: every
byte of the video, the prompt, the sizes and noise settings, the encoder's config and weight
files, and the dtype. A damaged or foreign entry is a miss (removed and recomputed). Training
reads its data from this cache, so a cache that cannot be written stops the run (one line).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import InputError, OutputError, VtError
from vt_cogvideo.training.config import DataConfig
from vt_cogvideo.training.metadata import TrainingClip, clip_indices

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

log = logging.getLogger("vt")

CACHE_FORMAT = "vt-cogvideo-train-1"
VIDEO_TENSORS = ("video_latent_dist", "image_latent_dist")
PROMPT_TENSORS = ("prompt_embeds",)


# -- keys ------------------------------------------------------------------------------------
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    """blake2b of every byte of ``path`` (memoised per size, mtime and inode)."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if memo not in _DIGESTS:
        hasher = hashlib.blake2b(digest_size=20)
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                hasher.update(chunk)
        _DIGESTS[memo] = hasher.hexdigest()
    return _DIGESTS[memo]


def component_identity(folder: Path) -> str:
    """What a model component is: its config files' bytes and its weight files' names,
    sizes and mtimes (a hub snapshot's files never change in place)."""
    parts: list[Any] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if path.suffix in (".json", ".txt", ".model"):
            parts.append((rel, file_digest(path)))
        else:
            st = path.stat()
            parts.append((rel, st.st_size, st.st_mtime_ns))
    return _digest(parts)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def video_key(
    clip: TrainingClip, data: DataConfig, vae_identity: str, dtype: str, seed: int
) -> str:
    return _digest(
        {
            "format": CACHE_FORMAT,
            "kind": "video",
            "video": file_digest(clip.video),
            "height": data.height,
            "width": data.width,
            "num_frames": data.num_frames,
            "fps": data.fps,
            "noise": [data.image_noise_mean, data.image_noise_std],
            "seed": seed,
            "vae": vae_identity,
            "dtype": dtype,
        }
    )


def prompt_key(prompt: str, max_tokens: int, encoder_identity: str, dtype: str) -> str:
    return _digest(
        {
            "format": CACHE_FORMAT,
            "kind": "prompt",
            "prompt": prompt,
            "max_tokens": max_tokens,
            "encoder": encoder_identity,
            "dtype": dtype,
        }
    )


# -- the cache -------------------------------------------------------------------------------
class LatentCache:
    """safetensors files ``<root>/<kind>/<key[:2]>/<key>.safetensors``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.safetensors"

    def get(self, kind: str, key: str, names: Sequence[str]) -> dict[str, torch.Tensor] | None:
        """The tensors stored under ``key``, or None (a bad entry is removed)."""
        import torch
        from safetensors import SafetensorError, safe_open

        path = self.path(kind, key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
                    raise ValueError("foreign entry")
                tensors = {name: fh.get_tensor(name) for name in names}
            if not all(t.numel() and bool(torch.isfinite(t).all()) for t in tensors.values()):
                raise ValueError("empty or non-finite tensor")
            return tensors
        except (OSError, ValueError, SafetensorError, KeyError) as exc:  # damaged: a miss
            log.warning("cache entry %s is unusable (%s): recomputing", path.name, exc)
            path.unlink(missing_ok=True)
            return None

    def put(self, kind: str, key: str, tensors: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        from vt.atomic import atomic_file

        path = self.path(kind, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, overwrite=True, suffix=".safetensors") as tmp:
                save_file(
                    {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                    str(tmp),
                    metadata={"format": CACHE_FORMAT, "key": key},
                )
        except OSError as exc:  # training reads its data from here: no way on without it
            raise OutputError(
                f"cannot write the latent cache under {self.root} "
                f"({exc.strerror or exc}): free space or pass --cache-dir"
            ) from None


# -- reading clips ---------------------------------------------------------------------------
def cover_size(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    """The smallest size with ``width/height``'s aspect that covers ``target``."""
    scale = max(target_w / width, target_h / height)
    return max(target_w, math.ceil(width * scale - 1e-6)), max(
        target_h, math.ceil(height * scale - 1e-6)
    )


def read_clip(clip: TrainingClip, data: DataConfig) -> np.ndarray:
    """``data.num_frames`` frames of ``clip`` at ``data.fps`` from its start, covered and
    centre-cropped to ``data.width`` x ``data.height``: (F, H, W, 3) uint8."""
    import numpy as np

    from vt.media.decode import with_fallback

    def work(reader: Any) -> np.ndarray:
        video = reader.info.video
        if not video.fps or not video.frame_count:
            raise InputError(f"{clip.video}: frame rate or frame count unknown")
        indices = clip_indices(video.frame_count, float(video.fps), data.fps, data.num_frames)
        if indices[-1] >= video.frame_count:
            raise _ClipTooShort(
                f"{clip.video} is too short: {video.frame_count} frames, "
                f"{data.num_frames} frames at {data.fps} fps need "
                f"{indices[-1] + 1}"
            )
        size = cover_size(video.width, video.height, data.width, data.height)
        wanted = sorted(set(indices))
        got: dict[int, np.ndarray] = {}
        for batch in reader.frames_at(wanted, size=size):
            for index, image in zip(batch.indices, batch.images, strict=True):
                got[int(index)] = image
        missing = [i for i in wanted if i not in got]
        if missing:
            raise InputError(f"{clip.video}: frames {missing[:3]} could not be decoded")
        frames = np.stack([got[i] for i in indices])
        top = (frames.shape[1] - data.height) // 2
        left = (frames.shape[2] - data.width) // 2
        return frames[:, top : top + data.height, left : left + data.width]

    return with_fallback(clip.video, work)


class _ClipTooShort(VtError):
    """The clip cannot give the configured frames (no other decoder is tried)."""


# -- encoding --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedClip:
    """Where one clip's tensors are: the video and prompt keys in the cache."""

    clip: TrainingClip
    video_key: str
    prompt_key: str


@dataclass
class PrecomputeReport:
    clips: list[CachedClip]
    skipped: list[tuple[str, str]]  # (clip id, reason)
    video_hits: int = 0
    video_encoded: int = 0
    prompt_hits: int = 0
    prompt_encoded: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clips"] = len(self.clips)
        return data


def _image_noise_sigma(key: str, data: DataConfig) -> float:
    """The first frame's noise level, exp(N(mean, std)), fixed per clip by its key."""
    import torch

    generator = torch.Generator().manual_seed(int(key[:15], 16))
    log_sigma = torch.normal(data.image_noise_mean, data.image_noise_std, (1,), generator=generator)
    return float(torch.exp(log_sigma))


def encode_video(
    vae: Any, frames: np.ndarray, sigma: float, key: str, device: str, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The VAE latent distributions (mean and log-variance, [2C, F', h, w]) of the clip and
    of its noised first frame ([2C, 1, h, w])."""
    import torch

    video = torch.from_numpy(frames).to(device=device, dtype=torch.float32)
    video = (video / 127.5 - 1.0).permute(3, 0, 1, 2).unsqueeze(0)  # [1, C, F, H, W]
    image = video[:, :, :1]
    generator = torch.Generator(device="cpu").manual_seed(int(key[15:30], 16))
    noise = torch.randn(image.shape, generator=generator).to(device)
    noisy_image = image + noise * sigma
    with torch.no_grad():
        video_dist = vae.encode(video.to(dtype)).latent_dist.parameters
        image_dist = vae.encode(noisy_image.to(dtype)).latent_dist.parameters
    return {"video_latent_dist": video_dist[0].float(), "image_latent_dist": image_dist[0].float()}


def encode_prompt(
    tokenizer: Any, text_encoder: Any, prompt: str, max_tokens: int, device: str, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """T5 embeddings of ``prompt`` padded to ``max_tokens`` ([L, D]), as the pipeline's own
    ``_get_t5_prompt_embeds`` makes them."""
    import torch

    ids = tokenizer(
        [prompt],
        padding="max_length",
        max_length=max_tokens,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        embeds = text_encoder(ids.to(device))[0]
    return {"prompt_embeds": embeds[0].to(dtype).float()}


def precompute(
    clips: Sequence[TrainingClip],
    *,
    model_folder: Path,
    data: DataConfig,
    max_tokens: int,
    cache: LatentCache,
    device: str,
    dtype: str,
    seed: int,
    load_encoders: Callable[[bool, bool], Any],
    echo: Callable[[str], None] = lambda _: None,
) -> PrecomputeReport:
    """Encode what the cache lacks. ``load_encoders(need_vae, need_text)`` returns an object
    with ``vae``, ``tokenizer`` and ``text_encoder`` (the ones asked for), loaded only when a
    clip misses; clips that cannot give the configured frames are skipped with a reason."""
    import time

    from vt.models.devices import torch_dtype

    started = time.perf_counter()
    vae_id = component_identity(model_folder / "vae")
    text_id = _digest(
        [
            component_identity(model_folder / "text_encoder"),
            component_identity(model_folder / "tokenizer"),
        ]
    )
    cached = [
        CachedClip(
            c,
            video_key(c, data, vae_id, dtype, seed),
            prompt_key(c.prompt, max_tokens, text_id, dtype),
        )
        for c in clips
    ]
    report = PrecomputeReport([], [])
    need_video = [c for c in cached if cache.get("video", c.video_key, VIDEO_TENSORS) is None]
    need_prompt = {
        c.prompt_key: c.clip.prompt
        for c in cached
        if cache.get("prompt", c.prompt_key, PROMPT_TENSORS) is None
    }
    report.video_hits = len(cached) - len(need_video)
    report.prompt_hits = len({c.prompt_key for c in cached}) - len(need_prompt)
    skipped: set[str] = set()
    if need_video or need_prompt:
        echo(
            f"precomputing {len(need_video)} video latents and {len(need_prompt)} prompt "
            f"embeddings ({report.video_hits} + {report.prompt_hits} cached)"
        )
        encoders = load_encoders(bool(need_video), bool(need_prompt))
        tdtype = torch_dtype(dtype)
        for item in need_video:
            try:
                frames = read_clip(item.clip, data)
            except VtError as exc:
                report.skipped.append((item.clip.id, str(exc).splitlines()[0]))
                skipped.add(item.video_key)
                continue
            sigma = _image_noise_sigma(item.video_key, data)
            cache.put(
                "video",
                item.video_key,
                encode_video(encoders.vae, frames, sigma, item.video_key, device, tdtype),
            )
            report.video_encoded += 1
        for key, prompt in need_prompt.items():
            cache.put(
                "prompt",
                key,
                encode_prompt(
                    encoders.tokenizer, encoders.text_encoder, prompt, max_tokens, device, tdtype
                ),
            )
            report.prompt_encoded += 1
    report.clips = [c for c in cached if c.video_key not in skipped]
    report.seconds = time.perf_counter() - started
    return report
