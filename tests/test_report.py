"""``vt compare --report`` and contact sheets: pages and pictures people look at."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vt.cli import create_app
from vt.media.encode import EncoderConfig
from vt.media.pipeline import PipelineOptions, process_video
from vt.plugins import PluginHost
from vt.sheet import contact_sheet

pytest.importorskip("matplotlib")
runner = CliRunner()


class Page(HTMLParser):
    """What the report holds: its tags, images, tables' text and the embedded data."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.images: list[str] = []
        self.classes: list[str] = []
        self.text: list[str] = []
        self._data = False
        self.data = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        self.classes += (a.get("class") or "").split()
        self._data = tag == "script" and a.get("id") == "vt-data"

    def handle_endtag(self, tag: str) -> None:
        self._data = False

    def handle_data(self, data: str) -> None:
        if self._data:
            self.data += data
        else:
            self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def compare(host: PluginHost, *args: str) -> dict | list:
    result = runner.invoke(create_app(host), ["compare", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(
        result.stdout[result.stdout.index("{" if "[" not in result.stdout[:2] else "[") :]
    )


@pytest.fixture(scope="module")
def pair_report(
    tmp_path_factory: pytest.TempPathFactory, carphone: Path, carphone_distorted: Path
) -> tuple[Path, dict]:
    from vt.plugins import PluginHost, set_host

    host = PluginHost(load_entry_points=False).load()
    previous = set_host(host)
    try:
        out = tmp_path_factory.mktemp("report") / "report.html"
        data = compare(
            host,
            str(carphone),
            str(carphone_distorted),
            "--max-frames",
            "40",
            "--per-frame",
            "--report",
            str(out),
            "--at",
            "1.0",
        )
    finally:
        set_host(previous)
    return out, data  # type: ignore[return-value]


def test_report_embeds_charts_frames_and_the_json_figures(pair_report: tuple[Path, dict]) -> None:
    path, data = pair_report
    page = parse(path)
    assert page.tags.get("svg", 0) >= 1 and page.tags.get("path", 0) > 10  # matplotlib charts
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    # 3 worst frames + --at: reference and candidate side by side, slider (2), zoom (2)
    assert len(page.images) == 4 * (2 + 2 + 2)
    assert page.classes.count("slider") == 4
    assert json.loads(page.data) == data  # the page carries exactly what --json printed
    text = " ".join(page.text)
    q = data["quality"]
    assert f"{q['psnr_mean']:.2f} / {q['psnr_min']:.2f} dB" in text
    assert f"{data['warping_error']['ratio']:.3f}" in text
    assert (
        "at 1 s" in text
        and "http" not in path.read_text().split("<body>")[1].split("reference:")[0]
    )  # nothing fetched from the network


def test_worst_frames_are_the_lowest_psnr_and_spread(pair_report: tuple[Path, dict]) -> None:
    from vt.report import pick_frames

    _, data = pair_report
    picks = pick_frames([data], None)
    psnr = data["quality"]["psnr_per_frame"]
    assert picks[0][0] in sorted(range(len(psnr)), key=psnr.__getitem__)[:1] or min(
        psnr[i] for i, _ in picks
    ) == min(psnr)
    indices = [i for i, _ in picks]
    assert len(indices) == 3 and min(np.diff(indices)) >= len(psnr) // 20


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium not installed (make test installs it as root with apt)",
)
def test_report_renders_in_a_headless_browser(
    pair_report: tuple[Path, dict], tmp_path: Path
) -> None:
    import cv2

    path, _ = pair_report

    def blue_pixels(page: str) -> int:
        # only the chart stays visible: the screenshot is the chart area, nothing else
        html = tmp_path / "view.html"
        html.write_text(
            page.replace("</head>", "<style>body>*:not(.chart){display:none}</style></head>", 1),
            encoding="utf-8",
        )
        shot = tmp_path / "shot.png"
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1200,900",
                f"--screenshot={shot}",
                html.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        image = cv2.imread(str(shot))
        assert image is not None and image.shape[:2] == (900, 1200)
        # matplotlib's first line colour, #1f77b4 (BGR here)
        return int(np.all(np.abs(image.astype(int) - (180, 119, 31)) < 40, axis=2).sum())

    page = path.read_text(encoding="utf-8")
    assert blue_pixels(page) > 500  # the charts' lines were drawn
    blank = re.sub(
        r"<div class='chart'>.*?</svg>\s*</div>",
        "<div class='chart'></div>",
        page,
        count=1,
        flags=re.S,
    )
    assert blank != page
    assert blue_pixels(blank) == 0  # and the check sees a missing chart


def test_three_candidates_get_a_column_each(
    host: PluginHost, tmp_path: Path, carphone: Path, carphone_distorted: Path
) -> None:
    again = tmp_path / "again.mp4"
    process_video(
        carphone,
        again,
        config=EncoderConfig(preset="ultrafast", crf=40),
        options=PipelineOptions(end=1.0),
    )
    out = tmp_path / "three.html"
    data = compare(
        host,
        str(carphone),
        str(carphone_distorted),
        str(again),
        str(carphone_distorted),
        "--max-frames",
        "40",
        "--report",
        str(out),
    )
    assert isinstance(data, list) and len(data) == 3
    page = parse(out)
    assert page.classes.count("slider") == 3 * 3  # 3 frames x 3 candidates
    assert len(json.loads(page.data)) == 3
    assert data[1]["frames"]["b"] == 30 and not data[1]["frames"]["equal"]  # the 1-second cut


def test_report_refuses_bad_paths_and_keeps_existing_files(
    host: PluginHost, tmp_path: Path, carphone: Path
) -> None:
    app = create_app(host)
    bad = runner.invoke(
        app,
        [
            "compare",
            str(carphone),
            str(carphone),
            "--report",
            str(tmp_path / "r.txt"),
            "--max-frames",
            "3",
        ],
    )
    assert bad.exit_code == 2 and "give a .html path" in bad.output
    existing = tmp_path / "r.html"
    existing.write_text("mine")
    again = runner.invoke(
        app,
        ["compare", str(carphone), str(carphone), "--report", str(existing), "--max-frames", "3"],
    )
    assert again.exit_code == 2 and existing.read_text() == "mine"


def test_contact_sheet_grid_size_and_timestamps(tmp_path: Path, bikes: Path) -> None:
    sheet = contact_sheet(bikes, tmp_path / "s.png", frames=9)
    import cv2

    image = cv2.imread(str(sheet.path))
    assert (sheet.columns, sheet.rows) == (3, 3)
    assert image.shape[:2] == (sheet.height, sheet.width) == (3 * (136 + 18), 3 * 320)
    assert sheet.indices[0] == 0 and sheet.indices[-1] == 249 and len(sheet.indices) == 9
    assert sheet.times == pytest.approx([i / 25 for i in sheet.indices])


def test_sheet_option_on_video_commands_and_info(
    host: PluginHost, tmp_path: Path, carphone: Path
) -> None:
    app = create_app(host)
    out = tmp_path / "out.mp4"
    result = runner.invoke(
        app,
        [
            "transcode",
            str(carphone),
            str(out),
            "--preset",
            "ultrafast",
            "--end",
            "1",
            "--sheet",
            str(tmp_path / "t.png"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sheet"]["path"] == str(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert report["sheet"]["frames"][-1] == 29  # the output's frames: 1 s at 29.97 fps
    info = runner.invoke(
        app, ["info", str(carphone), "--sheet", str(tmp_path / "i.png"), "--frames", "4", "--json"]
    )
    assert (
        info.exit_code == 0
        and json.loads(info.stdout)["sheet"]["grid"][0]
        * json.loads(info.stdout)["sheet"]["grid"][1]
        >= 4
    )
    bad = runner.invoke(
        app,
        ["transcode", str(carphone), str(tmp_path / "x.mp4"), "--sheet", str(tmp_path / "x.txt")],
    )
    assert bad.exit_code == 2 and not (tmp_path / "x.mp4").exists()
