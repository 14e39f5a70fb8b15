"""vt qwen-preprocess writing to files: peak RSS whatever the frame count, and whole-process
wall time against ``ffmpeg -i clip -f null -``, in one run.

The clip is environment.md's reference: bigbuckbunny looped 12 times and scaled to 1920x1080
(63.4 s, 25 fps, H.264 x264 veryfast CRF 20 with x264's own frame-type decisions, its AAC audio
looped too), made with PyAV once into a cache folder. Every contender is a whole ``vt
qwen-preprocess`` (or ``ffmpeg``) process:
wall time and peak RSS are that child's alone (wait4 rusage). The contenders alternate within
each round; every vt run gets a fresh empty frame cache (the default cache is on, so its write
is counted, and nothing is served from it) and its output file is checked and removed.

Goals (issue 18): peak RSS < 500 MB for 126 and 768 frames written to a file; uint8 ``.npy``
wall <= 1.0x ffmpeg's decode-everything.

Usage: python benchmarks/qwen_memory.py [--quick] [--rounds 3] [--workdir DIR]
Run it under ``flock /work/bench.lock`` on a shared machine.
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
from fractions import Fraction
from pathlib import Path

from _common import ffmpeg, vt_exe

PY = sys.executable
CLIP_LOOPS = 12  # 12 x 132 frames = 1584 frames, 63.4 s

#: the in-memory path before streaming writers (and still what the Python API returns):
#: preprocess() then save() from the whole output tensor
IN_MEMORY_CHILD = """
import sys, json
from vt_qwen_preprocess import preprocess
from vt_qwen_preprocess.outputs import save
kw = json.loads(sys.argv[3])
save(preprocess(sys.argv[1], cache=False, **kw), sys.argv[2])
"""


def make_looped_clip(path: Path, loops: int = CLIP_LOOPS) -> Path:
    """bigbuckbunny looped ``loops`` times at 1920x1080 with its audio, written with PyAV."""
    if path.exists():
        return path
    import av

    from vt.testing import sample_clip

    src = sample_clip("bigbuckbunny")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.stem}.part{path.suffix}")
    with av.open(str(part), "w") as out:
        with av.open(str(src)) as probe:
            vs = out.add_stream("libx264", rate=25, options={"crf": "20", "preset": "veryfast"})
            vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
            oa = out.add_stream_from_template(probe.streams.audio[0])
            loop_seconds = Fraction(probe.streams.video[0].frames, 25)
        pts = 0
        last_audio_dts = -1
        for loop in range(loops):
            with av.open(str(src)) as inp:
                v, a = inp.streams.video[0], inp.streams.audio[0]
                v.thread_type = "AUTO"
                shift = int(loop * loop_seconds / a.time_base)
                for packet in inp.demux(v, a):
                    if packet.stream is a:
                        if packet.size == 0 or packet.pts is None:
                            continue
                        packet.pts += shift
                        packet.dts += shift
                        if packet.dts <= last_audio_dts:  # audio overlapping the next loop
                            continue
                        last_audio_dts = packet.dts
                        packet.stream = oa
                        out.mux(packet)
                        continue
                    for frame in packet.decode():
                        big = frame.reformat(1920, 1080, "yuv420p", interpolation="BICUBIC")
                        big.pts, big.time_base = pts, Fraction(1, 25)
                        # x264 picks the frame types (B-frames, keyframes), as the ffmpeg
                        # CLI lets it: the source's own I/P types would be forced otherwise
                        big.pict_type = av.video.frame.PictureType.NONE
                        pts += 1
                        out.mux(vs.encode(big))
        out.mux(vs.encode(None))
    part.rename(path)
    return path


#: 768 frames at the size of the 126 (1008x560), over the context: more output, same frames
MANY = [
    "--nframes",
    "768",
    "--resized-height",
    "560",
    "--resized-width",
    "1008",
    "--no-context-check",
]


def contenders(clip: Path, work: Path, quick: bool) -> dict[str, tuple[list[str], Path | None]]:
    """name -> (command, output file); ``{cache}`` is replaced by a fresh cache folder,
    ``{warm}`` by one that already holds the 768 frames (served from the disk cache)."""
    vt = [vt_exe(), "qwen-preprocess", str(clip), "--cache-dir", "{cache}"]
    many = MANY
    table: dict[str, tuple[list[str], Path | None]] = {
        "ffmpeg -i clip -f null -": (
            [ffmpeg(), "-v", "error", "-i", str(clip), "-f", "null", "-"],
            None,
        ),
        "vt 126 uint8 .npy": (
            [*vt, "--dtype", "uint8", "-o", str(work / "u8.npy")],
            work / "u8.npy",
        ),
        "vt 126 float32 .npy": ([*vt, "-o", str(work / "f32.npy")], work / "f32.npy"),
        "vt 768 float32 .npy": (
            [*vt, *many, "-o", str(work / "f32_768.npy")],
            work / "f32_768.npy",
        ),
    }
    if not quick:
        table.update(
            {
                "vt 126 float32 .safetensors": (
                    [*vt, "-o", str(work / "f32.safetensors")],
                    work / "f32.safetensors",
                ),
                "vt 768 uint8 .safetensors": (
                    [*vt, *many, "--dtype", "uint8", "-o", str(work / "u8_768.safetensors")],
                    work / "u8_768.safetensors",
                ),
                "vt 768 float32 .npy, from the disk cache": (
                    [*vt[:-1], "{warm}", *many, "-o", str(work / "warm.npy")],
                    work / "warm.npy",
                ),
                "vt 126 uint8 .npy --no-cache": (
                    [*vt[:-2], "--no-cache", "--dtype", "uint8", "-o", str(work / "nc.npy")],
                    work / "nc.npy",
                ),
                "in-memory preprocess()+save(), 126 float32 .npy": (
                    [PY, "-c", IN_MEMORY_CHILD, str(clip), str(work / "mem.npy"), "{}"],
                    work / "mem.npy",
                ),
            }
        )
    return table


def run_child(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; (wall s, CPU s (user + system), peak RSS MB) of that child alone (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def check_output(path: Path) -> str:
    """The written file's frames shape and dtype (read back, not trusted)."""
    if path.suffix == ".npy":
        import numpy as np

        arr = np.load(path, mmap_mode="r")
        return f"{'x'.join(map(str, arr.shape))} {arr.dtype}"
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        frames = f.get_slice("frames")
        return f"{'x'.join(map(str, frames.get_shape()))} {frames.get_dtype()}"


