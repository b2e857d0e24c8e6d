"""Reads the authors' TF1 network pickles (`(G, D, Gs)` of `dnnlib.tflib.network.Network`) without their code.

The file is a standard pickle (protocol <= 4, read with `encoding="latin1"`). Each `Network` object's state is a
dict with `version`, `name`, `static_kwargs`, `components`, `build_module_src`, `build_func_name` and
`variables` (a list of `(local_name, float32 array)` in creation order). A restricted unpickler resolves only an
allow-list of globals: the `Network` class (mapped to an inert record that just stores its state dict),
`dnnlib.util.EasyDict` (mapped to a dict) and numpy's array/dtype/scalar reconstruction functions (mapped to inert
records that check every declared shape and dtype against the bytes the pickle really holds). Any other global
makes loading fail with a `UserError` before that global could be called, so a malicious pickle cannot run code.
`build_module_src` (the authors' Python source, which their loader executes) is ignored.

Memory is bounded (`dnnlib.limits`): the file may hold at most the network-file cap; its opcodes are scanned for
memo bombs before unpickling; no array is larger than the bytes stored for it; the float32 copies of all variables
may take at most 4x the file's size (arrays shared between variables count every time); settings and components
are walked with bounded depth and size (self-references and shared-reference DAGs are refused).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import types
from typing import IO, Any, Dict, Mapping

import numpy as np

from dnnlib import limits
from dnnlib.util import UserError

SUPPORTED_VERSIONS = (2, 3, 4)
_SNIFF_BYTES = 1 << 12
_MAX_NETWORKS = 64  # records in one pickle: G, D, Gs and their components (3 + 2 + 2 in the authors' files)
_MAX_COMPONENT_DEPTH = 4
_NUMERIC_KINDS = "biuf"


@dataclasses.dataclass
class LegacyNetwork:
    """One network of an authors' pickle (data only).

    Attributes:
        name: TF scope name, e.g. "G", "Gs", "D", "G_synthesis", "G_mapping".
        version: Pickle format version of the record (2-4).
        build_func_name: Name of the authors' build function, e.g. "Generator", "G_GANformer", "G_synthesis".
        static_kwargs: Constructor kwargs (plain dicts/lists/scalars), e.g. {"resolution": 256, "z_dim": 32, ...}.
        components: Sub-networks by component key, e.g. {"synthesis": ..., "mapping": ...} for G; {} for D.
        variables: This network's own variables in creation order, local name -> float32 array (shape-[]
            variables as 0-d arrays), e.g. "4x4/Conv/weight" -> [3, 3, C_in, C_out].
    """

    name: str
    version: int
    build_func_name: str
    static_kwargs: Dict[str, Any]
    components: Dict[str, "LegacyNetwork"]
    variables: Dict[str, np.ndarray]

    def flat_variables(self) -> Dict[str, np.ndarray]:
        """Returns all variables: own ones first, then each component's prefixed by `<component key>/`.

        For G this gives e.g. `ltnt_emb/emb`, `dlatent_avg`, `synthesis/4x4/Conv/weight`, ...,
        `mapping/AttLayer_0/...`.
        """
        flat = dict(self.variables)
        for key, comp in self.components.items():
            for name, value in comp.flat_variables().items():
                flat[f"{key}/{name}"] = value
        return flat


@dataclasses.dataclass
class LegacyCheckpoint:
    """The three networks of an authors' pickle: G (trained generator), D, Gs (moving average, for sampling)."""

    path: str
    G: LegacyNetwork
    D: LegacyNetwork
    Gs: LegacyNetwork


