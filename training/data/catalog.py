"""The paper's datasets (the catalog of the authors' `prepare_data.py`): where they come from, how `prepare_data.py`
installs them, and the per-dataset
constants every other module looks up here (content ratio, R1 gamma, mirror augmentation; `dataset_constants`).

ffhq, clevr and cityscapes are published as TFRecords in the original multi-resolution layout; they are
installed as-is (one file, or unzipped) and read directly by `training.data.loader`. bedrooms (LSUN) is an
LMDB of encoded images, converted with the authors' preprocessing (`training.data.preprocess`) into our record format.
Downloads go through `dnnlib.download.open_url` into `<data-dir>/downloads/` (resumable, md5-checked, Google
Drive confirmation handled, completed downloads re-used); `--source FILE` uses a local copy instead.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dnnlib import download
from dnnlib.files import replace_folder
from dnnlib.util import UserError
from training.data import archive, records
from training.data.writer import check_target, dataset_lock, publish, staging_dir, write_json

FILE, TFRECORD_ZIP, LMDB_ZIP = "tfrecord-file", "tfrecord-zip", "lmdb-zip"


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable dataset.

    Attributes:
        name: dataset / flag name.
        url: download URL.
        md5: md5 of the downloaded file.
        file_name: name of the downloaded file.
        kind: FILE (a TFRecord used as-is), TFRECORD_ZIP (unzipped TFRecords) or LMDB_ZIP (converted).
        download_size: approximate download size.
        disk_size: size of the installed TFRecords (the authors' README).
        images: number of images (the authors' README count in `images_note` when it differs).
        ratio: content height / width.
        shards: shard files of the installed dataset.
        resolution: resolution the paper trains at.
        gamma: R1 weight the authors recommend (the --ganformer-default preset).
        images_note: remark on the count.
        mirror: the --ganformer-default preset trains with mirror augmentation (as the authors' `run_network.py`).
    """

    name: str
    url: str
    md5: str
    file_name: str
    kind: str
    download_size: str
    disk_size: str
    images: int
    ratio: float
    shards: int
    resolution: int
    gamma: float
    images_note: str = ""
    mirror: bool = False


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    CatalogEntry("ffhq", "http://downloads.cs.stanford.edu/nlp/data/dorarad/ffhq-r08.tfrecords1of1",
                 "74de4f07dc7bfb07c0ad4471fdac5e67", "ffhq-r08.tfrecords1of1", FILE, "13 GB", "13 GB", 70_000,
                 1.0, 1, 256, 10.0, mirror=True),
    CatalogEntry("clevr", "https://drive.google.com/uc?id=1lY4JE30yk26v0MWHNpXBOMzltufUcTXj",
                 "3040bb20a29cd2f0e1e9231aebddf2a1", "clevr.zip", TFRECORD_ZIP, "~6 GB", "15.5 GB", 100_000,
                 0.75, 5, 256, 40.0, "README: 100,015"),
    CatalogEntry("cityscapes", "https://drive.google.com/uc?id=1t9Qhxm0iHFd3k-xTYEbKosSx_DkyoLLJ",
                 "953d231046275120dc1f73a5aebc9087", "cityscapes.zip", TFRECORD_ZIP, "~2 GB", "8 GB", 25_000,
                 0.5, 16, 256, 20.0, "README: 24,998", mirror=True),
    CatalogEntry("bedrooms", "http://dl.yf.io/lsun/scenes/bedroom_train_lmdb.zip",
                 "f2c5d904a82a6295dbdccb322b4b0a99", "bedroom_train_lmdb.zip", LMDB_ZIP, "43 GB", "up to 480 GB",
                 3_033_042, 188 / 256, 64, 256, 100.0),
)}
LEGACY_FORMAT = "original-tfrecords"


def dataset_constants(name: str | None) -> tuple[float, float, bool]:
    """`(ratio, gamma, mirror)` of a catalog dataset; `(1.0, 10.0, False)` (the CLI defaults) for any other name."""
    entry = CATALOG.get(name or "")
    return (entry.ratio, entry.gamma, entry.mirror) if entry else (1.0, 10.0, False)
