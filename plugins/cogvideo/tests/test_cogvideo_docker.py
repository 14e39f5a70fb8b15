"""The CUDA Dockerfile cannot be built here (no Docker, no GPU): its structure is checked, and
its entrypoint script is run for real against a stand-in ``vt``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]
REPO = PLUGIN.parents[1]
INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (PLUGIN / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word, rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def test_dockerfile_is_well_formed_and_uses_cuda() -> None:
    steps = instructions()
    assert all(word in INSTRUCTIONS for word, _ in steps), [w for w, _ in steps]
    assert steps[0][0] == "FROM" and steps[0][1].startswith("nvidia/cuda:")
    assert "runtime" in steps[0][1]
    words = [w for w, _ in steps]
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert ("USER", "vt") in steps and ("EXPOSE", "8000") in steps
    entry = json.loads(dict(steps)["ENTRYPOINT"])  # exec form: signals reach the server
    assert entry == ["/usr/local/bin/vt-cogvideo-serve"]
    for word, args in steps:  # every COPY source exists in the build context (the repo)
        if word == "COPY":
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), source
    assert any(w == "RUN" and "plugins/cogvideo[serve]" in a for w, a in steps)


def _stub_vt(tmp_path: Path) -> dict[str, str]:
    """A ``vt`` on PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "vt"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'args.txt'}\n")
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "VT_API_TOKEN"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_entrypoint_refuses_to_serve_without_a_token(tmp_path: Path) -> None:
    env = _stub_vt(tmp_path)
    proc = subprocess.run(
        [str(PLUGIN / "docker" / "entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("vt: error: VT_API_TOKEN is not set")
    assert not (tmp_path / "args.txt").exists()  # the server never started


def test_entrypoint_serves_on_all_interfaces_with_the_token(tmp_path: Path) -> None:
    env = {**_stub_vt(tmp_path), "VT_API_TOKEN": "secret-token"}
    proc = subprocess.run(
        [str(PLUGIN / "docker" / "entrypoint.sh"), "--queue-size", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "args.txt").read_text().split("\n")[:-1]
    assert args[:2] == ["cogvideo", "serve"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == "8000"
    assert args[-2:] == ["--queue-size", "4"]
    assert "secret-token" not in args  # read by serve from VT_API_TOKEN, not shown in ps
