"""vt transcode against ffmpeg on the same inputs and encoder settings, in one run.

Prints wall time and peak RSS of each, and the ratio vt/ffmpeg. Goal (issue 3): wall ratio
<= 1.10, vt peak RSS < 400 MB. Usage: python benchmarks/transcode_vs_ffmpeg.py [--seconds 60]
[--preset medium] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import ffmpeg, make_1080p_clip, run_measured, vt_exe

from vt.testing import sample_clip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", default="18")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = {
        "bigbuckbunny 720p 5.3 s": sample_clip("bigbuckbunny"),
        f"1080p {args.seconds} s": make_1080p_clip(
            work / f"bbb_1080p_{args.seconds}s.mp4", args.seconds
        ),
    }
    print(f"{'input':26} {'tool':7} {'wall s':>8} {'peak MB':>8}")
    for label, src in inputs.items():
        results = {}
        for tool in ("ffmpeg", "vt"):
            out = work / f"out_{tool}.mp4"
            if tool == "ffmpeg":
                cmd = [
                    ffmpeg(),
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(src),
                    "-map",
                    "0",
                    "-c:v",
                    "libx264",
                    "-preset",
                    args.preset,
                    "-crf",
                    args.crf,
                    "-c:a",
                    "copy",
                    str(out),
                ]
            else:
                cmd = [
                    vt_exe(),
                    "transcode",
                    str(src),
                    str(out),
                    "--preset",
                    args.preset,
                    "--crf",
                    args.crf,
                    "--overwrite",
                    "--quiet",
                ]
            runs = [run_measured(cmd) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            results[tool] = (wall, rss)
            print(f"{label:26} {tool:7} {wall:8.2f} {rss:8.0f}")
        ratio = results["vt"][0] / results["ffmpeg"][0]
        print(f"{label:26} {'ratio':7} {ratio:8.3f}   (vt / ffmpeg wall time; goal <= 1.10)")


if __name__ == "__main__":
    main()
