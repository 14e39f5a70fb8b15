"""Helpers for the server tests: uvicorn on a free 127.0.0.1 port in a thread, a small HTTP
client over http.client (raw paths, multipart), and a generator that blocks on an event."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vt.errors import UsageError


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port (lifespan included) until the block
    ends; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """HTTP over http.client: paths are sent exactly as given (no normalisation)."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 300) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.token, self.timeout = host, int(port), token, timeout

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        token = token if token is not None else self.token
        if token:
            headers.setdefault("Authorization", f"Bearer {token}")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return Reply(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_form(
        self,
        path: str,
        fields: dict[str, Any],
        image: bytes | None,
        filename: str = "image.png",
        **kwargs: Any,
    ) -> Reply:
        body, content_type = multipart(fields, image, filename)
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        return self.request("POST", path, body=body, headers=headers, **kwargs)

    def wait_job(
        self,
        job_id: str,
        until: tuple[str, ...] = ("done", "failed", "cancelled"),
        timeout: float = 300,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(f"/jobs/{job_id}").json()
            if job["status"] in until:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']}")
            time.sleep(0.05)


def multipart(
    fields: dict[str, Any], image: bytes | None, filename: str = "image.png"
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    if image is not None:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        out.write(image + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def png_bytes(width: int = 32, height: int = 24, seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def solid_png(width: int, height: int) -> bytes:
    """A one-colour PNG: many pixels in few bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, format="PNG")
    return out.getvalue()


def read_frames(path: Path) -> Any:
    """All frames of a video as (N, H, W, 3) uint8."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


class BlockingGenerator:
    """A stand-in for ``vt_cogvideo.generation.Generator`` in the queue tests: ``generate``
    reports one step, then waits until ``release`` is set (or its cancel event, raising
    ``Cancelled`` like the real one) and writes a placeholder file and sidecar. Prompts
    starting with "fail" raise; a width of 999 is refused by ``validate``."""

    def __init__(self, auto_release: bool = False) -> None:
        self.release = threading.Event()
        if auto_release:
            self.release.set()
        self.started: list[str] = []  # prompts, in the order generation started
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.running = threading.Event()

    def validate(self, request: Any) -> Any:
        if request.width == 999:
            raise UsageError("width 999 is not a size this model takes")
        return replace(
            request,
            width=request.width or 16,
            height=request.height or 16,
            num_frames=request.num_frames or 9,
        )

    def generate(
        self,
        request: Any,
        output: str | Path,
        *,
        progress: Any = None,
        cancel: threading.Event | None = None,
        overwrite: bool = False,
    ) -> Any:
        from vt_cogvideo.generation import Cancelled, GenerationResult

        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.started.append(request.prompt)
        self.running.set()
        try:
            request.image.load()  # the server hands over a lazily decoded, checked image
            if progress:
                progress(1, 2)
            while not self.release.wait(0.01):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled at step 2 of 2")
            if request.prompt.startswith("fail"):
                raise RuntimeError("the pipeline broke")
            output = Path(output)
            output.write_bytes(b"not really an mp4")
            sidecar = output.with_suffix(".json")
            sidecar.write_text("{}")
            if progress:
                progress(2, 2)
            return GenerationResult(
                output=output,
                sidecar=sidecar,
                frames=9,
                fps=request.fps,
                width=16,
                height=16,
                seed=request.seed or 0,
                temporal_score=1.0,
                timings={"total_s": 0.0},
                peak_memory_bytes=0,
                metadata={"prompt": request.prompt, "lora": str(request.lora)},
            )
        finally:
            with self.lock:
                self.active -= 1
            self.running.clear()

    def describe(self) -> dict[str, Any]:
        return {"model": "blocking-fake", "device": "cpu", "pipelines": {}}
