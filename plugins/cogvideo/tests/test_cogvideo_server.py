"""The API server started for real (uvicorn on 127.0.0.1) over the real Generator and the tiny
CogVideoX I2V pipeline, called over HTTP."""

from __future__ import annotations

import io
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from cogvideo_server_support import Client, png_bytes, read_frames, serving, solid_png

UPLOAD_LIMIT = 256 * 1024
PIXEL_LIMIT = 300_000
FAST = {"prompt": "a cyclist rides past", "num_inference_steps": 2}


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def api(tiny_cogvideo: Path, artifact_dir: Path) -> Iterator[Client]:
    from vt_cogvideo.server.app import create_app
    from vt_cogvideo.server.settings import ServerSettings

    settings = ServerSettings(
        model=str(tiny_cogvideo),
        device="cpu",
        artifact_dir=artifact_dir,
        max_upload_bytes=UPLOAD_LIMIT,
        max_image_pixels=PIXEL_LIMIT,
        queue_size=4,
        keep_artifacts=0,
    ).checked()
    with serving(create_app(settings)) as base:
        yield Client(base)


@pytest.fixture(scope="module")
def image(cond_image: Path) -> bytes:
    return cond_image.read_bytes()


@pytest.fixture(scope="module")
def generated(api: Client, image: bytes) -> dict[str, Any]:
    """One synchronous generation, shared by the tests that read its artifact."""
    reply = api.post_form(
        "/generate-video", {**FAST, "seed": 7, "fps": 6}, image, filename="bikes.png"
    )
    assert reply.status == 200, reply.body
    return reply.json()


def test_health_reports_the_model_and_an_empty_queue(api: Client, tiny_cogvideo: Path) -> None:
    reply = api.get("/health")
    assert reply.status == 200
    health = reply.json()
    assert health["status"] == "ok" and health["auth"] is False
    assert health["model"] == str(tiny_cogvideo)
    assert health["pipeline"]["device"] == "cpu"
    assert health["pipeline"]["spec"]["frames"] == 9  # read from the tiny model's config
    assert health["queue"]["waiting"] == 0 and health["queue"]["capacity"] == 4
    assert health["max_upload_bytes"] == UPLOAD_LIMIT


