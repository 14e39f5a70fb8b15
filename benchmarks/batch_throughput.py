"""vt batch: throughput of --workers 1 vs 2, the Ray engine vs local, and a rerun after a kill.

Prints three side-by-side tables in one run, from ``vt batch --json`` child processes:

1. 12 real clips (bigbuckbunny, bikes, carphone x4), ``transcode --preset ultrafast`` with
   codec threads 1 (``--threads 1 -e threads=1``): ``--workers 1`` (vt's default for one
   worker: decode, process and encode overlap in threads), ``--workers 1 --single-thread``
   and ``--workers 2`` (two workers on two cores: single-thread jobs by the runner's rule)
   alternated ``--rounds`` times. Goal: workers 2 >= 1.6x the throughput of workers 1, both
   with one thread per job; the ratio against the default one-worker run is printed too.
2. The same clips repeated ``--ray-repeats`` times (>= 60 s of work on 2 cores):
   ``--engine local`` and ``--engine ray`` (embedded), 2 workers each, alternated. Goal: Ray
   within 15 % of local, its start-up (Ray itself and the actors) reported separately.
3. The 12-clip manifest killed (SIGKILL of ``vt batch``) once 9 jobs are done, then rerun:
   the rerun redoes no finished job (status table, output mtimes) and takes about the
   remaining share of a full run (timing, against full runs just before and after).
4. One 60 s 1080p job on one worker with codec threads 1: realtime factor, CPU seconds and
   output size per hour of video (the figures docs/scaling.md plans with).

Usage: python benchmarks/batch_throughput.py [--rounds 5] [--ray-rounds 3] [--ray-repeats 14]
[--skip-ray] [--skip-hd] [--only-workers] [--quick]

``--quick``: 3 rounds, no Ray, no 1080p (a few minutes); run the full script for final
figures. Run it under ``flock /work/bench.lock`` on a shared machine; it prints the load
average before and after each section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import compile_bytecode, vt_exe

from vt.testing import sample_clip

CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine")
OPTIONS = {"preset": "ultrafast", "threads": 1, "encoder_option": ["threads=1"]}


def manifest(work: Path, name: str, repeats: int) -> Path:
    """12 x ``repeats`` rows; each clip copied into its own folder (equal basenames)."""
    rows = []
    for r in range(repeats):
        for i in range(4):
            for clip in CLIPS:
                folder = work / "clips" / str(i)
                folder.mkdir(parents=True, exist_ok=True)
                src = folder / f"{clip}.mp4"
                if not src.exists():
                    shutil.copyfile(sample_clip(clip), src)
                rows.append(
                    {
                        "command": "transcode",
                        "input": f"clips/{i}/{clip}.mp4",
                        "output": f"out-{name}/{r}/{i}/{clip}.mp4",
                        **OPTIONS,
                    }
                )
    path = work / f"{name}.json"
    path.write_text(json.dumps(rows))
    return path


def clean(work: Path, path: Path) -> None:
    shutil.rmtree(work / f"out-{path.stem}", ignore_errors=True)
    for status in work.glob(f"{path.stem}.status*"):
        status.unlink()


def run(work: Path, path: Path, *args: str) -> dict[str, Any]:
    """One fresh run (outputs and status removed first); the --json summary plus wall."""
    clean(work, path)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    started, before = time.perf_counter(), os.times()
    done = subprocess.run(
        [vt_exe(), "batch", str(path), "--json", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    wall, after = time.perf_counter() - started, os.times()
    if done.returncode:
        raise SystemExit(f"vt batch failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    summary["process_s"] = wall  # includes interpreter start and manifest validation
    # CPU of vt batch and the workers it reaped (Ray's own processes are not its children)
    summary["cpu_s"] = (
        after.children_user - before.children_user + after.children_system - before.children_system
    )
    return summary


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(title: str, runs: dict[str, list[dict[str, Any]]], jobs: int) -> dict[str, float]:
    """Median and best (least disturbed by other load) of the alternated runs."""
    print(f"\n{title}  ({jobs} jobs; {len(next(iter(runs.values())))} alternated runs each)")
    width = max(16, *(len(n) for n in runs))
    print(
        f"{'run':>{width}} {'wall s med':>10} {'best':>7} {'start-up s':>10} "
        f"{'jobs s med':>10} {'best':>7} {'jobs/s (med wall)':>17}"
    )
    out: dict[str, float] = {}
    for name, results in runs.items():
        walls = [r["process_s"] for r in results]
        jobs_s = [r["wall_s"] - r["startup_s"] for r in results]
        startup = statistics.median(r["startup_s"] for r in results)
        out[name], out[f"{name} best"] = statistics.median(walls), min(walls)
        out[f"{name} jobs"], out[f"{name} jobs best"] = statistics.median(jobs_s), min(jobs_s)
        out[f"{name} startup"] = startup
        print(
            f"{name:>{width}} {out[name]:10.2f} {min(walls):7.2f} {startup:10.2f} "
            f"{out[name + ' jobs']:10.2f} {min(jobs_s):7.2f} {jobs / out[name]:17.2f}"
        )
        single = {r.get("single_thread") for r in results}
        print(
            f"{'':>{width}} single-thread jobs: {', '.join(map(str, sorted(single)))}; "
            f"each run, wall s: {', '.join(f'{w:.2f}' for w in walls)}; "
            f"cores busy (CPU s / wall s, median): "
            f"{statistics.median(r['cpu_s'] / r['process_s'] for r in results):.2f}"
        )
    return out


def ratios(label: str, a: str, b: str, med: dict[str, float]) -> str:
    """a/b for the whole run and for the jobs alone, by median and by best run."""
    whole, whole_best = med[a] / med[b], med[a + " best"] / med[b + " best"]
    jobs, jobs_best = (
        med[a + " jobs"] / med[b + " jobs"],
        (med[a + " jobs best"] / med[b + " jobs best"]),
    )
    return (
        f"{label}: whole run x{whole:.2f} (median) x{whole_best:.2f} (best); jobs only "
        f"x{jobs:.2f} (median) x{jobs_best:.2f} (best)"
    )


def job_parallelism(work: Path) -> None:
    """CPU per thread of one job, in this process: how many cores one job can keep busy
    (total CPU / its busiest thread) whatever else runs on the machine. By default vt
    overlaps decode, processing and encode in threads, so one job with codec threads 1 uses
    more than a core (which bounds what a second worker can add on 2 cores); with
    ``--single-thread`` it should keep one core busy."""
    import glob
    import threading

    from vt.batch.executor import Executor
    from vt.batch.jobs import Task

    tick = os.sysconf("SC_CLK_TCK")

    def threads() -> dict[str, float]:
        out = {}
        for stat in glob.glob(f"/proc/{os.getpid()}/task/*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[stat.split("/")[-2]] = (int(fields[11]) + int(fields[12])) / tick
        return out

    executor = Executor()
    executor.ready()
    print("\none job's threads (in-process, transcode ultrafast, codec threads 1)")
    for clip, extra in [(c, e) for e in ((), ("--single-thread",)) for c in CLIPS]:
        out = work / f"threads-{clip}.mp4"
        out.unlink(missing_ok=True)
        seen: dict[str, float] = {}
        base, stop = threads(), threading.Event()

        def sample(seen: dict[str, float], stop: threading.Event) -> None:
            while not stop.is_set():  # a thread's counters vanish when it ends: keep the last
                seen.update(threads())
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, args=(seen, stop))
        sampler.start()
        own = str(sampler.native_id)  # the sampler's own CPU is not the job's
        src = str(sample_clip(clip))
        outcome = executor.run(
            Task(
                row=1,
                index=0,
                key="-",
                input=src,
                output=str(out),
                command="transcode",
                argv=(
                    "transcode",
                    "--preset",
                    "ultrafast",
                    "--threads",
                    "1",
                    "-e",
                    "threads=1",
                    *extra,
                    "--json",
                    "--",
                    src,
                    str(out),
                ),
            )
        )
        stop.set()
        sampler.join()
        assert outcome.ok, outcome.error
        used = sorted(
            (cpu - base.get(tid, 0.0) for tid, cpu in seen.items() if tid != own), reverse=True
        )
        used = [u for u in used if u > 0]
        total = sum(used)
        label = f"{clip} {' '.join(extra)}"
        print(
            f"  {label:34} CPU {total:.2f} s in {len(used)} threads, busiest "
            f"{used[0]:.2f} s: one job can keep {total / used[0]:.2f} cores busy"
        )


def workers_1_vs_2(work: Path, rounds: int) -> None:
    path = manifest(work, "twelve", 1)
    configs = {
        "--workers 1": ("--workers", "1"),
        "--workers 1 --single-thread": ("--workers", "1", "--single-thread"),
        "--workers 2": ("--workers", "2"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    print(f"\nload average before: {load()}")
    for _ in range(rounds):  # alternated, so load from elsewhere hits all alike
        for name, args in configs.items():
            runs[name].append(run(work, path, *args))
    print(f"load average after: {load()}")
    med = table("workers: 12 real clips, transcode ultrafast, codec threads 1", runs, 12)
    print(
        ratios(
            "throughput 2 workers vs 1, one thread per job (goal >= 1.6)",
            "--workers 1 --single-thread",
            "--workers 2",
            med,
        )
    )
    print(
        ratios(
            "throughput 2 workers vs 1 worker at vt's default (overlap threads)",
            "--workers 1",
            "--workers 2",
            med,
        )
    )


def ray_vs_local(work: Path, rounds: int, repeats: int) -> None:
    path = manifest(work, "ray", repeats)
    jobs = 12 * repeats
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray (embedded)": []}
    print(f"\nload average before: {load()}")
    for _ in range(rounds):
        runs["local"].append(run(work, path, "--workers", "2"))
        runs["ray (embedded)"].append(run(work, path, "--engine", "ray", "--workers", "2"))
    print(f"load average after: {load()}")
    med = table("engines: local vs Ray (embedded), 2 workers", runs, jobs)
    print(
        ratios("time Ray / local (goal <= 1.15 excluding start-up)", "ray (embedded)", "local", med)
    )
    print(
        f"Ray start-up (ray.init + actors ready): {med['ray (embedded) startup']:.2f} s; "
        f"local workers: {med['local startup']:.2f} s"
    )


def kill_and_rerun(work: Path) -> None:
    path = manifest(work, "killed", 1)
    full_before = run(work, path, "--workers", "2")["process_s"]
    clean(work, path)
    status = work / "killed.status.json"
    proc = subprocess.Popen(
        [vt_exe(), "batch", str(path), "--workers", "2", "--quiet"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    finished: set[int] = set()
    while proc.poll() is None:
        if status.exists():
            try:
                rows = json.loads(status.read_text())
            except ValueError:
                rows = []
            finished = {r["row"] for r in rows if r["status"] == "done"}
            if len(finished) >= 9:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the workers follow their runner (SIGTERM from the kernel)
    stamps = {
        n: os.stat(work / json.loads(path.read_text())[n - 1]["output"]).st_mtime_ns
        for n in finished
    }
    started = time.perf_counter()
    done = subprocess.run(
        [vt_exe(), "batch", str(path), "--workers", "2", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    rerun_s = time.perf_counter() - started
    summary = json.loads(done.stdout)
    rows = {r["row"]: r for r in json.loads(status.read_text())}
    redone = sorted(
        n
        for n in finished
        if rows[n]["status"] != "skipped"
        or os.stat(work / rows[n]["output"]).st_mtime_ns != stamps[n]
    )
    full_after = run(work, path, "--workers", "2")["process_s"]
    full = (full_before + full_after) / 2
    left = 12 - len(finished)
    print(f"\nkill mid-batch, then rerun (12 clips, --workers 2; load average {load()})")
    print(
        f"  SIGKILL with {len(finished)} jobs done (status table); the rerun: "
        f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed;"
        f" finished jobs redone: {redone or 'none'} (status and output mtimes)"
    )
    print(
        f"  rerun {rerun_s:.2f} s for the {left} jobs left, vs a full run {full:.2f} s "
        f"(before {full_before:.2f}, after {full_after:.2f}): x{rerun_s / full:.2f}; "
        f"start-up {summary['startup_s']:.2f} s of it"
    )
    assert not redone and summary["skipped"] == len(finished), "a finished job was redone"
    assert summary["done"] == left
    assert rerun_s < 0.75 * full, "the rerun took nearly as long as a full run"


def hd_per_core(work: Path) -> None:
    """One 60 s 1080p job, one worker, codec threads 1: the per-core figure for planning."""
    from _common import make_1080p_clip

    from vt.media.info import probe

    src = make_1080p_clip(work / "bbb_1080p_60s.mp4", 60)
    path = work / "hd.json"
    path.write_text(
        json.dumps(
            [{"command": "transcode", "input": src.name, "output": "out-hd/hd.mp4", **OPTIONS}]
        )
    )
    before = os.times()
    summary = run(work, path, "--workers", "1")
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    job_s = summary["wall_s"] - summary["startup_s"]
    duration = probe(str(src)).duration or 60.0
    size = (work / "out-hd/hd.mp4").stat().st_size
    print(
        f"\n1080p per core ({duration:.0f} s of 1920x1080 25 fps, transcode ultrafast crf 18,"
        f" codec threads 1, one worker; load average {load()})"
    )
    print(
        f"  job {job_s:.2f} s = x{duration / job_s:.2f} realtime; CPU {cpu:.2f} s for the "
        f"whole vt batch process tree = {cpu / summary['process_s']:.2f} cores busy; "
        f"x{duration / cpu:.2f} realtime per CPU-second"
    )
    print(
        f"  output {size / 1e6:.1f} MB = {size * 8 / duration / 1e6:.2f} Mbit/s = "
        f"{size / duration * 3600 / 1e9:.2f} GB per hour of video"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ray-rounds", type=int, default=3)
    parser.add_argument("--ray-repeats", type=int, default=14)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-hd", action="store_true")
    parser.add_argument(
        "--only-workers", action="store_true", help="only the threads and --workers sections"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 rounds, no Ray, no 1080p: a check, not final figures",
    )
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.skip_ray, args.skip_hd = min(args.rounds, 3), True, True
    from importlib.metadata import entry_points

    plugins = {ep.module.split(".")[0] for ep in entry_points(group="vt")}
    compile_bytecode("vt", *sorted(plugins))  # as installed: nothing compiled per vt process
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vt-batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; work folder {work}; load average {load()}")
    job_parallelism(work)
    workers_1_vs_2(work, args.rounds)
    if args.only_workers:
        return
    if not args.skip_ray:
        ray_vs_local(work, args.ray_rounds, args.ray_repeats)
    kill_and_rerun(work)
    if not args.skip_hd:
        hd_per_core(work)


if __name__ == "__main__":
    main()
