"""Miscellaneous utilities: EasyDict, user-facing errors, a tee logger, time formatting and `open_url`.

`open_url` fetches a file given as a local path, a `file://` URL or an http(s) URL. Downloads are cached
(default cache dir: env `GANFORMER_CACHE_DIR`, else `~/.cache/ganformer`), streamed to a `.partial` file with a
progress bar, resumed with an HTTP Range request when a partial file exists, verified against an optional
md5/sha256 and only then renamed into place. Google Drive links go through Drive's "confirm" page.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html.parser
import os
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import IO, Any, BinaryIO, Iterator, Optional, TextIO, Union

import requests
from tqdm import tqdm


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


def current_umask() -> int:
    """The process's umask, read from `/proc/self/status` where available (changing it to read it would race with
    other threads creating files), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def path_kind(path: str) -> str:
    """What a path that is not a regular file is, for messages: `"a folder"`, `"a FIFO"`, `"a device"`, `"a socket"`,
    `"missing"` (also a dangling link) or `"a file"`."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file"


def not_a_file_reason(path: str) -> str:
    """Why `path` cannot be read as a file: `"file not found; check the path"`, or what it is instead (a folder,
    a FIFO, a device)."""
    kind = path_kind(path)
    if kind == "missing":
        return "file not found; check the path"
    hint = "; pass a file inside it" if kind == "a folder" else "; pass a regular file"
    return f"is {kind}, not a regular file{hint}"


@contextlib.contextmanager
def atomic_file(path: str, fsync: bool = True) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` only when the block ends without an error.

    Writes go to a temporary file in the same folder (`.<name>.tmp-*`), which is flushed, fsynced and renamed over
    `path`: readers see the old file or the whole new one, never a part. The file gets the mode a plain `open`
    would give it (0666 minus the umask). On any error (e.g. disk full) the temporary file is removed and `path`
    is untouched.

    Raises:
        UserError: `path` is a folder (or another non-file), which a file cannot replace.
    """
    import tempfile
    if os.path.lexists(path) and path_kind(path) not in ("a file", "missing"):
        raise UserError(f"{path}: is {path_kind(path)}, so the file cannot be written there; move it away or "
                        f"write elsewhere")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_atomic(path: str, data: Union[bytes, str], fsync: bool = True) -> None:
    """Writes `data` (str as UTF-8) to `path` through `atomic_file`."""
    with atomic_file(path, fsync=fsync) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json_atomic(path: str, data: Any) -> None:
    """`write_atomic` of `data` as indented, key-sorted JSON."""
    import json
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


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


# ----------------------------------------------------------------------------------------------------------------
# open_url

_CHUNK_BYTES = 1 << 20
_STREAM_CHUNK_BYTES = 1 << 16  # small, so that little is lost when a connection drops mid-chunk
_GDRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")
_GDRIVE_DOWNLOAD_URL = "https://drive.usercontent.google.com/download"


def default_cache_dir() -> str:
    """Returns the download cache dir: env `GANFORMER_CACHE_DIR`, else `~/.cache/ganformer`."""
    env = os.environ.get("GANFORMER_CACHE_DIR")
    return env if env else os.path.join(os.path.expanduser("~"), ".cache", "ganformer")


def cache_path_for(url: str, cache_dir: Optional[str] = None, file_name: Optional[str] = None) -> str:
    """Returns where `open_url` caches `url`: `<cache_dir>/<md5(url)[:10]>_<file name>`."""
    name = file_name or os.path.basename(urllib.parse.urlparse(url).path) or "download"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    digest = hashlib.md5(url.encode("utf-8")).hexdigest()[:10]
    return os.path.join(cache_dir or default_cache_dir(), f"{digest}_{name}")