FEW_IMAGES_WARNING = 50_000


def fetch(entry: CatalogEntry, data_dir: Path, source: str | None, progress: bool = True) -> Path:
    """The md5-verified download of an entry: `--source FILE` if given, else downloaded (or resumed, or
    re-used) into `<data_dir>/downloads/`.

    Raises:
        UserError: wrong md5, missing --source file, network failure (the partial file is kept), disk full.
    """
    if source is not None:
        return Path(download.open_url(str(source), md5=entry.md5, return_path=True))
    cache = data_dir / "downloads"
    try:
        return Path(download.open_url(entry.url, cache_dir=str(cache), md5=entry.md5, return_path=True,
                                  progress=progress, file_name=entry.file_name))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{cache}: disk full while downloading {entry.file_name}; free space and run the same "
                            f"command again to resume (or use another --data-dir)") from exc
        raise
    except UserError as exc:
        partial = download.cache_path_for(entry.url, str(cache), entry.file_name) + ".partial"
        if os.path.isfile(partial) and os.path.getsize(partial) > 0:
            raise UserError(f"{exc}; {os.path.getsize(partial) / 2**20:.1f} MiB are kept in {partial}: run the same "
                            f"command again to resume") from exc
        raise


def _count_files(files: list[Path], progress: bool) -> list[int]:
    return [records.count_records(f) for f in tqdm(files, desc="count records", unit="file", disable=not progress)]


def install_tfrecords(entry: CatalogEntry, downloaded: Path, data_dir: Path, overwrite: bool,
                      progress: bool = True) -> Path:
    """Installs original-format TFRecords (one file or a zip of them) as `<data_dir>/<name>/` atomically."""
    target = check_target(data_dir, entry.name, overwrite)
    data_dir.mkdir(parents=True, exist_ok=True)
    with dataset_lock(data_dir, entry.name):
        check_target(data_dir, entry.name, overwrite)  # again, under the lock: another process may have finished
        _install_locked(entry, downloaded, data_dir, target, overwrite, progress)
    return target


def _install_locked(entry: CatalogEntry, downloaded: Path, data_dir: Path, target: Path, overwrite: bool,
                    progress: bool) -> None:
    tmp = staging_dir(data_dir, entry.name)
    try:
        if entry.kind == FILE:
            try:
                os.link(downloaded, tmp / entry.file_name)
            except OSError:
                shutil.copyfile(downloaded, tmp / entry.file_name)
        else:
            archive.extract_zip(downloaded, tmp / "extract", progress)
            found = [p for p in (tmp / "extract").rglob("*") if records.LEGACY_PATTERN.match(p.name) and p.is_file()]
            if not found:
                raise UserError(f"{downloaded}: holds no NAME-rXX.tfrecords files; re-download it")
            for path in found:
                os.replace(path, tmp / path.name)
            shutil.rmtree(tmp / "extract")
        groups = records.find_legacy_files(tmp)
        counts = {str(res): _count_files(files, progress) for res, files in groups.items()}
        write_json(tmp / records.META_FILE, {"format": LEGACY_FORMAT, "name": entry.name, "ratio": entry.ratio,
                                            "counts": counts, "source": entry.url, "md5": entry.md5})
        publish(tmp, target, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_lmdb(entry: CatalogEntry, downloaded: Path, data_dir: Path, progress: bool = True) -> Path:
    """Unzips the LSUN LMDB into `<data_dir>/downloads/` once (a marker file records a complete extraction)."""
    folder = data_dir / "downloads" / entry.file_name.removesuffix(".zip")
    marker = folder / ".extracted"
    if marker.is_file():
        return folder
    partial = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        archive.extract_zip(downloaded, partial, progress)
        inner = next((p.parent for p in partial.rglob("data.mdb")), None)
        if inner is None:
            raise UserError(f"{downloaded}: holds no LMDB (data.mdb); re-download it")
        replace_folder(inner, folder)
        marker.write_text(entry.md5 + "\n")
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder
