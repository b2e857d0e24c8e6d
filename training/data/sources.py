"""Readers of custom image collections for `prepare_data.py --task NAME --images-dir PATH --format F`.

Every source yields `Item`s in a stable order. An item knows its display name (for messages), its label
key (relative path, for labels) and how to load the image (as a PIL image or an array); loading happens
in worker threads. Sources that can read image sizes cheaply (`header_size`) are scanned before
conversion so that mixed sizes and non-images are reported before any work is done.

Formats:
    png, jpg  a folder (recursive; every common image type is read whatever the flag, so a folder
              mixing PNG and JPEG works) or a `.zip` of such files;
    npy       a `.npy` file `[N, H, W, C]` / `[N, C, H, W]` / `[N, H, W]`, or a folder of `.npy` files;
    hdf5      an `.h5`/`.hdf5` file: its only dataset, `images`, or the largest `dataXxX` dataset;
    lmdb      an LMDB folder whose values are encoded images (e.g. LSUN);
    tfds      a TensorFlow Datasets name (split `train`, feature `image`); needs `tensorflow-datasets`.
"""

from __future__ import annotations

import abc
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from dnnlib.util import UserError
from training.data import archive
from training.data.files import is_image_name, scan_folder

FORMATS = ("png", "jpg", "npy", "hdf5", "tfds", "lmdb")
# A zip member larger than an uncompressed 8-bit RGB image at PIL's decompression-bomb threshold
# (Image.MAX_IMAGE_PIXELS = 89,478,485 pixels x 3 bytes = 256 MiB) cannot be a sensible image.
MAX_MEMBER_BYTES = 256 << 20
MAX_ZIP_BYTES = 1 << 40  # 1 TiB uncompressed in total: ~10x FFHQ-1024 as PNGs (89 GB)
IMAGE_CHANNELS = (1, 3, 4)


@dataclass
class Item:
    """One image of a source."""

    name: str
    label_key: str
    load: Callable[[], Any]
    size: tuple[int, int] | None = None


class Source(abc.ABC):
    """A collection of images: `items()`, `count`, `header_size(item)` and `close()`.

    `streaming` sources (LMDB, TFDS) are read once, without a size scan beforehand.
    """

    description = ""
    count: int | None = None
    streaming = False
    others = 0
    warnings: tuple[str, ...] = ()  # one-line notes about entries left out (links out of the folder, FIFOs)

    @abc.abstractmethod
    def items(self) -> Iterator[Item]:
        """The images, in a stable order."""

    def header_size(self, item: Item) -> tuple[int, int]:
        """Image (width, height) read cheaply; raises OSError/ValueError for non-images."""
        if item.size is not None:
            return item.size
        with self._open_header(item) as img:
            return img.size

    def _open_header(self, item: Item) -> Image.Image:
        """Opens an item for its size; readers of files override this to avoid decoding the pixels."""
        loaded = item.load()
        return loaded if isinstance(loaded, Image.Image) else Image.fromarray(np.asarray(loaded))

    def close(self) -> None:
        """Releases open files."""


class FolderSource(Source):
    """Image files under a folder (recursive, sorted)."""

    def __init__(self, folder: Path):
        self.folder = folder
        listing = scan_folder(folder)
        self.files, self.others, self.warnings = listing.files, listing.others, tuple(listing.warnings(folder))
        self.count = len(self.files)
        self.description = f"{folder} ({self.count} image files)"

    def items(self) -> Iterator[Item]:
        for path in self.files:
            rel = path.relative_to(self.folder).as_posix()
            yield Item(name=str(path), label_key=rel, load=lambda p=path: Image.open(p))

    def _open_header(self, item: Item) -> Image.Image:
        return Image.open(item.name)


class ZipSource(Source):
    """Image files inside a zip archive (read in place; member names and declared sizes are checked first)."""

    def __init__(self, path: Path):
        self.path = path
        self.archive = archive.open_zip(path)
        members = [i for i in self.archive.infolist() if not i.is_dir() and "__MACOSX/" not in i.filename]
        try:
            archive.check_sizes(path, members, MAX_MEMBER_BYTES, MAX_ZIP_BYTES)
        except UserError:
            self.archive.close()
            raise
        self.members = sorted((i for i in members if is_image_name(i.filename)), key=lambda i: i.filename)
        self.others = len(members) - len(self.members)
        self.count = len(self.members)
        self.description = f"{path} ({self.count} image files)"

    def items(self) -> Iterator[Item]:
        for info in self.members:
            yield Item(name=f"{self.path}:{info.filename}", label_key=info.filename,
                       load=lambda i=info: self._decode(i))

    def _decode(self, info: zipfile.ZipInfo) -> Image.Image:
        """Decodes a member streamed from the archive (never more than its declared size is read)."""
        with self.archive.open(info) as f:
            img = Image.open(f)
            img.load()
        return img

    def _open_header(self, item: Item) -> Image.Image:
        return Image.open(self.archive.open(item.label_key))

    def close(self) -> None:
        self.archive.close()


