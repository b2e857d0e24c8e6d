"""The command line of run_network.py (the original's flag names), generated from the options' declarations.

Each flag is a dataclass field declared once (`dnnlib.options.option`): the training options
(`training.options.TrainingOptions`), the model options (`training.presets.ModelOptions`) and the flags of one
invocation that are neither (`RunFlags`, below). `parse_command_line` returns a typed `CommandLine` that knows which
flags the user passed: a preset is applied first and only those model flags are put on top of it.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from dnnlib.options import (INVOCATION, UNSET, Range, add_flags, check_options, check_value, fields_of, from_flags,
                            option, passed_values, spec_of, str2bool)
from dnnlib.util import OneLineArgumentParser, UserError
from training.options import MAX_SEED, TrainingOptions, check_batch_split, check_resolution
from training.presets import ModelOptions
from training.vis.palette import DEFAULT_BLEND_ALPHA

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


# The --help sections, in order: key (as the fields' `group`) -> title.
GROUPS = {
    "framework": "framework", "dataset": "dataset", "training": "training",
    "precision": "mixed precision (weights and optimizer state stay float32)",
    "augmentation": "augmentation (limited data; D sees augmented reals and fakes, G's outputs are not augmented)",
    "logging": "logging and evaluation", "vis": "visualization (--vis)",
    "model": "model (only the flags you pass override the preset)",
}
MAX_IMAGES = 100_000  # samples of one --vis call (as generate.py)


def _run(default: Any, group: str = "framework", **kw: Any) -> Any:
    return option(default, group=group, resume=INVOCATION, **kw)


def _vis_count(default: int, lo: int) -> Any:
    return _run(default, "vis", range=Range(lo, MAX_IMAGES))


@dataclass
class RunFlags:
    """The flags of one invocation that are neither training nor model options: modes, folders, presets."""

    expname: str = _run("exp", help="experiment name; runs go to <result-dir>/<expname>-NNN")
    train: bool = _run(False, help="train")
    eval: bool = _run(False, help="evaluate metrics of the latest snapshot or --pretrained-pkl")
    vis: bool = _run(False, help="write visualizations (see --vis-*)")
    ganformer_default: bool = _run(False, help="the dataset's GANformer preset")
    baseline: Optional[str] = _run(None, choices=("GAN", "StyleGAN2", "kGAN", "SAGAN"), help="baseline preset")
    restart: bool = _run(False, help="start a new run instead of resuming the latest")
    reload: bool = _run(False, help="on resume, reuse the run's saved options instead of these")
    dry_run: bool = _run(False, help="print the resolved options and exit")
    xla_cache: Optional[str] = _run(None, help="folder of TensorFlow's persistent XLA compilation cache: a resumed "
                                    "or repeated run of the same configuration loads its compiled steps instead of "
                                    "compiling again (default <cache-dir>/xla-<TF version>; 'none' = off)")
    cpu_replicas: Optional[int] = _run(None, range=Range(1, 256),
                                       help="split the CPU into N replicas (testing tf.distribute)")
    cluster_timeout: float = _run(300.0, range=Range(0.0, 7 * 24 * 3600.0, lo_open=True),
                                  help="multi-worker training (TF_CONFIG): seconds to wait for the other workers at "
                                       "start-up before stopping with the ones that did not answer")
    data_dir: str = _run("datasets", "dataset", help="folder holding prepared datasets")
    result_dir: str = _run("results", "logging")
    inception: Optional[str] = _run(None, "logging", help="Inception weights file for FID/IS/KID")
    vgg16: Optional[str] = _run(None, "logging", help="VGG16 weights file for PR/PPL")
    vis_images: bool = _run(False, "vis")
    vis_latents: bool = _run(False, "vis")
    vis_maps: bool = _run(False, "vis")
    vis_layer_maps: bool = _run(False, "vis")
    vis_interpolations: bool = _run(False, "vis")
    vis_noise_var: bool = _run(False, "vis")
    vis_style_mix: bool = _run(False, "vis")
    vis_grid: bool = _run(False, "vis")
    vis_num: int = _vis_count(100, 1)
    vis_rich_num: int = _vis_count(5, 0)
    vis_section_size: int = _vis_count(100, 1)
    blending_alpha: float = _run(DEFAULT_BLEND_ALPHA, "vis", range=Range(0.0, 1.0))
    interpolation_density: int = _run(8, "vis", range=Range(2, 10_000))


# The original's flags that have no meaning here: accepted by the parser, refused with the reason.
REJECTED_FLAGS: dict[str, str] = {
    "iterative": "non-parametric k-means is not supported (it never worked in the original)",
    "fused-modconv": "the modulated convolution always runs in its non-fused form here (the same maths; the grouped "
                     "form does not run on CPU); drop the flag",
    "recompile": "networks are always rebuilt from their saved config (there is no pickled code to reuse); drop the "
                 "flag",
}




@dataclass(frozen=True)
class CommandLine:
    """A parsed run_network.py command line.

    Attributes:
        run: The invocation's flags (passed values over the defaults).
        training: The `TrainingOptions` fields the user passed (by field name).
        model: The `ModelOptions` fields the user passed (by field name).
        training_cls: The training options' class (the one the parser was made from).
    """

    run: RunFlags
    training: Mapping[str, Any]
    model: Mapping[str, Any]
    training_cls: type = TrainingOptions

    @property
    def options(self) -> Any:
        """The training options as passed over the defaults, before the dataset resolves ratio, gamma and
        mirroring (`training.cli.launch.training_options`): what --eval and --vis use."""
        return self.training_cls(**self.training)


def build_parser(training_cls: type = TrainingOptions, model_cls: type = ModelOptions) -> argparse.ArgumentParser:
    """The run_network.py parser, made from the fields of `RunFlags`, `training_cls` and `model_cls`."""
    p = OneLineArgumentParser(prog="run_network.py",
                              description="Train, evaluate and visualize GANformer and baseline GANs (TensorFlow 2).",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    for cls in (RunFlags, training_cls, model_cls):
        add_flags(p, cls, groups)
    for name in REJECTED_FLAGS:
        groups["model"].add_argument(f"--{name}", type=str2bool, nargs="?", const=True, default=UNSET,
                                     help=argparse.SUPPRESS)
    return p


def parse_command_line(argv: Optional[list[str]] = None, training_cls: type = TrainingOptions,
                       model_cls: type = ModelOptions) -> CommandLine:
    """Parses and types a command line (no value checks beyond the types: see `check_flags`).

    Raises:
        UserError: A flag of `REJECTED_FLAGS` was passed (one line with the reason).
    """
    ns = build_parser(training_cls, model_cls).parse_args(argv)
    for name, reason in REJECTED_FLAGS.items():
        if getattr(ns, name.replace("-", "_")) is not UNSET:
            raise UserError(f"--{name}: {reason}")
    return CommandLine(from_flags(RunFlags, ns), passed_values(ns, training_cls), passed_values(ns, model_cls),
                       training_cls)


def check_flags(cmd: CommandLine, model_cls: type = ModelOptions) -> None:
    """Validates every flag on its own and the combinations that need no dataset, before any work starts.

    Every value must be of its type, in its declared range and among its choices; `--batch-size` must split into
    `--batch-gpu` micro-batches and `--metrics` must name registered metrics when they will run. The architecture
    (e.g. `--num-heads` dividing each attention width) is checked when the configs are built
    (`training.cli.launch.check_architecture`). Imports TensorFlow (through the metric registry): call it after the
    device environment is set.

    Raises:
        UserError: One line naming the flag, the value and what it must be.
    """
    check_options(cmd.run)
    for cls, passed in ((cmd.training_cls, cmd.training), (model_cls, cmd.model)):
        fields, hints = fields_of(cls), typing.get_type_hints(cls)
        for name, value in passed.items():
            if not (name == "gamma" and value == "auto"):
                f = fields[name]
                check_value(f"--{name.replace('_', '-')}", value, hints[name], spec_of(f))
    check_resolution(cmd.training.get("resolution"))
    from dnnlib.paths import check_folder_flag, check_name
    check_name("--expname", cmd.run.expname)
    check_folder_flag("--result-dir", cmd.run.result_dir)
    check_folder_flag("--data-dir", cmd.run.data_dir)
    opts = cmd.options
    if cmd.run.train:  # training splits each batch; --eval and --vis only use --batch-gpu
        check_batch_split(opts.batch_size, opts.batch_gpu, cmd.run.cpu_replicas or 1)
        group = cmd.model.get("mbstd_group_size")
        if group and opts.batch_gpu % min(group, opts.batch_gpu):
            raise UserError(f"--mbstd-group-size {group}: must divide --batch-gpu {opts.batch_gpu} (D groups each "
                            "micro-batch); pass a divisor of it, or 0 to turn the minibatch stddev off")
    if cmd.run.vis and opts.seed + cmd.run.vis_num - 1 > MAX_SEED:
        raise UserError(f"--seed {opts.seed} --vis-num {cmd.run.vis_num}: the samples use seeds --seed .. --seed + "
                        f"--vis-num - 1, which must be <= {MAX_SEED}; pass a smaller --seed")
    if cmd.run.train or cmd.run.eval:
        check_metrics(opts.metrics)


def check_metrics(names: list[str]) -> None:
    """Raises `UserError` naming `--metrics` and the known names when a name is not a registered metric."""
    if names:
        from metrics.registry import get_metric  # imports TensorFlow
        for name in names:
            get_metric(name)
