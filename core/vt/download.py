"""The one download helper every plugin uses (model weights, video URLs).

``download(url, dest, ...)`` fetches http(s) only, on every hop: a redirect to any other
scheme is refused before anything connects, and redirects are capped. The size limit holds
from ``Content-Length`` and again while streaming; ``timeout`` bounds the whole transfer and
no single read waits longer than ``STALL_TIMEOUT``. Bytes go to a ``vt.tempfiles`` name
beside ``dest`` (so a killed run's leftovers are cleaned by the next download into that
folder) and are renamed over ``dest`` only once complete and, when ``sha256`` is given,
verified. Failures raise one-line :class:`vt.errors.DownloadError` subclasses.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from vt import __version__
from vt.atomic import atomic_file
from vt.errors import (
    ChecksumMismatchError,
    DownloadError,
    DownloadRefusedError,
    DownloadTimeoutError,
    DownloadTooLargeError,
)
from vt.tempfiles import clean_stale

SCHEMES = ("http", "https")
STALL_TIMEOUT = 60.0  # no single connect or read waits longer than this
CHUNK = 1 << 20


def check_scheme(url: str) -> None:
    """Refuse anything but http(s) URLs (one line saying which scheme)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise DownloadRefusedError(f"download of {shown} refused (http and https only): {url}")


class _RedirectGuard(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects only, at most ``max_redirects`` of them."""

    def __init__(self, url: str, max_redirects: int) -> None:
        self.url = url
        self.max_redirects = max_redirects
        self.hops = 0
        # urllib's own loop limits must not fire first: they report a bare HTTP error
        self.max_repeats = self.max_redirections = max_redirects + 2  # type: ignore[misc]

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        location = headers.get("location") or headers.get("uri")
        if location:
            target = urllib.parse.urljoin(req.full_url, location)
            scheme = urllib.parse.urlsplit(target).scheme.lower()
            if scheme not in SCHEMES:  # checked before urllib opens anything for it
                fp.close()
                raise DownloadRefusedError(
                    f"redirect to {scheme}:// refused (only http and https are followed): "
                    f"{req.full_url} -> {target}"
                )
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        self.hops += 1
        if self.hops > self.max_redirects:
            fp.close()
            raise DownloadRefusedError(
                f"too many redirects (more than {self.max_redirects}) from {self.url}"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(url: str, max_redirects: int) -> urllib.request.OpenerDirector:
    """http(s) handlers only: even a redirect that slipped past the guard cannot reach ftp://,
    file:// or data:."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _RedirectGuard(url, max_redirects),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).strip().splitlines()
    return text[0] if text and text[0] else type(reason).__name__


def _timed_out(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, TimeoutError) or "timed out" in str(reason)


def _open(url: str, timeout: float, max_redirects: int) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": f"vt/{__version__}"})
    try:
        return _opener(url, max_redirects).open(request, timeout=min(timeout, STALL_TIMEOUT))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DownloadError(f"download failed: HTTP {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        if _timed_out(exc):
            raise DownloadTimeoutError(f"download timed out after {timeout:g}s: {url}") from None
        raise DownloadError(f"download failed: {_reason(exc)} ({url})") from None


def _set_timeout(response: Any, seconds: float) -> None:
    """Shorten the socket timeout so one slow read cannot outlive the overall deadline."""
    try:
        response.fp.raw._sock.settimeout(seconds)
    except AttributeError:
        pass


def _stream(
    response: Any,
    out: BinaryIO,
    *,
    url: str,
    max_bytes: int,
    timeout: float,
    deadline: float,
    update: Callable[[bytes], None],
) -> int:
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DownloadTimeoutError(f"download timed out after {timeout:g}s: {url}")
        _set_timeout(response, min(remaining, STALL_TIMEOUT))
        try:
            chunk = response.read1(min(CHUNK, max_bytes + 1 - total))
        except (TimeoutError, OSError) as exc:
            if _timed_out(exc):
                raise DownloadTimeoutError(
                    f"download timed out after {timeout:g}s: {url}"
                ) from None
            raise DownloadError(f"download failed: {_reason(exc)} ({url})") from None
        if not chunk:
            return total
        total += len(chunk)
        if total > max_bytes:
            raise DownloadTooLargeError(
                f"download too large: over the {max_bytes}-byte limit ({url})"
            )
        update(chunk)
        try:
            out.write(chunk)
        except OSError as exc:
            raise DownloadError(
                f"cannot write the download: {exc.strerror or exc} ({url})"
            ) from None


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    max_bytes: int,
    timeout: float,
    sha256: str | None = None,
    max_redirects: int = 5,
) -> Path:
    """Fetch ``url`` into ``dest`` atomically; returns ``dest`` (see the module docstring)."""
    check_scheme(url)
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {dest.parent}: {exc.strerror or exc}") from None
    clean_stale(dest.parent)  # leftovers of killed downloads into this folder
    deadline = time.monotonic() + timeout
    digest = hashlib.sha256()
    with _open(url, timeout, max_redirects) as response:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise DownloadTooLargeError(
                f"download too large: {int(length)} bytes > limit {max_bytes} ({url})"
            )
        try:
            # replaces an older copy (a refreshed model); nothing is kept unless verified
            with atomic_file(dest, overwrite=True) as tmp:
                with open(tmp, "wb") as out:
                    total = _stream(
                        response,
                        out,
                        url=url,
                        max_bytes=max_bytes,
                        timeout=timeout,
                        deadline=deadline,
                        update=digest.update,
                    )
                if total == 0:
                    raise DownloadError(f"download is empty: {url}")
                if sha256 and digest.hexdigest() != sha256.lower():
                    raise ChecksumMismatchError(
                        f"download of {url} failed verification: sha256 {digest.hexdigest()}, "
                        f"expected {sha256.lower()}; nothing was saved"
                    )
        except OSError as exc:  # creating, writing or renaming the file
            raise DownloadError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return dest
