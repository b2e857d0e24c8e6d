"""Training logs: a status line per tick, `stats.jsonl`, TensorBoard scalars and image grids."""

from __future__ import annotations

import glob
import json
import os
import resource
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from dnnlib.files import write_atomic
from dnnlib.util import format_time

# Statistics logged as their value at the end of the tick rather than the mean over it (states, running totals).
LAST_VALUE_PREFIXES = ("LossScale/",)


def peak_memory_gb() -> float:
    """Peak resident memory of this process (GB); GPU peak when a GPU is used."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


class StatsLog:
    """Accumulates per-minibatch scalars and writes them once per tick (the mean over the tick; keys starting with
    one of `LAST_VALUE_PREFIXES`: the last value).

    Args:
        run_dir: Where `stats.jsonl` and the TensorBoard events go.
        tensorboard: Write TensorBoard summaries.
        enabled: False on non-chief workers (nothing is written).
    """

    def __init__(self, run_dir: str, tensorboard: bool = True, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = os.path.join(run_dir, "stats.jsonl")
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        # Event files of earlier processes of this run (a resume truncates them; the new writer has its own file).
        self.earlier_events = sorted(glob.glob(os.path.join(glob.escape(run_dir), "events.out.tfevents.*")))
        self.writer = tf.summary.create_file_writer(run_dir) if (tensorboard and enabled) else None

    def add(self, stats: dict[str, Any]) -> None:
        """Adds one minibatch's scalar statistics."""
        for key, value in stats.items():
            if key.startswith(LAST_VALUE_PREFIXES):
                self.sums[key], self.counts[key] = float(np.asarray(value)), 1
                continue
            self.sums[key] = self.sums.get(key, 0.0) + float(np.asarray(value))
            self.counts[key] = self.counts.get(key, 0) + 1

    def flush(self, extra: dict[str, float], step: int) -> dict[str, float]:
        """Writes the means since the last flush plus `extra` (progress/timing) and resets; returns the record."""
        record = {k: self.sums[k] / self.counts[k] for k in sorted(self.sums)}
        record.update(extra)
        self.sums, self.counts = {}, {}
        if not self.enabled:
            return record
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            with self.writer.as_default():
                for key, value in record.items():
                    tf.summary.scalar(key, value, step=step)
            self.writer.flush()
        return record

    def truncate(self, ticks: int, nimg: Optional[int] = None) -> int:
        """Keeps the records of the first `ticks` ticks (those a resumed checkpoint includes) and drops later ones and
        lines torn by a kill, so that a resumed run logs every tick once; returns the number of lines dropped.

        With `nimg` (images seen at the checkpoint), the earlier processes' TensorBoard events of later steps are
        dropped as well (`truncate_events`), so that TensorBoard shows every step once.
        """
        if not self.enabled:
            return 0
        if nimg is not None:
            for path in self.earlier_events:
                truncate_events(path, nimg)
        if not os.path.exists(self.path):
            return 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines(keepends=True)
        kept = [line for line in lines if _tick_of(line) is not None and _tick_of(line) < ticks]
        if len(kept) < len(lines):
            write_atomic(self.path, "".join(kept))
        return len(lines) - len(kept)

    def image(self, name: str, image: np.ndarray, step: int) -> None:
        """Adds a uint8 `[H, W, C]` image to TensorBoard."""
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image(name, image[None], step=step)
            self.writer.flush()


def truncate_events(path: str, max_step: int) -> int:
    """Rewrites the TensorBoard event file `path` without its summaries of steps > `max_step` and without a record
    torn by a kill (atomically: temp file, fsync, rename). Returns the number of records dropped (0: untouched).

    Reads the file twice (count, then copy) rather than holding its records (image summaries can be large).
    """
    from tensorflow.core.util import event_pb2

    def records():  # (serialized record, keep?) in file order; stops at a torn or corrupt record
        try:
            for record in tf.data.TFRecordDataset(path):
                data = record.numpy()
                event = event_pb2.Event.FromString(data)
                yield data, not (event.HasField("summary") and event.step > max_step)
        except tf.errors.DataLossError:
            yield None, False

    dropped = sum(1 for _, keep in records() if not keep)
    if dropped:
        # not named *tfevents* (TensorBoard would read it); `training.formats.checkpoint.clean_leftovers` removes a leftover
        tmp = os.path.join(os.path.dirname(path), f".events-rewrite.tmp-{os.getpid()}")
        with tf.io.TFRecordWriter(tmp) as writer:
            for data, keep in records():
                if keep:
                    writer.write(data)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped


def _tick_of(line: str) -> Optional[int]:
    """The tick of a complete `stats.jsonl` line, or None for a torn or foreign one."""
    try:
        record = json.loads(line) if line.endswith("\n") else None
        return int(record["Progress/tick"])
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


def status_line(record: dict[str, float], total_kimg: float) -> str:
    """One human-readable line per tick."""
    def g(key: str) -> str:
        return f"{record[key]:.3f}" if key in record else "-"

    eta = ""
    if record.get("Timing/sec_per_kimg"):
        eta = format_time(max(0.0, total_kimg - record["Progress/kimg"]) * record["Timing/sec_per_kimg"])
    augment = ""  # with --aug: p (ada/fixed), r_t = E[sign(D(reals))] over the tick, augmentation s/step
    if "Timing/augment_sec_per_step" in record:
        augment = (f"p {g('Augment/p')} rt {g('scores/real_sign')} "
                   f"aug {record['Timing/augment_sec_per_step']:.3f}s/step ")
    return (f"tick {int(record['Progress/tick']):<4d} kimg {record['Progress/kimg']:<9.3f} "
            f"G {g('G/loss')} D {g('D/loss')} R1 {g('D/reg')} "
            f"|gradG| {g('G/grad_norm')} |gradD| {g('D/grad_norm')} {augment}{_loss_scale(record)}"
            f"{_attention(record)}"
            f"sec/tick {record['Timing/sec_per_tick']:<7.1f} sec/kimg {record['Timing/sec_per_kimg']:<7.2f} "
            f"eta {eta or '-':<10s} mem {record['Resources/peak_mem_gb']:.2f}GB")



def _attention(record: dict[str, float]) -> str:
    """`att H 0.712 loc 1.84 ` (Gs: normalized entropy of the last attention layer, locality) when logged, else ''."""
    layers = [key for key in record if key.startswith("Attention/Gs/l") and key.endswith("/entropy")]
    if not layers:
        return ""
    last = max(layers, key=lambda key: int(key.split("/")[2][1:]))
    loc = record.get("Attention/Gs/locality")
    return f"att H {record[last]:.3f} loc {'-' if loc is None else f'{loc:.2f}'} "


def _loss_scale(record: dict[str, float]) -> str:
    """`scale G 2^15 D 2^14 skipped 0/3 ` with fp16 loss scaling (scales as powers of two; skipped updates since the
    run began, G/D), else ''."""
    if "LossScale/G" not in record:
        return ""

    def power(key: str) -> str:
        value = record.get(key, 0.0)
        return f"2^{np.log2(value):g}" if value > 0 else "-"

    return (f"scale G {power('LossScale/G')} D {power('LossScale/D')} skipped "
            f"{int(record.get('LossScale/G_skipped', 0))}/{int(record.get('LossScale/D_skipped', 0))} ")
