"""training.data.loader: round trip through prepare_data, the original multi-resolution TFRecords, our format,
image folders, labels, mirror/crop options, determinism, per-replica sharding and the absent epoch cap."""

import json

import numpy as np
import pytest
import tensorflow as tf

from data_helpers import make_images, run_cli, write_original
from dnnlib.util import UserError
from training.data.writer import DatasetWriter
from training.data.loader import open_dataset


def _all(ds, **kw):
    out = [b for b in ds.tf_dataset(4, shuffle=False, repeat=False, **kw)]
    if isinstance(out[0], tuple):
        return np.concatenate([b[0].numpy() for b in out]), np.concatenate([b[1].numpy() for b in out])
    return np.concatenate([b.numpy() for b in out])


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_round_trip_images_prepare_data_loader(tmp_path, capsys, encoding):
    src = tmp_path / "imgs"
    arrays = make_images(src, 7, size=(16, 16))
    status, out, _ = run_cli(capsys, "--task", "rt", "--images-dir", str(src), "--format", "png",
                             "--data-dir", str(tmp_path / "ds"), "--shards-num", "3", "--encoding", encoding)
    assert status == 0, out
    ds = open_dataset(tmp_path / "ds" / "rt")
    assert (ds.name, ds.resolution, ds.num_images, ds.ratio, ds.label_dim) == ("rt", 16, 7, 1.0, 0)
    got = _all(ds)
    assert got.dtype == np.uint8 and got.shape == (7, 16, 16, 3)
    # Shards are written round-robin and read interleaved: the sequence is the original order.
    np.testing.assert_array_equal(got, np.stack(arrays))


def test_round_trip_from_zip_and_mixed_extensions(tmp_path, capsys):
    import zipfile

    src = tmp_path / "imgs"
    arrays = make_images(src, 2, size=(8, 8)) + make_images(src, 1, size=(8, 8), seed=5, prefix="z", ext="bmp")
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as zf:
        for p in sorted(src.iterdir()):
            zf.write(p, f"inner/{p.name}")
    status, _, _ = run_cli(capsys, "--task", "z", "--images-dir", str(tmp_path / "imgs.zip"), "--format", "jpg",
                           "--data-dir", str(tmp_path / "ds"))
    assert status == 0
    np.testing.assert_array_equal(_all(open_dataset(tmp_path / "ds" / "z")), np.stack(arrays))


