"""``vt compare --report``: one self-contained HTML page to look at, not just numbers.

Charts (matplotlib, inline SVG) of PSNR, SSIM and the warping-error ratio per frame with the
worst frames marked; at the worst frames and at ``--at``, the reference and every candidate
side by side, a slider per candidate, and zoomed crops where they differ most; the summary
table with the figures ``--json`` prints, which the page also carries verbatim. The metrics
come from ``vt.compare`` (one streaming pass per candidate); the page reads back only the few
frames it shows, so memory stays bounded whatever the clip's length.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vt.errors import UsageError
from vt.media.decode import open_video

WORST = 3  # frames shown besides --at
CROP = 64  # source pixels of a zoomed crop (shown x4)


@dataclass
class ShownFrame:
    index: int
    why: str  # "lowest PSNR" / "at 1.50 s"
    time: float | None
    images: list[np.ndarray]  # reference first, then each candidate (at the reference's size)


def _require_matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display, no GUI toolkit
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--report needs matplotlib: pip install 'vt[report]'") from None
    return plt


def pick_frames(results: list[dict[str, Any]], at: float | None) -> list[tuple[int, str]]:
    """The worst frames (lowest PSNR over the candidates) and the frame shown at ``at``."""
    psnr = _matrix(results, "psnr_per_frame", math.inf)
    n = psnr.shape[1]
    if n == 0:
        raise UsageError("no frame pairs to compare: nothing to report")
    # the lowest frames, at least 1/20 of the clip apart: three views of one dip say little
    gap = max(1, n // 20)
    worst: list[int] = []
    for i in np.argsort(psnr.min(axis=0), kind="stable"):
        if all(abs(int(i) - j) >= gap for j in worst):
            worst.append(int(i))
        if len(worst) == WORST:
            break
    picks = [(i, "lowest PSNR") for i in sorted(worst)]
    if at is not None:
        times = results[0]["quality"].get("time_per_frame") or []
        known = [(abs(t - at), i) for i, t in enumerate(times) if t is not None]
        if not known:
            raise UsageError("--at needs frame times, and the reference has none")
        index = min(known)[1]
        picks = [p for p in picks if p[0] != index] + [(index, f"at {at:g} s")]
    return picks


def _matrix(results: list[dict[str, Any]], key: str, none_as: float) -> np.ndarray:
    rows = [[none_as if v is None else v for v in r["quality"].get(key, [])] for r in results]
    width = min(len(row) for row in rows)
    return np.array([row[:width] for row in rows], dtype=np.float64).reshape(len(rows), width)


def read_frames(
    reference: str | Path, candidates: list[str | Path], picks: list[tuple[int, str]]
) -> list[ShownFrame]:
    """The picked frames of every input (candidates resized to the reference for display)."""
    import cv2

    indices = sorted({i for i, _ in picks})
    columns: list[dict[int, tuple[np.ndarray, float | None]]] = []
    for path in [reference, *candidates]:
        got: dict[int, tuple[np.ndarray, float | None]] = {}
        with open_video(path) as reader:
            for batch in reader.frames_at(indices):
                for k, index in enumerate(batch.indices):
                    got[index] = (batch.images[k], batch.times[k])
        columns.append(got)
    shown = []
    for index, why in picks:
        ref, time = columns[0][index]
        h, w = ref.shape[:2]
        images = [_to8(ref)]
        for col in columns[1:]:
            image = _to8(col[index][0])
            if image.shape[:2] != (h, w):
                image = cv2.resize(
                    image,
                    (w, h),
                    interpolation=cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LANCZOS4,
                )
            images.append(image)
        shown.append(ShownFrame(index, why, time, images))
    return shown


def _to8(image: np.ndarray) -> np.ndarray:
    return (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image


def _png(image: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit RGB image
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def largest_difference(ref: np.ndarray, other: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left (x, y) of the ``size`` square where ``other`` differs most from ``ref``."""
    import cv2

    diff = np.abs(ref.astype(np.int16) - other.astype(np.int16)).sum(axis=2).astype(np.float32)
    h, w = diff.shape
    size = min(size, h, w)
    mean = cv2.boxFilter(diff, -1, (size, size), normalize=True, borderType=cv2.BORDER_REPLICATE)
    half = size // 2
    inner = mean[half : h - (size - half) + 1, half : w - (size - half) + 1]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(x), int(y)


