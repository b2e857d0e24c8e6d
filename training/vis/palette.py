"""Colouring of attention maps: one colour per latent (`latent_palette`), soft and hard maps, blends with the image.

The maps are probabilities over the k latents at every pixel; `check_probabilities` verifies that before any
colouring, so a map that is not a distribution is never silently drawn.
"""

from __future__ import annotations

import colorsys

import numpy as np

# Lightness and saturation of the palette (a bright, medium-saturation HLS circle).
PALETTE_LIGHTNESS = 0.6
PALETTE_SATURATION = 0.65
PALETTE_HUE_OFFSET = 0.01
# Weight of the image when a map is blended over it (the original's `--blending-alpha` default).
DEFAULT_BLEND_ALPHA = 0.3
# Latent colours: fully saturated; up to 8 hues at lightness 0.5, beyond that a second, darker ring of hues.
LATENT_LIGHTNESS = (0.5, 0.3)
LATENT_SATURATION = 1.0


def hls_palette(n: int, lightness: float = PALETTE_LIGHTNESS, saturation: float = PALETTE_SATURATION) -> np.ndarray:
    """`n` colours evenly spaced in hue on an HLS circle.

    Returns:
        float32 `[n, 3]` RGB in [0, 1].
    """
    if n < 1:
        raise ValueError(f"palette size must be >= 1, got {n}")
    hues = (np.arange(n) / n + PALETTE_HUE_OFFSET) % 1.0
    return np.array([colorsys.hls_to_rgb(h, lightness, saturation) for h in hues], dtype=np.float32)


def latent_palette(n: int) -> np.ndarray:
    """`n` saturated, mutually distinct colours for hard attention maps, ordered so that latents with neighbouring
    indices get distant hues (hue index `i * s mod m` with the stride s coprime to the m hues of a ring).

    Up to 8 latents share one ring of evenly spaced hues at lightness 0.5; latents 8.. take a second ring, darker and
    shifted by half a hue step, so no two colours are closer than half a hue step or one lightness step.

    Returns:
        float32 `[n, 3]` RGB in [0, 1].
    """
    if n < 1:
        raise ValueError(f"palette size must be >= 1, got {n}")
    rings = [min(n, 8)] + ([n - 8] if n > 8 else [])
    colours = []
    for ring, m in enumerate(rings):
        stride = next(s for s in (3, 5, 7, 1) if s < m and np.gcd(s, m) == 1) if m > 2 else 1
        for i in range(m):
            hue = ((i * stride) % m + 0.5 * ring) / m
            colours.append(colorsys.hls_to_rgb(hue % 1.0, LATENT_LIGHTNESS[ring], LATENT_SATURATION))
    return np.array(colours, dtype=np.float32)


def check_probabilities(maps: np.ndarray, axis: int = 1, atol: float = 1e-3) -> None:
    """Raises ValueError unless `maps` are non-negative and sum to 1 over `axis` at every pixel.

    Args:
        maps: float `[B, k, H, W]` (default axis 1 = latents).
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.size and maps.min() < -atol:
        raise ValueError(f"attention maps have negative values (min {maps.min():.3g})")
    sums = maps.sum(axis=axis)
    err = float(np.abs(sums - 1.0).max()) if sums.size else 0.0
    if err > atol:
        raise ValueError(f"attention maps do not sum to 1 over the latents (max error {err:.3g})")


def soft_maps(maps: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Soft colouring: `sum_k colour_k * p_k` per pixel.

    Args:
        maps: Probabilities `[B, k, H, W]` over the k latents.
        palette: `[k, 3]` RGB in [0, 1].

    Returns:
        uint8 `[B, H, W, 3]`.
    """
    check_probabilities(maps)
    rgb = np.einsum("bkhw,kc->bhwc", np.asarray(maps, np.float32), palette[: maps.shape[1]])
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def hard_maps(maps: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Hard colouring: the colour of the most likely latent per pixel.

    Args:
        maps: Probabilities `[B, k, H, W]`.
        palette: `[k, 3]` RGB in [0, 1].

    Returns:
        uint8 `[B, H, W, 3]`.
    """
    check_probabilities(maps)
    colours = np.rint(palette[: maps.shape[1]] * 255.0).astype(np.uint8)
    return colours[np.argmax(maps, axis=1)]


def blend(maps_rgb: np.ndarray, images: np.ndarray, alpha: float) -> np.ndarray:
    """Blends coloured maps over images: `(1 - alpha) * map + alpha * image` (alpha = the image's weight).

    Args:
        maps_rgb: uint8 `[B, H, W, 3]`.
        images: uint8 `[B, H, W, 3]`.
        alpha: Weight of the image in [0, 1] (the original's `--blending-alpha`, default 0.3).

    Returns:
        uint8 `[B, H, W, 3]`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"blending alpha must be in [0, 1], got {alpha}")
    out = (1.0 - alpha) * maps_rgb.astype(np.float32) + alpha * images.astype(np.float32)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def map_views(maps: np.ndarray, images: np.ndarray, palette: np.ndarray,
              alpha: float = DEFAULT_BLEND_ALPHA) -> dict[str, np.ndarray]:
    """The drawings of attention maps that the visualizations, the projections and the training maps show.

    Args:
        maps: Probabilities `[B, k, H, W]` over the k latents.
        images: uint8 `[B, H, W, 3]`, the images the maps belong to.
        palette: `[k, 3]` RGB in [0, 1] (e.g. `latent_palette(k)`).
        alpha: Weight of the image in the blends.

    Returns:
        uint8 `[B, H, W, 3]` each: `"softmaps"` (`soft_maps`), `"maps"` (`hard_maps`), `"softblends"` and `"blends"`
        (the soft and the hard map blended over the image), in that order.
    """
    soft, hard = soft_maps(maps, palette), hard_maps(maps, palette)
    return {"softmaps": soft, "maps": hard, "softblends": blend(soft, images, alpha),
            "blends": blend(hard, images, alpha)}
