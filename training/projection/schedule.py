"""The projector's optimization schedule: learning-rate ramp and latent noise, as functions of the step.

With t = step / steps in [0, 1):

- learning rate: `lr(t) = lr0 * ramp_up(t) * ramp_down(t)` with `ramp_up(t) = min(1, t / rampup)` (a linear warm-up
  over the first `rampup` of the steps) and `ramp_down(t) = 0.5 - 0.5 cos(pi * min(1, (1 - t) / rampdown))` (a
  cosine decay to 0 over the last `rampdown` of the steps). Defaults lr0 = 0.1, rampup = 0.05, rampdown = 0.25.
- latent noise: Gaussian noise of standard deviation `sigma(t) = scale * noise_factor * max(0, 1 - t /
  noise_ramp)^2` is added to the optimized latents in every forward pass (not to the stored latents). `scale` is
  the RMS distance of one latent vector from its mean (measured on samples of the mapping network: see
  `training.projection.latents`). Defaults noise_factor = 0.05, noise_ramp = 0.75: the noise fades out
  quadratically and is off for the last quarter of the steps.

These are the values of StyleGAN2-ADA's projector; here they apply to each of the K latent vectors of a GANformer.
"""

from __future__ import annotations

import dataclasses
import math

from dnnlib.util import UserError


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Learning-rate and latent-noise schedule of a projection (see the module docstring).

    Attributes:
        steps: Number of optimization steps.
        lr: Peak learning rate lr0 of Adam.
        lr_rampup: Fraction of the steps of the linear warm-up.
        lr_rampdown: Fraction of the steps of the cosine decay.
        noise_factor: Initial latent noise, relative to the latents' RMS spread.
        noise_ramp: Fraction of the steps over which the latent noise fades to 0.
    """

    steps: int = 500
    lr: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    noise_factor: float = 0.05
    noise_ramp: float = 0.75

    def validate(self) -> "Schedule":
        """Raises UserError naming the flag when a value is out of range; returns self."""
        if self.steps < 1:
            raise UserError(f"--steps {self.steps}: must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"projection learning rate {self.lr}: must be a finite number > 0")
        for name in ("lr_rampup", "lr_rampdown", "noise_ramp"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise UserError(f"projection schedule {name} {value}: must be in (0, 1]")
        if not (math.isfinite(self.noise_factor) and self.noise_factor >= 0):
            raise UserError(f"projection noise factor {self.noise_factor}: must be a finite number >= 0")
        return self

    def progress(self, step: int) -> float:
        """t = step / steps."""
        return step / self.steps

    def learning_rate(self, step: int) -> float:
        """Learning rate of `step` (0-based)."""
        t = self.progress(step)
        down = min(1.0, (1.0 - t) / self.lr_rampdown)
        down = 0.5 - 0.5 * math.cos(down * math.pi)
        return self.lr * down * min(1.0, t / self.lr_rampup)

    def noise_scale(self, step: int, spread: float) -> float:
        """Standard deviation of the latent noise at `step` for latents whose RMS spread is `spread`."""
        t = self.progress(step)
        return spread * self.noise_factor * max(0.0, 1.0 - t / self.noise_ramp) ** 2
