"""The built-in `shapes` dataset: procedurally ray-cast CLEVR-like scenes, no download needed.

Each image shows 3-6 objects (spheres, cubes rotated about the vertical axis, upright cylinders) in
matte-rubber or metal materials with varied colours and sizes, standing on a grey floor seen from a
raised camera. Objects occlude each other; an area light gives soft shadows, plus a fill light, floor
ambient occlusion (contact shadows), specular highlights and a sky/floor reflection on metal.

Rendering is exact analytic ray casting, vectorized with numpy over a batch of images and all their
pixels: primary rays find the nearest surface, then a few shadow rays per pixel towards points of the
area light give the soft-shadow visibility (only pixels near each object's shadow volume are traced); images are rendered at `SUPERSAMPLE`x the resolution
and box-filtered (anti-aliasing). Scene `i` of seed `s` is drawn from `np.random.default_rng([s, i])`,
so every image is a pure function of (seed, index, resolution), independent of batching.

Geometry: world units, z up, floor z = 0. Camera at `CAMERA_POS` looking at `CAMERA_TARGET`.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

SPHERE, CUBE, CYLINDER = 0, 1, 2
MIN_OBJECTS, MAX_OBJECTS = 3, 6
CAMERA_POS = np.array([0.0, -9.5, 7.0])
CAMERA_TARGET = np.array([0.0, 0.4, 0.0])
FOV_DEGREES = 36.0
LIGHT_POS = np.array([-5.0, -4.0, 9.0])
LIGHT_RADIUS = 1.6
SHADOW_SAMPLES = {64: 4, 128: 8}  # per render resolution (<= key); larger images get SHADOW_SAMPLES_MAX
SHADOW_SAMPLES_MAX = 12
SUPERSAMPLE = 2
PIXELS_PER_BATCH = 1 << 17
FLOOR_ALBEDO = 0.62
HUES = np.array([0.0, 0.08, 0.15, 0.33, 0.5, 0.6, 0.75, 0.9])
EPS = 1e-3


@dataclass
class Scene:
    """Parameters of one scene (K objects).

    Attributes:
        kinds: int `[K]` (SPHERE, CUBE, CYLINDER).
        centers: float `[K, 2]` floor position (x, y).
        sizes: float `[K]` radius / half-extent r (objects are 2r tall).
        angles: float `[K]` rotation about z (cubes).
        colors: float `[K, 3]` linear RGB albedo.
        metal: bool `[K]`.
        light: float `[3]` area-light centre.
    """

    kinds: np.ndarray
    centers: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    colors: np.ndarray
    metal: np.ndarray
    light: np.ndarray


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _camera() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera basis (forward, right, up), unit vectors."""
    forward = CAMERA_TARGET - CAMERA_POS
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return forward, right, np.cross(right, forward)


CAMERA_BASIS = _camera()
TAN_HALF_FOV = float(np.tan(np.radians(FOV_DEGREES) / 2))


def _visible_in_view(points: np.ndarray, margin: float = 0.84) -> np.ndarray:
    """Whether world points `[M, 3]` project inside [-margin, margin]^2 of the normalized screen."""
    forward, right, up = CAMERA_BASIS
    rel = points - CAMERA_POS
    scale = TAN_HALF_FOV * (rel @ forward)
    return (np.abs(rel @ right) <= margin * scale) & (np.abs(rel @ up) <= margin * scale)


