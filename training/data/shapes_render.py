"""Shading and batching for the built-in `shapes` dataset (geometry and scenes in `training.data.shapes`)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Iterator

import numpy as np

from training.data import shapes as geo
from training.data.parallel import ordered_map

AMBIENT = 0.22
KEY_LIGHT = 1.0
FILL_LIGHT = 0.18
FILL_DIR = np.array([0.6, -0.3, 0.75]) / np.linalg.norm([0.6, -0.3, 0.75])
AO_REACH = 3.0
SKY = np.array([0.75, 0.78, 0.85], np.float32)


@lru_cache(maxsize=4)
def _rays(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached primary ray directions `[3, P]` and light-sample offsets `[S, 3, P]` for an output resolution."""
    size = resolution * geo.SUPERSAMPLE
    dirs = geo._primary_rays(size)
    offsets = geo._light_offsets(size * size, geo.shadow_samples(resolution))
    return np.ascontiguousarray(dirs.T), np.ascontiguousarray(offsets.transpose(0, 2, 1))


def _dot(a: tuple, b: tuple) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normalize(v: tuple) -> tuple:
    inv = 1.0 / np.sqrt(_dot(v, v) + 1e-12)
    return tuple(c * inv for c in v)


def _visibility(objs: geo._Objects, scenes: list[geo.Scene], points: geo.ShadingPoints,
                offsets: np.ndarray) -> tuple:
    """Soft-shadow visibility `[M]` in [0, 1] and unit directions to the light centre at the shading points.

    Only (object, point) pairs whose shadow rays can come near the object are traced.
    """
    light = np.stack([s.light for s in scenes]).astype(np.float32)  # [B, 3]
    origin = tuple(points.p[i] + points.n[i] * 2e-3 for i in range(3))
    vec = tuple(light[points.image, i] - origin[i] for i in range(3))
    dist = np.sqrt(_dot(vec, vec))
    to_centre = tuple(c / dist for c in vec)
    shaded = points.flat.shape[0]
    rows, at = geo._shadow_candidates(objs, points.resolution, dataclasses.replace(points, p=origin), to_centre,
                                      light, dist, geo.LIGHT_RADIUS)
    visible = np.full(shaded, float(len(offsets)), np.float32)
    if rows.size:
        o = tuple(origin[i][at] for i in range(3))
        img, pix = objs.image[rows], points.pix[at]
        for sample in offsets:  # [3, P]
            target = tuple(light[img, i] + sample[i][pix] - o[i] for i in range(3))
            length = np.sqrt(_dot(target, target))
            hit = geo._pair_distances(objs, rows, o, tuple(c / length for c in target)) < length
            visible -= np.bincount(at[hit], minlength=shaded) > 0
    return visible / len(offsets), to_centre


def _floor_occlusion(objs: geo._Objects, points: geo.ShadingPoints) -> np.ndarray:
    """Ambient occlusion `[M]` of floor points by nearby objects (each treated as a sphere); 1 elsewhere.

    An object's effect fades to zero at `AO_REACH` radii from its centre.
    """
    reach = (AO_REACH * objs.r).astype(np.float64)
    lo = np.stack([objs.cx - reach, objs.cy - reach, np.zeros_like(reach)], axis=1)
    hi = lo + np.stack([2 * reach, 2 * reach, np.zeros_like(reach)], axis=1)
    rows, at = points.pairs(objs, *geo._screen_rects(lo, hi, points.resolution))
    keep = ~points.on_obj[at]
    rows, at = rows[keep], at[keep]
    vx, vy, vz = objs.cx[rows] - points.p[0][at], objs.cy[rows] - points.p[1][at], objs.cz[rows]
    horizontal2 = vx * vx + vy * vy
    dist2 = horizontal2 + vz * vz
    fade = np.maximum(1.0 - horizontal2 / (AO_REACH * objs.r[rows]) ** 2, 0.0)
    occ = np.minimum(0.9 * objs.r[rows] ** 2 * vz / (dist2 * np.sqrt(dist2)) * fade, 0.9)
    log_ao = np.bincount(at, weights=np.log1p(-occ), minlength=points.flat.shape[0])
    return np.exp(log_ao).astype(np.float32)


