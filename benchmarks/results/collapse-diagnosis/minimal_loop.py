"""Bisection tool: trains our G and D with a minimal hand-written loop that bypasses training/steps.py and
training/training_loop.py (non-saturating logistic loss, lazy R1 every 16 minibatches, our Adam with its lazy
ratios, no EMA, no style-mixing bookkeeping beyond what G does itself, no augmentation).

If a model collapses here as it does under run_network.py, the cause is not in the training step or loop code.

Usage (from the repository root):
    python3 benchmarks/results/collapse-diagnosis/minimal_loop.py gan 32 6 out.png --data datasets/shapes

Prints, every 2 kimg, the diversity of 32 samples from fixed latents (per-pixel std across the batch, averaged;
the real shapes images give 0.242) and writes one row of 8 samples per 2 kimg to `out.png`.
"""
import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import Image

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from training.data.loader import open_dataset  # noqa: E402
from training.networks import build_networks  # noqa: E402
from training.optimizer import Adam  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("preset")
    p.add_argument("channel_max", type=int)
    p.add_argument("kimg", type=float)
    p.add_argument("out")
    p.add_argument("--data", default="datasets/shapes")
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--gamma", type=float, default=0.0128)
    a = p.parse_args()
    B = 16
    G, D = build_networks(a.preset, 32, seed=1000, channel_max=a.channel_max)
    g_opt = Adam(G.trainable_variables, a.lr, reg_interval=4)
    d_opt = Adam(D.trainable_variables, a.lr, reg_interval=16)
    it = iter(open_dataset(a.data).tf_dataset(B, shuffle=True, repeat=True, seed=1, mirror=False,
                                              num_parallel_reads=2))
    K, d = G.latent_shape

    @tf.function(jit_compile=True)
    def step(reals, z1, z2):
        with tf.GradientTape() as t:
            gl = tf.reduce_mean(tf.nn.softplus(-D(G(z1, None, noise_mode="random", training=True), None,
                                                  training=True)))
        g_opt.apply(t.gradient(gl, G.trainable_variables))
        fakes = G(z2, None, noise_mode="random", training=True)
        with tf.GradientTape() as t:
            rs, fs = D(reals, None, training=True), D(fakes, None, training=True)
            dl = tf.reduce_mean(tf.nn.softplus(fs) + tf.nn.softplus(-rs))
        d_opt.apply(t.gradient(dl, D.trainable_variables))
        return gl, dl, tf.reduce_mean(rs), tf.reduce_mean(fs)

    @tf.function(jit_compile=True)
    def r1_step(reals):
        with tf.GradientTape() as t:
            with tf.GradientTape() as t2:
                t2.watch(reals)
                s = tf.reduce_sum(D(reals, None, training=True))
            pen = tf.reduce_mean(tf.reduce_sum(tf.square(t2.gradient(s, reals)), [1, 2, 3])) * a.gamma * 0.5 * 16
        d_opt.apply(t.gradient(pen, D.trainable_variables))

    zfix = tf.random.stateless_normal([8, K, d], [5, 6])
    rows, steps, t0 = [], int(a.kimg * 1000 / B), time.time()
    for i in range(steps + 1):
        if i % int(2000 / B) == 0:
            x = G(zfix, None, noise_mode="const").numpy()
            rows.append(np.concatenate(list(np.clip((x + 1) * 127.5, 0, 255).astype(np.uint8)), axis=1))
            xs = G(tf.random.stateless_normal([32, K, d], [1, 2]), None, noise_mode="const").numpy()
            print(f"kimg {i * B / 1000:.1f} diversity {xs.std(0).mean():.3f} t {time.time() - t0:.0f}s", flush=True)
        if i == steps:
            break
        reals = tf.cast(next(it), tf.float32) / 127.5 - 1
        z = tf.random.normal([2, B, K, d])
        gl, dl, rs, fs = step(reals, z[0], z[1])
        if i % 16 == 0:
            r1_step(reals)
        if i % 50 == 0:
            print(f"step {i} G {float(gl):.3f} D {float(dl):.3f} real {float(rs):.3f} fake {float(fs):.3f}")
    g = np.concatenate(rows, 0)
    Image.fromarray(g).resize((g.shape[1] * 3, g.shape[0] * 3), Image.NEAREST).save(a.out)


if __name__ == "__main__":
    main()
