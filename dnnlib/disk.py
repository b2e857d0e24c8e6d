"""Disk-full errors as one line: what could not be written, about how much space it needs, how much is free.

Writers wrap their work in `disk_full_as_user_error(what, folder, needed)`: a full disk or an exceeded quota
(`ENOSPC`/`EDQUOT` from Python, or TensorFlow's `ResourceExhaustedError` whose message carries the same text)
becomes a `UserError`; every other error passes through unchanged. The writers themselves keep existing files
intact (temporary names, then a rename), so the message can say so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from typing import Callable, Iterator, Optional, Union

from dnnlib.util import UserError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # EFBIG: the file size limit
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "File too large")


def is_disk_full(exc: BaseException) -> bool:
    """True for a full disk, an exceeded quota or a reached file size limit: an `OSError` with `ENOSPC`, `EDQUOT` or
    `EFBIG`, or a TensorFlow error (which carries only the errno's text, e.g. `ResourceExhaustedError: ...; No space
    left on device`)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    return type(exc).__module__.startswith("tensorflow") and any(t in str(exc) for t in _DISK_FULL_TEXT)


def format_bytes(count: Optional[float]) -> str:
    """A size in binary units, for messages: `"0 B"`, `"812 B"`, `"14.2 KiB"`, `"3.1 MiB"`, `"1.3 GiB"`, `"2.0 TiB"`
    (powers of 1024, one decimal); `"?"` for None (unknown)."""
    if count is None:
        return "?"
    value = max(float(count), 0.0)
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift:
            return f"{value / (1 << shift):.1f} {unit}"
    return f"{int(value)} B"


def free_bytes(path: str) -> Optional[int]:
    """Free bytes (for unprivileged users) on the filesystem of `path` or of its nearest existing parent."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full_error(what: str, folder: str, needed: Optional[int], note: str = "") -> UserError:
    """The one-line error: `disk full: could not write <what> to <folder> (needs about N MiB, M MiB free there)`.

    Args:
        what: What was being written, e.g. `"checkpoint ckpt-12"`.
        folder: Where it was being written.
        needed: Estimated bytes it needs (from the bytes being written), or None when unknown.
        note: Appended after a semicolon, e.g. what is still intact and how to continue.
    """
    need = f"needs about {format_bytes(needed)}" if needed else "needs more space"
    message = (f"disk full: could not write {what} to {folder} ({need}, {format_bytes(free_bytes(folder))} free "
               f"there)")
    return UserError(message + (f"; {note}" if note else ""))


@contextlib.contextmanager
def disk_full_as_user_error(what: str, folder: str, needed: Union[None, int, Callable[[], Optional[int]]] = None,
                            note: str = "") -> Iterator[None]:
    """Turns a disk-full error raised inside the block into `disk_full_error(...)`; other errors pass unchanged.

    Args:
        what: What the block writes (see `disk_full_error`).
        folder: Where it writes.
        needed: Estimated bytes, or a function computing them (called only when the disk is full).
        note: See `disk_full_error`.
    """
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # OSError, or TensorFlow's OpError subclasses
        if not is_disk_full(exc):
            raise
        filename = getattr(exc, "filename", None)  # set when open() itself failed
        what = f"{what} ({os.path.basename(str(filename))})" if filename else what
        raise disk_full_error(what, folder, needed() if callable(needed) else needed, note) from None


# Errors about a path (not about space) that a user fixes by choosing or repairing a folder.
PATH_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR,
               errno.EEXIST, errno.ELOOP)
_TF_PATH_ERRORS = ("PermissionDeniedError",)


def path_error_message(exc: BaseException) -> Optional[str]:
    """`<path>: <reason>` for an error about a path (read-only filesystem, permissions, a name too long, a file
    where a folder is expected), else None. TensorFlow's permission errors are included (one line of them)."""
    if isinstance(exc, OSError) and exc.errno in PATH_ERRNOS:
        where = exc.filename if exc.filename is not None else "a file"
        return f"{where}: {(exc.strerror or str(exc)).lower()}"
    if type(exc).__module__.startswith("tensorflow") and (type(exc).__name__ in _TF_PATH_ERRORS
                                                          or "Read-only file system" in str(exc)):
        return " ".join(str(getattr(exc, "message", exc)).split())[:300]
    return None


@contextlib.contextmanager
def path_errors_as_user_error(fix: str) -> Iterator[None]:
    """Turns an error about a path raised in the block (`path_error_message`) into a one-line `UserError` ending
    with `fix` (e.g. "pass a writable --result-dir"); every other error passes unchanged."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        message = path_error_message(exc)
        if message is None:
            raise
        raise UserError(f"{message}; {fix}") from None
