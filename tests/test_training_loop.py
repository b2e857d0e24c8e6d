"""Training loop: artefacts, exact resume, presets, accumulation, bad flags (in-process, tiny networks)."""

import glob
import json
import os

import numpy as np
import pytest

from dnnlib.util import UserError
from tests.train_helpers import TINY_FLAGS, make_shapes, make_trainer, read_scalars, trainer_weights

PRESETS = ["ganformer-ffhq", "ganformer-clevr", "gan", "stylegan2", "kgan", "sagan"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=32, resolution=16)
    return d


@pytest.mark.slow
def test_cli_run_writes_every_artefact(data_dir, tmp_path):
    from run_network import main
    main(["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data_dir, "--result-dir",
          str(tmp_path), "--total-kimg", "0.016", "--eager", *TINY_FLAGS, "--metrics", "fg_ari", "--attention-stats",
          "true",
          "--eval-images-num", "8"])
    run = os.path.join(str(tmp_path), "exp-000")
    for name in ("log.txt", "stats.jsonl", "reals.png", "training_options.json", "network-final.pkl",
                 "_finished.txt", "checkpoints/checkpoint", "metric-fg_ari.jsonl"):
        assert os.path.exists(os.path.join(run, name)), name
    # TensorBoard: the training scalars per tick and the metric at every snapshot, step = images seen
    scalars = read_scalars(run)
    assert [step for step, _ in scalars["G/loss"]] == [8, 16] and [s for s, _ in scalars["Progress/kimg"]] == [8, 16]
    values = [json.loads(line)["value"] for line in open(os.path.join(run, "metric-fg_ari.jsonl"))]
    assert len(values) == 3 and scalars["Metrics/fg_ari"] == [(step, pytest.approx(v, rel=1e-6))
                                                              for step, v in zip([0, 8, 16], values)]
    assert len(glob.glob(os.path.join(run, "network-snapshot-*.pkl"))) == 3  # kimg 0 (metrics baseline) + 2 ticks
    # kimg 0 (the untrained networks) and both ticks
    assert len(glob.glob(os.path.join(run, "visuals", "images", "*.png"))) == 3
    assert len(glob.glob(os.path.join(run, "visuals", "maps", "*.png"))) == 3
    records = [json.loads(line) for line in open(os.path.join(run, "stats.jsonl"))]
    assert len(records) == 2 and records[-1]["Progress/kimg"] == pytest.approx(0.016)
    assert all(np.isfinite(r["G/loss"]) and np.isfinite(r["D/loss"]) for r in records)
    # attention diagnostics of G and Gs on every tick that draws maps, in stats.jsonl, TensorBoard and the status line
    for net in ("G", "Gs"):
        entropies = [r[f"Attention/{net}/l0/entropy"] for r in records]
        assert all(0.0 <= e <= 1.0 for e in entropies)
        assert [step for step, _ in scalars[f"Attention/{net}/l0/entropy"]] == [8, 16]
        assert all(f"Attention/{net}/{key}" in records[-1] for key in ("change", "l0/logit_spread", "l0/latents_used"))
    log = open(os.path.join(run, "log.txt")).read()
    last = max(int(k.split("/")[2][1:]) for k in records[-1]
               if k.startswith("Attention/Gs/l") and k.endswith("/entropy"))
    assert "tick 1" in log and f"att H {records[-1][f'Attention/Gs/l{last}/entropy']:.3f}" in log