def check_image_array(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    """Refuses arrays that cannot hold images: non-numeric dtypes, wrong ranks and channel counts, empty stacks.

    Accepted: `[H, W]`, `[H, W, C]` (one image), `[N, H, W]`, `[N, H, W, C]` or `[N, C, H, W]` with C in 1, 3, 4;
    unsigned/signed integers or floats.

    Raises:
        UserError: One line naming `where`, the shape or dtype found and what is expected.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" or dtype.fields is not None or dtype.subdtype is not None:
        raise UserError(f"{where}: dtype {dtype} is not pixel data; expected an integer (e.g. uint8, uint16) or "
                        f"float array of images")
    ndim, shown = len(shape), list(shape)
    if ndim not in (2, 3, 4):
        raise UserError(f"{where}: array of shape {shown} is not an image or a stack of images")
    if ndim == 4 and shape[-1] not in IMAGE_CHANNELS and shape[1] not in IMAGE_CHANNELS:
        raise UserError(f"{where}: array of shape {shown}: images must have 1, 3 or 4 channels ([N, H, W, C] or "
                        f"[N, C, H, W]); found {shape[-1]}")
    if 0 in shape:
        raise UserError(f"{where}: array of shape {shown} holds no pixels")


def _array_items(arr: Any, name: str, key: str) -> Iterator[Item]:
    """Items of an image stack `[N, ...]` (or a single image when `arr` is 2-D or 3-D with C last)."""
    single = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4))
    stack = [None] if single else range(arr.shape[0])
    for i in stack:
        label = key if single else f"{key}[{i}]"
        yield Item(name=f"{name}" if single else f"{name}[{i}]", label_key=label,
                   load=(lambda: np.asarray(arr)) if single else (lambda j=i: np.asarray(arr[j])),
                   size=_array_size(arr.shape[-2:] if single and arr.ndim == 2 else arr.shape[-3:]))


def _array_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) of an image of shape [H, W], [H, W, C] or [C, H, W]."""
    if len(shape) == 2:
        return int(shape[1]), int(shape[0])
    if shape[-1] in (1, 3, 4):
        return int(shape[1]), int(shape[0])
    return int(shape[2]), int(shape[1])


class NpySource(Source):
    """A `.npy` image stack, or a folder of `.npy` files (each one image or a stack)."""

    def __init__(self, path: Path):
        listing = scan_folder(path, lambda name: name.endswith(".npy") and not name.startswith(".")) \
            if path.is_dir() else None
        self.files = listing.files if listing else [path]
        self.warnings = tuple(listing.warnings(path)) if listing else ()
        if not self.files:
            raise UserError(f"--images-dir {path}: no .npy files found")
        self.arrays = []
        for f in self.files:
            try:
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise UserError(f"{f}: not a readable .npy array ({' '.join(str(exc).split())})") from exc
            check_image_array(arr.shape, arr.dtype, str(f))
            self.arrays.append(arr)
        self.root = path if path.is_dir() else path.parent
        self.count = sum(1 if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3, 4)) else a.shape[0]
                         for a in self.arrays)
        self.description = f"{path} ({self.count} images in {len(self.files)} .npy file(s))"

    def items(self) -> Iterator[Item]:
        for f, arr in zip(self.files, self.arrays):
            yield from _array_items(arr, str(f), f.relative_to(self.root).as_posix())


