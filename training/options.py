"""Training options (spec §1.1 "Training", §3): one validated, JSON-serializable dataclass."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional

from dnnlib.util import UserError
from training.augment.ada import check_augment_options
from training.config import FIELD_RANGES, Range, invocation_field
from training.loss import D_LOSSES, D_REGS, G_LOSSES
from training.precision.policy import CONV_CLAMP_RANGE, NUM_FP16_RES_RANGE, PRECISIONS

MAX_SEED = 2 ** 32 - 1  # np.random.RandomState's largest seed (the sample grids' latents are drawn with it)
MAX_INT = 2 ** 63 - 1  # counts reach TensorFlow as int64

# The allowed values of the numeric options (ints: the annotation says int; floats must also be finite), checked by
# `TrainingOptions.validate` and, for the flags, by `training.cli.flags.check_flags` before any work starts. Counts of
# ticks are divisors (`tick % n`), so they start at 1; a tick and a run are at least one image (0.001 kimg).
OPTION_RANGES: Mapping[str, Range] = MappingProxyType(dict(
    resolution=Range(*FIELD_RANGES["resolution"]), ratio=Range(0.0, 1.0, lo_open=True),
    train_images_num=Range(1, MAX_INT), batch_size=Range(1, 1 << 16), batch_gpu=Range(1, 1 << 16),
    total_kimg=Range(0.001), gamma=Range(0.0), clip=Range(0.0, lo_open=True), g_lr=Range(0.0, lo_open=True),
    d_lr=Range(0.0, lo_open=True), d_reg_interval=Range(1, 1 << 16), g_reg_interval=Range(1, 1 << 16),
    pl_weight=Range(0.0), ema_kimg=Range(0.0), ema_rampup=Range(0.0), kimg_per_tick=Range(0.001),
    img_snapshot_ticks=Range(1, MAX_INT), network_snapshot_ticks=Range(1, MAX_INT),
    maps_snapshot_ticks=Range(1, MAX_INT), last_snapshots=Range(),
    eval_images_num=Range(1, 1 << 20), seed=Range(0, MAX_SEED), num_threads=Range(1, 256),
    gpus=Range(-1, 1 << 16), grid_size=Range(1, 256), max_ticks=Range(1, MAX_INT),  # --gpus -1: no GPU
    p=Range(0.0, 1.0), target=Range(0.0, 1.0, hi_open=True), ada_kimg=Range(0.0, lo_open=True),  # augmentation
    ada_interval=Range(1, 1 << 20),
    num_fp16_res=NUM_FP16_RES_RANGE, conv_clamp=CONV_CLAMP_RANGE,  # mixed precision (training.precision.policy)
))
# Fields without a flag of their own (messages name the field).
_NO_FLAG = frozenset({"run_dir", "d_reg_interval", "g_reg_interval", "grid_size"})


@dataclass
class TrainingOptions:
    """Everything the training loop needs besides the network configs.

    These describe the schedule, not the shape of the checkpoint: a resumed run may change them (the changes are
    printed). Fields made with `invocation_field` belong to one invocation and are not compared at all.
    """

    run_dir: str = invocation_field("")
    dataset: str = ""
    resolution: Optional[int] = None
    ratio: Optional[float] = None
    mirror_augment: bool = False
    train_images_num: Optional[int] = None
    batch_size: int = 32
    batch_gpu: int = 4
    total_kimg: float = 25000.0
    gamma: float = 10.0
    clip: Optional[float] = None
    g_lr: float = 0.002
    d_lr: float = 0.002
    g_loss: str = "logistic_ns"
    d_loss: str = "logistic"
    d_reg: str = "r1"
    d_reg_interval: int = 16
    g_reg_interval: int = 4
    pl_weight: float = 0.0
    aug: str = "noaug"  # augmentation of what D sees (training.augment.ada): noaug, ada, fixed, diffaugment
    augpipe: str = "bgc"
    p: float = 0.0  # augmentation probability: constant (fixed) or initial (ada)
    target: float = 0.6  # ada: the target of r_t = E[sign(D(reals))]
    ada_kimg: float = 500.0
    ada_interval: int = 4
    diffaugment: str = "color,translation,cutout"
    precision: str = "fp32"  # compute dtype of the top blocks (training.precision.policy): fp32, fp16, bf16
    num_fp16_res: int = 4  # how many top resolutions of G and D compute in that dtype
    conv_clamp: Optional[float] = 256.0  # clamp of their activations (None: none)
    ema_kimg: float = 10.0
    ema_rampup: Optional[float] = 0.05
    kimg_per_tick: float = 8.0
    img_snapshot_ticks: int = 3
    network_snapshot_ticks: int = 3
    maps_snapshot_ticks: int = 3
    last_snapshots: int = 10
    metrics: list[str] = field(default_factory=lambda: ["fid"])
    eval_images_num: int = 50000
    seed: int = 1000
    deterministic: bool = False
    xla: bool = True
    eager: bool = False
    gpus: Optional[list[int]] = invocation_field(None)
    summarize: bool = True
    keep_samples: bool = True
    attention_stats: bool = True  # log metrics.attention_stats of G and Gs on the ticks that draw maps
    num_threads: int = 4
    grid_size: tuple[int, int] = (8, 4)
    pretrained_pkl: Optional[str] = invocation_field(None)
    max_ticks: Optional[int] = invocation_field(None)
    cache_dir: Optional[str] = invocation_field(None)

    def validate(self, num_replicas: int = 1) -> "TrainingOptions":
        """Checks every option's type and range (`OPTION_RANGES`: numbers finite and in range), the choices and the
        batch split; raises `UserError` naming the flag, returns self. The same checks as the command line's
        (`training.cli.flags.check_flags`), so options read back from a run record (`--reload`) are held to them too.
        """
        hints = typing.get_type_hints(TrainingOptions)
        for f in dataclasses.fields(self):
            check_option(f.name, getattr(self, f.name), hints[f.name])
        _choice("--g-loss", self.g_loss, G_LOSSES)
        _choice("--d-loss", self.d_loss, D_LOSSES)
        _choice("--d-reg", self.d_reg, D_REGS)
        _choice("--precision", self.precision, PRECISIONS)
        check_augment_options(self)
        check_batch_split(self.batch_size, self.batch_gpu, num_replicas)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        return dataclasses.asdict(self)


def option_flag(name: str) -> str:
    """The flag of a training option (`g_lr` -> `--g-lr`), or the option's name when it has no flag."""
    return name if name in _NO_FLAG else "--" + name.replace("_", "-")


