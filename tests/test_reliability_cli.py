"""Fault injection: damaged snapshots given to the CLIs, full disks, NaN/inf
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

from dnnlib.util import UserError
from tests.train_helpers import ROOT, make_shapes, run_generate, save_tiny_snapshot, stylegan2_trainer
from training.cli import launch

@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A tiny GANformer snapshot in a run dir: `<run>/network-snapshot-000001.000.pkl`."""
    path = str(tmp_path_factory.mktemp("run") / "network-snapshot-000001.000.pkl")
    save_tiny_snapshot(path)
    return path


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


# ------------------------------------------------------------------- 4. damaged snapshot given to the CLIs
def _truncated_copy(src, dst):
    data = open(src, "rb").read()
    open(dst, "wb").write(data[: len(data) // 2])
    return dst


def test_truncated_snapshot_to_generate_names_the_problem_and_the_newest_intact(snapshot, tmp_path):
    bad = _truncated_copy(snapshot, os.path.join(os.path.dirname(snapshot), "network-snapshot-000002.000.pkl"))
    try:
        res = _subprocess(["--model", bad, "--output-dir", str(tmp_path / "out"), "--compile", "eager"])
    finally:
        os.remove(bad)
    line = _one_line(res.stderr)
    assert res.returncode == 2 and "truncated" in line and line.endswith(f"is {snapshot}"), line
    assert not os.path.exists(tmp_path / "out")


def test_newest_intact_skips_damaged_and_nan_snapshots(snapshot, tmp_path, capsys):
    run = tmp_path / "run"
    os.makedirs(run)
    intact = str(run / "network-snapshot-000001.000.pkl")
    shutil.copy(snapshot, intact)
    save_tiny_snapshot(str(run / "network-snapshot-000002.000.pkl"), nan_in="synthesis/8x8/ToRGB/bias")
    flipped = bytearray(open(snapshot, "rb").read())
    flipped[len(flipped) // 2] ^= 0xFF  # inside an array: the zip's CRC check fails
    open(run / "network-snapshot-000003.000.pkl", "wb").write(bytes(flipped))
    _truncated_copy(snapshot, str(run / "network-final.pkl"))
    assert run_generate("--model", str(run / "network-final.pkl"), "--output-dir", str(tmp_path / "out")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "truncated" in line and line.endswith(f"is {intact}"), line


def test_truncated_snapshot_to_run_network_vis_and_eval(snapshot, tmp_path):
    run = tmp_path / "results" / "exp-000"
    os.makedirs(run)
    intact = str(run / "network-snapshot-000001.000.pkl")
    shutil.copy(snapshot, intact)
    bad = _truncated_copy(snapshot, str(run / "network-snapshot-000002.000.pkl"))
    res = subprocess.run([sys.executable, os.path.join(ROOT, "run_network.py"), "--vis", "--vis-images",
                          "--result-dir", str(tmp_path / "results")], cwd=str(tmp_path), capture_output=True,
                         text=True, timeout=900, env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    line = _one_line(res.stderr, prog="")
    assert res.returncode == 2 and bad in line and "truncated" in line and line.endswith(f"is {intact}"), line
    from run_network import main
    with pytest.raises(UserError, match="truncated") as info:
        main(["--eval", "--metrics", "fid", "--result-dir", str(tmp_path / "results"), "--pretrained-pkl", bad])
    assert str(info.value).endswith(f"is {intact}")
    assert not os.path.exists(run / "vis")


# ------------------------------------------------------------------------------------------- 7. disk full
TF_ENOSPC = "{{function_node __wrapped__SaveV2}} %s/part-00000-of-00001.data-00000-of-00001.tempstate1; No space " \
            "left on device [Op:SaveV2]"  # what TF 2.21 raised when a checkpoint filled a real tmpfs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data dir, run dir) of a finished one-tick tiny StyleGAN2 run: ckpt-1, network-snapshot-000000.004.pkl."""
    data = str(tmp_path_factory.mktemp("data"))
    make_shapes(data, count=16, resolution=16)
    run = str(tmp_path_factory.mktemp("trained") / "run")
    stylegan2_trainer(run, data, total_kimg=0.004).run()
    return data, run


def _files(run):
    return {os.path.relpath(p, run): open(p, "rb").read() for p in glob.glob(os.path.join(run, "**"), recursive=True)
            if os.path.isfile(p) and not p.endswith(("log.txt", "stats.jsonl"))}


def test_disk_full_at_a_checkpoint_is_one_line_and_keeps_the_earlier_one(trained, tmp_path, monkeypatch):
    from training.formats.checkpoint import checksum_problem
    data, base = trained
    run = str(tmp_path / "run")
    shutil.copytree(base, run)
    before = {k: v for k, v in _files(run).items() if k.startswith("checkpoints/ckpt-1")}

    def full_disk(self, checkpoint_number=None, **kwargs):
        temp = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
        os.makedirs(temp)
        open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001.tempstate1"), "wb").write(b"\0" * 999)
        raise tf.errors.ResourceExhaustedError(None, None, TF_ENOSPC % temp)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(UserError) as info:
        stylegan2_trainer(run, data, total_kimg=0.008).run()
    message = str(info.value)
    assert "\n" not in message and message.startswith("disk full: could not write checkpoint ckpt-2"), message
    assert re.search(r"\(needs about [\d.]+ [KM]iB, ", message) and "intact" in message, message
    assert not glob.glob(os.path.join(run, "checkpoints", "ckpt-2*"))  # the partial files are removed
    assert {k: v for k, v in _files(run).items() if k.startswith("checkpoints/ckpt-1")} == before
    assert checksum_problem(os.path.join(run, "checkpoints", "ckpt-1")) is None
    monkeypatch.undo()
    assert "ckpt-1" in stylegan2_trainer(run, data, total_kimg=0.008).restore_or_init()


def test_disk_full_at_a_snapshot_is_one_line_and_keeps_the_older_files(trained, tmp_path, monkeypatch):
    data, base = trained
    run = str(tmp_path / "run")
    shutil.copytree(base, run)
    before = {k: v for k, v in _files(run).items() if k.startswith("network-")}
    real_open, real_fdopen = open, os.fdopen

    def on_a_full_disk(f, name, mode):  # snapshot files accept 1000 bytes, then ENOSPC
        if "network-snapshot-000000.008" not in str(name) or not set(mode) & set("wxa"):
            return f
        write, written = f.write, []

        def limited(data):
            written.append(len(data))
            if sum(written) > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(data)
        f.write = limited
        return f

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        return on_a_full_disk(real_open(file, mode, *args, **kwargs), file, mode)

    def fdopen_on_a_full_disk(fd, mode="r", *args, **kwargs):  # temporary files opened from a descriptor
        name = os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else fd
        return on_a_full_disk(real_fdopen(fd, mode, *args, **kwargs), name, mode)
    monkeypatch.setattr("builtins.open", open_on_a_full_disk)
    monkeypatch.setattr(os, "fdopen", fdopen_on_a_full_disk)
    with pytest.raises(UserError) as info:
        stylegan2_trainer(run, data, total_kimg=0.008).run()
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        "disk full: could not write snapshot network-snapshot-000000.008.pkl"), message
    assert "needs about" in message and "intact" in message, message
    assert not [n for n in os.listdir(run) if "000000.008" in n]  # no partial or temporary snapshot
    assert {k: v for k, v in _files(run).items() if k.startswith("network-")} == before  # older snapshots intact


SIMULATED_FULL_DISK = """
import errno, sys
from training.vis import imageio
real_save, count = imageio.save_png, [0]
def save_png(path, image):  # 3 images fit, then the disk is full
    count[0] += 1
    if count[0] > 3:
        raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(path, image)
imageio.save_png = save_png
import generate
sys.exit(generate.main(sys.argv[1:]))
"""


def test_disk_full_in_generate_is_one_line_with_the_space_needed(snapshot, tmp_path):
    out = str(tmp_path / "out")
    res = _subprocess(["--model", snapshot, "--output-dir", out, "--images-num", "8", "--compile", "eager",
                       "--no-progress"],
                      code=SIMULATED_FULL_DISK)
    line = _one_line(res.stderr)
    assert res.returncode == 2, res.stderr
    assert "disk full: could not write sample_000003.png to " + out in line and "needs about" in line, line
    assert "3 of 8 images were written" in line, line
    assert sorted(os.listdir(out)) == [f"sample_{i:06d}.png" for i in range(3)]


def _tmpfs_works(folder):
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                               'mount -t tmpfs -o size=64k tmpfs "$1"', "sh", folder], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_generate_on_a_real_full_tmpfs(snapshot, tmp_path):
    disk = str(tmp_path / "disk")
    os.makedirs(disk)
    if not _tmpfs_works(disk):
        pytest.skip("cannot mount a tmpfs in a user namespace here (the simulated ENOSPC tests still run)")
    script = 'mount -t tmpfs -o size=64k tmpfs "$1" && cd "$1" && shift && "$@"; rc=$?; ls -a out; exit $rc'
    res = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", disk,
                          sys.executable, os.path.join(ROOT, "generate.py"), "--model", snapshot, "--output-dir",
                          os.path.join(disk, "out"), "--images-num", "60", "--compile", "eager", "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    line = _one_line(res.stderr)
    assert res.returncode == 2 and line.startswith("generate.py: error: disk full: could not write sample_"), line
    listed = res.stdout.splitlines()  # ends with `ls -a out` on the full disk
    samples = [n for n in listed if n.startswith("sample_")]
    assert samples and not [n for n in listed if n.startswith(".") and n not in (".", "..")], res.stdout
    assert f"{len(samples)} of 60 images were written" in line, line  # no temporary files are left behind


def test_log_file_on_a_full_disk_does_not_break_printing(tmp_path, capsys):
    from dnnlib.util import Logger
    with Logger(str(tmp_path / "log.txt")) as logger:
        print("before")

        def full(text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        logger.file.write = full
        print("after")  # the log file is dropped; the console still gets everything
    assert capsys.readouterr().out == "before\nafter\n"


# --------------------------------------------------------------------------------------- 11. NaN and inf
def test_nan_weights_are_refused(tmp_path, capsys):
    path = str(tmp_path / "nan.pkl")
    save_tiny_snapshot(path, nan_in="synthesis/8x8/ToRGB/bias")
    assert run_generate("--model", path, "--output-dir", str(tmp_path / "out"), "--images-num", "2") == 2
    line = _one_line(capsys.readouterr().err)
    assert "NaN or infinite" in line and "ToRGB/bias" in line, line
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])  # 1e39 fits float64, not the model's float32
def test_non_finite_latents_are_refused(value, snapshot, tmp_path, capsys):
    z = np.zeros((3, 3, 8))
    z[1, 2, 3] = value
    np.save(tmp_path / "z.npy", z)
    assert run_generate("--model", snapshot, "--latents", str(tmp_path / "z.npy"), "--output-dir", str(tmp_path / "o")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "1 of 3 latents hold NaN or infinite" in line and "rows 1" in line, line
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("psi", ["nan", "inf", "-inf"])
def test_non_finite_truncation_psi_is_refused(psi, snapshot, tmp_path, capsys):
    assert run_generate("--model", snapshot, f"--truncation-psi={psi}", "--output-dir", str(tmp_path / "o")) == 2
    assert "--truncation-psi" in _one_line(capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "o")


def test_non_finite_outputs_are_counted_with_a_warning_and_exit_1(snapshot, tmp_path, capsys):
    out = str(tmp_path / "out")  # a finite psi so large that the generator overflows
    assert run_generate("--model", snapshot, "--truncation-psi", "1e38", "--seeds", "0-2", "--output-dir", out) == 1
    captured = capsys.readouterr()
    assert "Wrote 3 images" in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generate.py: warning: 3 of 3 images held NaN or infinite"), lines
    assert "sample_000000.png" in lines[0]


# ------------------------------------------------------------------------------- 13. generate.py flags
def _write_bad_latents(tmp_path, kind):
    path = str(tmp_path / "z.npy")
    if kind == "strings":
        np.save(path, np.array([["a", "b"], ["c", "d"]]))
    elif kind == "text":
        open(path, "w").write("0.1 0.2 0.3\n0.4 0.5 0.6\n")
    elif kind == "npz":
        np.savez(path, z=np.zeros((1, 3, 8)))
        os.replace(path + ".npz", path)
    elif kind == "pickle":
        np.save(path, np.array([None, 1], dtype=object), allow_pickle=True)
    elif kind == "truncated":
        np.save(path, np.zeros((4, 3, 8), np.float32))
        os.truncate(path, os.path.getsize(path) - 8)
    elif kind == "huge-header":  # declares 2^40 latents in 200 bytes
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40, 3, 8)})
            f.write(b"\0" * 96)
    elif kind == "empty":
        np.save(path, np.zeros((0, 3, 8), np.float32))
    return path


