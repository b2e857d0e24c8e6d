"""Image grids and atomic file writers for generated samples (float -> uint8 is
`dnnlib.tflib.ops.quantize.quantize_numpy`).

All writers encode in memory and go through `dnnlib.files.write_atomic` (a temporary file in the target folder,
fsync, rename), so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import io
import math
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from dnnlib.files import write_atomic


def make_grid(images: np.ndarray, cols: int | None = None, pad: int = 0, fill: int = 255) -> np.ndarray:
    """Tiles `[N, H, W, C]` images into one `[rows*H, cols*W, C]` canvas (row-major, `pad` pixels between).

    Args:
        images: uint8 `[N, H, W, C]`.
        cols: Columns (default `ceil(sqrt(N))`).
        pad: Gap between cells, filled with `fill`.
    """
    n, h, w, c = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    canvas = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill, dtype=images.dtype)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = images[i]
    return canvas


def _encoded(write: Callable[[io.BytesIO], None]) -> bytes:
    """The bytes `write(buffer)` puts in an in-memory buffer (then written with `dnnlib.files.write_atomic`)."""
    buf = io.BytesIO()
    write(buf)
    return buf.getvalue()


def _pil(image: np.ndarray) -> Image.Image:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return Image.fromarray(image)


def save_png(path: str, image: np.ndarray) -> None:
    """Writes a uint8 `[H, W, 3]`, `[H, W, 1]` or `[H, W]` image as PNG (atomically)."""
    img = _pil(image)
    write_atomic(path, _encoded(lambda buf: img.save(buf, format="PNG")))


def save_gif(path: str, frames: Sequence[np.ndarray], duration_ms: int = 50) -> None:
    """Writes uint8 `[H, W, 3]` frames as a looping GIF (atomically)."""
    pil = [_pil(f) for f in frames]
    write_atomic(path, _encoded(lambda buf: pil[0].save(buf, format="GIF", save_all=True, append_images=pil[1:],
                                                        duration=duration_ms, loop=0)))


def save_npy(path: str, array: np.ndarray) -> None:
    """Writes an array as `.npy` (atomically)."""
    write_atomic(path, _encoded(lambda buf: np.save(buf, np.asarray(array), allow_pickle=False)))


def save_text(path: str, text: str) -> None:
    """Writes UTF-8 text (atomically)."""
    write_atomic(path, text)