def sample_scene(rng: np.random.Generator, tries: int = 64) -> Scene:
    """Draws one scene: 3-6 non-overlapping objects whose centres are inside the view.

    Candidates (kind, size, position) are drawn in one go and accepted greedily in order.
    """
    count = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    kinds = rng.integers(0, 3, size=tries)
    sizes = rng.choice([0.42, 0.7], size=tries) * rng.uniform(0.85, 1.15, size=tries)
    centers = rng.uniform([-3.2, -2.6], [3.2, 3.4], size=(tries, 2))
    reach = sizes * np.where(kinds == CUBE, 1.42, 1.0)
    ok = _visible_in_view(np.concatenate([centers, sizes[:, None]], axis=1))
    chosen: list[int] = []
    for i in np.nonzero(ok)[0]:
        if len(chosen) == count:
            break
        if chosen and np.any(np.hypot(*(centers[chosen] - centers[i]).T) < reach[chosen] + reach[i] + 0.12):
            continue
        chosen.append(int(i))
    k = len(chosen)
    hues = (rng.choice(HUES, size=k) + rng.uniform(-0.02, 0.02, size=k)) % 1.0
    saturation = np.where(rng.random(k) < 0.12, 0.0, rng.uniform(0.65, 0.9, size=k))
    colors = np.stack([_hsv_to_rgb(h, sat, v) for h, sat, v in zip(hues, saturation, rng.uniform(0.55, 0.9, k))])
    light = LIGHT_POS + rng.uniform(-1.5, 1.5, size=3) * np.array([1.0, 1.0, 0.4])
    return Scene(kinds=kinds[chosen], centers=centers[chosen], sizes=sizes[chosen],
                 angles=rng.uniform(0, np.pi / 2, size=k), colors=colors.reshape(k, 3) ** 2.2,
                 metal=rng.random(k) < 0.4, light=light)


def _primary_rays(size: int) -> np.ndarray:
    """Unit ray directions `[P, 3]` for a `size` x `size` image (row-major, top row first)."""
    forward, right, up = CAMERA_BASIS
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    half = np.tan(np.radians(FOV_DEGREES) / 2)
    v, u = np.meshgrid(-coords, coords, indexing="ij")
    dirs = forward + half * (u.reshape(-1, 1) * right + v.reshape(-1, 1) * up)
    return (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)


def shadow_samples(resolution: int) -> int:
    """Shadow rays per pixel for an output resolution (more for large images, where noise would show)."""
    return next((n for limit, n in sorted(SHADOW_SAMPLES.items()) if resolution <= limit), SHADOW_SAMPLES_MAX)


