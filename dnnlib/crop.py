"""The one crop to a dataset's content rows, for generator outputs, dataset images, metrics and visualizations.

Datasets whose images are not square are stored padded to a square with `ratio` = content height / width (as the
authors' `dataset_tool.py` stores them). `crop_to_content` keeps the central window of aspect `ratio` (the largest
one, as `crop_max_rectangle` of the authors' `training/misc.py`):
on a square frame that is `round(ratio * H)` rows starting at `(H - rows) // 2`. It is idempotent, so an image that
already has the aspect `ratio` — a generator with `crop_ratio` returns only the content rows — is left as it is and
nothing is cropped twice. `inclusive=True` is the original metrics' window of a square frame, rows
`floor((1 - ratio) H / 2)` to `ceil((1 + ratio) H / 2)` inclusive (one row more, e.g. 129 rows for 0.5 at 256), kept
so that FIDs stay comparable with the authors'. Works on numpy arrays and on TensorFlow tensors of static shape.
"""

from __future__ import annotations

import math
from typing import Any, Optional


def content_window(height: int, width: int, ratio: float, inclusive: bool = False) -> tuple[int, int, int, int]:
    """`(top, left, rows, cols)` of the content window of a `height x width` frame (see module docstring)."""
    if not ratio or ratio <= 0:
        raise ValueError(f"ratio must be > 0, got {ratio}")
    if inclusive and height == width and ratio < 1:
        top = int(math.floor((1.0 - ratio) * height / 2))
        return top, 0, min(height, int(math.ceil((1.0 + ratio) * height / 2)) + 1) - top, width
    s = min(float(width), height / ratio)
    rows = min(height, max(1, int(round(ratio * s))))
    cols = min(width, max(1, int(round(s))))
    return (height - rows) // 2, (width - cols) // 2, rows, cols


def crop_to_content(x: Any, ratio: Optional[float], axes: tuple[int, int] = (-3, -2), inclusive: bool = False) -> Any:
    """The content window of `x` along its (row, column) `axes`; no-op for `ratio` None or 1.

    Args:
        x: Images `[B, H, W, C]` (default axes), maps `[B, k, H, W]` (`axes=(-2, -1)`), ... (numpy or tf).
        ratio: Content height / width.
        axes: The row and column axes.
        inclusive: The original metrics' one-row-larger window (square frames only).

    Returns:
        `x` restricted to the window (the same object when nothing is cropped).
    """
    if not ratio or ratio == 1:
        return x
    ndim = len(x.shape)
    h_ax, w_ax = (a % ndim for a in axes)
    top, left, rows, cols = content_window(int(x.shape[h_ax]), int(x.shape[w_ax]), ratio, inclusive)
    if (rows, cols) == (x.shape[h_ax], x.shape[w_ax]):
        return x
    index = [slice(None)] * ndim
    index[h_ax] = slice(top, top + rows)
    index[w_ax] = slice(left, left + cols)
    return x[tuple(index)]
