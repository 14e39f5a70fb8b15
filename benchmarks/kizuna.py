"""vt-kizuna side by side, in one run: quality, flicker, speed, AI overhead, memory.

1. Quality: PSNR/SSIM (``vt.metrics``) against the pristine frames of (a) carphone_pristine
   and (b) a line-art clip this script renders (``vt_kizuna.lineart``: flat colours, dark
   anti-aliased outlines, moving shapes, rendered at full size), both downscaled x2 with
   antialiased bicubic, then upscaled x2 by libswscale bicubic and Lanczos (``vt upscale``'s
   resamplers), OpenCV's, and kizuna's shader path with its stages on and off.
2. Temporal: the core's warping-error ratio (output vs input, flow from the input) and PSNR,
   with and without ``--temporal``, on real clips.
3. Speed: the shader path with every per-frame stage on, 1920x1080 -> 3840x2160, encode
   excluded (the stages' own ``process`` calls on decoded frames), then end to end with the
   default encoder (libx264 medium crf 18), and each stage's share of the time.
4. AI overhead: the kizuna-upscale stage in AI mode (packaged realesr-animevideov3-x2 through
   the registry and vt-upscale's sr-model runner) against the raw model call on the same
   frames.
5. Memory: peak RSS of ``vt kizuna`` child processes (wait4) on a 5 s, a 20 s and a 40 s cut.

    python benchmarks/kizuna.py [--only quality,temporal,speed,ai,memory] [--frames N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import downscale, make_looped_clip, vt_exe

from vt.media.frames import FrameBatch, FrameFormat
from vt.metrics import WarpingErrorMeter, psnr, ssim
from vt.processors.resize import resize_images
from vt.testing import sample_clip
from vt_kizuna import EncoderConfig, OfflineProcessorConfig, OfflineVideoProcessor, PipelineConfig
from vt_kizuna.lineart import render_line_art

SECTIONS = ("quality", "temporal", "speed", "ai", "memory")


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def read_frames(
    path: Path | str, count: int | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            out.append(resize_images(image, size, "area") if size else image)
            if count is not None and len(out) == count:
                break
    return np.stack(out)


def run_stages(stages: list, frames: np.ndarray) -> np.ndarray:
    """Frames through processors one by one, flushed at the end (as the pipeline does);
    returned as uint8."""
    fmt = FrameFormat(frames.shape[2], frames.shape[1], "rgb24")
    for stage in stages:
        fmt = stage.configure(fmt)
    out: list[np.ndarray] = []

    def push(batch: FrameBatch, first: int) -> None:
        current = [batch]
        for stage in stages[first:]:
            current = [r for b in current if (r := stage.process(b)) is not None and len(r)]
        for b in current:
            out.extend(b.images)

    for i, image in enumerate(frames):
        push(FrameBatch(image[None], [i], Fraction(1, 25), [i], "rgb24"), 0)
    for i, stage in enumerate(stages):
        for held in stage.flush():
            push(held, i + 1)
    for stage in stages:
        stage.close()
    images = np.stack(out)
    if images.dtype == np.uint16:
        images = np.clip(images.astype(np.float32) / 257 + 0.5, 0, 255).astype(np.uint8)
    return images


def scores(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    return (
        float(np.mean([psnr(a, b) for a, b in zip(ref, out)])),
        float(np.mean([ssim(a, b) for a, b in zip(ref, out)])),
    )


def kizuna(**options: object) -> list:
    return PipelineConfig(**options).build()


# -- 1. quality ----------------------------------------------------------------------------
def quality(frames: int) -> None:
    print(f"\n## Quality x2 (load {load()})\n")
    sets = {
        "(a) carphone_pristine": read_frames(sample_clip("carphone_pristine"), frames),
        "(b) line art": render_line_art(frames, 384, 256),
    }
    methods = {
        "bicubic (libswscale, vt upscale)": lambda lr, s: resize_images(lr, s, "bicubic"),
        "lanczos (libswscale, vt upscale)": lambda lr, s: resize_images(lr, s, "lanczos"),
        "bicubic (OpenCV)": lambda lr, s: np.stack(
            [cv2.resize(f, s, interpolation=cv2.INTER_CUBIC) for f in lr]
        ),
        "lanczos4 (OpenCV)": lambda lr, s: np.stack(
            [cv2.resize(f, s, interpolation=cv2.INTER_LANCZOS4) for f in lr]
        ),
        "kizuna upscale stage alone": lambda lr, s: run_stages(
            kizuna(enable_normalize=False, enable_reconstruct=False, enable_enhance=False), lr
        ),
        "kizuna --no-enhance (normalize, reconstruct, upscale)": lambda lr, s: run_stages(
            kizuna(enable_enhance=False), lr
        ),
        "kizuna default (+ enhance)": lambda lr, s: run_stages(kizuna(), lr),
        "kizuna default --temporal": lambda lr, s: run_stages(kizuna(enable_temporal=True), lr),
    }
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name, pristine in sets.items():
        small = downscale(pristine)
        size = (pristine.shape[2], pristine.shape[1])
        results[name] = {m: scores(pristine, fn(small, size)) for m, fn in methods.items()}
        print(
            f"{name}: {len(pristine)} frames {size[0]}x{size[1]}, downscaled to "
            f"{small.shape[2]}x{small.shape[1]}"
        )
    names = list(sets)
    print("\n| method | " + " | ".join(f"{n} PSNR | {n} SSIM" for n in names) + " |")
    print("| --- |" + " ---: | ---: |" * len(names))
    for m in methods:
        row = " | ".join(f"{results[n][m][0]:.2f} | {results[n][m][1]:.4f}" for n in names)
        print(f"| {m} | {row} |")
    best = {n: max(results[n][m][0] for m in list(methods)[:2]) for n in names}
    best_ssim = {n: max(results[n][m][1] for m in list(methods)[:2]) for n in names}
    ours = "kizuna --no-enhance (normalize, reconstruct, upscale)"
    a, b = names
    print(
        f"\n- (b) --no-enhance vs the better of bicubic/Lanczos: PSNR "
        f"{results[b][ours][0] - best[b]:+.2f} dB, SSIM {results[b][ours][1] - best_ssim[b]:+.4f}"
    )
    print(
        f"- (a) --no-enhance vs the better of bicubic/Lanczos: PSNR "
        f"{results[a][ours][0] - best[a]:+.2f} dB, SSIM {results[a][ours][1] - best_ssim[a]:+.4f}"
    )


# -- 2. temporal ---------------------------------------------------------------------------
def temporal(frames: int) -> None:
    print(f"\n## Temporal (load {load()})\n")
    print("| clip | chain | temporal | warping-error ratio | E(out) | PSNR vs pristine (dB) |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    clips = {
        "carphone_pristine /2 (real)": (
            read_frames(sample_clip("carphone_pristine"), frames),
            True,
        ),
        "bikes 640x272 (real)": (read_frames(sample_clip("bikes"), min(frames, 40)), False),
    }
    for clip, (frames_, has_reference) in clips.items():
        source = downscale(frames_) if has_reference else frames_
        for chain, options in (("default", {}), ("--no-enhance", {"enable_enhance": False})):
            for on in (False, True):
                out = run_stages(kizuna(enable_temporal=on, **options), source)
                meter = WarpingErrorMeter()
                for a, b in zip(source, out):
                    meter.update(a, b)
                w = meter.result()
                p = f"{scores(frames_, out)[0]:.2f}" if has_reference else "-"
                print(
                    f"| {clip} | {chain} | {'on' if on else 'off'} | {w.ratio:.4f} | "
                    f"{w.e_out:.6f} | {p} |"
                )


# -- 3. speed ------------------------------------------------------------------------------


def speed(work: Path, frames: int) -> None:
    print(
        f"\n## Speed, 1920x1080 -> 3840x2160, shader path, all per-frame stages (load {load()})\n"
    )
    clip = make_looped_clip(work / "bbb1080.mp4", max(2.0, frames / 25 + 0.5), "1920:1080")
    images = read_frames(clip, frames + 1)
    stages = kizuna()
    fmt = FrameFormat(1920, 1080, "rgb24")
    for stage in stages:
        fmt = stage.configure(fmt)

    def through(i: int) -> None:
        batch = FrameBatch(images[i][None], [i], Fraction(1, 25), [i], "rgb24")
        for stage in stages:
            batch = stage.process(batch)

    through(0)  # warm-up: buffers, thread pools
    for stage in stages:
        stage.seconds = 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(1, frames + 1):
        through(i)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    total = sum(s.seconds for s in stages)
    print(
        f"processing only (encode excluded), {frames} frames: **{frames / wall:.2f} fps** "
        f"wall ({wall / frames:.3f} s/frame), CPU {cpu / frames:.3f} s/frame over both cores, "
        f"load after {load()}\n"
    )
    print("| stage | s/frame | share |")
    print("| --- | ---: | ---: |")
    for stage in stages:
        print(f"| {stage.name} | {stage.seconds / frames:.3f} | {stage.seconds / total:.0%} |")
    for stage in stages:
        stage.close()
    out = work / "bbb1080_kizuna.mp4"
    started = time.perf_counter()
    report = OfflineVideoProcessor(
        OfflineProcessorConfig(
            clip, out, PipelineConfig(), EncoderConfig(), overwrite=True, end=frames / 25
        )
    ).process()
    wall = time.perf_counter() - started
    shares = ", ".join(
        f"{k.removeprefix('kizuna-')} {v:.0%}" for k, v in report.stage_share.items()
    )
    print(
        f"\nend to end (decode, stages, libx264 medium crf 18 at 3840x2160, audio copied), "
        f"{report.frames_out} frames: **{report.frames_out / wall:.2f} fps** "
        f"({wall:.1f} s; stage shares {shares}; load after {load()})"
    )


# -- 4. AI overhead ------------------------------------------------------------------------
def ai_overhead(frames: int) -> None:
    print(f"\n## AI mode overhead (load {load()})\n")
    import torch

    from vt_kizuna.upscale import AIUpscale

    images = read_frames(sample_clip("bigbuckbunny"), frames, (320, 180))
    deep = images.astype(np.uint16) * 257
    stage = AIUpscale("realesr-animevideov3-x2", 2, device="cpu")
    stage.configure(FrameFormat(320, 180, "rgb48"))
    model = stage.model
    # frame by frame, the raw call and the stage in turn (the machine is shared: interleaving
    # exposes both to the same load), 3 rounds; medians of wall and CPU time per frame
    timings: dict[str, list[tuple[float, float]]] = {"raw": [], "stage": []}
    for _ in range(3):
        for i, image in enumerate(deep):
            x = torch.from_numpy(image.astype(np.float32) / 65535).permute(2, 0, 1)[None]
            w, c = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                model(x)
            timings["raw"].append((time.perf_counter() - w, time.process_time() - c))
            w, c = time.perf_counter(), time.process_time()
            stage.process(FrameBatch(image[None], [i], Fraction(1, 25), [i], "rgb48"))
            timings["stage"].append((time.perf_counter() - w, time.process_time() - c))
    raw_w, raw_c = (float(np.median([t[k] for t in timings["raw"]])) for k in (0, 1))
    our_w, our_c = (float(np.median([t[k] for t in timings["stage"]])) for k in (0, 1))
    print(
        f"{stage.describe()}, {frames} frames 320x180 -> 640x360 (rgb48 working frames), "
        "3 interleaved rounds, medians\n"
    )
    print("| path | wall s/frame | CPU s/frame | overhead (wall) | overhead (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| raw model call (float tensor ready) | {raw_w:.3f} | {raw_c:.3f} | - | - |")
    print(
        f"| kizuna-upscale AI stage (uint16 in/out, sr-model runner) | {our_w:.3f} | "
        f"{our_c:.3f} | {(our_w / raw_w - 1) * 100:+.1f}% | {(our_c / raw_c - 1) * 100:+.1f}% |"
    )
    print(f"\n(load after {load()})")
    stage.close()


# -- 5. memory -----------------------------------------------------------------------------
# Linux counts a parent's peak RSS into the ru_maxrss of a child it spawns (the exec records
# the old address space's high-water mark), and this script holds 4K frames by now: a small
# helper process spawns the measured command, so its peak is its own.
_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
print(time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
"""


