"""Read the tensors of a PyTorch / TorchScript `.pt` zip archive without torch.

A `.pt` file written by `torch.save` or `torch.jit.save` is a zip archive. Its `<prefix>/data.pkl` is a pickle
in which every tensor is rebuilt by `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and
every storage is a persistent id `('storage', <torch.XStorage>, key, location, numel)` whose raw little-endian
bytes live in `<prefix>/data/<key>`. TorchScript modules appear as objects of classes in the `__torch__`
namespace whose state is a plain attribute dict.

This reader uses a restricted `pickle.Unpickler`: the tensor-rebuild functions and storage types map to small
numpy-building stand-ins, TorchScript module classes map to an inert record (`ScriptObject`) that only stores
its attribute dict, and every other global is refused with a `UserError`. Nothing from the file is executed.

Memory is bounded (`dnnlib.limits`): members are read up to their declared sizes within `TORCH_FILE_CAP` (4x the
largest real `.pt`, NVIDIA's VGG16), compressed members may barely expand, the pickle's opcodes are scanned for
memo bombs first, a tensor may not hold more elements than its storage from its offset on (stride-0 views of a
1-element storage asking for 10^12 elements are refused), and the object tree is walked with bounded depth and
size (self-references and shared-reference DAGs are refused).
"""

from __future__ import annotations

import collections
import functools
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Tuple, Union

import numpy as np

from dnnlib import limits
from dnnlib.util import UserError

_TREE_MAX_DEPTH = 64
_TREE_MAX_NODES = 1_000_000

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


def _rebuild_tensor(budget: limits.ReadBudget, storage: np.ndarray, offset: int, size: Tuple[int, ...],
                    stride: Tuple[int, ...], *_unused: Any) -> np.ndarray:
    """numpy stand-in for `torch._utils._rebuild_tensor_v2`: a copied strided view over a storage.

    The copy may hold no more elements than the storage has from `offset` on, and is taken from `budget`.
    """
    where = budget.source
    if not isinstance(storage, np.ndarray) or len(size) > 32 or len(stride) > 32:
        raise UserError(f"{where}: a tensor is not built over a storage; the .pt file is corrupt")
    offset, size, stride = int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise UserError(f"{where}: tensor size {size} and stride {stride} differ in rank; the .pt file is corrupt")
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise UserError(f"{where}: tensor with negative size/stride/offset; the .pt file is corrupt")
    numel = int(np.prod(size, dtype=object))
    if numel > storage.size - offset:
        raise UserError(f"{where}: a tensor of shape {list(size)} ({numel:,} elements) over {storage.size - offset:,} "
                        f"stored elements (stride 0 repeats them); refusing the .pt file")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if numel else offset - 1
    if last >= storage.size:
        raise UserError(f"{where}: tensor view reaches element {last} of a storage of {storage.size}; the .pt file "
                        f"is corrupt")
    budget.take(numel * storage.itemsize, f"a tensor of shape {list(size)}")
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


_REBUILD_FUNCTIONS = (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"))
_ALLOWED_FUNCTIONS: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.jit._pickle", "build_intlist"): _build_list,
    ("torch.jit._pickle", "build_doublelist"): _build_list,
    ("torch.jit._pickle", "build_boollist"): _build_list,
    ("torch.jit._pickle", "build_tensorlist"): _build_list,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only knows tensors, storages, plain containers and inert TorchScript records."""

    def __init__(self, data: bytes, load_storage: Callable[[str, np.dtype, int], np.ndarray],
                 budget: limits.ReadBudget):
        super().__init__(io.BytesIO(data))
        self._load_storage = load_storage
        self._source = budget.source
        self._rebuild = functools.partial(_rebuild_tensor, budget)
        self._script_classes: Dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REBUILD_FUNCTIONS:
            return self._rebuild
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
        storage_type, key, numel = pid[1], str(pid[2])[:64], int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UserError(f"{self._source}: unsupported storage type {str(storage_type)[:80]}")
        if numel < 0:
            raise UserError(f"{self._source}: storage {key} declares {numel} elements; the .pt file is corrupt")
        return self._load_storage(key, storage_type.dtype, numel)


def _open_zip(path_or_file: Union[str, os.PathLike, BinaryIO]) -> Tuple[zipfile.ZipFile, str]:
    source = str(path_or_file) if isinstance(path_or_file, (str, os.PathLike)) else getattr(path_or_file, "name",
                                                                                          "<file>")
    try:
        if isinstance(path_or_file, (str, os.PathLike)):
            limits.check_file_size(source, limits.TORCH_FILE_CAP, "a .pt file")
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
    budget = limits.ReadBudget(source, limits.TORCH_FILE_CAP, "a .pt file", "4x the largest real .pt file, VGG16")
    with archive:
        names = set(archive.namelist())
        pkl = [n for n in archive.namelist() if n == pickle_name or n.endswith("/" + pickle_name)]
        if not pkl:
            raise UserError(f"{source}: no {pickle_name} inside the archive; pass a PyTorch .pt file")
        prefix = pkl[0][: -len(pickle_name)]
        cache: Dict[str, np.ndarray] = {}

        def load_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            if key not in cache:
                record = prefix + "data/" + key
                if record not in names:
                    raise UserError(f"{source}: storage record {record} is missing; the file is corrupt")
                if archive.getinfo(record).file_size < numel * dtype.itemsize:
                    raise UserError(f"{source}: storage {record} holds {archive.getinfo(record).file_size} bytes, "
                                    f"needs {numel * dtype.itemsize}; the file is truncated")
                cache[key] = np.frombuffer(budget.read(archive, record), dtype=dtype, count=numel)
            return cache[key]

        data = budget.read(archive, pkl[0])
        limits.check_pickle_ops(data, f"{source}: {pkl[0]}")
        try:
            obj = _RestrictedUnpickler(data, load_storage, budget).load()
        except UserError:
            raise
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, KeyError,
                zipfile.BadZipFile) as exc:
            raise UserError(f"{source}: cannot read {pkl[0]} ({' '.join(str(exc).split())[:160]}); the file is "
                            f"corrupt or not a .pt") from None
    limits.check_tree(obj, f"{source}: {pkl[0]}", _TREE_MAX_DEPTH, _TREE_MAX_NODES, _tree_children)
    return obj


def _tree_children(obj: Any) -> Iterable[Any]:
    """Containers of a loaded `.pt` object (attribute dicts of modules, dicts, lists, tuples); arrays are leaves."""
    if isinstance(obj, ScriptObject):
        return [obj.attrs]
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple)):
        return obj
    return ()


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
    """Loads every tensor of a `.pt` archive as an ordered `{dotted_name: array}` dict (pickle order).

    Raises:
        UserError: See `load_pt`.
    """
    return collections.OrderedDict(iter_tensors(load_pt(path_or_file)))
