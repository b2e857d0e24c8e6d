"""Tests for generate.py: seeds, counts, sizes and ratio crop on one of our snapshots, exact reproduction of the
authors' reference images with --latents, conditional models, --vis-* flags, and one-line errors (as a subprocess)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import generate
from training.networks import build_networks
from training.formats.networks import save_networks
from dnnlib.tflib.ops.quantize import quantize_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "official", "ganformer-ffhq-32")
TINY = dict(channel_max=32, components_num=4, latent_dim=16)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A tiny GANformer snapshot (16x16, k=4, d=16) written by save_networks; returns (path, Gs)."""
    G, D = build_networks("ganformer-ffhq", 16, seed=5, **TINY)
    Gs, _ = build_networks("ganformer-ffhq", 16, seed=6, **TINY)
    path = str(tmp_path_factory.mktemp("snap") / "network-snapshot-000010.pkl")
    save_networks(path, G, D, Gs, {"kimg": 10})
    return path, Gs


def _run(*argv):
    return generate.main(["--compile", "eager", "--no-progress", *argv])


def _read(folder, i):
    return np.asarray(Image.open(os.path.join(folder, f"sample_{i:06d}.png")))


def test_parse_seeds():
    assert generate.parse_seeds("0-3,40") == [0, 1, 2, 3, 40]
    assert generate.parse_seeds("7") == [7]
    for bad in ("3-1", "a", "1,,2", "-4"):
        with pytest.raises(generate.UserError):
            generate.parse_seeds(bad)


def test_snapshot_seeds_count_size_ratio(snapshot, tmp_path, capsys):
    path, Gs = snapshot
    out = str(tmp_path / "out")
    assert _run("--model", path, "--output-dir", out, "--seeds", "0-2,5", "--ratio", "0.75",
                "--truncation-psi", "0.5", "--batch-size", "3") == 0
    pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert pngs == ["sample_000000.png", "sample_000001.png", "sample_000002.png", "sample_000005.png"]
    assert _read(out, 5).shape == (12, 16, 3)
    z = np.random.RandomState(5).randn(1, *Gs.latent_shape).astype(np.float32)
    expect = quantize_numpy(Gs(z, truncation_psi=0.5).numpy())[0, 2:14]
    assert np.abs(_read(out, 5).astype(int) - expect).max() <= 1
    printed = capsys.readouterr().out
    assert "Wrote 4 images to " + os.path.abspath(out) in printed
    assert os.path.isfile(os.path.join(out, "index.html"))


def test_images_num_default_psi_and_vis_flags(snapshot, tmp_path):
    path, Gs = snapshot
    out = str(tmp_path / "out")
    assert _run("--model", path, "--output-dir", out, "--images-num", "3", "--vis-maps", "--vis-latents",
                "--vis-rich-num", "1") == 0
    assert sorted(f for f in os.listdir(out) if f.startswith("sample_")) == [f"sample_{i:06d}.png" for i in range(3)]
    z = np.random.RandomState(2).randn(1, *Gs.latent_shape).astype(np.float32)
    expect = quantize_numpy(Gs(z, truncation_psi=0.7).numpy())[0]  # default --truncation-psi 0.7
    assert np.abs(_read(out, 2).astype(int) - expect).max() <= 1
    assert sorted(os.listdir(os.path.join(out, "maps"))) == ["000000.png", "000001.png", "000002.png"]
    assert len(os.listdir(os.path.join(out, "latents-w"))) == 3
    assert 'id="samples"' in open(os.path.join(out, "index.html")).read()


