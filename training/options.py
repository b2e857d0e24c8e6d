"""Training options: one validated, JSON-serializable dataclass whose fields declare their flags (`dnnlib.options`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from dnnlib.options import INVOCATION, RUNTIME, Range, check_options, none_or, option
from dnnlib.util import UserError
from training.augment.modes import AUG_MODES
from training.config import GeneratorConfig, field_range
from training.precision.settings import CONV_CLAMP_RANGE, NUM_FP16_RES_RANGE, PRECISIONS

MAX_SEED = 2 ** 32 - 1  # np.random.RandomState's largest seed (the sample grids' latents are drawn with it)
MAX_INT = 2 ** 63 - 1  # counts reach TensorFlow as int64
G_LOSSES = ("logistic_ns", "logistic", "hinge", "wgan")  # training.loss
D_LOSSES = ("logistic", "hinge", "wgan")
D_REGS = ("r1", "r2", "gp", "non")
_COUNT = Range(1, MAX_INT)  # counts of ticks are divisors (`tick % n`), so they start at 1


def _t(default: Any, group: str = "training", **kw: Any) -> Any:
    """A training option: the schedule, not the shape of the checkpoint, so a resumed run may change it (printed)."""
    kw.setdefault("resume", RUNTIME)
    if isinstance(default, list):
        return option(factory=lambda: list(default), group=group, **kw)
    return option(default, group=group, **kw)


def _i(default: Any, group: str = "framework", **kw: Any) -> Any:
    """An option of one invocation (e.g. the run folder): recorded, never compared across runs."""
    return option(default, group=group, resume=INVOCATION, **kw)


def parse_metrics(text: str) -> list[str]:
    """`--metrics` as names: `fid,kid` -> ["fid", "kid"]; `none` -> []."""
    return [] if text.strip().lower() == "none" else [m.strip() for m in text.split(",") if m.strip()]


def parse_gpus(text: Optional[str]) -> Optional[list[int]]:
    """`--gpus` as GPU ids: None (all visible), [] for '' (CPU only), else e.g. [0, 1]."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--gpus {text}: expected a comma list of GPU ids, e.g. --gpus 0,1 ('' for the CPU)") from None


def gamma_value(text: str) -> float | str:
    """`--gamma`: a number, or `auto` (resolved from the resolution and batch size once the dataset is known)."""
    return "auto" if str(text).strip().lower() == "auto" else float(text)


gamma_value.kind = float  # type: ignore[attr-defined]  # what it parses, for `value_kind`
gamma_value.__name__ = "float"  # argparse names the type in "invalid float value" messages


