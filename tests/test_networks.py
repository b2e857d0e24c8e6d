"""Every preset and attention variant builds, runs forward/backward/R1 with finite values, and behaves as specified."""

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops.modconv import modulated_conv_to_rgb
from dnnlib.util import UserError
from ops_oracle import np_downsample_2d, np_upsample_2d
from training.networks import build_networks, discriminator, synthesis

TINY = dict(channel_max=32)
PRESETS = ["ganformer-ffhq", "ganformer-clevr", "ganformer-cityscapes", "ganformer-bedrooms", "gan", "stylegan2",
           "kgan", "sagan"]
VARIANTS = {
    "kmeans-iters-2": dict(kmeans_iters=2),
    "duplex": dict(img2ltnt=True),
    "ltnt2ltnt": dict(ltnt2ltnt=True),
    "img2img": dict(img2img=4),
    "gates": dict(img_gate=True, ltnt_gate=True),
    "standard-keys-add": dict(kmeans=False, integration="add"),
    "both-instance": dict(integration="both", norm="instance"),
    "batch-norm": dict(norm="batch"),
    "heads-2": dict(num_heads=2),
    "pos-linear": dict(pos_type="linear"),
    "pos-trainable": dict(pos_type="trainable"),
    "pos-trainable2d": dict(pos_type="trainable2d", pos_init="normal"),
    "no-pos": dict(use_pos=False),
    "d-transformer": dict(transformer=True),
    "mapping-dim": dict(mapping_dim=24),
    "mapping-shared": dict(mapping_shared_dim=48),
    "start-end": dict(start_res=3, end_res=5),
    "skip-arch": dict(architecture="skip"),
    "orig-arch": dict(architecture="orig"),
    "component-dropout": dict(component_dropout=0.5, component_mixing=0.5),
    "crop": dict(crop_ratio=0.5),
}


def _run_all(G, D, batch=4, labels=None, seed=0):
    """Forward (eval and training), G backward, D backward and R1; returns (images, maps)."""
    rng = np.random.default_rng(seed)
    z = tf.constant(rng.standard_normal((batch,) + G.latent_shape), tf.float32)
    images, maps = G(z, labels, return_maps=True, truncation_psi=0.7)
    assert np.isfinite(images.numpy()).all()
    with tf.GradientTape() as tape:
        fake = G(z, labels, training=True, seed=tf.constant([1, 2]))
        loss = tf.reduce_mean(tf.nn.softplus(-D(fake, labels, training=True)))
    grads = tape.gradient(loss, G.trainable_variables)
    assert all(np.isfinite(g.numpy()).all() for g in grads if g is not None)
    reals = tf.constant(rng.uniform(-1, 1, fake.shape), tf.float32)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(reals)
            scores = D(reals, labels, training=True)
            score_sum = tf.reduce_sum(scores)
        r1 = tf.reduce_sum(tf.square(inner.gradient(score_sum, reals)), axis=[1, 2, 3])
        d_loss = tf.reduce_mean(tf.nn.softplus(scores)) + tf.reduce_mean(r1)
    d_grads = outer.gradient(d_loss, D.trainable_variables)
    assert any(g is not None for g in d_grads)
    assert all(np.isfinite(g.numpy()).all() for g in d_grads if g is not None)
    return images, maps


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_trains_a_step(preset):
    G, D = build_networks(preset, 32, **TINY)
    images, maps = _run_all(G, D)
    assert images.shape == (4, 32, 32, 3)
    if G.cfg.transformer:
        assert maps.shape == (4, G.cfg.components_num, G.num_attention_layers, 1, 32, 32)
        np.testing.assert_allclose(tf.reduce_sum(maps, axis=1).numpy(), 1.0, atol=1e-5)
    else:
        assert maps is None


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_attention_variants(name):
    over = dict(VARIANTS[name])
    overrides = dict(TINY, components_num=4, latent_dim=16)
    if name == "d-transformer":
        G, D = build_networks("ganformer-ffhq", 16, **overrides)
        from training.networks.discriminator import Discriminator
        import dataclasses
        D = Discriminator(dataclasses.replace(D.cfg, transformer=True))
        assert "16x16/AttLayer_n2l/weight_query" in D.variable_dict()
    else:
        G, D = build_networks("ganformer-ffhq", 16, **overrides, **over)
    images, maps = _run_all(G, D)
    rows = 8 if name == "crop" else 16
    assert images.shape == (4, rows, 16, 3)
    if maps is not None and not G.cfg.attention.img_gate and not G.cfg.attention.ltnt_gate:
        np.testing.assert_allclose(tf.reduce_sum(maps, axis=1).numpy(), 1.0, atol=1e-5)


