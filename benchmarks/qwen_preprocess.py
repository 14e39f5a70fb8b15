"""vt qwen-preprocess against qwen-vl-utils 0.0.14 and ffmpeg's decode-everything, in one run.

Every contender runs in its own process; wall time and peak RSS are that child's alone (wait4).
"in-process" is the time of the preprocessing call itself (imports excluded), what a data
loader sees. Goal (issue 5): vt <= 1.3x ffmpeg's decode-everything time and <= 1.5 GB peak RSS
for float32 output. Also checks that vt and qwen-vl-utils agree on the clip (--parity).

Usage: python benchmarks/qwen_preprocess.py [--seconds 60] [--repeat 1] [--parity]
       [--workdir DIR] [--only vt-float32,ffmpeg]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _common import ffmpeg, make_1080p_clip, run_measured

PY = sys.executable

VT_CHILD = """
import json, sys, time
t = time.perf_counter()
import torch  # the reference imports torch at import time too
from vt_qwen_preprocess import preprocess
kw = json.loads(sys.argv[3])
t0 = time.perf_counter()
r = preprocess(sys.argv[1], cache=False, **kw)
t1 = time.perf_counter()
json.dump({"in_process": t1 - t0, "import": t0 - t, "shape": list(r.frames.shape),
           "dtype": str(r.frames.dtype), "decoder": r.decoder, "timing": r.timing,
           "indices": r.plan.indices}, open(sys.argv[2], "w"))
"""

VT_PLAN_CHILD = """
import json, sys, time
from vt_qwen_preprocess import plan
t0 = time.perf_counter()
p = plan(sys.argv[1])
json.dump({"in_process": time.perf_counter() - t0, "shape": [p.nframes, 3, p.resized_height,
           p.resized_width], "decoder": p.decoder}, open(sys.argv[2], "w"))
"""

QWEN_CHILD = """
import json, sys, time
from qwen_vl_utils import process_vision_info
msgs = [{"role": "user", "content": [{"type": "video", "video": sys.argv[1], "fps": 2.0}]}]
t0 = time.perf_counter()
_, videos, kw = process_vision_info(msgs, return_video_kwargs=True)
t1 = time.perf_counter()
json.dump({"in_process": t1 - t0, "shape": list(videos[0].shape), "dtype": str(videos[0].dtype),
           "sample_fps": kw["fps"][0]}, open(sys.argv[2], "w"))
"""

PYAV_ALL_CHILD = """
import json, sys, time, av
t0 = time.perf_counter()
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    n = sum(1 for _ in c.decode(s))
json.dump({"in_process": time.perf_counter() - t0, "frames": n}, open(sys.argv[2], "w"))
"""

PARITY_CHILD = """
import json, os, sys
os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "torchcodec")
from qwen_vl_utils import vision_process as vp
from vt_qwen_preprocess import preprocess
(ref, meta), sfps = vp.fetch_video({"video": sys.argv[1], "fps": 2.0},
    return_video_sample_fps=True, return_video_metadata=True)
out = {}
for resize in ("bicubic", "bicubic-float"):
    r = preprocess(sys.argv[1], cache=False, fps=2.0, resize=resize)
    out[resize] = {
        "indices_equal": r.plan.indices == list(meta["frames_indices"]),
        "shape_equal": list(r.frames.shape) == list(ref.shape),
        "sample_fps": [r.plan.sampling.sample_fps, sfps],
        "mean_abs_diff": float((r.frames - ref).abs().mean()),
        "max_abs_diff": float((r.frames - ref).abs().max()),
        "tokens": r.plan.tokens.total_tokens,
    }
    del r
