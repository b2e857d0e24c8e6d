"""Shared helpers of the training tests: a tiny shapes dataset, tiny network options, in-process trainers and
training steps on tiny networks, a tiny snapshot file and in-process `generate.py`."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A GANformer small enough to train a tick in seconds on CPU.
TINY_FLAGS = ["--resolution", "16", "--channel-max", "16", "--components-num", "2", "--latent-size", "16",
              "--batch-size", "4", "--batch-gpu", "4", "--kimg-per-tick", "0.008", "--metrics", "none",
              "--summarize", "true", "--img-snapshot-ticks", "1", "--maps-snapshot-ticks", "1",
              "--network-snapshot-ticks", "1", "--attention-stats", "false"]


def make_shapes(data_dir: str, count: int = 32, resolution: int = 16) -> str:
    """Writes the built-in shapes dataset into `data_dir/shapes` (through the real CLI); returns its path."""
    from prepare_data import main as prepare
    rc = prepare(["--shapes", "--resolution", str(resolution), "--max-images", str(count), "--data-dir", data_dir])
    assert rc in (0, None)
    return os.path.join(data_dir, "shapes")


def run_cli(args: list[str], cwd: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs `python run_network.py ARGS` in a subprocess."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_network.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def read_scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars of a run read back from its event files: tag -> [(step, value), ...] in write order."""
    import tensorflow as tf
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return out


STYLEGAN2_TICK_KIMG = 0.004  # `stylegan2_trainer`'s tick: one minibatch of 4 images
TINY_SNAPSHOT = dict(channel_max=16, components_num=2, latent_dim=8)  # `save_tiny_snapshot`'s networks: 8x8, z [3, 8]


def make_trainer(run_dir: str, data_dir: str, preset: str = "ganformer-ffhq", strategy=None, **train_kw):
    """A `Trainer` of tiny `preset` networks on `data_dir/shapes` (16x16; two ticks of one minibatch of 4, eager,
    no metrics); `train_kw` overrides the `TrainingOptions` fields."""
    from training.data.loader import open_dataset
    from training.options import TrainingOptions
    from training.presets import configs_from_options, preset_options
    from training.training_loop import Trainer
    ds = open_dataset(os.path.join(data_dir, "shapes"))
    batch_gpu = train_kw.get("batch_gpu", 4)
    options = preset_options(preset)
    options.update(channel_max=16, components_num=2, latent_size=16, mbstd_group_size=min(4, batch_gpu),
                   merge_layer=3)
    if preset in ("stylegan2", "gan", "sagan"):
        options.update(components_num=1, latent_size=16)
    g, d = configs_from_options(options, ds.resolution)
    kw = dict(run_dir=run_dir, dataset="shapes", batch_size=4, batch_gpu=4, total_kimg=0.016, kimg_per_tick=0.008,
              img_snapshot_ticks=1, network_snapshot_ticks=1, maps_snapshot_ticks=1, metrics=[], eager=True,
              summarize=False, seed=7, attention_stats=False)
    kw.update(train_kw)
    os.makedirs(run_dir, exist_ok=True)
    return Trainer(TrainingOptions(**kw), g, d, ds, strategy=strategy)


def stylegan2_trainer(run_dir: str, data_dir: str, **kw):
    """`make_trainer` of the StyleGAN2 preset with one minibatch per tick, three ticks unless `total_kimg` says."""
    kw.setdefault("total_kimg", 3 * STYLEGAN2_TICK_KIMG)
    return make_trainer(run_dir, data_dir, preset="stylegan2", kimg_per_tick=STYLEGAN2_TICK_KIMG, **kw)


def trainer_weights(trainer) -> dict:
    """Every variable of G, D and Gs as numpy arrays: `"<G|D|Gs>/<name>" -> array`."""
    out = {}
    for name, net in (("G", trainer.G), ("D", trainer.D), ("Gs", trainer.Gs)):
        out.update({f"{name}/{k}": v.numpy() for k, v in net.variable_dict().items()})
    return out


def tiny_steps(**train_kw):
    """`TrainingSteps` of 8x8 StyleGAN2 networks (batch 4 in 2 rounds of 2, eager); `train_kw` overrides options."""
    import tensorflow as tf

    from training.networks.discriminator import Discriminator
    from training.networks.generator import Generator
    from training.optimizer import Adam
    from training.options import TrainingOptions
    from training.presets import configs_from_options, preset_options
    from training.steps import TrainingSteps
    options = preset_options("stylegan2")
    options.update(channel_max=8, latent_size=8, mapping_layersnum=2, mbstd_group_size=2)
    g_cfg, d_cfg = configs_from_options(options, 8)
    G, D, Gs = Generator(g_cfg, seed=1), Discriminator(d_cfg, seed=2), Generator(g_cfg, seed=3)
    kw = dict(batch_size=4, batch_gpu=2, eager=True, ema_rampup=None, seed=5)
    kw.update(train_kw)
    opts = TrainingOptions(**kw).validate()
    g_opt = Adam(G.trainable_variables, opts.g_lr, reg_interval=opts.g_reg_interval, name="g_opt")
    d_opt = Adam(D.trainable_variables, opts.d_lr, reg_interval=opts.d_reg_interval, name="d_opt")
    return TrainingSteps(G, D, Gs, g_opt, d_opt, opts, tf.distribute.get_strategy(), tf.Variable(0.0))


def save_tiny_snapshot(path: str, nan_in: str | None = None) -> None:
    """Writes a tiny 8x8 GANformer snapshot (`TINY_SNAPSHOT`, seed 5) to `path`; `nan_in` names a G variable to
    fill with NaN."""
    import numpy as np

    from training.formats.networks import save_networks
    from training.networks import build_networks
    G, D = build_networks("ganformer-ffhq", 8, seed=5, **TINY_SNAPSHOT)
    if nan_in is not None:
        var = G.variable_dict()[nan_in]
        var.assign(np.full(var.shape, np.nan, np.float32))
    save_networks(path, G, D, G, {"kimg": 1})


def run_generate(*argv: str) -> int | None:
    """`generate.py ARGV` in-process, eager and without progress bars; returns its exit status."""
    import generate
    return generate.main(["--compile", "eager", "--no-progress", *argv])