def test_param_counts_match_the_original_at_256():
    G, D = build_networks("ganformer-ffhq", 256)
    assert G.num_params() == 30_903_632 and D.num_params() == 28_864_641
    assert len(G.variable_dict()) == 333 and len(D.variable_dict()) == 39
    assert "synthesis/256x256/ToRGB/extraLayer/weight" in G.variable_dict()
    assert G.variable_dict()["synthesis/noise13"].shape == (1, 512, 512, 1)
    G, D = build_networks("ganformer-clevr", 256)
    assert G.num_params() == 30_357_936 and D.num_params() == 28_864_257


def test_baselines_are_distinct():
    names = {}
    for preset in ("gan", "stylegan2", "sagan", "kgan"):
        G, _ = build_networks(preset, 32, **TINY)
        names[preset] = set(G.variable_dict())
    assert any("AttLayer_n2n" in n for n in names["sagan"]), "SAGAN must really use image self-attention"
    assert not any("AttLayer" in n for n in names["gan"])
    assert any(n.startswith("synthesis/4x4/Dense") for n in names["gan"])
    assert "synthesis/4x4/Const/const" in names["stylegan2"]
    assert any(n.startswith("synthesis/merge5/") for n in names["kgan"])
    assert len({frozenset(v) for v in names.values()}) == 4


def test_duplex_latent_update_gets_gradients():
    G, D = build_networks("ganformer-ffhq", 16, channel_max=32, components_num=4, latent_dim=16, img2ltnt=True)
    z = tf.random.normal((2,) + G.latent_shape, seed=1)
    # The latents updated at one layer feed the attention of the next ones (the last layer's update has no consumer).
    n2l = [v for n, v in G.variable_dict().items()
           if n.startswith("synthesis/4x4/") and ("AttLayer_n2l/weight_query" in n or "Densen2l_0/weight" in n)]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(G(z)))
    grads = tape.gradient(loss, n2l)
    assert len(n2l) >= 2 and all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_attention_dropout_is_honoured_in_training_only():
    G, _ = build_networks("ganformer-ffhq", 16, channel_max=32, components_num=4, latent_dim=16,
                          attention_dropout=0.5, style_mixing=0.0)
    z = tf.random.normal((2,) + G.latent_shape, seed=3)
    eval_a, eval_b = G(z), G(z)
    np.testing.assert_array_equal(eval_a.numpy(), eval_b.numpy())
    seed = tf.constant([5, 6])
    train_a = G(z, training=True, seed=seed)
    np.testing.assert_array_equal(train_a.numpy(), G(z, training=True, seed=seed).numpy())
    assert np.abs(train_a.numpy() - eval_a.numpy()).max() > 1e-4


def test_jit_compile_matches_eager():
    G, D = build_networks("ganformer-ffhq", 16, channel_max=32, components_num=4, latent_dim=16)
    z = tf.random.normal((2,) + G.latent_shape, seed=4)
    eager = G(z, truncation_psi=0.7)
    jit = tf.function(lambda z: G(z, truncation_psi=0.7), jit_compile=True)(z)
    np.testing.assert_allclose(jit.numpy(), eager.numpy(), rtol=1e-4, atol=1e-4 * np.abs(eager.numpy()).max())
    d_eager = D(eager)
    d_jit = tf.function(lambda x: D(x), jit_compile=True)(eager)
    np.testing.assert_allclose(d_jit.numpy(), d_eager.numpy(), rtol=1e-4, atol=1e-5)