@pytest.mark.slow
@pytest.mark.parametrize("pl_weight", [0.0, 2.0])
def test_exact_resume_is_bit_identical(data_dir, tmp_path, pl_weight):
    """With path-length regularization too (its phase runs at minibatches 0 and 4, before and after the resume)."""
    straight = make_trainer(str(tmp_path / "a"), data_dir, total_kimg=0.032, pl_weight=pl_weight, attention_stats=True)
    straight.run()
    first = make_trainer(str(tmp_path / "b"), data_dir, total_kimg=0.032, max_ticks=2, pl_weight=pl_weight,
                     attention_stats=True)
    first.run()
    assert first.progress.kimg == pytest.approx(0.016)
    resumed = make_trainer(str(tmp_path / "b"), data_dir, total_kimg=0.032, pl_weight=pl_weight, attention_stats=True)
    resumed.run()
    assert resumed.progress.kimg == pytest.approx(0.032)
    a, b = trainer_weights(straight), trainer_weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for opt in ("g_opt", "d_opt"):
        for x, y in zip(getattr(straight, opt).v, getattr(resumed, opt).v):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    # the attention diagnostics logged per tick are the same with and without the stop
    def attention(run):
        lines = open(os.path.join(str(tmp_path / run), "stats.jsonl")).read().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k.startswith("Attention/")} for line in lines]
    assert len(attention("a")) == 4 and attention("a")[0] and attention("a") == attention("b")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_trains_a_tick(preset, data_dir, tmp_path):
    trainer = make_trainer(str(tmp_path), data_dir, preset=preset, total_kimg=0.008)
    before = {k: v.copy() for k, v in trainer_weights(trainer).items()}
    trainer.run()
    after = trainer_weights(trainer)
    changed = [k for k in before if k.startswith("G/") and not np.array_equal(before[k], after[k])]
    assert changed, "G did not train"
    assert all(np.isfinite(v).all() for v in after.values())


def test_bad_options_are_user_errors(data_dir, tmp_path):
    with pytest.raises(UserError, match="--batch-size"):
        make_trainer(str(tmp_path), data_dir, batch_size=6, batch_gpu=4)
    with pytest.raises(UserError, match="--g-loss"):
        make_trainer(str(tmp_path), data_dir, g_loss="nope")
    with pytest.raises(UserError, match="--ratio"):
        make_trainer(str(tmp_path), data_dir, ratio=1.5)


@pytest.mark.parametrize("pl_weight,d_reg", [(0.0, "r1"), (2.0, "non")])
def test_optimizers_use_the_lazy_regularization_ratio_of_the_original(data_dir, tmp_path, pl_weight, d_reg):
    """Spec §3.2: G lr 0.0016, beta2 0.991992; D lr 0.0018824, beta2 0.990585, with or without a regularizer."""
    trainer = make_trainer(str(tmp_path), data_dir, pl_weight=pl_weight, d_reg=d_reg)
    assert (trainer.g_opt.learning_rate, trainer.g_opt.beta2) == pytest.approx((0.0016, 0.991992), abs=1e-6)
    assert (trainer.d_opt.learning_rate, trainer.d_opt.beta2) == pytest.approx((0.0018824, 0.990585), abs=1e-6)
    assert trainer.g_opt.beta1 == trainer.d_opt.beta1 == 0.0


def test_keep_samples_false_keeps_only_the_newest_grids(data_dir, tmp_path):
    trainer = make_trainer(str(tmp_path), data_dir, total_kimg=0.008, keep_samples=False)
    trainer.run()
    for kind in ("images", "maps"):  # kimg 0 and tick 0 were written; the newest is kept
        assert os.listdir(os.path.join(str(tmp_path), "visuals", kind)) == ["000000.008.png"]