def check_option(name: str, value: Any, hint: Any = None) -> None:
    """Checks one training option against its annotated type (`hint`, default: the field's) and `OPTION_RANGES`.

    Raises:
        UserError: One line naming the flag, the value and what it must be.
    """
    flag = option_flag(name)
    hint = typing.get_type_hints(TrainingOptions)[name] if hint is None else hint
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return
        hint = next(a for a in args if a is not type(None))
    origin, limits = typing.get_origin(hint), OPTION_RANGES.get(name, Range())
    if hint in (int, float):
        limits.check(flag, value, integer=hint is int)
        if name == "resolution" and value & (value - 1):
            raise UserError(f"{flag} {value}: must be a power of two (e.g. {1 << value.bit_length()})")
    elif origin in (list, tuple):
        items = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or (origin is tuple and len(value) != len(items)):
            raise UserError(f"{flag} {value!r}: must be a list of {len(items) if origin is tuple else 'any'} "
                            f"{items[0].__name__} values")
        for item in value:
            check_option(name, item, items[0])
    elif not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise UserError(f"{flag}: must be {'true/false' if hint is bool else 'a ' + hint.__name__}, got "
                        f"{type(value).__name__} {value!r:.40}")


def check_batch_split(batch_size: int, batch_gpu: int, num_replicas: int) -> None:
    """Raises `UserError` unless the global batch splits into `--batch-gpu` micro-batches on every replica."""
    per_round = batch_gpu * num_replicas
    if batch_size % per_round:
        raise UserError(f"--batch-size {batch_size} must be a multiple of --batch-gpu x replicas "
                        f"({batch_gpu} x {num_replicas} = {per_round}); e.g. --batch-size "
                        f"{max(per_round, batch_size // per_round * per_round)}")


def _choice(flag: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"{flag} {value}: choose one of {', '.join(allowed)}")
