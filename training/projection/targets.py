"""Reading the images to project: files, folders of images, or prepared datasets, checked before any work.

`--project` takes any mix of image files, folders (their image files, sorted by name, not recursive) and dataset
folders (`prepare_data.py` output or the authors' TFRecords: the first images in file order). `--project-count N`
keeps the first N targets. A target must be an image of the model's size R x R, or of its content rows only
(R x round(ratio R) for a model trained with a content ratio): targets are not resized, so that a reconstruction is
compared with exactly the pixels given. Every problem is one `UserError` line naming the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional

import numpy as np
from PIL import Image

from dnnlib.util import UserError
from dnnlib.crop import content_window, crop_to_content

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DATASET_MARKERS = ("dataset.json",)


@dataclasses.dataclass
class Target:
    """One image to project.

    Attributes:
        name: Unique, file-system safe name (the file's stem, or `<dataset>-<index>`).
        source: Where it came from (file path, or dataset path and index).
        image: uint8 `[H, W, 3]` as read.
    """

    name: str
    source: str
    image: np.ndarray


def _read_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split())[:100]
        raise UserError(f"--project {path}: cannot read the image ({reason}); pass PNG or JPEG files") from None


def _is_dataset(folder: str) -> bool:
    names = os.listdir(folder)
    return any(n in DATASET_MARKERS or ".tfrecord" in n for n in names)


def _dataset_targets(folder: str, count: Optional[int]) -> list[Target]:
    from training.data.loader import open_dataset

    dataset = open_dataset(folder, max_images=count)
    out: list[Target] = []
    for batch in dataset.tf_dataset(64, shuffle=False, repeat=False, drop_remainder=False):
        images = batch[0] if isinstance(batch, tuple) else batch
        for image in images.numpy():
            out.append(Target(f"{dataset.name}-{len(out):06d}", f"{folder} image {len(out)}", image))
    if not out:
        raise UserError(f"--project {folder}: the dataset holds no images")
    return out


def _folder_targets(folder: str) -> list[Target]:
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
    if not files:
        raise UserError(f"--project {folder}: the folder holds no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...) "
                        "and is not a dataset; pass image files, a folder of images or a prepared dataset")
    return [Target(_safe(os.path.splitext(f)[0]), os.path.join(folder, f), _read_image(os.path.join(folder, f)))
            for f in files]


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip(".") or "target"


def _unique(targets: list[Target]) -> list[Target]:
    seen: dict[str, int] = {}
    for t in targets:
        n = seen.get(t.name, 0)
        seen[t.name] = n + 1
        if n:
            t.name = f"{t.name}-{n}"
    return targets


def read_targets(specs: list[str], count: Optional[int] = None) -> list[Target]:
    """Reads every target named by `--project` (see the module docstring).

    Args:
        specs: Image files, folders of images and dataset folders.
        count: Keep the first `count` targets (None: all).

    Raises:
        UserError: A path that does not exist, an unreadable image, an empty folder or dataset.
    """
    if count is not None and count < 1:
        raise UserError(f"--project-count {count}: must be >= 1")
    out: list[Target] = []
    for spec in specs:
        if count is not None and len(out) >= count:
            break
        left = None if count is None else count - len(out)
        if os.path.isdir(spec):
            out += _dataset_targets(spec, left) if _is_dataset(spec) else _folder_targets(spec)
        elif os.path.isfile(spec):
            out.append(Target(_safe(os.path.splitext(os.path.basename(spec))[0]), spec, _read_image(spec)))
        else:
            raise UserError(f"--project {spec}: no such file or folder")
    return _unique(out[:count] if count is not None else out)


def content_rows(targets: list[Target], resolution: int, ratio: float) -> np.ndarray:
    """The targets' content rows as one batch, after checking each one's size against the model.

    Args:
        targets: Targets from `read_targets`.
        resolution: The model's side R.
        ratio: The model's content ratio (height / width).

    Returns:
        uint8 `[N, h, w, 3]`, h x w = the content window of an R x R image.

    Raises:
        UserError: A target of another size, naming it and the sizes accepted.
    """
    _, _, rows, cols = content_window(resolution, resolution, ratio)
    out = []
    for t in targets:
        h, w = t.image.shape[:2]
        if (h, w) == (resolution, resolution):
            out.append(crop_to_content(t.image, ratio))
        elif (h, w) == (rows, cols):
            out.append(t.image)
        else:
            content = f" or its content rows {cols}x{rows}" if (rows, cols) != (resolution, resolution) else ""
            raise UserError(f"--project {t.source}: the image is {w}x{h} pixels; the model makes {resolution}x"
                            f"{resolution} images{content}; resize or crop it to that size (targets are not "
                            f"resized)")
    return np.stack(out)
