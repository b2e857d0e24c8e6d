"""Resumable downloads with md5 verification, including Google Drive's large-file confirmation page.

A download goes to `<dest>.part`; an interrupted run leaves that file, and the next run asks the server
for the remaining bytes (HTTP Range) and appends. A finished download is verified against its md5 and
renamed to `<dest>`; a small `<dest>.md5` stamp (md5, size, mtime) lets later runs skip re-hashing.
Google Drive answers large files with an HTML "can't scan for viruses" page: its confirmation form (or
the older `download_warning` cookie / `confirm=` token) is followed automatically.
"""

from __future__ import annotations

import errno
import hashlib
import html.parser
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlparse, urlunparse

import requests
from tqdm import tqdm

from dnnlib.util import UserError

CHUNK_BYTES = 1 << 16
TIMEOUT_SECONDS = 60


def file_md5(path: str | Path, progress: bool = True) -> str:
    """Hex md5 of a file, with a progress bar for big files."""
    digest = hashlib.md5()
    size = os.path.getsize(path)
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"md5 {Path(path).name}",
                                     disable=not progress or size < (64 << 20), leave=False) as bar:
        while chunk := f.read(1 << 23):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _stamp_matches(path: Path, md5: str) -> bool:
    stamp = path.with_name(path.name + ".md5")
    try:
        saved_md5, size, mtime = stamp.read_text().split()
    except (OSError, ValueError):
        return False
    stat = path.stat()
    return saved_md5 == md5 and int(size) == stat.st_size and mtime == str(stat.st_mtime_ns)


def verify_md5(path: str | Path, md5: str | None, progress: bool = True) -> bool:
    """Whether a file matches `md5` (None = anything); remembers a successful check in `<path>.md5`."""
    path = Path(path)
    if md5 is None or _stamp_matches(path, md5):
        return True
    if file_md5(path, progress) != md5:
        return False
    stat = path.stat()
    path.with_name(path.name + ".md5").write_text(f"{md5} {stat.st_size} {stat.st_mtime_ns}\n")
    return True


class _ConfirmFormParser(html.parser.HTMLParser):
    """Collects the action and hidden inputs of Google Drive's `download-form`, and any confirm link."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.confirm_href: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and (a.get("id") == "download-form" or "download" in a.get("action", "")):
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and "confirm=" in a.get("href", "") and self.confirm_href is None:
            self.confirm_href = a["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def gdrive_url(url: str) -> str:
    """Adds `export=download` to a Google Drive `uc?id=` link (other URLs are returned unchanged)."""
    parts = urlparse(url)
    if parts.netloc.endswith("drive.google.com") and "id" in parse_qs(parts.query):
        query = parse_qs(parts.query)
        query.setdefault("export", ["download"])
        return urlunparse(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    return url


def _confirmed_url(response: requests.Response) -> str | None:
    """The follow-up URL of a Google-Drive-style confirmation page, or None if there is none."""
    parser = _ConfirmFormParser()
    parser.feed(response.text)
    if parser.action:
        return parser.action + ("&" if "?" in parser.action else "?") + urlencode(parser.fields)
    token = next((v for k, v in response.cookies.items() if k.startswith("download_warning")), None)
    if token:
        parts = urlparse(response.url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"confirm": token}
        return urlunparse(parts._replace(query=urlencode(query)))
    if parser.confirm_href:
        return urljoin(response.url, html.unescape(parser.confirm_href))
    return None


def _open_stream(session: requests.Session, url: str, offset: int) -> requests.Response:
    """GET with Range from `offset`, following at most two confirmation pages."""
    for _ in range(3):
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = session.get(url, stream=True, headers=headers, timeout=TIMEOUT_SECONDS)
        if response.status_code == 416:  # range past the end: the .part file is already complete
            return response
        response.raise_for_status()
        if not response.headers.get("Content-Type", "").startswith("text/html"):
            return response
        follow = _confirmed_url(response)
        response.close()
        if follow is None:
            raise UserError(f"{url}: the server sent a web page instead of the file (download quota exceeded or "
                            f"link moved); download it in a browser and pass the file with --source")
        url = follow
    raise UserError(f"{url}: too many confirmation pages; download it in a browser and pass it with --source")


def download(url: str, dest: str | Path, md5: str | None = None, *, progress: bool = True,
             session: requests.Session | None = None) -> Path:
    """Downloads `url` to `dest`, resuming a previous partial download and verifying the md5.

    Args:
        url: http(s) URL (Google Drive `uc?id=` links included).
        dest: final file path.
        md5: expected hex md5, or None to skip the check.
        progress: show a tqdm bar with ETA.
        session: requests session to use (default: a new one).

    Returns:
        `dest`.

    Raises:
        UserError: on network errors (the partial file is kept for resuming) or an md5 mismatch.
    """
    dest = Path(dest)
    if dest.is_file() and verify_md5(dest, md5, progress):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    offset = part.stat().st_size if part.is_file() else 0
    try:
        with _open_stream(session, gdrive_url(url), offset) as response:
            if response.status_code != 416:
                _write_stream(response, part, offset, progress, dest.name)
    except requests.RequestException as exc:
        got = part.stat().st_size if part.is_file() else 0
        raise UserError(f"{url}: download interrupted after {got / 2**20:.1f} MiB ({type(exc).__name__}); run "
                        f"the same command again to resume, or pass a local copy with --source") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{part}: disk full while downloading; kept the partial file, free space and run "
                            f"again to resume (or use another --data-dir)") from exc
        raise
    if not verify_md5(part, md5, progress):
        part.unlink()
        raise UserError(f"{url}: md5 mismatch (expected {md5}); deleted the download, run again to retry")
    os.replace(part, dest)
    stamp = part.with_name(part.name + ".md5")
    if stamp.is_file():
        os.replace(stamp, dest.with_name(dest.name + ".md5"))
    return dest


def _write_stream(response: requests.Response, part: Path, offset: int, progress: bool, label: str) -> None:
    """Appends (HTTP 206) or rewrites (HTTP 200) `part` from a streaming response."""
    if response.status_code != 206:
        offset = 0
    total = response.headers.get("Content-Length")
    total = int(total) + offset if total is not None else None
    with open(part, "ab" if offset else "wb") as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                           desc=label, disable=not progress) as bar:
        for chunk in response.iter_content(CHUNK_BYTES):
            f.write(chunk)
            bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise requests.exceptions.ChunkedEncodingError(f"connection closed at {part.stat().st_size} of {total}")


def use_local_copy(source: str | Path, dest: str | Path, md5: str | None) -> Path:
    """Puts a user-supplied copy of a catalog file at `dest` (hard link, else copy) after an md5 check.

    Raises:
        UserError: if the file is missing or its md5 differs.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise UserError(f"--source {source}: no such file")
    if not verify_md5(source, md5):
        raise UserError(f"--source {source}: md5 differs from the catalog's {md5}; is it the right file?")
    if source.resolve() == dest.resolve():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
    return dest
