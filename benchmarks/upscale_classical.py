"""Classical x2 upscaling: ``vt upscale --method lanczos`` vs ``ffmpeg -vf scale=...:lanczos``.

Same input, same encoder settings (libx264, crf 18, preset medium, yuv420p), both run as
command lines (process start included); best of ``--repeats`` interleaved runs each.

    python benchmarks/upscale_classical.py [--clip bikes] [--repeats 2] [--preset medium]
        [--loops N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from vt.metrics import psnr
from vt.testing import sample_clip


def wall(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child, user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def first_frames(path: Path, count: int = 5):
    with av.open(str(path)) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                return out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", default="18")
    parser.add_argument(
        "--loops",
        type=int,
        default=1,
        help="play the clip N times back to back (a longer job amortises each tool's start-up)",
    )
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is not installed")
    vt = str(Path(sys.executable).with_name("vt"))
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other jobs skew timings)")
    clip = sample_clip(args.clip)
    with tempfile.TemporaryDirectory() as tmp:
        if args.loops > 1:  # stream copy: the same frames, N times, no re-encode
            looped = Path(tmp) / f"{args.clip}_x{args.loops}.mp4"
            subprocess.run(
                [
                    ffmpeg,
                    "-v",
                    "error",
                    "-stream_loop",
                    str(args.loops - 1),
                    "-i",
                    str(clip),
                    "-c",
                    "copy",
                    str(looped),
                ],
                check=True,
            )
            clip = looped
        out_vt, out_ff = Path(tmp) / "vt.mp4", Path(tmp) / "ffmpeg.mp4"
        vt_cmd = [
            vt,
            "upscale",
            str(clip),
            "-o",
            str(out_vt),
            "--method",
            "lanczos",
            "--scale",
            "2",
            "--crf",
            args.crf,
            "--preset",
            args.preset,
            "--pix-fmt",
            "yuv420p",
            "--overwrite",
            "--quiet",
        ]
        ff_cmd = [
            ffmpeg,
            "-y",
            "-v",
            "error",
            "-i",
            str(clip),
            "-vf",
            "scale=iw*2:ih*2:flags=lanczos",
            "-c:v",
            "libx264",
            "-crf",
            args.crf,
            "-preset",
            args.preset,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "copy",
            str(out_ff),
        ]
        times = {"vt": (float("inf"), 0.0), "ffmpeg": (float("inf"), 0.0)}
        for _ in range(args.repeats):
            for name, cmd in (("vt", vt_cmd), ("ffmpeg", ff_cmd)):
                times[name] = min(times[name], wall(cmd))
        a, b = first_frames(out_vt), first_frames(out_ff)
        agree = sum(psnr(x, y, 255) for x, y in zip(a, b)) / len(a)
        with av.open(str(out_vt)) as c:
            s = c.streams.video[0]
            size, frames = (s.codec_context.width, s.codec_context.height), s.frames
    print(
        f"{args.clip} (x{args.loops}): x2 lanczos -> {size[0]}x{size[1]}, {frames} frames, "
        f"libx264 crf {args.crf} preset {args.preset}, best of {args.repeats}"
    )
    print("| tool | wall (s) | CPU (s) |\n| --- | ---: | ---: |")
    for name in ("vt", "ffmpeg"):
        print(f"| {name} | {times[name][0]:.2f} | {times[name][1]:.2f} |")
    print(
        f"wall ratio vt / ffmpeg: {times['vt'][0] / times['ffmpeg'][0]:.3f} (goal <= 1.15); "
        f"CPU ratio {times['vt'][1] / times['ffmpeg'][1]:.3f}"
    )
    print(f"outputs agree at {agree:.1f} dB PSNR (first 5 frames)")

    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