json.dump(out, open(sys.argv[2], "w"))
"""


def contenders(clip: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    env = dict(os.environ)
    c = str(clip)

    here = str(Path(__file__).resolve().parent)

    def vt(**kw: object) -> list[str]:
        return [PY, "-c", VT_CHILD, c, "{out}", json.dumps(kw), here]

    return {
        "ffmpeg decode-all": ([ffmpeg(), "-v", "error", "-i", c, "-an", "-f", "null", "-"], env),
        "pyav decode-all": ([PY, "-c", PYAV_ALL_CHILD, c, "{out}"], env),
        "qwen-vl-utils torchcodec": (
            [PY, "-c", QWEN_CHILD, c, "{out}"],
            {**env, "FORCE_QWENVL_VIDEO_READER": "torchcodec"},
        ),
        "qwen-vl-utils decord": (
            [PY, "-c", QWEN_CHILD, c, "{out}"],
            {**env, "FORCE_QWENVL_VIDEO_READER": "decord"},
        ),
        "vt float32 (default chain)": (vt(fps=2.0), env),
        "vt uint8 (default chain)": (vt(fps=2.0, dtype="uint8"), env),
        "vt float32 torchcodec": (vt(fps=2.0, decoders=["torchcodec"]), env),
        "vt uint8 torchcodec": (vt(fps=2.0, dtype="uint8", decoders=["torchcodec"]), env),
        "vt --plan": ([PY, "-c", VT_PLAN_CHILD, c, "{out}"], env),
        "python+torch import": ([PY, "-c", "import torch, vt_qwen_preprocess.pipeline"], env),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--only", default="", help="comma list of contender names (prefixes)")
    parser.add_argument("--parity", action="store_true", help="also compare outputs")
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vt-qwen-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    clip = make_1080p_clip(work / f"bbb_1080p_{args.seconds}s.mp4", args.seconds)
    table = contenders(clip)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        table = {k: v for k, v in table.items() if any(k.startswith(w) for w in wanted)}
    results: dict[str, dict[str, object]] = {}
    for _ in range(args.repeat):  # rounds interleave the contenders (fairer under load)
        for name, (cmd, env) in table.items():
            out = work / "child.json"
            out.unlink(missing_ok=True)
            wall, rss = run_measured([a.replace("{out}", str(out)) for a in cmd], env=env)
            info = json.loads(out.read_text()) if out.exists() else {}
            entry = results.setdefault(name, {"wall": [], "rss": [], "in_process": []})
            entry["wall"].append(wall)
            entry["rss"].append(rss)
            if "in_process" in info:
                entry["in_process"].append(info["in_process"])
            entry["info"] = {k: v for k, v in info.items() if k != "indices"}
    base = (
        statistics.median(results["ffmpeg decode-all"]["wall"])
        if "ffmpeg decode-all" in results
        else None
    )
    print(f"clip: {clip} ({args.seconds} s 1920x1080), repeat {args.repeat}, {os.cpu_count()} CPUs")
    print(
        f"| {'contender':28} | {'wall s':>7} | {'in-process s':>12} | {'x ffmpeg':>8} "
        f"| {'peak RSS MB':>11} | output |"
    )
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 14}|{'-' * 10}|{'-' * 13}|--------|")
    for name, entry in results.items():
        wall = statistics.median(entry["wall"])
        rss = max(entry["rss"])
        inproc = statistics.median(entry["in_process"]) if entry["in_process"] else None
        ratio = f"{wall / base:.2f}" if base else "-"
        info = entry.get("info", {})
        shape = "x".join(map(str, info.get("shape", []))) or "-"
        dtype = str(info.get("dtype", "")).replace("torch.", "")
        print(
            f"| {name:28} | {wall:7.2f} | {inproc if inproc is not None else float('nan'):12.2f}"
            f" | {ratio:>8} | {rss:11.0f} | {shape} {dtype} |"
        )
        entry["median_wall"], entry["peak_rss_mb"] = wall, rss
    if args.parity:
        out = work / "parity.json"
        run_measured([PY, "-c", PARITY_CHILD, str(clip), str(out)])
        parity = json.loads(out.read_text())
        results["parity"] = parity
        print("parity with qwen-vl-utils (fps=2, qwen2.5-vl):", json.dumps(parity, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
