"""Errors vt reports to users as one clear line."""

from __future__ import annotations


class VtError(Exception):
    """A failure worth one line on stderr and exit code 1 (no traceback unless --debug)."""

    exit_code = 1


class UsageError(VtError):
    """The user asked for something invalid: exit code 2."""

    exit_code = 2


class InputError(VtError):
    """An input file is missing, unreadable, or not a video we can decode."""


class UnreadableInputError(InputError):
    """FFmpeg cannot open the container at all (not a media file): since every decoder vt
    has is built on FFmpeg, no other one is tried unless the user asked for it."""


class OutputError(VtError):
    """The output cannot be written where the user asked."""


class RegistryError(VtError):
    """A name is unknown or ambiguous in one of the registries."""


class ModelUnavailableError(VtError):
    """A model's weights cannot be found or loaded."""


class MissingModelConfigError(ModelUnavailableError):
    """A single-file checkpoint's diffusers configs are neither given nor to be had (not in
    the Hugging Face cache, offline): ``reason`` says which, without the way out, so that a
    command can name its own option for them."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(f"{reason}: {hint}" if hint else reason)
        self.reason = reason


class UntrustedModelError(UsageError):
    """Loading this model file would run code from it, and the user has not said to trust it."""


class DownloadError(VtError):
    """A download failed: network, HTTP status, disk (see the subclasses for refusals)."""


class DownloadRefusedError(DownloadError):
    """A URL or a redirect vt will not follow (scheme, too many redirects)."""


class DownloadTooLargeError(DownloadError):
    """The response is larger than the caller's limit."""


class DownloadTimeoutError(DownloadError):
    """The download did not finish in time."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes are not the expected ones (sha256); nothing was kept."""
