"""vt-cogvideo's overhead around the raw diffusers call, and peak RSS.

The raw side is what one would write by hand to meet the spec's phase 3 ("generates 49-frame
clips, logs latency, VRAM, optical-flow temporal score"): ``CogVideoXImageToVideoPipeline``
loaded with ``from_pretrained``, the image resized to the model's size with PIL, one pipeline
call with the same steps, guidance and seed under ``torch.inference_mode``, the frames encoded
with PyAV (libx264, crf 18, yuv420p), and the temporal score computed with OpenCV's DIS flow
by the same definition (frames at 256 px wide, exp(-Var(mean magnitude))) in a plain loop.
The vt side is ``Generator.generate`` doing the same plus what vt adds: request validation,
the image fit, the core's ``write_video`` (atomic, tagged), the temporal consistency score and
the JSON sidecar. Both run the tiny random-weight CogVideoX I2V pipeline (``vt_cogvideo.tiny``)
on the CPU in this process, each with its own loaded pipeline, alternating, the pipelines
warmed up first; the ratio of medians is printed (goal: vt <= 1.05 x raw). Peak RSS of one
whole generation (imports and load included) is measured in child processes with ``wait4``.

    flock /work/bench.lock python benchmarks/cogvideo_overhead.py [--steps 50] [--repeats 7]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "a spokesperson at a podium, cameras flashing"
GUIDANCE, SEED = 6.0, 0


SCORE_SECONDS: list[float] = []


def raw_score(frames: object) -> float:
    """The spec's temporal score, hand-written: DIS flow at 256 px wide."""
    import cv2
    import numpy as np

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = []
    for frame in frames:  # type: ignore[attr-defined]
        h, w = frame.shape[:2]
        small = cv2.resize(
            frame,
            (256, max(1, round(h * 256 / w))),
            interpolation=cv2.INTER_AREA if w > 256 else cv2.INTER_LINEAR,
        )
        grey.append(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    magnitudes = [
        float(np.mean(np.linalg.norm(dis.calc(a, b, None), axis=2)))
        for a, b in itertools.pairwise(grey)
    ]
    return float(np.exp(-np.var(magnitudes)))


def raw_generate(pipe: object, image_path: str, out: str, steps: int) -> None:
    """The hand-written generation: resize, pipeline call, PyAV encode."""
    import av
    import numpy as np
    import torch
    from PIL import Image

    config = pipe.transformer.config  # type: ignore[attr-defined]
    height = config.sample_height * pipe.vae_scale_factor_spatial  # type: ignore[attr-defined]
    width = config.sample_width * pipe.vae_scale_factor_spatial  # type: ignore[attr-defined]
    image = Image.open(image_path).convert("RGB").resize((width, height), Image.LANCZOS)
    with torch.inference_mode():  # as vt does: the comparison is of what vt adds
        video = pipe(
            image=image,
            prompt=PROMPT,
            num_frames=config.sample_frames,
            height=height,
            width=width,
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            generator=torch.Generator("cpu").manual_seed(SEED),
            output_type="np",
            max_sequence_length=config.max_text_seq_length,
        ).frames[0]
    frames = (np.clip(video, 0, 1) * 255 + 0.5).astype(np.uint8)
    started = time.perf_counter()
    raw_score(frames)
    SCORE_SECONDS.append(time.perf_counter() - started)
    with av.open(out, "w") as dst:
        stream = dst.add_stream("libx264", rate=8, options={"crf": "18", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


def vt_request(image_path: str, steps: int) -> object:
    from vt_cogvideo.generation import GenerationRequest

    return GenerationRequest(
        image=image_path,
        prompt=PROMPT,
        num_inference_steps=steps,
        guidance_scale=GUIDANCE,
        seed=SEED,
    )


def child(side: str, model: str, image: str, out: str, steps: int) -> None:
    """One whole generation in a fresh process (for peak RSS)."""
    if side == "raw":
        import diffusers

        pipe = diffusers.CogVideoXImageToVideoPipeline.from_pretrained(model)
        pipe.set_progress_bar_config(disable=True)
        raw_generate(pipe, image, out, steps)
    else:
        from vt_cogvideo.generation import Generator

        Generator(model, "cpu").generate(
            vt_request(image, steps),
            out,  # type: ignore[arg-type]
            overwrite=True,
        )


def peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (vt's default)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()

    import diffusers
    import torch

    from vt.models.diffusers_adapter import quiet_libraries
    from vt_cogvideo.generation import Generator
    from vt_cogvideo.tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, save_tiny_i2v

    torch.set_num_threads(args.threads)
    quiet_libraries()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"{args.threads} torch threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = str(save_tiny_i2v(folder / "tiny"))
        image = str(folder / "image.png")
        import av

        from vt.testing import sample_clip

        with av.open(str(sample_clip("bikes"))) as c:  # a real frame, 640x272, fitted
            next(c.decode(video=0)).to_image().save(image)
        pipe = diffusers.CogVideoXImageToVideoPipeline.from_pretrained(model)
        pipe.set_progress_bar_config(disable=True)
        gen = Generator(model, "cpu")
        request = vt_request(image, args.steps)
        raw_out, vt_out = str(folder / "raw.mp4"), folder / "vt.mp4"
        raw_generate(pipe, image, raw_out, args.steps)  # warm-up: first calls allocate
        gen.generate(request, vt_out, overwrite=True)  # type: ignore[arg-type]
        print(
            f"\ntiny CogVideoX I2V: {TINY_WIDTH}x{TINY_HEIGHT}, {TINY_FRAMES} frames, "
            f"{args.steps} steps, guidance {GUIDANCE}; encode included on both sides\n"
        )
        print(
            "| run | raw wall s | vt wall s | vt / raw (wall) | raw CPU s | vt CPU s | "
            "vt / raw (CPU) | vt: generate s | encode s | score s |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        walls: dict[str, list[float]] = {"raw": [], "vt": []}
        cpus: dict[str, list[float]] = {"raw": [], "vt": []}
        for r in range(args.repeats):
            order = ("raw", "vt") if r % 2 == 0 else ("vt", "raw")
            for side in order:
                started, cpu = time.perf_counter(), time.process_time()
                if side == "raw":
                    raw_generate(pipe, image, raw_out, args.steps)
                else:
                    result = gen.generate(request, vt_out, overwrite=True)  # type: ignore
                walls[side].append(time.perf_counter() - started)
                cpus[side].append(time.process_time() - cpu)
            t = result.timings
            print(
                f"| {r + 1} | {walls['raw'][-1]:.3f} | {walls['vt'][-1]:.3f} | "
                f"{walls['vt'][-1] / walls['raw'][-1]:.3f} | {cpus['raw'][-1]:.3f} | "
                f"{cpus['vt'][-1]:.3f} | {cpus['vt'][-1] / cpus['raw'][-1]:.3f} | "
                f"{t['generate_s']:.3f} | {t['encode_s']:.3f} | {t['score_s']:.3f} |"
            )
        raw_scores = statistics.median(SCORE_SECONDS[1:])
        print(f"\nthe temporal score alone (raw side): median {raw_scores:.3f} s of wall time")
        for name, table in (("wall", walls), ("CPU", cpus)):
            raw_m, vt_m = statistics.median(table["raw"]), statistics.median(table["vt"])
            print(
                f"{name}: medians vt {vt_m:.3f} s / raw {raw_m:.3f} s = {vt_m / raw_m:.3f} "
                f"(goal <= 1.05); best {min(table['vt']):.3f} / {min(table['raw']):.3f} = "
                f"{min(table['vt']) / min(table['raw']):.3f}"
            )

        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        print("\n| one generation in a fresh process | wall s | peak RSS MB |")
        print("| --- | ---: | ---: |")
        for side in ("raw", "vt", "raw", "vt"):
            wall, rss = peak_rss(
                [
                    sys.executable,
                    __file__,
                    "child",
                    side,
                    model,
                    image,
                    str(folder / f"{side}-child.mp4"),
                    str(args.steps),
                ],
                env,
            )
            print(f"| {side} | {wall:.2f} | {rss:.0f} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
