"""Quality of x2 upscalers on a real clip: PSNR/SSIM against the pristine frames.

carphone_pristine (176x144) is downscaled x2 (bicubic, antialiased) to 88x72, then upscaled
x2 by each method and compared with the original frames.

    python benchmarks/upscale_quality.py [--frames 30] [--x4plus]
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


def frames(count: int) -> np.ndarray:
    with av.open(str(sample_clip("carphone_pristine"))) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument(
        "--x4plus",
        action="store_true",
        help="also RealESRGAN_x4plus (x4 then Lanczos to x2; slow on CPU)",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other jobs skew timings)")
    pristine = frames(args.frames)
    small = downscale(pristine)
    h, w = pristine.shape[1:3]
    methods: list[tuple[str, Upscaler]] = [
        ("lanczos (libswscale)", Upscaler(method="lanczos", scale=2)),
        ("bicubic (libswscale)", Upscaler(method="bicubic", scale=2)),
        ("animevideov3-x2, ncnn", Upscaler("realesr-animevideov3-x2", backend="ncnn", strict=True)),
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
        methods.append(
            (
                "RealESRGAN_x4plus, torch, x4 + lanczos",
                Upscaler("RealESRGAN_x4plus", scale=2, backend="torch", device="cpu", strict=True),
            )
        )
    print(
        f"carphone_pristine, {len(pristine)} frames {w}x{h}, downscaled to "
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
