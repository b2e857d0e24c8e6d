"""Mixed precision (`--precision fp16|bf16`, `--num-fp16-res`, `--conv-clamp`; training.precision.policy, training.precision.loss_scale):
kernels, which blocks run reduced, fp32 unchanged, reduced outputs near fp32, every preset trains, loss scaling
recovers from an overflow, fp16 resume is bit-exact, old checkpoints resume, generation/export, bad values refused."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import generate
from dnnlib.util import UserError
from tests.train_helpers import make_shapes
from training.formats.checkpoint import Progress, TrainCheckpoint
from training.data.loader import open_dataset
from training.precision.loss_scale import LossScale
from training.networks import build_networks
from training.optimizer import Adam
from training.options import TrainingOptions
from training.precision.policy import FP32, Precision, block_dtypes, set_precision
from training.presets import PRESETS, configs_from_options, preset_options
from training.formats.networks import save_networks
from training.train_log import status_line
from training.training_loop import Trainer

MODES = ("fp16", "bf16")
# Largest gap of the reduced-precision outputs to fp32 for the same weights, relative to the largest |fp32 value|
# (max|out - ref| / max|ref|), over the 8 presets at 32x32, channel_max 32, the 4 top resolutions reduced (G images
# from fixed z, D logits of uniform [-1, 1] images), printed by `test_reduced_outputs_match_fp32` with -s. Measured on
# TF 2.21 CPU (worst preset; two measurements, with the slice-based FIR and with the depthwise-conv FIR of
# upfirdn_2d): G images fp16 4.5e-3 / 5.6e-3, bf16 3.9e-2 / 4.0e-2; D logits fp16 2.4e-3 / 1.5e-3, bf16 1.4e-2 /
# 2.5e-2. Tolerances: 3x the worst of both (float16 keeps 11 significant bits, bfloat16 8: bf16's gap is ~8x fp16's).
TOLERANCE = {("G", "fp16"): 1.7e-2, ("G", "bf16"): 1.2e-1, ("D", "fp16"): 7.5e-3, ("D", "bf16"): 7.5e-2}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=32, resolution=16)
    return d


def _tiny(preset, resolution=32):
    kw = dict(channel_max=32)
    if preset.startswith("ganformer") or preset == "kgan":
        kw.update(components_num=4, latent_dim=16)
    return build_networks(preset, resolution, seed=3, **kw)


def _trainer(run_dir, data_dir, preset="ganformer-ffhq", **train_kw):
    ds = open_dataset(os.path.join(data_dir, "shapes"))
    options = preset_options(preset)
    options.update(channel_max=16, components_num=2, latent_size=16, mbstd_group_size=4, merge_layer=3)
    if preset in ("stylegan2", "gan", "sagan"):
        options.update(components_num=1)
    g, d = configs_from_options(options, ds.resolution)
    kw = dict(run_dir=run_dir, dataset="shapes", batch_size=4, batch_gpu=4, total_kimg=0.008, kimg_per_tick=0.008,
              img_snapshot_ticks=1, network_snapshot_ticks=1, maps_snapshot_ticks=1, metrics=[], eager=True,
              summarize=False, seed=7, precision="fp16")
    kw.update(train_kw)
    os.makedirs(run_dir, exist_ok=True)
    return Trainer(TrainingOptions(**kw), g, d, ds)


def _weights(*nets):
    return {f"{i}/{k}": v.numpy() for i, net in enumerate(nets) for k, v in net.variable_dict().items()}


def _records(run_dir):
    with open(os.path.join(run_dir, "stats.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_cpu_kernels_of_the_reduced_layers_exist_with_second_derivatives(dtype):
    """The ops of a reduced block run in float16/bfloat16 on CPU, with the second derivatives R1 needs."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal([2, 8, 8, 4]) * 0.1, dtype)  # small: fp16's squares of squares stay finite
    w = tf.constant(rng.standard_normal([3, 3, 4, 4]) * 0.1, dtype)
    ops = {"conv2d": lambda t: tf.nn.conv2d(t, w, 1, "SAME"), "strided": lambda t: tf.nn.conv2d(t, w, 2, "VALID"),
           "transpose": lambda t: tf.nn.conv2d_transpose(t, w, [2, 17, 17, 4], 2, "VALID"),
           "depthwise": lambda t: tf.nn.depthwise_conv2d(t, w[..., :1], [1, 1, 1, 1], "SAME"),
           "matmul": lambda t: tf.matmul(tf.reshape(t, [-1, 4]), w[0, 0]),
           "batch_matmul": lambda t: tf.matmul(tf.reshape(t, [2, 64, 4]), tf.reshape(t, [2, 64, 4]), transpose_b=True)}
    for name, op in ops.items():
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.reduce_sum(tf.square(tf.cast(op(x), tf.float32)))
            g = inner.gradient(y, x)
            assert g.dtype == dtype, name
            gg = tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
        assert np.isfinite(outer.gradient(gg, x).numpy().astype(np.float32)).all(), name


