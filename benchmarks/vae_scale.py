"""vt-vae-scale, side by side in one run.

Letterbox: ``vt vae-scale`` over a table of the real clips (bigbuckbunny, bikes, carphone and a
portrait one made here) vs ``ffmpeg -vf scale=T:T:force_original_aspect_ratio=decrease:
flags=lanczos,pad=T:T:(ow-iw)/2:(oh-ih)/2`` run per clip, serially; same encoder settings
(libx264, crf 18, preset medium, yuv420p, audio copied). vt with ``--workers 1`` and
``--workers 2`` (two workers on two cores: single-thread jobs, by the batch runner's rule);
the runs alternate (ffmpeg serial, vt 1, vt 2) so load from elsewhere hits all alike. Wall
and CPU seconds (user + system of the process tree, from wait4) for each; vt's fixed cost
(its wall minus its jobs' walls: interpreter, imports, CLI, the batch around the jobs).

Autoencoder: ``vt vae-scale --method autoencoder`` with a tiny random-weight AutoencoderKL on
the CPU vs a plain script doing the same job (PyAV decode, the same VAE's encode/decode on the
same frames in the same batches, the same letterbox, PyAV encode). Peak RSS (the process tree,
wait4) for a clip and the same clip 4x longer, with the same chunk size. Round-trip PSNR/SSIM
against the letterbox output: a plumbing check only (random tiny weights say nothing about
quality).

    flock /work/bench.lock python benchmarks/vae_scale.py [--repeats 5] [--target 224]
        [--skip letterbox|autoencoder] [--quick]

``--quick``: 2 letterbox rounds and 1 autoencoder round (a check in a few minutes); final
figures come from the full run on a quiet machine. The load average is printed before and
after each section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import compile_bytecode, ffmpeg, run_measured

PLAIN = r"""
import sys, numpy as np, torch, av
from diffusers import AutoencoderKL
from vt.processors.resize import resize_images
src, dst, model, target, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), 8
vae = AutoencoderKL.from_pretrained(model).eval()
m = 2 ** (len(vae.config.block_out_channels) - 1)
inp = av.open(src); vs = inp.streams.video[0]
out = av.open(dst, "w"); os_ = out.add_stream("libx264", rate=vs.average_rate)
os_.width = os_.height = target
os_.pix_fmt = "yuv420p"
os_.options = {"crf": "18", "preset": "medium"}
w, h = vs.codec_context.width, vs.codec_context.height
s = target / max(w, h); iw, ih = 2 * round(w * s / 2), 2 * round(h * s / 2)
x0, y0 = (target - iw) // 4 * 2, (target - ih) // 4 * 2
def flush(frames):
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        y = x * 2 - 1
        y = torch.nn.functional.pad(y, (0, (-w) % m, 0, (-h) % m), mode="replicate")
        y = vae.decode(vae.encode(y).latent_dist.mean).sample[:, :, :h, :w]
    img = ((y + 1) / 2).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    inner = resize_images(img, (iw, ih), "lanczos")
    for im in inner:
        canvas = np.zeros((target, target, 3), np.uint8); canvas[y0:y0 + ih, x0:x0 + iw] = im
        for p in os_.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
            out.mux(p)
frames = []
for f in inp.decode(video=0):
    frames.append(f.to_ndarray(format="rgb24"))
    if len(frames) == batch:
        flush(frames); frames = []
if frames:
    flush(frames)
for p in os_.encode():
    out.mux(p)