def test_folded_extra_layer_equals_the_reference_path(monkeypatch):
    """The `extraLayer` + ToRGB pair folded into one conv gives the reference images and G gradients."""
    from training.networks import synthesis_layer
    calls = []

    def counted(*args):
        calls.append(1)
        return modulated_conv_to_rgb(*args)

    monkeypatch.setattr(synthesis_layer, "modulated_conv_to_rgb", counted)
    G, _ = build_networks("ganformer-ffhq", 16, channel_max=32, components_num=4, latent_dim=16)
    torgb = G.synthesis.torgb[4]
    assert torgb.extra is not None and torgb.fold
    z = tf.random.normal((3,) + G.latent_shape, seed=5)

    def run():
        with tf.GradientTape() as tape:
            images = G(z, training=True, seed=tf.constant([3, 4]))
            loss = tf.reduce_sum(tf.sin(images))
        return images.numpy(), [None if g is None else g.numpy()
                                for g in tape.gradient(loss, G.trainable_variables)]

    folded, folded_grads = run()
    assert len(calls) == 1
    torgb.fold = False
    reference, reference_grads = run()
    assert len(calls) == 1
    scale = np.abs(reference).max()
    np.testing.assert_allclose(folded, reference, rtol=0, atol=1e-5 * scale)
    assert [f is None for f in folded_grads] == [r is None for r in reference_grads]
    # Gradients that are zero in exact arithmetic (e.g. the key bias under softmax) are float noise in both paths,
    # so each tensor is held to 1e-4 of its own scale or 1e-6 of the largest gradient, whichever is larger.
    top = max(np.abs(r).max() for r in reference_grads if r is not None)
    for f, r, v in zip(folded_grads, reference_grads, G.trainable_variables):
        if r is not None:
            np.testing.assert_allclose(f, r, rtol=0, atol=max(1e-4 * np.abs(r).max(), 1e-6 * top), err_msg=v.name)


def test_conditional_networks_use_labels():
    G, D = build_networks("ganformer-ffhq", 16, channel_max=32, components_num=4, latent_dim=16, label_dim=3)
    labels = tf.one_hot([0, 1, 2, 0], 3)
    _run_all(G, D, labels=labels)
    z = tf.random.normal((1,) + G.latent_shape, seed=5)
    a, b = G(z, tf.one_hot([0], 3)), G(z, tf.one_hot([1], 3))
    assert np.abs(a.numpy() - b.numpy()).max() > 1e-4
    img = tf.random.uniform((2, 16, 16, 3), -1, 1, seed=6)
    assert np.abs(D(img, tf.one_hot([0, 0], 3)).numpy() - D(img, tf.one_hot([1, 1], 3)).numpy()).max() > 0


@pytest.mark.parametrize("merge", ["sum", "softmax", "max", "leaves"])
@pytest.mark.parametrize("arch", ["skip", "resnet"])
def test_kgan_merge_types(merge, arch):
    G, D = build_networks("kgan", 16, channel_max=32, merge_type=merge, merge_layer=3, architecture=arch,
                          latent_dim=16)
    images, _ = _run_all(G, D)
    assert images.shape == (4, 16, 16, 3)


def _merge_weights_np(scores, merge_type, merge_same):
    """The spec's k-GAN merge weights (§2.4.5) from per-pixel scores `[B, k, H, W]`."""
    if merge_same:
        scores = np.broadcast_to(scores.sum(axis=(2, 3), keepdims=True), scores.shape)
    k = scores.shape[1]
    if merge_type == "softmax":
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    if merge_type == "max":
        return (np.arange(k)[None, :, None, None] == scores.argmax(1)[:, None]).astype(np.float64)
    if merge_type == "leaves":  # back-to-front alpha compositing: component 0 at the back, alpha_0 = 1
        alpha = 1 / (1 + np.exp(-scores))
        alpha[:, 0] = 1.0
        return np.stack([alpha[:, i] * np.prod(1 - alpha[:, i + 1:], axis=1) for i in range(k)], axis=1)
    return np.ones_like(scores)