# ------------------------------------------------------------------------------------------------------ networks
def test_blocks_of_the_top_resolutions_compute_reduced():
    G, D = _tiny("stylegan2", 64)  # blocks 8..64
    set_precision(G, Precision("fp16", num_fp16_res=2))
    set_precision(D, Precision("fp16", num_fp16_res=2))
    assert block_dtypes(G) == {3: tf.float32, 4: tf.float32, 5: tf.float16, 6: tf.float16}
    assert block_dtypes(D) == {3: tf.float32, 4: tf.float32, 5: tf.float16, 6: tf.float16}
    set_precision(G, Precision("bf16", num_fp16_res=10))  # never the 4x4 layers
    assert set(block_dtypes(G).values()) == {tf.bfloat16}
    assert G.synthesis.blocks[6].conv0.clamp == 256.0 and G.synthesis.torgb[6].clamp == 256.0
    set_precision(G, Precision("fp32"))
    assert all(b.precision == FP32 and b.conv0.clamp is None for b in G.synthesis.blocks.values())
    assert Precision("fp16", 4, None).describe(6) == "fp16 at 8x8..64x64, no clamp"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_reduced_outputs_match_fp32(preset, capsys):
    """For the same weights, fp16/bf16 G images and D logits are within `TOLERANCE` of fp32 (relative to the largest
    |fp32 value|); setting fp32 back gives the fp32 outputs bit for bit; the outputs are float32."""
    G, D = _tiny(preset)
    z = tf.constant(np.random.RandomState(1).randn(4, *G.latent_shape), tf.float32)
    images = tf.constant(np.random.RandomState(2).uniform(-1, 1, [4, 32, 32, 3]), tf.float32)
    ref_g, ref_d = G(z).numpy(), D(images).numpy()
    for mode in MODES:
        set_precision(G, Precision(mode))
        set_precision(D, Precision(mode))
        out_g, out_d = G(z), D(images)
        assert out_g.dtype == out_d.dtype == tf.float32
        gap_g = np.abs(out_g.numpy() - ref_g).max() / np.abs(ref_g).max()
        gap_d = np.abs(out_d.numpy() - ref_d).max() / np.abs(ref_d).max()
        with capsys.disabled():
            print(f"\n{preset} {mode}: G gap {gap_g:.2e}, D gap {gap_d:.2e}", end="")
        assert gap_g < TOLERANCE[("G", mode)] and gap_d < TOLERANCE[("D", mode)]
    set_precision(G, Precision("fp32"))
    set_precision(D, Precision("fp32"))
    np.testing.assert_array_equal(G(z).numpy(), ref_g)
    np.testing.assert_array_equal(D(images).numpy(), ref_d)


# ------------------------------------------------------------------------------------------------------ training
# ganformer-bedrooms and ganformer-cityscapes are ganformer-ffhq's architecture (asserted below): trained once.
TRAIN_PRESETS = [p for p in PRESETS if p not in ("ganformer-bedrooms", "ganformer-cityscapes")]


def test_presets_not_trained_separately_are_ganformer_ffhq():
    for preset in set(PRESETS) - set(TRAIN_PRESETS):
        assert preset_options(preset) == preset_options("ganformer-ffhq")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("preset", TRAIN_PRESETS)
def test_every_preset_trains_in_reduced_precision(preset, mode, data_dir, tmp_path):
    """Three minibatches, every phase (path length and R1 at minibatch 0): finite losses and weights, G trains, loss
    scaling with fp16 only."""
    trainer = _trainer(str(tmp_path), data_dir, preset=preset, precision=mode, pl_weight=2.0)
    reals = next(trainer._data_iterator())
    before = _weights(trainer.G)
    for step in range(3):
        stats = trainer.steps.minibatch(reals, None, step=step)
        keys = ("G/loss", "D/loss") + (("D/reg", "G/pl_penalty") if step == 0 else ())
        assert all(np.isfinite(float(stats[k])) for k in keys), (step, {k: float(stats[k]) for k in keys})
    after = _weights(trainer.G)
    assert any(not np.array_equal(before[k], after[k]) for k in before), "G did not train"
    assert all(np.isfinite(v).all() for v in _weights(trainer.G, trainer.D, trainer.Gs).values())
    assert ("LossScale/G" in stats) == (mode == "fp16")  # bf16 has no loss scaling


