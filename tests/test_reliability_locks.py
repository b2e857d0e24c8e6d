"""Runs and datasets that two processes share: one owner per run folder, atomic new run folders, locked dataset
names re-checked before the rename, stale locks of killed processes taken over (reliability round 3, items 1-3).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnnlib.locks import FolderLock, read_owner
from dnnlib.util import UserError
from tests.train_helpers import ROOT, TINY_FLAGS, make_shapes, run_cli
from training.run_folder import LOCK_FILE, claim_new_run_dir, lock_run_dir

ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")


def _holder(path, ready):
    """A process holding the lock `path` (signals readiness by creating `ready`), until killed."""
    code = ("import sys, time\nfrom dnnlib.locks import FolderLock\n"
            f"FolderLock({path!r}, 'x', 'y').acquire()\nopen({ready!r}, 'w').close()\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV)
    deadline = time.time() + 60
    while not os.path.exists(ready):
        assert proc.poll() is None and time.time() < deadline, "the lock holder did not start"
        time.sleep(0.05)
    return proc


def _error_lines(stderr):
    """The `error:` lines of a CLI's stderr (progress bars, which end in carriage returns, dropped)."""
    assert "Traceback" not in stderr, stderr
    return [part for line in stderr.splitlines() for part in line.split("\r") if "error: " in part]


# --------------------------------------------------------------------------------------------- the lock itself
def test_lock_held_by_a_live_process_is_refused_and_a_killed_ones_is_taken_over(tmp_path, capsys):
    path, ready = str(tmp_path / "run.lock"), str(tmp_path / "ready")
    proc = _holder(path, ready)
    try:
        with pytest.raises(UserError, match=rf"in use by PID {proc.pid} on host .*; y$"):
            FolderLock(path, "x", "y").acquire()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert read_owner(path)["pid"] == proc.pid  # kill -9 leaves the file: a stale lock
    lock = FolderLock(path, "the folder", "y").acquire()
    assert f"the folder was locked by PID {proc.pid}" in capsys.readouterr().out
    assert read_owner(path)["pid"] == os.getpid()
    lock.release()
    assert not os.path.exists(path)


def test_a_released_lock_can_be_taken_again_in_the_same_process(tmp_path, capsys):
    with FolderLock(str(tmp_path / "l"), "x", "y"):
        with pytest.raises(UserError, match="in use"):
            FolderLock(str(tmp_path / "l"), "x", "y").acquire()
    with FolderLock(str(tmp_path / "l"), "x", "y"):
        pass
    assert "stale" not in capsys.readouterr().out


# ---------------------------------------------------------------------- 1. a second process on a training run
def test_second_process_on_a_run_in_use_stops_before_touching_it(tmp_path):
    data_dir = str(tmp_path / "data")
    make_shapes(data_dir, count=16, resolution=16)
    run_dir = tmp_path / "results" / "exp-000"
    os.makedirs(run_dir / "checkpoints")
    (run_dir / "training_options.json").write_text("{}")
    (run_dir / "stats.jsonl").write_text('{"Progress/tick": 0}\n')
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    holder = _holder(str(run_dir / LOCK_FILE), str(tmp_path / "ready"))  # the training process that owns it
    try:
        second = run_cli(["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data_dir,
                          "--result-dir", str(tmp_path / "results"), "--xla", "false", *TINY_FLAGS],
                         cwd=str(tmp_path), timeout=300)
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait(timeout=30)
    line = _error_lines(second.stderr)[0]
    assert second.returncode == 2 and f"run folder {run_dir} is in use by PID {holder.pid}" in line, line
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != LOCK_FILE}
    assert after == before and sorted(os.listdir(tmp_path / "results")) == ["exp-000"]


# ------------------------------------------------------------------------- 2. two fresh runs at one moment
_CLAIM = """
import sys, time
from training.run_folder import claim_new_run_dir
start = float(sys.argv[2])
while time.time() < start:
    pass
path, lock = claim_new_run_dir(sys.argv[1], "exp")
print(path, flush=True)
time.sleep(3)
"""


def test_fresh_runs_started_together_get_distinct_folders(tmp_path):
    result_dir = str(tmp_path / "results")
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIM, result_dir, str(start)], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    paths = sorted(o.strip() for o, _ in outs)
    assert paths == [os.path.join(result_dir, f"exp-{i:03d}") for i in range(4)]


def test_a_folder_left_by_eval_is_reused_only_when_free(tmp_path):
    result_dir = str(tmp_path / "r")
    os.makedirs(os.path.join(result_dir, "exp-000"))  # e.g. made by --eval: no run record
    first, lock = claim_new_run_dir(result_dir, "exp", os.path.join(result_dir, "exp-000"))
    second, lock2 = claim_new_run_dir(result_dir, "exp", os.path.join(result_dir, "exp-000"))
    assert (os.path.basename(first), os.path.basename(second)) == ("exp-000", "exp-001")
    with pytest.raises(UserError, match="exp-001 is in use"):
        lock_run_dir(second)
    open(os.path.join(result_dir, "exp-002"), "w").close()  # a file with the next name is skipped
    assert os.path.basename(claim_new_run_dir(result_dir, "exp")[0]) == "exp-003"


# ---------------------------------------------------------------------------- 3. one dataset name, two writers
def _images(folder, size, count=6):
    os.makedirs(folder)
    rng = np.random.default_rng(size)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(os.path.join(folder, f"{i}.png"))
    return folder


def test_dataset_name_is_locked_while_written(tmp_path, capsys):
    from prepare_data import main as prepare
    imgs = _images(str(tmp_path / "imgs"), 16)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = _holder(str(data_dir / ".x.lock"), str(tmp_path / "ready"))  # another writer of `x`
    try:
        assert prepare(["--data-dir", str(data_dir), "--task", "x", "--images-dir", imgs, "--workers", "1"]) == 2
    finally:
        proc.kill()
        proc.wait(timeout=30)
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and f"dataset {data_dir / 'x'} is in use by PID {proc.pid}" in err[0], err
    assert sorted(os.listdir(data_dir)) == [".x.lock"]  # nothing written; the stale lock stays until taken over


def test_dataset_finished_by_another_process_meanwhile_is_not_replaced(tmp_path, monkeypatch, capsys):
    import prepare_data
    from training.data import writer
    imgs16, imgs32 = _images(str(tmp_path / "a"), 16), _images(str(tmp_path / "b"), 32)
    data_dir = str(tmp_path / "data")
    real_publish = writer.publish

    def publish(tmp_dir, target, overwrite=True):  # the other run finishes just before this one renames
        assert prepare_data.main(["--data-dir", data_dir, "--task", "x", "--images-dir", imgs32, "--workers", "1"]) \
            == 2  # it cannot: this process holds the name
        os.makedirs(target)
        open(Path(target) / "dataset.json", "w").write("{}")
        return real_publish(tmp_dir, target, overwrite)

    monkeypatch.setattr(writer, "publish", publish)
    assert prepare_data.main(["--data-dir", data_dir, "--task", "x", "--images-dir", imgs16, "--workers", "1"]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 2 and "is in use by PID" in err[0], err
    assert "dataset already exists (written by another process meanwhile)" in err[-1], err
    assert open(os.path.join(data_dir, "x", "dataset.json")).read() == "{}"  # the other one's, untouched
    assert sorted(os.listdir(data_dir)) == ["x"]  # no temporary folder, no lock file
