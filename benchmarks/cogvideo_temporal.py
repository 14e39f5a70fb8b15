"""The temporal consistency score (``vt.metrics.temporal_consistency``) on a 49-frame 720x480
clip, the size CogVideoX-5B-I2V makes: DIS (vt's default) against Dual TV-L1 (the spec's
reference flow), alternating, ratio printed; scores of the clip and of its shuffled frames.

The clip is bigbuckbunny's first 49 frames (real footage) scaled to 720x480, decoded once and
held in memory so only the metric is timed.

    flock /work/bench.lock python benchmarks/cogvideo_temporal.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=49)
    args = parser.parse_args()

    import av
    import cv2
    import numpy as np

    from vt.metrics import temporal_consistency
    from vt.testing import sample_clip

    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores), "
        f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads"
    )
    frames = []
    with av.open(str(sample_clip("bigbuckbunny"))) as c:
        for frame in c.decode(video=0):
            frames.append(
                cv2.resize(
                    frame.to_ndarray(format="rgb24"), (720, 480), interpolation=cv2.INTER_AREA
                )
            )
            if len(frames) == args.frames:
                break
    print(f"\nbigbuckbunny, {len(frames)} frames at 720x480, flow at 256x171\n")
    print("| run | DIS s | TV-L1 s | TV-L1 / DIS | DIS score | TV-L1 score |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    times: dict[str, list[float]] = {"dis": [], "tvl1": []}
    scores: dict[str, float] = {}
    for r in range(args.repeats):
        for method in ("dis", "tvl1") if r % 2 == 0 else ("tvl1", "dis"):
            started = time.perf_counter()
            scores[method] = temporal_consistency(frames, method=method).score  # type: ignore
            times[method].append(time.perf_counter() - started)
        print(
            f"| {r + 1} | {times['dis'][-1]:.2f} | {times['tvl1'][-1]:.2f} | "
            f"{times['tvl1'][-1] / times['dis'][-1]:.1f} | {scores['dis']:.4f} | "
            f"{scores['tvl1']:.4f} |"
        )
    dis, tvl1 = statistics.median(times["dis"]), statistics.median(times["tvl1"])
    print(f"\nmedians: DIS {dis:.2f} s, TV-L1 {tvl1:.2f} s: DIS is {tvl1 / dis:.1f}x faster")
    order = np.random.default_rng(0).permutation(len(frames))
    shuffled = [frames[i] for i in order]
    print(
        f"shuffled frames: DIS score {temporal_consistency(shuffled).score:.4f}, "
        f"TV-L1 score {temporal_consistency(shuffled, method='tvl1').score:.4f}"
    )
    print(
        f"still (first frame held): DIS score "
        f"{temporal_consistency([frames[0]] * len(frames)).score:.4f}"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