def test_loss_scale_grows_after_finite_steps_and_halves_on_overflow():
    state = LossScale(initial_scale=8.0, growth_interval=2)
    for finite, scale, good, skipped in [(True, 8, 1, 0), (True, 16, 0, 0), (False, 8, 0, 1), (True, 8, 1, 1)]:
        state.update(tf.constant(finite))
        assert (state.scale.numpy(), state.good_steps.numpy(), state.skipped.numpy()) == (scale, good, skipped)


def test_loss_scaling_recovers_from_an_injected_overflow(data_dir, tmp_path):
    """An inf in G's gradients: G's update is skipped (weights and Adam state unchanged), its scale halves and the
    skip is counted; D's step is unaffected; the next minibatches train with the halved scale."""
    trainer = _trainer(str(tmp_path), data_dir, preset="stylegan2")
    steps, reals = trainer.steps, next(trainer._data_iterator())
    apply_g = steps._apply_g
    steps._apply_g = lambda grads: apply_g([grads[0] * np.inf] + list(grads[1:]))
    before_g, before_d = _weights(trainer.G), _weights(trainer.D)
    stats = steps.minibatch(reals, None, step=1)
    assert stats["G/skipped"] == 1.0 and stats["D/skipped"] == 0.0
    trainable = {k for k, v in trainer.G.variable_dict().items() if v.trainable}  # (w_avg is tracked regardless)
    assert all(np.array_equal(before_g["0/" + k], _weights(trainer.G)["0/" + k]) for k in trainable)
    assert any(not np.array_equal(before_d[k], v) for k, v in _weights(trainer.D).items())
    assert int(trainer.g_opt.step.numpy()) == 0 and int(trainer.d_opt.step.numpy()) == 1
    assert stats["LossScale/G"] == 2.0 ** 5 and stats["LossScale/G_skipped"] == 1.0
    assert stats["LossScale/D"] == 2.0 ** 6 and stats["LossScale/D_skipped"] == 0.0
    steps._apply_g = apply_g
    for step in (2, 3):
        stats = steps.minibatch(reals, None, step=step)
        assert stats["G/skipped"] == 0.0 and np.isfinite(float(stats["G/loss"]))
    assert any(not np.array_equal(before_g[k], v) for k, v in _weights(trainer.G).items())
    assert int(trainer.g_opt.loss_scale.good_steps.numpy()) == 2 and stats["LossScale/G"] == 2.0 ** 5
    line = status_line({**{k: float(v) for k, v in stats.items()}, "Progress/tick": 0, "Progress/kimg": 0.0,
                        "Timing/sec_per_tick": 1.0, "Timing/sec_per_kimg": 1.0, "Resources/peak_mem_gb": 1.0}, 1.0)
    assert "scale G 2^5 D 2^6 skipped 1/0" in line


def test_a_huge_scale_is_brought_down_without_touching_the_weights(data_dir, tmp_path):
    """A scale at float32's limit makes the scaled gradients overflow: updates are skipped, the scale halves each
    time, and training goes on."""
    trainer = _trainer(str(tmp_path), data_dir, preset="stylegan2")
    steps, reals = trainer.steps, next(trainer._data_iterator())
    trainer.g_opt.loss_scale.scale.assign(2.0 ** 127)
    trainer.d_opt.loss_scale.scale.assign(2.0 ** 127)
    stats = steps.minibatch(reals, None, step=1)
    assert stats["G/skipped"] == 1.0 and stats["D/skipped"] == 1.0
    assert stats["LossScale/G"] == 2.0 ** 126 and stats["LossScale/D"] == 2.0 ** 126
    assert int(trainer.g_opt.step.numpy()) == int(trainer.d_opt.step.numpy()) == 0


