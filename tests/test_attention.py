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


# ------------------------------------------------------------------------- the spec's formulas (§2.4.2) in numpy
def _dense(layer, x):
    w, b = layer.effective()
    return x @ w.numpy().astype(np.float64) + b.numpy()


def _heads(t, n):
    """`[B, L, n*c]` -> `[B, n, L, c]`."""
    b, length, width = t.shape
    return t.reshape(b, length, n, width // n).transpose(0, 2, 1, 3)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _probs_np(layer, x, y, xp, yp, mask):
    """Attention probabilities `[B, N, F, T]`: standard keys or k-means centroids, with the -10000 mask."""
    n, h = layer.heads, layer.head_dim
    q = _dense(layer.query, x)
    qp = _dense(layer.from_pos, xp)[None] + 0 * q if xp is not None else np.zeros_like(q)
    masked = (1.0 - mask)[:, None, None, :] * -10000.0
    if not layer.kmeans:
        k = _dense(layer.key, y) + (_dense(layer.to_pos, yp)[None] if yp is not None else 0)
        return _softmax(_heads(q + qp, n) @ _heads(k, n).transpose(0, 1, 3, 2) / np.sqrt(h) + masked)
    e = _heads(np.concatenate([q, qp], axis=-1), n)  # [B, N, F, 2h]
    centroids = layer.centroids.numpy().astype(np.float64)
    for i, st in enumerate(layer.st_weights):
        if i > 0:
            centroids = (probs / (probs.sum(2, keepdims=True) + 1e-8)).transpose(0, 1, 3, 2) @ e
        probs = _softmax((e * st.numpy()) @ centroids.transpose(0, 1, 3, 2) / np.sqrt(h) + masked)
    return probs


def _gated_np(layer, probs, x, y, xp, yp):
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    if layer.gate_from is not None:
        g = _dense(layer.gate_from[0], x) + 1.0 + (_dense(layer.gate_from[1], xp)[None] if xp is not None else 0)
        probs = probs * sig(g).transpose(0, 2, 1)[:, :, :, None]
    if layer.gate_to is not None:
        g = _dense(layer.gate_to[0], y) + (_dense(layer.gate_to[1], yp)[None] if yp is not None else 0)
        probs = probs * sig(g).transpose(0, 2, 1)[:, :, None, :]
    return probs


def _integrated_np(layer, x, control):
    if layer.norm is not None:
        axes = {"layer": (2,), "instance": (1,), "batch": (0, 1)}[layer.norm]
        if layer.integration in ("add", "both"):
            x = x - x.mean(axis=axes, keepdims=True)
        if layer.integration in ("mul", "both"):
            x = x / np.sqrt((x ** 2).mean(axis=axes, keepdims=True) + 1e-8)
    if layer.integration == "add":
        return x + control
    if layer.integration == "mul":
        return x * (1 + control)
    gamma, beta = np.split(control, 2, axis=-1)
    return x * (1 + gamma) + beta


VARIANTS = [dict(kmeans=k, norm=nm, integration=it, num_heads=nh, kmeans_iters=ki)
            for k, nh, ki in ((False, 1, 1), (False, 2, 1), (True, 1, 1), (True, 2, 1), (True, 1, 2))
            for nm in (None, "layer", "instance", "batch") for it in ("add", "mul", "both")]
VARIANTS += [dict(kmeans=True, norm="layer", integration="mul", img_gate=True, ltnt_gate=True, num_heads=2),
             dict(kmeans=False, integration="add", img_gate=True, from_pos_dim=None, to_pos_dim=None)]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in sorted(v)))
def test_layer_computes_the_spec_formula(variant, fused):
    """Every attention variant (keys, heads, k-means iterations, normalization, integration, gates) against the
    spec's formulas in float64 numpy: a wrong merge of heads, norm axis or integration breaks it."""
    kwargs = {"from_pos_dim": 8, "to_pos_dim": 6, "to_len": 5, **variant}
    layer = AttentionLayer(np.random.default_rng(0), from_dim=16, to_dim=6, dim=16, fused=fused, **kwargs)
    for var in layer.trainable_variables:
        var.assign(var + tf.random.stateless_normal(var.shape, [2, var.shape.rank or 0]) * 0.3)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3, 12, 16)), rng.standard_normal((3, 5, 6))
    xp = rng.standard_normal((12, 8)) if kwargs["from_pos_dim"] else None
    yp = rng.standard_normal((5, 6)) if kwargs["to_pos_dim"] else None
    mask = np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], np.float64)
    f32 = lambda a: None if a is None else tf.constant(a, tf.float32)  # noqa: E731
    out, probs = layer(f32(x), f32(y), x_pos=f32(xp), y_pos=f32(yp), mask=f32(mask))
    want_probs = _probs_np(layer, x, y, xp, yp, mask)
    np.testing.assert_allclose(probs.numpy(), want_probs, rtol=1e-4, atol=2e-6)
    v = _heads(_dense(layer.value, y), layer.heads)
    u = (_gated_np(layer, want_probs, x, y, xp, yp) @ v).transpose(0, 2, 1, 3).reshape(3, 12, 16)
    want = _integrated_np(layer, x, _dense(layer.out, u))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
