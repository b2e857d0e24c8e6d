"""Checks of user-given names and folder paths, before anything is written under them."""

from __future__ import annotations

import os

from dnnlib.util import UserError

MAX_NAME_BYTES = 200  # names get suffixes (`-NNN`, `.partial-<pid>`, shard numbers) within the 255-byte limit


def check_name(flag: str, name: str) -> None:
    """A name that becomes a folder inside the output folder (`--expname`): not empty, no path separator or NUL,
    no leading dot (`..` would leave the folder), at most `MAX_NAME_BYTES` bytes.

    Raises:
        UserError: One line naming the flag and what a name may hold.
    """
    problem = None
    if not name:
        problem = "is empty"
    elif "/" in name or "\0" in name or (os.sep != "/" and os.sep in name):
        problem = "holds a path separator (it names a folder inside the output folder)"
    elif name.startswith("."):
        problem = "starts with a dot (hidden, or a way out of the output folder)"
    elif len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes (file names are limited to 255)"
    if problem:
        raise UserError(f"{flag} {name[:60]!r}{'...' if len(name) > 60 else ''}: {problem}; pass a short plain "
                        "name such as exp or ffhq-run1")


def check_folder_flag(flag: str, path: str) -> None:
    """Refuses a folder flag (`--result-dir`, `--data-dir`) that names something other than a folder."""
    probe = os.path.abspath(path)
    while probe and not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        probe = "" if parent == probe else parent
    if probe and not os.path.isdir(probe):
        where = "" if probe == os.path.abspath(path) else f" ({probe} is a file)"
        raise UserError(f"{flag} {path}: not a folder{where}; pass a folder (it is created when missing)")
