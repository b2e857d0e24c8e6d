"""Atomic writer of a prepared dataset: sharded TFRecords plus `dataset.json` (layout in `records`).

Everything is written into a hidden temporary folder `<data-dir>/.<name>.partial-<pid>` and renamed to
`<data-dir>/<name>` only when complete, so an interrupted run, an error or a full disk never leaves a
half-written dataset behind (the temporary folder is deleted and the reason reported).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from dnnlib.disk import format_bytes, is_disk_full
from dnnlib.files import replace_folder
from dnnlib.locks import FolderLock
from dnnlib.util import UserError
from training.data import records

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 200  # shard names add 26 characters, temporary folders up to 20


def validate_name(name: str) -> None:
    """Checks that a dataset name is a plain folder name.

    Raises:
        UserError: for names with path separators, leading dots or other characters.
    """
    if not NAME_RE.match(name or ""):
        raise UserError(f"--task {name[:60]!r}: not a valid dataset name; use letters, digits, '.', '_' or '-'")
    if len(name) > MAX_NAME_LENGTH:
        raise UserError(f"--task {name[:60]!r}...: longer than {MAX_NAME_LENGTH} characters (file names are "
                        f"limited to 255 bytes); pass a shorter name")


def check_target(data_dir: str | Path, name: str, overwrite: bool) -> Path:
    """Returns `<data_dir>/<name>` after checking that it may be (re)written.

    Raises:
        UserError: if it exists and `overwrite` is False, or is a file.
    """
    validate_name(name)
    from dnnlib.paths import check_folder_flag
    check_folder_flag("--data-dir", str(data_dir))
    target = Path(data_dir) / name
    if target.exists() and not overwrite:
        raise UserError(f"{target}: dataset already exists; pass --overwrite to replace it or choose another --task")
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: exists and is not a folder; remove it or choose another --task")
    return target


def _remove_stale_partials(data_dir: Path, name: str) -> None:
    """Deletes temporary folders left by killed earlier runs for the same dataset."""
    for stale in data_dir.glob(f".{name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # that run is still going
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(stale, ignore_errors=True)


def staging_dir(data_dir: str | Path, name: str) -> Path:
    """Creates (empty) the hidden temporary folder in which dataset `name` is assembled."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(data_dir, name)
    tmp = data_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def dataset_lock(data_dir: str | Path, name: str) -> FolderLock:
    """The (not yet acquired) lock on dataset name `name` in `data_dir`, held while it is written."""
    return FolderLock(str(Path(data_dir) / f".{name}.lock"), f"dataset {Path(data_dir) / name}",
                      "another prepare_data.py writes it now: wait for it to end, or choose another --task")


def publish(tmp_dir: Path, target: Path, overwrite: bool = True) -> None:
    """Renames a finished temporary folder to `target`, replacing an existing dataset last (only with
    `overwrite`: else a dataset that appeared meanwhile is an error and the temporary folder is left to the caller).

    Raises:
        UserError: `target` exists and `overwrite` is False.
    """
    if target.exists() and not overwrite:
        raise UserError(f"{target}: dataset already exists (written by another process meanwhile); nothing "
                        "replaced: pass --overwrite to replace it or choose another --task")
    replace_folder(tmp_dir, target)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Writes JSON and fsyncs it (it is the last file written before a dataset is published)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


