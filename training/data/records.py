"""On-disk TFRecord layouts: this project's format and the original GANformer/StyleGAN2 one.

Ours (written by `training.data.writer`): a folder with `dataset.json` and shards
`<name>-<shard:05d>-of-<count:05d>.tfrecord`. Each record is a `tf.train.Example` with
    `shape`: int64 list [H, W, C]
    `data`:  bytes, either raw uint8 HWC (`"encoding": "raw"`) or one PNG file (`"encoding": "png"`)
    `label`: float list [label_dim] (only when the dataset has labels)
`dataset.json` holds: format, version, name, resolution, channels, ratio, count, encoding, shards
(file + count), labels (null or {"dim", "classes"}), skipped (reason -> count), source.

Original (written by the authors' `TFRecordExporter`): files `<base>-rXX.tfrecords<shard>of<N>` in one
folder, one file set per resolution 2^XX; records with `shape` int64 [C, H, W] and `data` = raw uint8 CHW.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dnnlib.files import file_sha256

FORMAT_NAME = "gansformer-tf2-tfrecords"
FORMAT_VERSION = 1
META_FILE = "dataset.json"
ENCODINGS = ("raw", "png")
READ_BUFFER_BYTES = 8 << 20  # TFRecord read buffer (the original used 256 MB)
LEGACY_PATTERN = re.compile(r"^(?P<base>.+)-r(?P<lod>\d\d)\.tfrecords(?P<shard>\d+)?(of(?P<total>\d+))?$")


def shard_file_name(name: str, index: int, count: int) -> str:
    """File name of shard `index` (0-based) of `count` for dataset `name`."""
    return f"{name}-{index:05d}-of-{count:05d}.tfrecord"


def _int64_feature(values: list[int]):
    import tensorflow as tf  # deferred: the CLI's --help and argument errors stay fast

    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def encode_example(image: np.ndarray, encoding: str, label: np.ndarray | None = None) -> bytes:
    """Serializes one image (and label) into our record layout.

    Args:
        image: uint8 `[H, W, C]`.
        encoding: "raw" or "png".
        label: optional float32 `[label_dim]`.

    Returns:
        A serialized `tf.train.Example`.
    """
    import tensorflow as tf

    if encoding == "png":
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
        data = buf.getvalue()
    else:
        data = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    feature = {
        "shape": _int64_feature(list(image.shape)),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
    }
    if label is not None:
        feature["label"] = tf.train.Feature(float_list=tf.train.FloatList(value=list(map(float, label))))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_meta(folder: str | Path) -> dict[str, Any] | None:
    """Reads `dataset.json` of a folder, or returns None when there is none.

    Raises:
        dnnlib.util.UserError: if the file exists but is not valid JSON.
    """
    from dnnlib.util import UserError

    path = Path(folder) / META_FILE
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read dataset description ({exc}); re-run prepare_data.py") from exc
    if not isinstance(meta, dict):
        raise UserError(f"{path}: not a dataset description (expected a JSON object); re-run prepare_data.py")
    return meta


def find_legacy_files(folder: str | Path) -> dict[int, list[Path]]:
    """Groups the original-format TFRecord files of a folder by their LOD suffix (rXX = log2 resolution).

    Returns:
        {resolution: sorted list of files}; empty when there are none.
    """
    groups: dict[int, list[Path]] = {}
    for path in sorted(Path(folder).iterdir()):
        match = LEGACY_PATTERN.match(path.name)
        if match and path.is_file():
            groups.setdefault(2 ** int(match.group("lod")), []).append(path)
    return groups


def count_records(path: Path) -> int:
    """Counts the records of one TFRecord file."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(str(path), buffer_size=READ_BUFFER_BYTES)
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def file_digest(path: str | Path) -> dict[str, Any]:
    """`{"bytes": size, "sha256": hex}` of a file (recorded per shard in `dataset.json`)."""
    return {"bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def walk_records(path: str | Path) -> tuple[int, str | None]:
    """Counts the records of a TFRecord file from their length headers alone (no data is read or checked).

    Returns:
        `(records, problem)`: `problem` says where the file is cut short (a header or a record that runs past the
        end of the file), else None.
    """
    size = os.path.getsize(path)
    count, offset = 0, 0
    with open(path, "rb") as f:
        while offset < size:
            header = f.read(12)  # uint64 length + uint32 masked CRC of the length
            if len(header) < 12:
                return count, f"cut short in the header of record {count + 1} (at byte {offset} of {size})"
            (length,) = struct.unpack("<Q", header[:8])
            offset += 12 + length + 4  # the data and its masked CRC
            if offset > size:
                return count, f"record {count + 1} runs past the end of the file ({size} bytes: truncated?)"
            f.seek(offset)
            count += 1
    return count, None
