"""The training loop (after the authors' `training/training_loop.py`): strategy, data, G/D/Gs, optimizers, ticks,
checkpoints, snapshots, images, maps,
metrics and logs. Exact resume: the whole state lives in a `tf.train.Checkpoint`; latents and data order are pure
functions of (seed, minibatch index), so training 2T ticks equals training T, stopping, and training T more.
"""

from __future__ import annotations

import functools
import os
import signal
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dnnlib.disk import disk_full_as_user_error, format_bytes
from dnnlib.files import write_atomic
from dnnlib.tflib.ops.quantize import quantize_numpy
from metrics import attention_stats
from training.formats import networks as snapshot
from training.augment.ada import AugmentState
from training.formats.record import RunRecord
from training.formats.checkpoint import Progress, TrainCheckpoint, clean_leftovers, list_snapshots, snapshot_label
from training.config import DiscriminatorConfig, GeneratorConfig
from training.networks.discriminator import Discriminator
from training.networks.generator import Generator
from training.optimizer import Adam
from training.options import TrainingOptions
from training.steps import TrainingSteps
from training.train_log import StatsLog, peak_memory_gb, status_line
from training.vis.imageio import make_grid, save_png
from training.vis.palette import latent_palette, map_views
from training.vis.sampler import Sampler

# Samples of the attention-map grid and samples per row (each sample is four tiles: image, hard, blend, soft).
MAP_SAMPLES, MAP_COLUMNS = 16, 4

MetricsFn = Callable[..., Any]  # (Gs, snapshot_path, kimg, tb_writer=...) -> records


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes files (always true without multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().jobs)


