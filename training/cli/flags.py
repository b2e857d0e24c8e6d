"""Command-line flags of run_network.py (the original's names, spec §1.1), grouped as in the original.

Model flags use `argparse.SUPPRESS` defaults, so the parsed namespace holds exactly the flags the user passed:
a preset is applied first and only those flags are put on top of it (never by sniffing sys.argv).
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

from dnnlib.util import OneLineArgumentParser, UserError
from training.augment.modes import AUG_MODES
from training.config import (ARCHITECTURES, FIELD_RANGES, INTEGRATIONS, MERGE_TYPES, NORMS, POS_INITS, POS_TYPES,
                             Range)


EXAMPLES = """\
examples:
  # quick GANformer run on the built-in dataset (python prepare_data.py --shapes --resolution 32 first)
  python run_network.py --train --ganformer-default --dataset shapes --resolution 32 --total-kimg 20
  # paper setup on CLEVR, evaluate with 10k images at snapshots
  python run_network.py --train --ganformer-default --dataset clevr --eval-images-num 10000
  # baselines on the same skeleton
  python run_network.py --train --baseline StyleGAN2 --dataset ffhq
  # fine-tune a released checkpoint, then evaluate it
  python run_network.py --train --ganformer-default --dataset clevr --pretrained-pkl gdrive:clevr-snapshot.pkl
  python run_network.py --eval --dataset clevr --pretrained-pkl gdrive:clevr-snapshot.pkl --metrics fid,kid
  # attention maps and other visualizations of the latest snapshot of an experiment
  python run_network.py --vis --dataset clevr --expname clevr-exp --vis-maps --vis-layer-maps

presets (--ganformer-default, per dataset; baselines with --baseline):
  GANformer: transformer, k-means keys, layer norm, multiplicative integration, positions, resnet G,
             k=16 latents of 32 dims (clevr: k=8 of 16, no global style, no mapping attention); gamma ffhq 10,
             cityscapes 20, clevr 40, bedrooms 100; mirror augmentation for ffhq and cityscapes
  GAN:       no style modulation, 4x4 grid from a dense layer of the latent
  StyleGAN2: the original StyleGAN2 (skip G, resnet D)
  kGAN:      8 images generated in parallel and merged at 32x32 by a per-pixel softmax
  SAGAN:     GAN + image self-attention at 32x32
"""


def str2bool(v: Any) -> bool:
    """Parses the original's BOOL flags: `--flag` (True) or `--flag true/false/yes/no/1/0`."""
    if isinstance(v, bool):
        return v
    s = str(v).lower()
    if s in ("yes", "true", "t", "y", "1"):
        return True
    if s in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def _none_or(kind: type):
    def parse(v: str) -> Optional[Any]:
        return None if str(v).lower() == "none" else kind(v)
    parse.kind = kind  # type: ignore[attr-defined]  # what it parses, for `value_kind`
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value" messages
    return parse


def gamma_value(text: str) -> float | str:
    """`--gamma`: a number, or `auto` (resolved from the resolution and batch size once the dataset is known)."""
    return "auto" if str(text).strip().lower() == "auto" else float(text)


gamma_value.kind = float  # type: ignore[attr-defined]  # what it parses, for `value_kind`
gamma_value.__name__ = "float"  # argparse names the type in "invalid float value" messages


def value_kind(action: argparse.Action) -> Any:
    """The type a flag's value is parsed as (`int` for `--mapping-dim`, which also takes `none`)."""
    return getattr(action.type, "kind", action.type)


def _flag(group, name: str, kind: Any = str, **kw) -> None:
    if kind is bool:
        group.add_argument(name, type=str2bool, nargs="?", const=True, **kw)
    else:
        kw.setdefault("choices", MODEL_CHOICES.get(name[2:]))
        group.add_argument(name, type=kind, **kw)


