"""tf.data input pipeline for training, metrics and visualization (the authors'
`training/dataset.py`, without an epoch cap).

`open_dataset(path)` accepts:
    * a folder written by `prepare_data.py` (`dataset.json` + TFRecord shards, raw or PNG records);
    * a folder of the original GANformer/StyleGAN2 multi-resolution TFRecords (`NAME-rXX.tfrecordsNofM`,
      features `shape` = [C, H, W] and `data` = raw CHW uint8), choosing one resolution;
    * a folder of same-sized square power-of-two images (PNG/JPEG/BMP/GIF), also `<folder>/<resolution>/`.

`Dataset.tf_dataset(batch_size)` yields uint8 images `[B, H, W, C]` (NHWC), or `(images, labels)` with
labels float32 `[B, label_dim]` when the dataset has labels. Pipeline: file-order shuffle -> parallel
interleaved reads -> per-replica shard -> bounded record shuffle -> repeat (no epoch cap) -> batch ->
batched decode -> optional crop to ratio and mirror -> prefetch. Everything random is seeded, so the
same seed gives the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf
from PIL import Image

from dnnlib.util import UserError
from dnnlib.crop import crop_to_content
from training.data import records
from training.data.catalog import dataset_constants
from training.data.records import READ_BUFFER_BYTES, count_records
from training.data.files import list_image_files
from training.data.integrity import check_shards

TF_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Dataset:
    """An opened dataset; build input pipelines with `tf_dataset`.

    Attributes:
        path: the dataset folder.
        name: dataset name (from `dataset.json`, else the folder name).
        resolution: image side R (images are `[R, R, C]`).
        ratio: content height / width inside the padded square (1.0 = square content).
        label_dim: size of the label vectors (0 = unlabelled).
        channels: C (3 for RGB).
        kind: "tfrecords" (ours), "original" (the authors' multi-resolution TFRecords) or "images".
        files: the record or image files read.
        label_classes: class names when labelled.
        max_images: read only the first N images (in file order) when set.
    """

    path: Path
    name: str
    resolution: int
    ratio: float
    label_dim: int
    channels: int
    kind: str
    files: list[Path]
    encoding: str = "raw"
    label_classes: list[str] | None = None
    max_images: int | None = None
    _counts: list[int] | None = field(default=None, repr=False)

    @property
    def num_images(self) -> int:
        """Number of images (records are counted once on first use when not recorded in `dataset.json`)."""
        if self._counts is None:
            self._counts = [count_records(f) for f in self.files]
        total = sum(self._counts)
        return total if self.max_images is None else min(total, self.max_images)

    @property
    def shape(self) -> list[int]:
        """Image shape [H, W, C] as stored (before any crop to ratio)."""
        return [self.resolution, self.resolution, self.channels]

    def tf_dataset(self, batch_size: int, shuffle: bool = True, repeat: bool = True, seed: int = 0, *,
                   mirror: bool = False, crop_to_ratio: bool = False,
                   input_context: tf.distribute.InputContext | None = None, shuffle_buffer_mb: int = 256,
                   drop_remainder: bool | None = None, num_parallel_reads: int = 4,
                   prefetch: int | None = None) -> tf.data.Dataset:
        """Builds the input pipeline.

        Args:
            batch_size: global batch size (divided by the number of replicas when `input_context` is given,
                as `tf.distribute.Strategy.distribute_datasets_from_function` expects).
            shuffle: shuffle file order and records (bounded buffer of `shuffle_buffer_mb`).
            repeat: repeat forever (epochs are reshuffled differently but deterministically).
            seed: seed of every random choice (file order, record shuffle, mirroring).
            mirror: flip each image horizontally with probability 0.5.
            crop_to_ratio: return only the content rows `[B, round(R * ratio), R, C]` (drops padding bars).
            input_context: per-replica sharding under tf.distribute (files when there are enough, else records).
            shuffle_buffer_mb: memory bound of the record shuffle buffer.
            drop_remainder: drop a last partial batch; default True when repeating, else False.
            num_parallel_reads: files read concurrently.
            prefetch: batches prefetched; None = autotune.

        Returns:
            A `tf.data.Dataset` of uint8 `[B, H, W, C]`, or of `(images, labels)` with float32 `[B, label_dim]`.
        """
        if batch_size < 1:
            raise UserError(f"batch_size {batch_size}: must be >= 1")
        per_replica, shard = batch_size, None
        if input_context is not None:
            per_replica = input_context.get_per_replica_batch_size(batch_size)
            shard = (input_context.num_input_pipelines, input_context.input_pipeline_id)
        ds = self._elements(shuffle, seed, shard, num_parallel_reads)
        if shuffle:
            buffer = max(1, min(self.num_images, (shuffle_buffer_mb << 20) // self._element_bytes()))
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if self.kind == "images" or self.encoding == "png":
            ds = ds.map(self._decode_single, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(per_replica, drop_remainder=repeat if drop_remainder is None else drop_remainder)
        if self.kind != "images" and self.encoding != "png":
            ds = ds.map(self._decode_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = self._postprocess(ds, mirror, crop_to_ratio, seed, shard)
        options = tf.data.Options()
        options.deterministic = True
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE if prefetch is None else prefetch)

    def _element_bytes(self) -> int:
        return self.resolution * self.resolution * self.channels + 4 * self.label_dim + 64

    def _elements(self, shuffle: bool, seed: int, shard: tuple[int, int] | None,
                  parallel: int) -> tf.data.Dataset:
        """Serialized records (or image paths) of one epoch, sharded for this replica."""
        paths = [str(f) for f in self.files]
        sequential = self.max_images is not None
        shard_files = shard is not None and len(paths) >= shard[0] and not sequential
        if shard_files:
            paths = paths[shard[1]::shard[0]]
        ds = tf.data.Dataset.from_tensor_slices(paths)
        if shuffle and not sequential and len(paths) > 1:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        if self.kind != "images":
            read = lambda f: tf.data.TFRecordDataset(f, buffer_size=READ_BUFFER_BYTES)  # noqa: E731
            if sequential:  # all files in lock-step: round-robin shards come back in written order
                ds = ds.interleave(read, cycle_length=len(paths), block_length=1)
            else:
                cycle = max(1, min(parallel, len(paths)))
                ds = ds.interleave(read, cycle_length=cycle, block_length=1, num_parallel_calls=cycle,
                                   deterministic=True)
        if sequential:
            ds = ds.take(self.max_images)
        if shard is not None and not shard_files:
            ds = ds.shard(shard[0], shard[1])
        return ds

    def _features(self) -> dict[str, Any]:
        spec = {"data": tf.io.FixedLenFeature([], tf.string)}
        if self.label_dim:
            spec["label"] = tf.io.FixedLenFeature([self.label_dim], tf.float32)
        return spec

    def _decode_batch(self, serialized: tf.Tensor) -> Any:
        """Batched parse of raw records: `[B]` strings -> uint8 `[B, R, R, C]` (and labels `[B, label_dim]`)."""
        parsed = tf.io.parse_example(serialized, self._features())
        flat = tf.io.decode_raw(parsed["data"], tf.uint8)
        res, ch = self.resolution, self.channels
        if self.kind == "original":
            images = tf.transpose(tf.reshape(flat, [-1, ch, res, res]), [0, 2, 3, 1])
        else:
            images = tf.reshape(flat, [-1, res, res, ch])
        return (images, parsed["label"]) if self.label_dim else images

    def _decode_single(self, element: tf.Tensor) -> Any:
        """Per-element decode of PNG records or image files -> uint8 `[R, R, C]`."""
        res, ch = self.resolution, self.channels
        if self.kind == "images":
            image = tf.io.decode_image(tf.io.read_file(element), channels=ch, expand_animations=False)
            image.set_shape([None, None, ch])
            return tf.ensure_shape(image, [res, res, ch])
        parsed = tf.io.parse_single_example(element, self._features())
        image = tf.ensure_shape(tf.io.decode_png(parsed["data"], channels=ch), [res, res, ch])
        return (image, parsed["label"]) if self.label_dim else image

    def _postprocess(self, ds: tf.data.Dataset, mirror: bool, crop_to_ratio: bool, seed: int,
                     shard: tuple[int, int] | None) -> tf.data.Dataset:
        """Crop to ratio and mirror augmentation on whole batches."""
        if not mirror and not (crop_to_ratio and self.ratio < 1.0):
            return ds
        seed_base = int(seed) * 1000003 + (0 if shard is None else shard[1])

        def apply(step: tf.Tensor, element: Any) -> Any:
            images, labels = element if self.label_dim else (element, None)
            if crop_to_ratio:
                images = crop_to_content(images, self.ratio)
            if mirror:
                coin = tf.random.stateless_uniform([tf.shape(images)[0]],
                                                   seed=tf.stack([tf.constant(seed_base, tf.int64), step]))
                images = tf.where((coin < 0.5)[:, None, None, None], tf.reverse(images, axis=[2]), images)
            return (images, labels) if self.label_dim else images

        return ds.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _first_record_shape(path: Path) -> list[int]:
    """Reads the `shape` feature of the first record of a TFRecord file."""
    try:
        for raw in tf.data.TFRecordDataset(str(path)).take(1):
            example = tf.train.Example.FromString(raw.numpy())
            return list(example.features.feature["shape"].int64_list.value)
    except tf.errors.OpError as exc:
        raise UserError(f"{path}: not a readable TFRecord file ({exc.message.splitlines()[0]})") from exc
    raise UserError(f"{path}: empty TFRecord file; delete it or re-run prepare_data.py")


def _open_ours(folder: Path, meta: dict[str, Any], resolution: int | None) -> Dataset:
    if meta.get("version", 0) > records.FORMAT_VERSION:
        raise UserError(f"{folder / records.META_FILE}: format version {meta['version']} is newer than this code "
                        f"({records.FORMAT_VERSION}); update the code")
    res = int(meta["resolution"])
    if resolution is not None and resolution != res:
        raise UserError(f"{folder}: dataset has resolution {res}, not {resolution}; re-run prepare_data.py with "
                        f"--resolution {resolution} or pass --resolution {res}")
    counts = check_shards(folder, meta)  # missing, truncated, miscounted or corrupt shards: one line
    files = [folder / s["file"] for s in meta["shards"]]
    labels = meta.get("labels") or None
    return Dataset(path=folder, name=str(meta.get("name", folder.name)), resolution=res,
                   ratio=float(meta.get("ratio", 1.0)), label_dim=int(labels["dim"]) if labels else 0,
                   channels=int(meta.get("channels", 3)), kind="tfrecords", files=files,
                   encoding=str(meta.get("encoding", "raw")),
                   label_classes=list(labels.get("classes") or []) if labels else None,
                   _counts=counts)


def _open_original(folder: Path, groups: dict[int, list[Path]], meta: dict[str, Any] | None,
                   resolution: int | None) -> Dataset:
    if resolution is None:
        resolution = max(groups)
    if resolution not in groups:
        raise UserError(f"{folder}: no TFRecords at resolution {resolution}; available: "
                        f"{', '.join(str(r) for r in sorted(groups))}")
    files = groups[resolution]
    shapes = {tuple(_first_record_shape(f)) for f in files}
    channels = next(iter(shapes))[0]
    if len(shapes) != 1 or next(iter(shapes)) != (channels, resolution, resolution):
        raise UserError(f"{folder}: files {files[0].name}... hold shapes {sorted(shapes)}, expected "
                        f"[C, {resolution}, {resolution}]; the folder mixes datasets")
    counts = None
    if meta and str(resolution) in (meta.get("counts") or {}):
        counts = [int(n) for n in meta["counts"][str(resolution)]]
        counts = counts if len(counts) == len(files) else None
    name = str((meta or {}).get("name", folder.name))
    ratio = float((meta or {}).get("ratio", dataset_constants(name)[0]))
    return Dataset(path=folder, name=name, resolution=resolution, ratio=ratio, label_dim=0, channels=channels,
                   kind="original", files=files, _counts=counts)


def _open_images(folder: Path, resolution: int | None) -> Dataset | None:
    if resolution is not None and (folder / str(resolution)).is_dir():
        folder = folder / str(resolution)
    files, _ = list_image_files(folder)
    if not files:
        return None
    undecodable = next((f for f in files if f.suffix.lower() not in TF_IMAGE_SUFFIXES), None)
    if undecodable is not None:
        raise UserError(f"{undecodable}: TensorFlow cannot decode {undecodable.suffix} files; convert the folder "
                        f"with prepare_data.py --task NAME --images-dir {folder}")
    sizes: dict[tuple[int, int], Path] = {}
    for path in files:
        try:
            with Image.open(path) as img:
                sizes.setdefault(img.size, path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: unreadable image ({exc}); remove it or convert the folder with "
                            f"prepare_data.py, which skips bad images") from exc
    width, height = next(iter(sizes))
    if len(sizes) > 1 or width != height or width & (width - 1):
        example = list(sizes.values())[1 if len(sizes) > 1 else 0]
        raise UserError(f"{example}: images in {folder} are not all the same square power-of-two size; "
                        f"convert the folder with prepare_data.py --task NAME --images-dir {folder}")
    if resolution is not None and resolution != width:
        raise UserError(f"{folder}: images are {width}x{width}, not {resolution}x{resolution}")
    return Dataset(path=folder, name=folder.name if not folder.name.isdigit() else folder.parent.name,
                   resolution=width, ratio=dataset_constants(folder.name)[0], label_dim=0, channels=3,
                   kind="images", files=files, _counts=[1] * len(files))


def open_dataset(path: str | Path, resolution: int | None = None, max_images: int | None = None) -> Dataset:
    """Opens a prepared dataset, a folder of original-format TFRecords, or a folder of images.

    Args:
        path: dataset folder (or its `dataset.json`).
        resolution: which resolution to read from multi-resolution TFRecords (default: the largest);
            for other kinds it must match the stored resolution when given.
        max_images: use only the first N images (file order), like the original `--train-images-num`.

    Returns:
        A `Dataset`.

    Raises:
        UserError: when nothing readable is found, or the resolution is not available.
    """
    folder = Path(path)
    if folder.is_file() and folder.name == records.META_FILE:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{folder}: no such dataset folder; create it with prepare_data.py (see README 'Datasets')")
    if resolution is not None and (resolution < 1 or resolution & (resolution - 1)):
        raise UserError(f"--resolution {resolution}: must be a power of two")
    if max_images is not None and max_images < 1:
        raise UserError(f"--max-images {max_images}: must be >= 1")
    meta = records.read_meta(folder)
    if meta is not None and meta.get("format") == records.FORMAT_NAME:
        dataset = _open_ours(folder, meta, resolution)
    elif groups := records.find_legacy_files(folder):
        dataset = _open_original(folder, groups, meta, resolution)
    else:
        dataset = _open_images(folder, resolution)
        if dataset is None:
            raise UserError(f"{folder}: no dataset found (no dataset.json, no *.tfrecords files, no images); "
                            f"prepare one with prepare_data.py")
    dataset.max_images = max_images
    if dataset._counts is not None and sum(dataset._counts) == 0:
        raise UserError(f"{folder}: dataset holds no images; re-run prepare_data.py")
    return dataset