def test_generate_video_answers_with_the_written_clip(
    generated: dict[str, Any], artifact_dir: Path, api: Client
) -> None:
    from vt_cogvideo.tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    name = generated["output"]
    assert name.startswith("cogvideo-") and name.endswith(".mp4")
    assert generated["url"] == f"/artifacts/{name}"
    video = artifact_dir / name
    frames = read_frames(video)
    assert frames.shape == (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert (generated["frames"], generated["width"], generated["height"]) == (
        TINY_FRAMES,
        TINY_WIDTH,
        TINY_HEIGHT,
    )
    assert generated["seed"] == 7 and generated["fps"] == 6
    assert 0.0 <= generated["temporal_score"] <= 1.0
    assert {"load_s", "generate_s", "encode_s", "score_s", "total_s"} <= set(generated["timings"])
    assert generated["metadata"]["prompt"] == FAST["prompt"]
    assert generated["metadata"]["steps"] == 2
    sidecar = json.loads((artifact_dir / generated["sidecar"]).read_text())
    assert sidecar["seed"] == 7
    job = api.get(f"/jobs/{generated['id']}").json()  # the sync call is a job too
    assert job["status"] == "done" and job["result"]["output"] == name


def test_artifact_download_streams_the_file_and_honours_ranges(
    generated: dict[str, Any], artifact_dir: Path, api: Client
) -> None:
    data = (artifact_dir / generated["output"]).read_bytes()
    reply = api.get(generated["url"])
    assert reply.status == 200
    assert reply.headers["content-type"] == "video/mp4"
    assert reply.headers["accept-ranges"] == "bytes"
    assert reply.body == data
    part = api.get(generated["url"], headers={"Range": "bytes=10-109"})
    assert part.status == 206
    assert part.body == data[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(data)}"
    head = api.request("HEAD", generated["url"])
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == len(data)
    sidecar = api.get(generated["sidecar_url"])
    assert sidecar.status == 200 and sidecar.json()["output"].endswith(generated["output"])


def test_async_job_reports_progress_then_the_result(
    api: Client, image: bytes, artifact_dir: Path
) -> None:
    reply = api.post_form("/jobs", {**FAST, "seed": 1, "mode": "optimized"}, image)
    assert reply.status == 202, reply.body
    job = reply.json()
    assert reply.headers["location"] == f"/jobs/{job['id']}" == job["url"]
    assert job["status"] in ("queued", "running")
    assert job["request"]["mode"] == "optimized"
    assert job["request"]["num_frames"] == 9  # filled in from the model by validate
    seen = set()
    deadline = time.monotonic() + 300
    while job["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline
        seen.add((job["status"], job["step"]))
        time.sleep(0.02)
        job = api.get(f"/jobs/{job['id']}").json()
    assert job["status"] == "done", job["error"]
    assert job["progress"] == 1.0 and job["step"] == job["total_steps"] == 2
    assert job["started"] <= job["finished"]
    result = job["result"]
    assert result["metadata"]["mode"] == "optimized"
    assert api.get(result["url"]).body == (artifact_dir / result["output"]).read_bytes()


def test_unknown_jobs_and_artifacts_are_404(api: Client) -> None:
    assert api.get("/jobs/nope").status == 404
    assert api.request("DELETE", "/jobs/nope").status == 404
    reply = api.get("/artifacts/cogvideo-0123.mp4")
    assert reply.status == 404 and reply.json()["detail"] == "no such artifact"


def test_artifact_names_cannot_leave_the_folder(
    api: Client, artifact_dir: Path, generated: dict[str, Any], tmp_path: Path
) -> None:
    secret = artifact_dir.parent / "secret.mp4"
    secret.write_bytes(b"SECRET-BYTES")
    (artifact_dir / "outside-link.mp4").symlink_to(secret)
    (artifact_dir / "inside-link.mp4").symlink_to(artifact_dir / generated["output"])
    (artifact_dir / "folder.mp4").mkdir()
    (artifact_dir / ".hidden.mp4").write_bytes(b"SECRET-BYTES")
    (artifact_dir / "notes.txt").write_bytes(b"SECRET-BYTES")
    attempts = [
        "/artifacts/../secret.mp4",
        "/artifacts/..%2Fsecret.mp4",
        "/artifacts/..%2fsecret.mp4",
        "/artifacts/%2e%2e%2fsecret.mp4",
        "/artifacts/%2E%2E/secret.mp4",
        "/artifacts/%2e%2e",
        "/artifacts/..",
        "/artifacts/.",
        "/artifacts/..%5csecret.mp4",
        "/artifacts/%2e%2e%5csecret.mp4",
        f"/artifacts/{secret}",
        f"/artifacts/{str(secret).replace('/', '%2F')}",
        "/artifacts//etc/passwd",
        "/artifacts/%2Fetc%2Fpasswd",
        "/artifacts/outside-link.mp4",
        "/artifacts/inside-link.mp4",
        "/artifacts/folder.mp4",
        "/artifacts/.hidden.mp4",
        "/artifacts/notes.txt",
        "/artifacts/%00.mp4",
        "/artifacts/x.mp4%00.json",
        "/artifacts/....%2F....%2Fsecret.mp4",
        "/artifacts/%252e%252e%252fsecret.mp4",
    ]
    for path in attempts:
        reply = api.get(path)
        assert reply.status == 404, (path, reply.status)
        assert b"SECRET" not in reply.body, path
    assert secret.read_bytes() == b"SECRET-BYTES"


@pytest.mark.parametrize(
    ("fields", "image_kind", "message"),
    [
        ({"num_inference_steps": 2}, "png", "prompt"),
        ({"prompt": "   "}, "png", "prompt"),
        ({"prompt": "x\x01y"}, "png", "control characters"),
        ({**FAST, "num_inference_steps": 0}, "png", "num_inference_steps"),
        ({**FAST, "num_inference_steps": "many"}, "png", "num_inference_steps"),
        ({**FAST, "guidance_scale": "nan"}, "png", "guidance_scale"),
        ({**FAST, "seed": -1}, "png", "seed"),
        ({**FAST, "seed": 2**40}, "png", "seed"),
        ({**FAST, "mode": "fast"}, "png", "mode"),
        ({**FAST, "scheduler": "euler"}, "png", "scheduler"),
        ({**FAST, "width": 24}, "png", "24"),  # the tiny model takes 16x16 only
        ({**FAST, "num_frames": 50}, "png", "50"),
        ({**FAST, "lora": "press"}, "png", "--lora-dir"),
        (FAST, None, "image"),
        (FAST, "text", "image"),
        (FAST, "truncated", "image"),
        (FAST, "empty", "image"),
        (FAST, "huge", "pixels"),
    ],
)
def test_bad_payloads_are_422_with_a_message(
    api: Client, fields: dict[str, Any], image_kind: str | None, message: str
) -> None:
    good = png_bytes(32, 24)
    image = {
        "png": good,
        None: None,
        "text": b"just some text, not an image",
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "huge": solid_png(600, 600),
    }[image_kind]
    before = api.get("/health").json()["queue"]["completed"]
    for endpoint in ("/generate-video", "/jobs"):
        reply = api.post_form(endpoint, fields, image)
        assert reply.status == 422, (endpoint, reply.body)
        detail = reply.json()["detail"]
        assert isinstance(detail, str) and message in detail, detail
    assert api.get("/health").json()["queue"]["completed"] == before  # nothing was queued


def _raw(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head)
    return sock


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_oversize_uploads_are_413_before_the_body_is_read(api: Client, image: bytes) -> None:
    # an image just over the limit (the body itself is within the framing allowance)
    reply = api.post_form("/jobs", FAST, png_bytes(32, 24) + b"\0" * UPLOAD_LIMIT)
    assert reply.status == 413 and "limit" in reply.json()["detail"]
    # a body far over the limit, refused as soon as the form is read
    reply = api.post_form("/generate-video", FAST, b"\0" * (UPLOAD_LIMIT * 3))
    assert reply.status == 413
    # a declared length over the limit: answered without sending one byte of body
    sock = _raw(
        api.port,
        b"POST /generate-video HTTP/1.1\r\nHost: x\r\nContent-Type: "
        b"multipart/form-data; boundary=b\r\nContent-Length: 10000000000\r\n\r\n",
    )
    with sock:
        assert _read_reply(sock).startswith(b"HTTP/1.1 413")
    # a chunked body with no length: cut off once it passes the limit, not read to the end
    sock = _raw(
        api.port,
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data;"
        b" boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    part = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    sent = 0
    with sock:
        sock.settimeout(30)
        while sent < 256 * 1024 * 1024:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
        reply_head = _read_reply(sock)
    assert reply_head.startswith(b"HTTP/1.1 413"), reply_head[:100]
    # stopped once the limit passed (plus what socket buffers held), not at 256 MiB
    assert sent < 32 * 1024 * 1024
    assert api.get("/health").status == 200  # the server is fine afterwards


def test_openapi_lists_the_endpoints_and_the_form_fields(api: Client) -> None:
    schema = api.get("/openapi.json").json()
    assert {
        "/health",
        "/generate-video",
        "/jobs",
        "/jobs/{job_id}",
        "/artifacts/{filename}",
        "/loras",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/jobs/{job_id}"]) == {"get", "delete"}
    for path in ("/generate-video", "/jobs"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        ref = body["schema"]["$ref"].rsplit("/", 1)[1]
        fields = schema["components"]["schemas"][ref]["properties"]
        assert {
            "image",
            "prompt",
            "negative_prompt",
            "num_frames",
            "height",
            "width",
            "num_inference_steps",
            "guidance_scale",
            "seed",
            "fps",
            "mode",
            "lora",
        } <= set(fields)
        assert fields["mode"]["enum"] == ["baseline", "optimized"]
        assert set(schema["components"]["schemas"][ref]["required"]) == {"image", "prompt"}
        responses = schema["paths"][path]["post"]["responses"]
        assert {"413", "422", "429"} <= set(responses)
    assert "429" in schema["paths"]["/generate-video"]["post"]["responses"]


def test_the_page_and_its_files_are_served_with_no_outside_references(api: Client) -> None:
    from vt_cogvideo.server.app import STATIC

    page = api.get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.body.decode()
    for element in (
        'id="image"',
        'id="prompt"',
        'id="mode"',
        'id="video"',
        'id="download"',
        'id="progress"',
        'id="token"',
        'src="/static/app.js"',
    ):
        assert element in html
    for path in sorted(STATIC.iterdir()):
        served = api.get(f"/static/{path.name}")
        assert served.status == 200 and served.body == path.read_bytes()
        body = served.body.replace(b"http://www.w3.org/2000/svg", b"")  # a namespace name
        assert b"http://" not in body and b"https://" not in body, path.name
    assert api.get("/static/../app.py").status == 404


def test_jpeg_and_odd_sizes_are_fitted(api: Client, artifact_dir: Path) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (301, 97), (200, 40, 10)).save(out, format="JPEG")
    reply = api.post_form(
        "/generate-video", {**FAST, "fit": "pad", "seed": 2}, out.getvalue(), filename="wide.jpg"
    )
    assert reply.status == 200, reply.body
    assert read_frames(artifact_dir / reply.json()["output"]).shape[1:3] == (16, 16)
    assert reply.json()["metadata"]["fit"] == "pad"
