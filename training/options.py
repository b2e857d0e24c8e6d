"""Training options (spec §1.1 "Training", §3): one validated, JSON-serializable dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from dnnlib.util import UserError
from training.ada import check_augment_options
from training.config import invocation_field
from training.loss import D_LOSSES, D_REGS, G_LOSSES


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
    aug: str = "noaug"  # augmentation of what D sees (training.ada): noaug, ada, fixed, diffaugment
    augpipe: str = "bgc"
    p: float = 0.0  # augmentation probability: constant (fixed) or initial (ada)
    target: float = 0.6  # ada: the target of r_t = E[sign(D(reals))]
    ada_kimg: float = 500.0
    ada_interval: int = 4
    diffaugment: str = "color,translation,cutout"
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
    num_threads: int = 4
    grid_size: tuple[int, int] = (3, 2)
    pretrained_pkl: Optional[str] = invocation_field(None)
    max_ticks: Optional[int] = invocation_field(None)
    cache_dir: Optional[str] = invocation_field(None)

    def validate(self, num_replicas: int = 1) -> "TrainingOptions":
        """Raises `UserError` (naming the flag) on bad values; returns self."""
        _choice("--g-loss", self.g_loss, G_LOSSES)
        _choice("--d-loss", self.d_loss, D_LOSSES)
        _choice("--d-reg", self.d_reg, D_REGS)
        if self.num_threads < 1:
            raise UserError(f"--num-threads {self.num_threads}: must be >= 1")
        if self.batch_size < 1 or self.batch_gpu < 1:
            raise UserError("--batch-size and --batch-gpu must be >= 1")
        per_round = self.batch_gpu * num_replicas
        if self.batch_size % per_round:
            raise UserError(f"--batch-size {self.batch_size} must be a multiple of --batch-gpu x replicas "
                            f"({self.batch_gpu} x {num_replicas} = {per_round}); e.g. --batch-size "
                            f"{max(per_round, self.batch_size // per_round * per_round)}")
        if self.total_kimg <= 0 or self.kimg_per_tick <= 0:
            raise UserError("--total-kimg and the tick length must be positive")
        if self.gamma < 0 or self.pl_weight < 0:
            raise UserError("--gamma and --pl-weight must be >= 0")
        if self.g_lr <= 0 or self.d_lr <= 0:
            raise UserError("--g-lr and --d-lr must be positive")
        if self.clip is not None and self.clip <= 0:
            raise UserError(f"--clip {self.clip}: must be positive (or omitted)")
        if self.ema_kimg < 0 or (self.ema_rampup is not None and not self.ema_rampup >= 0):
            raise UserError(f"--ema-kimg {self.ema_kimg} / --ema-rampup {self.ema_rampup}: must be >= 0")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise UserError(f"--ratio {self.ratio}: must be in (0, 1]")
        check_augment_options(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        return dataclasses.asdict(self)


def _choice(flag: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"{flag} {value}: choose one of {', '.join(allowed)}")
