"""What ``vt cogvideo serve`` is configured with, and the checks on it made before binding."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from vt.errors import UsageError

#: the environment variable that holds the API token when ``--token`` is not given
TOKEN_ENV = "VT_API_TOKEN"

MIB = 1024 * 1024


@dataclass
class ServerSettings:
    """Options of the API server (the ``serve`` command's options, in Python)."""

    model: str | None = None  # None: the generator's default (CogVideoX-5B-I2V)
    device: str | None = None  # None: cuda when available, else cpu
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # None: no authentication (only sensible on loopback)
    artifact_dir: Path = Path("outputs/api")
    lora_dir: Path | None = None  # None: requests cannot name a LoRA
    max_upload_bytes: int = 20 * MIB
    max_image_pixels: int = 40_000_000  # checked from the header, before decoding
    queue_size: int = 8  # jobs waiting behind the running one; more is a 429
    keep_artifacts: int = 50  # newest videos kept in artifact_dir; 0 keeps all
    keep_jobs: int = 1000  # finished job records kept in memory
    max_prompt_chars: int = 4000  # vt_cogvideo.generation.MAX_PROMPT_CHARS

    def checked(self) -> ServerSettings:
        """Refuse impossible values (UsageError); resolve folders (the artifact folder is
        created, the LoRA folder must exist)."""
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port {self.port}: must be between 0 and 65535")
        if self.token is not None and not self.token.strip():
            raise UsageError(f"--token (or {TOKEN_ENV}) is empty: give a secret or leave it unset")
        if self.max_upload_bytes < 1:
            raise UsageError("--max-upload-mb must be positive")
        if self.queue_size < 1:
            raise UsageError(f"--queue-size {self.queue_size}: must be at least 1")
        if self.keep_artifacts < 0:
            raise UsageError(
                f"--keep-artifacts {self.keep_artifacts}: must be 0 (keep all) or more"
            )
        if self.max_image_pixels < 1:
            raise UsageError("--max-image-pixels must be positive")
        artifact_dir = Path(self.artifact_dir).expanduser()
        try:
            artifact_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"--artifact-dir {artifact_dir}: cannot create it ({exc.strerror})"
            ) from exc
        if not os.access(artifact_dir, os.W_OK | os.X_OK):
            raise UsageError(f"--artifact-dir {artifact_dir}: not writable")
        lora_dir = None
        if self.lora_dir is not None:
            lora_dir = Path(self.lora_dir).expanduser()
            if not lora_dir.is_dir():
                raise UsageError(f"--lora-dir {lora_dir}: no such folder")
            lora_dir = lora_dir.resolve()
        return ServerSettings(
            **{**self.__dict__, "artifact_dir": artifact_dir.resolve(), "lora_dir": lora_dir}
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_warning(host: str, token: str | None) -> str | None:
    """The warning to print when the API is reachable from other machines without a token."""
    if token or is_loopback(host):
        return None
    return (
        f"serving on {host} without a token: anyone who can reach this port can run "
        f"generations and download every artifact; set --token or {TOKEN_ENV}"
    )
