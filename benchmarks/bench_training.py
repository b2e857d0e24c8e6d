"""Training speed on this machine: seconds per step, img/s and achieved GFLOP/s of a full training step
(G main + D main + the R1 step amortized over its 16-minibatch interval), default GANformer vs StyleGAN2.

Usage: python benchmarks/bench_training.py [--resolutions 32 64] [--batch 8] [--steps 4] [--no-xla]

FLOPs come from TensorFlow's graph profiler on one plain graph of the same computation (forward and backward,
float operations of every op), so "achieved GFLOP/s" = counted FLOPs / measured seconds. Both presets are built
and compiled first, then timed in alternation step by step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training import loss as losses  # noqa: E402
from training.checkpoint import Progress  # noqa: E402
from training.networks import build_networks  # noqa: E402
from training.optimizer import Adam  # noqa: E402
from training.options import TrainingOptions  # noqa: E402
from training.steps import TrainingSteps  # noqa: E402


def count_flops(G, D, batch: int, r1: bool) -> float:
    """Float operations of G main + D main (+ one R1 step) for one minibatch, from the graph profiler."""
    K, d = G.latent_shape
    res = G.resolution

    def step(z, reals):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.generator_loss("logistic_ns", D(G(z, training=True), training=True)))
        g_grads = tape.gradient(loss, G.trainable_variables)
        fakes = G(z, training=True)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.discriminator_loss("logistic", D(reals, training=True),
                                                            D(fakes, training=True)))
        out = [g_grads, tape.gradient(loss, D.trainable_variables)]
        if r1:
            with tf.GradientTape() as tape:
                reg, _ = losses.discriminator_reg("r1", lambda x: D(x, training=True), reals, fakes, 10.0)
            out.append(tape.gradient(tf.reduce_mean(reg), D.trainable_variables))
        return out

    fn = tf.function(step, autograph=False).get_concrete_function(
        tf.TensorSpec([batch, K, d]), tf.TensorSpec([batch, res, res, 3]))
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(fn.graph, options=opts)
    return float(prof.total_float_ops)


def compiled_steps(preset: str, res: int, batch: int, xla: bool) -> tuple[Callable[[int], float], float]:
    """Builds and warms up the training step of a preset; returns (timer of one minibatch index, FLOPs/amortized step)."""
    G, D = build_networks(preset, res, mbstd_group_size=4)
    Gs, _ = build_networks(preset, res)
    opts = TrainingOptions(run_dir=tempfile.mkdtemp(), batch_size=batch, batch_gpu=batch, xla=xla, metrics=[])
    steps_fn = TrainingSteps(G, D, Gs, Adam(G.trainable_variables, reg_interval=None),
                             Adam(D.trainable_variables, reg_interval=16), opts, tf.distribute.get_strategy(),
                             Progress().pl_mean)
    reals = tf.constant(np.random.default_rng(0).integers(0, 255, (batch, res, res, 3)), tf.uint8)
    for s in (1, 16):  # warm-up / compile both kinds of step
        steps_fn.minibatch(reals, None, s)

    def timed(step_idx: int) -> float:
        t0 = time.perf_counter()
        stats = steps_fn.minibatch(reals, None, step_idx)
        float(stats["D/loss"])
        return time.perf_counter() - t0

    flops = count_flops(G, D, batch, False) * 15 / 16 + count_flops(G, D, batch, True) / 16
    return timed, flops


def time_interleaved(timers: Sequence[Callable[[int], float]], steps: int) -> list[tuple[float, float]]:
    """(median s per plain step, median s per R1 step) of each timer, alternating between them at every step so a
    change in machine load affects all of them alike."""
    plain: list[list[float]] = [[] for _ in timers]
    with_r1: list[list[float]] = [[] for _ in timers]
    for i in range(steps):
        for timer, record in zip(timers, plain):
            record.append(timer(1 + i))
    for i in range(max(1, steps // 2)):
        for timer, record in zip(timers, with_r1):
            record.append(timer(16 * (i + 2)))
    return [(statistics.median(p), statistics.median(r)) for p, r in zip(plain, with_r1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--no-xla", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU threads, batch {args.batch}, "
          f"XLA {'off' if args.no_xla else 'on'}")
    print(f"{'preset':>16} {'res':>4} {'s/step':>8} {'s/R1 step':>10} {'amortized s':>12} {'img/s':>7} "
          f"{'TFLOP/step':>11} {'GFLOP/s':>8}")
    for res in args.resolutions:
        presets = ("ganformer-ffhq", "stylegan2")
        built = [compiled_steps(preset, res, args.batch, not args.no_xla) for preset in presets]
        times = time_interleaved([timer for timer, _ in built], args.steps)
        amortized = [plain * 15 / 16 + r1 / 16 for plain, r1 in times]
        for preset, (_, flops), (plain, r1), am in zip(presets, built, times, amortized):
            print(f"{preset:>16} {res:>4} {plain:>8.2f} {r1:>10.2f} {am:>12.2f} "
                  f"{args.batch / am:>7.2f} {flops / 1e12:>11.3f} {flops / am / 1e9:>8.1f}", flush=True)
        print(f"{'GANformer/StyleGAN2':>21} at {res}: {amortized[0] / amortized[1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
