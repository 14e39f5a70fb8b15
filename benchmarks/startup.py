"""Start-up costs and the short-job ratio against ffmpeg, in one run (issue 10).

1. ``vt --version``, ``vt --help`` (command index warm) and a one-frame ``vt transcode``,
   each beside ``python -c pass`` (the interpreter's own start) and ``ffmpeg -version``.
   Goals: ``vt --version`` <= 0.15 s; a video command's start-up <= 0.15 s beyond Python's
   (one-frame transcode minus python -c pass, minus what ffmpeg needs for the same frame).
2. ``vt transcode`` of a 10 s 720p clip with audio (libx264 veryfast crf 23, audio copied) vs
   ``ffmpeg`` doing the same: median of N alternating runs. Goal <= 1.10x.

Usage: python benchmarks/startup.py [--runs 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import compile_bytecode, ffmpeg, make_looped_clip, run_measured, vt_exe


def median_alternating(
    commands: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, float]:
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():  # alternate, so load drifts hit both alike
            walls[name].append(run_measured(cmd, env)[0])
    return {name: statistics.median(w) for name, w in walls.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vt-bench-start-"))
    work.mkdir(parents=True, exist_ok=True)
    vt = vt_exe()
    env = dict(os.environ, VT_CACHE_DIR=str(work / "cache"))
    # as installed: no module compiled per process (the build machine writes no bytecode)
    compile_bytecode(
        "vt",
        "vt_upscale",
        "vt_qwen_preprocess",
        "vt_kizuna",
        "vt_stylize",
        "vt_vae_scale",
        "vt_cogvideo",
    )
    from vt.testing import make_video

    one = make_video(work / "one.mp4", frames=1, width=1280, height=720)
    subprocess.run([vt, "--help"], env=env, capture_output=True, check=True)  # build the index
    starts = median_alternating(
        {
            "python -c pass": [sys.executable, "-c", "pass"],
            "ffmpeg -version": [ffmpeg(), "-version"],
            "vt --version": [vt, "--version"],
            "vt --help": [vt, "--help"],
            "ffmpeg, 1 frame": [
                ffmpeg(),
                "-v",
                "error",
                "-y",
                "-i",
                str(one),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                str(work / "one_ff.mkv"),
            ],
            "vt transcode, 1 frame": [
                vt,
                "transcode",
                str(one),
                str(work / "one_vt.mkv"),
                "--preset",
                "veryfast",
                "-y",
                "-q",
            ],
        },
        args.runs,
        env,
    )
    print(f"start-up, median of {args.runs} alternating runs")
    for name, wall in starts.items():
        print(f"  {name:24} {wall:7.3f} s")
    beyond = starts["vt transcode, 1 frame"] - starts["ffmpeg, 1 frame"]
    print(f"  vt --version: {starts['vt --version']:.3f} s (goal <= 0.15)")
    print(
        f"  video command start-up beyond Python: {beyond - starts['python -c pass']:.3f} s "
        "(1-frame vt transcode - 1-frame ffmpeg - python -c pass; goal <= 0.15)"
    )

    clip = make_looped_clip(work / "bbb_720p_10s.mp4", 10)
    jobs = median_alternating(
        {
            "ffmpeg": [
                ffmpeg(),
                "-v",
                "error",
                "-y",
                "-i",
                str(clip),
                "-map",
                "0",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-c:a",
                "copy",
                str(work / "ff.mp4"),
            ],
            "vt": [
                vt,
                "transcode",
                str(clip),
                str(work / "vt.mp4"),
                "--preset",
                "veryfast",
                "--crf",
                "23",
                "-y",
                "-q",
            ],
        },
        args.runs,
        env,
    )
    print(f"10 s 720p transcode (veryfast crf 23, audio copied), median of {args.runs}")
    print(
        f"  ffmpeg {jobs['ffmpeg']:.3f} s   vt {jobs['vt']:.3f} s   "
        f"ratio {jobs['vt'] / jobs['ffmpeg']:.3f} (goal <= 1.10)"
    )
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.2f} (2 cores)")


if __name__ == "__main__":
    main()
