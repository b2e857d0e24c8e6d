"""Files and folders: what a path is, atomic writes of files and whole folders, and streamed digests.

- `path_kind` / `not_a_file_reason`: what a path that cannot be read as a file is, for one-line messages.
- `atomic_file`, `write_atomic`, `write_json_atomic`: a file appears whole under its name or not at all
  (temporary file in the same folder, fsync, rename).
- `replace_folder`: a finished temporary folder takes the place of a folder (the old one is moved aside first and
  deleted last).
- `file_digests` / `file_sha256`: hex digests (sha256, md5, ...) of a file, read once in 1 MiB blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from typing import Any, BinaryIO, Iterable, Iterator, Union

from dnnlib.util import UserError

DIGEST_BLOCK_BYTES = 1 << 20

PathLike = Union[str, "os.PathLike[str]"]


def current_umask() -> int:
    """The process's umask, read from `/proc/self/status` where available (changing it to read it would race with
    other threads creating files), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def path_kind(path: PathLike) -> str:
    """What a path that is not a regular file is, for messages: `"a folder"`, `"a FIFO"`, `"a device"`, `"a socket"`,
    `"missing"` (also a dangling link) or `"a file"`."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file"


def not_a_file_reason(path: PathLike) -> str:
    """Why `path` cannot be read as a file: `"file not found; check the path"`, or what it is instead (a folder,
    a FIFO, a device)."""
    kind = path_kind(path)
    if kind == "missing":
        return "file not found; check the path"
    hint = "; pass a file inside it" if kind == "a folder" else "; pass a regular file"
    return f"is {kind}, not a regular file{hint}"


@contextlib.contextmanager
def atomic_file(path: str, fsync: bool = True) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` only when the block ends without an error.

    Writes go to a temporary file in the same folder (`.<name>.tmp-*`), which is flushed, fsynced and renamed over
    `path`: readers see the old file or the whole new one, never a part. The file gets the mode a plain `open`
    would give it (0666 minus the umask). On any error (e.g. disk full) the temporary file is removed and `path`
    is untouched.

    Args:
        path: The file to write.
        fsync: Flush the file to disk before the rename.

    Yields:
        The temporary file, open for binary writing.

    Raises:
        UserError: `path` is a folder (or another non-file), which a file cannot replace.
    """
    if os.path.lexists(path) and path_kind(path) not in ("a file", "missing"):
        raise UserError(f"{path}: is {path_kind(path)}, so the file cannot be written there; move it away or "
                        f"write elsewhere")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_atomic(path: str, data: Union[bytes, str], fsync: bool = True) -> None:
    """Writes `data` (str as UTF-8) to `path` through `atomic_file`."""
    with atomic_file(path, fsync=fsync) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json_atomic(path: str, data: Any) -> None:
    """`write_atomic` of `data` as indented, key-sorted JSON."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def replace_folder(new: PathLike, target: PathLike) -> None:
    """Renames the finished folder `new` to `target`, replacing an existing `target` last.

    An existing `target` is first renamed aside (`.<name>.old-<pid>` beside it), then `new` is renamed in and the
    old folder deleted: at every moment `target` is the old folder, the new one, or (between the two renames)
    absent, never a mix of both. `new` must be on the same filesystem (usually a temporary folder beside `target`).

    Args:
        new: The complete folder.
        target: Where it goes.
    """
    target = os.path.abspath(target)
    old = None
    if os.path.exists(target):
        old = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_digests(path: PathLike, algorithms: Iterable[str]) -> dict[str, str]:
    """Hex digests of a file for several `hashlib` algorithms, read once in `DIGEST_BLOCK_BYTES` blocks.

    Args:
        path: The file.
        algorithms: `hashlib` names, e.g. `("md5", "sha256")`; none: the file is not read.

    Returns:
        `{algorithm: hex digest}` for each requested algorithm.

    Raises:
        OSError: The file cannot be read.
        ValueError: An unknown algorithm.
    """
    hashers = {name: hashlib.new(name) for name in algorithms}
    if hashers:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(DIGEST_BLOCK_BYTES), b""):
                for h in hashers.values():
                    h.update(block)
    return {name: h.hexdigest() for name, h in hashers.items()}


def file_sha256(path: PathLike) -> str:
    """The sha256 hex digest of a file (`file_digests` with one algorithm)."""
    return file_digests(path, ("sha256",))["sha256"]
