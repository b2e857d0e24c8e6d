"""Shared helpers of the data tests: tiny image folders, the authors' multi-resolution TFRecords, and running
prepare_data in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

import prepare_data


def make_images(folder: Path, count: int, size: tuple[int, int] = (16, 16), seed: int = 0, ext: str = "png",
                prefix: str = "img") -> list[np.ndarray]:
    """Writes `count` random RGB images `folder/<prefix>NNN.<ext>` (width, height = size); returns the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = []
    for i in range(count):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{prefix}{i:03d}.{ext}")
        arrays.append(arr)
    return arrays


def run_cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """Runs prepare_data.main in-process; returns (exit status, stdout, error/warning lines of stderr)."""
    status = prepare_data.main([*args, "--workers", "1"])
    captured = capsys.readouterr()
    # stderr, and stdout too: a logger left by an earlier in-process test may route stderr lines there
    text = captured.err + "\n" + captured.out
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    messages = [ln for ln in lines if ln.startswith(("error:", "warning:", "prepare_data.py: error"))]
    assert "Traceback" not in captured.err
    return status, captured.out, messages


def assert_nothing_written(data_dir: Path, name: str) -> None:
    """No dataset folder and no temporary leftovers."""
    assert not (data_dir / name).exists()
    if data_dir.exists():
        leftovers = [p.name for p in data_dir.iterdir() if p.name.startswith(f".{name}.")]
        assert leftovers == []


def write_original(folder: Path, base: str, images_hwc: np.ndarray, shards: int = 2) -> None:
    """Writes the authors' layout: one file set per LOD, `shape` = [C, H, W], `data` = raw CHW, round-robin."""
    folder.mkdir(parents=True, exist_ok=True)
    res = images_hwc.shape[1]
    lod = int(np.log2(res))
    level = images_hwc.astype(np.float64)
    for r in range(lod, 1, -1):
        writers = [tf.io.TFRecordWriter(str(folder / f"{base}-r{r:02d}.tfrecords{s + 1}of{shards}"))
                   for s in range(shards)]
        for i, img in enumerate(np.rint(level).astype(np.uint8)):
            chw = img.transpose(2, 0, 1)
            ex = tf.train.Example(features=tf.train.Features(feature={
                "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(chw.shape))),
                "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[chw.tobytes()]))}))
            writers[i % shards].write(ex.SerializeToString())
        for w in writers:
            w.close()
        level = level.reshape(len(level), level.shape[1] // 2, 2, level.shape[2] // 2, 2, 3).mean(axis=(2, 4))
