"""Downloads: `open_url` fetches a file given as a local path, a `file://` URL or an http(s) URL.

Downloads are cached (default cache dir: env `GANFORMER_CACHE_DIR`, else `~/.cache/ganformer`), streamed to a
`.partial` file with a progress bar, resumed with an HTTP Range request when a partial file exists, verified against
an optional md5/sha256 and only then renamed into place. Google Drive links go through Drive's "confirm" page.
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import os
import re
import time
import urllib.parse
import urllib.request
from typing import IO, Iterator, Optional, Union

import requests
from tqdm import tqdm

from dnnlib.files import file_digests, not_a_file_reason
from dnnlib.util import UserError

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


def _checksum_problem(path: str, md5: Optional[str], sha256: Optional[str]) -> Optional[str]:
    """Returns a description of the first checksum mismatch, or None when all given checksums match."""
    wanted = {kind: want.strip().lower() for kind, want in (("md5", md5), ("sha256", sha256)) if want}
    got = file_digests(path, wanted)
    for kind, want in wanted.items():
        if got[kind] != want:
            return f"{kind} is {got[kind]}, expected {want}"
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
