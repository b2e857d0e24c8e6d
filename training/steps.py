"""Compiled training phases (StyleGAN2-ADA phase order): G main, G path-length reg, D main, D reg, EMA.

A minibatch of `batch_size` images is split into slices of `batch_gpu` images; slice `s = round * R + replica`
(R replicas) is processed by one replica in one accumulation round. Latents, labels and reals of the whole
minibatch are given to every replica, which takes its slice, so the result does not depend on how slices are laid
out over replicas and rounds (1 replica x 2 rounds == 2 replicas x 1 round). Gradients are summed over replicas
(`strategy.reduce`) and rounds and divided by the number of slices; non-finite gradients skip the update; optional
clipping by global norm. Each phase's per-replica computation is one `tf.function` (XLA when enabled).

Augmentation (`--aug`, `training.augment.ada`): every image D sees (fakes in G main, reals and fakes in D main, the
regularized images in D reg) goes through the augmentation with probability p (the checkpointed `AugmentState`),
with a stateless seed per slice, so it too is independent of the replica layout; R1 is taken with respect to the
un-augmented reals, through the augmentation. With `--aug ada`, the mean sign of D's real scores updates p.

Mixed precision (`--precision`, `training.precision.policy`): G's and D's top blocks compute in float16/bfloat16; with
float16 each optimizer has a dynamic loss scale (`training.precision.loss_scale`): the replicas differentiate the scaled loss,
the summed gradients are unscaled before the finiteness test, and the scale is updated after every update (a
skipped update halves it). With fp32 nothing here changes.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import numpy as np

import tensorflow as tf

from training import loss as losses
from training.augment.ada import AugmentState, ada_adjustment, build_augment
from training.precision.loss_scale import ATTRIBUTE as LOSS_SCALE_ATTRIBUTE
from training.precision.loss_scale import LossScale, attach
from training.networks.discriminator import Discriminator
from training.networks.generator import Generator
from training.optimizer import Adam
from training.options import TrainingOptions
from training.precision.policy import Precision, set_precision


def _to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 `[B, H, W, C]` in [0, 255] -> float32 in [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _dense_grads(grads: list[Optional[tf.Tensor]], variables: list[tf.Variable]) -> list[tf.Tensor]:
    """Gradients with the variables' static shapes (zeros for variables without a gradient path)."""
    return [tf.zeros_like(v) if g is None else g if g.shape == v.shape else tf.reshape(g, v.shape)
            for g, v in zip(grads, variables)]


def _apply_group(opt: Adam, grads: list[tf.Tensor]) -> tf.Operation:
    opt.apply(grads)
    return tf.no_op()


