"""Custom input formats (npy, hdf5, lmdb, tfds) and class labels (folders, JSON, CSV) through prepare_data."""

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from data_helpers import make_images, run_cli
from training.data.loader import open_dataset


def _convert(capsys, tmp_path, images_dir, fmt, *extra):
    return run_cli(capsys, "--task", "t", "--images-dir", str(images_dir), "--format", fmt,
                   "--data-dir", str(tmp_path / "ds"), *extra)


def _read(tmp_path):
    ds = open_dataset(tmp_path / "ds" / "t")
    batches = list(ds.tf_dataset(4, shuffle=False, repeat=False))
    if ds.label_dim:
        return ds, np.concatenate([b[0].numpy() for b in batches]), np.concatenate([b[1].numpy() for b in batches])
    return ds, np.concatenate([b.numpy() for b in batches]), None


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_npy_stack(tmp_path, capsys, layout):
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images if layout == "nhwc" else images.transpose(0, 3, 1, 2))
    status, out, _ = _convert(capsys, tmp_path, tmp_path / "x.npy", "npy")
    assert status == 0 and "Wrote 5 images of 8x8" in out
    np.testing.assert_array_equal(_read(tmp_path)[1], images)


def test_npy_not_an_image_array(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros(10))
    status, _, msgs = _convert(capsys, tmp_path, tmp_path / "bad.npy", "npy")
    assert status == 2 and "is not an image or a stack of images" in msgs[0]


def test_hdf5_stack(tmp_path, capsys):
    import h5py

    images = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data4x4"] = images[:, ::2, ::2]
        f["data8x8"] = images
    status, _, _ = _convert(capsys, tmp_path, tmp_path / "x.h5", "hdf5")
    assert status == 0
    np.testing.assert_array_equal(_read(tmp_path)[1], images)


def test_lmdb_values_are_decoded_and_bad_ones_skipped(tmp_path, capsys):
    import lmdb

    images = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            txn.put(f"k{i}".encode(), buf.getvalue())
        txn.put(b"k9", b"garbage")
    env.close()
    status, out, msgs = _convert(capsys, tmp_path, tmp_path / "db", "lmdb")
    assert status == 0 and "Wrote 3 images" in out and "1 unreadable" in out
    assert any("db:k9: not an image" in m for m in msgs)
    np.testing.assert_array_equal(_read(tmp_path)[1], images)


def test_streaming_source_with_mixed_sizes_fails_cleanly(tmp_path, capsys):
    import lmdb

    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, size in enumerate([16, 16, 8]):
            buf = io.BytesIO()
            Image.new("RGB", (size, size), (i * 50, 0, 0)).save(buf, format="PNG")
            txn.put(f"k{i}".encode(), buf.getvalue())
    env.close()
    status, _, msgs = _convert(capsys, tmp_path, tmp_path / "db", "lmdb")
    assert status == 2 and "k2: would end at 8x8 but earlier images at 16x16" in msgs[-1]
    assert not (tmp_path / "ds" / "t").exists() and not list((tmp_path / "ds").glob(".t.*"))


def test_tfds_missing_package_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    status, _, msgs = _convert(capsys, tmp_path, "mnist", "tfds")
    assert status == 2
    assert msgs == ["error: --format tfds: tensorflow-datasets is not installed; pip install tensorflow-datasets"]


def test_labels_from_sub_folders(tmp_path, capsys):
    cats = make_images(tmp_path / "imgs" / "cat", 2, size=(8, 8))
    dogs = make_images(tmp_path / "imgs" / "dog", 1, size=(8, 8), seed=1)
    make_images(tmp_path / "imgs", 1, size=(8, 8), seed=2, prefix="loose")
    status, out, _ = _convert(capsys, tmp_path, tmp_path / "imgs", "png", "--labels", "folders")
    assert status == 0 and "1 no label" in out
    ds, images, labels = _read(tmp_path)
    assert ds.label_dim == 2 and ds.label_classes == ["cat", "dog"]
    np.testing.assert_array_equal(images, np.stack(cats + dogs))
    np.testing.assert_array_equal(labels, [[1, 0], [1, 0], [0, 1]])


def test_labels_from_json_and_csv(tmp_path, capsys):
    make_images(tmp_path / "imgs", 3, size=(8, 8))
    (tmp_path / "labels.json").write_text(json.dumps({"labels": [["img000.png", 2], ["img001.png", 0],
                                                                 ["img002.png", 1]]}))
    assert _convert(capsys, tmp_path, tmp_path / "imgs", "png", "--labels", str(tmp_path / "labels.json"))[0] == 0
    ds, _, labels = _read(tmp_path)
    assert ds.label_classes == ["0", "1", "2"]
    np.testing.assert_array_equal(labels.argmax(1), [2, 0, 1])
    (tmp_path / "labels.csv").write_text("file,label\nimg000.png,b\nimg002.png,a\n")
    status, out, _ = _convert(capsys, tmp_path, tmp_path / "imgs", "png", "--labels", str(tmp_path / "labels.csv"),
                              "--overwrite")
    assert status == 0 and "1 no label" in out
    ds, _, labels = _read(tmp_path)
    assert ds.label_classes == ["a", "b"]
    np.testing.assert_array_equal(labels, [[0, 1], [1, 0]])


def test_bad_label_files(tmp_path, capsys):
    make_images(tmp_path / "imgs", 1, size=(8, 8))
    (tmp_path / "l.txt").write_text("x")
    status, _, msgs = _convert(capsys, tmp_path, tmp_path / "imgs", "png", "--labels", str(tmp_path / "l.txt"))
    assert status == 2 and "unsupported file type .txt" in msgs[0]
    (tmp_path / "l.json").write_text("{broken")
    status, _, msgs = _convert(capsys, tmp_path, tmp_path / "imgs", "png", "--labels", str(tmp_path / "l.json"))
    assert status == 2 and "not readable JSON" in msgs[0]
    status, _, msgs = _convert(capsys, tmp_path, tmp_path / "imgs", "png", "--labels", "folders")
    assert status == 2 and "not in sub-folders" in msgs[0]
