"""The ADA augmentation pipeline and DiffAugment against closed forms: p = 0 is the identity, each
transform alone, the geometric chain vs a direct resampling, probabilities, gradients (first and second order,
eager and XLA)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from training.augment import color
from training.augment import geometry as geom
from training.augment.pipeline import PIPES, AdaPipeline, _Draws
from training.augment.diffaugment import DiffAugment, parse_policies

SEED = tf.constant([7, 11], tf.int64)


def _images(b=4, h=16, w=12, c=3, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (b, h, w, c)), tf.float32)


def _single(name, b=16, h=12, w=12, c=3):
    """Outputs of the pipeline with only transform `name`, at p = 1, and its inputs (numpy)."""
    x = _images(b, h, w, c, seed=1)
    return x.numpy(), AdaPipeline(strength={name: 1.0}, channels=c)(x, 1.0, SEED).numpy()


def _matches(out, candidates, atol=1e-5):
    """Index of the candidate `out` equals (within atol), or None."""
    for i, cand in enumerate(candidates):
        if cand.shape == out.shape and np.allclose(out, cand, atol=atol):
            return i
    return None


# ------------------------------------------------------------------------------------------------ identity
@pytest.mark.parametrize("pipe,channels", [("bgcfnc", 3), ("bgc", 1), ("blit", 3), ("geom", 3), ("color", 3),
                                           ("filter", 3), ("noise", 1), ("cutout", 3)])
def test_p_zero_gives_exactly_the_input(pipe, channels):
    x = _images(c=channels)
    np.testing.assert_array_equal(AdaPipeline(pipe, channels)(x, 0.0, SEED).numpy(), x.numpy())


def test_identity_resampling_reproduces_the_pixels():
    """The up/down filters are a perfect-reconstruction pair: no blur without a transform (rounding only)."""
    x = _images()
    np.testing.assert_allclose(geom.resample(x, tf.eye(3, batch_shape=[4])).numpy(), x.numpy(), atol=2e-6)


# -------------------------------------------------------------------------------------- geometric, closed
def test_xflip_is_the_reversed_x_axis():
    x = _images()
    flip = geom.scale(-tf.ones([4]), tf.ones([4]))
    np.testing.assert_allclose(geom.resample(x, flip).numpy(), x.numpy()[:, :, ::-1], atol=2e-6)
    xs, out = _single("xflip")
    seen = [_matches(o, [a, a[:, ::-1]]) for a, o in zip(xs, out)]
    assert None not in seen and set(seen) == {0, 1}, seen


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate90_is_numpy_rot90(k):
    x = _images(h=12, w=12)
    g_inv = tf.linalg.inv(geom.rotate90(tf.fill([4], k)))
    np.testing.assert_allclose(geom.resample(x, g_inv).numpy(), np.rot90(x.numpy(), k, axes=(1, 2)), atol=2e-6)


def test_pipeline_rotate90_turns_each_image_by_some_quarter():
    xs, out = _single("rotate90", b=24)
    seen = [_matches(o, [np.rot90(a, k) for k in range(4)]) for a, o in zip(xs, out)]
    assert None not in seen and len(set(seen)) >= 3, seen


def _shifted(a, tx, ty):
    """`a` `[H, W, C]` moved by (tx, ty) pixels, the vacated pixels filled by reflection."""
    h, w = a.shape[:2]
    pad = np.pad(a, [(h, h), (w, w), (0, 0)], mode="reflect")
    return pad[h - ty:2 * h - ty, w - tx:2 * w - tx]


def test_integer_translation_shifts_pixels_with_reflection():
    x = _images()
    g_inv = tf.linalg.inv(geom.translate(tf.fill([4], 3.0), tf.fill([4], -2.0)))
    out = geom.resample(x, g_inv).numpy()
    for a, o in zip(x.numpy(), out):
        np.testing.assert_allclose(o, _shifted(a, 3, -2), atol=2e-6)
    # the pipeline's xint: some shift within +-round(0.125 * 16) = 2 pixels per axis, reflected
    xs, out = _single("xint", h=16, w=16)
    shifts = [(tx, ty) for tx in range(-2, 3) for ty in range(-2, 3)]
    seen = [_matches(o, [_shifted(a, tx, ty) for tx, ty in shifts]) for a, o in zip(xs, out)]
    assert None not in seen and len(set(seen)) > 3, seen


def _smooth(x, y):
    """A band-limited test function of centred coordinates."""
    return np.sin(0.25 * x + 0.4) * np.cos(0.18 * y - 0.3) + 0.3 * np.sin(0.12 * (x + y))


def test_geometric_chain_matches_a_direct_resampling_of_a_smooth_image():
    """The blit and geometric transforms at p = 1 (random per image) vs the test function evaluated at the positions
    the composed inverse matrix maps each pixel to: max error < 0.01 (signal amplitude 1.3) wherever the source
    position lies 2 pixels or more inside the image (reflected content is not comparable)."""
    h = w = 32
    ys, xs = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    batch = 12
    images = tf.constant(np.repeat(_smooth(xs, ys)[None, :, :, None], batch, 0), tf.float32)
    pipe = AdaPipeline("bg", channels=1)
    out = pipe(images, 1.0, SEED).numpy()[..., 0]
    g_inv = pipe.geometry(_Draws(SEED, batch), tf.constant(1.0), h, w).numpy()  # the same draws as the call
    assert not any(np.allclose(g, np.eye(3)) for g in g_inv)
    compared = 0
    for o, g in zip(out, g_inv):
        src = g @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
        inside = (np.abs(src[0]) < (w - 1) / 2 - 2) & (np.abs(src[1]) < (h - 1) / 2 - 2)
        err = np.abs(o.ravel() - _smooth(src[0], src[1]))[inside]
        assert err.max(initial=0) < 0.01
        compared += inside.sum()
    assert compared > batch * h * w / 3


def test_rotation_probability_is_p_overall():
    """Two chances of an arbitrary rotation, each 1 - sqrt(1 - p): an image is rotated with probability p."""
    n, p = 4000, 0.6
    for name, expect in (("rotate", p), ("xflip", p / 2)):  # a flip is drawn as 0 or 1: half are no-ops
        g_inv = AdaPipeline(strength={name: 1.0}).geometry(_Draws(SEED, n), tf.constant(p), 8, 8)
        moved = 1 - geom.is_identity(g_inv).numpy().mean()
        assert abs(moved - expect) < 0.03, (name, moved)


# ---------------------------------------------------------------------------------------- colour, closed
COLOURS = np.array([[1.0, -1.0, -1.0], [0.2, 0.5, -0.4], [0.3, 0.3, 0.3], [-0.8, 0.1, 0.9]], np.float32)


def _apply(matrix_fn, value):
    x = tf.constant(COLOURS[None, None], tf.float32)  # one image, 1 x 4 pixels
    return color.apply_color(x, matrix_fn(tf.constant([value], tf.float32))).numpy()[0, 0]


def test_brightness_contrast_saturation_on_known_colours():
    np.testing.assert_allclose(_apply(color.brightness, 0.25), COLOURS + 0.25, atol=1e-6)
    np.testing.assert_allclose(_apply(color.contrast, 1.5), COLOURS * 1.5, atol=1e-6)
    grey = COLOURS.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(_apply(color.saturation, 0.0), np.repeat(grey, 3, 1), atol=1e-6)
    np.testing.assert_allclose(_apply(color.saturation, 2.0), grey + 2 * (COLOURS - grey), atol=1e-6)
    np.testing.assert_allclose(_apply(color.saturation, 2.0)[0], [7 / 3, -5 / 3, -5 / 3], atol=1e-6)
    np.testing.assert_allclose(_apply(color.lumaflip, 1.0), COLOURS - 2 * grey, atol=1e-6)


def test_hue_rotation_keeps_luma_and_a_third_turn_cycles_the_channels():
    for theta in (0.3, -1.7, 2.9):
        out = _apply(color.hue_rotation, theta)
        np.testing.assert_allclose(out.mean(axis=1), COLOURS.mean(axis=1), atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(out - out.mean(1, keepdims=True), axis=1),
                                   np.linalg.norm(COLOURS - COLOURS.mean(1, keepdims=True), axis=1), atol=1e-5)
    np.testing.assert_allclose(_apply(color.hue_rotation, 2 * math.pi / 3), COLOURS[:, [2, 0, 1]], atol=1e-6)


@pytest.mark.parametrize("name", ["brightness", "contrast", "lumaflip", "hue", "saturation"])
def test_pipeline_colour_transform_alone(name):
    """At p = 1 each image gets its own parameter; the output has the closed form of that transform."""
    xs, out = _single(name)
    grey_in, grey_out = xs.mean(-1, keepdims=True), out.mean(-1, keepdims=True)
    values = []
    for a, o, gi, go in zip(xs, out, grey_in, grey_out):
        if name == "brightness":
            values.append((o - a).mean())
            np.testing.assert_allclose(o - a, values[-1], atol=1e-5)
        elif name == "contrast":
            values.append((o / a).mean())
            np.testing.assert_allclose(o, a * values[-1], atol=1e-5)
        elif name == "lumaflip":
            values.append(_matches(o, [a, a - 2 * gi]))
        elif name == "hue":
            np.testing.assert_allclose(go, gi, atol=1e-5)
            values.append(np.round(np.abs(o - a).max(), 4))
        else:  # saturation: greys kept, chroma scaled by one factor per image
            np.testing.assert_allclose(go, gi, atol=1e-5)
            values.append(((o - go) / (a - gi)).mean())
            np.testing.assert_allclose(o - go, (a - gi) * values[-1], atol=1e-4)
    assert None not in values and len(set(np.round(values, 4))) >= 2, values
    if name == "brightness":
        assert 0.1 < np.std(values) < 0.35  # N(0, 0.2^2)


# --------------------------------------------------------------------------------------- f, n, c groups
def test_filter_bank_sums_to_an_impulse_and_unit_gains_keep_the_image():
    bank = color.band_filters()
    impulse = np.zeros(bank.shape[1])
    impulse[bank.shape[1] // 2] = 1
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-12)
    x = _images()
    np.testing.assert_allclose(color.filter_images(x, tf.ones([4, 4])).numpy(), x.numpy(), atol=1e-5)
    low = color.filter_images(x, tf.constant([[1.0, 0, 0, 0]] * 4)).numpy()  # the lowest band only: smooth
    assert np.abs(np.diff(low, axis=2)).mean() < 0.3 * np.abs(np.diff(x.numpy(), axis=2)).mean()


def test_noise_and_cutout_alone():
    xs, out = _single("noise")
    sigmas = [np.std(o - a) for a, o in zip(xs, out)]
    assert 0 < np.mean(sigmas) < 0.3 and len(set(np.round(sigmas, 5))) > 4
    xs, out = _single("cutout", h=16, w=16)
    for a, o in zip(xs, out):
        zero = np.all(o == 0, axis=-1)
        np.testing.assert_array_equal(o[~zero], a[~zero])
        rows, cols = np.nonzero(zero)
        assert 0 < zero.sum() <= 64 and zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one rectangle


# -------------------------------------------------------------------------------------------- DiffAugment
def test_diffaugment_translation_and_cutout():
    x = _images(b=12, h=16, w=16)
    out = DiffAugment("translation")(x, 0.0, SEED).numpy()
    for a, o in zip(x.numpy(), out):
        shifts = [(tx, ty) for tx in range(-2, 3) for ty in range(-2, 3)]  # round(0.125 * 16) = 2
        cands = []
        for tx, ty in shifts:
            pad = np.pad(a, [(2, 2), (2, 2), (0, 0)])
            cands.append(pad[2 + ty:18 + ty, 2 + tx:18 + tx])
        assert _matches(o, cands, atol=0) is not None
    out = DiffAugment("cutout")(x, 0.0, SEED).numpy()
    for a, o in zip(x.numpy(), out):
        zero = np.all(o == 0, axis=-1)
        np.testing.assert_array_equal(o[~zero], a[~zero])
        rows, cols = np.nonzero(zero)
        assert np.ptp(rows) + 1 <= 8 and np.ptp(cols) + 1 <= 8 and zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert any(np.all(o == 0, axis=-1).sum() == 64 for o in out)  # not clipped: 8 x 8


def test_diffaugment_color_of_a_grey_image():
    """A flat grey image keeps no contrast or saturation to change: only the brightness shift U(-0.5, 0.5) acts."""
    x = tf.fill([16, 8, 8, 3], 0.1)
    out = DiffAugment("color")(x, 0.0, SEED).numpy()
    shift = out[:, 0, 0, 0] - 0.1
    np.testing.assert_allclose(out, np.broadcast_to(0.1 + shift[:, None, None, None], out.shape), atol=1e-6)
    assert np.all(np.abs(shift) <= 0.5) and np.std(shift) > 0.1


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="bgx"):
        AdaPipeline("bgx")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AdaPipeline("bgc", channels=4)
    AdaPipeline("bg", channels=4)  # geometry alone works for any channel count
    with pytest.raises(ValueError, match="policies"):
        parse_policies("color,zoom")
    assert set(PIPES) >= {"bgc", "bgcf", "bgcfnc"}


# ------------------------------------------------------------------------------------------------ gradients
def _tiny_d(kernel):
    return lambda img: tf.reduce_sum(tf.tanh(tf.nn.conv2d(img, kernel, 1, "SAME")), axis=[1, 2, 3])


def _r1_grads(augment, x, kernel, p):
    """(dD/dx, d|dD/dx|^2/dkernel): the first and second-order gradients R1 needs, through the augmentation."""
    d = _tiny_d(kernel)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            score = tf.reduce_sum(d(augment(x, p, SEED)))
        gx = inner.gradient(score, x)
        penalty = tf.reduce_sum(tf.square(gx))
    return gx, outer.gradient(penalty, kernel)


AUGMENTS = {"ada-bgcfnc": AdaPipeline("bgcfnc"), "diffaugment": DiffAugment()}


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_first_and_second_order_gradients_are_finite_and_nonzero(name):
    x = _images(b=4, h=8, w=8)
    kernel = tf.Variable(np.random.default_rng(2).normal(size=(3, 3, 3, 2)).astype(np.float32))
    gx, gk = _r1_grads(AUGMENTS[name], x, kernel, tf.constant(0.9))
    for g in (gx, gk):
        assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).max() > 1e-4


@pytest.mark.slow
def test_xla_compiles_the_pipelines_with_second_order_gradients():
    """Under jit_compile: identity at p = 0, a fixed resampling as in eager mode, and R1's gradients (XLA draws other
    random numbers than eager mode, so the random outputs are compared only for being finite)."""
    x = _images(b=4, h=8, w=8)
    kernel = tf.Variable(np.random.default_rng(2).normal(size=(3, 3, 3, 2)).astype(np.float32))
    flip_rot = geom.scale(-tf.ones([4]), tf.ones([4])) @ geom.rotate(tf.fill([4], 0.4))

    def run(images):
        ada, diff = AUGMENTS["ada-bgcfnc"], AUGMENTS["diffaugment"]
        return (ada(images, tf.constant(0.0), SEED), geom.resample(images, flip_rot),
                *_r1_grads(ada, images, kernel, tf.constant(0.9)), *_r1_grads(diff, images, kernel, 0.0))

    identity, resampled, *grads = tf.function(run, jit_compile=True, autograph=False)(x)
    np.testing.assert_array_equal(identity.numpy(), x.numpy())
    np.testing.assert_allclose(resampled.numpy(), geom.resample(x, flip_rot).numpy(), atol=1e-5)
    for g in grads:
        assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).max() > 1e-4
