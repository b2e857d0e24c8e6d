"""The attention layer's fast (re-associated) path equals its reference path; probabilities are distributions."""

import numpy as np
import pytest
import tensorflow as tf

from training.networks.attention import AttentionLayer

CASES = {
    "kmeans": dict(kmeans=True, norm="layer", integration="mul"),
    "kmeans-heads": dict(kmeans=True, num_heads=2, integration="both", norm="instance"),
    "standard": dict(integration="add"),
    "standard-heads-gates": dict(num_heads=4, img_gate=True, ltnt_gate=True, norm="batch", integration="mul"),
    "no-pos": dict(kmeans=True, from_pos_dim=None, to_pos_dim=None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_equals_reference(name):
    kwargs = dict(from_pos_dim=8, to_pos_dim=6, to_len=5, dropout=0.3)
    kwargs.update(CASES[name])
    layer = AttentionLayer(np.random.default_rng(0), from_dim=16, to_dim=6, dim=16, **kwargs)
    for var in layer.trainable_variables:  # non-trivial biases and st_weights
        var.assign(var + tf.random.stateless_normal(var.shape, [1, var.shape.rank or 0]) * 0.3)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((3, 12, 16)), tf.float32)
    y = tf.constant(rng.standard_normal((3, 5, 6)), tf.float32)
    xp = tf.constant(rng.standard_normal((12, 8)), tf.float32)
    yp = tf.constant(rng.standard_normal((5, 6)), tf.float32)
    mask = tf.constant([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], tf.float32)
    call = dict(x_pos=xp if kwargs["from_pos_dim"] else None, y_pos=yp if kwargs["to_pos_dim"] else None,
                mask=mask, training=True, seed=tf.constant([3, 4]))
    layer.fused = True
    out_f, p_f = layer(x, y, **call)
    layer.fused = False
    out_r, p_r = layer(x, y, **call)
    np.testing.assert_allclose(p_f.numpy(), p_r.numpy(), atol=2e-6)
    np.testing.assert_allclose(out_f.numpy(), out_r.numpy(), rtol=1e-4, atol=1e-5)
    if not (kwargs.get("img_gate") or kwargs.get("ltnt_gate")):
        np.testing.assert_allclose(p_f.numpy().sum(-1), 1.0, atol=1e-5)
        assert np.abs(p_f.numpy()[:, :, :, 2][0]).max() < 1e-3  # masked-out latent of sample 0