out.close(); inp.close()
"""


def make_clips(work: Path) -> dict[str, Path]:
    from vt.testing import sample_clip

    clips = {
        "bigbuckbunny": sample_clip("bigbuckbunny"),
        "bikes": sample_clip("bikes"),
        "carphone": sample_clip("carphone_pristine"),
    }
    portrait = work / "portrait.mp4"
    subprocess.run(
        [
            ffmpeg(),
            "-v",
            "error",
            "-y",
            "-i",
            str(clips["bikes"]),
            "-vf",
            "transpose=1",
            "-c:v",
            "libx264",
            "-crf",
            "18",
            "-preset",
            "veryfast",
            str(portrait),
        ],
        check=True,
    )
    clips["portrait (bikes rotated)"] = portrait
    return clips


def vt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vt", "vae-scale", *args]


def table_for(paths: list[Path], where: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = where / "meta.parquet"
    pq.write_table(pa.table({"video_path": [str(p) for p in paths]}), str(path))
    return path


def measured_tree(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``: wall seconds, CPU seconds of its process tree (wait4), its stdout."""
    with tempfile.TemporaryFile() as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
        sink.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, sink.read().decode()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def letterbox(clips: dict[str, Path], work: Path, target: int, repeats: int) -> None:
    import pyarrow.parquet as pq

    meta = table_for(list(clips.values()), work)
    vf = (
        f"scale={target}:{target}:force_original_aspect_ratio=decrease:flags=lanczos,"
        f"pad={target}:{target}:(ow-iw)/2:(oh-ih)/2"
    )
    ff: dict[str, list[float]] = {name: [] for name in clips}
    serial: list[tuple[float, float]] = []  # (wall, cpu) of the four ffmpeg runs together
    vt_runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    jobs: dict[int, list[dict[str, float]]] = {1: [], 2: []}  # per-clip job walls per run
    single: dict[int, set[bool]] = {1: set(), 2: set()}
    print(f"\nload average before the letterbox runs: {load()}")
    for _ in range(repeats):  # alternated: load from elsewhere hits all alike
        wall = cpu = 0.0
        for name, clip in clips.items():
            t, c, _ = measured_tree(
                [
                    ffmpeg(),
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(clip),
                    "-vf",
                    vf,
                    "-c:v",
                    "libx264",
                    "-crf",
                    "18",
                    "-preset",
                    "medium",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "copy",
                    str(work / f"ff-{clip.stem}.mp4"),
                ]
            )
            ff[name].append(t)
            wall, cpu = wall + t, cpu + c
        serial.append((wall, cpu))
        for workers in (1, 2):
            out = work / f"vt{workers}"
            shutil.rmtree(out, ignore_errors=True)
            t, c, text = measured_tree(
                vt_cmd(
                    "--metadata",
                    str(meta),
                    "-o",
                    str(out),
                    "--target-size",
                    str(target),
                    "--workers",
                    str(workers),
                    "--json",
                )
            )
            vt_runs[workers].append((t, c))
            single[workers].add(bool(json.loads(text).get("single_thread")))
            rows = pq.ParquetFile(str(out / "scaled_metadata.parquet")).read().to_pylist()
            jobs[workers].append(
                {name: row["wall_time"] for name, row in zip(clips, rows, strict=True)}
            )
    print(f"load average after: {load()}")

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"\n## Letterbox to {target}x{target} ({repeats} alternated rounds; libx264 crf 18 "
        "medium; median / best)"
    )
    print("| clip | ffmpeg scale+pad, one process (s) | vt job inside a 1-worker batch (s) |")
    print("|---|---|---|")
    for name in clips:
        mine = [j[name] for j in jobs[1]]
        print(
            f"| {name} | {med(ff[name]):.2f} / {min(ff[name]):.2f} | "
            f"{med(mine):.2f} / {min(mine):.2f} |"
        )
    s_wall = [w for w, _ in serial]
    print(
        "\n| run | wall s (median / best) | CPU s (median) | vs ffmpeg serial, wall "
        "(median / best) | vt fixed cost s (wall - jobs, median) | single-thread jobs |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| ffmpeg, the 4 clips serially | {med(s_wall):.2f} / {min(s_wall):.2f} | "
        f"{med([c for _, c in serial]):.2f} | 1 | - | - |"
    )
    for workers in (1, 2):
        walls = [w for w, _ in vt_runs[workers]]
        fixed = [
            w - sum(j.values()) for (w, _), j in zip(vt_runs[workers], jobs[workers], strict=True)
        ]
        note = f"{med(fixed):.2f}" if workers == 1 else "(jobs overlap)"
        print(
            f"| vt --workers {workers} | {med(walls):.2f} / {min(walls):.2f} | "
            f"{med([c for _, c in vt_runs[workers]]):.2f} | "
            f"{med(walls) / med(s_wall):.2f} / {min(walls) / min(s_wall):.2f} | {note} | "
            f"{', '.join(map(str, sorted(single[workers])))} |"
        )
    print("Goals: vt --workers 1 <= 1.2x ffmpeg serial; vt --workers 2 < 1x ffmpeg serial.")


