"""`run_network.py ARGS` with a cheap stand-in for Inception that can stall one evaluation, so that a test can
interrupt or kill the process at a known point of it.

Environment:
    STALL: `features:N` stalls in the N-th evaluation's feature pass; `write:N` stalls in the N-th evaluation's
        write of its `metric-*.jsonl` (the new content is in the temporary file, not yet renamed). Unset: no stall.
    STALL_MARK: File created when the stall begins (the test waits for it, then sends its signal).
"""

import os
import runpy
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from dnnlib import files  # noqa: E402
from metrics import context, registry  # noqa: E402

STALL_KIND, _, STALL_AT = os.environ.get("STALL", "").partition(":")
EVALUATIONS = [0]  # evaluations begun in this process (one feature network load each)


def _stall() -> None:
    """Marks the stall and waits (for the test's signal)."""
    open(os.environ["STALL_MARK"], "w").close()
    time.sleep(300)


def _stalls_here(kind: str) -> bool:
    return STALL_KIND == kind and str(EVALUATIONS[0]) == STALL_AT


class StandInNet:
    """Per-channel mean/std/min/max features (12-d) in place of Inception's 2048."""

    name, path, sha256, preprocessing = "stand-in", "/none", "0" * 64, "stand-in"
    has_logits = False

    def features(self, batch: np.ndarray, resize: str = "legacy") -> np.ndarray:
        if _stalls_here("features"):
            _stall()
        x = np.asarray(batch, np.float32) / 255.0
        return np.concatenate([x.mean((1, 2)), x.std((1, 2)), x.min((1, 2)), x.max((1, 2))], axis=1)


def load_stand_in(path: str = None, cache_dir: str = None) -> StandInNet:
    EVALUATIONS[0] += 1
    return StandInNet()


def write_atomic_stalling(path: str, data, fsync: bool = True) -> None:
    """`dnnlib.files.write_atomic` that can stall between writing the temporary file and renaming it."""
    with files.atomic_file(path, fsync=fsync) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        if _stalls_here("write") and os.path.basename(path).startswith("metric-"):
            f.flush()
            _stall()


context.load_inception = load_stand_in
registry.write_atomic = write_atomic_stalling
sys.argv = [os.path.join(ROOT, "run_network.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
