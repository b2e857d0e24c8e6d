"""Every file writer goes through `dnnlib.files.write_atomic`: fsynced, and after a failed write the previous file is
intact and no temporary file is left behind."""

import json
import os

import numpy as np
import pytest

from metrics.registry import _append_jsonl
from metrics.stats import save_npz_atomic
from training.vis import imageio

IMAGE = np.zeros((4, 4, 3), np.uint8)
WRITERS = {
    "png": lambda p: imageio.save_png(p, IMAGE),
    "gif": lambda p: imageio.save_gif(p, [IMAGE, IMAGE]),
    "npy": lambda p: imageio.save_npy(p, np.ones(3)),
    "text": lambda p: imageio.save_text(p, "new\n"),
    "npz": lambda p: save_npz_atomic(p, a=np.ones(2)),
    "jsonl": lambda p: _append_jsonl(p, {"metric": "x"}),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_writes_are_fsynced_and_failed_writes_leave_nothing(kind, tmp_path, monkeypatch):
    path = str(tmp_path / f"file.{kind}")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    WRITERS[kind](path)
    assert synced, "not fsynced"
    before = open(path, "rb").read()

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        WRITERS[kind](path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == [os.path.basename(path)]


def test_jsonl_appends(tmp_path):
    path = str(tmp_path / "m.jsonl")
    _append_jsonl(path, {"a": 1})
    _append_jsonl(path, {"a": 2})
    assert [json.loads(line)["a"] for line in open(path)] == [1, 2]