def test_reads_original_multi_resolution_tfrecords(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    folder = tmp_path / "clevr"
    write_original(folder, "clevr", images)
    ds = open_dataset(folder)
    assert (ds.resolution, ds.num_images, ds.channels, ds.ratio, ds.kind) == (16, 6, 3, 0.75, "original")
    got = _all(ds)
    # Two shards, interleaved one record at a time: file 1 holds 0, 2, 4 and file 2 holds 1, 3, 5.
    np.testing.assert_array_equal(got, images)
    low = open_dataset(folder, resolution=8)
    assert low.resolution == 8
    small = _all(low)
    expected = np.rint(images.astype(np.float64).reshape(6, 8, 2, 8, 2, 3).mean(axis=(2, 4))).astype(np.uint8)
    np.testing.assert_array_equal(small, expected)
    with pytest.raises(UserError, match="no TFRecords at resolution 32; available: 4, 8, 16"):
        open_dataset(folder, resolution=32)


def test_original_format_with_catalog_metadata_uses_recorded_counts(tmp_path):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    write_original(tmp_path / "x", "x", images, shards=1)
    (tmp_path / "x" / "dataset.json").write_text(json.dumps(
        {"format": "original-tfrecords", "name": "cityscapes", "ratio": 0.5, "counts": {"8": [3]}}))
    ds = open_dataset(tmp_path / "x")
    assert (ds.name, ds.ratio, ds._counts) == ("cityscapes", 0.5, [3])
    assert _all(ds, crop_to_ratio=True).shape == (3, 4, 8, 3)


def _ours(tmp_path, n=10, res=8, labels=None, ratio=1.0, shards=2):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
    with DatasetWriter(tmp_path, "ours", resolution=res, ratio=ratio, num_shards=shards,
                       label_classes=labels) as w:
        for i, img in enumerate(images):
            w.add(img, np.eye(len(labels), dtype=np.float32)[i % len(labels)] if labels else None)
        w.commit()
    return open_dataset(tmp_path / "ours"), images


def test_our_format_with_labels(tmp_path):
    ds, images = _ours(tmp_path, labels=["a", "b", "c"])
    assert ds.label_dim == 3 and ds.label_classes == ["a", "b", "c"]
    got, labels = _all(ds)
    np.testing.assert_array_equal(got, images)
    assert labels.dtype == np.float32 and labels.shape == (10, 3)
    np.testing.assert_array_equal(labels.argmax(1), np.arange(10) % 3)
    batch = next(iter(ds.tf_dataset(4)))
    assert isinstance(batch, tuple) and batch[0].shape == (4, 8, 8, 3) and batch[1].shape == (4, 3)


def test_shuffle_is_deterministic_by_seed_and_repeats_without_epoch_cap(tmp_path):
    ds, images = _ours(tmp_path, n=10)
    take = lambda seed: np.concatenate([b.numpy() for b in ds.tf_dataset(4, seed=seed).take(8)])  # noqa: E731
    a, b, c = take(1), take(1), take(2)
    assert a.shape == (32, 8, 8, 3)  # 32 > 10 images: repeats forever
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    first_epoch = {x.tobytes() for x in a[:10]}
    assert first_epoch == {x.tobytes() for x in images}  # every image exactly once per epoch


def test_mirror_and_crop_to_ratio(tmp_path):
    ds, images = _ours(tmp_path, n=16, ratio=0.5)
    mirrored = _all(ds, mirror=True)
    flipped = [np.array_equal(m, im[:, ::-1]) and not np.array_equal(m, im) for m, im in zip(mirrored, images)]
    kept = [np.array_equal(m, im) for m, im in zip(mirrored, images)]
    assert all(f or k for f, k in zip(flipped, kept)) and 2 <= sum(flipped) <= 14
    np.testing.assert_array_equal(_all(ds, mirror=True), mirrored)  # deterministic by seed
    cropped = _all(ds, crop_to_ratio=True)
    np.testing.assert_array_equal(cropped, images[:, 2:6])


def test_per_replica_sharding(tmp_path):
    ds, images = _ours(tmp_path, n=12, shards=2)
    seen = []
    for replica in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=replica, num_replicas_in_sync=2)
        batches = list(ds.tf_dataset(8, shuffle=False, repeat=False, input_context=ctx))
        assert batches[0].shape[0] == 4  # global batch 8 over 2 replicas
        seen.append({x.tobytes() for b in batches for x in b.numpy()})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == {x.tobytes() for x in images}
    ds1, _ = _ours(tmp_path / "one", n=12, shards=1)  # fewer files than replicas: records are sharded
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=1, num_replicas_in_sync=3)
    assert sum(b.shape[0] for b in ds1.tf_dataset(3, shuffle=False, repeat=False, input_context=ctx)) == 4


def test_max_images_reads_the_first_records(tmp_path):
    _, images = _ours(tmp_path, n=10)
    ds = open_dataset(tmp_path / "ours", max_images=5)
    assert ds.num_images == 5
    np.testing.assert_array_equal(_all(ds), images[:5])


def test_image_folder(tmp_path):
    arrays = make_images(tmp_path / "folder", 5, size=(8, 8))
    ds = open_dataset(tmp_path / "folder")
    assert (ds.kind, ds.resolution, ds.num_images, ds.name) == ("images", 8, 5, "folder")
    np.testing.assert_array_equal(_all(ds), np.stack(arrays))
    make_images(tmp_path / "pt" / "8", 2, size=(8, 8))  # PyTorch-version layout <dataset>/<resolution>/
    assert open_dataset(tmp_path / "pt", resolution=8).num_images == 2
    make_images(tmp_path / "tif", 1, size=(8, 8), ext="tif")
    with pytest.raises(UserError, match="img000.tif: TensorFlow cannot decode .tif files"):
        open_dataset(tmp_path / "tif")
    make_images(tmp_path / "folder", 1, size=(12, 8), prefix="odd")
    with pytest.raises(UserError, match="odd000.png: images in .* are not all the same square power-of-two size"):
        open_dataset(tmp_path / "folder")


def test_open_errors(tmp_path):
    with pytest.raises(UserError, match="no such dataset folder"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no dataset found"):
        open_dataset(tmp_path / "empty")
    _ours(tmp_path)
    with pytest.raises(UserError, match="has resolution 8, not 16"):
        open_dataset(tmp_path / "ours", resolution=16)
    (tmp_path / "ours" / "ours-00001-of-00002.tfrecord").unlink()
    with pytest.raises(UserError, match="missing"):
        open_dataset(tmp_path / "ours")