def tiny_vae(path: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    ).save_pretrained(str(path))
    return path


def autoencoder(work: Path, target: int, repeats: int) -> None:
    import av
    import numpy as np

    from vt.metrics import psnr, ssim
    from vt.testing import sample_clip

    model = tiny_vae(work / "tiny-vae")
    clip = sample_clip("carphone_pristine")
    long = work / "carphone-x4.mp4"
    subprocess.run(
        [
            ffmpeg(),
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "3",
            "-i",
            str(clip),
            "-c:v",
            "libx264",
            "-crf",
            "18",
            "-preset",
            "veryfast",
            str(long),
        ],
        check=True,
    )
    plain_py = work / "plain.py"
    plain_py.write_text(PLAIN)
    common = [
        "--method",
        "autoencoder",
        "--autoencoder-model",
        str(model),
        "--device",
        "cpu",
        "--target-size",
        str(target),
        "--batch",
        "8",
        "-q",
    ]
    best_vt = best_plain = float("inf")
    rss: dict[str, float] = {}
    print(f"\nload average before the autoencoder runs: {load()}")
    for _ in range(repeats):
        out = work / "ae"

        shutil.rmtree(out, ignore_errors=True)
        t, _ = run_measured(vt_cmd(str(clip), "-o", str(out), "--chunk-size", "250", *common))
        best_vt = min(best_vt, t)
        t, _ = run_measured(
            [
                sys.executable,
                str(plain_py),
                str(clip),
                str(work / "plain.mp4"),
                str(model),
                str(target),
            ]
        )
        best_plain = min(best_plain, t)
    for name, src in (("120 frames", clip), ("480 frames", long)):
        out = work / f"rss-{len(name)}-{src.stem}"
        shutil.rmtree(out, ignore_errors=True)
        _, rss[name] = run_measured(vt_cmd(str(src), "-o", str(out), "--chunk-size", "32", *common))
    lb = work / "lb"
    shutil.rmtree(lb, ignore_errors=True)
    run_measured(vt_cmd(str(clip), "-o", str(lb), "--target-size", str(target), "-q"))

    def frames(folder: Path) -> list[np.ndarray]:
        (video,) = folder.glob("*.mp4")
        with av.open(str(video)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    a, b = frames(work / "ae"), frames(lb)
    p = float(np.mean([psnr(x, y) for x, y in zip(a, b, strict=True)]))
    s = float(np.mean([ssim(x, y) for x, y in zip(a[:20], b[:20], strict=True)]))
    print(
        f"\n## Autoencoder, tiny random AutoencoderKL on CPU (carphone 176x144, 120 frames, "
        f"best of {repeats})"
    )
    print("| vt vae-scale | plain loop (same VAE, frames, batches, letterbox, encoder) | ratio |")
    print("|---|---|---|")
    print(f"| {best_vt:.2f} s | {best_plain:.2f} s | {best_vt / best_plain:.2f}x |")
    print(
        f"\nPeak RSS, --chunk-size 32: {rss['120 frames']:.0f} MB (120 frames), "
        f"{rss['480 frames']:.0f} MB (480 frames)"
    )
    print(
        f"Round trip vs letterbox (plumbing check only: random weights): PSNR {p:.2f} dB, "
        f"SSIM {s:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=int, default=224)
    parser.add_argument("--skip", choices=["letterbox", "autoencoder"])
    parser.add_argument(
        "--quick", action="store_true", help="2 letterbox rounds, 1 autoencoder round: a check"
    )
    args = parser.parse_args()
    os.environ.setdefault("VT_LOAD_PLUGINS", "vae-scale")
    compile_bytecode("vt", "vt_vae_scale")  # as installed: no module compiled per process
    print(f"load average at start: {load()} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="vt-bench-vae-") as tmp:
        work = Path(tmp)
        if args.skip != "letterbox":
            letterbox(make_clips(work), work, args.target, 2 if args.quick else args.repeats)
        if args.skip != "autoencoder":
            autoencoder(work, args.target, 1 if args.quick else max(2, args.repeats // 2))
    print(f"load average at end: {load()}")
    print(json.dumps({"note": "GPU part skipped: no GPU lent; real weights unreachable"}))


if __name__ == "__main__":
    main()