class DatasetWriter:
    """Writes images round-robin into TFRecord shards, then publishes the dataset atomically.

    Use as a context manager; call `commit()` at the end. Leaving the block without `commit()` (error,
    Ctrl-C) deletes everything written.

    Args:
        data_dir: parent folder of datasets.
        name: dataset (folder) name.
        resolution: image side R; every image must be `[R, R, 3]` uint8.
        ratio: content height / width stored in `dataset.json`.
        num_shards: number of shard files (empty ones are dropped at commit).
        encoding: "raw" (uint8 bytes) or "png".
        label_classes: class names when the dataset has labels (label_dim = len), else None.
        overwrite: replace an existing dataset of the same name.
    """

    def __init__(self, data_dir: str | Path, name: str, *, resolution: int, ratio: float, num_shards: int = 1,
                 encoding: str = "raw", label_classes: list[str] | None = None, overwrite: bool = False):
        if encoding not in records.ENCODINGS:
            raise UserError(f"--encoding {encoding}: unknown; choose one of {', '.join(records.ENCODINGS)}")
        self.data_dir = Path(data_dir)
        self.name = name
        self.target = check_target(data_dir, name, overwrite)
        self.overwrite = overwrite
        self._lock: FolderLock | None = None
        self.resolution = int(resolution)
        self.ratio = float(ratio)
        self.num_shards = max(1, int(num_shards))
        self.encoding = encoding
        self.label_classes = list(label_classes) if label_classes else None
        self.tmp_dir = self.data_dir / f".{name}.partial-{os.getpid()}"
        self.counts = [0] * self.num_shards
        self.bytes_written = 0
        self._writers: list[Any] = []
        self._committed = False

    def __enter__(self) -> "DatasetWriter":
        import tensorflow as tf

        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock = dataset_lock(self.data_dir, self.name).acquire()
            check_target(self.data_dir, self.name, self.overwrite)  # again: another process may have finished it
            self.tmp_dir = staging_dir(self.data_dir, self.name)
            self._writers = [tf.io.TFRecordWriter(str(self._shard_path(i))) for i in range(self.num_shards)]
        except BaseException as exc:
            self._abort()
            self._raise_translated(exc)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None or not self._committed:
            self._abort()
        if exc is not None:
            self._raise_translated(exc)

    @property
    def count(self) -> int:
        """Number of images added so far."""
        return sum(self.counts)

    def _shard_path(self, index: int) -> Path:
        return self.tmp_dir / f"shard-{index:05d}.tmp"

    def add(self, image: np.ndarray, label: np.ndarray | None = None) -> None:
        """Appends one image `[R, R, 3]` uint8 (and its label `[label_dim]` float32 when labelled)."""
        if image.shape != (self.resolution, self.resolution, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected uint8 [{self.resolution}, {self.resolution}, 3], got {image.dtype} "
                             f"{list(image.shape)}")
        if (label is None) != (self.label_classes is None):
            raise ValueError("label given for an unlabelled dataset or missing for a labelled one")
        record = records.encode_example(image, self.encoding, label)
        shard = self.count % self.num_shards
        self._writers[shard].write(record)
        self.counts[shard] += 1
        self.bytes_written += len(record)

    def write_text(self, file_name: str, text: str) -> None:
        """Adds a small text file (e.g. the list of skipped images) to the dataset folder."""
        (self.tmp_dir / file_name).write_text(text, encoding="utf-8")

    def commit(self, extra_meta: dict[str, Any] | None = None) -> Path:
        """Closes the shards, writes `dataset.json` and renames the folder into place.

        Args:
            extra_meta: additional `dataset.json` entries (source, skipped counts, ...).

        Returns:
            The published dataset folder.

        Raises:
            UserError: no image was added (an empty dataset is never published).
        """
        if self.count == 0:
            raise UserError(f"{self.target}: no images to write; nothing published")
        for writer in self._writers:
            writer.flush()
            writer.close()
        self._writers = []
        used = [i for i, n in enumerate(self.counts) if n > 0]
        shards = []
        for new_index, old_index in enumerate(used):
            file_name = records.shard_file_name(self.name, new_index, len(used))
            os.replace(self._shard_path(old_index), self.tmp_dir / file_name)
            shards.append({"file": file_name, "count": self.counts[old_index],
                           **records.file_digest(self.tmp_dir / file_name)})
        for i in range(self.num_shards):
            if i not in used:
                self._shard_path(i).unlink(missing_ok=True)
        write_json(self.tmp_dir / records.META_FILE, self._meta(shards, extra_meta))
        publish(self.tmp_dir, self.target, self.overwrite)
        self._committed = True
        self._release()
        return self.target

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _meta(self, shards: list[dict[str, Any]], extra: dict[str, Any] | None) -> dict[str, Any]:
        labels = None
        if self.label_classes is not None:
            labels = {"dim": len(self.label_classes), "classes": self.label_classes}
        meta = {
            "format": records.FORMAT_NAME, "version": records.FORMAT_VERSION, "name": self.name,
            "resolution": self.resolution, "channels": 3, "ratio": self.ratio, "count": self.count,
            "encoding": self.encoding, "layout": "HWC", "shards": shards, "labels": labels,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        meta.update(extra or {})
        return meta

    def _abort(self) -> None:
        for writer in self._writers:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the folder is deleted anyway; the original error matters
                pass
        self._writers = []
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._release()

    def _raise_translated(self, exc: BaseException) -> None:
        """Raises a one-line UserError for disk-full and permission errors; returns for anything else."""
        if is_disk_full(exc):
            raise UserError(f"{self.data_dir}: disk full after {self.count} images "
                            f"({format_bytes(self.bytes_written)}); deleted the partial dataset; free space "
                            f"or choose another --data-dir") from exc
        if isinstance(exc, PermissionError):
            raise UserError(f"{exc.filename or self.data_dir}: permission denied; choose a writable "
                            f"--data-dir") from exc
