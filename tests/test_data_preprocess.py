"""Spec §4.2 preprocessing: colour-mode conversion, crop to ratio, pad to square, resize to a power of two."""

import numpy as np
import pytest
from PIL import Image

from training.data import preprocess


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("w,h,ratio,expected", [
    (342, 256, 1.0, 256),   # crop to 256x256
    (426, 426, 1.0, 512),   # 2^round(log2(426)) = 512
    (300, 200, 1.0, 256),   # crop 200x200 -> 256
    (2048, 1024, 0.5, 2048),
    (640, 480, 0.75, 512),  # content 640x480, padded to 640 -> 512
    (256, 384, 188 / 256, 256),  # portrait: crop 256x188, pad to 256
    (60, 40, 1.0, 32),
])
def test_natural_resolution(w, h, ratio, expected):
    assert preprocess.natural_resolution(w, h, ratio) == expected
    img = Image.fromarray(_rgb(h, w))
    assert preprocess.preprocess_image(img, ratio).shape == (expected, expected, 3)


def test_crop_max_rectangle_centres_the_content_rectangle():
    arr = _rgb(100, 300)
    out = np.asarray(preprocess.crop_max_rectangle(Image.fromarray(arr), 0.5))
    # s = min(300, 100 / 0.5) = 200: width 200, height 100, centred horizontally (offset 50).
    np.testing.assert_array_equal(out, arr[:, 50:250])
    tall = _rgb(300, 100)
    out = np.asarray(preprocess.crop_max_rectangle(Image.fromarray(tall), 0.75))
    np.testing.assert_array_equal(out, tall[112:187])  # s = 100, height 75, top (300 - 75) // 2


def test_pad_min_square_puts_black_bars_top_and_bottom():
    arr = _rgb(4, 8)
    out = np.asarray(preprocess.pad_min_square(Image.fromarray(arr)))
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[2:6], arr)
    assert not out[:2].any() and not out[6:].any()


def test_preprocess_wide_image_with_ratio_keeps_pixels_exactly():
    arr = _rgb(8, 16)
    out = preprocess.preprocess_image(Image.fromarray(arr), ratio=0.5)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[4:12], arr)
    assert not out[:4].any() and not out[12:].any()


def test_explicit_resolution_uses_lanczos():
    arr = _rgb(64, 64)
    out = preprocess.preprocess_image(Image.fromarray(arr), 1.0, resolution=32)
    expected = np.asarray(Image.fromarray(arr).resize((32, 32), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(out, expected)


def test_modes_are_converted_to_rgb():
    gray = Image.fromarray(np.full((8, 8), 77, np.uint8))
    np.testing.assert_array_equal(np.asarray(preprocess.to_rgb(gray)), np.full((8, 8, 3), 77))
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:4, :, 3] = 255  # top opaque, bottom fully transparent
    out = np.asarray(preprocess.to_rgb(Image.fromarray(rgba)))
    assert (out[:4] == 200).all() and (out[4:] == 0).all()
    palette = Image.fromarray(_rgb(8, 8)).convert("P")
    assert preprocess.to_rgb(palette).mode == "RGB"
    cmyk = Image.fromarray(_rgb(8, 8)).convert("CMYK")
    assert preprocess.to_rgb(cmyk).mode == "RGB"


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    arr16 = np.full((8, 8), 32896, np.uint16)  # 128 * 257
    img = Image.fromarray(arr16)
    assert img.mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(preprocess.to_rgb(img)), np.full((8, 8, 3), 128))


def test_exif_orientation_is_applied():
    arr = _rgb(4, 8)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    import io
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif)
    shown = preprocess.to_rgb(Image.open(io.BytesIO(buf.getvalue())))
    assert shown.size == (4, 8)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 3), (3, 8, 8), (8, 8, 4), (1, 8, 8)])
def test_array_layouts(shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    img = preprocess.array_to_image(arr)
    assert img.size == (8, 8)
    assert preprocess.preprocess_image(img, 1.0).shape == (8, 8, 3)


def test_array_float_and_uint16_are_scaled():
    assert np.asarray(preprocess.array_to_image(np.full((4, 4), 0.5, np.float32))).max() == 128
    assert np.asarray(preprocess.array_to_image(np.full((4, 4, 3), 65535, np.uint16))).min() == 255
    with pytest.raises(ValueError):
        preprocess.array_to_image(np.zeros((5, 5, 7), np.uint8))
