"""Attention diagnostics: closed forms of the entropy, win shares and locality, and the prober on real and toy
generators."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.util import UserError
from metrics import attention_stats as A

K, R = 4, 8


def _stripes(b: int = 2) -> np.ndarray:
    """int `[B, R, R]`: latent j owns columns [2j, 2j + 2)."""
    return np.broadcast_to(np.arange(R)[None, None, :] // (R // K), (b, R, R)).copy()


def _one_hot_maps(regions: np.ndarray) -> np.ndarray:
    """`[B, k, L=1, N=1, R, R]` maps that put all attention on the region's latent."""
    maps = (regions[:, None] == np.arange(K)[None, :, None, None]).astype(np.float32)
    return maps[:, :, None, None]


def test_uniform_maps_have_entropy_one_and_no_logit_spread():
    maps = np.full([2, K, 1, 1, R, R], 1.0 / K, np.float32)
    stats = A.layer_stats(maps)[0]
    assert stats["entropy"] == pytest.approx(1.0)
    assert stats["logit_spread"] == pytest.approx(0.0, abs=1e-6)


def test_one_hot_stripes_have_entropy_zero_and_use_every_latent():
    stats = A.layer_stats(_one_hot_maps(_stripes()))[0]
    assert stats["entropy"] == pytest.approx(0.0, abs=1e-6)
    assert stats["win_share_max"] == pytest.approx(1.0 / K)
    assert stats["latents_used"] == pytest.approx(1.0)


def test_one_latent_winning_everything_uses_one_latent_of_k():
    regions = np.zeros([2, R, R], np.int64)
    stats = A.layer_stats(_one_hot_maps(regions))[0]
    assert stats["win_share_max"] == pytest.approx(1.0)
    assert stats["latents_used"] == pytest.approx(1.0 / K)


def test_locality_is_k_when_each_latent_changes_only_its_region():
    regions = _stripes()
    changes = (regions[:, None] == np.arange(K)[None, :, None, None]).astype(np.float32) * 0.5
    loc = A.locality(changes, regions)
    assert loc["share"] == pytest.approx(1.0)
    assert loc["area"] == pytest.approx(1.0 / K)
    assert loc["value"] == pytest.approx(K)


def test_locality_is_chance_when_every_latent_changes_the_whole_image():
    regions = _stripes()
    changes = np.random.RandomState(0).uniform(0.5, 1.0, [1, K, 1, 1]) * np.ones([2, K, R, R])
    assert A.locality(changes, regions)["value"] == pytest.approx(1.0)


def test_locality_refuses_latents_that_change_nothing():
    with pytest.raises(UserError, match="ignores its latents"):
        A.locality(np.zeros([2, K, R, R]), _stripes())


class _StripeGenerator:
    """A toy generator: latent j paints columns [2j, 2j + 2) with the mean of its w (and its attention says so);
    with `ignore=True` the image is constant whatever the latents."""

    def __init__(self, ignore: bool = False) -> None:
        self.cfg = SimpleNamespace(transformer=True, components_num=K)
        self.latent_shape, self.label_dim, self.num_attention_layers = (K + 1, 3), 0, 1
        self.ignore = ignore

    def mapping(self, z, labels=None):
        return tf.tile(z[:, :, None, :], [1, 1, 2, 1])  # [B, K+1, S=2, d]

    def synthesis(self, ws, noise_mode="const", return_maps=False):
        regions = tf.constant(_stripes(1)[0])  # [R, R]
        colour = tf.reduce_mean(ws[:, :K, 0], axis=-1)  # [B, k]
        image = tf.gather(colour, regions, axis=1)[..., None] * tf.ones([1, 1, 1, 3])  # [B, R, R, 3]
        if self.ignore:
            image = tf.zeros_like(image)
        maps = tf.one_hot(regions, K, axis=0)[None, :, None, None]  # [1, k, 1, 1, R, R]
        maps = tf.tile(maps, [tf.shape(ws)[0], 1, 1, 1, 1, 1])
        return image, maps


def test_prober_scores_a_generator_whose_latents_own_known_regions():
    result = A.Prober(_StripeGenerator(), num_images=3, seed=1, batch_size=2)()
    assert result.changes.shape == (3, K, R, R) and result.maps.shape == (3, K, 1, 1, R, R)
    summary = A.summarize(result)
    assert summary["locality"] == pytest.approx(K) and summary["locality_share"] == pytest.approx(1.0)
    assert summary["l0/entropy"] == pytest.approx(0.0, abs=1e-6) and summary["change"] > 0


def test_prober_leaves_locality_out_when_the_image_ignores_the_latents():
    summary = A.summarize(A.Prober(_StripeGenerator(ignore=True), num_images=2)())
    assert "locality" not in summary and summary["change"] == 0.0
    assert "l0/entropy" in summary


def test_prober_refuses_a_generator_without_attention():
    G = SimpleNamespace(cfg=SimpleNamespace(transformer=False), num_attention_layers=0)
    with pytest.raises(UserError, match="not a GANformer"):
        A.Prober(G)


def test_prober_on_a_tiny_ganformer_is_finite_and_repeatable():
    from training.config import AttentionConfig, GeneratorConfig
    from training.networks.generator import Generator
    cfg = GeneratorConfig(resolution=16, components_num=3, latent_dim=8, channel_max=8, mapping_layers=2, transformer=True,
                          attention=AttentionConfig(kmeans=True, integration="mul", norm="layer"))
    G = Generator(cfg, seed=3)
    prober = A.Prober(G, num_images=4, seed=5, batch_size=2)
    first, second = A.summarize(prober()), A.summarize(prober())
    assert first == second
    layers = G.num_attention_layers
    assert all(0.0 <= first[f"l{i}/entropy"] <= 1.0 for i in range(layers))
    assert all(1.0 / 3 - 1e-6 <= first[f"l{i}/latents_used"] <= 1.0 + 1e-6 for i in range(layers))
    assert first["change"] > 0 and math.isfinite(first["locality"])


def test_locality_metric_is_registered_and_refuses_a_stylegan2(tmp_path):
    from metrics.registry import evaluate, get_metric
    from training.config import GeneratorConfig
    from training.networks.generator import Generator
    assert get_metric("locality200").num_images == 200
    G = Generator(GeneratorConfig(resolution=16, latent_dim=8, channel_max=8, mapping_layers=2), seed=0)
    with pytest.raises(UserError, match="not a GANformer"):
        evaluate("locality", G, None, 4, str(tmp_path), "snap", 0.0)


def test_locality_metric_records_its_result(tmp_path):
    import json
    from metrics.registry import evaluate
    records = evaluate("locality", _StripeGenerator(), None, 4, str(tmp_path), "snap", 1.0, batch_size=2)
    assert records[0]["value"] == pytest.approx(K) and records[0]["results"]["share"] == pytest.approx(1.0)
    line = json.loads(open(tmp_path / "metric-locality.jsonl").read())
    assert line["value"] == pytest.approx(K) and line["num_images"] == 4
