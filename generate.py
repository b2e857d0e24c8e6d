"""Sample images from a trained generator (as the authors' `generate.py`), optionally visualize it and export
it as a SavedModel.

Examples:
    python generate.py --model gdrive:ffhq-snapshot.pkl --output-dir images --images-num 32
    python generate.py --model results/exp-000/network-final.pkl --seeds 0-31,40 --truncation-psi 0.7
    python generate.py --model network.pkl --latents z.npy --truncation-psi 1.0 --output-dir repro
    python generate.py --model network.pkl --seeds 0-9 --vis-maps --vis-interpolations --output-dir visuals
    python generate.py --model network.pkl --export exported_generator
    python generate.py --model network.pkl --images-num 64 --precision fp16   # top 4 resolutions in float16
    python generate.py --model network.pkl --project photos/ --steps 500 --vis-latent-swap --output-dir projected
    python generate.py --model network.pkl --latents projected/photo/ws.npy --truncation-psi 1.0

Writes `<output-dir>/sample_%06d.png` (numbered by seed, or by row of `--latents`) and `index.html`.
Sample i of `--seeds`/`--images-num` uses `z = np.random.RandomState(seed).randn(K, d)`. `--latents` takes z
`[N, K, d]` or ws `[N, K, S, d]` (synthesized without the mapping network; truncation still applies).
`--project` projects real images into the latents instead (see `training.projection`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from typing import Iterator, Optional

from dnnlib.util import OneLineArgumentParser, UserError, print_user_error
from training.cli.project import add_arguments as add_projection_arguments
from training.vis.palette import DEFAULT_BLEND_ALPHA

VIS_FLAGS = {"vis_images": "images", "vis_latents": "latents", "vis_maps": "maps", "vis_layer_maps": "layer_maps",
             "vis_interpolations": "interpolations", "vis_noise_var": "noise_var", "vis_style_mix": "style_mix"}


MAX_IMAGES = 100_000  # per call (the latents of all samples are drawn up front)
MAX_SEED = 2 ** 32 - 1  # the largest seed of np.random.RandomState


def parse_seeds(text: str) -> list[int]:
    """`"0-31,40"` -> [0, 1, ..., 31, 40]. Raises UserError on malformed input, a seed above `MAX_SEED` or more than
    `MAX_IMAGES` seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        ends = (m.group(1), m.group(2) or m.group(1)) if m else ()
        if any(len(e) > len(str(MAX_SEED)) or int(e) > MAX_SEED for e in ends):
            raise UserError(f"--seeds: {part[:40]!r} is out of range; seeds are 0..{MAX_SEED} (NumPy's RandomState)")
        if not m or int(ends[1]) < int(ends[0]):
            raise UserError(f"--seeds: cannot parse {part!r} in {text!r}; use e.g. 0-31,40 (ranges inclusive)")
        lo, hi = int(ends[0]), int(ends[1])
        if len(seeds) + hi - lo + 1 > MAX_IMAGES:
            raise UserError(f"--seeds {text}: more than {MAX_IMAGES:,} images; generate them in several calls")
        seeds.extend(range(lo, hi + 1))
    return seeds


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = OneLineArgumentParser(prog="generate.py", description="Generate images from a GANformer generator.",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="our snapshot, an authors' .pkl, a URL or gdrive:<name>.pkl")
    p.add_argument("--output-dir", default="images", help="where sample_%%06d.png (and visualizations) go")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images-num", type=int, help="number of images (seeds 0..N-1); default 32")
    src.add_argument("--seeds", help="seeds, e.g. 0-31,40")
    src.add_argument("--latents", help=".npy file with z [N, K, d] or ws [N, K, S, d] (exact reproduction)")
    p.add_argument("--truncation-psi", type=float, default=0.7, help="truncation psi (1: none)")
    p.add_argument("--batch-size", type=int, default=4, help="images per generator call (1 for huge models)")
    p.add_argument("--ratio", type=float, default=None,
                   help="content height/width to crop the images to (default: the ratio the model was trained with)")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const",
                   help="const: the model's stored noise (deterministic); random: new noise per batch")
    p.add_argument("--class", dest="class_idx", type=int, help="class index for conditional models")
    p.add_argument("--gpus", help="comma list of GPU ids to use (sets CUDA_VISIBLE_DEVICES); -1 for CPU only")
    p.add_argument("--compile", choices=("eager", "graph", "xla"), default="graph",
                   help="run the generator eagerly, as a tf.function, or XLA-compiled")
    p.add_argument("--export", metavar="DIR", help="write the generator as a TensorFlow SavedModel to DIR")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="compute dtype of the top --num-fp16-res resolutions (samples and --export)")
    p.add_argument("--num-fp16-res", type=int, default=4, help="number of top resolutions in reduced precision")
    p.add_argument("--conv-clamp", type=_clamp_value, default=256.0,
                   help="clamp of the reduced-precision activations (none: no clamp)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    v = p.add_argument_group("visualizations (written to --output-dir)")
    for flag in VIS_FLAGS:
        v.add_argument("--" + flag.replace("_", "-"), action="store_true")
    v.add_argument("--vis-grid", action="store_true", help="grids instead of one file per sample")
    v.add_argument("--vis-rich-num", type=int, default=5, help="samples with layer maps / interpolations")
    v.add_argument("--vis-section-size", type=int, default=100, help="samples generated per section")
    v.add_argument("--blending-alpha", type=float, default=DEFAULT_BLEND_ALPHA,
                   help="weight of the image under blended maps")
    v.add_argument("--interpolation-density", type=int, default=8, help="frames per interpolation")
    v.add_argument("--vis-latent-swap", action="store_true",
                   help="resample each local latent and take it from the next image; show the region that changed")
    add_projection_arguments(p)
    return p


def _clamp_value(text: str) -> Optional[float]:
    """`--conv-clamp`: a number or `none`."""
    return None if text.strip().lower() == "none" else float(text)


_clamp_value.__name__ = "float"  # argparse names the type in "invalid float value" messages


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silences file descriptor 2 (TensorFlow's start-up log lines, printed before its logging is configured).

    Python exceptions still propagate. Set `GANFORMER_TF_LOGS=1` to see TensorFlow's messages.
    """
    if os.environ.get("GANFORMER_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _check_args(args: argparse.Namespace):
    """Validates every flag before any work starts (one-line UserError); returns `(--latents z or ws, or None,
    the --project targets)`."""
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.images_num is not None and not 1 <= args.images_num <= MAX_IMAGES:
        raise UserError(f"--images-num {args.images_num}: must be in 1..{MAX_IMAGES:,}")
    if args.seeds is not None:
        parse_seeds(args.seeds)
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise UserError(f"--output-dir {args.output_dir}: exists and is not a folder")
    if args.ratio is not None and not 0 < args.ratio <= 1:  # NaN fails too
        raise UserError(f"--ratio {args.ratio}: must be in (0, 1] (content height / width, as in training)")
    if args.gpus is not None and not re.fullmatch(r"\s*(-?\d+\s*(,\s*-?\d+\s*)*)?", args.gpus):
        raise UserError(f"--gpus {args.gpus}: expected a comma list of GPU ids, e.g. --gpus 0,1 (-1 or '' for the "
                        "CPU only)")
    from training.precision.policy import check_precision  # imports TensorFlow: call with its start-up lines silenced
    from training.vis.visualize import VisOptions

    check_precision(args.precision, args.num_fp16_res, args.conv_clamp)

    VisOptions.validate(_vis_options(args, VisOptions, ratio=1.0 if args.ratio is None else args.ratio))
    from training.cli.project import check_args as check_projection

    targets = check_projection(args, _vis_kinds(args))
    if not args.latents:
        return None, targets
    from training.vis.latents_file import read_latents

    loaded = read_latents(args.latents, MAX_IMAGES, allow_ws=True)
    if loaded.ndim == 4 and (_vis_kinds(args) or args.vis_latent_swap):
        raise UserError(f"--latents {args.latents}: holds ws [N, K, S, d]; the --vis-* outputs need z [N, K, d]")
    return loaded, targets


def _vis_options(args: argparse.Namespace, cls, ratio: float):
    return cls(args.vis_rich_num, args.vis_section_size, args.blending_alpha, args.interpolation_density, ratio,
               args.batch_size, args.truncation_psi, args.vis_grid, args.noise_mode, args.class_idx, None, 100,
               not args.no_progress, args.compile)


def _latents(args: argparse.Namespace, latent_shape: tuple[int, int], loaded, num_ws: int):
    """Returns `(z [N, K, d] or ws [N, K, S, d], ids)` from the --latents `loaded` (checked by `_check_args`),
    --seeds or --images-num."""
    from training.vis.visualize import seed_latents

    if loaded is not None:
        K, d = latent_shape
        expected = (K, num_ws, d) if loaded.ndim == 4 else (K, d)
        if tuple(loaded.shape[1:]) != expected:
            shape = f"[N, {K}, {num_ws}, {d}]" if loaded.ndim == 4 else f"[N, {K}, {d}]"
            raise UserError(f"--latents {args.latents}: shape {list(loaded.shape)} does not fit the model; expected "
                            f"{shape}")
        return loaded, list(range(len(loaded)))
    ids = parse_seeds(args.seeds) if args.seeds else list(range(32 if args.images_num is None else args.images_num))
    return seed_latents(ids, latent_shape), ids


def write_samples(Gs, args: argparse.Namespace, z, ids: list[int]) -> list[int]:
    """Generates and writes `sample_%06d.png` batch by batch with a progress bar.

    Returns:
        The ids of the images that held NaN or infinite values (written black).

    Raises:
        UserError: The disk is full: names the file, and estimates the space the remaining images need from the
            sizes of those written (the files written so far stay).
    """
    import numpy as np
    from tqdm import tqdm

    from dnnlib.disk import disk_full_as_user_error
    from training.vis.imageio import save_png
    from training.vis.sampler import Sampler, make_labels

    sampler = Sampler(Gs, args.batch_size, args.noise_mode, args.ratio, args.compile)
    labels = make_labels(Gs.label_dim, len(ids), args.class_idx, ids)
    non_finite: list[int] = []
    done, size = 0, 0
    with tqdm(total=len(ids), desc="generating", unit="img", disable=args.no_progress) as bar:
        for start in range(0, len(ids), args.batch_size):
            sl = slice(start, start + args.batch_size)
            if z.ndim == 4:  # ws: no mapping network; truncation as G applies it
                res = sampler.synthesize(np.asarray(Gs.truncate(z[sl], args.truncation_psi)), seed=ids[start])
            else:
                res = sampler.generate(z[sl], labels[sl], args.truncation_psi, seed=ids[start])
            non_finite += [i for i, bad in zip(ids[sl], res["nonfinite"]) if bad]
            for img, i in zip(res["images"], ids[sl]):
                path = os.path.join(args.output_dir, f"sample_{i:06d}.png")
                per_image = size / done if done else img.nbytes  # the PNGs written so far, else the raw pixels
                with disk_full_as_user_error(os.path.basename(path), args.output_dir,
                                             int(per_image * (len(ids) - done)),
                                             f"{done} of {len(ids)} images were written"):
                    save_png(path, img)
                done, size = done + 1, size + os.path.getsize(path)
            bar.update(len(res["images"]))
    return non_finite


def run(args: argparse.Namespace) -> int:
    """Everything after argument parsing (may raise UserError); returns the exit status: 0, or 1 when images held
    NaN or infinite values."""
    if args.gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpus
    with quiet_native_stderr():
        loaded, targets = _check_args(args)
    from training.formats.pretrained import resolve_network_path

    resolve_network_path(args.model)  # missing files / unknown names fail here, before TF starts
    with quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_logical_devices()
    from training.formats.networks import load_networks
    from training.vis.visualize import VisOptions, class_idx_bad, run_vis

    nets = load_networks(args.model)  # by name: a catalog model's record comes with it
    Gs = nets.Gs
    from training.precision.policy import Precision, set_precision

    precision = Precision(args.precision, args.num_fp16_res, args.conv_clamp)
    set_precision(Gs, precision)
    if args.ratio is None:
        args.ratio = nets.record.ratio or 1.0  # unknown (an authors' pickle by path): the whole image
    if class_idx_bad(Gs, args.class_idx):
        raise UserError(f"--class {args.class_idx}: the model has {Gs.label_dim} classes" if Gs.label_dim
                        else "--class: the model is unconditional; omit --class")
    K, d = Gs.latent_shape
    print(f"Loaded {args.model}: {Gs.resolution}x{Gs.resolution}, z [{K}, {d}], "
          f"{Gs.num_attention_layers} attention layers, {Gs.label_dim} classes; "
          f"{precision.describe(Gs.cfg.res_log2)}")
    if targets:
        from training.cli.project import run_projection

        return run_projection(args, Gs, targets, args.model)
    if args.export:
        _export(Gs, args.export, precision.describe(Gs.cfg.res_log2))
        if args.images_num is None and args.seeds is None and args.latents is None and not _vis_kinds(args):
            return 0
    z, ids = _latents(args, (K, d), loaded, Gs.num_ws)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output-dir {args.output_dir}: cannot create the folder ({exc.strerror})") from None
    non_finite = write_samples(Gs, args, z, ids)
    count = len(ids)
    kinds = _vis_kinds(args)
    from dnnlib.disk import disk_full_as_user_error

    with disk_full_as_user_error("the visualizations", args.output_dir, None, f"the {count} samples were written"):
        index = run_vis(Gs, args.output_dir, kinds, z, ids, _vis_options(args, VisOptions, args.ratio))
        if args.vis_latent_swap:
            index = _latent_swaps(Gs, args, z, ids)
    first = f"sample_{ids[0]:06d}.png" if ids else "nothing"
    print(f"Wrote {count} image{'' if count == 1 else 's'} to {os.path.abspath(args.output_dir)} ({first} ...)"
          + (f" and visualizations: {', '.join(sorted(kinds))}" if kinds else ""))
    print(f"Overview: {os.path.abspath(index)}")
    if non_finite:
        shown = ", ".join(f"sample_{i:06d}.png" for i in non_finite[:5]) + (" ..." if len(non_finite) > 5 else "")
        print(f"generate.py: warning: {len(non_finite)} of {count} images held NaN or infinite values and are black "
              f"({shown}); the generator overflows (try a --truncation-psi nearer 1, or another snapshot)",
              file=sys.stderr)
        return 1
    return 0


def _export(Gs, folder: str, precision: str = "fp32") -> None:
    """--export: the SavedModel (a full disk is one line; the estimate is the size of the weights), computing in
    the precision Gs is set to (`precision` describes it in the export's record)."""
    from dnnlib.disk import disk_full_as_user_error
    from training.formats.export import export_saved_model

    weights = sum(var.shape.num_elements() * var.dtype.size for var in Gs.variables)
    with disk_full_as_user_error("the SavedModel", folder, weights):
        export_saved_model(Gs, folder, precision=precision)
    print(f"Exported a SavedModel to {folder}")


def _latent_swaps(Gs, args: argparse.Namespace, z, ids: list[int]) -> str:
    """--vis-latent-swap for the samples: `latent-swap/<id>.png`; returns the rewritten index."""
    from training.vis.html_index import write_index
    from training.vis.latent_edit import write_sample_edits
    from training.vis.sampler import Sampler, make_labels

    sampler = Sampler(Gs, args.batch_size, args.noise_mode, args.ratio, args.compile)
    write_sample_edits(sampler, args.output_dir, z, make_labels(Gs.label_dim, len(ids), args.class_idx, ids), ids,
                       args.truncation_psi)
    return write_index(args.output_dir)


def _vis_kinds(args: argparse.Namespace) -> set[str]:
    return {kind for flag, kind in VIS_FLAGS.items() if getattr(args, flag)}


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns the exit status: 2 for user errors (bad flags and files, a full disk, a read-only
    folder) printed as one line, 1 when images held NaN or infinite values (a warning line), 130 when interrupted,
    else 0."""
    from dnnlib.disk import path_errors_as_user_error

    try:
        with path_errors_as_user_error("pass a writable --output-dir"):
            return run(build_parser().parse_args(argv))
    except UserError as exc:
        return print_user_error(exc, "generate.py")
    except KeyboardInterrupt:
        print("generate.py: error: interrupted (the samples written so far are complete files)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
