"""Miscellaneous utilities: EasyDict, user-facing errors and the one-line argument parser, a tee logger, time
formatting. Files and atomic writes are in `dnnlib.files`, downloads (`open_url`) in `dnnlib.download`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from typing import Any, Optional, TextIO, Union


class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


class UserError(Exception):
    """An error caused by bad input (a flag, a file); CLIs print its message as one line and exit non-zero."""


USER_ERROR_EXIT = 2


def print_user_error(exc: BaseException, prog: str = "") -> int:
    """Prints `[prog: ]error: <message>` on stderr as exactly one line; returns the exit status for user errors."""
    prefix = f"{prog}: " if prog else ""
    print(f"{prefix}error: {' '.join(str(exc).split())}", file=sys.stderr)
    return USER_ERROR_EXIT


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UserError`s (one line naming the flag, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


# ----------------------------------------------------------------------------------------------------------------
# Logger


class _Tee:
    """A text stream that writes to an original stream and to the logger's file."""

    def __init__(self, stream: TextIO, logger: "Logger") -> None:
        self._stream = stream
        self._logger = logger

    def write(self, text: str) -> int:
        self._stream.write(text)
        self._logger._write_file(text)
        if self._logger.should_flush:
            self.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()
        self._logger._flush_file()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... of the original stream
        return getattr(self._stream, name)


class Logger:
    """Tees everything written to `sys.stdout` and `sys.stderr` into a log file.

    Use as a context manager (`with Logger("log.txt"): ...`) or call `close()`; either restores the original
    streams. Without a file name the streams are still wrapped but nothing is written to disk.

    Args:
        file_name: Path of the log file, or None.
        file_mode: Mode to open the log file with ("w" to truncate, "a" to append).
        should_flush: Flush the streams and the file after every write.
    """

    def __init__(self, file_name: Optional[str] = None, file_mode: str = "w", should_flush: bool = True) -> None:
        self.file: Optional[TextIO] = open(file_name, file_mode, encoding="utf-8") if file_name else None
        self.should_flush = should_flush
        # reentrant: a signal handler that prints may run while this thread holds the lock (a plain lock would
        # wait for itself forever)
        self._lock = threading.RLock()
        self._orig_stdout = sys.stdout
        self._orig_stderr = sys.stderr
        self._stdout = _Tee(sys.stdout, self)
        self._stderr = _Tee(sys.stderr, self)
        sys.stdout = self._stdout
        sys.stderr = self._stderr

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _write_file(self, text: str) -> None:
        with self._lock:
            if self.file is not None:
                try:
                    self.file.write(text)
                except OSError:  # e.g. disk full: keep printing to the console, which is where errors are shown
                    self._drop_file()

    def _flush_file(self) -> None:
        with self._lock:
            if self.file is not None:
                try:
                    self.file.flush()
                except OSError:
                    self._drop_file()

    def _drop_file(self) -> None:
        """Stops writing the log file after a failed write (its unwritten buffer is lost); the lock is held."""
        file, self.file = self.file, None
        with contextlib.suppress(OSError):
            file.close()

    def flush(self) -> None:
        """Flushes both original streams and the log file."""
        self._orig_stdout.flush()
        self._orig_stderr.flush()
        self._flush_file()

    def close(self) -> None:
        """Flushes, restores the original `sys.stdout`/`sys.stderr` and closes the log file. Idempotent."""
        self.flush()
        if sys.stdout is self._stdout:
            sys.stdout = self._orig_stdout
        if sys.stderr is self._stderr:
            sys.stderr = self._orig_stderr
        with self._lock:
            if self.file is not None:
                self.file.close()
                self.file = None


def format_time(seconds: Union[int, float]) -> str:
    """Formats a duration compactly: `"42s"`, `"3m 05s"`, `"2h 03m 05s"`, `"1d 02h 03m"`."""
    s = int(round(max(float(seconds), 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"
