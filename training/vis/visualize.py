"""Visualizations of a generator (after `vis` of the authors' `training/visualize.py`): `vis(Gs, output_dir, kinds,
...)`, used by `run_network.py --vis` and by `generate.py --vis-*`.

Kinds (named after the original's `--vis-*` flags) and what they write under `output_dir` (`<id>` = the sample's
seed, 6 digits; with `step` every name gets a `<step:06d>_` prefix):
- `images`: `images/<id>.png` (cropped to `ratio`).
- `latents`: `latents-z/<id>.npy` (z `[K, d]`) and `latents-w/<id>.npy` (w of the first slot `[K, d]`).
- `maps`: last attention layer, head 0, one colour per latent (`latent-colours.png`): `softmaps/`, `maps/`
  (hard = most likely latent), `softblends/`, `blends/` (over the image, `blending_alpha` = the image's weight).
- `layer_maps`: hard maps of every attention layer and head for the first `rich_num` samples:
  `layer_maps/<id>/l<layer>_h<head>.png`.
- `interpolations`: for the first `rich_num` samples, `interpolation_density` frames from the sample to a random
  latent, in z (slerp per component) and w (lerp): `interpolations-{z,w}/<id>/<frame>.png` and `<id>.gif`.
- `noise_var`: `noise-variance.png`, per-pixel std (x4) over `noise_samples` images differing only in noise.
- `style_mix`: `layer-mixing.png`, `component-mixing.png` (see `training.vis.style_mix`).
With `grid=True` the per-sample kinds write one grid per section instead (`images/grid.png`, `latents-z/grid.npy`
`[N, K, d]`, `layer_maps/<id>.png` with rows = layers and columns = heads, `interpolations-*/<id>.png` strips).
Finally `index.html` shows everything on one page.

Unlike the original, the generator is never modified (the original overwrote the noise buffers with fresh noise).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Iterable, Optional

import numpy as np
from tqdm import tqdm

from dnnlib.util import UserError
from training.vis import imageio, palette, style_mix
from training.vis.html_index import write_index
from training.vis.interpolation import interpolation_steps, lerp, slerp
from training.vis.sampler import COMPILE_MODES, NOISE_MODES, Sampler, make_labels

KINDS = ("images", "latents", "maps", "layer_maps", "interpolations", "noise_var", "style_mix")
ALIASES = {"imgs": "images", "ltnts": "latents"}
MAP_KINDS = {"maps", "layer_maps"}


@dataclasses.dataclass
class VisOptions:
    """Options of a visualization run (see `vis`)."""

    rich_num: int = 5
    section_size: int = 100
    blending_alpha: float = palette.DEFAULT_BLEND_ALPHA
    interpolation_density: int = 8
    ratio: float = 1.0
    batch_size: int = 4
    truncation_psi: float = 0.75
    grid: bool = False
    noise_mode: str = "const"
    class_idx: Optional[int] = None
    step: Optional[int] = None
    noise_samples: int = 100
    progress: bool = True
    compile: str = "eager"

    def prefix(self) -> str:
        """File-name prefix: `<step:06d>_` in training, else empty."""
        return "" if self.step is None else f"{self.step:06d}_"

    def validate(self) -> "VisOptions":
        """Raises UserError on bad values, naming the flag and the value (one line)."""
        checks = [(self.rich_num >= 0, "--vis-rich-num", "must be >= 0", self.rich_num),
                  (self.section_size >= 1, "--vis-section-size", "must be >= 1", self.section_size),
                  (0.0 <= self.blending_alpha <= 1.0, "--blending-alpha", "must be in [0, 1]", self.blending_alpha),
                  (self.interpolation_density >= 2, "--interpolation-density", "must be >= 2 frames",
                   self.interpolation_density),
                  (0 < self.ratio < math.inf, "--ratio", "must be a finite number > 0", self.ratio),
                  (self.batch_size >= 1, "--batch-size", "must be >= 1", self.batch_size),
                  (math.isfinite(self.truncation_psi), "--truncation-psi", "must be a finite number",
                   self.truncation_psi),
                  (self.noise_mode in NOISE_MODES, "--noise-mode", f"must be one of {', '.join(NOISE_MODES)}",
                   self.noise_mode),
                  (self.noise_samples >= 2, "noise_samples", "must be >= 2", self.noise_samples),
                  (self.compile in COMPILE_MODES, "--compile", f"must be one of {', '.join(COMPILE_MODES)}",
                   self.compile)]
        for ok, flag, rule, value in checks:
            if not ok:
                raise UserError(f"{flag} {value}: {rule}")
        return self


def normalize_kinds(kinds: Iterable[str]) -> set[str]:
    """Validates kind names (accepting the original's `imgs`/`ltnts`); raises UserError for unknown ones."""
    out = set()
    for k in kinds:
        k = ALIASES.get(k, k)
        if k not in KINDS:
            raise UserError(f"unknown visualization kind {k!r}; choose from: {', '.join(KINDS)}")
        out.add(k)
    return out


def seed_latents(seeds: Iterable[int], latent_shape: tuple[int, int]) -> np.ndarray:
    """z `[N, K, d]` with sample i drawn as `np.random.RandomState(seeds[i]).randn(K, d)` (same as generate.py)."""
    return np.stack([np.random.RandomState(int(s) % (2 ** 32)).randn(*latent_shape) for s in seeds]).astype(
        np.float32)


def _aux_latents(ids: Iterable[int], tag: int, latent_shape: tuple[int, int]) -> np.ndarray:
    """Extra z (interpolation targets, style-mixing sources) derived from sample ids: `RandomState([id, tag])`."""
    return np.stack([np.random.RandomState([int(i) % (2 ** 32), tag]).randn(*latent_shape) for i in ids]).astype(
        np.float32)


def vis(Gs: Any, output_dir: str, kinds: set[str], num: int = 100, rich_num: int = 5, section_size: int = 100,
        blending_alpha: float = palette.DEFAULT_BLEND_ALPHA, interpolation_density: int = 8, ratio: float = 1.0, batch_size: int = 4,
        truncation_psi: float = 0.75, seed: int = 0, grid: bool = False, *, noise_mode: str = "const",
        class_idx: Optional[int] = None, step: Optional[int] = None, noise_samples: int = 100,
        progress: bool = True, compile: str = "eager") -> str:
    """Writes the requested visualizations of `Gs` to `output_dir` and an `index.html` showing them.

    Args:
        Gs: Generator (`Gs(z, labels, truncation_psi, noise_mode, return_maps, return_ws)`, `.latent_shape`, ...).
        output_dir: Output folder (created).
        kinds: Subset of `KINDS`; empty -> nothing but the index.
        num: Number of samples (seeds `seed`, ..., `seed + num - 1`).
        rich_num: Samples that get the costly outputs (layer maps, interpolations).
        section_size: Samples generated and written per section (bounds memory; one grid per section).
        blending_alpha: Weight of the image when blending maps over it.
        interpolation_density: Frames per interpolation.
        ratio: Content height / width; images and maps are centrally cropped to it.
        batch_size: Micro-batch of the generator (1 works for very large models).
        truncation_psi: Truncation psi (1: none).
        seed: First seed; sample i uses z = `RandomState(seed + i).randn(K, d)`.
        grid: Write grids instead of one file per sample.
        noise_mode: `const` (stored noise, deterministic), `random` or `none`.
        class_idx: Class of every sample for conditional models (None: random per sample).
        step: Training step (kimg) used as a file-name prefix.
        noise_samples: Images for the noise-variance estimate.
        progress: Show tqdm bars.
        compile: How the generator is run: `eager`, `graph` (tf.function) or `xla` (see `Sampler`).

    Returns:
        Path of the written `index.html`.
    """
    opts = VisOptions(rich_num, section_size, blending_alpha, interpolation_density, ratio, batch_size,
                      truncation_psi, grid, noise_mode, class_idx, step, noise_samples, progress, compile)
    ids = list(range(seed, seed + num))
    return run_vis(Gs, output_dir, kinds, seed_latents(ids, Gs.latent_shape), ids, opts)


def run_vis(G: Any, output_dir: str, kinds: Iterable[str], z: np.ndarray, ids: list[int],
            opts: VisOptions) -> str:
    """`vis` for explicit latents z `[N, K, d]` named by `ids` (seeds or indices). Returns the index path."""
    kinds = normalize_kinds(kinds)
    opts.validate()
    if class_idx_bad(G, opts.class_idx):
        raise UserError(f"--class {opts.class_idx}: the model has {G.label_dim} classes; pass 0..{G.label_dim - 1}"
                        if G.label_dim else "--class: the model is unconditional; omit --class")
    sampler = Sampler(G, opts.batch_size, opts.noise_mode, opts.ratio, opts.compile)
    if kinds & MAP_KINDS and not sampler.has_maps:
        print(f"Skipping {', '.join(sorted(kinds & MAP_KINDS))}: this model has no attention layers.")
        kinds -= MAP_KINDS
    os.makedirs(output_dir, exist_ok=True)
    labels = make_labels(G.label_dim, len(ids), opts.class_idx, ids)
    if kinds & {"images", "latents", "maps"}:
        _per_sample(sampler, output_dir, kinds, z, labels, ids, opts)
    rich = min(opts.rich_num, len(ids))
    if "layer_maps" in kinds and rich:
        _layer_maps(sampler, output_dir, z[:rich], labels[:rich], ids[:rich], opts)
    if "interpolations" in kinds and rich:
        _interpolations(sampler, output_dir, z[:rich], labels[:rich], ids[:rich], opts)
    if "noise_var" in kinds and len(ids):
        _noise_variance(G, output_dir, z[0], labels[:1], ids[0], opts)
    if "style_mix" in kinds:
        _style_mixing(sampler, output_dir, z, labels, ids, opts)
    return write_index(output_dir)


def class_idx_bad(G: Any, class_idx: Optional[int]) -> bool:
    """True when `class_idx` is given but the model has no such class."""
    return class_idx is not None and not 0 <= class_idx < G.label_dim


def _bar(opts: VisOptions, total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="img", disable=not opts.progress, leave=False)


def _grid_name(kind: str, opts: VisOptions, section: int, sections: int, ext: str = "png") -> str:
    suffix = "" if sections == 1 else f"{section:02d}"
    return os.path.join(kind, f"{opts.prefix()}grid{suffix}.{ext}")


def _write_each(output_dir: str, kind: str, images: np.ndarray, ids: list[int], opts: VisOptions, section: int,
                sections: int) -> None:
    """Writes uint8 `[n, h, w, 3]` as `<kind>/<id>.png`, or as one grid with `opts.grid`."""
    if opts.grid:
        imageio.save_png(os.path.join(output_dir, _grid_name(kind, opts, section, sections)),
                         imageio.make_grid(images))
        return
    for img, i in zip(images, ids):
        imageio.save_png(os.path.join(output_dir, kind, f"{opts.prefix()}{i:06d}.png"), img)


def _per_sample(sampler: Sampler, output_dir: str, kinds: set[str], z: np.ndarray, labels: np.ndarray,
                ids: list[int], opts: VisOptions) -> None:
    """images / latents / maps, generated and written section by section."""
    n = len(ids)
    sections = max(1, -(-n // opts.section_size))
    colours = palette.latent_palette(sampler.G.cfg.components_num) if "maps" in kinds else None
    if colours is not None:
        swatches = np.repeat(np.repeat((colours * 255).round().astype(np.uint8)[None], 16, 0), 16, 1)
        imageio.save_png(os.path.join(output_dir, "latent-colours.png"), swatches)
    with _bar(opts, n, "samples") as bar:
        for sec in range(sections):
            sl = slice(sec * opts.section_size, (sec + 1) * opts.section_size)
            sec_ids = ids[sl]
            res = sampler.generate(z[sl], labels[sl], opts.truncation_psi, maps="last" if colours is not None
                                   else None, ws="latents" in kinds, seed=sec_ids[0], progress=bar.update)
            if "images" in kinds:
                _write_each(output_dir, "images", res["images"], sec_ids, opts, sec, sections)
            if "latents" in kinds:
                _write_latents(output_dir, z[sl], res["ws"][:, :, 0], sec_ids, opts, sec, sections)
            if colours is not None:
                probs = res["maps"][:, :, 0]  # head 0: [n, k, h, w]
                for kind, rgb in palette.map_views(probs, res["images"], colours, opts.blending_alpha).items():
                    _write_each(output_dir, kind, rgb, sec_ids, opts, sec, sections)


def _write_latents(output_dir: str, z: np.ndarray, w: np.ndarray, ids: list[int], opts: VisOptions, section: int,
                   sections: int) -> None:
    for kind, arr in (("latents-z", z), ("latents-w", w)):
        if opts.grid:
            imageio.save_npy(os.path.join(output_dir, _grid_name(kind, opts, section, sections, "npy")), arr)
        else:
            for a, i in zip(arr, ids):
                imageio.save_npy(os.path.join(output_dir, kind, f"{opts.prefix()}{i:06d}.npy"), a)


def _layer_maps(sampler: Sampler, output_dir: str, z: np.ndarray, labels: np.ndarray, ids: list[int],
                opts: VisOptions) -> None:
    """Hard maps of every attention layer and head for the rich samples."""
    colours = palette.latent_palette(sampler.G.cfg.components_num)
    with _bar(opts, len(ids), "layer maps") as bar:
        for j, i in enumerate(ids):  # one sample at a time: all-layer maps are large
            maps = sampler.generate(z[j:j + 1], labels[j:j + 1], opts.truncation_psi, maps="all")["maps"][0]
            _, layers, heads, h, w = maps.shape
            rgb = np.stack([palette.hard_maps(maps[None, :, l, hd], colours)[0]
                            for l in range(layers) for hd in range(heads)])
            if opts.grid:
                imageio.save_png(os.path.join(output_dir, "layer_maps", f"{opts.prefix()}{i:06d}.png"),
                                 imageio.make_grid(rgb, cols=heads, pad=2))
            else:
                for idx, img in enumerate(rgb):
                    name = f"l{idx // heads}_h{idx % heads}.png"
                    imageio.save_png(os.path.join(output_dir, "layer_maps", f"{opts.prefix()}{i:06d}", name), img)
            bar.update(1)


def _interpolations(sampler: Sampler, output_dir: str, z: np.ndarray, labels: np.ndarray, ids: list[int],
                    opts: VisOptions) -> None:
    """z-space slerp and w-space lerp from each rich sample to a random latent."""
    t = interpolation_steps(opts.interpolation_density)
    targets = _aux_latents(ids, 1, sampler.G.latent_shape)
    with _bar(opts, 2 * len(ids), "interpolations") as bar:
        for j, i in enumerate(ids):
            lab = np.repeat(labels[j:j + 1], len(t), axis=0)
            frames_z = sampler.generate(slerp(z[j], targets[j], t), lab, opts.truncation_psi)["images"]
            _write_frames(output_dir, "interpolations-z", i, frames_z, opts)
            bar.update(1)
            ends = sampler.mapping(np.stack([z[j], targets[j]]), labels[[j, j]], opts.truncation_psi)
            frames_w = sampler.synthesize(lerp(ends[0], ends[1], t))["images"]
            _write_frames(output_dir, "interpolations-w", i, frames_w, opts)
            bar.update(1)


def _write_frames(output_dir: str, kind: str, i: int, frames: np.ndarray, opts: VisOptions) -> None:
    base = os.path.join(output_dir, kind, f"{opts.prefix()}{i:06d}")
    imageio.save_gif(base + ".gif", list(frames), duration_ms=50)
    if opts.grid:
        imageio.save_png(base + ".png", imageio.make_grid(frames, cols=len(frames)))
    else:
        for f, frame in enumerate(frames):
            imageio.save_png(os.path.join(base, f"{f:02d}.png"), frame)


def _noise_variance(G: Any, output_dir: str, z: np.ndarray, labels: np.ndarray, i: int, opts: VisOptions) -> None:
    """Std over `noise_samples` images of one z with different random noise (of the channel-mean, x4)."""
    sampler = Sampler(G, opts.batch_size, "random", opts.ratio, opts.compile)
    n = opts.noise_samples
    with _bar(opts, n, "noise variance") as bar:
        images = sampler.generate(np.repeat(z[None], n, 0), np.repeat(labels, n, 0), opts.truncation_psi,
                                  seed=i, progress=bar.update)["images"]
    std = images.astype(np.float64).mean(axis=-1).std(axis=0)
    out = np.rint(np.clip(std * 4.0, 0, 255)).astype(np.uint8)
    suffix = "" if opts.step is None else f"-{opts.step:06d}"
    imageio.save_png(os.path.join(output_dir, f"noise-variance{suffix}.png"), out)


def _style_mixing(sampler: Sampler, output_dir: str, z: np.ndarray, labels: np.ndarray, ids: list[int],
                  opts: VisOptions) -> None:
    """Layer-wise and component-wise mixing grids from the first samples (plus derived ones if too few)."""
    G = sampler.G
    need = style_mix.NUM_COLUMN_SOURCES + style_mix.NUM_ROW_SOURCES
    have = min(need, len(ids))
    z_src = z[:have]
    lab = labels[:have]
    if have < need:
        extra = _aux_latents(range(have, need), 2, G.latent_shape)
        z_src = np.concatenate([z_src, extra])
        lab = np.concatenate([lab, make_labels(G.label_dim, need - have, opts.class_idx, range(have, need))])
    ws = sampler.mapping(z_src, lab, opts.truncation_psi)
    cols, rows = ws[:style_mix.NUM_COLUMN_SOURCES], ws[style_mix.NUM_COLUMN_SOURCES:]
    synth = lambda w: sampler.synthesize(w)["images"]  # noqa: E731
    suffix = "" if opts.step is None else f"-{opts.step:06d}"
    canvas, _ = style_mix.style_mixing_grid(cols, rows, style_mix.layer_cutoffs(G.num_ws), "layer", synth)
    imageio.save_png(os.path.join(output_dir, f"layer-mixing{suffix}.png"), canvas)
    local = G.cfg.components_num if not G.cfg.transformer else G.latent_shape[0] - 1
    cuts = style_mix.component_cutoffs(local)
    if not cuts:
        print("Skipping component mixing: the model has fewer than 2 local latents.")
        return
    canvas, _ = style_mix.style_mixing_grid(cols, rows, cuts, "component", synth)
    imageio.save_png(os.path.join(output_dir, f"component-mixing{suffix}.png"), canvas)