def _local_path(url_or_path: str) -> Optional[str]:
    """Returns the local file path for a plain path or a `file://` URL, or None for other URLs."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url_or_path):
        return os.path.expanduser(url_or_path)
    parsed = urllib.parse.urlparse(url_or_path)
    if parsed.scheme != "file":
        return None
    if parsed.netloc not in ("", "localhost"):
        raise UserError(f"{url_or_path}: file:// URLs must name a local file (file:///path/to/file)")
    return urllib.request.url2pathname(parsed.path)


def _digests(path: str, md5: Optional[str], sha256: Optional[str]) -> dict:
    """Computes the requested digests of a file in one pass; returns {"md5": hex, "sha256": hex} (requested only)."""
    hashers = {}
    if md5:
        hashers["md5"] = hashlib.md5()
    if sha256:
        hashers["sha256"] = hashlib.sha256()
    if hashers:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK_BYTES), b""):
                for h in hashers.values():
                    h.update(block)
    return {k: h.hexdigest() for k, h in hashers.items()}


def _checksum_problem(path: str, md5: Optional[str], sha256: Optional[str]) -> Optional[str]:
    """Returns a description of the first checksum mismatch, or None when all given checksums match."""
    got = _digests(path, md5, sha256)
    for kind, want in (("md5", md5), ("sha256", sha256)):
        if want and got[kind] != want.strip().lower():
            return f"{kind} is {got[kind]}, expected {want.strip().lower()}"
    return None


def _offline_hint(url: str, dest: str) -> str:
    return (f"download it on a machine with network access (e.g. open {url} in a browser) and pass the local file "
            f"path instead, or copy the file to {dest}")


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Holds an exclusive advisory lock on `path` (POSIX only; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_url(url_or_path: str, *, cache_dir: Optional[str] = None, md5: Optional[str] = None,
             sha256: Optional[str] = None, return_path: bool = False, progress: bool = True,
             num_attempts: int = 3, timeout: float = 30.0, file_name: Optional[str] = None) -> Union[IO[bytes], str]:
    """Opens a local file or a URL, downloading and caching http(s) URLs.

    Args:
        url_or_path: Local path, `file://` URL, or http(s) URL (Google Drive `uc?id=` links included).
        cache_dir: Download cache dir; default env `GANFORMER_CACHE_DIR`, else `~/.cache/ganformer`.
        md5: Expected md5 hex digest, or None.
        sha256: Expected sha256 hex digest, or None.
        return_path: Return the local file path instead of an open binary file.
        progress: Show a tqdm progress bar while downloading.
        num_attempts: Connection attempts before giving up (each resumes the partial download).
        timeout: Connect/read timeout in seconds per request.
        file_name: Name of the cached file (after a short URL hash); default: the URL's last path component.

    Returns:
        An open binary file (caller closes it), or its path when `return_path` is set.

    Raises:
        UserError: Missing local file, unsupported scheme, HTTP error, no connection or checksum mismatch.
    """
    local = _local_path(url_or_path)
    if local is not None:
        if not os.path.isfile(local):
            raise UserError(f"{url_or_path}: {not_a_file_reason(local)}")
        problem = _checksum_problem(local, md5, sha256)
        if problem:
            raise UserError(f"{url_or_path}: checksum mismatch ({problem}); the file is corrupt or not the "
                            f"expected one")
        return local if return_path else open(local, "rb")
    scheme = urllib.parse.urlparse(url_or_path).scheme
    if scheme not in ("http", "https"):
        raise UserError(f"{url_or_path}: unsupported URL scheme '{scheme}'; use http(s)://, file:// or a local path")
    dest = cache_path_for(url_or_path, cache_dir, file_name)
    if not (os.path.isfile(dest) and _checksum_problem(dest, md5, sha256) is None):
        _download(url_or_path, dest, md5=md5, sha256=sha256, progress=progress, num_attempts=num_attempts,
                  timeout=timeout)
    return dest if return_path else open(dest, "rb")


def _download(url: str, dest: str, *, md5: Optional[str], sha256: Optional[str], progress: bool,
              num_attempts: int, timeout: float) -> None:
    """Downloads `url` to `dest` via `dest + ".partial"` (resumed when present), verifies and renames it."""
    cache_dir = os.path.dirname(dest) or "."
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{cache_dir}: cannot create the download cache dir ({exc.strerror}); "
                        f"set GANFORMER_CACHE_DIR to a writable directory") from None
    part = dest + ".partial"
    with _file_lock(dest + ".lock"):
        if os.path.isfile(dest):
            if _checksum_problem(dest, md5, sha256) is None:
                return  # another process finished the download while we waited for the lock
            os.remove(dest)
        _fetch_with_retries(url, part, dest, progress=progress, num_attempts=num_attempts, timeout=timeout)
        problem = _checksum_problem(part, md5, sha256)
        if problem:
            os.remove(part)
            raise UserError(f"{url}: downloaded file failed verification ({problem}); it was deleted. Try again, "
                            f"or {_offline_hint(url, dest)}")
        os.replace(part, dest)


def _fetch_with_retries(url: str, part: str, dest: str, *, progress: bool, num_attempts: int,
                        timeout: float) -> None:
    """Runs `_fetch` up to `num_attempts` times; connection failures become a UserError with an offline hint."""
    retryable = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    last_error: Optional[Exception] = None
    with requests.Session() as session:
        for attempt in range(max(int(num_attempts), 1)):
            if attempt:
                time.sleep(min(0.5 * attempt, 3.0))
            try:
                _fetch(session, url, part, dest, progress=progress, timeout=timeout)
                return
            except retryable as exc:
                last_error = exc
    reason = type(last_error).__name__ if last_error is not None else "unknown error"
    raise UserError(f"{url}: cannot download ({reason}: no connection, or the server is unreachable); "
                    f"{_offline_hint(url, dest)}")


def _fetch(session: requests.Session, url: str, part: str, dest: str, *, progress: bool, timeout: float) -> None:
    """Streams `url` into `part`, appending from its current size when the server honours an HTTP Range."""
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    resp = _request(session, url, dest, offset, timeout)
    if offset and (resp.status_code == 416 or (resp.status_code == 206 and _range_start(resp) != offset)):
        resp.close()  # the partial file cannot be extended as it is: start over
        os.remove(part)
        offset = 0
        resp = _request(session, url, dest, offset, timeout)
    with resp:
        if resp.status_code == 206 and offset and _range_start(resp) == offset:
            mode = "ab"
        elif resp.status_code == 200:
            mode, offset = "wb", 0
        else:
            raise UserError(f"{url}: HTTP {resp.status_code} {resp.reason}; check the URL, or "
                            f"{_offline_hint(url, dest)}")
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                         desc=os.path.basename(dest), disable=not progress, leave=False) as bar:
            for chunk in resp.iter_content(_STREAM_CHUNK_BYTES):
                f.write(chunk)
                bar.update(len(chunk))
    size = os.path.getsize(part)
    if total is not None and size != total:
        raise requests.ConnectionError(f"incomplete download: got {size} of {total} bytes")


def _range_start(resp: requests.Response) -> int:
    """Returns the first byte position of a 206 response's Content-Range, or -1 if missing/unparsable."""
    match = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else -1


