"""The web page in a real headless browser (Playwright driving the system's chromium): the
page loads, a job submitted through the form finishes on the tiny model, and the <video>
element gets the artifact and can play it. The server requires a token, typed into the page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright", reason="playwright is not installed (vt-cogvideo[test])")

from cogvideo_server_support import Client, serving

TOKEN = "browser-test-token"
# (predicates are functions, not strings: the page's CSP forbids eval, as it should)
# Debian's package; pip's playwright cannot download its own browsers offline
CHROMIUM = (
    os.environ.get("VT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (make test installs it as root with apt)"
)


@pytest.fixture(scope="module")
def served(tiny_cogvideo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from vt_cogvideo.server.app import create_app
    from vt_cogvideo.server.settings import ServerSettings

    settings = ServerSettings(
        model=str(tiny_cogvideo),
        device="cpu",
        token=TOKEN,
        artifact_dir=tmp_path_factory.mktemp("browser-artifacts"),
    ).checked()
    with serving(create_app(settings)) as base:
        yield base


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(120_000)
            page.console_errors = []  # type: ignore[attr-defined]
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


def test_a_job_submitted_through_the_page_plays_in_the_video_element(
    served: str, page: Any, cond_image: Path
) -> None:
    external: list[str] = []
    local = (served, f"blob:{served}", "data:")  # blob: the image preview
    page.on("request", lambda r: r.url.startswith(local) or external.append(r.url))
    page.goto(f"{served}/")
    page.wait_for_function(
        "() => document.getElementById('health').textContent.startsWith('model')"
    )
    assert page.is_visible("#token")  # the server needs a token: the page asks for it
    page.fill("#token", TOKEN)
    page.set_input_files("#image", str(cond_image))
    page.fill("#prompt", "cyclists ride along a sunny street")
    page.select_option("#mode", "optimized")
    page.click("summary")
    page.fill("#num_inference_steps", "2")
    page.fill("#seed", "11")
    page.click("#submit")
    page.wait_for_function(
        "() => ['done', 'failed'].some(s => "
        "document.getElementById('status').textContent.startsWith(s))"
    )
    assert page.text_content("#status") == "done", page.text_content("#status")
    assert page.get_attribute("#progress", "value") == "1"
    src = page.get_attribute("#video", "src")
    assert src.startswith("/artifacts/cogvideo-") and "?sig=" in src
    assert page.get_attribute("#download", "href") == src
    assert page.get_attribute("#download", "download") == src.split("/")[-1].split("?")[0]
    # the browser fetched and decoded the MP4: metadata, a duration, frames to show
    state = page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return v.readyState >= 2 && v.duration > 0 && !v.error &&"
        " [v.readyState, v.duration, v.videoWidth, v.videoHeight]; }"
    ).json_value()
    ready, duration, width, height = state
    assert ready >= 2 and (width, height) == (16, 16)
    assert duration == pytest.approx(9 / 8, abs=0.2)  # 9 frames at the default 8 fps
    page.evaluate("document.getElementById('video').play()")
    page.wait_for_function("() => document.getElementById('video').currentTime > 0")
    facts = page.text_content("#facts")
    assert "16×16, 9 frames at 8 fps" in facts and "seed11" in facts
    assert external == []  # nothing but the server was contacted (no CDN)
    assert page.console_errors == []  # type: ignore[attr-defined]
    # the job the page made is the one the API reports
    job_id = page.text_content("#job-id")
    job = Client(served, TOKEN).get(f"/jobs/{job_id}").json()
    assert job["status"] == "done" and job["request"]["mode"] == "optimized"
    assert job["request"]["seed"] == 11 and job["result"]["url"] == src


def test_the_page_reports_a_refused_request(served: str, page: Any, cond_image: Path) -> None:
    page.goto(f"{served}/")
    page.fill("#token", "wrong")
    page.set_input_files("#image", str(cond_image))
    page.fill("#prompt", "anything")
    page.click("#submit")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('not')")
    assert page.text_content("#status").startswith("not queued: 401")
    assert page.is_enabled("#submit")
    assert page.is_hidden("#result")
