"""Run folders `<result-dir>/<expname>-NNN`: names, listing, and one owner process at a time.

A training process owns its run folder through `run.lock` (`dnnlib.locks.FolderLock`, taken before anything is
written into the folder, released at exit). A new run folder is created with `os.mkdir`, which fails when the name
exists, so two processes starting at once never get the same `exp-NNN`. Under multi-worker training only the chief
writes, and only the chief takes the lock.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from dnnlib.locks import FolderLock
from dnnlib.util import UserError

LOCK_FILE = "run.lock"
OPTIONS_FILE = "training_options.json"
_MAX_TRIES = 1000


def run_dirs(result_dir: str, expname: str) -> list[str]:
    """Existing run dirs `<result_dir>/<expname>-NNN`, oldest first. Found by listing the folder and matching names
    exactly (no glob: an experiment name may hold `[`, `*` or `?`)."""
    pattern = re.compile(re.escape(expname) + r"-(\d+)")
    names = os.listdir(result_dir) if os.path.isdir(result_dir) else []
    found = [(int(m.group(1)), os.path.join(result_dir, name)) for name in names
             if (m := pattern.fullmatch(name)) and os.path.isdir(os.path.join(result_dir, name))]
    return [p for _, p in sorted(found)]


def has_training_state(run_dir: str) -> bool:
    """Whether a run folder holds checkpoints (what a resume continues)."""
    folder = os.path.join(run_dir, "checkpoints")
    return os.path.isdir(folder) and any(n.startswith("ckpt-") for n in os.listdir(folder))


def run_lock(run_dir: str) -> FolderLock:
    """The (not yet acquired) lock of a run folder."""
    return FolderLock(os.path.join(run_dir, LOCK_FILE), f"run folder {run_dir}",
                      "wait for that run to end or stop it, pass --restart to start a new run beside it, or "
                      "choose another --result-dir / --expname")


def lock_run_dir(run_dir: str) -> FolderLock:
    """Takes the lock of an existing run folder (a resume).

    Raises:
        UserError: Another process owns the folder, or the folder is not writable.
    """
    return run_lock(run_dir).acquire()


def claim_new_run_dir(result_dir: str, expname: str, candidate: Optional[str] = None) -> tuple[str, FolderLock]:
    """A run folder for a new run, owned by this process: `candidate` (an existing folder without a run record,
    e.g. one made by --eval) when it is free, else a new `<expname>-NNN` made atomically.

    Raises:
        UserError: The result folder cannot be created or written.
    """
    if candidate and os.path.isdir(candidate):
        lock = run_lock(candidate)
        try:
            lock.acquire()
        except UserError:
            lock = None
        if lock is not None and not os.path.exists(os.path.join(candidate, OPTIONS_FILE)):
            return candidate, lock
        if lock is not None:
            lock.release()
    try:
        os.makedirs(result_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--result-dir {result_dir}: cannot create it ({exc.strerror}); pass a writable folder") \
            from None
    next_id = 0
    for _ in range(_MAX_TRIES):
        existing = run_dirs(result_dir, expname)
        next_id = max(next_id, int(existing[-1].rsplit("-", 1)[1]) + 1 if existing else 0)
        path = os.path.join(result_dir, f"{expname}-{next_id:03d}")
        try:
            os.mkdir(path)
        except FileExistsError:
            next_id += 1  # another process made it first (or a file has the name): the next number
            continue
        except OSError as exc:
            raise UserError(f"--result-dir {result_dir}: cannot create {os.path.basename(path)} ({exc.strerror}); "
                            "pass a writable folder") from None
        lock = run_lock(path)
        try:
            return path, lock.acquire()
        except UserError:
            next_id += 1  # taken over by a process that found it empty: that one owns it
    raise UserError(f"--result-dir {result_dir}: could not create a new {expname}-NNN folder in {_MAX_TRIES} tries")
