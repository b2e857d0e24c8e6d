"""Shared helpers of the training tests: a tiny shapes dataset and tiny network options."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A GANformer small enough to train a tick in seconds on CPU.
TINY_FLAGS = ["--resolution", "16", "--channel-max", "16", "--components-num", "2", "--latent-size", "16",
              "--batch-size", "4", "--batch-gpu", "4", "--kimg-per-tick", "0.008", "--metrics", "none",
              "--summarize", "true", "--img-snapshot-ticks", "1", "--maps-snapshot-ticks", "1",
              "--network-snapshot-ticks", "1", "--attention-stats", "false"]


def make_shapes(data_dir: str, count: int = 32, resolution: int = 16) -> str:
    """Writes the built-in shapes dataset into `data_dir/shapes` (through the real CLI); returns its path."""
    from prepare_data import main as prepare
    rc = prepare(["--shapes", "--resolution", str(resolution), "--max-images", str(count), "--data-dir", data_dir])
    assert rc in (0, None)
    return os.path.join(data_dir, "shapes")


def run_cli(args: list[str], cwd: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs `python run_network.py ARGS` in a subprocess."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_network.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def read_scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars of a run read back from its event files: tag -> [(step, value), ...] in write order."""
    import tensorflow as tf
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return out
