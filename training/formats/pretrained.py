"""The authors' released GANformer checkpoints (`gdrive:<name>.pkl`) and resolving network paths to local files.

URLs are the current Google Drive uploads (2022-05-27). The files' checksums were not published, so none are
checked; `read_legacy_pickle` validates the contents instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from typing import Mapping, Optional

from dnnlib.download import open_url
from dnnlib.files import not_a_file_reason
from dnnlib.util import UserError
from training.data.catalog import dataset_constants

CATALOG_PREFIX = "gdrive:"


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One released checkpoint.

    Attributes:
        name: Catalog key without the prefix, e.g. "ffhq-snapshot.pkl" (also the cached file's name).
        url: Download URL.
        resolution: Generator output size (square, pixels).
        eval_only: Released for evaluation only (the high-resolution models).
    """

    name: str
    url: str
    resolution: int
    eval_only: bool = False

    @property
    def key(self) -> str:
        return CATALOG_PREFIX + self.name

    @property
    def dataset(self) -> str:
        """The dataset the model was trained on (the name's first part, e.g. "clevr")."""
        return self.name.split("-")[0]

    @property
    def ratio(self) -> float:
        """Content height / width inside the square output (1.0 = whole image), from the dataset catalog."""
        return dataset_constants(self.dataset)[0]


def _gdrive(file_id: str) -> str:
    return f"https://drive.google.com/uc?id={file_id}"


_ENTRIES = (
    CatalogEntry("clevr-snapshot.pkl", _gdrive("1sYtuNEi0HGBH1F8GW2JlF4mCRGGrtZa9"), 256),
    CatalogEntry("cityscapes-snapshot.pkl", _gdrive("1iL8S26IYCNAQmUS-6GYCVheKFtCE4ktQ"), 256),
    CatalogEntry("ffhq-snapshot.pkl", _gdrive("1-b0vwevUQs6LI_EybdO8XJ5uYSx63vEa"), 256),
    CatalogEntry("bedrooms-snapshot.pkl", _gdrive("1lrB4t3hOOpn8YiwHEduIZYzndHrsKX8z"), 256),
    CatalogEntry("cityscapes-snapshot-2048.pkl", _gdrive("1lJlbIuxF89-owG7vQSBYXc8y2RqqP_bP"), 2048, True),
    CatalogEntry("ffhq-snapshot-1024.pkl", _gdrive("1OcsibUthk2y8y0slf2lQnrYBAtmdJYCQ"), 1024, True),
)

CATALOG: Mapping[str, CatalogEntry] = types.MappingProxyType({e.key: e for e in _ENTRIES})


def catalog_names() -> list:
    """Returns the known catalog keys, e.g. ["gdrive:clevr-snapshot.pkl", ...]."""
    return list(CATALOG)


def resolve_network_path(path_or_name: str, cache_dir: Optional[str] = None, *, progress: bool = True) -> str:
    """Maps a catalog name, URL or local path to a local file path.

    Args:
        path_or_name: `gdrive:<name>.pkl` (downloaded once into the cache), an http(s)/file:// URL, or a path.
        cache_dir: Download cache dir; default env `GANFORMER_CACHE_DIR`, else `~/.cache/ganformer`.
        progress: Show a download progress bar.

    Returns:
        Path of a local file (not yet validated as a network file).

    Raises:
        UserError: Unknown catalog name (the message lists the known ones), missing local file, or a failed
            download (offline: the message says where to put a manually downloaded file).
    """
    spec = str(path_or_name).strip()
    if spec.startswith(CATALOG_PREFIX):
        entry = CATALOG.get(spec)
        if entry is None:
            raise UserError(f"{spec}: unknown pretrained network; known names: {', '.join(CATALOG)}")
        try:
            return open_url(entry.url, cache_dir=cache_dir, return_path=True, progress=progress,
                            file_name=entry.name)
        except UserError as exc:
            raise UserError(f"{spec}: {exc}") from None
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec):
        return open_url(spec, cache_dir=cache_dir, return_path=True, progress=progress)
    path = os.path.expanduser(spec)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise UserError(f"{spec}: {not_a_file_reason(path)} (a network snapshot .pkl)")
    if not os.path.isfile(path):
        hint = (f"did you mean {CATALOG_PREFIX}{os.path.basename(path)}?"
                if CATALOG_PREFIX + os.path.basename(path) in CATALOG else
                f"pass an existing network file or one of: {', '.join(CATALOG)}")
        raise UserError(f"{spec}: file not found; {hint}")
    return path
