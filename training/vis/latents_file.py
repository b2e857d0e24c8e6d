"""A user's latents file (`generate.py --latents z.npy`), read without surprises.

The `.npy` header is checked before any data is read: the format (a text or pickle file is named as such), a plain
numeric dtype, the number of dimensions, the count of latents and the size the shape declares against the file's
size. The values must be finite (also after the conversion to float32). Every problem is one `UserError` line
naming the flag and the file.
"""

from __future__ import annotations

import math
import os
from typing import BinaryIO

import numpy as np

from dnnlib.npy import NPY_MAGIC, read_npy_header
from dnnlib.util import UserError

_HINT = "save z [N, K, d] with np.save(path, z)"


def read_latents(path: str, max_count: int, flag: str = "--latents", allow_ws: bool = False) -> np.ndarray:
    """Reads z from an `.npy` file written by `np.save`.

    Args:
        path: The file.
        max_count: The most latents accepted.
        flag: The command-line flag named in errors.
        allow_ws: Also accept 4-D ws `[N, K, S, d]` (e.g. a projection's `ws.npy`).

    Returns:
        float32 z `[N, K, d]` (a 2-D `[K, d]` file is one latent), or ws `[N, K, S, d]` with `allow_ws`; all values
        finite.

    Raises:
        UserError: Unreadable file, not an `.npy` array, non-numeric dtype, wrong number of dimensions, no or too
            many latents, a size that disagrees with the header, or NaN/inf values.
    """
    where = f"{flag} {path}"
    try:
        with open(path, "rb") as f:
            shape, dtype = _header(f, where)
            data_bytes = os.fstat(f.fileno()).st_size - f.tell()
    except OSError as exc:
        raise UserError(f"{where}: cannot read ({exc.strerror}); check the path") from None
    if dtype.kind not in "fiu" or dtype.fields is not None or dtype.shape:
        raise UserError(f"{where}: holds {dtype} values, not numbers; {_HINT} (float32)")
    if len(shape) not in ((2, 3, 4) if allow_ws else (2, 3)):
        shapes = "[N, K, d], [K, d] or ws [N, K, S, d]" if allow_ws else "[N, K, d] or [K, d]"
        raise UserError(f"{where}: has shape {list(shape)}; expected {shapes}; {_HINT}")
    count = shape[0] if len(shape) >= 3 else 1
    if 0 in shape:
        raise UserError(f"{where}: has shape {list(shape)}, which holds no latents")
    if count > max_count:
        raise UserError(f"{where}: holds {count:,} latents; at most {max_count:,} per call (split the file)")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for absurd shapes
    if data_bytes != expected:
        state = "truncated" if data_bytes < expected else "followed by other data"
        raise UserError(f"{where}: the file is {state} ({data_bytes:,} bytes of data, its header declares "
                        f"{expected:,}); {_HINT}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
        z = np.load(path, allow_pickle=False).astype(np.float32)
    z = z[None] if z.ndim == 2 else z
    bad = np.flatnonzero(~np.isfinite(z).reshape(len(z), -1).all(axis=1))
    if len(bad):
        rows = ", ".join(str(i) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise UserError(f"{where}: {len(bad)} of {len(z)} latents hold NaN or infinite values (or values beyond "
                        f"float32) at rows {rows}; every value must be a finite number")
    return z


def _header(f: BinaryIO, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """`(shape, dtype)` from the `.npy` header of `f`, leaving `f` at the first data byte."""
    head = f.read(len(NPY_MAGIC))
    if head != NPY_MAGIC:
        kind = "a Python pickle" if head[:1] == b"\x80" else "a zip (.npz) archive" if head[:2] == b"PK" \
            else "text or another format"
        raise UserError(f"{where}: not a .npy file (it is {kind}); {_HINT}")
    f.seek(0)
    try:
        shape, _, dtype = read_npy_header(f)
    except (ValueError, SyntaxError, TypeError) as exc:
        message = " ".join(str(exc).split())[:120]
        raise UserError(f"{where}: unreadable .npy header ({message}); {_HINT}") from None
    return shape, dtype
