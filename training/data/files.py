"""Finding image files in folders (shared by `prepare_data.py` and the image-folder loader)."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SKIPPED_DIRS = ("__MACOSX",)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive) and is not hidden."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def list_image_files(folder: str | Path) -> tuple[list[Path], int]:
    """Lists the image files under a folder, recursively, in a stable sorted order.

    Hidden files and folders (names starting with '.') and macOS `__MACOSX` folders are ignored.

    Args:
        folder: the folder to walk.

    Returns:
        (sorted image paths, number of other non-hidden files seen).
    """
    images: list[Path] = []
    others = 0
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in names:
            if is_image_name(name):
                images.append(Path(root) / name)
            elif not name.startswith("."):
                others += 1
    images.sort(key=lambda p: p.relative_to(folder).as_posix())
    return images, others
