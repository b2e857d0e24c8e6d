"""Conversion pipeline: image source -> the authors' preprocessing (`preprocess`) -> atomic sharded dataset,
with a summary.

1. Check the output name (refuse an existing dataset unless overwriting) and the options.
2. Scan image headers (sources that allow it): non-images are skipped and counted, images too small for
   `--resolution` are skipped, and without `--resolution` all images must end at the same size.
3. Decode + preprocess in worker threads, write in order, with a tqdm bar and ETA. Images that fail to
   decode (truncated, corrupt) are skipped and counted; the run fails only when no image is usable.
4. Publish the dataset atomically; print what was written and what was skipped, and why
   (`skipped.txt` in the dataset folder lists every skipped image).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from dnnlib.disk import format_bytes
from dnnlib.util import UserError
from training.data import preprocess
from training.data.labels import LabelMap, load_labels
from training.data.parallel import ordered_map
from training.data.sources import Item, Source
from training.data.writer import DatasetWriter, check_target

DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error, zlib.error,
                 Image.DecompressionBombError)
SHARD_BYTES = 256 << 20
MAX_SHARDS = 1024
WARN_LINES = 10
UNREADABLE, TOO_SMALL, NO_LABEL = "unreadable", "too small", "no label"
DEFAULT_SHAPES_RESOLUTION, DEFAULT_SHAPES_COUNT = 64, 10_000


@dataclass
class ConvertOptions:
    """Options of one conversion (CLI flags of `prepare_data.py`)."""

    name: str
    data_dir: Path
    ratio: float = 1.0
    resolution: int | None = None
    max_images: int | None = None
    shards: int | None = None
    encoding: str = "raw"
    overwrite: bool = False
    labels: str | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True


@dataclass
class Summary:
    """Outcome of a conversion."""

    path: Path
    written: int
    resolution: int
    shards: int
    bytes: int
    seconds: float
    skipped: dict[str, list[tuple[str, str]]]

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"Wrote {self.written} images of {self.resolution}x{self.resolution} to {self.path} "
               f"({self.shards} shard{'s' * (self.shards != 1)}, {format_bytes(self.bytes)}) "
               f"in {self.seconds:.1f} s."]
        total = sum(len(v) for v in self.skipped.values())
        if total:
            parts = ", ".join(f"{len(v)} {reason}" for reason, v in self.skipped.items() if v)
            out.append(f"Skipped {total} image{'s' * (total != 1)}: {parts}; list in {self.path / 'skipped.txt'}")
        else:
            out.append("Skipped 0 images.")
        return out


class _Skips:
    """Collects skipped items by reason and prints the first few as one-line warnings."""

    def __init__(self, progress: bool):
        self.by_reason: dict[str, list[tuple[str, str]]] = {UNREADABLE: [], TOO_SMALL: [], NO_LABEL: []}
        self.progress = progress

    def add(self, reason: str, name: str, message: str) -> None:
        self.by_reason[reason].append((name, message))
        shown = sum(len(v) for v in self.by_reason.values())
        if shown <= WARN_LINES:
            tqdm.write(f"warning: {name}: {message}; skipped", file=sys.stderr)
        elif shown == WARN_LINES + 1:
            tqdm.write("warning: more images skipped; see the summary at the end", file=sys.stderr)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_reason.values())

    def text(self) -> str:
        return "".join(f"{reason}\t{name}\t{msg}\n" for reason, v in self.by_reason.items() for name, msg in v)

    def counts(self) -> dict[str, int]:
        return {reason: len(v) for reason, v in self.by_reason.items() if v}

    def describe(self) -> str:
        parts = [f"{len(v)} {r} (e.g. {v[0][0]}: {v[0][1]})" for r, v in self.by_reason.items() if v]
        return "; ".join(parts)


def validate_options(opts: ConvertOptions) -> None:
    """Checks flag values (one-line UserError per problem)."""
    if not 0.0 < opts.ratio <= 1.0 or math.isnan(opts.ratio):
        raise UserError(f"--ratio {opts.ratio}: must be in (0, 1] (content height / width, e.g. 0.75 for 4:3)")
    if opts.resolution is not None and (opts.resolution < preprocess.MIN_RESOLUTION
                                        or not preprocess.is_power_of_two(opts.resolution)):
        raise UserError(f"--resolution {opts.resolution}: must be a power of two >= {preprocess.MIN_RESOLUTION}")
    if opts.max_images is not None and opts.max_images < 1:
        raise UserError(f"--max-images {opts.max_images}: must be >= 1")
    if opts.shards is not None and not 1 <= opts.shards <= MAX_SHARDS:
        raise UserError(f"--shards-num {opts.shards}: must be in 1..{MAX_SHARDS}")


def _too_small_message(size: tuple[int, int], natural: int, resolution: int) -> str:
    return (f"{size[0]}x{size[1]} is too small for {resolution}x{resolution} (it would end at {natural}x{natural}); "
            f"use --resolution {natural} or remove it")


def _scan(source: Source, items: list[Item], opts: ConvertOptions, labels: LabelMap | None,
          skips: _Skips) -> tuple[list[Item], int]:
    """Reads headers; returns the usable items and the output resolution.

    Raises:
        UserError: mixed sizes without --resolution.
    """
    def header(item: Item) -> tuple[Item, Any]:
        try:
            return item, source.header_size(item)
        except DECODE_ERRORS as exc:
            return item, exc

    usable, by_size = [], {}
    results = ordered_map(header, items, opts.workers, window=64)
    for item, size in tqdm(results, total=len(items), desc="scan", unit="img", disable=not opts.progress,
                           leave=False):
        if isinstance(size, BaseException):
            skips.add(UNREADABLE, item.name, _decode_message(size))
            continue
        if labels is not None and labels.vector(item.label_key) is None:
            skips.add(NO_LABEL, item.name, "has no label in --labels")
            continue
        natural = preprocess.natural_resolution(size[0], size[1], opts.ratio)
        if natural < preprocess.MIN_RESOLUTION:
            skips.add(TOO_SMALL, item.name, _below_minimum_message(size, natural))
            continue
        if opts.resolution is not None and natural < opts.resolution:
            skips.add(TOO_SMALL, item.name, _too_small_message(size, natural, opts.resolution))
            continue
        by_size.setdefault(natural, []).append((item, size))
        usable.append(item)
    if not usable:
        raise UserError(f"{source.description}: none of the images can be used ({skips.describe()}); "
                        f"nothing written")
    if opts.resolution is not None:
        return usable, opts.resolution
    if len(by_size) > 1:
        parts = ", ".join(f"{len(v)} at {r}x{r} (e.g. {v[0][0].name}, {v[0][1][0]}x{v[0][1][1]})"
                          for r, v in sorted(by_size.items(), reverse=True))
        keeps = ", ".join(f"{r} keeps {sum(len(v) for q, v in by_size.items() if q >= r)}"
                          for r in sorted(by_size, reverse=True))
        raise UserError(f"{source.description}: images would end at different sizes: {parts}; pass --resolution "
                        f"R to choose ({keeps}; smaller images are skipped, larger ones downscaled)")
    return usable, next(iter(by_size))


def _below_minimum_message(size: tuple[int, int], natural: int) -> str:
    low = preprocess.MIN_RESOLUTION
    return f"{size[0]}x{size[1]} would end at {natural}x{natural}, below the minimum resolution {low}x{low}"


def _decode_message(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image (cannot identify the file format)"
    if isinstance(exc, Image.DecompressionBombError):
        return "too many pixels to decode safely"
    return f"unreadable ({text})"


def _process(item: Item, ratio: float, resolution: int | None) -> tuple[Item, Any, str | None, str]:
    """Loads + preprocesses one item -> (item, uint8 [R, R, 3] or None, skip reason, message)."""
    try:
        loaded = item.load()
        img = loaded if isinstance(loaded, Image.Image) else preprocess.array_to_image(np.asarray(loaded))
        with img:
            img.load()
            natural = preprocess.natural_resolution(img.width, img.height, ratio)
            if natural < preprocess.MIN_RESOLUTION:
                return item, None, TOO_SMALL, _below_minimum_message(img.size, natural)
            if resolution is not None and natural < resolution:
                return item, None, TOO_SMALL, _too_small_message(img.size, natural, resolution)
            return item, preprocess.preprocess_image(img, ratio, resolution), None, ""
    except DECODE_ERRORS as exc:
        return item, None, UNREADABLE, _decode_message(exc)


def _free_bytes(folder: Path) -> int:
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _plan_shards(opts: ConvertOptions, count: int, resolution: int) -> int:
    """Shard count (`--shards-num`, else ~256 MiB of raw pixels per shard) after checking free space."""
    raw_bytes = count * resolution * resolution * 3
    free = _free_bytes(Path(opts.data_dir))
    if opts.encoding == "raw" and raw_bytes * 1.01 > free:
        raise UserError(f"{opts.data_dir}: needs about {format_bytes(raw_bytes)} but only {format_bytes(free)} are "
                        f"free; free space, use --encoding png, --max-images or another --data-dir")
    shards = opts.shards or min(MAX_SHARDS, max(1, math.ceil(raw_bytes / SHARD_BYTES)))
    return max(1, min(shards, count))


def _open_writer(opts: ConvertOptions, resolution: int, expected: int, labels: LabelMap | None) -> DatasetWriter:
    return DatasetWriter(opts.data_dir, opts.name, resolution=resolution, ratio=opts.ratio,
                         num_shards=_plan_shards(opts, max(expected, 1), resolution), encoding=opts.encoding,
                         label_classes=labels.classes if labels else None, overwrite=opts.overwrite)


def convert(source: Source, opts: ConvertOptions) -> Summary:
    """Converts a source into a prepared dataset `<data_dir>/<name>` (see module docstring).

    Raises:
        UserError: bad options, existing output, mixed sizes, no usable image, disk full.
    """
    validate_options(opts)
    check_target(opts.data_dir, opts.name, opts.overwrite)
    start = time.time()
    skips = _Skips(opts.progress)
    for note in source.warnings:
        tqdm.write(f"warning: {note}", file=sys.stderr)
    items = None if source.streaming else list(source.items())
    labels = load_labels(opts.labels, [i.label_key for i in items or []],
                         max_classes=len(items) if items is not None else source.count)
    resolution = opts.resolution
    if items is not None:
        items, resolution = _scan(source, items, opts, labels, skips)
    expected = len(items) if items is not None else (source.count or 0)
    expected = min(expected, opts.max_images or expected)
    with contextlib.ExitStack() as stack:
        writer = None if resolution is None else stack.enter_context(_open_writer(opts, resolution, expected, labels))
        work = ordered_map(functools.partial(_process, ratio=opts.ratio, resolution=resolution),
                           items if items is not None else source.items(), opts.workers)
        stack.callback(work.close)
        bar = stack.enter_context(tqdm(total=expected or None, desc=opts.name, unit="img",
                                       disable=not opts.progress))
        for item, image, reason, message in work:
            if image is not None and labels is not None and labels.vector(item.label_key) is None:
                image, reason, message = None, NO_LABEL, "has no label in --labels"
            if image is None:
                skips.add(reason, item.name, message)
                if items is not None and bar.total:
                    bar.total -= 1
                bar.set_postfix(skipped=skips.total)
                continue
            if writer is None:
                resolution = image.shape[0]
                writer = stack.enter_context(_open_writer(opts, resolution, expected, labels))
            if image.shape[0] != resolution:
                raise UserError(f"{item.name}: would end at {image.shape[0]}x{image.shape[0]} but earlier images at "
                                f"{resolution}x{resolution}; pass --resolution {min(resolution, image.shape[0])}")
            writer.add(image, labels.vector(item.label_key) if labels else None)
            bar.update(1)
            if opts.max_images is not None and writer.count >= opts.max_images:
                break
        if writer is None or writer.count == 0:
            raise UserError(f"{source.description}: none of the images can be used ({skips.describe()}); "
                            f"nothing written")
        if skips.total:
            writer.write_text("skipped.txt", skips.text())
        meta = {"source": source.description, "preprocessing": "spec 4.2 (RGB, crop to ratio, pad to square, "
                "Lanczos resize)", "skipped": skips.counts()}
        if labels is not None:
            meta["label_source"] = opts.labels
        path = writer.commit(meta)
        return Summary(path=path, written=writer.count, resolution=resolution, shards=sum(1 for n in writer.counts if n),
                       bytes=writer.bytes_written, seconds=time.time() - start, skipped=skips.by_reason)


def write_shapes(opts: ConvertOptions, seed: int = 0) -> Summary:
    """Renders the built-in `shapes` dataset (`opts.max_images` images, default 10,000) and writes it.

    Raises:
        UserError: bad options, existing output, disk full.
    """
    from training.data import shapes_render

    validate_options(opts)
    check_target(opts.data_dir, opts.name, opts.overwrite)
    resolution = opts.resolution or DEFAULT_SHAPES_RESOLUTION
    count = opts.max_images or DEFAULT_SHAPES_COUNT
    start = time.time()
    with DatasetWriter(opts.data_dir, opts.name, resolution=resolution, ratio=1.0,
                       num_shards=_plan_shards(opts, count, resolution), encoding=opts.encoding,
                       overwrite=opts.overwrite) as writer, \
            tqdm(total=count, desc=opts.name, unit="img", disable=not opts.progress) as bar:
        for batch in shapes_render.generate(seed, count, resolution, workers=opts.workers):
            for image in batch:
                writer.add(image)
            bar.update(len(batch))
        path = writer.commit({"source": f"built-in shapes renderer, seed {seed}", "seed": seed,
                              "preprocessing": "none (rendered at the target resolution)", "skipped": {}})
    return Summary(path=path, written=count, resolution=resolution, shards=sum(1 for n in writer.counts if n),
                   bytes=writer.bytes_written, seconds=time.time() - start, skipped={})
