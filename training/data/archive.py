"""Zip archives: member checks (nothing may escape the target folder) and extraction with progress."""

from __future__ import annotations

import posixpath
import shutil
import stat
import zipfile
from pathlib import Path

from tqdm import tqdm

from dnnlib.disk import format_bytes
from dnnlib.util import UserError


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member would be unsafe to extract (None when it is fine).

    Unsafe: absolute paths, Windows drive or UNC paths, `..` components and symbolic links.
    """
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in posixpath.normpath(name).split("/") or ".." in name.split("/"):
        return "escapes the archive folder (..)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    return None


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """Opens a zip after checking every member name.

    Raises:
        UserError: for unreadable archives or unsafe member names (nothing is extracted or read).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable zip archive ({exc}); re-download or re-create it") from exc
    for info in archive.infolist():
        problem = member_problem(info)
        if problem:
            archive.close()
            raise UserError(f"{path}: member {info.filename!r} {problem}; refusing to use this archive")
    return archive


def check_sizes(path: str | Path, members: list[zipfile.ZipInfo], max_member: int, max_total: int) -> None:
    """Refuses an archive whose members declare more uncompressed bytes than allowed (a zip bomb).

    The declared sizes bound what reading can produce: `zipfile` never returns more than a member's declared size
    (and fails its CRC check when the data does not match).

    Args:
        path: The archive (for the message).
        members: The members that will be read.
        max_member: Largest uncompressed size of one member, in bytes.
        max_total: Largest uncompressed size of all `members` together, in bytes.

    Raises:
        UserError: One line naming the archive, the member or total and the limit.
    """
    big = max(members, key=lambda i: i.file_size, default=None)
    if big is not None and big.file_size > max_member:
        raise UserError(f"{path}: member {big.filename!r} expands to {format_bytes(big.file_size)} "
                        f"({format_bytes(big.compress_size)} compressed), over the limit of {format_bytes(max_member)} "
                        f"per file; refusing this archive")
    total = sum(i.file_size for i in members)
    if total > max_total:
        raise UserError(f"{path}: members expand to {format_bytes(total)} in total, over the limit of "
                        f"{format_bytes(max_total)}; refusing this archive")


def extract_zip(path: str | Path, dest: str | Path, progress: bool = True) -> None:
    """Extracts a checked zip into `dest` with a progress bar (bytes).

    Raises:
        UserError: see `open_zip`; also when a member is corrupt (CRC error).
    """
    dest = Path(dest)
    with open_zip(path) as archive:
        members = archive.infolist()
        total = sum(m.file_size for m in members)
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"unzip {Path(path).name}",
                  disable=not progress) as bar:
            for info in members:
                target = dest / info.filename.replace("\\", "/")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with archive.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                except (zipfile.BadZipFile, EOFError) as exc:
                    raise UserError(f"{path}: member {info.filename!r} is corrupt ({exc}); re-download the "
                                    f"archive") from exc
                bar.update(info.file_size)