def _shading_points(objs: geo._Objects, batch: int, resolution: int, dirs: np.ndarray) -> geo.ShadingPoints:
    """Casts primary rays and selects the sub-pixels to shade (see `geo.ShadingPoints`)."""
    ss, size = geo.SUPERSAMPLE, resolution * geo.SUPERSAMPLE
    num_pixels = size * size
    cam = geo.CAMERA_POS.astype(np.float32)
    t_obj, row = geo._nearest_primary(objs, batch, size, dirs)
    t_floor = -cam[2] / np.minimum(dirs[2], -1e-6)  # the camera looks down: every ray meets the floor
    on_obj = t_obj < t_floor[None]
    blocks = np.where(on_obj, row, -1).reshape(batch, resolution, ss, resolution, ss)
    select = np.broadcast_to(~(blocks == blocks[:, :, :1, :, :1]).all(axis=(2, 4))[:, :, None, :, None],
                             blocks.shape).copy()
    select[:, :, 0, :, 0] = True
    flat = np.nonzero(select.reshape(-1))[0]
    index_of = np.full(batch * num_pixels, -1, np.int64)
    index_of[flat] = np.arange(flat.shape[0])
    block_points = index_of.reshape(batch, resolution, ss, resolution, ss).transpose(0, 1, 3, 2, 4)
    block_points = block_points.reshape(batch * resolution * resolution, ss * ss)
    image, pix = np.divmod(flat, num_pixels)
    obj = on_obj.reshape(-1)[flat]
    hit_row = row.reshape(-1)[flat]
    t = np.where(obj, t_obj.reshape(-1)[flat], t_floor[pix])
    p = tuple(cam[i] + t * dirs[i][pix] for i in range(3))
    p = (p[0], p[1], np.where(obj, p[2], 0.0).astype(np.float32))
    n = [np.zeros(flat.shape, np.float32), np.zeros(flat.shape, np.float32), np.ones(flat.shape, np.float32)]
    idx = np.nonzero(obj)[0]
    for axis, values in enumerate(geo._normals(objs, hit_row[idx], tuple(a[idx] for a in p))):
        n[axis][idx] = values
    return geo.ShadingPoints(resolution, flat, index_of, block_points, image, pix, obj, hit_row, p, tuple(n))