class Hdf5Source(Source):
    """An HDF5 file holding an image stack."""

    def __init__(self, path: Path):
        import h5py

        if path.is_dir():
            found = sorted([*path.glob("*.h5"), *path.glob("*.hdf5")])
            if len(found) != 1:
                raise UserError(f"--images-dir {path}: expected one .h5/.hdf5 file, found {len(found)}")
            path = found[0]
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise UserError(f"{path}: not a readable HDF5 file ({exc})") from exc
        self.path = path
        try:
            self.key = self._pick_dataset()
            self.data = self.file[self.key]
            if self.data.ndim not in (3, 4):
                raise UserError(f"{path}:{self.key}: shape {list(self.data.shape)} is not a stack of images")
            check_image_array(self.data.shape, self.data.dtype, f"{path}:{self.key}")
        except BaseException:
            self.file.close()
            raise
        self.count = int(self.data.shape[0])
        self.description = f"{path}:{self.key} ({self.count} images)"

    def _pick_dataset(self) -> str:
        import h5py

        names: list[str] = []
        self.file.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
        if "images" in names:
            return "images"
        progressive = [n for n in names if n.startswith("data") and "x" in n]
        if progressive:
            return max(progressive, key=lambda n: int(np.prod(self.file[n].shape[-2:])))
        if len(names) == 1:
            return names[0]
        if not names:
            raise UserError(f"{self.path}: the HDF5 file holds no datasets; expected an image stack named 'images'")
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise UserError(f"{self.path}: cannot tell which dataset holds the images ({shown}); name it 'images'")

    def items(self) -> Iterator[Item]:
        yield from _array_items(self.data, f"{self.path}:{self.key}", self.key)

    def close(self) -> None:
        self.file.close()


class LmdbSource(Source):
    """An LMDB database whose values are encoded images (keys give names and order)."""

    streaming = True

    def __init__(self, path: Path):
        try:
            import lmdb
        except ImportError as exc:
            raise UserError("--format lmdb: the 'lmdb' package is not installed; pip install -r requirements.txt") \
                from exc
        try:
            self.env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, max_readers=64)
        except lmdb.Error as exc:
            raise UserError(f"--images-dir {path}: not an LMDB database ({exc})") from exc
        self.path = path
        self.count = int(self.env.stat()["entries"])
        self.description = f"{path} ({self.count} LMDB entries)"

    def items(self) -> Iterator[Item]:
        with self.env.begin(write=False) as txn:
            for key, value in txn.cursor():
                name = key.decode("utf-8", "replace")
                yield Item(name=f"{self.path}:{name}", label_key=name,
                           load=lambda v=bytes(value): Image.open(io.BytesIO(v)))

    def close(self) -> None:
        self.env.close()


class TfdsSource(Source):
    """A TensorFlow Datasets dataset (split `train`, feature `image`); downloads through TFDS itself."""

    streaming = True

    def __init__(self, name: str):
        try:
            import tensorflow_datasets as tfds
        except ImportError as exc:
            raise UserError("--format tfds: tensorflow-datasets is not installed; pip install tensorflow-datasets") \
                from exc
        try:
            self.dataset, info = tfds.load(name, split="train", with_info=True)
        except Exception as exc:  # noqa: BLE001 - TFDS raises many types; the message is what matters
            raise UserError(f"--images-dir {name}: TFDS cannot load it ({str(exc).splitlines()[0]})") from exc
        self.name = name
        self.count = int(info.splits["train"].num_examples)
        self.description = f"TFDS {name} ({self.count} images)"

    def items(self) -> Iterator[Item]:
        import tensorflow_datasets as tfds

        for i, example in enumerate(tfds.as_numpy(self.dataset)):
            image = example["image"]
            yield Item(name=f"{self.name}[{i}]", label_key=str(i), load=lambda im=image: im)


def open_source(images_dir: str, fmt: str) -> Source:
    """Opens the reader for `--images-dir` / `--format`.

    Raises:
        UserError: unknown format, missing or empty input.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown format; choose one of {', '.join(FORMATS)}")
    if fmt == "tfds":
        return TfdsSource(images_dir)
    path = Path(images_dir)
    if not path.exists():
        raise UserError(f"--images-dir {path}: no such file or folder")
    mode = os.stat(path).st_mode
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise UserError(f"--images-dir {path}: not a regular file or folder (a FIFO, socket or device); pass a "
                        f"folder or a file of images")
    if fmt == "npy":
        return NpySource(path)
    if fmt == "hdf5":
        return Hdf5Source(path)
    if fmt == "lmdb":
        return LmdbSource(path)
    source: Source = ZipSource(path) if path.is_file() and path.suffix.lower() == ".zip" else None
    if source is None:
        if not path.is_dir():
            raise UserError(f"--images-dir {path}: not a folder or a .zip of images")
        source = FolderSource(path)
    if source.count == 0:
        others = f" ({source.others} other files)" if source.others else ""
        source.close()
        raise UserError(f"--images-dir {path}: no image files found{others}; expected .png/.jpg/... files")
    return source
