"""The header of an `.npy` file, read before any of its data: what a reader checks against what it expects."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Reads the magic and the header of format 1.0 or 2.0 (what `np.save` writes), leaving `f` at the first data byte.

    Args:
        f: A binary file positioned at the start of the `.npy` data.

    Returns:
        `(shape, fortran_order, dtype)` as the header declares them.

    Raises:
        ValueError: Not an `.npy` magic, another format version, or a malformed header (NumPy may also raise
            SyntaxError or TypeError for a header that is not a literal dict).
    """
    version = np.lib.format.read_magic(f)
    reader = _READERS.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    shape, fortran_order, dtype = reader(f)
    return tuple(int(n) for n in shape), bool(fortran_order), np.dtype(dtype)
