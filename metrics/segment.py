"""Object masks for `shapes`-like scenes without ground truth, and the adjusted Rand index (ARI).

The built-in scenes show objects on a plain grey floor whose brightness varies smoothly (light fall-off) and whose
shadows stay grey. The segmenter marks a pixel as object when it is coloured (chroma = max - min channel above a
threshold) or clearly brighter than a smooth floor model (a robust quadratic fit of the grey pixels' brightness over
the image plane, so grey and white objects count too), then splits the object pixels into regions: neighbouring
object pixels (8-connectivity) belong to the same region when their colours are close. Two coloured neighbours are
compared by hue only, the distance between their unit chroma vectors (rgb minus its grey mean, normalized), which
shading does not change but a boundary between objects of different colours does; a pair with a grey pixel is
compared by its RGB distance.

ARI between two labelings of the same n points, with contingency table n_ij, row sums a_i, column sums b_j:
    index = sum_ij C(n_ij, 2);  expected = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(n, 2)
    ARI = (index - expected) / (0.5 * (sum_i C(a_i, 2) + sum_j C(b_j, 2)) - expected)
It is 1 for identical partitions and about 0 for random ones. When both partitions are trivial (a single cluster,
or every point its own cluster) the denominator is 0 and ARI is defined as 1.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

CHROMA_THRESHOLD = 24.0  # uint8 levels: max - min channel above this is an object pixel
BRIGHT_THRESHOLD = 28.0  # uint8 levels above the fitted floor brightness
EDGE_COLOUR_DISTANCE = 60.0  # a neighbouring pair with a grey pixel closer than this (RGB, uint8) shares a region
EDGE_HUE_DISTANCE = 0.3  # coloured neighbours whose unit chroma vectors are closer than this share a region
MIN_REGION = 2  # regions of fewer pixels are returned to the floor


def _floor_fit(gray: np.ndarray, candidate: np.ndarray, iters: int = 3) -> np.ndarray:
    """Robust quadratic fit of brightness over the image plane.

    Args:
        gray: float `[H, W]` brightness.
        candidate: bool `[H, W]` pixels that may be floor.

    Returns:
        float `[H, W]` the fitted floor brightness.
    """
    h, w = gray.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = y / max(h - 1, 1) - 0.5, x / max(w - 1, 1) - 0.5
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    values, use = gray.reshape(-1).astype(np.float64), candidate.reshape(-1).copy()
    coef = np.zeros(6)
    coef[0] = np.median(values[use]) if use.any() else np.median(values)
    for _ in range(iters):
        if use.sum() < 12:
            break
        coef, *_ = np.linalg.lstsq(basis[use], values[use], rcond=None)
        resid = values - basis @ coef
        spread = 1.4826 * np.median(np.abs(resid[use])) + 2.0
        use = candidate.reshape(-1) & (np.abs(resid) < 3.0 * spread)
    return (basis @ coef).reshape(h, w)


def is_coloured(rgb: np.ndarray) -> np.ndarray:
    """Coloured pixels (max - min channel above CHROMA_THRESHOLD) of float `[..., 3]` -> bool `[...]`."""
    return rgb.max(axis=-1) - rgb.min(axis=-1) > CHROMA_THRESHOLD


def foreground(image: np.ndarray) -> np.ndarray:
    """Object (not floor) pixels of one uint8 `[H, W, 3]` image -> bool `[H, W]`."""
    rgb = image.astype(np.float32)
    gray = rgb.mean(axis=-1)
    coloured = is_coloured(rgb)
    floor = _floor_fit(gray, ~coloured)
    return coloured | (gray - floor > BRIGHT_THRESHOLD)


def segment(images: np.ndarray) -> np.ndarray:
    """Segments scenes into floor (0) and object regions (1, 2, ...).

    Args:
        images: uint8 `[B, H, W, 3]`.

    Returns:
        int32 `[B, H, W]` region ids per image.
    """
    b, h, w, _ = images.shape
    fg = np.stack([foreground(im) for im in images])  # [B, H, W]
    rgb = images.astype(np.float32)
    chroma = rgb - rgb.mean(axis=-1, keepdims=True)  # [B, H, W, 3]
    hue = chroma / np.maximum(np.linalg.norm(chroma, axis=-1, keepdims=True), 1e-6)
    coloured = is_coloured(rgb)  # [B, H, W]
    index = np.arange(b * h * w).reshape(b, h, w)
    rows, cols = [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ys, yd = slice(0, h - dy), slice(dy, h)
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        near_rgb = np.linalg.norm(rgb[:, ys, xs] - rgb[:, yd, xd], axis=-1) < EDGE_COLOUR_DISTANCE
        near_hue = np.linalg.norm(hue[:, ys, xs] - hue[:, yd, xd], axis=-1) < EDGE_HUE_DISTANCE
        close = np.where(coloured[:, ys, xs] & coloured[:, yd, xd], near_hue, near_rgb)
        link = fg[:, ys, xs] & fg[:, yd, xd] & close
        rows.append(index[:, ys, xs][link])
        cols.append(index[:, yd, xd][link])
    n = b * h * w
    graph = sparse.coo_matrix((np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n, n))
    _, comp = csgraph.connected_components(graph, directed=False)
    comp = comp.reshape(b, h, w)
    out = np.zeros((b, h, w), np.int32)
    for i in range(b):
        ids, sizes = np.unique(comp[i][fg[i]], return_counts=True)
        keep = ids[sizes >= MIN_REGION]
        lookup = {c: j + 1 for j, c in enumerate(keep)}
        mask = fg[i] & np.isin(comp[i], keep)
        out[i][mask] = [lookup[c] for c in comp[i][mask]]
    return out


def adjusted_rand_index(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """ARI of two labelings of the same points (any integer labels, same shape); see the module docstring."""
    a = np.unique(labels_a.reshape(-1), return_inverse=True)[1]
    b = np.unique(labels_b.reshape(-1), return_inverse=True)[1]
    n = a.size
    if n < 2:
        return 1.0
    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)
    pairs = lambda x: (x * (x - 1) / 2.0).sum()  # noqa: E731
    index, sum_a, sum_b = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2.0)
    top = 0.5 * (sum_a + sum_b) - expected
    return 1.0 if top == 0 else float((index - expected) / top)


def foreground_ari(reference: np.ndarray, predicted: np.ndarray) -> list[float]:
    """Per-image ARI over the reference's foreground pixels (reference id > 0).

    Args:
        reference: int `[B, H, W]` reference regions (0 = background).
        predicted: int `[B, H, W]` predicted labels (any ids; background pixels of the reference are ignored).

    Returns:
        One ARI per image that has at least two foreground pixels.
    """
    scores = []
    for ref, pred in zip(reference, predicted):
        mask = ref > 0
        if mask.sum() >= 2:
            scores.append(adjusted_rand_index(ref[mask], pred[mask]))
    return scores