class _NetworkRecord:
    """Inert stand-in for `dnnlib.tflib.network.Network`: only keeps the state dict it is given."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DictRecord(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (items come through SETITEMS; the empty attribute state
    some pickles BUILD with is accepted and ignored)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


class _NdarrayClass:
    """Stand-in for the global `numpy.ndarray`: only `_reconstruct`'s first argument; calling it is refused (it
    would allocate an array of any declared size without data)."""

    def __init__(self, source: str) -> None:
        self._source = source

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UserError(f"{self._source}: refusing to load: the pickle calls numpy.ndarray directly, which network "
                        f"pickles never do; the file may be malicious or not a GANformer checkpoint")


class _DtypeRecord:
    """Stand-in for a pickled `numpy.dtype`: a plain numeric dtype; its state may only set the byte order."""

    def __init__(self, dtype: np.dtype, source: str) -> None:
        self.dtype, self._source = dtype, source

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and all(item is None for item in state[2:5])):
            raise UserError(f"{self._source}: a numpy dtype in the pickle has fields or a sub-array shape; network "
                            f"weights are plain numeric arrays, the file is corrupt or crafted")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayRecord:
    """Stand-in for a pickled `numpy.ndarray`: its state must declare a shape whose bytes the pickle really holds."""

    def __init__(self, source: str) -> None:
        self.array: np.ndarray | None = None
        self._source = source

    def __setstate__(self, state: Any) -> None:
        bad = UserError(f"{self._source}: a numpy array in the pickle is malformed (its declared shape, dtype and "
                        f"data disagree); the file is corrupt or crafted")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise bad
        shape, dtype, fortran, raw = state[-4:]
        if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
            raw = raw.encode("latin1")
        if not (isinstance(shape, tuple) and len(shape) <= 32 and isinstance(dtype, _DtypeRecord)
                and isinstance(raw, (bytes, bytearray)) and isinstance(fortran, int) and fortran in (0, 1)
                and all(isinstance(n, int) and 0 <= n < 1 << 48 for n in shape)):
            raise bad
        if int(np.prod(shape, dtype=object)) * dtype.dtype.itemsize != len(raw):
            raise bad
        self.array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C")


def _numpy_multiarray_modules() -> tuple[str, ...]:
    return ("numpy.core.multiarray", "numpy._core.multiarray")


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose `find_class` only resolves the allow-list; everything else raises a UserError."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._ndarray = _NdarrayClass(source)
        allowed = {
            ("dnnlib.tflib.network", "Network"): _NetworkRecord,
            ("dnnlib.util", "EasyDict"): _DictRecord,
            ("numpy", "ndarray"): self._ndarray,
            ("numpy", "dtype"): self._dtype,
        }
        for module in _numpy_multiarray_modules():
            allowed[(module, "_reconstruct")] = self._reconstruct
            allowed[(module, "scalar")] = self._scalar
        self._allowed: Mapping[tuple, Any] = types.MappingProxyType(allowed)

    def _refuse(self, what: str) -> UserError:
        return UserError(f"{self._source}: refusing to load: {what}; the file is corrupt or crafted")

    def _dtype(self, obj: Any, align: Any = False, copy: Any = False) -> _DtypeRecord:
        """`numpy.dtype(name)` for plain fixed-size names only (e.g. "f4"; strings are refused later as weights)."""
        if not isinstance(obj, str) or len(obj) > 8:
            raise self._refuse(f"the pickle builds a numpy dtype from {type(obj).__name__} {str(obj)[:40]!r}")
        try:
            dtype = np.dtype(obj)
        except TypeError:
            raise self._refuse(f"the pickle names an unknown numpy dtype {obj!r}") from None
        if dtype.kind not in _NUMERIC_KINDS + "cSU" or dtype.fields is not None or dtype.subdtype is not None:
            raise self._refuse(f"the pickle holds a numpy dtype {dtype} that network weights never have")
        return _DtypeRecord(dtype, self._source)

    def _reconstruct(self, cls: Any, shape: Any, typecode: Any) -> _ArrayRecord:
        """`numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")`: an empty record its state fills."""
        if cls is not self._ndarray or shape != (0,):
            raise self._refuse("the pickle reconstructs a numpy array in a way numpy itself never pickles one")
        return _ArrayRecord(self._source)

    def _scalar(self, dtype: Any, data: Any = None) -> np.generic:
        """`numpy.core.multiarray.scalar(dtype, bytes)`: one value of a plain numeric dtype."""
        if isinstance(data, str):
            data = data.encode("latin1")
        if not (isinstance(dtype, _DtypeRecord) and isinstance(data, bytes) and len(data) == dtype.dtype.itemsize):
            raise self._refuse("the pickle holds a malformed numpy scalar")
        return np.frombuffer(data, dtype.dtype, count=1)[0]

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"{self._source}: refusing to load: the pickle references {module}.{name}, which is not allowed "
                f"(a network pickle may only contain network records and numpy arrays; the file may be "
                f"malicious or not a GANformer checkpoint)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UserError(f"{self._source}: refusing to load: the pickle uses persistent ids, which network pickles "
                        f"never do; the file may be malicious or not a GANformer checkpoint")


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unpickle(path: str) -> Any:
    """Runs the restricted unpickler on `path` (size-capped, opcodes pre-scanned); failures are one-line UserErrors."""
    try:
        limits.check_file_size(path, limits.NETWORK_FILE_CAP, "a network file")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror}); check the path") from None
    limits.check_pickle_ops(data, path)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path).load()
    except UserError:
        raise
    except Exception as exc:  # the allow-list means only file problems can end up here
        raise UserError(f"{path}: not a readable network pickle ({type(exc).__name__}: {_one_line(exc)}); "
                        f"the file is truncated or corrupt, download it again") from None


def _plain(value: Any) -> Any:
    """Converts EasyDict stand-ins (recursively, also inside lists/tuples) to plain dicts; call `check_tree` first."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


@dataclasses.dataclass
class _Reading:
    """What converting the records of one file has used so far."""

    path: str
    budget: limits.ReadBudget
    networks: int = 0