class TrainingSteps:
    """Builds and runs the phase functions for one set of networks/optimizers under a strategy.

    Args:
        G: Generator being trained.
        D: Discriminator.
        Gs: EMA copy of G.
        g_opt: Adam over G's trainables.
        d_opt: Adam over D's trainables.
        opts: Training options.
        strategy: The tf.distribute strategy (the default strategy on one device).
        pl_mean: Running mean of the path lengths (a variable of the progress state).
        aug_state: p and ADA's accumulator (checkpointed by the caller); None: a new one at `opts.p`.

    G and D are set to the options' precision (`training.precision.policy.set_precision`; Gs is left as it is: samples and
    metrics use it in float32). With fp16, a `LossScale` is attached to each optimizer (`opt.loss_scale`, reused if
    present), so the caller's checkpoint of the optimizers holds it.
    """

    def __init__(self, G: Generator, D: Discriminator, Gs: Generator, g_opt: Adam, d_opt: Adam,
                 opts: TrainingOptions, strategy: tf.distribute.Strategy, pl_mean: tf.Variable,
                 aug_state: Optional[AugmentState] = None) -> None:
        self.G, self.D, self.Gs, self.g_opt, self.d_opt = G, D, Gs, g_opt, d_opt
        self.opts, self.strategy, self.pl_mean = opts, strategy, pl_mean
        self.augment = build_augment(opts, D.cfg.num_channels)
        self.aug_state = aug_state if aug_state is not None else AugmentState(opts.p)
        self.precision = Precision.from_options(opts)
        set_precision(G, self.precision)
        set_precision(D, self.precision)
        self.g_scale = self.d_scale = None
        if self.precision.loss_scaling:
            with strategy.scope():
                self.g_scale = getattr(g_opt, LOSS_SCALE_ATTRIBUTE, None) or attach(g_opt, LossScale(name="g_scale"))
                self.d_scale = getattr(d_opt, LOSS_SCALE_ATTRIBUTE, None) or attach(d_opt, LossScale(name="d_scale"))
        self._probe: Optional[Callable] = None
        self.replicas = strategy.num_replicas_in_sync
        self.rounds = opts.batch_size // (opts.batch_gpu * self.replicas)
        self.slices = self.rounds * self.replicas
        # autograph is off: all control flow here is on Python values (tracing is several times faster).
        wrap = (lambda f: f) if opts.eager else (lambda f: tf.function(f, jit_compile=opts.xla, autograph=False))
        outer = (lambda f: f) if opts.eager else (lambda f: tf.function(f, autograph=False))
        self._wrap = wrap
        self._g_main = outer(self._distributed(wrap(self._g_main_replica)))
        self._g_reg = outer(self._distributed(wrap(self._g_reg_replica)))
        self._d_main = outer(self._distributed(wrap(self._d_main_replica)))
        self._d_reg = outer(self._distributed(wrap(self._d_reg_replica)))
        self._apply_g = outer(self._apply_fn(g_opt, self.g_scale))
        self._apply_d = outer(self._apply_fn(d_opt, self.d_scale))
        self._ema = outer(self._ema_update)

    # ----------------------------------------------------------------------------------------------- per replica
    def _slice(self, t: Optional[tf.Tensor], round_idx: tf.Tensor) -> Optional[tf.Tensor]:
        if t is None:
            return None
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        s = round_idx * self.replicas + rid
        b = self.opts.batch_gpu
        return t[s * b:(s + 1) * b]

    def _seed(self, seed: tf.Tensor, round_idx: tf.Tensor, salt: int) -> tf.Tensor:
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        s = tf.cast(round_idx * self.replicas + rid, tf.int64)
        return tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(seed, s), salt)

    def _aug(self, images: tf.Tensor, p: tf.Tensor, round_idx: tf.Tensor, seed: tf.Tensor, salt: int) -> tf.Tensor:
        """The images as D sees them: augmented with probability `p` (unchanged with --aug noaug)."""
        if self.augment is None:
            return images
        return self.augment(images, p, self._seed(seed, round_idx, salt))

    def _g_main_replica(self, z, c, p, round_idx, seed):
        z, c = self._slice(z, round_idx), self._slice(c, round_idx)
        variables = self.G.trainable_variables
        with tf.GradientTape() as tape:
            fakes, ws = self.G(z, c, noise_mode="random", training=True, seed=self._seed(seed, round_idx, 1),
                               return_ws=True)
            scores = self.D(self._aug(fakes, p, round_idx, seed, 12), c, training=True,
                            seed=self._seed(seed, round_idx, 2))
            loss = tf.reduce_mean(losses.generator_loss(self.opts.g_loss, scores))
            scaled = _scaled(loss, self.g_scale)
        grads = tape.gradient(scaled, variables)
        grads = _dense_grads(grads, variables)
        w_mean = tf.reduce_mean(ws[:, :, 0], axis=[0, 1])
        return grads, {"G/loss": loss, "scores/fake_G": tf.reduce_mean(scores), "w_mean": w_mean}

    def _g_reg_replica(self, z, c, round_idx, seed):
        z, c = self._slice(z, round_idx), self._slice(c, round_idx)
        variables = self.G.trainable_variables
        with tf.GradientTape() as tape:
            ws = self.G.mapping(z, c, training=True, seed=self._seed(seed, round_idx, 11))  # attention dropout
            synth = lambda w: self.G.synthesis(w, noise_mode="random", training=True,  # noqa: E731
                                               seed=self._seed(seed, round_idx, 3))
            penalty, new_mean = losses.path_length_penalty(synth, ws, self.pl_mean,
                                                           seed=self._seed(seed, round_idx, 4))
            loss = tf.reduce_mean(penalty) * self.opts.pl_weight * self.opts.g_reg_interval
            scaled = _scaled(loss, self.g_scale)
        grads = tape.gradient(scaled, variables)
        grads = _dense_grads(grads, variables)
        return grads, {"G/pl_penalty": tf.reduce_mean(penalty), "pl_mean": new_mean}

    def _d_main_replica(self, z, c, reals, p, round_idx, seed):
        z, c, reals = self._slice(z, round_idx), self._slice(c, round_idx), self._slice(reals, round_idx)
        fakes = self.G(z, c, noise_mode="random", training=True, seed=self._seed(seed, round_idx, 5))
        reals, fakes = self._aug(_to_float(reals), p, round_idx, seed, 13), self._aug(fakes, p, round_idx, seed, 14)
        variables = self.D.trainable_variables
        with tf.GradientTape() as tape:
            real_scores = self.D(reals, c, training=True, seed=self._seed(seed, round_idx, 6))
            fake_scores = self.D(fakes, c, training=True, seed=self._seed(seed, round_idx, 7))
            loss = tf.reduce_mean(losses.discriminator_loss(self.opts.d_loss, real_scores, fake_scores))
            scaled = _scaled(loss, self.d_scale)
        grads = tape.gradient(scaled, variables)
        grads = _dense_grads(grads, variables)
        return grads, {"D/loss": loss, "scores/real": tf.reduce_mean(real_scores),
                       "scores/fake": tf.reduce_mean(fake_scores), "scores/real_sign": tf.reduce_mean(
                           tf.sign(real_scores))}

    def _d_reg_replica(self, z, c, reals, p, round_idx, seed):
        z, c, reals = self._slice(z, round_idx), self._slice(c, round_idx), self._slice(reals, round_idx)
        x = _to_float(reals)
        fakes = x
        if self.opts.d_reg in ("r2", "gp"):
            fakes = self.G(z, c, noise_mode="random", training=True, seed=self._seed(seed, round_idx, 8))
        variables = self.D.trainable_variables
        d_fn = lambda img: self.D(self._aug(img, p, round_idx, seed, 15), c, training=True,  # noqa: E731
                                  seed=self._seed(seed, round_idx, 9))
        with tf.GradientTape() as tape:
            reg, sq = losses.discriminator_reg(self.opts.d_reg, d_fn, x, fakes, self.opts.gamma,
                                               seed=self._seed(seed, round_idx, 10))
            loss = tf.reduce_mean(reg) * self.opts.d_reg_interval
            scaled = _scaled(loss, self.d_scale)
        grads = tape.gradient(scaled, variables)
        grads = _dense_grads(grads, variables)
        return grads, {"D/reg": tf.reduce_mean(reg), "D/grad_sq_norm": tf.reduce_mean(sq)}

    # ----------------------------------------------------------------------------------------- cross replica
    def _distributed(self, fn: Callable) -> Callable:
        """Runs `fn` on every replica and sums its gradients / averages its statistics across replicas.

        Everything a replica returns is packed into one flat vector, so each phase costs one all-reduce (and
        MultiWorkerMirroredStrategy's collectives see a single tensor).
        """
        strategy = self.strategy

        def run(*args):
            layout: dict[str, Any] = {}

            def packed(*inner):
                grads, stats = fn(*inner)
                layout["grads"] = [g.shape for g in grads]
                layout["stats"] = [(k, stats[k].shape) for k in sorted(stats)]
                parts = [tf.reshape(g, [-1]) for g in grads] + [tf.reshape(stats[k], [-1]) for k in sorted(stats)]
                return tf.concat(parts, axis=0)

            total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(packed, args=args), axis=None)
            sizes = [int(np.prod(s)) for s in layout["grads"]] + [int(np.prod(s)) for _, s in layout["stats"]]
            pieces = tf.split(total, sizes)
            n = len(layout["grads"])
            grads = [tf.reshape(p, s) for p, s in zip(pieces[:n], layout["grads"])]
            stats = {k: tf.reshape(p, s) / float(self.replicas) for (k, s), p in zip(layout["stats"], pieces[n:])}
            return grads, stats
        return run

    def _apply_fn(self, opt: Adam, loss_scale: Optional[LossScale] = None) -> Callable:
        clip = self.opts.clip

        def apply(grads):
            if self.slices > 1:  # (x / 1 == x: no op when there is one slice)
                n = tf.constant(float(self.slices))
                grads = [g / n for g in grads]
            if loss_scale is not None:
                grads = loss_scale.unscale(grads)
            norm = tf.linalg.global_norm(grads)
            finite = tf.math.is_finite(norm)
            if clip is not None:
                grads, _ = tf.clip_by_global_norm(grads, clip, use_norm=norm)
            # Non-finite gradients: the update is skipped (zeros would still move Adam's moments and step).
            tf.cond(finite, lambda: _apply_group(opt, grads), tf.no_op)
            if loss_scale is not None:  # after the sum over replicas: the same decision on every replica
                loss_scale.update(finite)
            return norm, finite
        return apply

    def _ema_update(self, beta: float):
        g_vars, s_vars = self.G.variable_dict(), self.Gs.variable_dict()
        for name, var in g_vars.items():
            target = s_vars[name]
            if var.trainable:
                target.assign(var + beta * (target - var))
            else:
                target.assign(var)

    # ------------------------------------------------------------------------------------------------ public
    def _phase(self, fn: Callable, seed: tf.Tensor, *args) -> tuple[list[tf.Tensor], dict[str, tf.Tensor]]:
        """Runs `fn(*args, round, seed)` for every accumulation round; sums gradients, averages statistics."""
        total, stats_sum = None, {}
        for r in range(self.rounds):
            grads, stats = fn(*args, tf.constant(r, tf.int32), seed)
            total = list(grads) if total is None else [a + b for a, b in zip(total, grads)]
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v / self.rounds
        return total, stats_sum

    def _phase_calls(self, reals: tf.TensorSpec, labels: Optional[tf.TensorSpec],
                     round_idx: Optional[int] = None) -> list[tuple[Callable, tuple]]:
        """(phase function, arguments) of every gradient phase the options run, for minibatches like `reals` (uint8
        `[batch_size, H, W, C]`) and `labels` (`[batch_size, label_dim]`, or None): argument specs, or with
        `round_idx` zero-valued tensors of those specs and that accumulation round."""
        K, d = self.G.latent_shape
        b = self.opts.batch_size
        specs = {"z": tf.TensorSpec([b, K, d], tf.float32),
                 "c": None if labels is None else tf.TensorSpec([b, *labels.shape[1:]], tf.float32),
                 "images": tf.TensorSpec([b, *reals.shape[1:]], reals.dtype), "p": tf.TensorSpec([], tf.float32),
                 "r": tf.TensorSpec([], tf.int32), "seed": tf.TensorSpec([2], tf.int64)}
        if round_idx is not None:
            specs = {k: None if v is None else tf.zeros(v.shape, v.dtype) for k, v in specs.items()}
            specs["r"] = tf.constant(round_idx, tf.int32)
        z, c, images, p, r, seed = (specs[k] for k in ("z", "c", "images", "p", "r", "seed"))
        calls: list[tuple[Callable, tuple]] = [(self._g_main, (z, c, p, r, seed))]
        if self.opts.pl_weight > 0:
            calls.append((self._g_reg, (z, c, r, seed)))
        calls.append((self._d_main, (z, c, images, p, r, seed)))
        if self.opts.d_reg != "non" and self.opts.gamma > 0:
            calls.append((self._d_reg, (z, c, images, p, r, seed)))
        return calls

    def trace(self, reals: tf.TensorSpec, labels: Optional[tf.TensorSpec]) -> None:
        """Traces every phase for minibatches like `reals` (uint8 `[batch_size, H, W, C]`) and `labels`
        (`[batch_size, label_dim]`, or None) without running anything.

        The XLA-compiled phases are named after a process-wide counter. Traced first thing, before anything else of
        the run traces a function, they get the same names in every process of the same configuration, which is
        what TensorFlow's persistent compilation cache (`--xla-cache`) needs to find their executables again on a
        resume or a rerun. Without XLA it traces them as well, so that `compile` only has their first calls left.
        With `--eager` it does nothing.
        """
        if self.opts.eager:
            return
        for fn, specs in self._phase_calls(reals, labels):
            fn.get_concrete_function(*specs)

    def compile(self, reals: tf.TensorSpec, labels: Optional[tf.TensorSpec]) -> None:
        """Makes the first call of every gradient phase at once, each in a thread of its own, before minibatch 0.

        A phase's first call is the expensive one: with XLA it compiles the phase (or loads it from `--xla-cache`),
        without XLA TensorFlow optimizes and instantiates its graph. Each keeps about one core busy, so making these
        calls side by side instead of one after the other at the first minibatch shortens the wait on a machine with
        spare cores. Each phase is run on zeros of the minibatch's shapes (with XLA once per accumulation round: the
        round is a compile-time constant); phases only compute gradients and statistics, which are dropped, so
        nothing of the training state changes. Only with one replica (collectives of several replicas must run in
        the same order everywhere); otherwise, and with `--eager`, it does nothing.
        """
        if self.opts.eager or self.replicas > 1:
            return
        rounds = self.rounds if self.opts.xla else 1
        calls = [call for r in range(rounds) for call in self._phase_calls(reals, labels, round_idx=r)]

        def run(call: tuple[Callable, tuple]) -> None:
            fn, args = call
            grads, _ = fn(*args)
            grads[0].numpy()  # wait for it

        with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="first-call") as pool:
            for future in [pool.submit(run, call) for call in calls]:
                future.result()

    def minibatch(self, reals: tf.Tensor, labels: Optional[tf.Tensor], step: int,
                  cur_nimg: Optional[int] = None) -> dict[str, tf.Tensor]:
        """Runs every phase of one minibatch `step` on `reals` (uint8 `[batch_size, H, W, C]`).

        Latents are drawn from a stateless RNG keyed by (seed, step), so a resumed run repeats them exactly.
        `cur_nimg` (images seen before this minibatch; default `step * batch_size`) sets the EMA ramp-up.
        Returns scalar statistics (losses, scores, gradient norms, skipped updates).
        """
        opts = self.opts
        K, d = self.G.latent_shape
        base = tf.constant([opts.seed, step], tf.int64)
        keys = tf.random.experimental.stateless_split(base, 4)
        z_g = tf.random.stateless_normal([opts.batch_size, K, d], keys[0])
        z_d = tf.random.stateless_normal([opts.batch_size, K, d], keys[1])
        c = None if labels is None else tf.cast(labels, tf.float32)
        p = tf.convert_to_tensor(self.aug_state.p)
        stats: dict[str, tf.Tensor] = {}
        grads, s = self._phase(self._g_main, keys[2], z_g, c, p)
        norm, finite = self._apply_g(grads)
        self.G.update_w_avg(s.pop("w_mean"))
        stats.update(s, **{"G/grad_norm": norm, "G/skipped": 1.0 - tf.cast(finite, tf.float32)})
        if opts.pl_weight > 0 and step % opts.g_reg_interval == 0:
            grads, s = self._phase(self._g_reg, keys[2], z_g, c)
            norm, _ = self._apply_g(grads)
            self.pl_mean.assign(s.pop("pl_mean"))
            stats.update(s, **{"G/reg_grad_norm": norm})
        grads, s = self._phase(self._d_main, keys[3], z_d, c, reals, p)
        norm, finite = self._apply_d(grads)
        stats.update(s, **{"D/grad_norm": norm, "D/skipped": 1.0 - tf.cast(finite, tf.float32)})
        if opts.aug == "ada":
            self._adapt_p(s["scores/real_sign"], step)
        if opts.d_reg != "non" and opts.gamma > 0 and step % opts.d_reg_interval == 0:
            grads, s = self._phase(self._d_reg, keys[3], z_d, c, reals, p)
            norm, _ = self._apply_d(grads)
            stats.update(s, **{"D/reg_grad_norm": norm})
        stats.update(self.loss_scale_stats())
        nimg = step * opts.batch_size if cur_nimg is None else cur_nimg
        beta = ema_beta(opts.batch_size, opts.ema_kimg, opts.ema_rampup, nimg)
        self._ema(tf.constant(beta, tf.float32))
        return stats

    def loss_scale_stats(self) -> dict[str, tf.Tensor]:
        """`LossScale/G`, `LossScale/D` (the scales now) and `LossScale/G_skipped`, `LossScale/D_skipped` (updates
        skipped for non-finite gradients since the run began, all phases); empty without loss scaling."""
        out: dict[str, tf.Tensor] = {}
        for net, state in (("G", self.g_scale), ("D", self.d_scale)):
            if state is not None:
                out[f"LossScale/{net}"] = tf.identity(state.scale)
                out[f"LossScale/{net}_skipped"] = tf.cast(state.skipped, tf.float32)
        return out

    def _adapt_p(self, mean_sign: tf.Tensor, step: int) -> None:
        """ADA: accumulates sign(D(reals)) of minibatch `step`; after every `ada_interval`-th minibatch moves p."""
        opts = self.opts
        self.aug_state.accumulate(mean_sign, opts.batch_size)
        if (step + 1) % opts.ada_interval == 0:
            self.aug_state.adjust(opts.target, ada_adjustment(opts.batch_size, opts.ada_interval, opts.ada_kimg))

    def augment_seconds(self, reals: Optional[tf.Tensor]) -> float:
        """Estimated seconds one minibatch spends augmenting (0 without augmentation): the augmentation of one slice
        of `reals` (uint8 `[>= batch_gpu, H, W, C]`) is timed (forward only, compiled like the steps; the first call
        compiles it untimed) and scaled to the slices D sees per minibatch (reals and fakes of D main, fakes of G
        main, and the R1 pass's share)."""
        if self.augment is None or reals is None:
            return 0.0
        x = reals[:self.opts.batch_gpu]
        p, seed = tf.convert_to_tensor(self.aug_state.p), tf.constant([self.opts.seed, -1], tf.int64)
        if self._probe is None:
            self._probe = self._wrap(lambda images, prob, s: self.augment(_to_float(images), prob, s))
            self._probe(x, p, seed).numpy()
        start = time.perf_counter()
        self._probe(x, p, seed).numpy()
        elapsed = time.perf_counter() - start
        reg = self.opts.d_reg != "non" and self.opts.gamma > 0
        return elapsed * self.slices * (3 + (1.0 / self.opts.d_reg_interval if reg else 0.0))


def _scaled(loss: tf.Tensor, loss_scale: Optional[LossScale]) -> tf.Tensor:
    """The loss to differentiate: `loss * S` with a loss scale, else `loss` itself."""
    return loss if loss_scale is None else loss_scale.scale_loss(loss)


def ema_beta(batch_size: int, ema_kimg: float, ema_rampup: Optional[float], cur_nimg: int) -> float:
    """The EMA coefficient of one minibatch: Gs <- G + beta * (Gs - G).

    The half-life is `ema_kimg` thousand images; with a ramp-up (StyleGAN2-ADA) it is
    `min(ema_kimg * 1000, ema_rampup * cur_nimg)` images, so early in training Gs follows G closely instead of
    averaging in the random initial weights (at `cur_nimg = 0`, beta = 0: Gs = G).

    Args:
        batch_size: Images per minibatch.
        ema_kimg: The half-life in kimg when fully ramped up.
        ema_rampup: Ramp-up ratio (None or 0: off, the original's fixed half-life).
        cur_nimg: Images seen before this minibatch.

    Returns:
        beta in [0, 1).
    """
    half_life = ema_kimg * 1000.0
    if ema_rampup:
        half_life = min(half_life, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(half_life, 1e-8))
