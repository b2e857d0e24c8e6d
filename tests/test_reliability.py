"""Fault injection: damaged checkpoint files, snapshot ordering, leftovers of kills, kills at the end.

A tiny StyleGAN2 run (one minibatch of 4 per tick, a checkpoint and a snapshot every tick) is trained once; each
test damages a copy of it, or kills a run with SIGKILL at a chosen point in a subprocess, and checks the resume.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import tensorflow as tf
import pytest

from training.formats.archive import read_snapshot
from dnnlib.util import UserError
from tests.train_helpers import ROOT, STYLEGAN2_TICK_KIMG, make_shapes, stylegan2_trainer
from training.cli import launch
from training.training_loop import snapshot_label

TICK_KIMG = STYLEGAN2_TICK_KIMG  # one minibatch of 4 images
KILL_POINTS = {
    # SIGKILL when the 3rd checkpoint is about to be written: tick 2's stats line is logged, its checkpoint is not
    "before-checkpoint-3": """
orig = checkpoint.TrainCheckpoint.save
calls = []
def save(self, step):
    calls.append(step)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(self, step)
checkpoint.TrainCheckpoint.save = save
""",
    # SIGKILL after the final checkpoint, when network-final.pkl is about to be written
    "before-final": """
orig = training_loop.Trainer.save_snapshot
def save_snapshot(self, path):
    if path.endswith("network-final.pkl"):
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(self, path)
training_loop.Trainer.save_snapshot = save_snapshot
""",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=32, resolution=16)
    return d


@pytest.fixture(scope="module")
def base_run(data_dir, tmp_path_factory):
    """A finished 3-tick run: checkpoints ckpt-1..3, snapshots at 0.004/0.008/0.012 kimg, network-final.pkl."""
    run_dir = str(tmp_path_factory.mktemp("base") / "run")
    stylegan2_trainer(run_dir, data_dir).run()
    return run_dir


@pytest.fixture
def run(base_run, tmp_path):
    """A fresh copy of the base run."""
    path = str(tmp_path / "run")
    shutil.copytree(base_run, path)
    return path


def _ckpt(run_dir, name):
    return os.path.join(run_dir, "checkpoints", name)


def _data_file(run_dir, step):
    return glob.glob(_ckpt(run_dir, f"ckpt-{step}.data-*"))[0]


def _ticks(run_dir):
    lines = open(os.path.join(run_dir, "stats.jsonl"), encoding="utf-8").read().splitlines()
    return [(int(r["Progress/tick"]), round(r["Progress/kimg"], 3)) for r in map(json.loads, lines)]


def _killed_run(run_dir, data_dir, point, total_kimg, **kw):
    """Trains in a subprocess that SIGKILLs itself at `point` (see KILL_POINTS)."""
    code = ("import os, signal, sys\nfrom training import training_loop\nfrom training.formats import checkpoint\n"
            + KILL_POINTS[point] + "from tests.train_helpers import stylegan2_trainer\n"
            + f"stylegan2_trainer({run_dir!r}, {data_dir!r}, total_kimg={total_kimg!r}, **{kw!r}).run()\n")
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _assert_same_weights(path_a, path_b):
    (a, _), (b, _) = read_snapshot(path_a), read_snapshot(path_b)
    for net in ("G", "D", "Gs"):
        assert a[net][1].keys() == b[net][1].keys()
        for name, value in a[net][1].items():
            np.testing.assert_array_equal(b[net][1][name], value, err_msg=f"{net}/{name}")


# ------------------------------------------------------------------------------------------ 1. the index file
@pytest.mark.parametrize("damage", ["garbage", "empty", "deleted", "names-a-missing-checkpoint"])
def test_damaged_index_file_still_resumes_from_the_files(damage, run, data_dir):
    index = _ckpt(run, "checkpoint")
    if damage == "deleted":
        os.remove(index)
    elif damage == "names-a-missing-checkpoint":
        open(index, "w").write('model_checkpoint_path: "ckpt-9"\nall_model_checkpoint_paths: "ckpt-9"\n')
    else:
        open(index, "wb").write(b"\x00\xffgarbage {{" if damage == "garbage" else b"")
    trainer = stylegan2_trainer(run, data_dir)
    message = trainer.restore_or_init()
    assert message.startswith("Resuming from") and "ckpt-3" in message, message
    assert trainer.progress.kimg == pytest.approx(3 * TICK_KIMG)


def test_garbage_index_then_training_continues_and_rewrites_the_index(run, data_dir, capsys):
    import tensorflow as tf
    open(_ckpt(run, "checkpoint"), "w").write("garbage")
    trainer = stylegan2_trainer(run, data_dir, total_kimg=4 * TICK_KIMG)
    trainer.run()
    assert "Starting from scratch" not in capsys.readouterr().out
    assert trainer.progress.kimg == pytest.approx(4 * TICK_KIMG)
    assert _ticks(run) == [(0, 0.004), (1, 0.008), (2, 0.012), (3, 0.016)]
    state = tf.train.get_checkpoint_state(os.path.join(run, "checkpoints"))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-3", "ckpt-4"]
    assert not glob.glob(_ckpt(run, "ckpt-1.*"))  # the newest 3 are kept, also after a garbage index


def test_index_without_checkpoint_files_is_an_error_not_a_restart(run, data_dir):
    for path in glob.glob(_ckpt(run, "ckpt-*")):
        os.remove(path)
    with pytest.raises(UserError, match="--restart"):
        stylegan2_trainer(run, data_dir).restore_or_init()


# ------------------------------------------------------------------------------------- 2. snapshot order
def test_snapshot_names_sort_by_kimg():
    values = [0.0, 0.004, 0.5, 0.996, 1.0, 1.2, 9.999, 10.0, 999.996, 1000.0, 25000.0, 123456.789, 999999.999]
    names = [f"network-snapshot-{snapshot_label(v)}.pkl" for v in values]
    assert sorted(names) == names
    assert snapshot_label(1.0) == "000001.000" and snapshot_label(0.008) == "000000.008"


def test_last_snapshots_keeps_the_newest_by_kimg_with_old_names(run, data_dir):
    for path in glob.glob(os.path.join(run, "network-*.pkl")):
        os.remove(path)
    for label in ("000001", "000001.200", "000001.400"):  # the old name of exactly 1 kimg, and two newer ones
        open(os.path.join(run, f"network-snapshot-{label}.pkl"), "wb").close()
    assert os.path.basename(launch.latest_snapshot(run)) == "network-snapshot-000001.400.pkl"
    trainer = stylegan2_trainer(run, data_dir, last_snapshots=1)
    trainer._prune_snapshots()
    assert sorted(glob.glob(os.path.join(run, "network-snapshot-*"))) == [
        os.path.join(run, "network-snapshot-000001.400.pkl")]


# ------------------------------------------------------------------------------- 3. damaged newest checkpoint
def _flip_bytes(path):
    data = bytearray(open(path, "rb").read())
    for i in range(len(data) // 3, len(data) // 3 + 8):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


DAMAGES = {
    "truncated-data": lambda run: os.truncate(_data_file(run, 3), os.path.getsize(_data_file(run, 3)) // 2),
    "emptied-index": lambda run: open(_ckpt(run, "ckpt-3.index"), "wb").close(),
    "deleted-data": lambda run: os.remove(_data_file(run, 3)),
    "flipped-data": lambda run: _flip_bytes(_data_file(run, 3)),
    "flipped-index": lambda run: _flip_bytes(_ckpt(run, "ckpt-3.index")),
    "garbage-record": lambda run: open(_ckpt(run, "ckpt-3.sha256.json"), "w").write("{"),
    "record-naming-other-files": lambda run: open(_ckpt(run, "ckpt-3.sha256.json"), "w").write(json.dumps(
        {"files": {"../../stats.jsonl": {"bytes": 1, "sha256": "0"}}})),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_newest_checkpoint_falls_back_to_the_previous(damage, run, data_dir, capsys):
    DAMAGES[damage](run)
    trainer = stylegan2_trainer(run, data_dir)
    message = trainer.restore_or_init()
    assert message.startswith("Resuming from") and message.split()[2].endswith("ckpt-2"), message
    assert trainer.progress.kimg == pytest.approx(2 * TICK_KIMG)
    said = capsys.readouterr().out
    assert "ckpt-3" in said and "ckpt-2" in said, said


def test_retraining_over_a_damaged_checkpoint_replaces_it(run, base_run, data_dir):
    from training.formats.checkpoint import checksum_problem
    _flip_bytes(_data_file(run, 3))
    stylegan2_trainer(run, data_dir, total_kimg=4 * TICK_KIMG).run()
    label = snapshot_label(3 * TICK_KIMG)  # tick 3 trained again from ckpt-2: the same weights as at first
    _assert_same_weights(os.path.join(base_run, f"network-snapshot-{label}.pkl"),
                         os.path.join(run, f"network-snapshot-{label}.pkl"))
    trainer = stylegan2_trainer(run, data_dir, total_kimg=4 * TICK_KIMG)
    assert trainer.restore_or_init().split()[2].endswith("ckpt-4")
    for step in (3, 4):  # the rewritten ckpt-3 verifies again
        assert checksum_problem(_ckpt(run, f"ckpt-{step}")) is None


def test_no_intact_checkpoint_is_a_one_line_error(run, data_dir):
    for step in (1, 2, 3):
        _flip_bytes(_data_file(run, step))
    with pytest.raises(UserError, match="no intact checkpoint") as info:
        stylegan2_trainer(run, data_dir).restore_or_init()
    assert "\n" not in str(info.value) and "ckpt-3" in str(info.value) and "--restart" in str(info.value)


def test_checkpoints_without_checksum_records_still_resume(run, data_dir):
    """Runs checkpointed before the records existed (or killed before one was written) still resume."""
    for path in glob.glob(_ckpt(run, "*.json")):
        os.remove(path)
    trainer = stylegan2_trainer(run, data_dir)
    assert "ckpt-3" in trainer.restore_or_init()


# ------------------------------------------------------------------------------------ 5. leftovers of kills
def test_leftovers_of_kills_are_removed_at_start(run, data_dir, capsys):
    before = set(os.listdir(run)) | set(os.listdir(os.path.join(run, "checkpoints")))
    temp = _ckpt(run, "ckpt-9_temp")  # TF's folder of a checkpoint write that was killed
    os.makedirs(temp)
    open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"), "wb").write(b"\0" * 64)
    stale = os.path.join(run, ".network-snapshot-000000.016.pkl.tmp-12345-0a1b2c3d")  # a killed snapshot write
    open(stale, "wb").write(b"PK")
    stylegan2_trainer(run, data_dir, total_kimg=4 * TICK_KIMG).run()
    assert not os.path.exists(temp) and not os.path.exists(stale)
    assert "Removed 2 leftover(s)" in capsys.readouterr().out
    after = set(os.listdir(run)) | set(os.listdir(os.path.join(run, "checkpoints")))
    assert {n for n in before if not n.startswith("ckpt-1.")} <= after  # ckpt-1: pruned as the 4th was written


def test_stats_are_truncated_to_the_checkpoint_on_resume(data_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    _killed_run(run_dir, data_dir, "before-checkpoint-3", 3 * TICK_KIMG, summarize=True)
    assert _ticks(run_dir) == [(0, 0.004), (1, 0.008), (2, 0.012)]  # tick 2 logged, not checkpointed
    assert _event_steps(run_dir, "Progress/tick") == [4, 8, 12]
    with open(os.path.join(run_dir, "stats.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"G/loss": 0.5, "Progr')  # a line torn by a kill
    stylegan2_trainer(run_dir, data_dir, total_kimg=4 * TICK_KIMG, summarize=True).run()
    assert _ticks(run_dir) == [(0, 0.004), (1, 0.008), (2, 0.012), (3, 0.016)]
    # TensorBoard (all event files of the run together) has each step of a scalar once: the killed process's
    # step-12 summaries were dropped from its file, the resumed process logged step 12 again.
    steps = _event_steps(run_dir, "Progress/tick")
    assert steps == [4, 8, 12, 16] and len(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))) == 2


def _event_steps(run_dir, tag):
    """Steps of the summaries of `tag` over every event file of the run, in file order."""
    from tensorflow.core.util import event_pb2
    steps = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


def test_event_files_lose_later_steps_and_a_torn_record(tmp_path):
    from training.train_log import truncate_events
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(6):
            tf.summary.scalar("x", float(step), step=step)
    writer.close()
    path = glob.glob(str(tmp_path / "events.out.tfevents.*"))[0]
    assert truncate_events(path, 5) == 0
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"\x10\x00\x00")  # the start of a record torn by a kill (read as the end of the file)
    assert truncate_events(path, 3) == 2
    assert _event_steps(str(tmp_path), "x") == [0, 1, 2, 3] and os.listdir(tmp_path) == [os.path.basename(path)]
    assert os.path.getsize(path) < size


# ------------------------------------------------------------------------------- 6. killed before the final
def test_killed_before_network_final_only_writes_the_final_artefacts(data_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    _killed_run(run_dir, data_dir, "before-final", 3 * TICK_KIMG)
    assert not os.path.exists(os.path.join(run_dir, "network-final.pkl"))
    trainer = stylegan2_trainer(run_dir, data_dir)

    def no_training(*args, **kwargs):
        raise AssertionError("the run trained past its target")
    trainer.steps.minibatch = no_training
    trainer.run()
    assert trainer.progress.kimg == pytest.approx(3 * TICK_KIMG)
    assert os.path.exists(os.path.join(run_dir, "_finished.txt"))
    _assert_same_weights(os.path.join(run_dir, f"network-snapshot-{snapshot_label(3 * TICK_KIMG)}.pkl"),
                         os.path.join(run_dir, "network-final.pkl"))
