"""vt-vae-scale, side by side in one run.

Letterbox: ``vt vae-scale`` over a table of the real clips (bigbuckbunny, bikes, carphone and a
portrait one made here) vs ``ffmpeg -vf scale=T:T:force_original_aspect_ratio=decrease:
flags=lanczos,pad=T:T:(ow-iw)/2:(oh-ih)/2`` run per clip, serially; same encoder settings
(libx264, crf 18, preset medium, yuv420p, audio copied). vt with 1 and with 2 workers.

Autoencoder: ``vt vae-scale --method autoencoder`` with a tiny random-weight AutoencoderKL on
the CPU vs a plain script doing the same job (PyAV decode, the same VAE's encode/decode on the
same frames in the same batches, the same letterbox, PyAV encode). Peak RSS (the process tree,
wait4) for a clip and the same clip 4x longer, with the same chunk size. Round-trip PSNR/SSIM
against the letterbox output: a plumbing check only (random tiny weights say nothing about
quality).

    python benchmarks/vae_scale.py [--repeats 2] [--target 224]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import ffmpeg, run_measured

PLAIN = r'''
import sys, numpy as np, torch, av
from diffusers import AutoencoderKL
from vt.processors.resize import resize_images
src, dst, model, target, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), 8
vae = AutoencoderKL.from_pretrained(model).eval()
m = 2 ** (len(vae.config.block_out_channels) - 1)
inp = av.open(src); vs = inp.streams.video[0]
out = av.open(dst, "w"); os_ = out.add_stream("libx264", rate=vs.average_rate)
os_.width = os_.height = target; os_.pix_fmt = "yuv420p"; os_.options = {"crf": "18", "preset": "medium"}
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
'''


def make_clips(work: Path) -> dict[str, Path]:
    from vt.testing import sample_clip

    clips = {"bigbuckbunny": sample_clip("bigbuckbunny"), "bikes": sample_clip("bikes"),
             "carphone": sample_clip("carphone_pristine")}
    portrait = work / "portrait.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(clips["bikes"]), "-vf",
                    "transpose=1", "-c:v", "libx264", "-crf", "18", "-preset", "veryfast",
                    str(portrait)], check=True)
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


def letterbox(clips: dict[str, Path], work: Path, target: int, repeats: int) -> None:

    meta = table_for(list(clips.values()), work)
    vf = (f"scale={target}:{target}:force_original_aspect_ratio=decrease:flags=lanczos,"
          f"pad={target}:{target}:(ow-iw)/2:(oh-ih)/2")
    ff: dict[str, float] = {}
    vt1 = vt2 = float("inf")
    per_clip: dict[str, float] = {}
    for _ in range(repeats):  # alternated: load changes hit both
        for name, clip in clips.items():
            t, _ = run_measured([ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-vf", vf,
                                 "-c:v", "libx264", "-crf", "18", "-preset", "medium",
                                 "-pix_fmt", "yuv420p", "-c:a", "copy",
                                 str(work / f"ff-{clip.stem}.mp4")])
            ff[name] = min(ff.get(name, float("inf")), t)
        for workers in (1, 2):
            out = work / f"vt{workers}"
            shutil.rmtree(out, ignore_errors=True)
            t, _ = run_measured(vt_cmd("--metadata", str(meta), "-o", str(out),
                                       "--target-size", str(target), "--workers",
                                       str(workers), "-q"))
            if workers == 1:
                vt1 = min(vt1, t)
                import pyarrow.parquet as pq

                rows = pq.read_table(str(out / "scaled_metadata.parquet")).to_pylist()
                for name, row in zip(clips, rows, strict=True):
                    per_clip[name] = min(per_clip.get(name, float("inf")), row["wall_time"])
            else:
                vt2 = min(vt2, t)
    serial = sum(ff.values())
    print(f"\n## Letterbox to {target}x{target} (best of {repeats}; libx264 crf 18 medium)")
    print("| clip | ffmpeg scale+pad (s, process) | vt job inside the batch (s) |")
    print("|---|---|---|")
    for name in clips:
        print(f"| {name} | {ff[name]:.2f} | {per_clip[name]:.2f} |")
    print(f"| **all 4** | ffmpeg serial {serial:.2f} | vt 1 worker {vt1:.2f} "
          f"({vt1 / serial:.2f}x), vt --workers 2 {vt2:.2f} ({vt2 / serial:.2f}x) |")


def tiny_vae(path: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                  down_block_types=["DownEncoderBlock2D"] * 2,
                  up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
                  norm_num_groups=4, layers_per_block=1).save_pretrained(str(path))
    return path


def autoencoder(work: Path, target: int, repeats: int) -> None:
    import av
    import numpy as np
    from vt.metrics import psnr, ssim
    from vt.testing import sample_clip

    model = tiny_vae(work / "tiny-vae")
    clip = sample_clip("carphone_pristine")
    long = work / "carphone-x4.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-stream_loop", "3", "-i", str(clip),
                    "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", str(long)],
                   check=True)
    plain_py = work / "plain.py"
    plain_py.write_text(PLAIN)
    common = ["--method", "autoencoder", "--autoencoder-model", str(model), "--device", "cpu",
              "--target-size", str(target), "--batch", "8", "-q"]
    best_vt = best_plain = float("inf")
    rss: dict[str, float] = {}
    for _ in range(repeats):
        out = work / "ae"

        shutil.rmtree(out, ignore_errors=True)
        t, _ = run_measured(vt_cmd(str(clip), "-o", str(out), "--chunk-size", "250", *common))
        best_vt = min(best_vt, t)
        t, _ = run_measured([sys.executable, str(plain_py), str(clip),
                             str(work / "plain.mp4"), str(model), str(target)])
        best_plain = min(best_plain, t)
    for name, src in (("120 frames", clip), ("480 frames", long)):
        out = work / f"rss-{len(name)}-{src.stem}"
        shutil.rmtree(out, ignore_errors=True)
        _, rss[name] = run_measured(vt_cmd(str(src), "-o", str(out), "--chunk-size", "32",
                                           *common))
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
    print(f"\n## Autoencoder, tiny random AutoencoderKL on CPU (carphone 176x144, 120 frames, "
          f"best of {repeats})")
    print("| vt vae-scale | plain loop (same VAE, frames, batches, letterbox, encoder) | ratio |")
    print("|---|---|---|")
    print(f"| {best_vt:.2f} s | {best_plain:.2f} s | {best_vt / best_plain:.2f}x |")
    print(f"\nPeak RSS, --chunk-size 32: {rss['120 frames']:.0f} MB (120 frames), "
          f"{rss['480 frames']:.0f} MB (480 frames)")
    print(f"Round trip vs letterbox (plumbing check only: random weights): PSNR {p:.2f} dB, "
          f"SSIM {s:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target", type=int, default=224)
    parser.add_argument("--skip", choices=["letterbox", "autoencoder"])
    args = parser.parse_args()
    os.environ.setdefault("VT_LOAD_PLUGINS", "vae-scale")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="vt-bench-vae-") as tmp:
        work = Path(tmp)
        if args.skip != "letterbox":
            letterbox(make_clips(work), work, args.target, args.repeats)
        if args.skip != "autoencoder":
            autoencoder(work, args.target, args.repeats)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(json.dumps({"note": "GPU part skipped: no GPU lent; real weights unreachable"}))


if __name__ == "__main__":
    main()