def _convert_variables(raw: Any, where: str, ctx: _Reading) -> Dict[str, np.ndarray]:
    """Validates a `[(name, value), ...]` list and returns {name: float32 ndarray} in the same order."""
    path = ctx.path
    if not isinstance(raw, (list, tuple)):
        raise UserError(f"{path}: network {where}: 'variables' is a {type(raw).__name__}, expected a list of "
                        f"(name, array) pairs; the file is corrupt")
    out: Dict[str, np.ndarray] = {}
    for item in raw:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise UserError(f"{path}: network {where}: a variable entry is not a (name, array) pair; the file is "
                            f"corrupt")
        name, value = item
        if isinstance(value, _ArrayRecord):
            value = value.array
        if not isinstance(value, (np.ndarray, np.generic)) or value.dtype.kind not in _NUMERIC_KINDS:
            raise UserError(f"{path}: network {where}: variable '{name}' is not a numeric array "
                            f"({type(value).__name__}); the file is corrupt or not a GANformer checkpoint")
        if name in out:
            raise UserError(f"{path}: network {where}: variable '{name}' appears twice; the file is corrupt")
        ctx.budget.take(4 * int(value.size), f"variable '{where}/{_one_line(name, 80)}'")
        arr = np.array(value, dtype=np.float32, order="C", copy=None)  # keeps 0-d arrays 0-d
        out[name] = arr if arr.flags.writeable else arr.copy()
    return out


def _convert_network(obj: Any, where: str, ctx: _Reading, seen: frozenset = frozenset()) -> LegacyNetwork:
    """Validates one network record (and its components, recursively) and converts it to a LegacyNetwork."""
    path = ctx.path
    if not isinstance(obj, _NetworkRecord) or not isinstance(obj.state, dict):
        raise UserError(f"{path}: {where} is a {type(obj).__name__}, not a network; the file is not a "
                        f"GANformer/StyleGAN2 TF1 network pickle")
    if id(obj) in seen:
        raise UserError(f"{path}: network {where} contains itself; the file is corrupt")
    ctx.networks += 1
    if ctx.networks > _MAX_NETWORKS or len(seen) > _MAX_COMPONENT_DEPTH:
        raise UserError(f"{path}: network {where}: more than {_MAX_NETWORKS} networks or components nested more "
                        f"than {_MAX_COMPONENT_DEPTH} deep; the file is corrupt or crafted")
    seen = seen | {id(obj)}
    state = obj.state
    version = state.get("version")
    if not (isinstance(version, int) and version in SUPPORTED_VERSIONS):
        raise UserError(f"{path}: network {where} has format version {_one_line(repr(version), 40)}; only versions "
                        f"2-4 (the authors' TF1 releases) can be read")
    missing = [k for k in ("name", "static_kwargs", "build_func_name", "variables") if k not in state]
    if missing:
        raise UserError(f"{path}: network {where} lacks {', '.join(missing)}; the file is corrupt")
    name, func, kwargs = state["name"], state["build_func_name"], state["static_kwargs"]
    components = state.get("components") or {}
    if not (isinstance(name, str) and isinstance(func, str) and isinstance(kwargs, dict)
            and isinstance(components, dict) and all(isinstance(k, str) for k in components)):
        raise UserError(f"{path}: network {where} has malformed name/build_func_name/static_kwargs/components; "
                        f"the file is corrupt")
    limits.check_tree(kwargs, f"{path}: network {where} static_kwargs")
    return LegacyNetwork(
        name=name, version=int(version), build_func_name=func,
        static_kwargs=_plain(kwargs),
        components={k: _convert_network(v, f"{where}/{k}", ctx, seen) for k, v in components.items()},
        variables=_convert_variables(state["variables"], where, ctx))


def read_legacy_pickle(path: str) -> LegacyCheckpoint:
    """Reads an authors' TF1 network pickle without executing anything from it.

    Args:
        path: Local path of a pickle holding the tuple `(G, D, Gs)` (e.g. `network-snapshot-*.pkl`).

    Returns:
        LegacyCheckpoint with `.G`, `.D`, `.Gs`.

    Raises:
        UserError: The file cannot be read, is truncated/corrupt, references a global outside the allow-list,
            holds a memory bomb (see the module docstring), or does not hold three networks of a supported format
            version.
    """
    path = str(path)
    obj = _unpickle(path)
    if not (isinstance(obj, tuple) and len(obj) == 3):
        desc = f"a tuple of {len(obj)} items" if isinstance(obj, tuple) else f"a {type(obj).__name__}"
        raise UserError(f"{path}: expected a tuple (G, D, Gs) of networks, found {desc}; the file is not a "
                        f"GANformer/StyleGAN2 TF1 network pickle")
    limit = 4 * limits.check_file_size(path, limits.NETWORK_FILE_CAP, "a network file")
    ctx = _Reading(path, limits.ReadBudget(path, limit, "the variables of this file",
                                           "4x the file's size: arrays shared between variables count each time"))
    nets = [_convert_network(o, label, ctx) for o, label in zip(obj, ("G", "D", "Gs"))]
    return LegacyCheckpoint(path=path, G=nets[0], D=nets[1], Gs=nets[2])


def is_legacy_pickle(path: str) -> bool:
    """Cheap sniff: True if `path` starts like a pickle whose first global is the authors' `Network` class."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return b"dnnlib.tflib.network" in head
    return head.startswith(b"cdnnlib.tflib.network\nNetwork\n") or head.startswith(b"(cdnnlib.tflib.network\n")
