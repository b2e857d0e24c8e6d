"""Bisection: train our G/D with a minimal hand-written loop (no training/steps.py, no training_loop.py)."""
import sys, time, numpy as np, tensorflow as tf
sys.path.insert(0, '/work/main')
from training.networks import build_networks
from training.optimizer import Adam
from training.dataset import open_dataset
from PIL import Image
preset, ch, kimg, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lr = float(sys.argv[5]) if len(sys.argv) > 5 else 0.002
B, gamma = 16, 0.0128
G, D = build_networks(preset, 32, seed=1000, channel_max=ch)
g_opt = Adam(G.trainable_variables, lr, reg_interval=4); d_opt = Adam(D.trainable_variables, lr, reg_interval=16)
ds = open_dataset('/tmp/study/datasets/shapes')
it = iter(ds.tf_dataset(B, shuffle=True, repeat=True, seed=1, mirror=False, num_parallel_reads=2))
K, d = G.latent_shape

@tf.function(jit_compile=True)
def step(reals, z1, z2, do_r1):
    with tf.GradientTape() as t:
        f = G(z1, None, noise_mode="random", training=True)
        gl = tf.reduce_mean(tf.nn.softplus(-D(f, None, training=True)))
    g_opt.apply(t.gradient(gl, G.trainable_variables))
    f = G(z2, None, noise_mode="random", training=True)
    with tf.GradientTape() as t:
        rs, fs = D(reals, None, training=True), D(f, None, training=True)
        dl = tf.reduce_mean(tf.nn.softplus(fs) + tf.nn.softplus(-rs))
    d_opt.apply(t.gradient(dl, D.trainable_variables))
    return gl, dl, tf.reduce_mean(rs), tf.reduce_mean(fs)

@tf.function(jit_compile=True)
def r1_step(reals):
    with tf.GradientTape() as t:
        with tf.GradientTape() as t2:
            t2.watch(reals)
            s = tf.reduce_sum(D(reals, None, training=True))
        g = t2.gradient(s, reals)
        pen = tf.reduce_mean(tf.reduce_sum(tf.square(g), [1, 2, 3])) * gamma * 0.5 * 16
    d_opt.apply(t.gradient(pen, D.trainable_variables))

zfix = tf.random.stateless_normal([8, K, d], [5, 6])
rows = []
steps = int(kimg * 1000 / B)
t0 = time.time()
for i in range(steps + 1):
    if i % int(2000 / B) == 0:
        x = G(zfix, None, noise_mode="const").numpy()
        rows.append(np.concatenate(list(np.clip((x + 1) * 127.5, 0, 255).astype(np.uint8)), axis=1))
        xs = G(tf.random.stateless_normal([32, K, d], [1, 2]), None, noise_mode="const").numpy()
        print(f"kimg {i*B/1000:.1f} div(std over batch) {xs.std(0).mean():.3f} t {time.time()-t0:.0f}s", flush=True)
    if i == steps:
        break
    b = next(it); reals = tf.cast(b, tf.float32) / 127.5 - 1
    z = tf.random.normal([2, B, K, d])
    gl, dl, rs, fs = step(reals, z[0], z[1], False)
    if i % 16 == 0:
        r1_step(reals)
    if i % 50 == 0:
        print(f"step {i} G {float(gl):.3f} D {float(dl):.3f} real {float(rs):.3f} fake {float(fs):.3f}", flush=True)
g = np.concatenate(rows, 0)
Image.fromarray(g).resize((g.shape[1] * 3, g.shape[0] * 3), Image.NEAREST).save(out)