@pytest.mark.slow
def test_fp16_resume_is_bit_exact_with_the_loss_scale_state(data_dir, tmp_path):
    """Training 4 minibatches equals 2 + resume + 2 (weights, Adam moments, loss-scale state), path length and R1
    included; the scale and skip totals are in stats.jsonl and on the status line."""
    kw = dict(total_kimg=0.016, pl_weight=2.0, g_reg_interval=2, d_reg_interval=2, preset="stylegan2")
    straight = _trainer(str(tmp_path / "a"), data_dir, **kw)
    straight.run()
    first = _trainer(str(tmp_path / "b"), data_dir, max_ticks=1, **kw)
    first.run()
    resumed = _trainer(str(tmp_path / "b"), data_dir, **kw)
    resumed.run()
    a, b = _weights(straight.G, straight.D, straight.Gs), _weights(resumed.G, resumed.D, resumed.Gs)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for opt in ("g_opt", "d_opt"):
        x, y = getattr(straight, opt), getattr(resumed, opt)
        for m, n in zip(x.m + x.v, y.m + y.v):
            np.testing.assert_array_equal(m.numpy(), n.numpy())
        for var in ("scale", "good_steps", "skipped"):
            assert getattr(x.loss_scale, var).numpy() == getattr(y.loss_scale, var).numpy(), (opt, var)
        assert x.loss_scale.good_steps.numpy() > 0
    records = _records(str(tmp_path / "b"))
    assert [r["LossScale/G"] for r in records] == [2.0 ** 6] * 2
    assert [r["LossScale/D_skipped"] for r in records] == [0.0] * 2


def test_checkpoints_without_loss_scale_resume_in_fp16_and_back(data_dir, tmp_path, capsys):
    """An fp32 run's checkpoint (no loss-scale state, as every older checkpoint) resumes in fp16 with a fresh
    scale; an fp16 checkpoint resumes in fp32 (the state is ignored)."""
    run = str(tmp_path / "run")
    _trainer(run, data_dir, preset="stylegan2", precision="fp32", total_kimg=0.008).run()
    resumed = _trainer(run, data_dir, preset="stylegan2", total_kimg=0.016)
    resumed.run()
    assert "predates the state of g_opt.loss_scale, d_opt.loss_scale" in capsys.readouterr().out
    assert resumed.progress.kimg == pytest.approx(0.016) and resumed.g_opt.loss_scale.good_steps.numpy() == 2
    again = _trainer(run, data_dir, preset="stylegan2", precision="fp32", total_kimg=0.024)
    again.run()
    assert again.progress.kimg == pytest.approx(0.024) and not hasattr(again.g_opt, "loss_scale")


def test_checkpoint_restores_an_attached_loss_scale(tmp_path):
    """The state attached to an optimizer after the checkpoint object was made is saved and restored."""
    v = tf.Variable([1.0])
    opt = Adam([v], name="g_opt")
    ckpt = TrainCheckpoint(str(tmp_path), g_opt=opt, progress=Progress())
    opt.loss_scale = LossScale(initial_scale=4.0)
    opt.loss_scale.skipped.assign(3)
    ckpt.save(1)
    opt.loss_scale.skipped.assign(0)
    assert ckpt.restore_latest() and opt.loss_scale.skipped.numpy() == 3


def test_an_overflow_on_one_replica_skips_the_update_on_every_replica(data_dir, tmp_path):
    """Two replicas (MirroredStrategy over 2 logical CPUs, in a subprocess): an inf in replica 1's G loss only
    skips G's update on both replicas (every copy of every weight unchanged), halves the one scale; D trains."""
    out = str(tmp_path / "result.json")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), data_dir, out], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.load(open(out))
    assert result == {"G/skipped": 1.0, "D/skipped": 0.0, "g_steps": 0, "d_steps": 1, "g_scale": 32.0,
                      "g_skipped": 1, "g_unchanged_on_every_replica": True, "d_changed_on_every_replica": True}