class Trainer:
    """Owns the networks, optimizers, steps, data and logs of one run.

    Args:
        opts: Validated training options (`run_dir` must exist).
        g_cfg: Generator config.
        d_cfg: Discriminator config.
        dataset: An opened `training.data.loader.Dataset`.
        strategy: The distribution strategy (default: the no-op default strategy).
        metrics_fn: Called on the chief only (the other workers wait at their next step; the metrics generate
            on the chief's own replicas, as one process would) at snapshot ticks as
            `metrics_fn(Gs, snapshot_path, kimg, tb_writer=writer)` with the
            run's TensorBoard writer (None without --summarize), and with `missing_only=True` at kimg 0 and for a
            snapshot whose evaluation a stop interrupted (only the metrics without a result); None: no metrics.
    """

    def __init__(self, opts: TrainingOptions, g_cfg: GeneratorConfig, d_cfg: DiscriminatorConfig, dataset: Any,
                 strategy: Optional[tf.distribute.Strategy] = None, metrics_fn: Optional[MetricsFn] = None,
                 record: Optional[RunRecord] = None) -> None:
        self.opts, self.dataset, self.metrics_fn = opts, dataset, metrics_fn
        # what every snapshot and checkpoint carries (the command line passes the one it wrote to the run folder)
        self.record = record or RunRecord(G=g_cfg, D=d_cfg, training=opts.to_dict())
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = is_chief(self.strategy)
        opts.validate(self.strategy.num_replicas_in_sync)
        with self.strategy.scope():
            self.G = Generator(g_cfg, seed=opts.seed)
            self.D = Discriminator(d_cfg, seed=opts.seed + 1)
            self.Gs = Generator(g_cfg, seed=opts.seed)
            for src, dst in zip(self.G.variables, self.Gs.variables):
                dst.assign(src)
            # The lazy-regularization adjustment applies to both nets even without a regularizer (as the authors' code).
            self.g_opt = Adam(self.G.trainable_variables, opts.g_lr, reg_interval=opts.g_reg_interval, name="g_opt")
            self.d_opt = Adam(self.D.trainable_variables, opts.d_lr, reg_interval=opts.d_reg_interval, name="d_opt")
            self.progress = Progress()
            self.aug_state = AugmentState(opts.p)
        ckpt_dir = opts.run_dir if self.chief else tempfile.mkdtemp(prefix="ganformer-worker-")
        self.ckpt = TrainCheckpoint(ckpt_dir, max_to_keep=3, G=self.G, D=self.D, Gs=self.Gs, g_opt=self.g_opt,
                                    d_opt=self.d_opt, progress=self.progress, augment=self.aug_state,
                                    optional=("augment",), run_record=self.record.to_json())
        self.steps = TrainingSteps(self.G, self.D, self.Gs, self.g_opt, self.d_opt, opts, self.strategy,
                                   self.progress.pl_mean, aug_state=self.aug_state)
        self.log = StatsLog(opts.run_dir, tensorboard=opts.summarize, enabled=self.chief)
        if metrics_fn is not None:  # metric values go to TensorBoard too, next to the training scalars
            self.metrics_fn = functools.partial(metrics_fn, tb_writer=self.log.writer)
        self._stop = False
        self._evaluating = False  # a SIGTERM now interrupts the evaluation (the resumed run redoes it)
        self._abandoned = False  # an evaluation was stopped by SIGTERM (the run is not finished)
        self._stop_announced = False
        self._last_reals: Optional[tf.Tensor] = None
        self._restored = False
        self._stopped_on_snapshot = False
        self._probers: dict[str, attention_stats.Prober] = {}

    # ------------------------------------------------------------------------------------------------ state
    def restore_or_init(self) -> str:
        """Resumes from the newest checkpoint of the run, else loads `pretrained_pkl` weights; returns a message."""
        path = self.ckpt.restore_latest()
        self._restored = bool(path)
        if self.opts.aug == "fixed":  # a constant p, whatever an earlier run of this checkpoint used
            self.aug_state.p.assign(self.opts.p)
        if path:
            return f"Resuming from {path} at {self.progress.kimg:.3f} kimg"
        if self.opts.pretrained_pkl:
            nets = snapshot.load_networks(self.opts.pretrained_pkl, self.opts.cache_dir)
            for ours, theirs in ((self.G, nets.G), (self.D, nets.D), (self.Gs, nets.Gs)):
                copied = _copy_matching(theirs, ours)
                print(f"Copied {copied}/{len(ours.variable_dict())} variables into {type(ours).__name__} "
                      f"from {self.opts.pretrained_pkl}")
            return f"Fine-tuning from {self.opts.pretrained_pkl}"
        return "Starting from scratch"

    def _pipeline(self) -> tf.data.Dataset:
        return self.dataset.tf_dataset(self.opts.batch_size, shuffle=True, repeat=True, seed=self.opts.seed,
                                       mirror=self.opts.mirror_augment, num_parallel_reads=self.opts.num_threads)

    def _data_iterator(self):
        ds = self._pipeline()
        skip = int(self.progress.data_batches.numpy())
        return iter(ds.skip(skip) if skip else ds)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Sets the stop flag, and abandons a running evaluation. It prints nothing: a handler that writes to the
        console can interrupt another write to it (a reentrant-write error, or a deadlock on the log's lock); the
        loop says what happens (see `_announce_stop`)."""
        self._stop = True
        if self._evaluating:  # an evaluation can take many minutes: stop it rather than outlive a pre-emption
            self._evaluating = False
            raise EvaluationInterrupted()

    def _announce_stop(self) -> None:
        """Prints, once, that a SIGTERM arrived and the run stops after writing a checkpoint."""
        if self._stop and not self._stop_announced:
            self._stop_announced = True
            print("SIGTERM received: writing a checkpoint and stopping after this minibatch", flush=True)

    def _evaluate(self, path: str, kimg: float, **kwargs: Any) -> None:
        """Runs the metrics of the snapshot at `path`; a SIGTERM meanwhile abandons them (see `_on_sigterm`)."""
        self._evaluating = True
        try:
            self.metrics_fn(self.Gs, path, kimg, **kwargs)
        except EvaluationInterrupted:
            self._abandoned = self._stop_announced = True
            print("SIGTERM received during an evaluation: stopped it (the resumed run evaluates this snapshot)",
                  flush=True)
        finally:
            self._evaluating = False

    # -------------------------------------------------------------------------------------------- the loop
    def run(self) -> None:
        """Trains until `total_kimg` (or `max_ticks` ticks, or SIGTERM).

        Raises:
            UserError: The disk is full (checkpoints and snapshots say so themselves; this covers the other outputs).
        """
        state = self.ckpt.state_bytes()
        with disk_full_as_user_error("the run's outputs", self.opts.run_dir, None,
                                     f"the checkpoints are intact; the next checkpoint and snapshot need about "
                                     f"{format_bytes(state + state // 2)}: free space and rerun to resume"):
            self._run()

    def _run(self) -> None:
        opts = self.opts
        # The steps are traced first of all, before the restore (which traces functions of its own) and the kimg-0
        # outputs, so that they get the same names in a fresh and a resumed process: see `TrainingSteps.trace`.
        spec = self._pipeline().element_spec
        specs = spec if isinstance(spec, tuple) else (spec, None)  # (reals, labels)
        self.steps.trace(*specs)
        self._resume()
        total_nimg = int(opts.total_kimg * 1000)
        reached = int(self.progress.cur_nimg.numpy()) >= total_nimg  # killed after the last checkpoint
        if not reached:
            self.steps.compile(*specs)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if _main_thread() else None
        try:
            if reached:
                print(f"Training already reached {self.progress.kimg:.3f} of {opts.total_kimg:g} kimg: evaluating "
                      f"what the last snapshot misses and writing the final network only", flush=True)
                self._finish_interrupted_metrics()
            else:
                self._loop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        # an abandoned evaluation of the last snapshot is done by the rerun, so the run is not finished yet
        if self.chief and int(self.progress.cur_nimg.numpy()) >= total_nimg and not self._abandoned:
            self.save_snapshot(os.path.join(opts.run_dir, "network-final.pkl"))
            write_atomic(os.path.join(opts.run_dir, "_finished.txt"), "done\n")

    def _resume(self) -> None:
        """Removes the leftovers of a killed run, restores its state and drops the stats logged after that state."""
        if self.chief:
            removed = clean_leftovers(self.opts.run_dir)
            if removed:
                print(f"Removed {len(removed)} leftover(s) of an interrupted run: "
                      f"{', '.join(os.path.relpath(p, self.opts.run_dir) for p in removed)}")
        print(self.restore_or_init(), flush=True)
        # nothing restored: the run starts afresh and logs kimg 0 again, so every earlier summary goes
        nimg = int(self.progress.cur_nimg.numpy()) if self._restored else -1
        dropped = self.log.truncate(int(self.progress.tick.numpy()), nimg)
        if dropped:
            print(f"{self.log.path}: dropped {dropped} line(s) written after the checkpoint or torn by a kill")

    def _loop(self) -> None:
        opts, prog = self.opts, self.progress
        it = self._data_iterator()
        if self.chief and not os.path.exists(os.path.join(opts.run_dir, "reals.png")):
            self.write_reals()
        if not self._restored:
            self._initial_outputs()
        else:
            self._finish_interrupted_metrics()
        self._announce_stop()
        if self._stop:  # stopped in the kimg-0 outputs (a rerun starts afresh) or in a resumed evaluation (redone)
            return
        with tqdm(total=opts.total_kimg, initial=prog.kimg, unit="kimg", disable=not self.chief,
                  bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} kimg [{elapsed}<{remaining}]") as bar:
            self._train_ticks(it, bar)  # the bar is closed on any exit (an open bar garbles later output)

    def _train_ticks(self, it: Any, bar: tqdm) -> None:
        """Trains minibatches from `it` until the run is done, stopped or at --max-ticks (ends a tick each time)."""
        opts, prog = self.opts, self.progress
        total_nimg = int(opts.total_kimg * 1000)
        tick_start_nimg, tick_start_time, start_time = int(prog.cur_nimg.numpy()), time.time(), time.time()
        tick_len = int(round(opts.kimg_per_tick * 1000))
        ticks_run = 0
        while True:
            batch = next(it)
            reals, labels = batch if isinstance(batch, tuple) else (batch, None)
            self._last_reals = reals
            stats = self.steps.minibatch(reals, labels, step=int(prog.minibatch.numpy()),
                                         cur_nimg=int(prog.cur_nimg.numpy()))
            self.log.add(stats)
            prog.minibatch.assign_add(1)
            prog.data_batches.assign_add(1)
            prog.cur_nimg.assign_add(opts.batch_size)
            nimg = int(prog.cur_nimg.numpy())
            bar.n = min(nimg, total_nimg) / 1000.0  # from the image count: summed floats drift past the total
            bar.update(0)
            done = nimg >= total_nimg
            self._announce_stop()
            if self._stop and not done and nimg < tick_end(tick_start_nimg, tick_len):
                self.ckpt.save(int(prog.minibatch.numpy()))  # pre-empted mid-tick: state only, resumed exactly
                break
            if nimg < tick_end(tick_start_nimg, tick_len) and not done:
                continue
            now = time.time()
            record = self._end_tick(nimg, tick_start_nimg, now - tick_start_time, now - start_time)
            if self.chief:
                bar.write(status_line(record, opts.total_kimg))
            ticks_run += 1
            tick = int(prog.tick.numpy())
            prog.tick.assign_add(1)  # before the outputs: their checkpoint records the ticks done
            self._tick_outputs(done, tick)
            tick_start_nimg, tick_start_time = nimg, time.time()
            self._announce_stop()
            if done or self._stop or (opts.max_ticks is not None and ticks_run >= opts.max_ticks):
                if not self._stopped_on_snapshot:
                    self.ckpt.save(int(prog.minibatch.numpy()))
                break

    def _end_tick(self, nimg: int, tick_start: int, tick_time: float, total_time: float) -> dict[str, float]:
        kimg_done = max((nimg - tick_start) / 1000.0, 1e-8)
        extra = {"Progress/tick": float(self.progress.tick.numpy()), "Progress/kimg": nimg / 1000.0,
                 "Timing/sec_per_tick": tick_time, "Timing/sec_per_kimg": tick_time / kimg_done,
                 "Timing/total_sec": total_time, "Timing/total_hours": total_time / 3600.0,
                 "Resources/peak_mem_gb": peak_memory_gb()}
        if self.opts.aug in ("ada", "fixed"):
            extra["Augment/p"] = float(self.aug_state.p.numpy())
        if self.steps.augment is not None:
            extra["Timing/augment_sec_per_step"] = self.steps.augment_seconds(self._last_reals)
        tick = int(self.progress.tick.numpy())
        if tick % self.opts.maps_snapshot_ticks == 0 or nimg >= int(self.opts.total_kimg * 1000):
            extra.update(self.attention_stats())
        return self.log.flush(extra, step=nimg)

    def attention_stats(self) -> dict[str, float]:
        """`Attention/<G|Gs>/...` diagnostics (`metrics.attention_stats.summarize`) of both generators on fixed
        latents; empty without attention, off the chief or with `--attention-stats false`. Logged on the ticks that
        draw attention maps."""
        if not self.chief or not self.G.cfg.transformer or not self.opts.attention_stats:
            return {}
        out = {}
        for name, net in (("G", self.G), ("Gs", self.Gs)):
            if name not in self._probers:
                self._probers[name] = attention_stats.Prober(net, num_images=8, seed=self.opts.seed)
            out.update({f"Attention/{name}/{key}": value
                        for key, value in attention_stats.summarize_batches(self._probers[name]).items()})
        return out

    def _tick_outputs(self, done: bool, tick: int) -> None:
        opts = self.opts
        kimg = self.progress.kimg
        self._stopped_on_snapshot = False
        if self.chief and (tick % opts.img_snapshot_ticks == 0 or done):
            self.write_fakes(kimg)
        if self.chief and self.G.cfg.transformer and (tick % opts.maps_snapshot_ticks == 0 or done):
            self.write_maps(kimg)
        if tick % opts.network_snapshot_ticks == 0 or done or self._stop:
            self.ckpt.save(int(self.progress.minibatch.numpy()))
            self._stopped_on_snapshot = True
            if self.chief:
                path = os.path.join(opts.run_dir, f"network-snapshot-{snapshot_label(kimg)}.pkl")
                self.save_snapshot(path)
                self._prune_snapshots()
                if self.metrics_fn is not None:
                    self._evaluate(path, kimg)

    def _initial_outputs(self) -> None:
        """Samples, maps, a snapshot and the metrics of the untrained networks (kimg 0): the baseline of every curve."""
        if not self.chief:
            return
        self.write_fakes(0.0)
        if self.G.cfg.transformer:
            self.write_maps(0.0)
        if self.metrics_fn is not None:
            path = os.path.join(self.opts.run_dir, f"network-snapshot-{snapshot_label(0.0)}.pkl")
            self.save_snapshot(path)
            self._evaluate(path, 0.0, missing_only=True)  # only a stopped first attempt recorded any
            if not self._stop:
                self.ckpt.save(int(self.progress.minibatch.numpy()))  # a kill from here on does not repeat them

    def _finish_interrupted_metrics(self) -> None:
        """Evaluates the metrics a kill interrupted: the checkpoint of a snapshot tick is written before the snapshot
        and its metrics, so a run resumed there has the snapshot of its current kimg, maybe without results."""
        path = os.path.join(self.opts.run_dir, f"network-snapshot-{snapshot_label(self.progress.kimg)}.pkl")
        if self.chief and self.metrics_fn is not None and os.path.isfile(path):
            self._evaluate(path, self.progress.kimg, missing_only=True)

    # ----------------------------------------------------------------------------------------------- outputs
    def save_snapshot(self, path: str) -> None:
        """Writes the portable data-only network file."""
        snapshot.save_networks(path, self.G, self.D, self.Gs, {"kimg": self.progress.kimg,
                                                               "run_record": self.record.to_json()})

    def _prune_snapshots(self) -> None:
        keep = self.opts.last_snapshots
        if keep > 0:
            for old in list_snapshots(self.opts.run_dir)[:-keep]:  # by kimg: old names sort before new ones
                os.remove(old)

    def _grid_latents(self) -> np.ndarray:
        n = self.opts.grid_size[0] * self.opts.grid_size[1]
        return np.random.RandomState(self.opts.seed).randn(n, *self.G.latent_shape).astype(np.float32)

    def _grid_labels(self, n: int) -> Optional[np.ndarray]:
        if not self.G.label_dim:
            return None
        return np.eye(self.G.label_dim, dtype=np.float32)[np.arange(n) % self.G.label_dim]

    def write_reals(self) -> None:
        """`reals.png`: a grid of real training images."""
        n = self.opts.grid_size[0] * self.opts.grid_size[1]
        batch = next(iter(self.dataset.tf_dataset(n, shuffle=True, repeat=True, seed=self.opts.seed)))
        images = batch[0] if isinstance(batch, tuple) else batch
        grid = make_grid(images.numpy(), cols=self.opts.grid_size[0])
        save_png(os.path.join(self.opts.run_dir, "reals.png"), grid)
        self.log.image("reals", grid, step=0)

    def write_fakes(self, kimg: float) -> None:
        """`visuals/images/<kimg>.png`: Gs on fixed latents (stored noise, ψ from the G config)."""
        z = self._grid_latents()
        images = self.Gs(z, self._grid_labels(len(z)), truncation_psi=self.G.cfg.truncation_psi, noise_mode="const")
        grid = make_grid(quantize_numpy(images.numpy()), cols=self.opts.grid_size[0])
        self._save_grid("images", kimg, grid)
        self.log.image("fakes", grid, step=int(kimg * 1000))

    def write_maps(self, kimg: float) -> None:
        """`visuals/maps/<kimg>.png`: for the first `MAP_SAMPLES` grid samples, the image | the hard map (the winning
        latent's colour) | the hard map blended over the image | the soft map, of the last attention layer (heads
        averaged), `MAP_COLUMNS` samples a row."""
        z = self._grid_latents()[:MAP_SAMPLES]
        res = Sampler(self.Gs, batch_size=MAP_SAMPLES, noise_mode="const").generate(
            z, self._grid_labels(len(z)), psi=self.G.cfg.truncation_psi, maps="last")
        probs = res["maps"].mean(axis=2)  # [B, k, H, W]: last layer, heads averaged
        views = map_views(probs, res["images"], latent_palette(probs.shape[1]))
        tiles = np.concatenate([res["images"], views["maps"], views["blends"], views["softmaps"]], axis=2)
        grid = make_grid(tiles, cols=MAP_COLUMNS, pad=2)
        self._save_grid("maps", kimg, grid)
        self.log.image("attention_maps", grid, step=int(kimg * 1000))

    def _save_grid(self, kind: str, kimg: float, grid: np.ndarray) -> None:
        """Writes `visuals/<kind>/<kimg>.png`; without --keep-samples, removes the older grids of that folder."""
        folder = os.path.join(self.opts.run_dir, "visuals", kind)
        name = f"{snapshot_label(kimg)}.png"
        save_png(os.path.join(folder, name), grid)
        if not self.opts.keep_samples:
            for old in os.listdir(folder):
                if old.endswith(".png") and old != name:
                    os.remove(os.path.join(folder, old))


class EvaluationInterrupted(Exception):
    """Raised by the SIGTERM handler inside an evaluation to abandon it (the checkpoint is already written)."""


def tick_end(tick_start_nimg: int, tick_len: int) -> int:
    """Images seen at which a tick that began at `tick_start_nimg` ends: the next multiple of the tick length, so
    ticks (and the snapshots and metrics at their ends) fall on the same kimg grid however a run was interrupted."""
    return (tick_start_nimg // tick_len + 1) * tick_len


def _copy_matching(src: Any, dst: Any) -> int:
    """Copies every same-name, same-shape variable from `src` to `dst`; returns the count."""
    theirs = src.variable_dict()
    copied = 0
    for name, var in dst.variable_dict().items():
        if name in theirs and tuple(theirs[name].shape) == tuple(var.shape):
            var.assign(theirs[name])
            copied += 1
    return copied


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()

