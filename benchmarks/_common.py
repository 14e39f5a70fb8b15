"""Helpers shared by the benchmark scripts: timing child processes and making test clips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB) of that child alone (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if not exe:
        raise SystemExit("ffmpeg binary not found: apt-get install -y ffmpeg")
    return exe


def vt_exe() -> str:
    exe = shutil.which("vt", path=str(Path(sys.executable).parent)) or shutil.which("vt")
    if not exe:
        raise SystemExit("vt is not installed in this environment")
    return exe


def compile_bytecode(*packages: str) -> None:
    """Byte-compile these packages' modules (``__pycache__``), as ``pip install`` does.

    Editable checkouts run from source; with ``PYTHONDONTWRITEBYTECODE=1`` (set on the build
    machine) every vt process would compile its ~125 modules again (about 0.3 s of CPU), a
    cost no installed vt pays. Benchmarks that time vt processes call this first. Only
    packages inside this checkout are compiled (``__pycache__`` is git-ignored)."""
    import compileall
    import importlib.util

    checkout = Path(__file__).resolve().parents[1]
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            if Path(folder).resolve().is_relative_to(checkout):  # only this checkout's own
                compileall.compile_dir(folder, quiet=1)


def make_looped_clip(path: Path, seconds: float, size: str | None = None) -> Path:
    """bigbuckbunny (real footage, with its AAC audio) looped to ``seconds``, scaled to
    ``size`` ("W:H", bicubic) or at its own 1280x720; x264 veryfast crf 20, AAC 128k."""
    if path.exists():
        return path
    from vt.testing import sample_clip

    scale = ["-vf", f"scale={size}:flags=bicubic"] if size else []
    subprocess.run(
        [
            ffmpeg(),
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(sample_clip("bigbuckbunny")),
        ]
        + ["-t", str(seconds), *scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20"]
        + ["-c:a", "aac", "-b:a", "128k", str(path)],
        check=True,
    )
    return path


def make_1080p_clip(path: Path, seconds: int = 60) -> Path:
    """bigbuckbunny looped to ``seconds`` at 1920x1080."""
    return make_looped_clip(path, seconds, "1920:1080")


def downscale(images: np.ndarray) -> np.ndarray:
    """Antialiased bicubic /2 of (N, H, W, 3) uint8 frames (torch, PIL's kernel): the
    low-resolution input the quality benchmarks upscale back."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(
        x, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False
    )
    return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
