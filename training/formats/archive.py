"""Our portable network file: a versioned, data-only zip archive (the `.pkl` file name is kept for users).

Layout (all entries stored uncompressed)::

    meta.json                      {"format": "ganformer-tf2-snapshot", "version": 1,
                                    "networks": ["G", "D", "Gs"], "metadata": {...free-form user data...}}
    <net>/config.json              the network's JSON config dict
    <net>/variables.json           [{"name": "synthesis/4x4/Conv/weight", "file": "<net>/variables/00000.npy",
                                     "shape": [3, 3, 512, 512], "dtype": "float32"}, ...] in variable order
    <net>/variables/<index>.npy    one .npy array per variable, read with allow_pickle=False

Variable names are kept in the index (so any name, `/` included, round-trips) and arrays are stored bit-exactly.
Nothing in the file is ever executed: JSON and raw .npy only, no pickle.

Reading is bounded (`dnnlib.limits`): the index's declared shapes are summed and checked against the network-file
cap before any array is read, each .npy header must match its index entry and its member's size, JSON members are
capped and their nesting bounded, and compressed members may not expand (the writer stores everything).
"""

from __future__ import annotations

import json
import re
import zipfile
from typing import Any, Dict, Tuple

import numpy as np

from dnnlib import limits
from dnnlib.files import atomic_file
from dnnlib.npy import read_npy_header
from dnnlib.util import UserError

FORMAT_NAME = "ganformer-tf2-snapshot"
FORMAT_VERSION = 1

NetworkData = Tuple[Dict[str, Any], Dict[str, np.ndarray]]  # (config, {variable name: array})

_NET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ZIP64_LIMIT = (1 << 31) - (1 << 20)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=False).encode("utf-8")


def _write_network(zf: zipfile.ZipFile, net: str, config: Dict[str, Any], variables: Dict[str, np.ndarray]) -> None:
    """Writes one network's config, variable index and arrays into the open archive."""
    index = []
    for i, (name, value) in enumerate(variables.items()):
        if not isinstance(name, str) or not name:
            raise ValueError(f"snapshot: network {net}: variable names must be non-empty strings, got {name!r}")
        arr = np.asarray(value)
        if arr.dtype.hasobject or arr.dtype.kind not in "biufc":
            raise ValueError(f"snapshot: network {net}: variable '{name}' has dtype {arr.dtype}; only numeric "
                             f"arrays can be stored")
        entry = f"{net}/variables/{i:05d}.npy"
        index.append({"name": name, "file": entry, "shape": list(arr.shape), "dtype": arr.dtype.str})
        with zf.open(entry, "w", force_zip64=arr.nbytes > _ZIP64_LIMIT) as f:
            np.lib.format.write_array(f, arr, allow_pickle=False)
    zf.writestr(f"{net}/config.json", _json_bytes(config))
    zf.writestr(f"{net}/variables.json", _json_bytes(index))


def write_snapshot(path: str, nets: Dict[str, NetworkData], metadata: Dict[str, Any]) -> None:
    """Writes networks and metadata to `path` atomically (temp file in the same dir, then os.replace).

    Args:
        path: Output file, e.g. "results/00000-run/network-snapshot-000100.pkl".
        nets: {"G": (config, variables), "D": ..., "Gs": ...}; config is a JSON-serializable dict (tuples come
            back as lists), variables maps names (may contain "/") to numeric numpy arrays (stored bit-exactly).
        metadata: JSON-serializable free-form dict (e.g. {"kimg": 100, "created": "2024-01-01T00:00:00"}).

    Raises:
        ValueError: A network name, config, variable or the metadata cannot be stored.
    """
    path = str(path)
    for net, item in nets.items():
        if not (isinstance(net, str) and _NET_NAME.match(net)):
            raise ValueError(f"snapshot: network names must be identifiers like 'Gs', got {net!r}")
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], dict)
                and isinstance(item[1], dict)):
            raise ValueError(f"snapshot: network {net} must be given as (config dict, variables dict)")
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "networks": list(nets), "metadata": dict(metadata)}
    with atomic_file(path) as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr("meta.json", _json_bytes(meta))
            for net, (config, variables) in nets.items():
                _write_network(zf, net, config, variables)


def is_snapshot(path: str) -> bool:
    """True if `path` is a zip archive whose meta.json names our format (any version)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as zf:
            budget = limits.ReadBudget(path, limits.NETWORK_FILE_CAP, "a network file")
            meta = json.loads(budget.read(zf, "meta.json", limits.JSON_MEMBER_CAP))
        return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile, UserError):
        return False


def _read_json(zf: zipfile.ZipFile, entry: str, path: str, budget: limits.ReadBudget,
               max_nodes: int = limits.SETTINGS_MAX_NODES) -> Any:
    try:
        data = budget.read(zf, entry, limits.JSON_MEMBER_CAP)
    except KeyError:
        raise UserError(f"{path}: snapshot is missing '{entry}'; the file is corrupt or incomplete") from None
    obj = json.loads(data.decode("utf-8"))
    limits.check_tree(obj, f"{path}: snapshot member '{entry}'", max_nodes=max_nodes)
    return obj


def _declared_array(item: Any, net: str, path: str) -> Tuple[str, str, Tuple[int, ...], np.dtype]:
    """Checks one variable index entry; returns (name, member, shape, dtype) as declared."""
    bad = UserError(f"{path}: snapshot network {net} has a malformed variable index; the file is corrupt")
    if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("file"), str)):
        raise bad
    shape, dtype = item.get("shape"), item.get("dtype")
    if not (isinstance(shape, list) and len(shape) <= 32 and isinstance(dtype, str)
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 48 for n in shape)):
        raise bad
    try:
        parsed = np.dtype(dtype)
    except (TypeError, ValueError):
        raise bad from None
    if parsed.kind not in "biufc" or parsed.fields is not None or parsed.subdtype is not None or parsed.str != dtype:
        raise bad
    return item["name"], item["file"], tuple(shape), parsed


def _check_npy_header(zf: zipfile.ZipFile, member: str, shape: Tuple[int, ...], dtype: np.dtype,
                      where: str, path: str) -> None:
    """The member's .npy header must declare the indexed shape and dtype, and the member hold exactly that data."""
    with zf.open(member) as f:
        got_shape, _, got_dtype = read_npy_header(f)
        data_bytes = zf.getinfo(member).file_size - f.tell()
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if got_shape != shape or got_dtype != dtype or data_bytes != nbytes:
        raise UserError(f"{path}: snapshot variable '{where}' does not match its index entry; the file is corrupt")