def _replica_worker(data_dir: str, out: str) -> None:
    """The subprocess of `test_an_overflow_on_one_replica_skips_the_update_on_every_replica`."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training import steps as steps_module
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    ds = open_dataset(os.path.join(data_dir, "shapes"))
    options = dict(preset_options("stylegan2"), channel_max=16, latent_size=16, mbstd_group_size=2)
    g, d = configs_from_options(options, ds.resolution)
    opts = TrainingOptions(run_dir=os.path.dirname(out), dataset="shapes", batch_size=4, batch_gpu=2, metrics=[],
                           eager=True, summarize=False, seed=7, precision="fp16")
    trainer = Trainer(opts, g, d, ds, strategy=strategy)
    generator_loss = steps_module.losses.generator_loss

    def overflow_on_replica_1(kind, scores):
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        return generator_loss(kind, scores) * tf.where(tf.equal(rid, 1), np.inf, 1.0)

    steps_module.losses.generator_loss = overflow_on_replica_1

    def copies(net):
        return [[c.numpy() for c in v.values] for v in net.trainable_variables]

    g_before, d_before = copies(trainer.G), copies(trainer.D)
    stats = trainer.steps.minibatch(next(trainer._data_iterator()), None, step=1)
    g_after, d_after = copies(trainer.G), copies(trainer.D)
    result = {"G/skipped": float(stats["G/skipped"]), "D/skipped": float(stats["D/skipped"]),
              "g_steps": int(trainer.g_opt.step.numpy()), "d_steps": int(trainer.d_opt.step.numpy()),
              "g_scale": float(trainer.g_opt.loss_scale.scale.numpy()),
              "g_skipped": int(trainer.g_opt.loss_scale.skipped.numpy()),
              "g_unchanged_on_every_replica": all(np.array_equal(a, b) for va, vb in zip(g_before, g_after)
                                                  for a, b in zip(va, vb)),
              "d_changed_on_every_replica": all(any(not np.array_equal(a[i], b[i]) for a, b in zip(d_before, d_after))
                                                for i in range(2))}
    with open(out, "w") as f:
        json.dump(result, f)


# --------------------------------------------------------------------------------------------- generate / export
@pytest.mark.slow
def test_generate_and_export_in_reduced_precision(tmp_path):
    G, D = _tiny("ganformer-ffhq", 16)
    path = str(tmp_path / "network-snapshot-000001.pkl")
    save_networks(path, G, D, G, {"kimg": 1})
    out = {}
    for mode in ("fp32", "fp16", "bf16"):
        folder = str(tmp_path / mode)
        assert generate.main(["--model", path, "--output-dir", folder, "--seeds", "0-1", "--compile", "eager",
                              "--no-progress", "--precision", mode, "--export", folder + "-export"]) == 0
        out[mode] = np.stack([np.asarray(Image.open(os.path.join(folder, f"sample_{i:06d}.png")))
                              for i in (0, 1)]).astype(int)
        info = json.load(open(os.path.join(folder + "-export", "ganformer_export.json")))
        want = "fp32" if mode == "fp32" else f"{mode} at 8x8..16x16, activations clamped to ±256"
        assert info["precision"] == want
    # uint8 images: the reduced ones differ from fp32 by a few levels at most (tolerance: TOLERANCE x 255 x 2).
    assert np.abs(out["fp16"] - out["fp32"]).max() <= 8 and np.abs(out["bf16"] - out["fp32"]).max() <= 40


# --------------------------------------------------------------------------------------------------- bad values
@pytest.mark.parametrize("flag,value", [("--precision", "fp8"), ("--num-fp16-res", "-1"), ("--num-fp16-res", "2.5"),
                                        ("--num-fp16-res", "99"), ("--conv-clamp", "0"), ("--conv-clamp", "nan"),
                                        ("--conv-clamp", "1e6"), ("--conv-clamp", "big")])
def test_bad_values_are_refused_with_one_line(flag, value, tmp_path, capsys):
    """run_network.py and generate.py refuse the value with one line naming the flag, before any work."""
    from run_network import main
    with pytest.raises(UserError, match=flag) as info:
        main(["--train", "--dataset", "shapes", "--data-dir", str(tmp_path), flag, value])
    assert "\n" not in str(info.value)
    capsys.readouterr()
    assert generate.main(["--model", "x.pkl", flag, value]) == 2
    err = capsys.readouterr().err
    assert flag in err and err.count("\n") == 1, err


def test_bad_values_in_saved_options_are_refused():
    with pytest.raises(UserError, match="^--precision fp8: choose one of fp32, fp16, bf16$"):
        TrainingOptions(precision="fp8").validate()
    with pytest.raises(UserError, match="^--num-fp16-res -1: "):
        TrainingOptions(num_fp16_res=-1).validate()
    with pytest.raises(UserError, match="^--conv-clamp -3.0: "):
        TrainingOptions(conv_clamp=-3.0).validate()


if __name__ == "__main__":
    _replica_worker(sys.argv[1], sys.argv[2])