@pytest.mark.parametrize("kind,needle", [
    ("strings", "not numbers"), ("text", "not a .npy file (it is text"), ("npz", "not a .npy file (it is a zip"),
    ("pickle", "not numbers"), ("truncated", "truncated"), ("huge-header", "at most 100,000"),
    ("empty", "holds no latents")])
def test_bad_latents_files_are_one_line_before_any_work(kind, needle, tmp_path, capsys):
    path = _write_bad_latents(tmp_path, kind)
    missing = str(tmp_path / "no-such-model.pkl")  # the file is refused before the model is even looked at
    assert run_generate("--model", missing, "--latents", path, "--output-dir", str(tmp_path / "o")) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"generate.py: error: --latents {path}: ") and needle in line, line
    assert "allow_pickle" not in line


@pytest.mark.parametrize("flags,needle", [
    (["--seeds", "4294967296"], "out of range"), (["--seeds", "0-99999999999"], "out of range"),
    (["--seeds", "0-4294967295"], "more than 100,000 images"), (["--images-num", "0"], "--images-num 0"),
    (["--images-num", "100001"], "--images-num 100001"), (["--interpolation-density", "0"], "--interpolation-density 0"),
    (["--vis-rich-num", "-1"], "--vis-rich-num -1"), (["--vis-section-size", "0"], "--vis-section-size 0"),
    (["--blending-alpha", "nan"], "--blending-alpha nan"), (["--ratio", "inf"], "--ratio inf")])
def test_bad_generate_flags_are_one_line_before_any_work(flags, needle, snapshot, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert run_generate("--model", snapshot, "--output-dir", out, "--vis-interpolations", *flags) == 2
    line = _one_line(capsys.readouterr().err)
    assert needle in line and "VisOptions(" not in line, line
    assert not os.path.exists(out)  # no samples were written before the refusal


def test_output_dir_that_is_a_file_is_refused(snapshot, tmp_path, capsys):
    open(tmp_path / "out", "w").close()
    assert run_generate("--model", snapshot, "--output-dir", str(tmp_path / "out"), "--images-num", "1") == 2
    assert "--output-dir" in _one_line(capsys.readouterr().err)


def test_bad_seeds_as_a_process(snapshot, tmp_path):
    res = _subprocess(["--model", snapshot, "--seeds", "4294967296", "--output-dir", str(tmp_path / "out")])
    assert res.returncode == 2 and "out of range" in _one_line(res.stderr)
    assert not os.path.exists(tmp_path / "out")


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