def _read_network(zf: zipfile.ZipFile, net: str, path: str, budget: limits.ReadBudget) -> NetworkData:
    """Reads one network's config and variables: all declared sizes are checked before any array is read."""
    config = _read_json(zf, f"{net}/config.json", path, budget)
    index = _read_json(zf, f"{net}/variables.json", path, budget, max_nodes=1_000_000)
    if not isinstance(config, dict) or not isinstance(index, list):
        raise UserError(f"{path}: snapshot network {net} has a malformed config or variable index; the file is "
                        f"corrupt")
    declared = [_declared_array(item, net, path) for item in index]
    total = sum(int(np.prod(shape, dtype=object)) * dtype.itemsize for _, _, shape, dtype in declared)
    budget.take(total, f"network {net} ({len(declared)} variables)")
    variables: Dict[str, np.ndarray] = {}
    for name, member, shape, dtype in declared:
        if name in variables:
            raise UserError(f"{path}: snapshot variable '{net}/{name}' appears twice; the file is corrupt")
        try:
            budget.check_expansion(zf.getinfo(member))
            _check_npy_header(zf, member, shape, dtype, f"{net}/{name}", path)
            with zf.open(member) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
                trailing = f.read()  # reaching the end also makes zipfile verify the entry's CRC
        except KeyError:
            raise UserError(f"{path}: snapshot is missing '{member}'; the file is corrupt or incomplete") from None
        if trailing:
            raise UserError(f"{path}: snapshot variable '{net}/{name}' does not match its index entry; the file "
                            f"is corrupt")
        variables[name] = arr
    return config, variables


def _check_header(path: str) -> None:
    """Raises a UserError describing what `path` is when it is not a zip archive."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror}); check the path") from None
    if head[:1] == b"\x80":
        raise UserError(f"{path}: this is a Python pickle, not a GANformer-TF2 snapshot; snapshots never contain "
                        f"pickles (the authors' TF1 checkpoints are read by load_networks instead)")
    if head != b"PK\x03\x04":
        raise UserError(f"{path}: not a GANformer-TF2 snapshot (not a zip archive); the file is corrupt or of "
                        f"another kind")


def read_snapshot(path: str) -> Tuple[Dict[str, NetworkData], Dict[str, Any]]:
    """Reads a snapshot written by `write_snapshot`; executes nothing from the file.

    Args:
        path: Snapshot file.

    Returns:
        `(nets, metadata)`: nets maps "G"/"D"/"Gs" (as written) to `(config, variables)`, variables in the
        written order with identical bits; metadata is the free-form dict given to `write_snapshot`.

    Raises:
        UserError: Not a snapshot (a pickle, another file), an unknown format or newer version, or corruption.
    """
    path = str(path)
    _check_header(path)
    budget = limits.ReadBudget(path, limits.NETWORK_FILE_CAP, "a network file")
    try:
        limits.check_file_size(path, limits.NETWORK_FILE_CAP, "a network file")
        with zipfile.ZipFile(path) as zf:
            meta = _read_json(zf, "meta.json", path, budget)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
                found = meta.get("format") if isinstance(meta, dict) else None
                raise UserError(f"{path}: unknown file format {found!r} (expected '{FORMAT_NAME}'); this is not a "
                                f"GANformer-TF2 snapshot")
            version = meta.get("version")
            if not isinstance(version, int) or version < 1:
                raise UserError(f"{path}: snapshot has an invalid format version {version!r}; the file is corrupt")
            if version > FORMAT_VERSION:
                raise UserError(f"{path}: snapshot format version {version} is newer than this code reads "
                                f"({FORMAT_VERSION}); upgrade GANformer-TF2 to load it")
            names = meta.get("networks")
            if not (isinstance(names, list) and all(isinstance(n, str) and _NET_NAME.match(n) for n in names)):
                raise UserError(f"{path}: snapshot has a malformed network list; the file is corrupt")
            if len(set(names)) != len(names) or len(names) > 16:
                raise UserError(f"{path}: snapshot has a malformed network list; the file is corrupt")
            nets = {net: _read_network(zf, net, path, budget) for net in names}
            metadata = meta.get("metadata", {})
    except UserError:
        raise
    except Exception as exc:  # zipfile/zlib/json/numpy errors: the archive is damaged
        msg = " ".join(str(exc).split())[:160]
        raise UserError(f"{path}: snapshot is corrupt ({type(exc).__name__}: {msg}); re-create or re-download "
                        f"it") from None
    return nets, metadata
