"""``vt stylize`` vs a plain script doing the same work, and vt's peak RSS by clip length.

The plain script is what one would write by hand: PyAV decode, the same resize (libswscale
Lanczos), the same ``StableDiffusionImg2ImgPipeline`` calls on the same frames (one frame per
call, prompt encoded once, each frame's generator seeded with the seed: vt's shared noise),
and the same encode (libx265 crf 26 preset medium, the source's time base and PTS). Both run
the same tiny random-weight pipeline on the CPU (built by ``vt.testing.tiny_sd_pipeline``) as
child processes, alternating, with wall time and peak RSS from ``wait4``.

    python benchmarks/stylize.py [--frames 30] [--repeats 2] [--max-res 64] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import vt_exe

PROMPT = "anime style"
STRENGTH, GUIDANCE, SEED = 0.5, 7.5, 0


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``cmd``; (wall s, CPU s = user + system of all its threads, peak RSS MB), from
    wait4. CPU time is the steadier figure on a machine shared with other jobs."""
    import subprocess
    import time

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def plain(model: str, src: str, out: str, frames: int, max_res: int, steps: int) -> None:
    """The hand-written script (run as a child process: ``stylize.py plain …``)."""
    import av
    import diffusers
    import numpy as np
    import torch

    diffusers.utils.logging.disable_progress_bar()
    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    embeds, negative = pipe.encode_prompt(PROMPT, "cpu", 1, True, None)
    with av.open(src) as inp, av.open(out, "w") as dst:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        w, h = vin.codec_context.width, vin.codec_context.height
        scale = max_res / min(w, h) if min(w, h) > max_res else 1.0
        tw, th = (max(8, round(w * scale / 8) * 8), max(8, round(h * scale / 8) * 8))
        vout = dst.add_stream(
            "libx265",
            rate=vin.average_rate,
            options={"crf": "26", "preset": "medium", "x265-params": "log-level=error"},
        )
        vout.width, vout.height, vout.pix_fmt = tw, th, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        for i, frame in enumerate(inp.decode(vin)):
            if i == frames:
                break
            rgb = frame.reformat(
                width=tw, height=th, format="rgb24", interpolation="LANCZOS"
            ).to_ndarray()
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
            y = pipe(
                image=x,
                strength=STRENGTH,
                num_inference_steps=steps,
                guidance_scale=GUIDANCE,
                prompt_embeds=embeds,
                negative_prompt_embeds=negative,
                generator=[torch.Generator("cpu").manual_seed(SEED)],
                output_type="pt",
            ).images
            image = (y[0].clamp(0, 1) * 255).round().permute(1, 2, 0).to(torch.uint8).numpy()
            out_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            out_frame.pts, out_frame.time_base = frame.pts, vin.time_base
            for packet in vout.encode(out_frame):
                dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames for the wall-time runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-res", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP threads for both (1: steadier on a shared machine)",
    )
    args = parser.parse_args()

    import torch

    from vt.testing import sample_clip, tiny_sd_pipeline

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), VT_LOAD_PLUGINS="stylize")
    clip = sample_clip("carphone_pristine")  # 176x144, 120 frames at 29.97 fps
    fps = 30000 / 1001
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other jobs skew timings)")
    print(f"torch {torch.__version__}, OMP_NUM_THREADS={args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        model = str(tiny_sd_pipeline(Path(tmp) / "tiny-sd"))
        out = Path(tmp) / "out.mp4"

        def vt_cmd(frames: int) -> list[str]:
            return [
                vt_exe(),
                "stylize",
                str(clip),
                "-p",
                PROMPT,
                "-m",
                model,
                "-o",
                str(out),
                "-y",
                "--quiet",
                "--steps",
                str(args.steps),
                "--strength",
                str(STRENGTH),
                "--max-res",
                str(args.max_res),
                "--batch-size",
                "1",
                "--device",
                "cpu",
                "--end",
                f"{(frames - 0.5) / fps:.4f}",
            ]

        def plain_cmd(frames: int) -> list[str]:
            return [
                sys.executable,
                __file__,
                "plain",
                model,
                str(clip),
                str(out),
                str(frames),
                str(args.max_res),
                str(args.steps),
            ]

        print(
            f"\ncarphone, first {args.frames} frames, {args.max_res}p, {args.steps} steps x "
            f"strength {STRENGTH}, guidance {GUIDANCE}, libx265 crf 26\n"
        )
        print(
            "| run | vt wall s | plain wall s | vt / plain (wall) | vt CPU s | plain CPU s | "
            "vt / plain (CPU) | vt peak MB | plain peak MB |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        runs: dict[str, list[tuple[float, float, float]]] = {"vt": [], "plain": []}
        for r in range(args.repeats):
            v = measured(vt_cmd(args.frames), env)
            p = measured(plain_cmd(args.frames), env)
            runs["vt"].append(v)
            runs["plain"].append(p)
            print(
                f"| {r + 1} | {v[0]:.2f} | {p[0]:.2f} | {v[0] / p[0]:.3f} | {v[1]:.2f} | "
                f"{p[1]:.2f} | {v[1] / p[1]:.3f} | {v[2]:.0f} | {p[2]:.0f} |"
            )

        def best(name: str, i: int) -> float:
            return min(run[i] for run in runs[name])

        def median(name: str, i: int) -> float:
            values = sorted(run[i] for run in runs[name])
            return values[len(values) // 2]

        print(
            f"\nwall: best vt {best('vt', 0):.2f} s / plain {best('plain', 0):.2f} s = "
            f"{best('vt', 0) / best('plain', 0):.3f}; medians {median('vt', 0):.2f} / "
            f"{median('plain', 0):.2f} = {median('vt', 0) / median('plain', 0):.3f} "
            "(goal <= 1.10)"
        )
        print(
            f"CPU:  best vt {best('vt', 1):.2f} s / plain {best('plain', 1):.2f} s = "
            f"{best('vt', 1) / best('plain', 1):.3f}"
        )

        print("\n| frames | vt wall s | vt CPU s | vt peak MB |")
        print("| ---: | ---: | ---: | ---: |")
        for frames in (args.frames, 120):
            wall, cpu, rss = measured(vt_cmd(frames), env)
            print(f"| {frames} | {wall:.2f} | {cpu:.2f} | {rss:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "plain":
        a = sys.argv[2:]
        plain(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
    else:
        main()
