"""The built-in `shapes` dataset: deterministic by seed, any power-of-two resolution, real multi-object
content, written by prepare_data.py --shapes and read back by the loader."""

import json

import numpy as np
import pytest

from data_helpers import run_cli
from training.data import shapes, shapes_render
from training.data.loader import open_dataset


def _render(seed, count, res, workers=1):
    return np.concatenate(list(shapes_render.generate(seed, count, res, workers=workers)))


def test_same_seed_same_images_regardless_of_batching_and_threads():
    a = _render(7, 6, 16)
    np.testing.assert_array_equal(a, _render(7, 6, 16, workers=2))
    np.testing.assert_array_equal(a[2:5], np.concatenate(list(shapes_render.render_range(7, 2, 3, 16))))
    b = _render(8, 6, 16)
    assert not np.array_equal(a, b)
    assert len({img.tobytes() for img in a}) == 6  # every image differs


@pytest.mark.parametrize("res", [4, 8, 32, 128])
def test_any_power_of_two_resolution(res):
    img = _render(0, 1, res)
    assert img.shape == (1, res, res, 3) and img.dtype == np.uint8


def test_scenes_have_several_non_overlapping_visible_objects():
    kinds = set()
    for i in range(40):
        scene = shapes.sample_scene(np.random.default_rng([0, i]))
        k = len(scene.kinds)
        assert shapes.MIN_OBJECTS <= k <= shapes.MAX_OBJECTS
        kinds |= set(scene.kinds.tolist())
        gaps = np.hypot(*(scene.centers[:, None] - scene.centers[None]).transpose(2, 0, 1))
        assert (gaps[~np.eye(k, dtype=bool)] > 0.5).all()
        assert shapes._visible_in_view(np.concatenate([scene.centers, scene.sizes[:, None]], 1)).all()
    assert kinds == {shapes.SPHERE, shapes.CUBE, shapes.CYLINDER}


def test_rendering_shows_coloured_objects_shading_and_shadows():
    scene = shapes.Scene(kinds=np.array([shapes.SPHERE]), centers=np.array([[0.0, 0.5]]), sizes=np.array([0.9]),
                         angles=np.zeros(1), colors=np.array([[0.8, 0.05, 0.05]]), metal=np.array([False]),
                         light=shapes.LIGHT_POS.copy())
    empty = shapes.Scene(kinds=np.zeros(0, np.int64), centers=np.zeros((0, 2)), sizes=np.zeros(0),
                         angles=np.zeros(0), colors=np.zeros((0, 3)), metal=np.zeros(0, bool),
                         light=shapes.LIGHT_POS.copy())
    img, floor = shapes_render.render([scene, empty], 64).astype(int)
    red = (img[..., 0] > img[..., 1] + 60)
    assert 100 < red.sum() < 64 * 64 // 2  # a red sphere, not everywhere
    assert img[red][:, 0].max() - img[red][:, 0].min() > 60  # shaded, not flat
    assert (np.abs(floor[..., 0] - floor[..., 2]) < 12).all()  # the empty scene is grey floor only
    darker = floor.sum(-1) - img.sum(-1)
    assert (darker[~red] > 30).sum() > 50  # the sphere casts a shadow on the floor


def test_prepare_data_shapes_writes_a_loadable_dataset(tmp_path, capsys):
    status, out, _ = run_cli(capsys, "--shapes", "--resolution", "16", "--max-images", "12", "--seed", "3",
                             "--data-dir", str(tmp_path))
    assert status == 0 and "Wrote 12 images of 16x16" in out
    meta = json.loads((tmp_path / "shapes" / "dataset.json").read_text())
    assert meta["seed"] == 3 and meta["count"] == 12
    ds = open_dataset(tmp_path / "shapes")
    assert (ds.name, ds.resolution, ds.num_images, ds.ratio) == ("shapes", 16, 12, 1.0)
    got = np.concatenate([b.numpy() for b in ds.tf_dataset(5, shuffle=False, repeat=False)])
    np.testing.assert_array_equal(got, _render(3, 12, 16))