def build_parser() -> argparse.ArgumentParser:
    """The run_network.py parser."""
    p = OneLineArgumentParser(prog="run_network.py",
                              description="Train, evaluate and visualize GANformer and baseline GANs (TensorFlow 2).",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    g = p.add_argument_group("framework")
    _flag(g, "--expname", default="exp", help="experiment name; runs go to <result-dir>/<expname>-NNN")
    _flag(g, "--train", bool, default=False, help="train")
    _flag(g, "--eval", bool, default=False, help="evaluate metrics of the latest snapshot or --pretrained-pkl")
    _flag(g, "--vis", bool, default=False, help="write visualizations (see --vis-*)")
    _flag(g, "--gpus", default=None, help="comma list of GPU ids, e.g. 0,1,2,3 (default: all visible; '' = CPU)")
    _flag(g, "--ganformer-default", bool, default=False, help="the dataset's GANformer preset")
    _flag(g, "--baseline", default=None, choices=["GAN", "StyleGAN2", "kGAN", "SAGAN"], help="baseline preset")
    _flag(g, "--pretrained-pkl", _none_or(str), default=None,
          help="our snapshot, an authors' pickle or a catalog name (gdrive:ffhq-snapshot.pkl, ...)")
    _flag(g, "--restart", bool, default=False, help="start a new run instead of resuming the latest")
    _flag(g, "--reload", bool, default=False, help="on resume, reuse the run's saved options instead of these")
    _flag(g, "--last-snapshots", int, default=10, help="keep the newest N network snapshots (<=0: all)")
    _flag(g, "--dry-run", bool, default=False, help="print the resolved options and exit")
    _flag(g, "--seed", int, default=1000, help="seed of weights, latents and data order")
    _flag(g, "--deterministic", bool, default=False, help="deterministic ops (bit-exact resume on CPU)")
    _flag(g, "--xla", bool, default=True, help="compile training steps with XLA (--xla false: plain graphs)")
    _flag(g, "--xla-cache", default=None,
          help="folder of TensorFlow's persistent XLA compilation cache: a resumed or repeated run of the same "
               "configuration loads its compiled steps instead of compiling again (default <cache-dir>/xla-<TF "
               "version>; 'none' = off)")
    _flag(g, "--eager", bool, default=False, help="run eagerly (debugging)")
    _flag(g, "--cpu-replicas", int, default=None, help="split the CPU into N replicas (testing tf.distribute)")
    _flag(g, "--cluster-timeout", float, default=300.0,
          help="multi-worker training (TF_CONFIG): seconds to wait for the other workers at start-up before stopping "
               "with the ones that did not answer")
    _flag(g, "--cache-dir", default=None, help="download/statistics cache (default ~/.cache/ganformer)")

    d = p.add_argument_group("dataset")
    _flag(d, "--data-dir", default="datasets", help="folder holding prepared datasets")
    _flag(d, "--dataset", default=None, help="dataset name (sub-folder of --data-dir)")
    _flag(d, "--ratio", float, default=None, help="content height/width (default: the dataset's)")
    _flag(d, "--resolution", int, default=None, help="resolution to train at (default: the dataset's)")
    _flag(d, "--num-threads", int, default=4, help="files read in parallel (part of the data order: keep it on resume)")
    _flag(d, "--mirror-augment", bool, default=argparse.SUPPRESS, help="random horizontal flips of reals")
    _flag(d, "--train-images-num", int, default=None, help="use only the first N images")

    t = p.add_argument_group("training")
    _flag(t, "--batch-size", int, default=32, help="global batch per optimizer step")
    _flag(t, "--batch-gpu", int, default=4, help="per-replica micro-batch (gradient accumulation)")
    _flag(t, "--total-kimg", float, default=25000, help="training length in thousands of real images")
    _flag(t, "--gamma", gamma_value, default=argparse.SUPPRESS,
          help="R1 weight, or auto: 0.0002*resolution^2/batch-size (StyleGAN2-ADA); preset per dataset, else 10")
    _flag(t, "--clip", float, default=None, help="clip gradients to this global norm")
    _flag(t, "--g-lr", float, default=0.002)
    _flag(t, "--d-lr", float, default=0.002)
    _flag(t, "--g-loss", default="logistic_ns", choices=["logistic", "logistic_ns", "hinge", "wgan"])
    _flag(t, "--d-loss", default="logistic", choices=["wgan", "logistic", "hinge"])
    _flag(t, "--d-reg", default="r1", choices=["non", "gp", "r1", "r2"])
    _flag(t, "--pl-weight", float, default=0.0, help="path-length regularization weight (0: off)")
    _flag(t, "--ema-kimg", float, default=10.0, help="half-life of the G moving average (kimg)")
    _flag(t, "--ema-rampup", float, default=0.05,
          help="EMA half-life ramp-up: min(ema-kimg, ratio x images seen); 0 turns it off (the original)")
    _flag(t, "--kimg-per-tick", float, default=8.0, help="kimg between status lines")
    _flag(t, "--max-ticks", int, default=None, help="stop after N ticks of this process")
    for name in ("--style-mixing", "--component-mixing", "--component-dropout", "--attention-dropout"):
        _flag(t, name, float, default=argparse.SUPPRESS)

    mp = p.add_argument_group("mixed precision (weights and optimizer state stay float32)")
    _flag(mp, "--precision", default="fp32", choices=PRECISIONS,
          help="compute dtype of the top --num-fp16-res resolutions of G and D: fp32 (default), fp16 (with dynamic "
               "loss scaling) or bf16")
    _flag(mp, "--num-fp16-res", int, default=4, help="number of top resolutions in reduced precision (never 4x4)")
    _flag(mp, "--conv-clamp", _none_or(float), default=256.0,
          help="clamp the reduced-precision layers' activations to +-this (none: no clamp)")

    a = p.add_argument_group("augmentation (limited data; D sees augmented reals and fakes, G's outputs are not "
                             "augmented)")
    _flag(a, "--aug", default="noaug", choices=list(AUG_MODES),
          help="noaug (default); ada: the ADA pipeline with adaptive p; fixed: with a constant --p; diffaugment")
    _flag(a, "--augpipe", default=None, help="ADA pipeline for --aug ada/fixed: bgc (default), bg, bgcf, bgcfn, "
          "bgcfnc, blit, geom, color, filter, noise, cutout")
    _flag(a, "--p", float, default=None, help="augmentation probability: required with --aug fixed, the initial p "
          "with --aug ada (default 0)")
    _flag(a, "--target", float, default=None, help="--aug ada: target of r_t = E[sign(D(reals))] (default 0.6)")
    _flag(a, "--ada-kimg", float, default=None, help="--aug ada: kimg for p to move from 0 to 1 (default 500)")
    _flag(a, "--ada-interval", int, default=None, help="--aug ada: minibatches between p updates (default 4)")
    _flag(a, "--diffaugment", default=None,
          help="--aug diffaugment: comma list of color, translation, cutout (default all three)")

    lg = p.add_argument_group("logging and evaluation")
    _flag(lg, "--result-dir", default="results")
    _flag(lg, "--metrics", default="fid", help="comma list (fid, fid10k, fid50k, is, kid, pr, ppl) or none")
    _flag(lg, "--eval-images-num", int, default=50000, help="images per metric")
    _flag(lg, "--summarize", bool, default=True, help="TensorBoard summaries")
    _flag(lg, "--keep-samples", bool, default=True,
          help="keep every sample/map grid in visuals/ (false: only the newest of each)")
    _flag(lg, "--attention-stats", bool, default=True,
          help="log attention diagnostics of G and Gs (entropy, logit spread, latents used, locality) on the ticks "
               "that draw maps; costs k + 1 synthesis passes of 8 images per network")
    _flag(lg, "--img-snapshot-ticks", int, default=3)
    _flag(lg, "--network-snapshot-ticks", int, default=3)
    _flag(lg, "--maps-snapshot-ticks", int, default=3)
    _flag(lg, "--truncation-psi", float, default=argparse.SUPPRESS, help="psi for samples (0.75)")
    _flag(lg, "--inception", default=None, help="Inception weights file for FID/IS/KID")
    _flag(lg, "--vgg16", default=None, help="VGG16 weights file for PR/PPL")

    v = p.add_argument_group("visualization (--vis)")
    for name in ("images", "latents", "maps", "layer-maps", "interpolations", "noise-var", "style-mix", "grid"):
        _flag(v, f"--vis-{name}", bool, default=False)
    _flag(v, "--vis-num", int, default=100)
    _flag(v, "--vis-rich-num", int, default=5)
    _flag(v, "--vis-section-size", int, default=100)
    _flag(v, "--blending-alpha", float, default=0.3)
    _flag(v, "--interpolation-density", int, default=8)

    _model_flags(p.add_argument_group("model (only the flags you pass override the preset)"))
    return p


MODEL_FLAGS: dict[str, Any] = {
    "g-arch": str, "d-arch": str, "tanh": bool, "mapping-layersnum": int, "mapping-lrmul": float,
    "mapping-dim": _none_or(int), "mapping-resnet": bool, "mapping-shared-dim": _none_or(int), "style": bool,
    "latent-stem": bool, "local-noise": bool, "transformer": bool, "latent-size": int, "components-num": int,
    "num-heads": int, "normalize": _none_or(str), "integration": str, "g-start-res": int, "g-end-res": int,
    "d-start-res": int, "d-end-res": int, "ltnt-gate": bool, "img-gate": bool, "kmeans": bool,
    "kmeans-iters": int, "mapping-ltnt2ltnt": bool, "g-ltnt2ltnt": bool, "g-img2img": int, "g-img2ltnt": bool,
    "d-transformer": bool, "d-ltnt2ltnt": bool, "d-img2img": int, "use-pos": bool, "pos-dim": _none_or(int),
    "pos-type": str, "pos-init": str, "pos-directions-num": int, "kgan": bool, "merge-layer": int,
    "merge-type": str, "merge-same": bool, "channel-max": int, "channel-base": int, "mbstd-group-size": int,
}
# The allowed values of the model flags that name a config field: the config's own choices and ranges.
MODEL_CHOICES: dict[str, tuple] = {
    "g-arch": ARCHITECTURES, "d-arch": ARCHITECTURES, "normalize": NORMS, "integration": INTEGRATIONS,
    "pos-type": POS_TYPES, "pos-init": POS_INITS, "merge-type": MERGE_TYPES,
}
_MODEL_FIELDS = {  # flag -> the config field it sets (`training.presets.configs_from_options`)
    "mapping-layersnum": "mapping_layers", "mapping-lrmul": "mapping_lrmul", "mapping-dim": "mapping_dim",
    "mapping-shared-dim": "mapping_shared_dim", "latent-size": "latent_dim", "components-num": "components_num",
    "num-heads": "num_heads", "g-start-res": "start_res", "g-end-res": "end_res", "d-start-res": "start_res",
    "d-end-res": "end_res", "kmeans-iters": "kmeans_iters", "g-img2img": "img2img", "d-img2img": "img2img",
    "pos-dim": "pos_dim", "pos-directions-num": "pos_directions_num", "merge-layer": "merge_layer",
    "channel-max": "channel_max", "channel-base": "channel_base", "truncation-psi": "truncation_psi",
    "mbstd-group-size": "mbstd_group_size",
}
MAX_IMAGES = 100_000  # samples of one --vis call (as generate.py)
PRECISIONS = ("fp32", "fp16", "bf16")  # training.precision.policy.PRECISIONS (that module imports TensorFlow)
# Ranges of the numeric flags that are not training options (those are `training.options.OPTION_RANGES`), by dest.
FLAG_RANGES: dict[str, Range] = {
    **{flag.replace("-", "_"): Range(*FIELD_RANGES[name]) for flag, name in _MODEL_FIELDS.items()},
    "style_mixing": Range(0.0, 1.0), "component_mixing": Range(0.0, 1.0), "component_dropout": Range(0.0, 1.0),
    "attention_dropout": Range(0.0, 1.0, hi_open=True), "cpu_replicas": Range(1, 256),
    "vis_num": Range(1, MAX_IMAGES), "vis_rich_num": Range(0, MAX_IMAGES), "vis_section_size": Range(1, MAX_IMAGES),
    "blending_alpha": Range(0.0, 1.0), "interpolation_density": Range(2, 10_000),
    "cluster_timeout": Range(0.0, 7 * 24 * 3600.0, lo_open=True),
}
# The original's flags that have no meaning here: accepted by the parser, refused with the reason.
REJECTED_FLAGS: dict[str, str] = {
    "iterative": "non-parametric k-means is not supported (it never worked in the original)",
    "fused-modconv": "the modulated convolution always runs in its non-fused form here (the same maths; the grouped "
                     "form does not run on CPU); drop the flag",
    "recompile": "networks are always rebuilt from their saved config (there is no pickled code to reuse); drop the "
                 "flag",
}


def _model_flags(group) -> None:
    for name, kind in MODEL_FLAGS.items():
        _flag(group, f"--{name}", kind, default=argparse.SUPPRESS)
    for name in REJECTED_FLAGS:
        _flag(group, f"--{name}", bool, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def reject_unsupported(args: argparse.Namespace) -> None:
    """Raises `UserError` (one line with the reason) when a flag of `REJECTED_FLAGS` was passed."""
    for name, reason in REJECTED_FLAGS.items():
        if hasattr(args, name.replace("-", "_")):
            raise UserError(f"--{name}: {reason}")


def check_flags(args: argparse.Namespace) -> None:
    """Validates every flag on its own and the combinations that need no dataset, before any work starts.

    Every number must be finite and in its range (`training.options.OPTION_RANGES` for the training options,
    `FLAG_RANGES` for the others), `--gpus` must parse, `--batch-size` must split into `--batch-gpu` micro-batches and
    `--metrics` must name registered metrics when they will run. The architecture (e.g. `--num-heads` dividing each
    attention width) is checked when the configs are built (`training.cli.launch.check_architecture`). Imports
    TensorFlow (through the options and the metric registry): call it after the device environment is set.

    Raises:
        UserError: One line naming the flag, the value and what it must be.
    """
    from training.options import MAX_SEED, OPTION_RANGES, check_batch_split, check_option
    for dest, value in vars(args).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # strings, switches and unset optional numbers
        if dest in OPTION_RANGES:
            check_option(dest, value)
        else:
            FLAG_RANGES.get(dest, Range()).check("--" + dest.replace("_", "-"), value, integer=isinstance(value, int))
    check_option("gpus", parse_gpus(args.gpus))
    from dnnlib.paths import check_folder_flag, check_name
    check_name("--expname", args.expname)
    check_folder_flag("--result-dir", args.result_dir)
    check_folder_flag("--data-dir", args.data_dir)
    if args.train:  # training splits each batch; --eval and --vis only use --batch-gpu
        check_batch_split(args.batch_size, args.batch_gpu, args.cpu_replicas or 1)
        group = getattr(args, "mbstd_group_size", None)
        if group and args.batch_gpu % min(group, args.batch_gpu):
            raise UserError(f"--mbstd-group-size {group}: must divide --batch-gpu {args.batch_gpu} (D groups each "
                            "micro-batch); pass a divisor of it, or 0 to turn the minibatch stddev off")
    if args.vis and args.seed + args.vis_num - 1 > MAX_SEED:
        raise UserError(f"--seed {args.seed} --vis-num {args.vis_num}: the samples use seeds --seed .. --seed + "
                        f"--vis-num - 1, which must be <= {MAX_SEED}; pass a smaller --seed")
    if args.train or args.eval:
        check_metrics(parse_metrics(args.metrics))


def parse_metrics(text: str) -> list[str]:
    """`--metrics` as names: `fid,kid` -> ["fid", "kid"]; `none` -> []."""
    return [] if text.strip().lower() == "none" else [m.strip() for m in text.split(",") if m.strip()]


def check_metrics(names: list[str]) -> None:
    """Raises `UserError` naming `--metrics` and the known names when a name is not a registered metric."""
    if names:
        from metrics.registry import get_metric  # imports TensorFlow
        for name in names:
            get_metric(name)


def parse_gpus(text: Optional[str]) -> Optional[list[int]]:
    """`--gpus` as GPU ids: None (flag not given: all visible), [] for '' (CPU only), else e.g. [0, 1]."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--gpus {text}: expected a comma list of GPU ids, e.g. --gpus 0,1 ('' for the CPU)") from None
