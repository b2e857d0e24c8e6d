"""Fault injection (issue 12, items 4, 7, 11, 13, 14): damaged snapshots given to the CLIs, full disks, NaN/inf
inputs and outputs, bad generate.py flags and files, glob characters in experiment names.

Every attempt must end in one line on stderr (exit 2 for bad input or a full disk, 1 when generated images held
NaN/inf) and never in a traceback; nothing is written for input refused before the work starts. Disk-full tests
simulate ENOSPC where the write happens (in-process for the training loop, in a subprocess for generate.py), and
one test fills a real 64 kB tmpfs when the machine lets a user namespace mount one.
"""

import errno
import glob
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import generate
from dnnlib.util import UserError
from tests.train_helpers import ROOT, make_shapes
from training import launch
from training.networks import build_networks
from training.snapshot import save_networks

TINY = dict(channel_max=16, components_num=2, latent_dim=8)  # 8x8, z [3, 8]


def _save_tiny(path, nan_in=None):
    G, D = build_networks("ganformer-ffhq", 8, seed=5, **TINY)
    if nan_in is not None:
        var = G.variable_dict()[nan_in]
        var.assign(np.full(var.shape, np.nan, np.float32))
    save_networks(path, G, D, G, {"kimg": 1})


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A tiny GANformer snapshot in a run dir: `<run>/network-snapshot-000001.000.pkl`."""
    path = str(tmp_path_factory.mktemp("run") / "network-snapshot-000001.000.pkl")
    _save_tiny(path)
    return path


def _gen(*argv):
    return generate.main(["--compile", "eager", "--no-progress", *argv])


def _one_line(err, prog="generate.py"):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("I0000", "E0000", "W0000"))
             and "absl::InitializeLog" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"{prog}: error: " if prog else "error: "), err
    return lines[0]


def _subprocess(argv, code=None, timeout=900):
    """`python generate.py ARGV` (or `python -c CODE` with `sys.argv[1:] == ARGV`) with TF's logs off."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("GANFORMER_TF_LOGS", None)
    cmd = [sys.executable, "-c", code, *argv] if code else [sys.executable, os.path.join(ROOT, "generate.py"), *argv]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------- 14. glob characters in names
@pytest.mark.parametrize("expname,decoys", [("e[x]", ["ex-000", "e[x]-000-old", "xe[x]-004", "e[x]-7b"]),
                                            ("e*", ["eab-003", "e-001"]), ("e?", ["ex-002"])])
def test_run_dirs_match_experiment_names_exactly(expname, decoys, tmp_path):
    results = str(tmp_path)
    for name in decoys + [f"{expname}-000"]:
        os.makedirs(os.path.join(results, name))
    open(os.path.join(results, f"{expname}-000", launch.OPTIONS_FILE), "w").write("{}")
    assert launch.run_dirs(results, expname) == [os.path.join(results, f"{expname}-000")]
    assert launch.choose_run_dir(results, expname, restart=False) == (os.path.join(results, f"{expname}-000"), True)
    assert launch.choose_run_dir(results, expname, restart=True) == (os.path.join(results, f"{expname}-001"), False)


def test_visualization_index_in_a_run_dir_with_glob_characters(tmp_path):
    from training.vis.html_index import write_index
    from training.vis.imageio import save_png
    folder = str(tmp_path / "e[x]-000" / "vis")
    save_png(os.path.join(folder, "images", "000000.png"), np.zeros((4, 4, 3), np.uint8))
    assert "images/000000.png" in open(write_index(folder), encoding="utf-8").read()