def _chart(results: list[dict[str, Any]], names: list[str], picks: list[tuple[int, str]]) -> str:
    plt = _require_matplotlib()
    series = [
        ("PSNR (dB)", _matrix(results, "psnr_per_frame", math.nan)),
        ("SSIM", _matrix(results, "ssim_per_frame", math.nan)),
    ]
    ratios = [(r.get("warping_error") or {}).get("ratio_per_step") for r in results]
    if all(ratios):
        width = min(len(r) for r in ratios)  # type: ignore[arg-type]
        series.append(
            (
                "warping-error ratio (out/in)",
                np.array(
                    [[math.nan if v is None else v for v in r[:width]] for r in ratios],  # type: ignore[index]
                    dtype=np.float64,
                ),
            )
        )
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.6 * len(series)), sharex=True)
    worst = [i for i, why in picks if why == "lowest PSNR"]
    for ax, (label, data) in zip(np.atleast_1d(axes), series):
        for row, name in zip(data, names):
            ax.plot(
                np.arange(len(row)) + (0.5 if label.startswith("warping") else 0),
                row,
                linewidth=1.2,
                label=name,
            )
        for i in worst:
            ax.axvline(i, color="crimson", linestyle=":", linewidth=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(loc="lower right", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("frame (dotted: the worst frames, shown below)")
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prologue: the SVG sits inside the page


def _fmt(value: Any, spec: str = ".3f", unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:{spec}}{unit}"
    return f"{value}{unit}"


def _summary(results: list[dict[str, Any]], names: list[str]) -> str:
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [  # label, figure of a result
        (
            "frames (reference / candidate)",
            lambda r: (
                f"{r['frames']['a']} / {r['frames']['b']}"
                + ("" if r["frames"]["equal"] else " (different)")
            ),
        ),
        ("size", lambda r: "{}x{}".format(*r["size"]["b"])),
        ("duration (s)", lambda r: f"{_fmt(r['duration']['a'])} / {_fmt(r['duration']['b'])}"),
        ("max PTS difference", lambda r: _fmt(r["max_pts_difference"] * 1000, ".3f", " ms")),
        (
            "A/V offset",
            lambda r: _fmt(
                None if r["audio_offset"] is None else r["audio_offset"] * 1000, ".2f", " ms"
            ),
        ),
        (
            "PSNR mean / min",
            lambda r: (
                "identical"
                if r["quality"].get("identical")
                else f"{_fmt(r['quality']['psnr_mean'], '.2f')} / "
                f"{_fmt(r['quality']['psnr_min'], '.2f')} dB"
            ),
        ),
        (
            "SSIM mean / min",
            lambda r: (
                f"{_fmt(r['quality']['ssim_mean'], '.4f')} / "
                f"{_fmt(r['quality']['ssim_min'], '.4f')}"
            ),
        ),
        ("warping-error ratio", lambda r: _fmt((r.get("warping_error") or {}).get("ratio"))),
    ]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><th>{label}</th>"
        + "".join(f"<td>{html.escape(get(r))}</td>" for r in results)
        + "</tr>"
        for label, get in rows
    )
    return f"<table class='summary'><tr><th></th>{head}</tr>{body}</table>"


def _frame_section(frame: ShownFrame, names: list[str]) -> str:
    import cv2

    when = "" if frame.time is None else f", {frame.time:.3f} s"
    # small frames are shown enlarged (pixels kept sharp) so differences can be seen
    width = frame.images[0].shape[1] * max(1, math.ceil(480 / frame.images[0].shape[1]))
    size = f" width='{width}'"
    parts = [f"<h3>Frame {frame.index}{when} — {html.escape(frame.why)}</h3>", "<div class='row'>"]
    for name, image in zip(["reference", *names], frame.images):
        parts.append(
            f"<figure><img src='{_png(image)}'{size} alt='{html.escape(name)}'>"
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    parts.append("</div><div class='row'>")
    ref = frame.images[0]
    for name, image in zip(names, frame.images[1:]):
        parts.append(
            "<div class='slider'><div class='stack'>"
            f"<img src='{_png(ref)}'{size} alt='reference'>"
            f"<img class='top' src='{_png(image)}'{size} alt='{html.escape(name)}'></div>"
            "<input type='range' min='0' max='100' value='50' "
            'oninput="this.previousElementSibling.lastElementChild.style.clipPath='
            "'inset(0 0 0 '+this.value+'%)'\">"
            f"<figcaption>slider: reference (left) | {html.escape(name)} (right)</figcaption>"
            "</div>"
        )
    parts.append("</div><div class='row'>")
    for name, image in zip(names, frame.images[1:]):
        x, y = largest_difference(ref, image)
        side = min(CROP, ref.shape[0], ref.shape[1])
        for label, source in (("reference", ref), (name, image)):
            crop = source[y : y + side, x : x + side]
            zoom = cv2.resize(crop, (side * 4, side * 4), interpolation=cv2.INTER_NEAREST)
            parts.append(
                f"<figure><img class='zoom' src='{_png(zoom)}' alt='zoom'>"
                f"<figcaption>{html.escape(label)}, zoom x4 at ({x}, {y})"
                "</figcaption></figure>"
            )
    parts.append("</div>")
    return "".join(parts)


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table.summary{border-collapse:collapse;margin:12px 0}
table.summary td,table.summary th{border:1px solid #ccc;padding:4px 10px;text-align:left}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start;margin:8px 0}
figure{margin:0}img{max-width:100%;image-rendering:pixelated}
.slider{display:inline-block}.stack{position:relative;display:inline-block}
.stack img.top{position:absolute;left:0;top:0;clip-path:inset(0 0 0 50%)}
.slider input{width:100%}.chart svg{max-width:100%;height:auto}
.note{color:#a33}
"""


def render(
    reference: str | Path,
    candidates: list[str | Path],
    results: list[dict[str, Any]],
    at: float | None = None,
) -> str:
    """The page, as text."""
    names = [Path(str(c)).name for c in candidates]
    picks = pick_frames(results, at)
    frames = read_frames(reference, candidates, picks)
    resized = [n for n, r in zip(names, results) if r["size"]["a"] != r["size"]["b"]]
    note = (
        f"<p class='note'>{', '.join(map(html.escape, resized))}: another size than the "
        "reference, resized to it for display (the metrics did the same).</p>"
        if resized
        else ""
    )
    data = json.dumps(results if len(results) > 1 else results[0]).replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>vt compare: {html.escape(Path(str(reference)).name)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>vt compare</h1><p>reference: {html.escape(str(reference))}</p>"
        f"<h2>Summary</h2>{_summary(results, names)}{note}"
        f"<h2>Per frame</h2><div class='chart'>{_chart(results, names, picks)}</div>"
        "<h2>Frames</h2>"
        + "".join(_frame_section(f, names) for f in frames)
        + f"<script type='application/json' id='vt-data'>{data}</script>"
        "</body></html>"
    )


def write_report(path: str | Path, page: str, overwrite: bool = False) -> Path:
    """Write the page atomically (temporary name, renamed when complete)."""
    from vt.atomic import atomic_file

    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report writes HTML: give a .html path, got {target.name}")
    if target.exists() and not overwrite:
        raise UsageError(f"report exists: {target} (use --overwrite to replace it)")
    if not target.parent.is_dir():
        raise UsageError(f"report folder does not exist: {target.parent}")
    with atomic_file(target, overwrite=overwrite) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
