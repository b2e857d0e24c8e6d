"""Tests for training/formats/export.py and `generate.py --export`: the SavedModel loads with plain TensorFlow in a process
that cannot import this project and gives the project's images and attention maps."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import generate
from dnnlib.util import UserError
from training.formats.export import export_saved_model
from training.networks import build_networks
from training.formats.networks import save_networks
from training.vis.sampler import Sampler

TINY = dict(channel_max=32, components_num=4, latent_dim=16)

# Runs in a fresh interpreter with -I (no PYTHONPATH, no script dir / cwd on sys.path) from an empty folder.
_CLIENT = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    import tensorflow as tf
    export_dir, io_path = sys.argv[1], sys.argv[2]
    for name in ("training", "dnnlib", "generate", "metrics"):
        assert importlib.util.find_spec(name) is None, name + " is importable"
    fn = tf.saved_model.load(export_dir).signatures["serving_default"]
    z = np.load(io_path + ".in.npy")
    res = {}
    for psi in (1.0, 0.6):
        out = fn(z=tf.constant(z), truncation_psi=tf.constant(psi, tf.float32))
        res.update({f"{k}_{psi}": v.numpy() for k, v in out.items()})
    res["input_names"] = np.array(sorted(fn.structured_input_signature[1]))
    assert not [m for m in sys.modules if m.split(".")[0] in ("training", "dnnlib", "generate")]
    np.savez(io_path, **res)
""")


@pytest.fixture(scope="module")
def Gs():
    g, _ = build_networks("ganformer-ffhq", 16, seed=9, **TINY)
    for name, var in g.named_variables():  # make the stored noise matter
        if name.endswith("noise_strength"):
            var.assign(np.full(var.shape, 0.3, np.float32))
    return g


def _client(tmp_path, export_dir, z):
    io_path = str(tmp_path / "io")
    np.save(io_path + ".in.npy", z)
    script = tmp_path / "client.py"
    script.write_text(_CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    res = subprocess.run([sys.executable, "-I", str(script), export_dir, io_path], cwd=str(tmp_path),
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return np.load(io_path + ".npz")


def test_saved_model_round_trip_in_clean_process(Gs, tmp_path):
    export_dir = str(tmp_path / "export")
    export_saved_model(Gs, export_dir)
    info = json.load(open(os.path.join(export_dir, "ganformer_export.json")))
    assert info["latent_shape"] == [5, 16] and info["attention_maps"] is True
    z = np.random.RandomState(0).randn(3, *Gs.latent_shape).astype(np.float32)
    out = _client(tmp_path, export_dir, z)
    assert list(out["input_names"]) == ["truncation_psi", "z"]
    sampler = Sampler(Gs, batch_size=8)
    for psi in (1.0, 0.6):
        ref = sampler.generate(z, psi=psi, maps="last")
        images = out[f"images_{psi}"]
        assert images.dtype == np.uint8 and images.shape == (3, 16, 16, 3)
        assert np.abs(images.astype(int) - ref["images"]).max() <= 1
        assert (images != ref["images"]).mean() < 0.01
        maps = out[f"attention_maps_{psi}"]
        assert maps.shape == (3, 4, 1, 16, 16)
        np.testing.assert_allclose(maps, ref["maps"], atol=1e-5)
        np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(out["images_1.0"], out["images_0.6"])


def test_export_refuses_foreign_folder_and_replaces_old_export(tmp_path):
    Gs, _ = build_networks("stylegan2", 8, seed=2, channel_max=16, latent_dim=8)  # small: fast to trace
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an earlier export"):
        export_saved_model(Gs, str(foreign))
    assert (foreign / "notes.txt").read_text() == "mine"
    target = str(tmp_path / "again")
    export_saved_model(Gs, target)
    export_saved_model(Gs, target)  # re-export over an earlier one
    assert os.path.isfile(os.path.join(target, "saved_model.pb"))
    assert sorted(os.listdir(tmp_path)) == ["again", "foreign"]  # no temporary folders left behind


def test_generate_cli_export_only(tmp_path, capsys):
    G, D = build_networks("stylegan2", 8, seed=2, channel_max=16, latent_dim=8)  # no attention: images only
    path = str(tmp_path / "net.pkl")
    save_networks(path, G, D, G, {})
    export_dir = str(tmp_path / "exported")
    assert generate.main(["--model", path, "--export", export_dir, "--output-dir", str(tmp_path / "none")]) == 0
    assert "Exported a SavedModel to " + export_dir in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "none")  # export only: no samples requested
    import tensorflow as tf

    fn = tf.saved_model.load(export_dir).signatures["serving_default"]
    z = np.random.RandomState(1).randn(2, *G.latent_shape).astype(np.float32)
    out = fn(z=tf.constant(z), truncation_psi=tf.constant(1.0))
    assert sorted(out) == ["images"]
    ref = Sampler(G).generate(z)["images"]
    assert np.abs(out["images"].numpy().astype(int) - ref).max() <= 1