def _is_gdrive(url: str) -> bool:
    return urllib.parse.urlparse(url).hostname in _GDRIVE_HOSTS


def _request(session: requests.Session, url: str, dest: str, offset: int, timeout: float) -> requests.Response:
    """GETs `url` (streamed) from byte `offset`; for Google Drive, follows the virus-scan confirm page."""
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    if not _is_gdrive(url):
        return resp
    for _ in range(3):
        if "text/html" not in resp.headers.get("Content-Type", "") or resp.status_code not in (200, 206):
            return resp
        target = _gdrive_confirm_target(resp)
        resp.close()
        if target is None:
            raise UserError(f"{url}: Google Drive returned a web page instead of the file (file unavailable or its "
                            f"download quota exceeded); {_offline_hint(url, dest)}")
        next_url, params = target
        resp = session.get(next_url, params=params, headers=headers, stream=True, timeout=timeout)
    raise UserError(f"{url}: Google Drive kept asking for confirmation; {_offline_hint(url, dest)}")


class _FormParser(html.parser.HTMLParser):
    """Collects every <form>'s action and its <input name=... value=...> fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def _gdrive_confirm_target(resp: requests.Response) -> Optional[tuple]:
    """Finds the follow-up request behind a Google Drive warning page.

    Handles the `download_warning*` cookie (older Drive), and the HTML form with `confirm` (and `uuid`) fields
    posted to `drive.usercontent.google.com/download` (current Drive).

    Returns:
        `(url, params)` for the next GET, or None if the page holds no confirmation.
    """
    for name, value in resp.cookies.items():
        if name.startswith("download_warning"):
            return resp.url, {"confirm": value}
    page = resp.raw.read(4 * _CHUNK_BYTES, decode_content=True).decode("utf-8", errors="replace")
    parser = _FormParser()
    parser.feed(page)
    for form in parser.forms:
        if "confirm" in form["fields"]:
            action = urllib.parse.urljoin(resp.url, form["action"]) if form["action"] else _GDRIVE_DOWNLOAD_URL
            return action, dict(form["fields"])
    match = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if match:
        return resp.url, {"confirm": match.group(1)}
    return None
