"""Latent edits of a compositional generator: resample one local latent, or take it from another image, and show
the region of the image that changed.

For an image with ws `[K, S, d]` and each local latent i (0 .. k-1; the global latent, last, is kept), a grid row
shows: the original | latent i resampled (taken from a donor drawn at random) | the pixels that changed | latent i
taken from another image (the swap donor, e.g. the next projected photo) | the pixels that changed. A pixel counts
as changed when its mean absolute difference over the channels exceeds `CHANGE_THRESHOLD` levels of 255; changed
pixels are shown as in the edited image, the others faded to white. The first row shows the original and the two
donors. Without a swap donor the grid has three columns.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from training.vis.imageio import make_grid

if TYPE_CHECKING:
    from training.vis.sampler import Sampler

CHANGE_THRESHOLD = 16.0
FADE = 0.8  # weight of white over unchanged pixels


def num_local_latents(G) -> int:
    """k: the latents an edit can change: a GANformer's local latents (not the global one), a k-GAN's components;
    0 for single-latent models (StyleGAN2, GAN), where a swap would replace the whole image."""
    if G.cfg.transformer:
        return G.latent_shape[0] - 1
    return G.cfg.components_num if G.cfg.kgan else 0


def replace_latent(ws: np.ndarray, donor: np.ndarray, idx: int) -> np.ndarray:
    """`ws` `[N, K, S, d]` with latent `idx` (all slots) taken from `donor` `[N, K, S, d]`."""
    out = np.array(ws, copy=True)
    out[:, idx] = donor[:, idx]
    return out


def changed_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool `[N, h, w]`: pixels of uint8 `[N, h, w, 3]` images whose mean |a - b| over channels exceeds the
    threshold."""
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=-1) > CHANGE_THRESHOLD


def highlight(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 `[N, h, w, 3]`: `image` where `mask` `[N, h, w]`, else faded to white."""
    faded = FADE * 255.0 + (1.0 - FADE) * image.astype(np.float32)
    return np.where(mask[..., None], image, np.rint(faded).astype(np.uint8))


def edit_grids(synth: Callable[[np.ndarray], np.ndarray], ws: np.ndarray, resample_donor: np.ndarray,
               swap_donor: Optional[np.ndarray], num_local: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The edit grid of every image (see the module docstring).

    Args:
        synth: ws `[N, K, S, d]` -> uint8 images `[N, h, w, 3]`.
        ws: The images' ws `[N, K, S, d]`.
        resample_donor: ws `[N, K, S, d]` the resampled latents come from.
        swap_donor: ws `[N, K, S, d]` the swapped latents come from (None: no swap columns).
        num_local: k, the number of local latents (rows).

    Returns:
        (uint8 grid `[(k + 1) h, C w, 3]` per image with C = 5 or 3 columns, the fraction of changed pixels
        `[N, k, 2]` (resample, swap; NaN without a swap)).
    """
    original = synth(ws)
    n = len(ws)
    donors = [synth(resample_donor)] + ([synth(swap_donor)] if swap_donor is not None else [])
    blank = np.full_like(original, 255)
    rows = [[original] + sum(([d, blank] for d in donors), [])]
    fractions = np.full([n, num_local, 2], np.nan)
    for i in range(num_local):
        row = [original]
        for j, donor in enumerate((resample_donor, swap_donor)):
            if donor is None:
                continue
            edited = synth(replace_latent(ws, donor, i))
            mask = changed_mask(original, edited)
            fractions[:, i, j] = mask.mean(axis=(1, 2))
            row += [edited, highlight(edited, mask)]
        rows.append(row)
    cols = len(rows[0])
    grids = [make_grid(np.stack([cell[s] for row in rows for cell in row]), cols=cols, pad=1) for s in range(n)]
    return grids, fractions


def write_sample_edits(sampler: "Sampler", output_dir: str, z: np.ndarray, labels: np.ndarray, ids: list[int],
                       psi: float) -> int:
    """`--vis-latent-swap` for generated samples: `latent-swap/<id>.png` per sample, the resampled latents drawn
    from `RandomState([id, 3])` and the swapped ones taken from the next sample (the first for the last one).

    Args:
        sampler: Runs the generator (its noise mode and ratio apply).
        output_dir: The visualization folder.
        z: The samples' z `[N, K, d]`.
        labels: `[N, label_dim]`.
        ids: The samples' ids (seeds or rows).
        psi: Truncation psi of the samples and the donors.

    Returns:
        The number of grids written (0 when the model has no local latents).
    """
    from training.vis.imageio import save_png

    k = num_local_latents(sampler.G)
    if k < 1:
        print("Skipping latent swaps: the model has no local latents.")
        return 0
    ws = sampler.mapping(z, labels, psi)
    donor_z = np.stack([np.random.RandomState([int(i) % (2 ** 32), 3]).randn(*z.shape[1:]) for i in ids])
    donor = sampler.mapping(donor_z.astype(np.float32), labels, psi)
    swap = np.roll(ws, -1, axis=0) if len(ws) > 1 else None
    grids, _ = edit_grids(lambda w: sampler.synthesize(w)["images"], ws, donor, swap, k)
    for grid, i in zip(grids, ids):
        save_png(os.path.join(output_dir, "latent-swap", f"{i:06d}.png"), grid)
    return len(grids)
