"""Tests for training/vis/visualize.py and training/vis/*: palette and map colouring, crops, interpolation paths,
style mixing, every visualization kind on a tiny GANformer, grids, and index.html in headless Chromium."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from dnnlib.util import UserError
from training.networks import build_networks
from dnnlib.crop import crop_to_content
from dnnlib.tflib.ops.quantize import quantize_numpy
from training.vis import interpolation, palette, style_mix
from training.vis.html_index import write_index
from training.vis.sampler import Sampler
from training.vis.visualize import KINDS, vis

REQUIRE_CHROMIUM = "GANFORMER_REQUIRE_CHROMIUM"  # set to 1 by .ci/run: a missing Chromium fails, not skips
TINY = dict(channel_max=32, components_num=4, latent_dim=16)


@pytest.fixture(scope="module")
def G():
    """Tiny GANformer (16x16, k=4, d=16, 5 attention layers) with non-zero noise strengths."""
    g, _ = build_networks("ganformer-ffhq", 16, seed=3, **TINY)
    for name, var in g.named_variables():
        if name.endswith("noise_strength"):
            var.assign(np.full(var.shape, 0.5, np.float32))
    return g


@pytest.fixture(scope="module")
def all_kinds(G, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("vis_all"))
    index = vis(G, out, set(KINDS), num=3, rich_num=2, interpolation_density=3, batch_size=16, truncation_psi=0.7,
                seed=10, noise_samples=6, progress=False, compile="eager")
    return out, index


def _png(path):
    return np.asarray(Image.open(path))


# ---------------------------------------------------------------------------------------------------------------
# pure NumPy pieces

def test_hls_palette_distinct_and_in_range():
    p = palette.hls_palette(16)
    assert p.shape == (16, 3) and p.dtype == np.float32
    assert p.min() >= 0 and p.max() <= 1
    assert len({tuple(np.round(c * 255).astype(int)) for c in p}) == 16


def test_maps_must_be_probabilities():
    good = np.random.RandomState(0).rand(2, 4, 5, 5)
    good /= good.sum(axis=1, keepdims=True)
    palette.check_probabilities(good)
    with pytest.raises(ValueError, match="sum to 1"):
        palette.soft_maps(good * 1.1, palette.hls_palette(4))
    with pytest.raises(ValueError, match="sum to 1"):
        palette.hard_maps(good[:, :3], palette.hls_palette(4))


def test_colouring_of_one_hot_maps():
    colours = palette.hls_palette(3)
    maps = np.zeros((1, 3, 2, 2), np.float32)
    maps[0, 0, 0, :] = 1  # top row -> latent 0
    maps[0, 2, 1, :] = 1  # bottom row -> latent 2
    expect = np.rint(colours * 255).astype(np.uint8)
    soft, hard = palette.soft_maps(maps, colours), palette.hard_maps(maps, colours)
    np.testing.assert_array_equal(hard[0, 0, 0], expect[0])
    np.testing.assert_array_equal(hard[0, 1, 1], expect[2])
    np.testing.assert_array_equal(soft, hard)
    half = np.full((1, 2, 1, 1), 0.5, np.float32)
    np.testing.assert_allclose(palette.soft_maps(half, colours[:2])[0, 0, 0], (expect[0].astype(int) + expect[1]) / 2,
                               atol=1)
    img = np.zeros((1, 2, 2, 3), np.uint8)
    np.testing.assert_array_equal(palette.blend(hard, img, 1.0), img)
    np.testing.assert_array_equal(palette.blend(hard, img, 0.0), hard)


def test_quantize_numpy_and_ratio_crop():
    x = np.array([-1.0, -0.999, 0.0, 1.0, 5.0, -7.0], np.float32).reshape(1, 1, 6, 1)
    assert quantize_numpy(x).ravel().tolist() == [0, 0, 128, 255, 255, 0]
    img = np.arange(32 * 32 * 3).reshape(1, 32, 32, 3)
    assert crop_to_content(img, 0.75).shape == (1, 24, 32, 3)
    assert crop_to_content(img, 0.5)[0, 0, 0, 0] == img[0, 8, 0, 0]  # central rows
    assert crop_to_content(img, 1.0).shape == img.shape
    cropped = crop_to_content(img, 0.5)
    assert crop_to_content(cropped, 0.5).shape == cropped.shape  # idempotent
    assert crop_to_content(img, 2.0).shape == (1, 32, 16, 3)  # taller than wide: columns
    assert crop_to_content(np.zeros((2, 4, 32, 32)), 0.75, axes=(-2, -1)).shape == (2, 4, 24, 32)


def test_slerp_per_component_and_lerp():
    rs = np.random.RandomState(0)
    a, b = rs.randn(5, 16), rs.randn(5, 16) * 3
    t = interpolation.interpolation_steps(7)
    path = interpolation.slerp(a, b, t)
    assert path.shape == (7, 5, 16)
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    norms = np.linalg.norm(path, axis=-1)  # lengths interpolate linearly, per component
    expect = (1 - t[:, None]) * np.linalg.norm(a, axis=-1) + t[:, None] * np.linalg.norm(b, axis=-1)
    np.testing.assert_allclose(norms, expect, rtol=1e-5)
    mid = interpolation.slerp(a[:1], a[:1], t)  # identical end points: stays put
    np.testing.assert_allclose(mid, np.repeat(a[None, :1], 7, 0), atol=1e-5)
    np.testing.assert_allclose(interpolation.lerp(a, b, np.array([0.25]))[0], a + 0.25 * (b - a), atol=1e-5)
    with pytest.raises(ValueError):
        interpolation.interpolation_steps(1)


def test_style_mixing_semantics():
    row, col = np.zeros((5, 7, 2)), np.ones((5, 7, 2))
    by_layer = style_mix.mix_ws(row, col, 3, "layer")
    assert (by_layer[:, :3] == 0).all() and (by_layer[:, 3:] == 1).all()
    by_comp = style_mix.mix_ws(row, col, 2, "component")
    assert (by_comp[:2] == 0).all() and (by_comp[2:] == 1).all()
    assert style_mix.layer_cutoffs(9) == [2, 5, 8] and style_mix.layer_cutoffs(3) == [2]
    assert style_mix.component_cutoffs(16) == [4, 8, 12] and style_mix.component_cutoffs(1) == []


# ---------------------------------------------------------------------------------------------------------------
# with a tiny generator

def test_sampler_maps_are_probabilities(G):
    z = np.random.RandomState(1).randn(3, *G.latent_shape).astype(np.float32)
    s = Sampler(G, batch_size=2, ratio=0.75)
    res = s.generate(z, psi=0.7, maps="all", ws=True)
    assert res["images"].shape == (3, 12, 16, 3) and res["images"].dtype == np.uint8
    assert res["maps"].shape == (3, 4, G.num_attention_layers, 1, 12, 16)
    np.testing.assert_allclose(res["maps"].sum(axis=1), 1.0, atol=1e-5)
    assert res["maps"].min() >= 0
    last = s.generate(z, psi=0.7, maps="last")["maps"]
    np.testing.assert_allclose(last, res["maps"][:, :, -1], atol=1e-6)
    # w path (mapping + synthesis) == z path, and images match the generator's own output
    again = s.synthesize(s.mapping(z, psi=0.7))["images"]
    np.testing.assert_array_equal(again, res["images"])
    direct = quantize_numpy(G(z, truncation_psi=0.7).numpy())[:, 2:14]
    assert np.abs(direct.astype(int) - res["images"]).max() <= 1


def test_every_kind_writes_its_files(all_kinds, G):
    out, index = all_kinds
    ids = ["000010", "000011", "000012"]
    for kind in ("images", "softmaps", "maps", "softblends", "blends"):
        assert sorted(os.listdir(os.path.join(out, kind))) == [f"{i}.png" for i in ids], kind
        assert _png(os.path.join(out, kind, "000010.png")).shape == (16, 16, 3)
    for kind in ("latents-z", "latents-w"):
        assert sorted(os.listdir(os.path.join(out, kind))) == [f"{i}.npy" for i in ids]
    z = np.load(os.path.join(out, "latents-z", "000011.npy"))
    np.testing.assert_array_equal(z, np.random.RandomState(11).randn(*G.latent_shape).astype(np.float32))
    assert np.load(os.path.join(out, "latents-w", "000011.npy")).shape == G.latent_shape
    n_layers = G.num_attention_layers
    for i in ids[:2]:
        names = sorted(os.listdir(os.path.join(out, "layer_maps", i)))
        assert names == sorted(f"l{layer}_h0.png" for layer in range(n_layers))
        for space in ("z", "w"):
            folder = os.path.join(out, f"interpolations-{space}")
            assert sorted(os.listdir(os.path.join(folder, i))) == ["00.png", "01.png", "02.png"]
            gif = Image.open(os.path.join(folder, f"{i}.gif"))
            assert gif.n_frames == 3
    assert not os.path.exists(os.path.join(out, "layer_maps", ids[2]))  # only rich_num samples
    noise = _png(os.path.join(out, "noise-variance.png"))
    assert noise.shape == (16, 16) and noise.max() > 0
    layer_mix = _png(os.path.join(out, "layer-mixing.png"))  # (2 row sources x 2 cutoffs + 1) x (4 + 1) cells
    assert layer_mix.shape == (5 * 16, 5 * 16, 3)
    comp_mix = _png(os.path.join(out, "component-mixing.png"))  # cutoffs [1, 2, 3] for k=4
    assert comp_mix.shape == (7 * 16, 5 * 16, 3)
    assert os.path.isfile(os.path.join(out, "latent-colours.png"))
    assert index == os.path.join(out, "index.html")


def test_sample_image_equals_generator_output_and_first_mixing_frame(all_kinds, G):
    out, _ = all_kinds
    z = np.random.RandomState(10).randn(1, *G.latent_shape).astype(np.float32)
    expect = quantize_numpy(G(z, truncation_psi=0.7).numpy())[0]
    got = _png(os.path.join(out, "images", "000010.png"))
    assert np.abs(got.astype(int) - expect).max() <= 1
    for space in ("z", "w"):  # interpolations start at the sample itself
        first = _png(os.path.join(out, f"interpolations-{space}", "000010", "00.png"))
        assert np.abs(first.astype(int) - got).max() <= 1
    mix = _png(os.path.join(out, "layer-mixing.png"))  # top row, first column source = sample 10
    assert np.abs(mix[:16, 16:32].astype(int) - got).max() <= 1


def test_only_requested_kinds_grid_and_step(G, tmp_path):
    out = str(tmp_path)
    vis(G, out, {"images", "latents", "layer_maps"}, num=5, rich_num=1, section_size=3, batch_size=16, grid=True,
        step=120, progress=False, compile="eager")
    assert sorted(os.listdir(os.path.join(out, "images"))) == ["000120_grid00.png", "000120_grid01.png"]
    assert _png(os.path.join(out, "images", "000120_grid00.png")).shape == (32, 32, 3)  # 3 samples, 2x2 grid
    assert np.load(os.path.join(out, "latents-z", "000120_grid01.npy")).shape == (2,) + G.latent_shape
    layer_grid = _png(os.path.join(out, "layer_maps", "000120_000000.png"))
    n = G.num_attention_layers
    assert layer_grid.shape == (n * 16 + (n - 1) * 2, 16, 3)
    written = sorted(os.listdir(out))
    assert written == ["images", "index.html", "latents-w", "latents-z", "layer_maps"], written


def test_bad_requests(G, tmp_path):
    with pytest.raises(UserError, match="unknown visualization kind"):
        vis(G, str(tmp_path), {"imagez"}, num=1, progress=False)
    with pytest.raises(UserError, match="unconditional"):
        vis(G, str(tmp_path), {"images"}, num=1, class_idx=0, progress=False)
    with pytest.raises(UserError, match="interpolation-density"):
        vis(G, str(tmp_path), {"interpolations"}, num=1, interpolation_density=1, progress=False)


def test_model_without_attention_skips_maps(tmp_path, capsys):
    g, _ = build_networks("stylegan2", 8, channel_max=16, latent_dim=8)
    vis(g, str(tmp_path), {"maps", "layer_maps", "images"}, num=2, batch_size=8, progress=False, compile="eager")
    assert "no attention layers" in capsys.readouterr().out
    assert len(os.listdir(os.path.join(tmp_path, "images"))) == 2
    assert not os.path.exists(os.path.join(tmp_path, "maps"))


# ---------------------------------------------------------------------------------------------------------------
# index.html

@pytest.fixture
def chromium():
    """The `chromium` on PATH (Debian's package). Without one the test is skipped, or fails when the environment sets
    GANFORMER_REQUIRE_CHROMIUM=1, as CI does (it installs the package first)."""
    path = shutil.which("chromium")
    if path is None and os.environ.get(REQUIRE_CHROMIUM) == "1":
        pytest.fail(f"chromium is not installed but {REQUIRE_CHROMIUM}=1: install it (apt-get install -y chromium)",
                    pytrace=False)
    if path is None:
        pytest.skip("Chromium not installed (apt-get install -y chromium)")
    return path


def _render(chromium, index):
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", "file://" + index], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_index_lists_every_kind_with_relative_links(all_kinds):
    out, index = all_kinds
    text = open(index, encoding="utf-8").read()
    for section in ("images", "softmaps", "maps", "softblends", "blends", "layer_maps", "interpolations-z",
                    "interpolations-w", "noise-variance", "layer-mixing", "component-mixing", "latents-z",
                    "latents-w"):
        assert f'id="{section}"' in text, section
    links = re.findall(r'(?:src|href)="([^"#]+)"', text)
    assert links and not any(l.startswith(("/", "http:", "https:", "file:")) for l in links)
    for link in links:
        assert os.path.isfile(os.path.join(out, link)), link
    assert "interpolations-z/000010.gif" in links


def test_index_renders_in_headless_chromium(chromium, all_kinds, tmp_path):
    out, index = all_kinds
    dom = _render(chromium, index)
    n_img = len(re.findall(r"<img ", open(index, encoding="utf-8").read()))
    assert 'data-status="ok"' in dom and f'data-images="{n_img}"' in dom
    # the page's check does detect a picture that does not decode
    broken = str(tmp_path / "broken")
    shutil.copytree(out, broken)
    with open(os.path.join(broken, "images", "000011.png"), "wb") as f:
        f.write(b"not a png")
    dom = _render(chromium, write_index(broken))
    assert 'data-status="broken"' in dom and "images/000011.png" in dom


@pytest.mark.parametrize("n", [2, 8, 16])
def test_latent_palette_is_saturated_distinct_and_spreads_neighbours(n):
    p = palette.latent_palette(n)
    assert p.shape == (n, 3) and p.min() >= 0 and p.max() <= 1
    assert (p.max(axis=1) - p.min(axis=1) >= 0.59).all()  # saturated: far from grey (lightness 0.3 ring: 0.6)
    dist = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1)) + np.eye(n) * 9
    assert dist.min() > 0.2  # no two latents look alike
    if n >= 8:
        assert np.mean([np.abs(p[i] - p[i + 1]).sum() for i in range(7)]) > 0.8  # neighbours are not similar hues