def test_official_pickle_reproduces_reference_images(tmp_path):
    ref = np.load(os.path.join(FIXTURE, "ref_io.npz"))
    z_path = str(tmp_path / "z.npy")
    np.save(z_path, ref["z"])
    out = str(tmp_path / "out")
    assert _run("--model", os.path.join(FIXTURE, "network.pkl"), "--latents", z_path, "--truncation-psi", "1",
                "--output-dir", out, "--batch-size", "8") == 0
    got = np.stack([_read(out, i) for i in range(8)]).astype(int)
    expect = quantize_numpy(ref["images_psi1"].transpose(0, 2, 3, 1)).astype(int)  # NCHW -> NHWC, then quantized
    assert got.shape == (8, 32, 32, 3)
    assert np.abs(got - expect).max() <= 1
    assert (got != expect).mean() < 0.01


def test_conditional_model_and_class_flag(tmp_path):
    G, D = build_networks("ganformer-ffhq", 8, seed=1, label_dim=3, **TINY)
    path = str(tmp_path / "cond.pkl")
    save_networks(path, G, D, G, {})
    outs = []
    for c in ("0", "2"):
        out = str(tmp_path / f"c{c}")
        assert _run("--model", path, "--output-dir", out, "--seeds", "4", "--class", c) == 0
        outs.append(_read(out, 4))
    assert not np.array_equal(outs[0], outs[1])
    assert _run("--model", path, "--output-dir", str(tmp_path / "bad"), "--seeds", "4", "--class", "3") == 2


def test_user_errors_in_process(snapshot, tmp_path, capsys):
    path, _ = snapshot
    bad = str(tmp_path / "z.npy")
    np.save(bad, np.zeros((2, 3, 4), np.float32))
    assert _run("--model", path, "--latents", bad, "--output-dir", str(tmp_path / "o")) == 2
    assert _run("--model", path, "--class", "0", "--output-dir", str(tmp_path / "o")) == 2
    assert _run("--model", path, "--seeds", "5-1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "[N, 5, 16]" in err[0] and "unconditional" in err[1] and "--seeds" in err[2]


@pytest.mark.parametrize("argv,needle", [(["--model", "x.pkl", "--nope"], "unrecognized arguments: --nope"),
                                         (["--model", "x.pkl", "--batch-size", "two"], "--batch-size"),
                                         ([], "--model")])
def test_bad_flags_give_one_line_errors(argv, needle, capsys):
    assert generate.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("generate.py: error: ") and needle in err[0], err


def test_ratio_defaults_to_the_one_the_model_was_trained_with(tmp_path):
    G, D = build_networks("ganformer-ffhq", 16, seed=5, **TINY)
    path = str(tmp_path / "network-snapshot-000010.000.pkl")
    save_networks(path, G, D, G, {"kimg": 10, "training_options": {"ratio": 0.75, "mirror_augment": False}})
    assert _run("--model", path, "--output-dir", str(tmp_path / "a"), "--seeds", "1") == 0
    assert _read(str(tmp_path / "a"), 1).shape == (12, 16, 3)
    assert _run("--model", path, "--output-dir", str(tmp_path / "b"), "--seeds", "1", "--ratio", "1") == 0
    assert _read(str(tmp_path / "b"), 1).shape == (16, 16, 3)  # an explicit --ratio wins


@pytest.mark.parametrize("case", ["missing", "corrupt"])
def test_bad_model_file_gives_one_line_error(case, tmp_path):
    model = str(tmp_path / "network.pkl")
    if case == "corrupt":
        with open(os.path.join(FIXTURE, "network.pkl"), "rb") as f:
            data = f.read()
        with open(model, "wb") as f:
            f.write(data[: len(data) // 3])  # truncated download
    env = dict(os.environ)
    env.pop("GANFORMER_TF_LOGS", None)
    res = subprocess.run([sys.executable, os.path.join(ROOT, "generate.py"), "--model", model, "--output-dir",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("generate.py: error: " + model)
    assert ("not found" if case == "missing" else "corrupt") in lines[0]
    assert not os.path.exists(tmp_path / "out")


def test_gpus_flag_sets_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "untouched")
    assert _run("--model", str(tmp_path / "missing.pkl"), "--gpus", "-1") == 2  # fails after setting the env
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "-1"
