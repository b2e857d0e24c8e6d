"""Read the tensors of a PyTorch / TorchScript `.pt` zip archive without torch.

A `.pt` file written by `torch.save` or `torch.jit.save` is a zip archive. Its `<prefix>/data.pkl` is a pickle
in which every tensor is rebuilt by `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and
every storage is a persistent id `('storage', <torch.XStorage>, key, location, numel)` whose raw little-endian
bytes live in `<prefix>/data/<key>`. TorchScript modules appear as objects of classes in the `__torch__`
namespace whose state is a plain attribute dict.

This reader uses a restricted `pickle.Unpickler`: the tensor-rebuild functions and storage types map to small
numpy-building stand-ins, TorchScript module classes map to an inert record (`ScriptObject`) that only stores
its attribute dict, and every other global is refused with a `UserError`. Nothing from the file is executed.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Tuple, Union

import numpy as np

from dnnlib.util import UserError

_STORAGE_DTYPES: Dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a `torch.XStorage` class: only remembers the element dtype."""

    name: str
    dtype: np.dtype


class ScriptObject:
    """Inert record of a TorchScript module object (`__torch__.<...>` class); holds its attributes only.

    Attributes:
        type_name: The qualified TorchScript class name, e.g. `__torch__.inceptionv3.Conv2dLayer`.
        attrs: The object's state dict (parameters are numpy arrays, submodules are `ScriptObject`s).
    """

    type_name = "__torch__"

    def __init__(self) -> None:
        self.attrs: Dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UserError(f"{self.type_name}: unexpected object state of type {type(state).__name__}; "
                            "only TorchScript modules with attribute dicts are supported")
        self.attrs = dict(state)

    def __repr__(self) -> str:
        return f"ScriptObject({self.type_name}, {sorted(self.attrs)})"


def _rebuild_tensor(storage: np.ndarray, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...],
                    *_unused: Any) -> np.ndarray:
    """numpy stand-in for `torch._utils._rebuild_tensor_v2`: a copied strided view over a storage."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise UserError(f"tensor: size {size} and stride {stride} differ in rank; the .pt file is corrupt")
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise UserError("tensor: negative size/stride/offset; the .pt file is corrupt")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.size:
        raise UserError(f"tensor: view reaches element {last} of a storage of {storage.size}; the .pt file is corrupt")
    item = storage.itemsize
    base = storage[offset:]
    view = np.lib.stride_tricks.as_strided(base, shape=size, strides=[s * item for s in stride], writeable=False)
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _rebuild_parameter(data: np.ndarray, *_unused: Any) -> np.ndarray:
    """numpy stand-in for `torch._utils._rebuild_parameter`: a parameter is just its data."""
    return data


def _build_list(items: Any) -> List[Any]:
    """Stand-in for `torch.jit._pickle.build_intlist` and friends."""
    return list(items)


_ALLOWED_FUNCTIONS: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.jit._pickle", "build_intlist"): _build_list,
    ("torch.jit._pickle", "build_doublelist"): _build_list,
    ("torch.jit._pickle", "build_boollist"): _build_list,
    ("torch.jit._pickle", "build_tensorlist"): _build_list,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only knows tensors, storages, plain containers and inert TorchScript records."""

    def __init__(self, data: bytes, load_storage: Callable[[str, np.dtype, int], np.ndarray], source: str):
        super().__init__(io.BytesIO(data))
        self._load_storage = load_storage
        self._source = source
        self._script_classes: Dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_FUNCTIONS:
            return _ALLOWED_FUNCTIONS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if qualname not in self._script_classes:
                self._script_classes[qualname] = type(name, (ScriptObject,), {"type_name": qualname})
            return self._script_classes[qualname]
        raise UserError(f"{self._source}: refusing to load '{module}.{name}' from the pickle (only tensors and "
                        "TorchScript module records are read); pass a plain PyTorch/TorchScript weights file")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UserError(f"{self._source}: unsupported persistent id {str(pid)[:80]}; the .pt file is not a "
                            "PyTorch tensor archive")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UserError(f"{self._source}: unsupported storage type {storage_type!r}")
        return self._load_storage(key, storage_type.dtype, numel)


def _open_zip(path_or_file: Union[str, os.PathLike, BinaryIO]) -> Tuple[zipfile.ZipFile, str]:
    source = str(path_or_file) if isinstance(path_or_file, (str, os.PathLike)) else getattr(path_or_file, "name",
                                                                                          "<file>")
    try:
        return zipfile.ZipFile(path_or_file), source
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{source}: not a readable PyTorch .pt zip archive ({exc}); pass a TorchScript/torch.save "
                        "file") from exc


def load_pt(path_or_file: Union[str, os.PathLike, BinaryIO], pickle_name: str = "data.pkl") -> Any:
    """Loads the object pickled in a `.pt` zip archive, with tensors as numpy arrays.

    Args:
        path_or_file: Path or binary file object of the `.pt` archive.
        pickle_name: Which pickle of the archive to read (`data.pkl`; TorchScript also has `constants.pkl`).

    Returns:
        The unpickled object: `ScriptObject` trees for TorchScript modules, dicts for state dicts; every tensor is
        a C-contiguous numpy array.

    Raises:
        UserError: The file is not a `.pt` archive or its pickle references anything but tensors/modules.
    """
    archive, source = _open_zip(path_or_file)
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n == pickle_name or n.endswith("/" + pickle_name)]
        if not pkl:
            raise UserError(f"{source}: no {pickle_name} inside the archive; pass a PyTorch .pt file")
        prefix = pkl[0][: -len(pickle_name)]
        cache: Dict[str, np.ndarray] = {}

        def load_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            if key not in cache:
                record = prefix + "data/" + key
                if record not in names:
                    raise UserError(f"{source}: storage record {record} is missing; the file is corrupt")
                raw = archive.read(record)
                if len(raw) < numel * dtype.itemsize:
                    raise UserError(f"{source}: storage {record} holds {len(raw)} bytes, needs "
                                    f"{numel * dtype.itemsize}; the file is truncated")
                cache[key] = np.frombuffer(raw, dtype=dtype, count=numel)
            return cache[key]

        try:
            return _RestrictedUnpickler(archive.read(pkl[0]), load_storage, source).load()
        except UserError:
            raise
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{source}: cannot read {pkl[0]} ({exc}); the file is corrupt or not a .pt") from exc


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
    """Yields `(dotted_name, array)` for every numpy array in a loaded object, in pickle (module) order.

    Args:
        obj: The result of `load_pt` (ScriptObject tree, dict, list or array).
        prefix: Name prefix for the yielded names.
    """
    if isinstance(obj, np.ndarray):
        yield prefix, obj
    elif isinstance(obj, ScriptObject):
        yield from iter_tensors(obj.attrs, prefix)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iter_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from iter_tensors(value, f"{prefix}.{i}" if prefix else str(i))


def load_tensors(path_or_file: Union[str, os.PathLike, BinaryIO]) -> "collections.OrderedDict[str, np.ndarray]":
    """Loads every tensor of a `.pt` archive as an ordered `{dotted_name: array}` dict (pickle order)."""
    return collections.OrderedDict(iter_tensors(load_pt(path_or_file)))
