"""Finding image files in folders (shared by `prepare_data.py` and the image-folder loader).

Only what is inside the folder is read: symbolic links are followed only when they resolve inside the folder,
a folder reached twice (a link loop, or a link to a sibling folder) is walked once, and only regular files are
listed (a FIFO named `x.png` would block the reader forever; devices and sockets are no images either).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Callable

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SKIPPED_DIRS = ("__MACOSX",)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive) and is not hidden."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


@dataclasses.dataclass
class FolderListing:
    """What `scan_folder` found.

    Attributes:
        files: Accepted regular files, sorted by their path relative to the folder.
        others: Number of other non-hidden regular files.
        outside: Symbolic links that lead out of the folder (not followed).
        repeated: Folders and files reached a second time through a link (a loop or a duplicate; walked once).
        special: Entries with an accepted name that are not regular files (FIFOs, sockets, devices, broken links).
    """

    files: list[Path] = dataclasses.field(default_factory=list)
    others: int = 0
    outside: list[Path] = dataclasses.field(default_factory=list)
    repeated: list[Path] = dataclasses.field(default_factory=list)
    special: list[Path] = dataclasses.field(default_factory=list)

    def warnings(self, folder: str | Path) -> list[str]:
        """One line per kind of entry that was left out, with an example."""
        kinds = ((self.outside, "symbolic link(s) leading out of the folder"),
                 (self.repeated, "folder(s)/file(s) reached again through a symbolic link (loop or duplicate)"),
                 (self.special, "entries that are not regular files (FIFO, socket, device or broken link)"))
        return [f"{folder}: skipped {len(paths)} {what}, e.g. {paths[0]}" for paths, what in kinds if paths]


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _walk_dirs(root: str, dirs: list[str], real_root: str, seen: set[str], out: FolderListing) -> list[str]:
    """The sub-folders of `root` to descend into (sorted); links out of the folder and repeats are recorded."""
    keep = []
    for name in sorted(dirs):
        if name.startswith(".") or name in SKIPPED_DIRS:
            continue
        path = os.path.join(root, name)
        real = os.path.realpath(path)
        if not _inside(real, real_root):
            out.outside.append(Path(path))
        elif real in seen:
            out.repeated.append(Path(path))
        else:
            seen.add(real)
            keep.append(name)
    return keep


def _add_file(path: str, accept: Callable[[str], bool], real_root: str, seen: set[str],
              out: FolderListing) -> None:
    if not accept(os.path.basename(path)):
        if not os.path.basename(path).startswith(".") and os.path.isfile(path):
            out.others += 1
        return
    real = os.path.realpath(path)
    if not _inside(real, real_root):
        out.outside.append(Path(path))
        return
    try:
        is_regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # a broken link or an entry removed meanwhile
        is_regular = False
    if not is_regular:
        out.special.append(Path(path))
    elif real in seen:
        out.repeated.append(Path(path))
    else:
        seen.add(real)
        out.files.append(Path(path))


def scan_folder(folder: str | Path, accept: Callable[[str], bool] = is_image_name) -> FolderListing:
    """Lists the regular files under a folder whose names `accept` takes, recursively, in a stable order.

    Hidden files and folders (names starting with '.') and macOS `__MACOSX` folders are ignored. Links are
    followed only inside the folder, and every real folder and file is listed once (link loops end).

    Args:
        folder: The folder to walk.
        accept: Predicate on a file's base name.

    Returns:
        A `FolderListing`.
    """
    real_root = os.path.realpath(folder)
    seen_dirs, seen_files = {real_root}, set()
    out = FolderListing()
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = _walk_dirs(root, dirs, real_root, seen_dirs, out)
        for name in sorted(names):
            _add_file(os.path.join(root, name), accept, real_root, seen_files, out)
    out.files.sort(key=lambda p: p.relative_to(folder).as_posix())
    return out


def list_image_files(folder: str | Path) -> tuple[list[Path], int]:
    """Lists the image files under a folder (see `scan_folder`).

    Args:
        folder: The folder to walk.

    Returns:
        (sorted image paths, number of other non-hidden files seen).
    """
    listing = scan_folder(folder)
    return listing.files, listing.others
