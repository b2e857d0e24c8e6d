"""Projection of images into a generator's latents: the optimization loop.

Each step synthesizes the current latents (plus the schedule's latent noise), crops the images to the content rows,
and minimizes per image

    loss = perceptual(image, target) + mse_weight * mean((image - target)^2) [+ noise_weight * noise_reg]

with pixels in [-1, 1], the perceptual distance of `training.projection.perceptual` and, when the noise maps are
optimized too, the regularization of `training.projection.noise_maps`. Adam (beta1 0.9, beta2 0.999, eps 1e-8)
follows the learning rate of `training.projection.schedule`; the loss of a batch is the sum of its images' losses,
and Adam acts elementwise, so the images of a batch do not influence each other. The latents start as
`training.projection.latents` describes. The generator runs without truncation.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.quantize import quantize
from dnnlib.crop import crop_to_content
from training.projection import latents as latent_spaces
from training.projection import noise_maps
from training.projection.perceptual import Perceptual
from training.projection.schedule import Schedule

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
    """What to optimize and how.

    Attributes:
        space: `z`, `w` or `w+` (see `training.projection.latents`).
        schedule: Steps, learning rate and latent noise.
        optimize_noise: Also optimize the per-layer noise maps.
        noise_weight: Weight of the noise regularization (StyleGAN2-ADA: 1e5).
        mse_weight: Weight of the pixel MSE.
        seed: Seed of the starting z (space z), the latent noise and the mean-w samples.
        frames: Number of progress frames recorded (evenly spaced over the steps, plus the last).
        stat_samples: Samples of the mapping network for the mean w and the latent spread.
        compile: `eager`, `graph` (tf.function) or `xla`.
    """

    space: str = "w"
    schedule: Schedule = Schedule()
    optimize_noise: bool = False
    noise_weight: float = 1e5
    mse_weight: float = 1.0
    seed: int = 0
    frames: int = 40
    stat_samples: int = latent_spaces.STAT_SAMPLES
    compile: str = "graph"


@dataclasses.dataclass
class Projection:
    """The result of projecting a batch of B targets.

    Attributes:
        ws: Synthesis input `[B, K, S, d]` (no latent noise).
        z: The optimized z `[B, K, d]` (space z only).
        noise: Optimized noise maps `[B * lead, r, r, 1]` per layer (with `optimize_noise` only).
        images: Final reconstructions, uint8 `[B, h, w, 3]` (content rows).
        maps: Attention maps of the reconstructions, last layer, `[B, k, heads, h, w]` (None without attention).
        start_images: The images at the starting latents, uint8 `[B, h, w, 3]`.
        frames: Progress frames, uint8 `[B, h, w, 3]` each, with the step of each in `frame_steps`.
        history: Per-step values `[steps, B]`: `loss`, `perceptual`, `mse`, `noise_reg` (with latent noise).
        start: `perceptual`, `mse`, `psnr` `[B]` at the starting latents (no latent noise).
        end: The same at the final latents.
        seconds: Wall time of the batch's optimization.
    """

    ws: np.ndarray
    z: Optional[np.ndarray]
    noise: Optional[list[np.ndarray]]
    images: np.ndarray
    maps: Optional[np.ndarray]
    start_images: np.ndarray
    frames: list[np.ndarray]
    frame_steps: list[int]
    history: dict[str, np.ndarray]
    start: dict[str, np.ndarray]
    end: dict[str, np.ndarray]
    seconds: float


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB `[B]` between uint8 image batches `[B, h, w, 3]` (peak 255; 100 dB for identical images)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return np.where(mse > 0, 10.0 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), 100.0)


class _Session:
    """Variables, Adam slots and traced functions for batches of one size B (reused across batches)."""

    def __init__(self, proj: "Projector", batch: int, target_shape: tuple[int, ...]) -> None:
        self.proj, self.batch = proj, batch
        cfg, G = proj.cfg, proj.G
        start = latent_spaces.initial_latents(cfg.space, proj.stats, batch, G.num_ws, 0)
        self.latents = tf.Variable(start, name="projected_latents")
        self.synthesis, self.noises = G.synthesis, []
        if cfg.optimize_noise:
            self.synthesis, self.noises = noise_maps.noise_synthesis(G.synthesis, batch)
        self.variables = [self.latents] + self.noises
        self.m = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.t = tf.Variable(0.0)
        self.targets = tf.Variable(tf.zeros([batch, *target_shape]))
        self.target_feats = tf.Variable(proj.perceptual.features(self.targets))
        wrap = (lambda f: f) if cfg.compile == "eager" else (
            lambda f: tf.function(f, autograph=False, jit_compile=cfg.compile == "xla" or None))
        self.step = wrap(self._step)
        self.evaluate = wrap(self._evaluate)

    def reset(self, start: np.ndarray, targets: np.ndarray) -> None:
        """Starts a new batch: latents, the model's noise, zero Adam state, targets `[B, h, w, 3]` in [-1, 1]."""
        self.latents.assign(start)
        for var, buf in zip(self.noises, self.proj.G.synthesis.noise_bufs):
            var.assign(tf.tile(buf, [self.batch, 1, 1, 1]))
        for slot in self.m + self.v:
            slot.assign(tf.zeros_like(slot))
        self.t.assign(0.0)
        self.targets.assign(targets)
        self.target_feats.assign(self.proj.perceptual.features(self.targets))

    def _losses(self, latents: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Images `[B, h, w, 3]` of `latents` and the loss terms `[B]`."""
        G, cfg = self.proj.G, self.proj.cfg
        ws = latent_spaces.to_ws(G, cfg.space, latents, self.proj.labels(self.batch))
        images = self.synthesis(ws, noise_mode="const")
        images = crop_to_content(crop_to_content(images, G.cfg.crop_ratio), self.proj.ratio)
        terms = {"perceptual": self.proj.perceptual.distance(self.proj.perceptual.features(images), self.target_feats),
                 "mse": tf.reduce_mean(tf.square(images - self.targets), axis=[1, 2, 3]),
                 "noise_reg": noise_maps.regularization(self.noises, self.batch) if self.noises else tf.zeros(
                     [self.batch])}
        terms["loss"] = terms["perceptual"] + cfg.mse_weight * terms["mse"] + cfg.noise_weight * terms["noise_reg"]
        return images, terms

    def _step(self, lr: tf.Tensor, noise_scale: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """One Adam step; returns the loss terms `[B]` and the (noisy) images as uint8 `[B, h, w, 3]`."""
        with tf.GradientTape() as tape:
            noisy = self.latents + noise_scale * tf.random.stateless_normal(tf.shape(self.latents), seed)
            images, terms = self._losses(noisy)
            total = tf.reduce_sum(terms["loss"])
        grads = tape.gradient(total, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        self.t.assign_add(1.0)
        b1, b2 = ADAM_BETAS
        for var, m, v, g in zip(self.variables, self.m, self.v, grads):
            m.assign(b1 * m + (1 - b1) * g)
            v.assign(b2 * v + (1 - b2) * tf.square(g))
            m_hat, v_hat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            var.assign_sub(lr * m_hat / (tf.sqrt(v_hat) + ADAM_EPS))
        if self.noises:
            noise_maps.renormalize(self.noises)
        return dict(terms, images=quantize(images))

    def _evaluate(self) -> dict[str, tf.Tensor]:
        """Loss terms `[B]`, uint8 images, ws and (with attention) the last layer's attention maps
        `[B, k, heads, h, w]` of the current latents without latent noise."""
        G = self.proj.G
        images, terms = self._losses(tf.identity(self.latents))
        ws = latent_spaces.to_ws(G, self.proj.cfg.space, self.latents, self.proj.labels(self.batch))
        out = dict(terms, images=quantize(images), ws=ws)
        if G.num_attention_layers:
            _, maps = self.synthesis(ws, noise_mode="const", return_maps=True)
            maps = crop_to_content(crop_to_content(maps, G.cfg.crop_ratio, axes=(4, 5)), self.proj.ratio, axes=(4, 5))
            out["maps"] = maps[:, :, -1]
        return out


class Projector:
    """Projects target images into the latents of a generator (see the module docstring).

    Args:
        G: Generator (usually Gs): `mapping`, `synthesis`, `latent_shape`, `num_ws`, `cfg`.
        perceptual: The perceptual distance.
        cfg: What to optimize and how.
        ratio: Content height / width of the targets (the model's run record).
        label: One-hot label `[label_dim]` for conditional models (None: unconditional).
    """

    def __init__(self, G: Any, perceptual: Perceptual, cfg: ProjectionConfig, ratio: float = 1.0,
                 label: Optional[np.ndarray] = None) -> None:
        if cfg.space not in latent_spaces.SPACES:
            raise ValueError(f"space must be one of {latent_spaces.SPACES}, got {cfg.space!r}")
        cfg.schedule.validate()
        self.G, self.perceptual, self.cfg, self.ratio = G, perceptual, cfg, ratio
        self.label = np.zeros([0], np.float32) if label is None else np.asarray(label, np.float32)
        self.stats = latent_spaces.latent_stats(G, self.label[None], cfg.stat_samples, cfg.seed)
        self._sessions: dict[int, _Session] = {}
        self._batches = 0

    def labels(self, batch: int) -> Optional[tf.Tensor]:
        """Labels `[B, label_dim]` (None for unconditional models)."""
        return tf.tile(tf.constant(self.label)[None], [batch, 1]) if self.label.size else None

    def project(self, targets: np.ndarray,
                progress: Optional[Callable[[np.ndarray], None]] = None) -> Projection:
        """Projects a batch of targets.

        Args:
            targets: uint8 `[B, h, w, 3]`, the content rows of the model's images.
            progress: Called after every step with the loss `[B]` of that step.
        """
        cfg, sched = self.cfg, self.cfg.schedule
        real = len(targets)
        batch = max([real] + list(self._sessions))  # a smaller last batch is padded: no second trace
        if batch > real:
            targets = np.concatenate([targets, np.repeat(targets[-1:], batch - real, axis=0)])
        session = self._sessions.get(batch)
        if session is None:
            session = self._sessions[batch] = _Session(self, batch, targets.shape[1:])
        seed = cfg.seed + self._batches
        self._batches += 1
        start = latent_spaces.initial_latents(cfg.space, self.stats, batch, self.G.num_ws, seed)
        session.reset(start, targets.astype(np.float32) / 127.5 - 1.0)
        begin = time.perf_counter()
        first = {k: v.numpy() for k, v in session.evaluate().items()}
        spread = latent_spaces.spread(cfg.space, self.stats)
        every = max(1, sched.steps // max(1, cfg.frames))
        frames, frame_steps, history = [first["images"]], [0], {k: [] for k in ("loss", "perceptual", "mse",
                                                                              "noise_reg")}
        for step in range(sched.steps):
            out = session.step(tf.constant(sched.learning_rate(step), tf.float32),
                               tf.constant(sched.noise_scale(step, spread), tf.float32),
                               tf.constant([seed % (2 ** 31), step], tf.int32))
            for k in history:
                history[k].append(out[k].numpy())
            if (step + 1) % every == 0 or step + 1 == sched.steps:
                frames.append(out["images"].numpy())
                frame_steps.append(step + 1)
            if progress is not None:
                progress(history["loss"][-1][:real])
        last = {k: v.numpy() for k, v in session.evaluate().items()}
        seconds = time.perf_counter() - begin
        lead = int(session.noises[0].shape[0]) // batch if session.noises else 0
        return Projection(
            ws=last["ws"][:real], z=session.latents.numpy()[:real] if cfg.space == "z" else None,
            noise=[v.numpy()[:real * lead] for v in session.noises] or None, images=last["images"][:real],
            maps=last["maps"][:real] if "maps" in last else None, start_images=first["images"][:real],
            frames=[f[:real] for f in frames], frame_steps=frame_steps,
            history={k: np.stack(v)[:, :real] for k, v in history.items()},
            start=_summary(first, targets, real), end=_summary(last, targets, real), seconds=seconds)


def _summary(values: dict[str, np.ndarray], targets: np.ndarray, real: int) -> dict[str, np.ndarray]:
    return {"perceptual": values["perceptual"][:real], "mse": values["mse"][:real],
            "psnr": psnr(values["images"][:real], targets[:real])}