def _light_offsets(num_pixels: int, samples: int) -> np.ndarray:
    """Per-pixel, per-sample offsets `[S, P, 3]` on the light disk (Vogel spiral rotated per pixel)."""
    towards = LIGHT_POS / np.linalg.norm(LIGHT_POS)
    e1 = np.cross(towards, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(towards, e1)
    size = int(round(np.sqrt(num_pixels)))
    y, x = np.divmod(np.arange(num_pixels), size)
    rotation = 2 * np.pi * ((52.9829189 * ((0.06711056 * x + 0.00583715 * y) % 1.0)) % 1.0)  # gradient noise
    offsets = []
    for s in range(samples):
        radius = LIGHT_RADIUS * np.sqrt((s + 0.5) / samples)
        angle = rotation + s * 2.399963
        offsets.append(radius * (np.cos(angle)[:, None] * e1 + np.sin(angle)[:, None] * e2))
    return np.stack(offsets).astype(np.float32)


class _Objects:
    """Objects of a batch of scenes flattened into rows (one per object), with per-row parameters."""

    def __init__(self, scenes: list[Scene]):
        self.image = np.concatenate([np.full(len(s.kinds), i) for i, s in enumerate(scenes)]).astype(np.int64)
        self.kind = np.concatenate([s.kinds for s in scenes])
        pos = np.concatenate([s.centers for s in scenes]).astype(np.float32)
        self.r = np.concatenate([s.sizes for s in scenes]).astype(np.float32)
        self.cx, self.cy, self.cz = pos[:, 0], pos[:, 1], self.r.copy()
        angles = np.concatenate([s.angles for s in scenes]).astype(np.float32)
        self.cos, self.sin = np.cos(angles), np.sin(angles)
        self.color = np.concatenate([s.colors for s in scenes]).astype(np.float32)
        self.metal = np.concatenate([s.metal for s in scenes])
        self.bound = self.r * np.where(self.kind == CUBE, np.sqrt(3.0), np.where(self.kind == CYLINDER,
                                                                                    np.sqrt(2.0), 1.0))


def _intersect(kind: int, params: tuple, o: tuple, d: tuple) -> np.ndarray:
    """Ray distances `[M]` (inf = miss) of M rays against M objects of one kind (one object per ray).

    Args:
        kind: SPHERE, CUBE or CYLINDER.
        params: per-ray object parameters (cx, cy, cz, r, cos, sin), each `[M]`.
        o: ray origins, 3 arrays `[M]`.
        d: unit ray directions, 3 arrays `[M]`.
    """
    cx, cy, cz, r, c, s = params
    ox, oy, oz = o[0] - cx, o[1] - cy, o[2] - cz
    dx, dy, dz = d
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == SPHERE:
            b = ox * dx + oy * dy + oz * dz
            disc = b * b - (ox * ox + oy * oy + oz * oz - r * r)
            t = -b - np.sqrt(np.maximum(disc, 0.0))
            return np.where((disc > 0) & (t > EPS), t, np.inf)
        if kind == CYLINDER:
            a = dx * dx + dy * dy
            b = ox * dx + oy * dy
            disc = b * b - a * (ox * ox + oy * oy - r * r)
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / np.maximum(a, 1e-12)
            z = oz + t_side * dz
            t_side = np.where((disc > 0) & (t_side > EPS) & (np.abs(z) <= r), t_side, np.inf)
            t_cap = (r - oz) / np.where(np.abs(dz) < 1e-9, 1e-9, dz)
            px, py = ox + t_cap * dx, oy + t_cap * dy
            t_cap = np.where((t_cap > EPS) & (px * px + py * py <= r * r), t_cap, np.inf)
            return np.minimum(t_side, t_cap)
        t_near = np.full(ox.shape, -np.inf, np.float32)
        t_far = np.full(ox.shape, np.inf, np.float32)
        for lo, ld in ((c * ox + s * oy, c * dx + s * dy), (c * oy - s * ox, c * dy - s * dx), (oz, dz)):
            inv = 1.0 / np.where(np.abs(ld) < 1e-9, 1e-9, ld)
            t1, t2 = (-r - lo) * inv, (r - lo) * inv
            t_near = np.maximum(t_near, np.minimum(t1, t2))
            t_far = np.minimum(t_far, np.maximum(t1, t2))
        return np.where((t_far >= t_near) & (t_near > EPS), t_near, np.inf)


def _pair_distances(objs: _Objects, rows: np.ndarray, o: tuple, d: tuple) -> np.ndarray:
    """Ray distances `[M]` for (object row, ray) pairs of mixed kinds."""
    t = np.full(rows.shape, np.inf, np.float32)
    for kind in (SPHERE, CUBE, CYLINDER):
        sel = np.nonzero(objs.kind[rows] == kind)[0]
        if sel.size:
            rk = rows[sel]
            params = (objs.cx[rk], objs.cy[rk], objs.cz[rk], objs.r[rk], objs.cos[rk], objs.sin[rk])
            t[sel] = _intersect(kind, params, tuple(a[sel] for a in o), tuple(a[sel] for a in d))
    return t


def _screen_rects(lo: np.ndarray, hi: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, flat pixel) pairs covering, per row, the screen rectangle of the world box [lo[row], hi[row]].

    Args:
        lo: box minima `[N, 3]`.
        hi: box maxima `[N, 3]`.
        size: render side (pixels are indexed y * size + x).
    """
    forward, right, up = CAMERA_BASIS
    pick = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], bool)  # the 8 corners
    corners = np.where(pick[None], hi[:, None], lo[:, None]) - CAMERA_POS  # [N, 8, 3]
    scale = TAN_HALF_FOV * (corners @ forward)
    x = ((corners @ right) / scale + 1.0) * 0.5 * size
    y = (1.0 - (corners @ up) / scale) * 0.5 * size
    x0 = np.clip(np.floor(x.min(axis=1)).astype(np.int64) - 1, 0, size)
    x1 = np.clip(np.ceil(x.max(axis=1)).astype(np.int64) + 1, 0, size)
    y0 = np.clip(np.floor(y.min(axis=1)).astype(np.int64) - 1, 0, size)
    y1 = np.clip(np.ceil(y.max(axis=1)).astype(np.int64) + 1, 0, size)
    width, height = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    counts = width * height
    rows = np.repeat(np.arange(len(lo)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    w = np.maximum(width[rows], 1)
    return rows, (y0[rows] + local // w) * size + x0[rows] + local % w


def _nearest_primary(objs: _Objects, batch: int, size: int, dirs: np.ndarray) -> tuple:
    """Nearest object along each primary ray.

    Args:
        objs: flattened objects of B scenes.
        batch: B.
        size: render side (P = size * size).
        dirs: unit ray directions `[3, P]`.

    Returns:
        (t `[B, P]`, inf where no object is hit; object row `[B, P]`, valid where t is finite).
    """
    centre = np.stack([objs.cx, objs.cy, objs.cz], axis=1).astype(np.float64)
    rows, pix = _screen_rects(centre - objs.bound[:, None], centre + objs.bound[:, None], size)
    origin = tuple(np.full(rows.shape, v, np.float32) for v in CAMERA_POS)
    t = _pair_distances(objs, rows, origin, tuple(dirs[i][pix] for i in range(3)))
    hit = np.isfinite(t)
    rows, t = rows[hit], t[hit]
    flat = objs.image[rows] * dirs.shape[1] + pix[hit]
    order = np.lexsort((t, flat))  # by pixel, nearest hit first
    flat, rows, t = flat[order], rows[order], t[order]
    first = np.ones(flat.shape, bool)
    first[1:] = flat[1:] != flat[:-1]
    t_best = np.full(batch * dirs.shape[1], np.inf, np.float32)
    row_best = np.zeros(batch * dirs.shape[1], np.int64)
    t_best[flat[first]] = t[first]
    row_best[flat[first]] = rows[first]
    return t_best.reshape(batch, -1), row_best.reshape(batch, -1)


def _shadow_boxes(centre: np.ndarray, bound: np.ndarray, light: np.ndarray,
                  light_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """World boxes `[N, 3]` (lo, hi) holding every point whose shadow rays towards a disk light can hit
    a bounding sphere (centre `[N, 3]`, radius `[N]`, light centre `[N, 3]`).

    Such points lie between the sphere and its (penumbra-widened) shadow on the floor.
    """
    scale = light[:, 2] / np.maximum(light[:, 2] - centre[:, 2], 1e-3)  # light -> floor over light -> centre
    floor_centre = light + (centre - light) * scale[:, None]
    dist = np.linalg.norm(centre - light, axis=1)
    incidence = light[:, 2] / np.linalg.norm(floor_centre - light, axis=1)
    reach = bound * scale * dist / np.sqrt(np.maximum(dist * dist - bound * bound, 1e-6)) + light_radius * (scale - 1)
    reach = (1.1 * reach / np.maximum(incidence, 0.2) + 0.05)[:, None]
    lo = np.minimum(centre - bound[:, None], floor_centre - reach)
    hi = np.maximum(centre + bound[:, None], floor_centre + reach)
    lo[:, 2], hi[:, 2] = 0.0, centre[:, 2] + bound
    return lo, hi


def _shadow_candidates(objs: _Objects, resolution: int, points: "ShadingPoints", to_light: tuple,
                       light: np.ndarray, light_dist: np.ndarray, light_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(object row, shading point) pairs whose shadow rays towards a disk light may hit that object.

    Args:
        objs: flattened objects of B scenes.
        resolution: output side R (candidates are found per output pixel, then expanded to its points).
        points: the M shading points.
        to_light: unit directions to the light centre, 3 arrays `[M]`.
        light: light centres `[B, 3]`.
        light_dist: distance to the light centre `[M]`.
        light_radius: radius of the light disk.

    Returns:
        (rows `[K]`, shading-point indices `[K]`).
    """
    centre = np.stack([objs.cx, objs.cy, objs.cz], axis=1).astype(np.float64)
    lo, hi = _shadow_boxes(centre, objs.bound.astype(np.float64), light[objs.image].astype(np.float64), light_radius)
    rows, at = points.pairs(objs, *_screen_rects(lo, hi, resolution))
    vx, vy, vz = objs.cx[rows] - points.p[0][at], objs.cy[rows] - points.p[1][at], objs.cz[rows] - points.p[2][at]
    along = vx * to_light[0][at] + vy * to_light[1][at] + vz * to_light[2][at]
    perp2 = vx * vx + vy * vy + vz * vz - along * along
    reach = objs.bound[rows] + light_radius * np.maximum(along, 0.0) / light_dist[at] + 1e-2
    keep = (along > -objs.bound[rows]) & (perp2 < reach * reach)
    return rows[keep], at[keep]


@dataclass
class ShadingPoints:
    """The M sub-pixels that are shaded: every sub-pixel of blocks that straddle an edge, one per other block.

    Attributes:
        resolution: output side R.
        flat: indices into the batch's sub-pixels `[B * P]`, `[M]`.
        index_of: inverse map `[B * P]` (-1 for sub-pixels that copy their block's first sub-pixel).
        block_points: shading points of each output pixel `[B * R * R, SUPERSAMPLE**2]` (-1 = none).
        image, pix: image index and sub-pixel index within the image, `[M]` each.
        on_obj: whether the point is on an object (else the floor), `[M]`.
        row: object row of object points, `[M]`.
        p: surface points, 3 arrays `[M]`.
        n: unit normals, 3 arrays `[M]`.
    """

    resolution: int
    flat: np.ndarray
    index_of: np.ndarray
    block_points: np.ndarray
    image: np.ndarray
    pix: np.ndarray
    on_obj: np.ndarray
    row: np.ndarray
    p: tuple
    n: tuple

    def pairs(self, objs: _Objects, rows: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expands (object row, output pixel of that row's image) pairs to (row, shading point) pairs."""
        points = self.block_points[objs.image[rows] * self.resolution ** 2 + pixels]  # [K, SS^2]
        keep = points >= 0
        return np.broadcast_to(rows[:, None], points.shape)[keep], points[keep]


def _normals(objs: _Objects, row: np.ndarray, p: tuple) -> tuple:
    """Surface normals at hit points p (tuple of `[B, P]`) on object rows `row` `[B, P]`."""
    px, py, pz = p[0] - objs.cx[row], p[1] - objs.cy[row], p[2] - objs.cz[row]
    r, kind, c, s = objs.r[row], objs.kind[row], objs.cos[row], objs.sin[row]
    inv = 1.0 / np.sqrt(px * px + py * py + pz * pz + 1e-12)
    normal = [px * inv, py * inv, pz * inv]
    cap = (kind == CYLINDER) & (pz >= r - 2e-3)
    side_inv = 1.0 / np.sqrt(px * px + py * py + 1e-12)
    cyl = kind == CYLINDER
    for axis, value in enumerate((px * side_inv, py * side_inv, np.zeros_like(pz))):
        normal[axis] = np.where(cyl, np.where(cap, float(axis == 2), value), normal[axis])
    lx, ly = c * px + s * py, c * py - s * px
    ax, ay, az = np.abs(lx), np.abs(ly), np.abs(pz)
    use_x, use_y = (ax >= ay) & (ax >= az), (ay > ax) & (ay >= az)
    nlx = np.where(use_x, np.sign(lx), 0.0)
    nly = np.where(use_y, np.sign(ly), 0.0)
    nz = np.where(~use_x & ~use_y, np.sign(pz), 0.0)
    cube = kind == CUBE
    cube_normal = (c * nlx - s * nly, s * nlx + c * nly, nz)
    return tuple(np.where(cube, cn, n).astype(np.float32) for cn, n in zip(cube_normal, normal))
