"""``vt cogvideo serve``: the real command in a subprocess (bind, serve, stop on Ctrl-C), and
its checks in-process (bad options, the warning for an exposed address without a token)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from cogvideo_server_support import Client, png_bytes
from typer.testing import CliRunner


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "VT_LOAD_PLUGINS": "cogvideo", **extra}
    env.pop("VT_API_TOKEN", None)
    return env


@pytest.mark.slow  # a vt process with torch and a pipeline load: ~10 s
def test_serve_binds_answers_and_stops_on_ctrl_c(tiny_cogvideo: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    interrupted = False
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vt",
            "cogvideo",
            "serve",
            "--port",
            "0",
            "--model",
            str(tiny_cogvideo),
            "--artifact-dir",
            str(artifacts),
            "--device",
            "cpu",
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.fullmatch(
            r"vt: cogvideo API on http://127\.0\.0\.1:(\d+)/ \(artifacts in "
            r"(.+)\)\n",
            line,
        )
        assert match, line
        assert Path(match.group(2)) == artifacts.resolve() and artifacts.is_dir()
        url = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=10) as reply:
                    health = json.load(reply)
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert health["model"] == str(tiny_cogvideo) and health["auth"] is False
        with urllib.request.urlopen(f"{url}/", timeout=10) as reply:
            assert b'id="prompt"' in reply.read()
        # a long job runs and a synchronous request waits behind it when Ctrl-C comes
        api = Client(url)
        job = api.post_form(
            "/jobs", {"prompt": "long", "num_inference_steps": 1000}, png_bytes()
        ).json()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                api.post_form,
                "/generate-video",
                {"prompt": "short", "num_inference_steps": 2},
                png_bytes(),
            )
            while api.get(f"/jobs/{job['id']}").json()["step"] < 2:
                assert time.monotonic() < deadline + 120
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)  # once: a second one forces an abrupt exit
            interrupted = True
            answer = waiting.result(60)
        assert answer.status == 503 and "shutting down" in answer.json()["detail"]
    finally:
        if not interrupted:
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal: 130, as any interrupted vt
    # command (0 with uvicorn versions that swallow it)
    assert process.returncode in (0, 130), err
    assert "Traceback" not in err and "error" not in err.lower()
    assert list(artifacts.iterdir()) == []  # the cancelled jobs wrote nothing


@pytest.fixture
def cli(host: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """(``host``: the conftest's, with this plugin registered.) Runs ``vt cogvideo serve ARGS``
    in-process with uvicorn's run loop replaced: returns
    (result, the app uvicorn would have served or None)."""
    import uvicorn

    from vt.cli import create_app

    monkeypatch.delenv("VT_API_TOKEN", raising=False)
    served: list[Any] = []

    def run(self: Any, sockets: list[socket.socket]) -> None:
        served.append((self.config.app, sockets[0].getsockname()))
        sockets[0].close()

    monkeypatch.setattr(uvicorn.Server, "run", run)

    def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[Any, Any]:
        served.clear()
        result = CliRunner().invoke(create_app(host), ["cogvideo", "serve", *args], env=env)
        return result, (served[0] if served else None)

    return invoke


def test_an_exposed_address_without_a_token_is_warned_about(
    cli: Any, tiny_cogvideo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt_cogvideo.server import command

    bound: list[tuple[str, int]] = []
    real_bind = command.bind_socket

    def bind_loopback(host: str, port: int) -> socket.socket:
        bound.append((host, port))  # never really listen on every interface in a test
        return real_bind("127.0.0.1", 0)

    monkeypatch.setattr(command, "bind_socket", bind_loopback)
    common = [
        "--model",
        str(tiny_cogvideo),
        "--artifact-dir",
        str(tmp_path / "a"),
        "--port",
        "8123",
    ]
    result, served = cli("--host", "0.0.0.0", *common)
    assert result.exit_code == 0, result.output
    assert "vt: warning: serving on 0.0.0.0 without a token" in result.stderr
    assert bound == [("0.0.0.0", 8123)] and served is not None
    result, served = cli("--host", "0.0.0.0", "--token", "abc", *common)
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert served[0].state.settings.token == "abc"
    assert "token required" in result.stderr
    result, served = cli("--host", "0.0.0.0", *common, env={"VT_API_TOKEN": "from-env"})
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert served[0].state.settings.token == "from-env"
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        result, _ = cli("--host", loopback, *common)
        assert result.exit_code == 0 and "warning" not in result.stderr, loopback


def test_serve_defaults_to_loopback_port_8000(
    cli: Any,
    tiny_cogvideo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vt_cogvideo.server import command

    asked: list[tuple[str, int]] = []
    monkeypatch.setattr(
        command,
        "bind_socket",
        lambda h, p: asked.append((h, p)) or socket.create_server(("127.0.0.1", 0)),
    )
    monkeypatch.chdir(tmp_path)
    result, served = cli("--model", str(tiny_cogvideo))
    assert result.exit_code == 0, result.output
    assert asked == [("127.0.0.1", 8000)]
    settings = served[0].state.settings
    assert settings.artifact_dir == (tmp_path / "outputs" / "api").resolve()
    assert (settings.queue_size, settings.keep_artifacts, settings.max_upload_bytes) == (
        8,
        50,
        20 * 1024 * 1024,
    )
    assert settings.token is None and settings.lora_dir is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue-size", "0"], "--queue-size"),
        (["--port", "70000"], "--port"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--keep-artifacts", "-1"], "--keep-artifacts"),
        (["--token", ""], "--token"),
        (["--lora-dir", "/no/such/folder"], "--lora-dir"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    cli: Any, tiny_cogvideo: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result, served = cli("--model", str(tiny_cogvideo), "--artifact-dir", str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vt: error:") and message in lines[0]
    assert served is None


def test_a_missing_model_or_a_busy_port_stops_serve_with_one_line(
    cli: Any, tiny_cogvideo: Path, tmp_path: Path
) -> None:
    result, served = cli(
        "--model", str(tmp_path / "no-model"), "--artifact-dir", str(tmp_path / "a")
    )
    assert result.exit_code in (1, 2) and served is None
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result, served = cli(
            "--model",
            str(tiny_cogvideo),
            "--artifact-dir",
            str(tmp_path / "a"),
            "--port",
            str(port),
        )
    assert result.exit_code == 1 and served is None
    assert result.stderr.strip() == (
        f"vt: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_the_cli_does_not_import_the_server_stack_for_help() -> None:
    code = (
        "import sys; from vt.cli import main\n"
        "try:\n    main(['cogvideo', 'serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch', 'diffusers') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--max-upload-mb" in done.stdout and "--keep-artifacts" in done.stdout
    assert "VT_API_TOKEN" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"