def loadavg() -> str:
    return "/".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one round of ffmpeg, uint8/float32 126 frames, float32 768",
    )
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument(
        "--workdir",
        default=None,
        help="where the clip is cached (default: a vt-bench folder in /tmp)",
    )
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    cache_root = Path(args.workdir or Path(tempfile.gettempdir()) / "vt-bench-cache")
    cache_root.mkdir(parents=True, exist_ok=True)
    clip = make_looped_clip(cache_root / f"bbb_1080p_loop{CLIP_LOOPS}_x264.mp4")
    work = Path(tempfile.mkdtemp(prefix="vt-qwen-mem-"))
    table = contenders(clip, work, args.quick)
    warm = work / "warm-cache"
    if not args.quick:  # fill the cache the "from the disk cache" run reads (not measured)
        fill = work / "fill.npy"
        subprocess.run(
            [
                vt_exe(),
                "qwen-preprocess",
                str(clip),
                "--cache-dir",
                str(warm),
                *MANY,
                "--dtype",
                "uint8",
                "-o",
                str(fill),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        fill.unlink()
    results: dict[str, dict[str, list[float]]] = {
        n: {"wall": [], "cpu": [], "rss": []} for n in table
    }
    outputs: dict[str, str] = {}
    loads: list[str] = [loadavg()]
    try:
        for _ in range(rounds):
            for name, (cmd, output) in table.items():
                cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
                wall, cpu, rss = run_child(
                    [a.replace("{cache}", str(cache)).replace("{warm}", str(warm)) for a in cmd]
                )
                results[name]["wall"].append(wall)
                results[name]["cpu"].append(cpu)
                results[name]["rss"].append(rss)
                if output is not None:
                    outputs[name] = check_output(output)
                    output.unlink()
                shutil.rmtree(cache)
            loads.append(loadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(results["ffmpeg -i clip -f null -"]["wall"])
    print(
        f"clip: {clip} (1920x1080, 25 fps, {CLIP_LOOPS * 132} frames), {rounds} round(s) "
        f"alternating, {os.cpu_count()} CPUs"
    )
    print(f"load average (1/5/15 min) before and after each round: {', '.join(loads)}")
    print("wall and CPU: medians; peak RSS: the largest of the rounds")
    print(
        f"| {'contender':50} | {'wall s':>7} | {'x ffmpeg':>8} | {'CPU s':>6} "
        f"| {'peak RSS MB':>11} | output read back |"
    )
    print(f"|{'-' * 52}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 13}|------------------|")
    for name, entry in results.items():
        wall = statistics.median(entry["wall"])
        rss = max(entry["rss"])
        print(
            f"| {name:50} | {wall:7.2f} | {wall / base:8.2f} "
            f"| {statistics.median(entry['cpu']):6.2f} | {rss:11.0f} "
            f"| {outputs.get(name, '-')} |"
        )
        entry["median_wall"], entry["peak_rss_mb"] = [wall], [rss]  # type: ignore[list-item]
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"results": results, "loads": loads, "outputs": outputs}, indent=2)
        )


if __name__ == "__main__":
    sys.exit(main())
