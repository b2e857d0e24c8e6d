"""Full training state: G, D, Gs, both optimizers (main+reg share slots), progress counters and the data position.

Written with `tf.train.Checkpoint` + `tf.train.CheckpointManager` (TF writes the data files first and the small
`checkpoint` index last, so a process killed mid-write leaves the previous checkpoint valid); the newest N are kept.
A portable data-only snapshot (`network-snapshot-<kimg>.pkl`) is written beside it for eval/vis/generate.
"""

from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf


class Progress(tf.Module):
    """Counters that make a resumed run continue exactly: images shown, minibatches, ticks, data batches read."""

    def __init__(self) -> None:
        super().__init__(name="progress")
        self.cur_nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_nimg")
        self.minibatch = tf.Variable(0, dtype=tf.int64, trainable=False, name="minibatch")
        self.tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="tick")
        self.data_batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_batches")
        self.pl_mean = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="pl_mean")

    @property
    def kimg(self) -> float:
        """Thousands of real images shown so far."""
        return int(self.cur_nimg.numpy()) / 1000.0


def _by_name(obj: tf.Module) -> tf.Module | dict:
    """Networks are saved as {original variable name: variable}, so checkpoints do not depend on module layout."""
    named = getattr(obj, "named_variables", None)
    if named is None:
        return obj
    return {name.replace("/", "."): var for name, var in named()}


class TrainCheckpoint:
    """Saves/restores the whole training state in `<run_dir>/checkpoints/`.

    Args:
        run_dir: The run directory.
        max_to_keep: Number of checkpoints kept.
        **trackables: Objects to save (networks, optimizers, progress).
    """

    def __init__(self, run_dir: str, max_to_keep: int = 3, **trackables: tf.Module) -> None:
        self.directory = os.path.join(run_dir, "checkpoints")
        self.ckpt = tf.train.Checkpoint(**{k: _by_name(v) for k, v in trackables.items()})
        self.manager = tf.train.CheckpointManager(self.ckpt, self.directory, max_to_keep=max(1, max_to_keep))

    @property
    def latest(self) -> Optional[str]:
        """Path prefix of the newest complete checkpoint, or None."""
        return self.manager.latest_checkpoint

    def save(self, step: int) -> str:
        """Writes a checkpoint numbered `step` (the minibatch counter)."""
        return self.manager.save(checkpoint_number=step)

    def restore_latest(self) -> Optional[str]:
        """Restores the newest checkpoint (all objects must match); returns its path or None."""
        path = self.latest
        if path:
            self.ckpt.restore(path).assert_existing_objects_matched()
        return path