def render(scenes: list[geo.Scene], resolution: int) -> np.ndarray:
    """Renders scenes.

    Args:
        scenes: B scenes.
        resolution: output side R.

    Returns:
        uint8 `[B, R, R, 3]` sRGB images.
    """
    dirs, offsets = _rays(resolution)
    batch = len(scenes)
    objs = geo._Objects(scenes)
    points = _shading_points(objs, batch, resolution, dirs)
    vis, l_dir = _visibility(objs, scenes, points, offsets)
    ao = _floor_occlusion(objs, points)
    floor_light = AMBIENT * ao + KEY_LIGHT * np.maximum(l_dir[2], 0.0) * vis + FILL_LIGHT * FILL_DIR[2]
    color = np.repeat((geo.FLOOR_ALBEDO * floor_light)[:, None], 3, axis=1).astype(np.float32)
    idx = np.nonzero(points.on_obj)[0]
    pix = points.pix[idx]
    view = tuple(-dirs[i][pix] for i in range(3))
    color[idx] = _shade_objects(objs, points.row[idx], tuple(a[idx] for a in points.n), view,
                                tuple(a[idx] for a in l_dir), vis[idx])
    linear = color[points.block_points[:, 0]]  # uniform blocks: their single shaded point
    edges = np.nonzero(points.block_points[:, 1] >= 0)[0]  # edge blocks: the mean of all their points
    linear[edges] = color[points.block_points[edges]].mean(axis=1)
    linear = linear.reshape(batch, resolution, resolution, 3)
    return np.clip(np.rint(np.clip(linear, 0.0, 1.0) ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)


def _shade_objects(objs: geo._Objects, row: np.ndarray, n: tuple, view: tuple, l_dir: tuple,
                   vis: np.ndarray) -> np.ndarray:
    """Linear RGB `[M, 3]` of M object points: Lambert key + fill + ambient, Blinn-Phong, metal reflection."""
    ndl = np.maximum(_dot(n, l_dir), 0.0)
    fill = np.maximum(_dot(n, tuple(FILL_DIR.astype(np.float32))), 0.0)
    half = _normalize(tuple(l_dir[i] + view[i] for i in range(3)))
    ndh = np.maximum(_dot(n, half), 0.0)
    metal = objs.metal[row]
    albedo = objs.color[row]
    light = (AMBIENT + KEY_LIGHT * ndl * vis + FILL_LIGHT * fill) * np.where(metal, 0.35, 1.0)
    spec = np.where(metal, 0.9 * ndh ** 60, 0.12 * ndh ** 12) * vis
    tint = np.where(metal[:, None], albedo * 0.6 + 0.4, 1.0)
    refl_z = 2.0 * _dot(n, view) * n[2] - view[2]
    env = np.where(refl_z[:, None] > 0, SKY * (0.5 + 0.5 * refl_z[:, None]), np.float32(geo.FLOOR_ALBEDO * 0.45))
    color = albedo * light[:, None] + spec[:, None] * tint + np.where(metal[:, None], 0.55 * albedo * env, 0.0)
    return color.astype(np.float32)


def render_range(seed: int, start: int, count: int, resolution: int) -> Iterator[np.ndarray]:
    """Renders images `start .. start+count-1` of a seed, in batches, in this process.

    Yields:
        uint8 `[B, R, R, 3]` batches, in index order.
    """
    per_batch = max(1, geo.PIXELS_PER_BATCH // (resolution * geo.SUPERSAMPLE) ** 2)
    for first in range(start, start + count, per_batch):
        yield render_chunk((seed, first, min(per_batch, start + count - first), resolution))


def render_chunk(job: tuple[int, int, int, int]) -> np.ndarray:
    """Renders one chunk `(seed, first index, count, resolution)` -> uint8 `[count, R, R, 3]`."""
    seed, first, count, resolution = job
    return render([geo.sample_scene(np.random.default_rng([seed, i])) for i in range(first, first + count)],
                  resolution)


def generate(seed: int, count: int, resolution: int, workers: int = 1) -> Iterator[np.ndarray]:
    """Renders images 0 .. count-1 of a seed with `workers` threads; same pixels for any `workers`.

    Args:
        seed: dataset seed.
        count: number of images.
        resolution: image side (a power of two >= 4).
        workers: worker threads (1 = render in the calling thread).

    Yields:
        uint8 `[B, R, R, 3]` batches, in index order.
    """
    if workers <= 1:
        yield from render_range(seed, 0, count, resolution)
        return
    per_batch = max(1, geo.PIXELS_PER_BATCH // (resolution * geo.SUPERSAMPLE) ** 2)
    jobs = ((seed, first, min(per_batch, count - first), resolution) for first in range(0, count, per_batch))
    yield from ordered_map(render_chunk, jobs, workers)


def object_ids(scenes: list[geo.Scene], resolution: int) -> np.ndarray:
    """The renderer's own per-pixel object ids (ground truth for segmentation scores).

    A pixel takes the id of the surface most of its `SUPERSAMPLE`² sub-pixel rays hit first (ties: the smallest id).

    Args:
        scenes: B scenes.
        resolution: output side R.

    Returns:
        int32 `[B, R, R]`: 0 for the floor, 1 + the object's index in its scene otherwise.
    """
    dirs, _ = _rays(resolution)
    dirs = np.ascontiguousarray(dirs)
    batch, ss = len(scenes), geo.SUPERSAMPLE
    objs = geo._Objects(scenes)
    t_obj, row = geo._nearest_primary(objs, batch, resolution * ss, dirs)
    cam_z = geo.CAMERA_POS[2]
    t_floor = -cam_z / np.minimum(dirs[2], -1e-6)
    first_row = np.concatenate([[0], np.cumsum([len(s.kinds) for s in scenes])[:-1]])
    sub = np.where(t_obj < t_floor[None], row - first_row[:, None] + 1, 0)  # [B, P]
    sub = sub.reshape(batch, resolution, ss, resolution, ss).transpose(0, 1, 3, 2, 4).reshape(batch, resolution,
                                                                                             resolution, ss * ss)
    counts = (sub[..., None] == np.arange(geo.MAX_OBJECTS + 1)).sum(axis=3)  # [B, R, R, ids]
    return counts.argmax(axis=-1).astype(np.int32)


def render_with_ids(seed: int, start: int, count: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Images `start .. start+count-1` of a seed (exactly as the dataset has them) and their object ids.

    Returns:
        (uint8 `[count, R, R, 3]`, int32 `[count, R, R]`).
    """
    scenes = [geo.sample_scene(np.random.default_rng([seed, i])) for i in range(start, start + count)]
    return render(scenes, resolution), object_ids(scenes, resolution)
