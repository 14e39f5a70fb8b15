"""``vt cogvideo serve``: the HTTP API and web page over uvicorn.

Importing this module is cheap (no FastAPI, torch or diffusers): they load when the command
runs.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from vt.errors import VtError
from vt_cogvideo.server.settings import MIB, TOKEN_ENV, ServerSettings, exposure_warning

NETWORK = "Network and access"
LIMITS = "Limits and storage"


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: a free one), or a VtError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise VtError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise VtError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; anything but loopback exposes the API (use a token).",
            rich_help_panel=NETWORK,
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port (0: any free one, printed).", rich_help_panel=NETWORK)
    ] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_ENV,
            show_envvar=True,
            help="Require 'Authorization: Bearer TOKEN' on "
            "every endpoint but /health (prefer the environment variable: a command line is "
            "visible to other users).",
            rich_help_panel=NETWORK,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="CogVideoX I2V model: Hugging "
            "Face id or diffusers folder (default: "
            "CogVideoX-5B-I2V).",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cuda, cuda:N or cpu (default: cuda when available).")
    ] = None,
    artifact_dir: Annotated[
        Path,
        typer.Option(
            help="Where generated videos are written and served from (created if missing).",
            rich_help_panel=LIMITS,
        ),
    ] = Path("outputs/api"),
    lora_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of LoRAs requests may name (none: requests cannot use a LoRA).",
            rich_help_panel=LIMITS,
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest image upload (413 above).", rich_help_panel=LIMITS)
    ] = 20.0,
    max_image_pixels: Annotated[
        int,
        typer.Option(
            help="Largest image (width x height) accepted (422 above).", rich_help_panel=LIMITS
        ),
    ] = 40_000_000,
    queue_size: Annotated[
        int,
        typer.Option(
            help="Jobs that may wait behind the running one (429 beyond).", rich_help_panel=LIMITS
        ),
    ] = 8,
    keep_artifacts: Annotated[
        int,
        typer.Option(
            help="Keep the newest N generated videos, "
            "delete older ones the server wrote (0: keep "
            "all).",
            rich_help_panel=LIMITS,
        ),
    ] = 50,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the generation API (FastAPI) and its web page on HOST:PORT; one generation runs
    at a time. See the plugin's docs/api.md."""
    try:
        import uvicorn

        from vt_cogvideo.server.app import create_app
    except ImportError as exc:
        raise VtError(
            f"vt cogvideo serve needs FastAPI and uvicorn ({exc.name} is missing): "
            "pip install 'vt-cogvideo[serve]'"
        ) from exc
    settings = ServerSettings(
        model=model,
        device=device,
        host=host,
        port=port,
        token=token,
        artifact_dir=artifact_dir,
        lora_dir=lora_dir,
        max_upload_bytes=int(max_upload_mb * MIB),
        max_image_pixels=max_image_pixels,
        queue_size=queue_size,
        keep_artifacts=keep_artifacts,
    ).checked()
    warning = exposure_warning(host, settings.token)
    if warning:
        typer.echo(f"vt: warning: {warning}", err=True)
    app = create_app(settings)
    app.state.generator.spec  # noqa: B018 - fail now, not on the first request, without a model
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"vt: cogvideo API on http://{shown}:{bound_port}/ (artifacts in "
        f"{settings.artifact_dir}{'; token required' if settings.token else ''})",
        err=True,
    )
    runner = app.state.runner

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # stop the generation first, so that requests waiting on it get their answer
            # within the graceful shutdown period
            runner.shutdown()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    config = uvicorn.Config(
        app, log_level=log_level, timeout_graceful_shutdown=10, server_header=False
    )
    Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``vt cogvideo`` group."""
    app.command("serve")(serve)