@dataclass
class TrainingOptions:
    """Everything the training loop needs besides the network configs, each field with its flag, help and range.

    These describe the schedule, not the shape of the checkpoint: a resumed run may change them (the changes are
    printed). Fields made with `_i` belong to one invocation and are not compared at all.
    """

    run_dir: str = _i("", flag="")
    dataset: str = _t("", group="dataset", help="dataset name (sub-folder of --data-dir)")
    resolution: Optional[int] = _t(None, group="dataset", range=field_range(GeneratorConfig, "resolution"),
                                   help="resolution to train at (default: the dataset's)")
    ratio: Optional[float] = _t(None, group="dataset", range=Range(0.0, 1.0, lo_open=True),
                                help="content height/width (default: the dataset's)")
    mirror_augment: bool = _t(False, group="dataset", help="random horizontal flips of reals (default: the "
                                                           "dataset's GANformer preset with --ganformer-default)")
    train_images_num: Optional[int] = _t(None, group="dataset", range=Range(1, MAX_INT),
                                         help="use only the first N images")
    batch_size: int = _t(32, range=Range(1, 1 << 16), help="global batch per optimizer step")
    batch_gpu: int = _t(4, range=Range(1, 1 << 16), help="per-replica micro-batch (gradient accumulation)")
    total_kimg: float = _t(25000.0, range=Range(0.001), help="training length in thousands of real images")
    gamma: float = _t(10.0, range=Range(0.0), parse=gamma_value,
                      help="R1 weight, or auto: 0.0002*resolution^2/batch-size (StyleGAN2-ADA); default: the "
                           "dataset's preset with --ganformer-default, else 10")
    clip: Optional[float] = _t(None, range=Range(0.0, lo_open=True), help="clip gradients to this global norm")
    g_lr: float = _t(0.002, range=Range(0.0, lo_open=True))
    d_lr: float = _t(0.002, range=Range(0.0, lo_open=True))
    g_loss: str = _t("logistic_ns", choices=G_LOSSES)
    d_loss: str = _t("logistic", choices=D_LOSSES)
    d_reg: str = _t("r1", choices=D_REGS)
    d_reg_interval: int = _t(16, flag="", range=Range(1, 1 << 16))
    g_reg_interval: int = _t(4, flag="", range=Range(1, 1 << 16))
    pl_weight: float = _t(0.0, range=Range(0.0), help="path-length regularization weight (0: off)")
    aug: str = _t("noaug", group="augmentation", choices=AUG_MODES,
                  help="noaug (default); ada: the ADA pipeline with adaptive p; fixed: with a constant --p; "
                       "diffaugment")
    augpipe: str = _t("bgc", group="augmentation", help="ADA pipeline for --aug ada/fixed: bgc (default), bg, bgcf, "
                      "bgcfn, bgcfnc, blit, geom, color, filter, noise, cutout")
    p: float = _t(0.0, group="augmentation", range=Range(0.0, 1.0), help="augmentation probability: required with "
                  "--aug fixed, the initial p with --aug ada (default 0)")
    target: float = _t(0.6, group="augmentation", range=Range(0.0, 1.0, hi_open=True),
                       help="--aug ada: target of r_t = E[sign(D(reals))] (default 0.6)")
    ada_kimg: float = _t(500.0, group="augmentation", range=Range(0.0, lo_open=True),
                         help="--aug ada: kimg for p to move from 0 to 1 (default 500)")
    ada_interval: int = _t(4, group="augmentation", range=Range(1, 1 << 20),
                           help="--aug ada: minibatches between p updates (default 4)")
    diffaugment: str = _t("color,translation,cutout", group="augmentation",
                          help="--aug diffaugment: comma list of color, translation, cutout (default all three)")
    precision: str = _t("fp32", group="precision", choices=PRECISIONS,
                        help="compute dtype of the top --num-fp16-res resolutions of G and D: fp32 (default), fp16 "
                             "(with dynamic loss scaling) or bf16")
    num_fp16_res: int = _t(4, group="precision", range=NUM_FP16_RES_RANGE,
                           help="number of top resolutions in reduced precision (never 4x4)")
    conv_clamp: Optional[float] = _t(256.0, group="precision", range=CONV_CLAMP_RANGE, parse=none_or(float),
                                     help="clamp the reduced-precision layers' activations to +-this (none: no clamp)")
    ema_kimg: float = _t(10.0, range=Range(0.0), help="half-life of the G moving average (kimg)")
    ema_rampup: Optional[float] = _t(0.05, range=Range(0.0), help="EMA half-life ramp-up: min(ema-kimg, ratio x "
                                                                   "images seen); 0 turns it off (the original)")
    kimg_per_tick: float = _t(8.0, range=Range(0.001), help="kimg between status lines")
    img_snapshot_ticks: int = _t(3, group="logging", range=_COUNT)
    network_snapshot_ticks: int = _t(3, group="logging", range=_COUNT)
    maps_snapshot_ticks: int = _t(3, group="logging", range=_COUNT)
    last_snapshots: int = _t(10, group="framework", range=Range(),
                             help="keep the newest N network snapshots (<=0: all)")
    metrics: list[str] = _t(["fid"], group="logging", parse=parse_metrics,
                            help="comma list (fid, fid10k, fid50k, is, kid, pr, ppl) or none")
    eval_images_num: int = _t(50000, group="logging", range=Range(1, 1 << 20), help="images per metric")
    seed: int = _t(1000, group="framework", range=Range(0, MAX_SEED), help="seed of weights, latents and data order")
    deterministic: bool = _t(False, group="framework", help="deterministic ops (bit-exact resume on CPU)")
    xla: bool = _t(True, group="framework", help="compile training steps with XLA (--xla false: plain graphs)")
    eager: bool = _t(False, group="framework", help="run eagerly (debugging)")
    gpus: Optional[list[int]] = _i(None, range=Range(-1, 1 << 16), parse=parse_gpus,
                                   help="comma list of GPU ids, e.g. 0,1,2,3 (default: all visible; '' = CPU)")
    summarize: bool = _t(True, group="logging", help="TensorBoard summaries")
    keep_samples: bool = _t(True, group="logging",
                            help="keep every sample/map grid in visuals/ (false: only the newest of each)")
    attention_stats: bool = _t(True, group="logging",
                               help="log attention diagnostics of G and Gs (entropy, logit spread, latents used, "
                                    "locality) on the ticks that draw maps; costs k + 1 synthesis passes of 8 images "
                                    "per network")
    num_threads: int = _t(4, group="dataset", range=Range(1, 256),
                          help="files read in parallel (part of the data order: keep it on resume)")
    grid_size: tuple[int, int] = _t((8, 4), flag="", range=Range(1, 256))
    pretrained_pkl: Optional[str] = _i(None, parse=none_or(str),
                                       help="our snapshot, an authors' pickle or a catalog name "
                                            "(gdrive:ffhq-snapshot.pkl, ...)")
    max_ticks: Optional[int] = _i(None, group="training", range=_COUNT, help="stop after N ticks of this process")
    cache_dir: Optional[str] = _i(None, help="download/statistics cache (default ~/.cache/ganformer)")

    def validate(self, num_replicas: int = 1) -> "TrainingOptions":
        """Checks every option's type, range and choices (as declared on its field) and the batch split; raises
        `UserError` naming the flag, returns self. Options read back from a run record (`--reload`) are held to the
        same checks as the command line's."""
        check_options(self)
        check_resolution(self.resolution)
        from training.augment.ada import check_augment_options  # imports TensorFlow
        check_augment_options(self)
        check_batch_split(self.batch_size, self.batch_gpu, num_replicas)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        return dataclasses.asdict(self)


def check_resolution(resolution: Optional[int]) -> None:
    """Raises `UserError` unless `--resolution` is unset or a power of two."""
    if resolution is not None and resolution & (resolution - 1):
        raise UserError(f"--resolution {resolution}: must be a power of two (e.g. {1 << resolution.bit_length()})")


def check_batch_split(batch_size: int, batch_gpu: int, num_replicas: int) -> None:
    """Raises `UserError` unless the global batch splits into `--batch-gpu` micro-batches on every replica."""
    per_round = batch_gpu * num_replicas
    if batch_size % per_round:
        raise UserError(f"--batch-size {batch_size} must be a multiple of --batch-gpu x replicas "
                        f"({batch_gpu} x {num_replicas} = {per_round}); e.g. --batch-size "
                        f"{max(per_round, batch_size // per_round * per_round)}")
