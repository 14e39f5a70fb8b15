"""Atomic writes: nothing appears under a final name until it is complete.

What vt promises about the files and folders it writes (README, "Guarantees"):
- a file or frame folder is written under a temporary name beside the target and renamed
  into place only when complete; on an error, Ctrl-C, SIGTERM or SIGHUP the temporary is
  removed and the target left as it was;
- without ``overwrite`` the final rename fails if the target appeared meanwhile (two jobs
  writing one path never both "succeed");
- a frame folder is only ever replaced if vt made it (it holds a ``.vt-frames`` marker);
  replacing it replaces all of it;
- new files and folders follow the umask; a replaced file keeps its mode.

Temporary names come from ``vt.tempfiles`` (they carry the PID, so the leftovers of a killed
run are removed by the next one writing beside the same target).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from vt.errors import OutputError
from vt.tempfiles import clean_stale, temp_path

#: the file inside every frame folder vt writes: only such folders may be replaced
FRAMES_MARKER = ".vt-frames"


def is_vt_folder(folder: Path) -> bool:
    return (folder / FRAMES_MARKER).is_file()


class AtomicWrite:
    """A file or a frame folder written under a temporary name beside ``final`` (``path``)
    and renamed into place by ``commit()``; ``discard()`` removes it.

    Creating one removes the leftovers of killed runs beside ``final``. A file is created
    empty (it keeps the replaced file's mode with ``overwrite``); a folder holds the
    ``.vt-frames`` marker. Without ``overwrite`` the commit fails if ``final`` appeared
    meanwhile; a folder replaces only a marked one. As a context manager it yields the
    temporary path and commits on success; on any error, Ctrl-C, SIGTERM or SIGHUP the
    temporary is removed and ``final`` left as it was.
    """

    def __init__(
        self,
        final: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        folder: bool = False,
        suffix: str = "",
    ) -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        self.folder = folder
        clean_stale(self.final.parent)
        self.path = temp_path(self.final, suffix)
        if folder:
            self.path.mkdir()  # mode 0777 minus the umask
            (self.path / FRAMES_MARKER).write_text("frames written by vt\n")
        else:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            if overwrite and self.final.is_file():  # -y keeps the replaced file's mode
                os.chmod(self.path, stat.S_IMODE(self.final.stat().st_mode))
        self._handlers: dict[int, object] | None = None

    def commit(self) -> None:
        """Move the temporary into place (removed, and the error raised, if that fails)."""
        try:
            if self.folder:
                _commit_folder(self.path, self.final, self.overwrite)
            else:
                _commit_file(self.path, self.final, self.overwrite)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove the temporary (best effort: it runs while another error is on its way)."""
        try:
            if self.path.is_dir() and not self.path.is_symlink():
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> Path:
        self._handlers = _raise_on_termination()
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.discard()
        finally:
            _restore_handlers(self._handlers)


def atomic_file(
    path: str | os.PathLike[str], *, overwrite: bool = False, suffix: str = ""
) -> AtomicWrite:
    """``with atomic_file(path) as tmp:`` write ``tmp``; it becomes ``path`` when the block
    ends without error (see ``AtomicWrite``). ``suffix`` ends the temporary name, for writers
    that pick a format from the extension."""
    return AtomicWrite(path, overwrite=overwrite, suffix=suffix)


def atomic_folder(path: str | os.PathLike[str], *, overwrite: bool = False) -> AtomicWrite:
    """``with atomic_folder(path) as tmp:`` fill the folder ``tmp``; it becomes ``path`` when
    the block ends without error. It carries the ``.vt-frames`` marker, and replaces (with
    ``overwrite``) only an empty folder or one that carries it (see ``AtomicWrite``)."""
    return AtomicWrite(path, overwrite=overwrite, folder=True)


def _appeared(final: Path) -> OutputError:
    return OutputError(
        f"output {final} appeared while vt was writing it (another job?): not "
        "replaced; use --overwrite to replace it"
    )


def _commit_file(tmp: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        rename_noreplace(tmp, final)
    except FileExistsError:
        raise _appeared(final) from None


def _commit_folder(tmp: Path, final: Path, overwrite: bool) -> None:
    aside: Path | None = None
    if final.is_dir() and not final.is_symlink():
        if not any(final.iterdir()):
            final.rmdir()  # empty: nothing to keep
        elif overwrite and is_vt_folder(final):
            aside = temp_path(final)
            os.rename(final, aside)
        else:
            raise _appeared(final)
    try:
        rename_noreplace(tmp, final)
    except FileExistsError:
        if aside is not None:
            os.rename(aside, final)
        raise _appeared(final) from None
    except BaseException:
        if aside is not None:
            os.rename(aside, final)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)  # the previous run's frames, marked as vt's


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2() -> Callable[..., int] | None:
    import ctypes  # here: most runs never rename without replacing, and ctypes is slow to import

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[..., int] = libc.renameat2
        return fn
    except (OSError, AttributeError):
        return None


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists, atomically where the
    system allows it (``renameat2(RENAME_NOREPLACE)``, else a hard link for files)."""
    fn = _renameat2()
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        import ctypes

        err = ctypes.get_errno()
        if err == errno.EEXIST or err == errno.ENOTEMPTY:
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dst))
    if src.is_dir():  # no atomic way left: the window is a stat and a rename
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        os.rename(src, dst)
        return
    os.link(src, dst)  # fails if dst exists
    os.unlink(src)


_TERMINATION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def interrupt_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``KeyboardInterrupt`` inside the block (main thread), so the
    clean-up of work spanning several atomic writes runs too."""
    handlers = _raise_on_termination()
    try:
        yield
    finally:
        _restore_handlers(handlers)


def _raise_on_termination() -> dict[int, object] | None:
    """Turn SIGTERM and SIGHUP (a closed terminal, a dropped ssh) into KeyboardInterrupt so
    cleanup runs. Signals the user set to be ignored (nohup) stay ignored. Main thread only."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous: dict[int, object] = {}
    try:
        for sig in _TERMINATION_SIGNALS:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        _restore_handlers(previous)
        return None
    return previous


def _restore_handlers(previous: dict[int, object] | None) -> None:
    for sig, handler in (previous or {}).items():
        try:
            signal.signal(sig, handler)  # type: ignore[arg-type]
        except ValueError:  # pragma: no cover
            pass