def test_training_maps_are_the_samplers_images_and_the_visualizations_drawings(data_dir, tmp_path):
    """`visuals/maps/<kimg>.png`: `MAP_SAMPLES` samples, `MAP_COLUMNS` a row, each image | hard | blend | soft drawn by
    `palette.map_views` (the default blend alpha) from the Sampler's uint8 images and last-layer maps (heads
    averaged)."""
    from PIL import Image

    from training.training_loop import MAP_COLUMNS, MAP_SAMPLES
    from training.vis.palette import DEFAULT_BLEND_ALPHA, blend, hard_maps, latent_palette, map_views
    from training.vis.sampler import Sampler
    trainer = make_trainer(str(tmp_path), data_dir)
    trainer.write_maps(0.0)
    grid = np.asarray(Image.open(os.path.join(str(tmp_path), "visuals", "maps", "000000.000.png")))
    res = Sampler(trainer.Gs, batch_size=4).generate(trainer._grid_latents()[:MAP_SAMPLES],
                                                     psi=trainer.G.cfg.truncation_psi, maps="last")
    images, probs = res["images"], res["maps"].mean(axis=2)
    n, h, w, _ = images.shape
    rows = -(-n // MAP_COLUMNS)
    assert n == MAP_SAMPLES
    assert grid.shape == (rows * h + (rows - 1) * 2, MAP_COLUMNS * 4 * w + (MAP_COLUMNS - 1) * 2, 3)
    views = map_views(probs, images, latent_palette(probs.shape[1]))
    hard = hard_maps(probs, latent_palette(probs.shape[1]))
    assert np.array_equal(views["blends"], blend(hard, images, DEFAULT_BLEND_ALPHA))
    for i in (0, 5, n - 1):
        r, c = divmod(i, MAP_COLUMNS)
        cell = grid[r * (h + 2): r * (h + 2) + h, c * (4 * w + 2): c * (4 * w + 2) + 4 * w]
        for j, tile in enumerate((images[i], views["maps"][i], views["blends"][i], views["softmaps"][i])):
            np.testing.assert_array_equal(cell[:, j * w:(j + 1) * w], tile)


def test_fine_tuning_downloads_into_the_cache_dir(data_dir, tmp_path, monkeypatch):
    from training import training_loop
    seen = []

    def load(path, cache_dir=None):
        seen.append((path, cache_dir))
        raise UserError("stop")

    monkeypatch.setattr(training_loop.snapshot, "load_networks", load)
    trainer = make_trainer(str(tmp_path), data_dir, pretrained_pkl="gdrive:ffhq-snapshot.pkl", cache_dir="/my/cache")
    with pytest.raises(UserError, match="stop"):
        trainer.restore_or_init()
    assert seen == [("gdrive:ffhq-snapshot.pkl", "/my/cache")]


@pytest.mark.parametrize("rampup", [0.05, None])
def test_ema_rampup_makes_gs_follow_g_at_first(data_dir, tmp_path, rampup):
    """With the ramp-up, the first update sets Gs := G (beta 0); without it, Gs keeps ~all its initial weights."""
    trainer = make_trainer(str(tmp_path), data_dir, total_kimg=0.004, kimg_per_tick=0.004, ema_rampup=rampup)
    trainer.run()
    g, gs = trainer.G.variable_dict(), trainer.Gs.variable_dict()
    same = all(np.array_equal(g[k].numpy(), gs[k].numpy()) for k in g)
    assert same == (rampup is not None)


@pytest.mark.slow
def test_preemption_mid_tick_checkpoints_only_and_keeps_the_tick_grid(data_dir, tmp_path):
    """SIGTERM in the middle of a tick: a checkpoint, no snapshot or metrics; the resumed run ends its ticks on the
    same kimg grid and its weights equal an uninterrupted run's."""
    straight = make_trainer(str(tmp_path / "a"), data_dir, total_kimg=0.032, kimg_per_tick=0.016)
    straight.run()
    stopped = make_trainer(str(tmp_path / "b"), data_dir, total_kimg=0.032, kimg_per_tick=0.016)
    calls = []
    minibatch = stopped.steps.minibatch

    def stop_after_two(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            stopped._on_sigterm(15, None)
        return minibatch(*args, **kw)

    stopped.steps.minibatch = stop_after_two
    stopped.run()
    assert stopped.progress.kimg == pytest.approx(0.008) and int(stopped.progress.tick.numpy()) == 0
    run_b = str(tmp_path / "b")
    assert not glob.glob(os.path.join(run_b, "network-snapshot-*[1-9].pkl"))  # only kimg 0's
    resumed = make_trainer(run_b, data_dir, total_kimg=0.032, kimg_per_tick=0.016)
    resumed.run()
    kimgs = [json.loads(line)["Progress/kimg"] for line in open(os.path.join(run_b, "stats.jsonl"))]
    assert kimgs == pytest.approx([0.016, 0.032])
    a, b = trainer_weights(straight), trainer_weights(resumed)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
