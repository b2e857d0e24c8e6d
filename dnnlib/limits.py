"""Bounds on what loading a file may allocate: caps derived from the largest real files, and the checks that apply
them before anything is allocated.

Every loader of a network or weights file reads sizes that the file *declares* (zip member sizes, array shapes,
pickle opcodes) and refuses the file with one `UserError` line before allocating when they exceed:

- `NETWORK_FILE_CAP` (2.19 GiB): 4x the largest real model. That is the authors' `cityscapes-snapshot-2048.pkl`
  (GANformer, 2048x2048): its G, D and Gs hold `LARGEST_MODEL_VALUES` = 146,774,781 float32 values = 587 MB (the
  `ganformer-cityscapes` preset at resolution 2048, counted by a shape-only build; the G and Gs noise buffers of
  the 2048x2048 layers are most of it; `tests/test_reliability_files.py` recounts it).
- `TORCH_FILE_CAP` (2.06 GiB): 4x the largest `.pt` file the metrics read, NVIDIA's `vgg16.pt` (VGG16's
  138,357,544 float32 parameters, 553 MB).
- `ZIP_EXPANSION_CAP` (16 MiB): how much the compressed members of one zip file may expand beyond their compressed
  bytes in total. Our snapshots and PyTorch's `.pt` writer store arrays uncompressed, so real files expand by a
  few KiB (TorchScript's code files); a zip bomb expands by gigabytes.
- `JSON_MEMBER_CAP` (16 MiB) per JSON document, and `check_tree`'s depth and node counts for nested settings
  (shared references and self-references count once per path, so a 2^40-path DAG or a cycle stops at the bound).

Together: loading allocates at most a small multiple of the real data a file holds (arrays are read once from
bytes that are physically in the file, then converted once), never more than the cap.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from typing import Any, Callable, Iterable

from dnnlib.disk import format_bytes
from dnnlib.util import UserError

LARGEST_MODEL_VALUES = 146_774_781
NETWORK_FILE_CAP = 4 * 4 * LARGEST_MODEL_VALUES
VGG16_VALUES = 138_357_544
TORCH_FILE_CAP = 4 * 4 * VGG16_VALUES
ZIP_EXPANSION_CAP = 16 << 20
JSON_MEMBER_CAP = 16 << 20
SETTINGS_MAX_DEPTH = 32
SETTINGS_MAX_NODES = 100_000


class ReadBudget:
    """The bytes one loader may still allocate for one file; every declared size is taken before it is read.

    Args:
        source: The file (named in every message).
        limit: Cap in bytes (e.g. `NETWORK_FILE_CAP`).
        kind: What the budget is for, for messages, e.g. "a network file".
        reason: Where the cap comes from, for messages.
    """

    def __init__(self, source: str, limit: int, kind: str, reason: str = "4x the largest real model") -> None:
        self.source, self.limit, self.kind, self.reason = source, int(limit), kind, reason
        self.used = 0
        self.expanded = 0

    def take(self, num_bytes: int, item: str) -> None:
        """Accounts `num_bytes` for `item`.

        Raises:
            UserError: The running total would exceed the cap.
        """
        if num_bytes < 0 or self.used + num_bytes > self.limit:
            raise UserError(f"{self.source}: {item} needs {format_bytes(num_bytes)}, more than {self.kind} may take "
                            f"({format_bytes(self.limit)} in all: {self.reason}); refusing it")
        self.used += num_bytes

    def member(self, archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
        """Looks a zip member up and takes its declared size (and its expansion when compressed).

        Raises:
            KeyError: No such member.
            UserError: Over the cap, or compressed members expand by more than `ZIP_EXPANSION_CAP`.
        """
        info = archive.getinfo(name)
        self.take(info.file_size, f"member {name!r}")
        self.check_expansion(info)
        return info

    def check_expansion(self, info: zipfile.ZipInfo) -> None:
        """Counts how far a compressed member expands beyond its compressed bytes (stored members: not at all).

        Raises:
            UserError: The file's compressed members expand by more than `ZIP_EXPANSION_CAP` in total.
        """
        name = info.filename
        if info.compress_type != zipfile.ZIP_STORED:
            self.expanded += max(0, info.file_size - info.compress_size)
            if self.expanded > ZIP_EXPANSION_CAP:
                raise UserError(f"{self.source}: compressed member {name!r} expands from "
                                f"{format_bytes(info.compress_size)} to {format_bytes(info.file_size)} (a zip bomb; "
                                f"real files store their arrays uncompressed); refusing it")

    def read(self, archive: zipfile.ZipFile, name: str, max_bytes: int | None = None) -> bytes:
        """Reads a whole member after `member()`; never more than its declared size (zipfile checks the CRC).

        Args:
            archive: The open archive.
            name: Member name.
            max_bytes: A tighter limit for this member (e.g. `JSON_MEMBER_CAP`).

        Raises:
            KeyError: No such member.
            UserError: Over a limit, or the member's data is shorter than declared.
        """
        info = archive.getinfo(name)
        if max_bytes is not None and info.file_size > max_bytes:
            raise UserError(f"{self.source}: member {name!r} declares {format_bytes(info.file_size)}, more than the "
                            f"{format_bytes(max_bytes)} such a member may hold; the file is corrupt or crafted")
        self.member(archive, name)
        with archive.open(info) as f:
            data = f.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise UserError(f"{self.source}: member {name!r} holds {len(data)} bytes, not the {info.file_size} it "
                            f"declares; the file is corrupt")
        return data


def check_file_size(path: str, limit: int, kind: str) -> int:
    """Returns the size of `path`, refusing files larger than `limit` before anything is read.

    Raises:
        OSError: The file cannot be read.
        UserError: The file is larger than the cap.
    """
    size = os.path.getsize(path)
    if size > limit:
        raise UserError(f"{path}: the file holds {format_bytes(size)}, more than {kind} may hold "
                        f"({format_bytes(limit)}: 4x the largest real model); refusing it")
    return size


def _children(obj: Any) -> Iterable[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    return ()


def check_tree(root: Any, where: str, max_depth: int = SETTINGS_MAX_DEPTH, max_nodes: int = SETTINGS_MAX_NODES,
               children: Callable[[Any], Iterable[Any]] = _children) -> None:
    """Walks nested containers iteratively, counting every path: refuses deep, cyclic or exponentially shared ones.

    A value reachable along several paths counts once per path, so a self-reference or a DAG of 2^40 paths ends
    at the bounds after at most `max_nodes` steps, without recursion.

    Args:
        root: The structure (dicts, lists, tuples; `children` decides what is a container).
        where: Names the structure in messages, e.g. "net.pkl: network G static_kwargs".
        max_depth: Deepest nesting allowed.
        max_nodes: Most values (counted per path) allowed.
        children: Returns a value's direct children (empty for scalars).

    Raises:
        UserError: One line naming `where` and the bound that was exceeded.
    """
    stack, nodes = [(root, 0)], 1
    while stack:
        obj, depth = stack.pop()
        kids = list(children(obj))
        if not kids:
            continue
        if depth + 1 > max_depth:
            raise UserError(f"{where}: nested more than {max_depth} levels deep (or refers to itself); the file is "
                            f"corrupt or crafted")
        nodes += len(kids)
        if nodes > max_nodes:
            raise UserError(f"{where}: holds more than {max_nodes:,} values counted along every path (shared or "
                            f"self-referencing parts); the file is corrupt or crafted")
        stack.extend((kid, depth + 1) for kid in kids)


_PUT_OPS = ("PUT", "BINPUT", "LONG_BINPUT")


def check_pickle_ops(data: bytes, source: str) -> None:
    """Scans a pickle's opcodes without building anything (`pickletools.genops`, which never reads more bytes than
    the data holds) and refuses memo indices beyond the number of opcodes: Python's unpickler would allocate a memo
    table of that many entries (a 20-byte pickle with index 2^32 asks for 32 GiB).

    Raises:
        UserError: Memo bomb, or the opcodes cannot be parsed (truncated or not a pickle).
    """
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(data)):
            if op.name in _PUT_OPS and not (isinstance(arg, int) and 0 <= arg <= count):
                raise UserError(f"{source}: the pickle stores memo entry {arg} after only {count} opcodes (a memory "
                                f"bomb; real pickles number them in order); refusing it")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - genops raises ValueError and friends on damaged data
        text = " ".join(str(exc).split())[:120]
        raise UserError(f"{source}: not a readable pickle ({type(exc).__name__}: {text}); the file is truncated or "
                        f"corrupt") from None
