"""`dnnlib.crop.crop_to_content`: the one content crop of generator outputs, datasets, metrics and visuals."""

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.crop import content_window, crop_to_content


@pytest.mark.parametrize("size,ratio,rows", [(256, 0.75, 192), (256, 0.5, 128), (256, 188 / 256, 188), (16, 0.5, 8)])
def test_square_frames_keep_the_central_rows(size, ratio, rows):
    assert content_window(size, size, ratio) == ((size - rows) // 2, 0, rows, size)


def test_inclusive_window_is_the_original_metrics_one():
    assert content_window(256, 256, 0.5, inclusive=True) == (64, 0, 129, 256)
    assert content_window(16, 16, 0.5, inclusive=True) == (4, 0, 9, 16)


def test_already_cropped_images_are_left_alone_in_both_windows():
    x = np.zeros((2, 8, 16, 3))
    for inclusive in (False, True):
        assert crop_to_content(x, 0.5, inclusive=inclusive) is x


def test_tensors_and_maps_axes():
    maps = tf.zeros([2, 3, 4, 1, 16, 16])
    assert crop_to_content(maps, 0.75, axes=(4, 5)).shape == (2, 3, 4, 1, 12, 16)
    assert crop_to_content(maps, None) is maps
