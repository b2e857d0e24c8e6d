"""Style-mixing grids (the `style_mix` visualization of the authors' `training/visualize.py`).

Column sources go on the top row, row sources in the left column. Every other cell takes the column source's ws
and replaces part of them by the row source's: the first `n` broadcast slots ("layer" mixing: the coarse layers
come from the row source) or the first `n` local components ("component" mixing: those latents come from the row
source; the global latent stays the column source's). Each row source gets one row per cutoff `n`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

LAYER_CUTOFFS = (2, 5, 8, 11)
NUM_COLUMN_SOURCES = 4
NUM_ROW_SOURCES = 2


def layer_cutoffs(num_ws: int) -> list[int]:
    """Slot cutoffs `n` (slots < n mixed in) that leave at least one slot of the column source."""
    cuts = [c for c in LAYER_CUTOFFS if c < num_ws]
    return cuts or [max(1, num_ws // 2)]


def component_cutoffs(num_local: int) -> list[int]:
    """Component cutoffs at about 1/4, 1/2, 3/4 of the local latents (empty when there are fewer than 2)."""
    if num_local < 2:
        return []
    return sorted({min(num_local - 1, max(1, int(round(num_local * f)))) for f in (0.25, 0.5, 0.75)})


def mix_ws(ws_row: np.ndarray, ws_col: np.ndarray, n: int, axis: str) -> np.ndarray:
    """Column-source ws with the first `n` slots (`axis="layer"`) or components (`"component"`) of the row source.

    Args:
        ws_row: `[K, S, d]` row source.
        ws_col: `[K, S, d]` column source.
    """
    out = np.array(ws_col, copy=True)
    if axis == "layer":
        out[:, :n] = ws_row[:, :n]
    elif axis == "component":
        out[:n] = ws_row[:n]
    else:
        raise ValueError(f"axis must be 'layer' or 'component', got {axis!r}")
    return out


def mixing_canvas(col_images: np.ndarray, row_images: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Lays out a mixing grid.

    Args:
        col_images: uint8 `[C, h, w, 3]` column sources (top row).
        row_images: uint8 `[R, h, w, 3]` image shown left of each row.
        cells: uint8 `[R, C, h, w, 3]` mixed images.

    Returns:
        uint8 `[(R + 1) h, (C + 1) w, 3]`; the top-left cell is white.
    """
    r, c, h, w, ch = cells.shape
    canvas = np.full(((r + 1) * h, (c + 1) * w, ch), 255, np.uint8)
    for j in range(c):
        canvas[:h, (j + 1) * w:(j + 2) * w] = col_images[j]
    for i in range(r):
        canvas[(i + 1) * h:(i + 2) * h, :w] = row_images[i]
        for j in range(c):
            canvas[(i + 1) * h:(i + 2) * h, (j + 1) * w:(j + 2) * w] = cells[i, j]
    return canvas


def style_mixing_grid(ws_cols: np.ndarray, ws_rows: np.ndarray, cutoffs: list[int], axis: str,
                      synthesize: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Builds one mixing grid.

    Args:
        ws_cols: `[C, K, S, d]` column sources.
        ws_rows: `[R, K, S, d]` row sources.
        cutoffs: Values of `n`; each row source gets one row per cutoff.
        axis: "layer" or "component".
        synthesize: ws `[N, K, S, d]` -> uint8 images `[N, h, w, 3]`.

    Returns:
        `(canvas, row_descriptions)`.
    """
    mixed, rows, desc = [], [], []
    for r, ws_r in enumerate(ws_rows):
        for n in cutoffs:
            rows.append(r)
            desc.append(f"row source {r}, first {n} {'slots' if axis == 'layer' else 'components'}")
            mixed.extend(mix_ws(ws_r, ws_c, n, axis) for ws_c in ws_cols)
    all_ws = np.concatenate([ws_cols, ws_rows, np.stack(mixed)], axis=0)
    images = synthesize(all_ws)
    c, r = len(ws_cols), len(ws_rows)
    col_images, row_src = images[:c], images[c:c + r]
    cells = images[c + r:].reshape((len(rows), c) + images.shape[1:])
    return mixing_canvas(col_images, row_src[rows], cells), desc
