"""Equalized learning rate (StyleGAN2, App. B): every weight is stored as N(0, 1/lrmul^2) and multiplied at run time by
gain / sqrt(fan_in) * lrmul, biases by lrmul. Gains and multipliers per layer kind come from the spec: gain 1
everywhere except the GAN latent stem `4x4/Dense` (sqrt(2)/4); lrmul 0.01 for the mapping's dense layers
(--mapping-lrmul), 1 for its attention layers and everything else."""

import math

import numpy as np
import pytest
import tensorflow as tf

from training.networks.discriminator import Discriminator
from training.networks.generator import Generator
from training.networks.layers import Conv, Dense, ModConv
from training.networks.module import NamedModule
from training.presets import configs_from_options, preset_options

SMALL = dict(channel_max=16, components_num=2, latent_size=16, merge_layer=3)


def _layers(module, prefix=""):
    """(path, layer) of every Dense / Conv / ModConv below `module`."""
    for name, entry in module._entries:
        if isinstance(entry, NamedModule):
            path = f"{prefix}{name}/" if name else prefix
            if isinstance(entry, (Dense, Conv, ModConv)):
                yield path, entry
            yield from _layers(entry, path)


def _spec_multipliers(path, net):
    """(gain, lrmul) the spec gives the layer at `path`."""
    in_mapping = path.startswith("mapping/") and "AttLayer" not in path
    gain = math.sqrt(2) / 4 if path == "synthesis/4x4/Dense/" else 1.0
    return gain, (net.cfg.mapping_lrmul if in_mapping else 1.0)


@pytest.mark.parametrize("preset", ["ganformer-ffhq", "ganformer-clevr", "gan", "stylegan2", "kgan", "sagan"])
def test_every_layer_has_the_spec_multipliers(preset):
    options = {**preset_options(preset), **SMALL}
    if preset in ("stylegan2", "gan", "sagan"):
        options["components_num"] = 1
    g_cfg, d_cfg = configs_from_options({**options, "d_transformer": preset.startswith("ganformer")}, 16)
    seen = set()
    for net in (Generator(g_cfg), Discriminator(d_cfg)):
        for path, layer in _layers(net):
            gain, lrmul = _spec_multipliers(path, net) if isinstance(net, Generator) else (1.0, 1.0)
            fan_in = int(np.prod(layer.weight.shape[:-1]))
            assert layer.coef == pytest.approx(gain / math.sqrt(fan_in) * lrmul, rel=1e-12), path
            assert getattr(layer, "lrmul", 1.0) == lrmul, path
            std = float(np.std(layer.weight.numpy()))
            if layer.weight.shape.num_elements() >= 64:
                assert std == pytest.approx(1.0 / lrmul, rel=0.35), path
            seen.add(type(layer).__name__)
    assert seen == {"Dense", "Conv", "ModConv"}


def _rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


@pytest.mark.parametrize("lrmul,gain", [(1.0, 1.0), (0.01, 1.0), (1.0, math.sqrt(2) / 4)])
def test_dense_applies_the_multipliers(lrmul, gain):
    layer = Dense(np.random.default_rng(0), 6, 3, gain=gain, lrmul=lrmul)
    layer.bias.assign(_rand(3, seed=1))
    x = _rand(4, 6, seed=2)
    want = x @ (layer.weight.numpy() * gain / math.sqrt(6) * lrmul) + layer.bias.numpy() * lrmul
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", [1, 3])
def test_conv_applies_the_multiplier(kernel):
    layer = Conv(np.random.default_rng(0), 4, 5, kernel)
    layer.bias.assign(_rand(5, seed=1))
    x = _rand(2, 6, 6, 4, seed=2)
    w = layer.weight.numpy() / math.sqrt(4 * kernel * kernel)
    want = tf.nn.conv2d(x, w, 1, "SAME").numpy() + layer.bias.numpy()
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modconv_applies_the_multipliers_to_weight_and_style(demodulate):
    layer = ModConv(np.random.default_rng(0), 7, 4, 5, 1, demodulate=demodulate)
    layer.affine.bias.assign(_rand(4, seed=1))
    x, w = _rand(2, 3, 3, 4, seed=2), _rand(2, 7, seed=3)
    styles = w @ (layer.affine.weight.numpy() / math.sqrt(7)) + layer.affine.bias.numpy() + 1.0  # [B, C_in]
    weight = layer.weight.numpy()[0, 0] / math.sqrt(4)  # [C_in, C_out]
    per_sample = styles[:, :, None] * weight[None]  # [B, C_in, C_out]
    if demodulate:
        per_sample = per_sample / np.sqrt((per_sample ** 2).sum(axis=1, keepdims=True) + 1e-8)
    want = np.einsum("bhwi,bio->bhwo", x, per_sample)
    np.testing.assert_allclose(layer(tf.constant(x), tf.constant(w)).numpy(), want, rtol=1e-4, atol=1e-5)
