"""``vt doctor``: what this installation can do, and how to fix what is missing.

Each check is a row: an area, what was found, a status (``ok``, ``missing``, ``warning``,
``error``) and, when not ok, the fix. Optional pieces are imported only to read versions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENCODERS = (
    "libx264",
    "libx265",
    "libvpx-vp9",
    "libsvtav1",
    "ffv1",
    "prores_ks",
    "h264_nvenc",
    "hevc_nvenc",
    "aac",
    "libopus",
)
#: optional packages: what vt uses them for, and the fix when absent
OPTIONAL = {
    "torch": ("AI models (vt-upscale, diffusers)", "pip install torch"),
    "torchcodec": ("the torchcodec decoder", "pip install 'vt[torchcodec]'"),
    "decord": ("the decord decoder", "pip install 'vt[decord]'"),
    "spandrel": (".pth/.safetensors super-resolution models", "pip install vt-upscale"),
    "onnxruntime": (".onnx models", "pip install onnxruntime (or onnxruntime-gpu)"),
    "ncnn": ("ncnn .param/.bin models on the CPU", "pip install ncnn"),
    "diffusers": ("diffusion models (stylize, vae-scale, cogvideo)", "pip install 'vt[diffusers]'"),
    "transformers": ("text encoders of diffusion pipelines", "pip install 'vt[diffusers]'"),
    "ray": ("vt batch --engine ray", "pip install 'vt[ray]'"),
    "xformers": (
        "memory-efficient attention on CUDA (optional; SDPA is the default)",
        "pip install xformers (CUDA only)",
    ),
}


@dataclass
class Check:
    area: str
    name: str
    found: str
    status: str = "ok"  # ok | missing | warning | error
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _python() -> list[Check]:
    ok = sys.version_info >= (3, 11)
    return [
        Check(
            "python",
            "interpreter",
            f"{platform.python_version()} ({sys.executable})",
            "ok" if ok else "error",
            "" if ok else "vt needs Python 3.11 or newer",
        )
    ]


def _pyav() -> list[Check]:
    try:
        import av
    except Exception as exc:  # noqa: BLE001 - a broken install is a finding, not a crash
        return [
            Check("media", "PyAV", f"cannot import: {exc}", "error", "pip install 'av>=18,<19'")
        ]
    ffmpeg = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
    rows = [Check("media", "PyAV", f"{av.__version__} (libavcodec {ffmpeg})")]
    gpu = _cuda()
    for name in ENCODERS:
        try:
            av.Codec(name, "w")
            if name.endswith("_nvenc") and not gpu:
                rows.append(
                    Check(
                        "encoders",
                        name,
                        "in this FFmpeg build, but no NVIDIA GPU here",
                        "warning",
                        "runs on machines with an NVIDIA GPU",
                    )
                )
                continue
            rows.append(Check("encoders", name, "available"))
        except Exception:  # noqa: BLE001 - av raises several kinds for unknown codecs
            hw = name.endswith("_nvenc")
            rows.append(
                Check(
                    "encoders",
                    name,
                    "not in this FFmpeg build",
                    "warning" if hw else "missing",
                    "needs an NVIDIA GPU and driver"
                    if hw
                    else "PyAV's wheel lacks it: pick another --codec",
                )
            )
    binary = shutil.which("ffmpeg")
    rows.append(
        Check(
            "media",
            "ffmpeg binary",
            binary or "not on PATH",
            "ok" if binary else "warning",
            "" if binary else "only benchmarks and torchcodec need it: apt-get install ffmpeg",
        )
    )
    return rows


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _torch() -> list[Check]:
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return [
            Check(
                "gpu",
                "CUDA",
                f"not available (torch {torch.__version__})",
                "warning",
                "AI models run on the CPU (slow); a CUDA build of torch and an NVIDIA "
                "GPU make them fast",
            )
        ]
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return [Check("gpu", "CUDA", f"{names} (torch {torch.__version__}, CUDA {torch.version.cuda})")]


def _optional() -> list[Check]:
    rows = []
    for dist, (use, fix) in OPTIONAL.items():
        version = _version(dist)
        rows.append(
            Check(
                "packages",
                dist,
                f"{version} — {use}" if version else f"absent — {use}",
                "ok" if version else "missing",
                "" if version else fix,
            )
        )
    return rows


def _registries() -> list[Check]:
    from vt.plugins import get_host

    host = get_host()
    rows = []
    for record in host.records.values():
        if record.builtin:
            continue
        status = "error" if record.errors else "ok"
        rows.append(
            Check(
                "plugins",
                record.name,
                f"{record.version or '-'}: "
                + ("; ".join(record.errors) if record.errors else "loaded"),
                status,
                f"vt uninstall {record.name} or reinstall it" if record.errors else "",
            )
        )
    availability = [("decoders", e.name, e.plugin, e.item.available) for e in host.decoders]
    availability += [
        ("model adapters", e.name, e.plugin, e.item.available) for e in host.model_adapters
    ]
    for kind, name, plugin, available in availability:
        reason = available()
        rows.append(
            Check(
                kind,
                name,
                reason or f"available ({plugin})",
                "missing" if reason else "ok",
                reason or "",
            )
        )
    for model in host.models:
        spec = model.item
        ref = spec.locate()
        where = ", ".join(spec.sources) or "its plugin's folder"
        rows.append(
            Check(
                "models",
                model.name,
                f"{ref.path} ({ref.source})" if ref else "not available offline",
                "ok" if ref else "missing",
                ""
                if ref
                else f"downloaded on first use from {spec.sources[-1]}"
                if spec.fetch and spec.sources
                else f"put its weights in {where}",
            )
        )
    return rows


def _caches() -> list[Check]:
    from vt.cachedirs import cache_dir
    from vt.models.hub import hub_cache

    rows = []
    for kind in ("models", "downloads"):
        folder = cache_dir(kind)
        probe = (
            folder
            if folder.exists()
            else next((p for p in folder.parents if p.exists()), Path("/"))
        )
        writable = os.access(probe, os.W_OK)
        size = (
            sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            if folder.is_dir()
            else 0
        )
        rows.append(
            Check(
                "cache",
                kind,
                f"{folder} ({size / 1e6:.1f} MB)",
                "ok" if writable else "error",
                "" if writable else "set VT_CACHE_DIR to a writable folder",
            )
        )
    hub = hub_cache()
    cached = (
        sorted(p.name[len("models--") :].replace("--", "/") for p in hub.glob("models--*"))
        if hub.is_dir()
        else []
    )
    rows.append(
        Check(
            "cache",
            "Hugging Face",
            f"{hub}: {len(cached)} model(s)"
            + (f" ({', '.join(cached[:5])}{'…' if len(cached) > 5 else ''})" if cached else ""),
        )
    )
    return rows


def collect() -> list[Check]:
    rows: list[Check] = []
    for part in (_python, _pyav, _torch, _optional, _registries, _caches):
        try:
            rows += part()
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            rows.append(Check(part.__name__.strip("_"), "check", f"failed: {exc}", "error"))
    return rows


def as_dicts(rows: list[Check]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
