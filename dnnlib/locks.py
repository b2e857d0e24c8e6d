"""Advisory folder locks: one process at a time owns a run folder or writes a dataset.

A lock is a small file (`run.lock` in a run folder, `.<name>.lock` beside a dataset) held with `fcntl.flock` and
holding the owner's PID, host and start time as JSON. The kernel drops an flock when its process ends, however it
ends (kill -9 included), so a lock file left behind by a dead process is stale: the next process takes it over and
says whose it was. A lock that another live process holds is a one-line `UserError` naming that process.

Locks are advisory: they exclude other users of this class, not other programs. On filesystems without flock
support (some network mounts) the lock falls back to the PID in the file (live on this host: held).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from typing import Any, Optional

from dnnlib.util import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_BUSY_ERRNOS = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def read_owner(path: str) -> Optional[dict[str, Any]]:
    """The `{"pid", "host", "started"}` record of a lock file, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def describe_owner(owner: Optional[dict[str, Any]]) -> str:
    """`PID 123 on host h (since 2024-01-01 12:00:00)`, or `another process` when the record is unknown."""
    if not owner:
        return "another process"
    since = owner.get("started")
    when = f" (since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))})" if isinstance(since, (int, float)) \
        else ""
    return f"PID {owner.get('pid', '?')} on host {owner.get('host', '?')}{when}"


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """An exclusive, non-blocking lock held through the file `path` until `release()` (or the process ends).

    Args:
        path: The lock file (created if missing; its folder must exist).
        what: What is locked, for messages, e.g. `"run folder results/exp-000"`.
        hint: What the user can do when another process holds it (ends the error message).
    """

    def __init__(self, path: str, what: str, hint: str) -> None:
        self.path = path
        self.what = what
        self.hint = hint
        self._fd: Optional[int] = None
        self.previous: Optional[dict[str, Any]] = None  # the stale owner taken over, if any

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> "FolderLock":
        """Takes the lock; prints a note when it takes over the stale lock of a process that has ended.

        Raises:
            UserError: Another live process holds it, or the lock file cannot be written (the message names it).
        """
        for _ in range(10):  # retried only when the file was replaced between open and flock
            fd = self._open()
            if not self._flock(fd):
                os.close(fd)
                raise UserError(f"{self.what} is in use by {describe_owner(read_owner(self.path))} (lock file "
                                f"{self.path}); {self.hint}")
            if self._same_file(fd):
                break
            os.close(fd)
        else:  # pragma: no cover - ten replacements in a row
            raise UserError(f"{self.what}: its lock file {self.path} keeps changing; {self.hint}")
        self._fd = fd
        self.previous = read_owner(self.path)
        self._write_owner(fd)
        if self.previous and self.previous.get("pid") != os.getpid():
            print(f"Note: {self.what} was locked by {describe_owner(self.previous)}, which has ended; taking over "
                  f"its stale lock", flush=True)
        return self

    def release(self) -> None:
        """Removes the lock file and drops the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if self._same_file(self._fd):
                os.remove(self.path)  # while still holding it: a waiting process then sees a new file
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"{self.what}: cannot create its lock file {self.path} ({exc.strerror}); check that "
                            f"the folder is writable") from None

    def _flock(self, fd: int) -> bool:
        """Tries the flock; falls back to the recorded PID where flock is unsupported. True when taken."""
        if fcntl is None:
            return not self._owner_alive()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in _BUSY_ERRNOS:
                return False
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return not self._owner_alive()
            raise

    def _owner_alive(self) -> bool:
        owner = read_owner(self.path)
        return bool(owner) and owner.get("host") == socket.gethostname() and owner.get("pid") != os.getpid() \
            and _pid_alive(owner.get("pid"))

    def _same_file(self, fd: int) -> bool:
        """Whether `path` still names the file open as `fd` (a releasing owner may have removed it)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _write_owner(self, fd: int) -> None:
        data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}) + "\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data.encode("utf-8"), 0)
        except OSError as exc:
            self.release()
            raise UserError(f"{self.what}: cannot write its lock file {self.path} ({exc.strerror}); check that "
                            f"the folder is writable and not full") from None
