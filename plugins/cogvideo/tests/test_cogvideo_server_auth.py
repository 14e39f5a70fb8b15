"""The token: every endpoint but /health (and the page's static files) needs it; artifact URLs
from results carry a signature valid for that one file. Real server, real tiny model."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from cogvideo_server_support import Client, png_bytes, serving

TOKEN = "s3cret-token-for-tests"
FAST = {"prompt": "a harbour at dawn", "num_inference_steps": 2, "seed": 5}


@pytest.fixture(scope="module")
def base(tiny_cogvideo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from vt_cogvideo.server.app import create_app
    from vt_cogvideo.server.settings import ServerSettings

    settings = ServerSettings(
        model=str(tiny_cogvideo),
        device="cpu",
        token=TOKEN,
        artifact_dir=tmp_path_factory.mktemp("auth-artifacts"),
        max_upload_bytes=64 * 1024,
    ).checked()
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def result(base: str) -> dict[str, Any]:
    reply = Client(base, TOKEN).post_form("/generate-video", FAST, png_bytes())
    assert reply.status == 200, reply.body
    return reply.json()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        TOKEN,
    ],
)
def test_missing_or_wrong_tokens_are_401(
    base: str, result: dict[str, Any], authorization: str | None
) -> None:
    api = Client(base)
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("GET", "/jobs"),
        ("GET", f"/jobs/{result['id']}"),
        ("DELETE", f"/jobs/{result['id']}"),
        ("GET", "/loras"),
        ("GET", f"/artifacts/{result['output']}"),
        ("HEAD", f"/artifacts/{result['output']}"),
        ("GET", "/artifacts/../etc/passwd"),
        ("GET", "/nowhere"),
    ]:
        reply = api.request(method, path, headers=headers)
        assert reply.status == 401, (method, path, reply.status)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    for endpoint in ("/generate-video", "/jobs"):
        reply = api.post_form(endpoint, FAST, png_bytes(), headers=headers)
        assert reply.status == 401 and "token" in reply.json()["detail"]


def test_the_right_token_opens_every_endpoint(base: str, result: dict[str, Any]) -> None:
    api = Client(base, TOKEN)
    assert api.get(f"/jobs/{result['id']}").json()["status"] == "done"
    assert api.get("/loras").json() == {"loras": []}
    assert api.get(f"/artifacts/{result['output']}").status == 200
    assert (
        Client(base, token=None).get("/", headers={"Authorization": f"bearer {TOKEN}"}).status
        == 200
    )  # scheme: any case
    reply = api.post_form("/jobs", FAST, png_bytes())
    assert reply.status == 202
    assert api.wait_job(reply.json()["id"])["status"] == "done"


def test_health_the_page_and_the_schema_need_no_token(base: str) -> None:
    api = Client(base)
    health = api.get("/health")
    assert health.status == 200 and health.json()["auth"] is True
    assert api.get("/").status == 200
    assert api.get("/static/app.js").status == 200
    schema = api.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" in schema["paths"]["/jobs"]["post"]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_signed_artifact_urls_open_that_file_only(
    base: str, result: dict[str, Any], tmp_path: Path
) -> None:
    api = Client(base)
    url = result["url"]
    name = result["output"]
    assert url.startswith(f"/artifacts/{name}?sig=") and TOKEN not in url
    reply = api.get(url)  # no Authorization header: what a <video> element does
    assert reply.status == 200 and reply.headers["content-type"] == "video/mp4"
    assert api.get(url, headers={"Range": "bytes=0-9"}).status == 206
    signature = url.split("sig=", 1)[1]
    altered = signature[:-1] + ("1" if signature[-1] == "0" else "0")
    assert api.get(result["sidecar_url"]).status == 200
    for path in (
        f"/artifacts/{result['sidecar']}?sig={signature}",  # another file
        f"/artifacts/{name}?sig={altered}",
        f"/artifacts/{name}?sig=",
        f"/artifacts/{name}",
        f"/jobs/{result['id']}?sig={signature}",
    ):
        assert api.get(path).status == 401, path
    assert api.request("DELETE", f"/artifacts/{name}?sig={signature}").status == 401


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 50000\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 401")
