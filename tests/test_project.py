"""Projection of images into the latents (`generate.py --project`): the schedule, the self-consistency of the
optimization on a tiny random model, the files written, exact reproduction of a projection with `--latents`,
noise-map optimization, latent edits, and one-line errors before any work."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import generate
from training.networks import build_networks
from training.projection import noise_maps
from training.projection.perceptual import Perceptual, load_perceptual
from training.projection.projector import ProjectionConfig, Projector, psnr
from training.projection.schedule import Schedule
from training.projection.targets import read_targets
from training.formats.networks import save_networks
from training.vis import latent_edit
from dnnlib.tflib.ops.quantize import quantize_numpy
from training.vis.imageio import save_png

# tanh keeps the random generator's pixels in [-1, 1], so its images are exactly representable targets.
TINY = dict(channel_max=16, components_num=2, latent_dim=16, tanh=True)
SELF_STEPS = 40
PSNR_GAIN_DB = 3.0  # the reconstructions' PSNR rises by at least this much over the starting image
PERCEPTUAL_KEEP = 0.7  # and their perceptual distance falls to at most this fraction of the start


@pytest.fixture(scope="module")
def gen():
    G, D = build_networks("ganformer-ffhq", 16, seed=5, **TINY)
    return G, D


@pytest.fixture(scope="module")
def targets(gen):
    """Two images the tiny model makes from known latents (psi 1, stored noise)."""
    z = np.random.RandomState(11).randn(2, *gen[0].latent_shape).astype(np.float32)
    return quantize_numpy(gen[0](z).numpy())


@pytest.fixture(scope="module")
def snapshot(gen, targets, tmp_path_factory):
    """The tiny model as a snapshot file, with the targets as PNGs (and one of another size)."""
    root = tmp_path_factory.mktemp("proj")
    save_networks(str(root / "net.pkl"), gen[0], gen[1], gen[0], {"kimg": 1})
    (root / "targets").mkdir()
    for i, image in enumerate(targets):
        save_png(str(root / "targets" / f"photo{i}.png"), image)
    save_png(str(root / "wrong.png"), np.zeros([20, 16, 3], np.uint8))
    (root / "broken.png").write_bytes(b"not an image")
    return root


def _run(*argv):
    return generate.main(["--no-progress", *argv])


def test_schedule_ramps_and_noise():
    s = Schedule(steps=100)
    lrs = [s.learning_rate(i) for i in range(100)]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(0.1)
    assert lrs[3] < lrs[5] == pytest.approx(0.1)  # 5-step warm-up
    assert lrs[75] == pytest.approx(0.1) and lrs[76] < 0.1 and lrs[99] < 0.001  # cosine decay over the last 25
    noise = [s.noise_scale(i, 2.0) for i in range(100)]
    assert noise[0] == pytest.approx(0.1) and all(a >= b for a, b in zip(noise, noise[1:]))
    assert noise[75] == 0.0 and noise[99] == 0.0


def test_self_consistency_on_generated_images(gen, targets):
    """Projecting images the model made improves PSNR and perceptual distance by the stated margins, and the loss
    falls in expectation (means over blocks of 10 steps decrease)."""
    perceptual = load_perceptual(16, size=75)
    cfg = ProjectionConfig(space="w", schedule=Schedule(steps=SELF_STEPS), seed=3, stat_samples=1000)
    result = Projector(gen[0], perceptual, cfg).project(targets)
    assert np.all(result.end["psnr"] >= result.start["psnr"] + PSNR_GAIN_DB), (result.start, result.end)
    assert np.all(result.end["perceptual"] <= PERCEPTUAL_KEEP * result.start["perceptual"]), (result.start,
                                                                                           result.end)
    blocks = result.history["loss"].reshape(SELF_STEPS // 10, 10, -1).mean(axis=1)
    assert np.all(np.diff(blocks, axis=0) < 0), blocks
    np.testing.assert_allclose(psnr(result.images, targets), result.end["psnr"])
    assert result.ws.shape == (2, 3, gen[0].num_ws, 16) and np.all(result.ws == result.ws[:, :, :1])  # w: broadcast
    assert result.maps.shape == (2, 2, 1, 16, 16)
    assert len(result.frames) == len(result.frame_steps) and result.frame_steps[-1] == SELF_STEPS


@pytest.mark.slow
def test_cli_writes_everything_and_latents_reproduce(snapshot, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run("--model", str(snapshot / "net.pkl"), "--project", str(snapshot / "targets"),
                str(snapshot / "targets" / "photo1.png"), "--space", "z", "--steps", "6", "--batch-size", "2",
                "--vis-latent-swap", "--compile", "eager", "--output-dir", str(out)) == 0
    printed = capsys.readouterr().out
    assert "Perceptual distance: inception-taps" in printed and "Projected 3 images" in printed
    names = ["photo0", "photo1", "photo1-1"]  # the second photo1 is renamed
    for name in names:
        files = set(os.listdir(out / name))
        assert {"target.png", "start.png", "projection.png", "ws.npy", "z.npy", "progress.gif", "loss.png",
                "softmap.png", "map.png", "softblend.png", "blend.png", "latent-swap.png", "record.json"} <= files
        assert not [f for f in files if f.startswith(".")]  # no temporary files left
    summary = json.loads((out / "projection.json").read_text())
    assert [t["name"] for t in summary["targets"]] == names and summary["settings"]["space"] == "z"
    assert np.load(out / "projected_ws.npy").shape == (3, 3, 7, 16)
    page = (out / "index.html").read_text()
    for section in ('id="projections"', 'id="progress"', 'id="loss"', 'id="map"', 'id="latent-swap"'):
        assert section in page
    again = tmp_path / "again"
    assert _run("--model", str(snapshot / "net.pkl"), "--latents", str(out / "photo0" / "ws.npy"),
                "--truncation-psi", "1", "--output-dir", str(again)) == 0
    made = np.asarray(Image.open(again / "sample_000000.png")).astype(int)
    assert np.abs(made - np.asarray(Image.open(out / "photo0" / "projection.png")).astype(int)).max() <= 1


def _pixels():
    """A cheap stand-in perceptual distance (pixel features) for tests of the optimization mechanics."""
    return Perceptual("pixels", "-", "test", lambda x: tf.reshape(x, [tf.shape(x)[0], -1]))


def test_noise_maps_are_optimized_per_image_and_model_untouched(gen, targets):
    G = gen[0]
    for layer in G.synthesis.variables:  # give the noise an effect (strengths start at 0)
        if "noise_strength" in layer.name:
            layer.assign(0.5)
    stored = [b.numpy().copy() for b in G.synthesis.noise_bufs]
    try:
        cfg = ProjectionConfig(space="w+", schedule=Schedule(steps=3), optimize_noise=True, stat_samples=100,
                               compile="eager")
        result = Projector(G, _pixels(), cfg).project(targets)
    finally:
        for layer in G.synthesis.variables:
            if "noise_strength" in layer.name:
                layer.assign(0.0)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(stored, G.synthesis.noise_bufs))
    assert [n.shape for n in result.noise] == [(2, *b.shape[1:]) for b in stored]
    assert result.noise[3].shape == (2, 16, 16, 1)  # the first 16x16 layer's
    assert not np.allclose(result.noise[3], np.tile(stored[3], [2, 1, 1, 1]))
    np.testing.assert_allclose(result.noise[3].mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(result.noise[3].std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    assert np.all(result.history["noise_reg"] > 0) and result.ws.shape == (2, 3, G.num_ws, 16)


def test_noise_regularization_penalizes_correlated_noise():
    rng = np.random.RandomState(0)
    white = tf.constant(rng.randn(2, 32, 32, 1).astype(np.float32))
    smooth = tf.constant(np.repeat(np.repeat(rng.randn(2, 8, 8, 1), 4, 1), 4, 2).astype(np.float32))
    reg_white = noise_maps.regularization([white], 2).numpy()
    reg_smooth = noise_maps.regularization([smooth], 2).numpy()
    assert reg_white.shape == (2,) and np.all(reg_smooth > 50 * reg_white)


def test_latent_edit_marks_the_changed_region():
    ws = np.zeros([1, 3, 2, 4], np.float32)
    donor = np.ones_like(ws)

    def synth(w):  # latent 0 paints the left half, latent 1 the right half
        img = np.zeros([len(w), 4, 4, 3], np.uint8)
        img[:, :, :2] = (w[:, 0, 0, 0] * 200)[:, None, None, None]
        img[:, :, 2:] = (w[:, 1, 0, 0] * 200)[:, None, None, None]
        return img

    grids, fractions = latent_edit.edit_grids(synth, ws, donor, None, 2)
    assert grids[0].shape == (3 * 4 + 2, 3 * 4 + 2, 3)  # 3 rows (donors + 2 latents) x 3 columns, 1-px gaps
    np.testing.assert_allclose(fractions[0, :, 0], [0.5, 0.5])
    assert np.isnan(fractions[0, :, 1]).all()
    edited = synth(latent_edit.replace_latent(ws, donor, 1))
    mask = latent_edit.changed_mask(synth(ws), edited)
    assert mask[0, :, 2:].all() and not mask[0, :, :2].any()


def test_latents_an_edit_can_change():
    assert latent_edit.num_local_latents(build_networks("ganformer-ffhq", 16, **TINY)[0]) == 2
    assert latent_edit.num_local_latents(build_networks("kgan", 16, channel_max=16, components_num=3)[0]) == 3
    assert latent_edit.num_local_latents(build_networks("stylegan2", 16, channel_max=16)[0]) == 0


def test_generate_vis_latent_swap_for_samples(snapshot, tmp_path):
    out = tmp_path / "swaps"
    assert _run("--model", str(snapshot / "net.pkl"), "--seeds", "0-1", "--compile", "eager", "--vis-latent-swap",
                "--output-dir", str(out)) == 0
    assert sorted(os.listdir(out / "latent-swap")) == ["000000.png", "000001.png"]
    assert np.asarray(Image.open(out / "latent-swap" / "000000.png")).shape == (3 * 16 + 2, 5 * 16 + 4, 3)
    assert 'id="latent-swap"' in (out / "index.html").read_text()


def test_dataset_targets(tmp_path):
    from train_helpers import make_shapes

    data = make_shapes(str(tmp_path), count=4, resolution=16)
    targets = read_targets([data], count=3)
    assert [t.name for t in targets] == ["shapes-000000", "shapes-000001", "shapes-000002"]
    assert targets[0].image.shape == (16, 16, 3) and targets[0].image.dtype == np.uint8


@pytest.mark.parametrize("extra, needle", [
    (["--project", "{root}/wrong.png"], "wrong.png: the image is 16x20 pixels; the model makes 16x16"),
    (["--project", "{root}/broken.png"], "broken.png: cannot read the image"),
    (["--project", "{root}/missing"], "--project {root}/missing: no such file or folder"),
    (["--project", "{root}/targets", "--seeds", "1"], "--seeds: not with --project"),
    (["--project", "{root}/targets", "--vis-maps"], "--vis-maps: not with --project"),
    (["--project", "{root}/targets", "--steps", "0"], "--steps 0: must be >= 1"),
    (["--project", "{root}/targets", "--project-count", "0"], "--project-count 0: must be >= 1"),
    (["--project", "{root}/targets", "--mse-weight", "nan"], "--mse-weight nan: must be a finite number"),
    (["--space", "z", "--seeds", "1"], "--space: only with --project"),
])
def test_bad_input_is_one_line_and_writes_nothing(snapshot, tmp_path, capsys, extra, needle):
    out = tmp_path / "out"
    argv = [a.format(root=snapshot) for a in extra]
    assert _run("--model", str(snapshot / "net.pkl"), "--output-dir", str(out), *argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle.format(root=snapshot) in err, err
    assert not out.exists()


def test_perceptual_lookup_order_and_lpips(tmp_path):
    from metrics.vgg16 import load_vgg16
    from tests.metrics_helpers import synthetic_tensors, write_pt

    cache = tmp_path / "cache"
    cache.mkdir()
    assert load_perceptual(16, cache_dir=str(cache)).name == "inception-taps"  # no VGG16 file: FID's Inception
    write_pt(cache / "vgg16.pt", dict(synthetic_tensors(with_fc=False)))
    net = load_perceptual(16, cache_dir=str(cache))
    assert (net.name, net.origin) == ("lpips-vgg16", "cache")
    rng = np.random.RandomState(0)
    a, b = (tf.constant(rng.uniform(-1, 1, [2, 16, 16, 3]).astype(np.float32)) for _ in range(2))
    expect = load_vgg16(str(cache / "vgg16.pt"))[0].lpips((a + 1) * 127.5, (b + 1) * 127.5)
    np.testing.assert_allclose(net.distance(net.features(a), net.features(b)), expect, rtol=1e-4)
