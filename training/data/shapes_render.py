"""Shading and batching for the built-in `shapes` dataset (geometry and scenes in `training.data.shapes`)."""

from __future__ import annotations

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


def _visibility(objs: geo._Objects, scenes: list[geo.Scene], p: tuple, n: tuple, offsets: np.ndarray) -> tuple:
    """Soft-shadow visibility `[B, P]` in [0, 1] and unit directions to the light centre at points p.

    Only (object, pixel) pairs whose shadow rays can come near the object are traced.
    """
    batch, num_pixels = p[0].shape
    light = np.stack([s.light for s in scenes]).astype(np.float32)  # [B, 3]
    origin = tuple(p[i] + n[i] * 2e-3 for i in range(3))
    vec = tuple(light[:, i:i + 1] - origin[i] for i in range(3))
    dist = np.sqrt(_dot(vec, vec))
    to_centre = tuple(c / dist for c in vec)
    rows, flat = geo._shadow_candidates(objs, int(round(num_pixels ** 0.5)), origin, to_centre, light, dist,
                                         geo.LIGHT_RADIUS)
    visible = np.full(batch * num_pixels, float(len(offsets)), np.float32)
    if rows.size:
        o = tuple(origin[i].reshape(-1)[flat] for i in range(3))
        img, pix = objs.image[rows], flat % num_pixels
        for sample in offsets:  # [3, P]
            target = tuple(light[img, i] + sample[i][pix] - o[i] for i in range(3))
            length = np.sqrt(_dot(target, target))
            hit = geo._pair_distances(objs, rows, o, tuple(c / length for c in target)) < length
            visible -= np.bincount(flat[hit], minlength=batch * num_pixels) > 0
    return (visible / len(offsets)).reshape(batch, num_pixels), to_centre


def _floor_occlusion(objs: geo._Objects, batch: int, size: int, floor: tuple) -> np.ndarray:
    """Ambient occlusion `[B * P]` of the floor points `floor` (3 arrays `[P]`) by nearby objects.

    Each object acts as a sphere of its size; its effect fades to zero at `AO_REACH` radii.
    """
    num_pixels = size * size
    rects = [geo._screen_rect(np.array([x - AO_REACH * r, y - AO_REACH * r, 0.0]),
                              np.array([x + AO_REACH * r, y + AO_REACH * r, 0.0]), size)
             for x, y, r in zip(objs.cx, objs.cy, objs.r)]
    rows, pix = geo._rect_pairs(rects)
    vx, vy, vz = objs.cx[rows] - floor[0][pix], objs.cy[rows] - floor[1][pix], objs.cz[rows]
    horizontal2 = vx * vx + vy * vy
    dist2 = horizontal2 + vz * vz
    fade = np.maximum(1.0 - horizontal2 / (AO_REACH * objs.r[rows]) ** 2, 0.0)
    occ = np.minimum(0.9 * objs.r[rows] ** 2 * vz / (dist2 * np.sqrt(dist2)) * fade, 0.9)
    log_ao = np.bincount(objs.image[rows] * num_pixels + pix, weights=np.log1p(-occ), minlength=batch * num_pixels)
    return np.exp(log_ao).astype(np.float32)


def render(scenes: list[geo.Scene], resolution: int) -> np.ndarray:
    """Renders scenes.

    Args:
        scenes: B scenes.
        resolution: output side R.

    Returns:
        uint8 `[B, R, R, 3]` sRGB images.
    """
    size = resolution * geo.SUPERSAMPLE
    dirs, offsets = _rays(resolution)
    batch, num_pixels = len(scenes), size * size
    objs = geo._Objects(scenes)
    cam = geo.CAMERA_POS.astype(np.float32)
    t_obj, row = geo._nearest_primary(objs, batch, size, dirs)
    t_floor = -cam[2] / np.minimum(dirs[2], -1e-6)  # the camera looks down: every ray meets the floor
    floor = (cam[0] + t_floor * dirs[0], cam[1] + t_floor * dirs[1], np.zeros(num_pixels, np.float32))
    on_obj = (t_obj < t_floor[None]).reshape(-1)
    idx = np.nonzero(on_obj)[0]
    pix, row = idx % num_pixels, row.reshape(-1)[idx]
    p_obj = tuple(cam[i] + t_obj.reshape(-1)[idx] * dirs[i][pix] for i in range(3))
    n_obj = geo._normals(objs, row, p_obj)
    p, n = [], []
    for i in range(3):
        p.append(np.tile(floor[i], batch))
        p[i][idx] = p_obj[i]
        n.append(np.full(batch * num_pixels, float(i == 2), np.float32))
        n[i][idx] = n_obj[i]
    vis, l_dir = _visibility(objs, scenes, tuple(a.reshape(batch, -1) for a in p),
                             tuple(a.reshape(batch, -1) for a in n), offsets)
    vis, l_dir = vis.reshape(-1), tuple(a.reshape(-1) for a in l_dir)
    ao = _floor_occlusion(objs, batch, size, floor)
    color = np.empty((batch * num_pixels, 3), np.float32)
    floor_light = AMBIENT * ao + KEY_LIGHT * np.maximum(l_dir[2], 0.0) * vis + FILL_LIGHT * FILL_DIR[2]
    color[:] = (geo.FLOOR_ALBEDO * floor_light)[:, None]
    view = tuple(-dirs[i][pix] for i in range(3))
    color[idx] = _shade_objects(objs, row, n_obj, view, tuple(a[idx] for a in l_dir), vis[idx])
    linear = color.reshape(batch, resolution, geo.SUPERSAMPLE, resolution, geo.SUPERSAMPLE, 3).mean(axis=(2, 4))
    return np.clip(np.rint(np.clip(linear, 0.0, 1.0) ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)


def _shade_objects(objs: geo._Objects, row: np.ndarray, n: tuple, view: tuple, l_dir: tuple,
                   vis: np.ndarray) -> np.ndarray:
    """Linear RGB `[M, 3]` of M object pixels: Lambert key + fill + ambient, Blinn-Phong, metal reflection."""
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
