"""Quality of x2 upscalers on a real clip: PSNR/SSIM against the pristine frames.

carphone_pristine (176x144; ``--clip bigbuckbunny``: 1280x720, every 4th frame) is downscaled
x2 (bicubic, antialiased), then upscaled x2 by each method and compared with the original
frames. animevideov3 runs in fp32 and in bf16 (ncnn and torch); the bf16 outputs are also
compared with the fp32 one (what ``--dtype auto`` changes on CPUs with native bf16).

    python benchmarks/upscale_quality.py [--frames 30] [--clip carphone_pristine] [--x4plus]
"""

from __future__ import annotations

import argparse
import os
import time

import av
import numpy as np
from _common import downscale

from vt.metrics import psnr, ssim
from vt.testing import sample_clip
from vt_upscale import Upscaler


def frames(clip: str, count: int, step: int) -> np.ndarray:
    with av.open(str(sample_clip(clip))) as c:
        out = []
        for i, frame in enumerate(c.decode(video=0)):
            if i % step == 0:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--clip", default="carphone_pristine", help="or bigbuckbunny")
    parser.add_argument(
        "--x4plus",
        action="store_true",
        help="also RealESRGAN_x4plus (x4 then Lanczos to x2; slow on CPU)",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other jobs skew timings)")
    step = 1 if args.clip.startswith("carphone") else 4
    pristine = frames(args.clip, args.frames, step)
    small = downscale(pristine)
    h, w = pristine.shape[1:3]
    methods: list[tuple[str, Upscaler]] = [
        ("lanczos (libswscale)", Upscaler(method="lanczos", scale=2)),
        ("bicubic (libswscale)", Upscaler(method="bicubic", scale=2)),
        ("animevideov3-x2, ncnn", Upscaler("realesr-animevideov3-x2", backend="ncnn", strict=True)),
        (
            "animevideov3-x2, ncnn bf16",
            Upscaler("realesr-animevideov3-x2", backend="ncnn", dtype="bf16", strict=True),
        ),
        (
            "animevideov3-x2, torch (converted)",
            Upscaler("realesr-animevideov3-x2", backend="torch", device="cpu", strict=True),
        ),
        (
            "animevideov3-x2, torch bf16",
            Upscaler(
                "realesr-animevideov3-x2", backend="torch", device="cpu", dtype="bf16", strict=True
            ),
        ),
    ]
    if args.x4plus:
        for dtype in ("fp32", "bf16"):
            upscaler = Upscaler(
                "RealESRGAN_x4plus",
                scale=2,
                backend="torch",
                device="cpu",
                dtype=dtype,
                strict=True,
            )
            methods.append((f"RealESRGAN_x4plus, torch {dtype}, x4 + lanczos", upscaler))
    print(
        f"{args.clip}, {len(pristine)} frames {w}x{h}, downscaled to "
        f"{small.shape[2]}x{small.shape[1]} (bicubic, antialiased), upscaled x2\n"
    )
    print("| method | PSNR (dB) | SSIM (luma) | s/frame |")
    print("| --- | ---: | ---: | ---: |")
    outputs = {}
    for name, upscaler in methods:
        start = time.perf_counter()
        out = np.stack([upscaler.upscale(f) for f in small])
        per_frame = (time.perf_counter() - start) / len(small)
        assert out.shape == pristine.shape, out.shape
        outputs[name] = out
        p = float(np.mean([psnr(a, b, 255) for a, b in zip(pristine, out)]))
        s = float(np.mean([ssim(a, b, 255) for a, b in zip(pristine, out)]))
        print(f"| {name} | {p:.2f} | {s:.4f} | {per_frame:.3f} |")
    a = outputs["animevideov3-x2, ncnn"]
    b = outputs["animevideov3-x2, torch (converted)"]
    agree = float(np.mean([psnr(x, y, 255) for x, y in zip(a, b)]))
    print(f"\nncnn vs torch outputs agree at {agree:.1f} dB PSNR (identical = inf)")
    pairs = [
        ("animevideov3-x2, ncnn", "animevideov3-x2, ncnn bf16"),
        ("animevideov3-x2, ncnn", "animevideov3-x2, torch bf16"),
    ]
    if args.x4plus:
        pairs.append(
            (
                "RealESRGAN_x4plus, torch fp32, x4 + lanczos",
                "RealESRGAN_x4plus, torch bf16, x4 + lanczos",
            )
        )
    for reference, name in pairs:
        x, y = outputs[reference], outputs[name]
        close = float(np.mean([psnr(p, q, 255) for p, q in zip(x, y)]))
        worst = int(np.abs(x.astype(np.int16) - y).max())
        print(f"{name} vs fp32: {close:.1f} dB PSNR, largest difference {worst}/255")
    lanczos = outputs["lanczos (libswscale)"]
    ai_psnr = np.mean([psnr(x, y, 255) for x, y in zip(pristine, b)])
    lanczos_psnr = np.mean([psnr(x, y, 255) for x, y in zip(pristine, lanczos)])
    print(
        f"side by side: animevideov3-x2 (torch) {ai_psnr:.2f} dB vs lanczos "
        f"{lanczos_psnr:.2f} dB, difference {ai_psnr - lanczos_psnr:+.2f} dB"
    )

    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
