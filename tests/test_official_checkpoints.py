"""The authors' checkpoints (fixtures made by running their TF1 code) load and reproduce their outputs."""

import os

import numpy as np
import pytest

from training.snapshot import load_networks, save_networks

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "official")
NAMES = ["ganformer-ffhq-32", "ganformer-legacy-names-32"]
TOL = 1e-4  # relative to max |reference| (the official fused/non-fused gap is ~2e-6)


@pytest.fixture(scope="module", params=NAMES)
def loaded(request):
    folder = os.path.join(FIXTURES, request.param)
    return load_networks(os.path.join(folder, "network.pkl")), dict(np.load(os.path.join(folder, "ref_io.npz")))


def _close(actual, expected):
    err = np.abs(np.asarray(actual) - expected).max()
    assert err <= TOL * np.abs(expected).max(), f"max error {err} vs max |ref| {np.abs(expected).max()}"


@pytest.mark.parametrize("psi,key", [(1.0, "psi1"), (0.7, "psi07")])
def test_gs_images_maps_ws(loaded, psi, key):
    nets, ref = loaded
    images, maps, ws = nets.Gs(ref["z"], truncation_psi=psi, noise_mode="const", return_maps=True, return_ws=True)
    _close(images.numpy().transpose(0, 3, 1, 2), ref[f"images_{key}"])
    _close(maps, ref[f"maps_{key}"])
    _close(ws, ref[f"ws_{key}"])


def test_g_is_not_gs(loaded):
    nets, ref = loaded
    images = nets.G(ref["z"], noise_mode="const").numpy().transpose(0, 3, 1, 2)
    _close(images, ref["g_images_psi1"])
    assert np.abs(images - ref["images_psi1"]).max() > 1.0


@pytest.mark.parametrize("inp,key", [("images_psi1", "d_scores_fake"), ("d_input_random", "d_scores_random")])
def test_d_scores(loaded, inp, key):
    nets, ref = loaded
    _close(nets.D(ref[inp].transpose(0, 2, 3, 1)), ref[key])


def test_config_read_from_static_kwargs(loaded):
    nets, _ = loaded
    cfg = nets.Gs.cfg
    assert (cfg.resolution, cfg.components_num, cfg.latent_dim, cfg.channel_max) == (32, 16, 32, 64)
    assert cfg.transformer and cfg.attention.kmeans and cfg.attention.integration == "mul"
    assert cfg.attention.norm == "layer" and cfg.architecture == "resnet" and cfg.attention.attention_dropout == 0.0
    assert nets.G.num_params() == 505354 and nets.D.num_params() == 337793


def test_round_trip_through_our_snapshot(loaded, tmp_path):
    nets, ref = loaded
    path = str(tmp_path / "network-snapshot-000000.pkl")
    save_networks(path, nets.G, nets.D, nets.Gs, {"kimg": 0})
    again = load_networks(path)
    for a, b in ((nets.G, again.G), (nets.Gs, again.Gs), (nets.D, again.D)):
        va, vb = a.variable_dict(), b.variable_dict()
        assert list(va) == list(vb)
        for name in va:
            np.testing.assert_array_equal(va[name].numpy(), vb[name].numpy(), err_msg=name)
    assert again.metadata == {"kimg": 0}
    images = again.Gs(ref["z"][:2], noise_mode="const").numpy().transpose(0, 3, 1, 2)
    _close(images, ref["images_psi1"][:2])
