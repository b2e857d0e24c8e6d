"""Full training state: G, D, Gs, both optimizers (main+reg share slots), progress counters and the data position.

Written with `tf.train.Checkpoint` + `tf.train.CheckpointManager` (the newest N are kept). After TF has written
`ckpt-<step>.index` and its data files, a small `ckpt-<step>.sha256.json` (written atomically) records their sizes
and sha256. A resume never trusts the `checkpoint` index file alone: it lists the `ckpt-*` files, and takes the
newest checkpoint whose files match their record and that restores, saying why it skipped newer ones; a run dir
holding checkpoints of which none is intact is an error, never a silent restart.
A portable data-only snapshot (`network-snapshot-<kimg>.pkl`) is written beside it for eval/vis/generate.
State that only some runs have (the fp16 loss scale an optimizer carries as `loss_scale`, `OPTIONAL_CHILDREN`) is
saved with its owner; a checkpoint written without it (fp32 runs, older versions) restores everything else and
leaves it at its initial values.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time
from typing import Optional

import tensorflow as tf

from dnnlib.disk import disk_full_as_user_error
from dnnlib.files import file_sha256, write_atomic
from dnnlib.util import UserError

RECORD_SUFFIX = ".sha256.json"
_CKPT_FILE = re.compile(r"^ckpt-(\d+)\.(?:index|data-\d{5}-of-\d{5})$")
_SNAPSHOT_FILE = re.compile(r"^network-snapshot-(\d+(?:\.\d+)?)\.pkl$")
# Attributes of saved objects that checkpoints may lack: `training.precision.loss_scale.ATTRIBUTE` (on the optimizers).
OPTIONAL_CHILDREN = ("loss_scale",)


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


# ----------------------------------------------------------------------------------------- files on disk
def list_checkpoints(directory: str) -> list[str]:
    """Path prefixes (`<dir>/ckpt-<step>`) of every checkpoint with an index or data file in `directory`, newest
    (highest step) first; found by listing the files, whatever the `checkpoint` index file says."""
    steps = {int(m.group(1)) for name in _listdir(directory) if (m := _CKPT_FILE.match(name))}
    return [os.path.join(directory, f"ckpt-{step}") for step in sorted(steps, reverse=True)]


def _listdir(directory: str) -> list[str]:
    return os.listdir(directory) if os.path.isdir(directory) else []


def write_checksums(prefix: str, run_record: Optional[dict] = None) -> None:
    """Records the size and sha256 of the checkpoint's files in `<prefix>.sha256.json` (atomically), with the run
    record (`training.formats.record.RunRecord.to_json()`) when given."""
    files = [prefix + ".index"] + sorted(glob.glob(glob.escape(prefix) + ".data-*"))
    record: dict = {"files": {os.path.basename(p): {"bytes": os.path.getsize(p), "sha256": file_sha256(p)}
                              for p in files}}
    if run_record is not None:
        record["run_record"] = run_record
    write_atomic(prefix + RECORD_SUFFIX, json.dumps(record, indent=1) + "\n")


def read_run_record(prefix: str) -> Optional[dict]:
    """The run record embedded in a checkpoint's `<prefix>.sha256.json` (None: none, e.g. an older checkpoint)."""
    try:
        with open(prefix + RECORD_SUFFIX, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get("run_record") if isinstance(data, dict) else None


def checksum_problem(prefix: str) -> Optional[str]:
    """What is wrong with the files of checkpoint `prefix` (missing, or differing from the record written when it was
    saved), or None. A checkpoint without a record (older runs) is checked only for its index file here."""
    if not os.path.isfile(prefix + ".index"):
        return f"{os.path.basename(prefix)}.index is missing"
    if not os.path.exists(prefix + RECORD_SUFFIX):
        return None
    base = os.path.basename(prefix)
    try:
        with open(prefix + RECORD_SUFFIX, encoding="utf-8") as f:
            files = json.load(f)["files"]
        expected = {str(name): (int(v["bytes"]), str(v["sha256"])) for name, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        expected = {}
    own = all(n.startswith(base + ".") and _CKPT_FILE.match(n) for n in expected)  # no paths out of the folder
    if not own or base + ".index" not in expected:
        return f"its checksum record {base}{RECORD_SUFFIX} is unreadable (delete it to rely on TensorFlow's checks)"
    folder = os.path.dirname(prefix)
    for name, (size, sha) in sorted(expected.items()):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        if os.path.getsize(path) != size:
            return f"{name} has {os.path.getsize(path)} bytes, {size} when saved (truncated or overwritten)"
        if file_sha256(path) != sha:
            return f"{name} differs from its sha256 recorded when saved (the file is corrupt)"
    return None


def clean_leftovers(run_dir: str) -> list[str]:
    """Removes what a killed run leaves behind: TF's `checkpoints/ckpt-*_temp/` folders and index temporaries, and
    the `.<name>.tmp-*` files of every atomic write (`dnnlib.files.atomic_file`: checksum records, snapshots, the run
    record, stats, rewritten TensorBoard events, image grids) in the run dir and its `visuals/` folders, and records
    of deleted checkpoints. Call at start, before anything writes into the run dir (the run's lock is held);
    returns the removed paths."""
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    removed = [os.path.join(ckpt_dir, n) for n in _listdir(ckpt_dir)  # TF's, then ours (`write_atomic`)
               if re.match(r"^(ckpt-\d+_temp|checkpoint\.tmp[0-9a-f]+|\..*\.tmp-.*)$", n)]
    visuals = [os.path.join(run_dir, "visuals", kind) for kind in _listdir(os.path.join(run_dir, "visuals"))]
    removed += [os.path.join(folder, n) for folder in [run_dir, *visuals] for n in _listdir(folder)
                if re.match(r"^\..+\.tmp-", n)]
    for path in removed:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return removed + _remove_orphan_records(ckpt_dir)


def _remove_orphan_records(directory: str) -> list[str]:
    """Removes the checksum records of checkpoints that no longer exist (the manager deletes only TF's files)."""
    orphans = [os.path.join(directory, n) for n in _listdir(directory) if n.endswith(RECORD_SUFFIX)
               and not os.path.exists(os.path.join(directory, n[:-len(RECORD_SUFFIX)] + ".index"))]
    for path in orphans:
        os.remove(path)
    return orphans


# ------------------------------------------------------------------------------------------------ snapshots
def snapshot_label(kimg: float) -> str:
    """`000001.000`, `000000.048`: kimg with 6 integer digits and 3 decimals (images are whole, so exact). Names
    sort as their kimg up to 999999.999 kimg (10^9 images); code orders by the parsed value anyway."""
    return f"{kimg:010.3f}"


def snapshot_kimg(path: str) -> Optional[float]:
    """The kimg in a `network-snapshot-<kimg>.pkl` name (new `000001.000` or old `000001` labels), else None."""
    match = _SNAPSHOT_FILE.match(os.path.basename(path))
    return float(match.group(1)) if match else None


def list_snapshots(run_dir: str) -> list[str]:
    """The run's `network-snapshot-<kimg>.pkl` files, ordered by kimg (oldest first)."""
    paths = [os.path.join(run_dir, n) for n in _listdir(run_dir) if snapshot_kimg(n) is not None]
    return sorted(paths, key=lambda p: (snapshot_kimg(p), os.path.basename(p)))


# ------------------------------------------------------------------------------------------------ the state
class TrainCheckpoint:
    """Saves/restores the whole training state in `<run_dir>/checkpoints/`.

    Args:
        run_dir: The run directory.
        max_to_keep: Number of checkpoints kept.
        optional: Names of trackables that checkpoints of older versions lack (e.g. `augment`, the augmentation
            state): such a checkpoint restores everything else and leaves them at their initial values.
        run_record: The run record (JSON) embedded in every checkpoint's checksum record.
        **trackables: Objects to save (networks, optimizers, progress).
    """

    def __init__(self, run_dir: str, max_to_keep: int = 3, optional: tuple[str, ...] = (),
                 run_record: Optional[dict] = None, **trackables: tf.Module) -> None:
        self.directory = os.path.join(run_dir, "checkpoints")
        self.run_record = run_record
        self.max_to_keep = max(1, max_to_keep)
        self._objects = {k: _by_name(v) for k, v in trackables.items()}
        self._optional = tuple(optional)
        self.ckpt = tf.train.Checkpoint(**self._objects)
        self._variables = [var for obj in trackables.values() for var in obj.variables]
        self._manager: Optional[tf.train.CheckpointManager] = None

    def state_bytes(self) -> int:
        """Bytes of the variables a checkpoint holds: about what one save writes."""
        return sum(var.shape.num_elements() * var.dtype.size for var in self._variables)

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The manager that numbers and prunes checkpoints; created at first use, after the `checkpoint` index file
        was rewritten from the files on disk if it is unreadable or disagrees with them (garbage, deleted files)."""
        if self._manager is None:
            names = [os.path.basename(p) for p in reversed(list_checkpoints(self.directory))]
            try:
                self._manager = tf.train.CheckpointManager(self.ckpt, self.directory, max_to_keep=self.max_to_keep)
                listed = [os.path.basename(p) for p in self._manager.checkpoints]
            except (ValueError, UnicodeError, tf.errors.OpError):  # what TF raises for some damaged index files
                listed = None
            if listed != names:
                self._write_index(names)
                self._manager = tf.train.CheckpointManager(self.ckpt, self.directory, max_to_keep=self.max_to_keep)
        return self._manager

    def save(self, step: int) -> str:
        """Writes checkpoint `ckpt-<step>` (step = the minibatch counter), then its checksum record.

        Raises:
            UserError: The disk is full: the partial files are removed, the earlier checkpoints are intact.
        """
        prefix = os.path.join(self.directory, f"ckpt-{step}")
        if os.path.exists(prefix + RECORD_SUFFIX):  # a record of an older ckpt-<step> must not outlive it
            os.remove(prefix + RECORD_SUFFIX)
        try:
            with disk_full_as_user_error(f"checkpoint ckpt-{step}", self.directory, self.state_bytes,
                                         "the earlier checkpoints are intact: free space and rerun to resume"):
                path = self.manager.save(checkpoint_number=step)
                write_checksums(path, self.run_record)
        except UserError:
            shutil.rmtree(prefix + "_temp", ignore_errors=True)  # TF's partial files: give the space back
            raise
        _remove_orphan_records(self.directory)
        return path

    def restore_latest(self) -> Optional[str]:
        """Restores the newest intact checkpoint (all objects must match); returns its path, or None if the run has
        no checkpoint.

        Raises:
            UserError: The run has checkpoints (or their index file) but none is intact.
        """
        prefixes = list_checkpoints(self.directory)
        if not prefixes:
            if os.path.exists(os.path.join(self.directory, "checkpoint")):
                raise UserError(f"{self.directory}: the index file 'checkpoint' exists but no ckpt-* files do; "
                                f"restore them from a backup, or pass --restart to start a new run")
            return None
        problems = []
        for prefix in prefixes:
            problem = checksum_problem(prefix) or self._restore(prefix)
            if problem is None:
                if problems:
                    print(f"Falling back to {prefix}, the newest intact checkpoint", flush=True)
                return prefix
            print(f"Checkpoint {prefix} is not usable: {problem}", flush=True)
            problems.append(f"{os.path.basename(prefix)}: {problem}")
        raise UserError(f"{self.directory}: no intact checkpoint ({'; '.join(problems)}); restore the files from a "
                        f"backup, or pass --restart to start a new run")

    def _restore(self, prefix: str) -> Optional[str]:
        """Restores `prefix`; returns why it failed, or None."""
        try:
            ckpt = self.ckpt
            names = [name for name, _ in tf.train.list_variables(prefix)]
            saved = {name.split("/", 1)[0] for name in names}
            absent = [k for k in self._optional if k not in saved]
            if absent:  # an older checkpoint: restore what it has
                ckpt = tf.train.Checkpoint(**{k: v for k, v in self._objects.items() if k not in absent})
            detached = self._absent_children(names)
            try:
                for key, obj, attr, _ in detached:
                    delattr(obj, attr)  # untracked for this restore, so the checkpoint need not hold it
                ckpt.restore(prefix).assert_existing_objects_matched()
            finally:
                for _, obj, attr, child in detached:
                    setattr(obj, attr, child)
            absent += [f"{key}.{attr}" for key, _, attr, _ in detached]
            if absent:
                print(f"{os.path.basename(prefix)} predates the state of {', '.join(absent)}: starting it afresh",
                      flush=True)
        except Exception as exc:  # TF's errors for damaged or foreign files vary (DataLoss, OpError, ValueError ...)
            message = " ".join(str(exc).split())
            return f"TensorFlow cannot restore it ({type(exc).__name__}: {message[:200]})"
        return None

    def _absent_children(self, names: list[str]) -> list[tuple[str, object, str, object]]:
        """`(key, owner, attribute, child)` of every `OPTIONAL_CHILDREN` attribute of a saved object that the
        checkpoint whose variable names are `names` does not hold."""
        out = []
        for key, obj in self._objects.items():
            for attr in OPTIONAL_CHILDREN:
                child = getattr(obj, attr, None) if not isinstance(obj, dict) else None
                if child is not None and not any(n.startswith(f"{key}/{attr}/") for n in names):
                    out.append((key, obj, attr, child))
        return out

    def _write_index(self, names: list[str]) -> None:
        """Writes the `checkpoint` index file (atomically) listing `names`, oldest first (no file when empty)."""
        path = os.path.join(self.directory, "checkpoint")
        if not names:
            if os.path.exists(path):
                os.remove(path)
            return
        now = time.time()
        lines = [f'model_checkpoint_path: "{names[-1]}"']
        lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
        lines += [f"all_model_checkpoint_timestamps: {now}" for _ in names]
        lines += [f"last_preserved_timestamp: {now - 1}"]  # older: the manager prunes only newer timestamps
        write_atomic(path, "\n".join(lines) + "\n")
