"""Segmented runs (issue 17): resume after a kill, the cost of segments, two workers.

Prints three side-by-side tables in one run, every figure from ``vt transcode`` child
processes on one 60 s 1920x1080 clip (bigbuckbunny, looped and scaled with PyAV, its AAC
audio looped too, a keyframe every 2 s; cached in the temp folder):

1. Resume: a ``--resume`` run SIGKILLed once 60 % of its frames are in finished segments,
   then resumed; the resumed run's time against uninterrupted runs of the same command (and
   a plain one-pass run), and its output against the uninterrupted one: frame count, every
   PTS, audio packets. Goal: resumed <= 0.5x a full run, outputs equal.
2. Overhead: the same transcode in one pass and in 5 s segments (one worker), alternated
   ``--rounds`` times. Goal: segments + join <= 5 % over one pass.
3. Workers: the transcode with a single-threaded pipeline and codec (``--single-thread``),
   ``--workers 1`` against ``--workers 2``, alternated. Goal: >= 1.7x.

Run it under ``flock /work/bench.lock`` on a machine that is otherwise idle; the load average
is printed with every table.

Usage: python benchmarks/segments.py [--rounds 3] [--preset veryfast] [--seconds 60]
[--skip resume,overhead,workers]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from _common import run_measured, vt_exe

ENV = dict(os.environ, VT_LOAD_PLUGINS="")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_clip(path: Path, seconds: int) -> Path:
    """bigbuckbunny looped to ``seconds`` and scaled to 1920x1080 with PyAV (libswscale,
    bicubic), x264 veryfast crf 20 with a keyframe every 50 frames, AAC audio looped."""
    if path.exists():
        return path
    import av

    from vt.testing import sample_clip

    src = sample_clip("bigbuckbunny")
    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(src)) as inp:
        v_in, a_in = inp.streams.video[0], inp.streams.audio[0]
        fps = v_in.average_rate or Fraction(25)
        frames = [
            f.reformat(width=1920, height=1080, format="yuv420p", interpolation="BICUBIC")
            for f in inp.decode(v_in)
        ]
        inp.seek(0)
        audio = [f for f in inp.decode(a_in)]
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream(
            "libx264",
            rate=fps,
            options={"preset": "veryfast", "crf": "20", "g": "50", "keyint_min": "50"},
        )
        vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
        vs.codec_context.time_base = 1 / fps
        rate = audio[0].sample_rate
        aus = out.add_stream("aac", rate=rate, layout=audio[0].layout.name)
        total = int(seconds * fps)
        for i in range(total):
            frame = frames[i % len(frames)]
            frame.pts, frame.time_base = i, 1 / fps
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        samples, t = 0, 0
        loop = sum(f.samples for f in audio)
        while samples < seconds * rate:
            for f in audio:
                if samples >= seconds * rate:
                    break
                f.pts, f.time_base = samples, Fraction(1, rate)
                out.mux(aus.encode(f))
                samples += f.samples
            t += loop
        out.mux(aus.encode(None))
    tmp.rename(path)
    return path


def facts(path: Path) -> dict[str, Any]:
    import av

    with av.open(str(path)) as c:
        video = c.streams.video[0]
        pts = sorted(Fraction(p.pts) * video.time_base for p in c.demux(video) if p.size)
    with av.open(str(path)) as c:
        audio = hashlib.sha256()
        for p in c.demux(*c.streams.audio):
            if p.size:
                audio.update(repr((p.pts, bytes(p))).encode())
    return {
        "frames": len(pts),
        "pts": hashlib.sha256(repr(pts).encode()).hexdigest(),
        "audio": audio.hexdigest(),
    }


def transcode(clip: Path, out: Path, *args: str) -> float:
    out.unlink(missing_ok=True)
    wall, _ = run_measured([vt_exe(), "transcode", str(clip), str(out), "-q", *args], ENV)
    return wall


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU seconds) of one child process (CPU time moves less with the machine's
    load than wall time does)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def finished_frames(state: Path) -> tuple[int, int]:
    """Frames in finished segments, and in all, from the job file."""
    try:
        job = json.loads((state / "job.json").read_text())
    except (OSError, ValueError):
        return 0, 0
    total = sum(end - first for first, end, _ in job["plan"])
    return sum(r["frames"] for r in job["finished"].values()), total


def resume_table(clip: Path, work: Path, preset: str) -> None:
    args = ["--preset", preset, "--resume"]
    full_out, out = work / "full.mp4", work / "resumed.mp4"
    state = out.with_name(out.name + ".vt-resume")

    def run(target: Path, *extra: str) -> tuple[float, float]:
        target.unlink(missing_ok=True)
        return timed([vt_exe(), "transcode", str(clip), str(target), "-q", *extra])

    plain = run(work / "plain.mp4", "--preset", preset)
    full = [run(full_out, *args)]
    # the interrupted run: killed once 60 % of the frames are in finished segments
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    job = subprocess.Popen(
        [vt_exe(), "transcode", str(clip), str(out), "-q", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while job.poll() is None:
        done, total = finished_frames(state)
        if total and done >= 0.6 * total:
            job.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    job.wait()
    killed_after = time.perf_counter() - started
    if job.returncode != -signal.SIGKILL:
        raise SystemExit("the run finished before 60 % could be reached")
    done, total = finished_frames(state)
    resumed = timed([vt_exe(), "transcode", str(clip), str(out), "-q", *args])
    full.append(run(full_out, *args))  # another full run, after
    same = facts(out) == facts(full_out)
    wall = statistics.mean(w for w, _ in full)
    cpu = statistics.mean(c for _, c in full)
    print(
        f"\n1. resume after kill -9 at {done / total:.0%} of the frames ({done}/{total}), "
        f"preset {preset} (load {load()})"
    )
    print(f"   {'run':<36}{'wall s':>8}{'x full':>8}{'CPU s':>8}{'x full':>8}")
    rows = [
        ("plain one pass", *plain),
        ("full --resume run, before", *full[0]),
        ("full --resume run, after", *full[1]),
    ]
    for name, w, c in rows:
        print(f"   {name:<36}{w:>8.1f}{w / wall:>8.2f}{c:>8.1f}{c / cpu:>8.2f}")
    print(f"   {'killed run, until the kill':<36}{killed_after:>8.1f}{killed_after / wall:>8.2f}")
    w, c = resumed
    print(f"   {'resumed run':<36}{w:>8.1f}{w / wall:>8.2f}{c:>8.1f}{c / cpu:>8.2f}")
    print("   ('x full': against the mean of the two full runs)")
    print(
        f"   resumed output equals the uninterrupted one (frames, every PTS, audio): {same}"
        f"  goal: resumed <= 0.50x full -> {'met' if w / wall <= 0.5 else 'NOT met'} (wall), "
        f"{'met' if c / cpu <= 0.5 else 'NOT met'} (CPU)"
    )


def overhead_table(clip: Path, work: Path, preset: str, rounds: int) -> None:
    single: list[tuple[float, float]] = []
    segmented: list[tuple[float, float]] = []
    for _ in range(rounds):
        for target, extra, into in (
            ("single.mp4", [], single),
            ("segmented.mp4", ["--segment-seconds", "5"], segmented),
        ):
            (work / target).unlink(missing_ok=True)
            into.append(
                timed(
                    [
                        vt_exe(),
                        "transcode",
                        str(clip),
                        str(work / target),
                        "-q",
                        "--preset",
                        preset,
                        *extra,
                    ]
                )
            )
    same = facts(work / "single.mp4") == facts(work / "segmented.mp4")
    print(
        f"\n2. segments + join vs one pass, preset {preset}, {rounds} rounds alternated "
        f"(load {load()})"
    )
    print(f"   {'run':<24}{'wall s (median)':>16}{'CPU s (median)':>16}   wall s of each run")
    for name, runs in (("one pass", single), ("5 s segments + join", segmented)):
        print(
            f"   {name:<24}{statistics.median(w for w, _ in runs):>16.1f}"
            f"{statistics.median(c for _, c in runs):>16.1f}   "
            + "  ".join(f"{w:.1f}" for w, _ in runs)
        )
    wall = statistics.median(w for w, _ in segmented) / statistics.median(w for w, _ in single)
    cpu = statistics.median(c for _, c in segmented) / statistics.median(c for _, c in single)
    print(
        f"   overhead: wall {wall - 1:+.1%}, CPU {cpu - 1:+.1%}  (frames, PTS, audio equal: "
        f"{same})  goal <= +5 % -> {'met' if wall - 1 <= 0.05 else 'NOT met'} (wall), "
        f"{'met' if cpu - 1 <= 0.05 else 'NOT met'} (CPU)"
    )


def workers_table(clip: Path, work: Path, preset: str, rounds: int) -> None:
    args = ["--preset", preset, "--single-thread", "--segment-seconds", "5"]
    one, two = [], []
    for _ in range(rounds):
        one.append(transcode(clip, work / "w1.mp4", *args, "--workers", "1"))
        two.append(transcode(clip, work / "w2.mp4", *args, "--workers", "2"))
    same = (work / "w1.mp4").read_bytes() == (work / "w2.mp4").read_bytes()
    a, b = statistics.median(one), statistics.median(two)
    print(
        f"\n3. --workers 2 vs 1, single-threaded pipeline and codec (--single-thread), "
        f"preset {preset}, {rounds} rounds alternated (load {load()})"
    )
    print(f"   {'run':<34}{'median s':>9}{'runs':>28}")
    print(f"   {'--workers 1':<34}{a:>9.1f}{'  '.join(f'{x:.1f}' for x in one):>28}")
    print(f"   {'--workers 2':<34}{b:>9.1f}{'  '.join(f'{x:.1f}' for x in two):>28}")
    print(
        f"   speed-up {a / b:.2f}x  (files byte-identical: {same})  goal >= 1.70x -> "
        f"{'met' if a / b >= 1.7 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--skip", default="", help="comma list: resume, overhead, workers")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    cache = Path(tempfile.gettempdir()) / "vt-bench-segments"
    cache.mkdir(exist_ok=True)
    clip = make_clip(cache / f"bbb-1080p-{args.seconds}s.mp4", args.seconds)
    print(
        f"clip: {clip} ({clip.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} cores, load {load()}"
    )
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        if "resume" not in skip:
            resume_table(clip, work, args.preset)
        if "overhead" not in skip:
            overhead_table(clip, work, args.preset, args.rounds)
        if "workers" not in skip:
            workers_table(clip, work, args.preset, args.rounds)


if __name__ == "__main__":
    main()