def measured_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of ``cmd`` alone, spawned by a small helper process."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    wall, rss, code = done.stdout.split()
    if int(code):
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{done.stderr}")
    return float(wall), float(rss)


def memory(work: Path) -> None:
    print(f"\n## Peak RSS, 640x360 -> 1280x720 (load {load()})\n")
    clips = {s: make_looped_clip(work / f"bbb360_{s}s.mp4", s, "640:360") for s in (5, 20, 40)}
    print("| clip | options | frames | wall s | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: |")
    runs = [
        ([], {}, (5, 20, 40)),
        (["--temporal"], {}, (5, 20)),
        # glibc's adaptive mmap threshold pinned: freed frame buffers go back to the system
        ([], {"MALLOC_MMAP_THRESHOLD_": "131072"}, (5, 40)),
    ]
    for options, env, lengths in runs:
        for seconds in lengths:
            out = work / f"mem_{seconds}.mp4"
            cmd = [
                vt_exe(),
                "kizuna",
                str(clips[seconds]),
                "-o",
                str(out),
                "--overwrite",
                "-q",
                "--preset",
                "ultrafast",
                *options,
            ]
            wall, rss = measured_child(cmd, env)
            with av.open(str(out)) as c:
                count = c.streams.video[0].frames
            label = " ".join(options) or "default"
            if env:
                label += ", " + " ".join(f"{k}={v}" for k, v in env.items())
            print(f"| {seconds} s | {label} (x264 ultrafast) | {count} | {wall:.1f} | {rss:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--frames", type=int, default=30, help="frames for quality/temporal")
    parser.add_argument("--speed-frames", type=int, default=10)
    parser.add_argument("--ai-frames", type=int, default=6)
    parser.add_argument("--work", type=Path, default=None, help="folder for generated clips")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    print(
        f"vt-kizuna benchmark: {os.cpu_count()} CPUs, load average {load()} at the start "
        "(other jobs share this machine: compare within a run)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if "quality" in wanted:
            quality(args.frames)
        if "temporal" in wanted:
            temporal(args.frames * 2)
        if "speed" in wanted:
            speed(work, args.speed_frames)
        if "ai" in wanted:
            ai_overhead(args.ai_frames)
        if "memory" in wanted:
            memory(work)


if __name__ == "__main__":
    main()