@pytest.mark.parametrize("merge_same", [False, True])
@pytest.mark.parametrize("merge", ["sum", "softmax", "max", "leaves"])
def test_kgan_merge_matches_the_closed_form(merge, merge_same):
    """Features, RGB and latents merged as sum_i a_i x_i with the spec's weights a (a wrong axis or formula breaks it)."""
    from training.networks.kgan import ComponentMerge
    b, k, h, c = 2, 3, 4, 5
    layer = ComponentMerge(np.random.default_rng(0), c, merge, merge_same)
    rng = np.random.default_rng(1)
    x, y, ws = rng.standard_normal((b * k, h, h, c)), rng.standard_normal((b * k, h, h, 3)), rng.standard_normal(
        (b, k, 2, 6))
    mx, my, mws = layer(tf.constant(x, tf.float32), tf.constant(y, tf.float32), tf.constant(ws, tf.float32))
    scores = (x @ (layer.score.weight.numpy()[0, 0] * layer.score.coef))[..., 0].reshape(b, k, h, h)
    a = _merge_weights_np(scores, merge, merge_same)
    if merge in ("softmax", "leaves"):
        np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-12)  # convex combinations per pixel
    np.testing.assert_allclose(mx.numpy(), np.einsum("bkhw,bkhwc->bhwc", a, x.reshape(b, k, h, h, c)), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(my.numpy(), np.einsum("bkhw,bkhwc->bhwc", a, y.reshape(b, k, h, h, 3)), rtol=1e-4,
                               atol=1e-5)
    lw = a.mean(axis=(2, 3)) / (k if merge == "sum" else 1)
    np.testing.assert_allclose(mws.numpy(), np.einsum("bk,bksd->bsd", lw, ws), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("merge", ["sum", "softmax", "max", "leaves"])
def test_kgan_images_are_symmetric_in_the_components_except_for_leaves(merge):
    """With the per-component inputs made equal (const input and noise buffers [k, ...]), sum, softmax
    and max merges do not depend on the order of the k components; leaves compositing (back to front) does."""
    G, _ = build_networks("kgan", 16, channel_max=32, merge_type=merge, merge_layer=3, latent_dim=16,
                          architecture="resnet")
    for var in [G.synthesis.const] + list(G.synthesis.noise_bufs):
        var.assign(tf.broadcast_to(var[:1], var.shape))
    z = tf.random.stateless_normal((2,) + G.latent_shape, [3, 4])
    a = G(z, truncation_psi=1.0, noise_mode="const").numpy()
    b = G(tf.reverse(z, axis=[1]), truncation_psi=1.0, noise_mode="const").numpy()
    diff = np.abs(a - b).max()
    assert (diff > 1e-3) if merge == "leaves" else (diff < 1e-5), diff


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="components_num > 1"):
        build_networks("stylegan2", 32, components_num=4)
    with pytest.raises(UserError, match="unknown config field"):
        build_networks("stylegan2", 32, not_a_field=1)
    with pytest.raises(UserError, match="power of two"):
        build_networks("stylegan2", 48)


@pytest.mark.parametrize("net", ["G", "D"])
def test_skip_architecture_resamples_rgb_with_the_fir_filter(monkeypatch, net):
    """The skip G up-samples its running RGB image, and the skip D down-samples its input image pyramid, with the
    [1, 3, 3, 1] FIR filter as the original (`upsample_2d`/`downsample_2d` with `resample_kernel`), not with nearest
    neighbour / box filtering: swapping the op for the numpy FIR oracle changes nothing, the plain oracle does."""
    G, D = build_networks("stylegan2", 16, channel_max=32, latent_dim=16, architecture="skip")
    z = tf.random.normal((2,) + G.latent_shape, seed=7)
    img = tf.random.uniform((2, 16, 16, 3), -1, 1, seed=8)
    module, name, oracle = ((synthesis, "upsample_2d", np_upsample_2d) if net == "G"
                            else (discriminator, "downsample_2d", np_downsample_2d))
    run = (lambda: G(z, noise_mode="const").numpy()) if net == "G" else (lambda: D(img).numpy())
    ours = run()

    def swapped(kernel):
        monkeypatch.setattr(module, name, lambda x, k=None: tf.constant(oracle(x.numpy(), kernel), tf.float32))
        return run()

    scale = np.abs(ours).max()
    np.testing.assert_allclose(ours, swapped([1, 3, 3, 1]), rtol=0, atol=1e-5 * scale)
    assert np.abs(ours - swapped(None)).max() > 1e-3 * scale
