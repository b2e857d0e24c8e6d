"""Training across processes: 2 replicas == 1, two workers on 127.0.0.1, kill -9 / SIGTERM and resume, CLI errors."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.train_helpers import ROOT, TINY_FLAGS, make_shapes, run_cli


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=32, resolution=16)
    return d


def _base(data_dir, result_dir, kimg):
    return ["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data_dir, "--result-dir",
            result_dir, "--total-kimg", str(kimg), "--eager", *TINY_FLAGS]


@pytest.mark.slow
def test_two_replicas_give_the_same_update_as_one(data_dir, tmp_path):
    out = str(tmp_path / "weights.npz")
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "dist_worker.py"), "replicas", data_dir, out],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = np.load(out)
    names = [k.split(":", 1)[1] for k in res.files if k.startswith("one:")]
    assert sum(n.startswith("d_opt/v") for n in names) > 10
    scale = {opt: max(np.abs(res[f"one:{n}"]).max() for n in names if n.startswith(opt)) for opt in ("g_opt", "d_opt")}
    for name in names:
        a, b = res[f"one:{name}"], res[f"two:{name}"]
        if "_opt/v" in name:  # squared gradients: a scaling or reduction bug shows here, not in Adam's steps
            # (exactly-zero gradients, e.g. of the keys' biases, carry only float noise: ~1e-18 here)
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-9 * scale[name[:5]], err_msg=name)
        else:  # weights: Adam turns float noise in exactly-zero gradients into steps of up to ~lr
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4, err_msg=name)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_workers(args_of):
    """Starts two `run_network.py` workers on 127.0.0.1 (worker 0 is the chief); `args_of(i)` gives worker i's flags."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        cfg = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=cfg)
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "run_network.py"), *args_of(i)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


@pytest.mark.slow
def test_two_workers_complete_a_tick(data_dir, tmp_path):
    procs = _start_workers(lambda i: _base(data_dir, str(tmp_path / f"w{i}"), 0.008) + ["--batch-gpu", "2"])
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "2 replica(s)" in outs[0][0]
    chief = os.path.join(str(tmp_path / "w0"), "exp-000")
    assert os.path.exists(os.path.join(chief, "network-final.pkl"))
    assert not glob.glob(os.path.join(str(tmp_path / "w1"), "exp-000", "network-*.pkl"))


def _wait_for_checkpoint(run_dir, proc, timeout=600):
    index = os.path.join(run_dir, "checkpoints", "checkpoint")
    start = time.time()
    while time.time() - start < timeout:
        if os.path.exists(index) and open(index).read().count("all_model_checkpoint_paths") >= 2:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes(sig, data_dir, tmp_path):
    result_dir = str(tmp_path / "results")
    args = _base(data_dir, result_dir, 0.4)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run_network.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = os.path.join(result_dir, "exp-000")
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0, err[-2000:]
        assert "SIGTERM received" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(run_dir, "_finished.txt"))
    again = run_cli(_base(data_dir, result_dir, 0.064), cwd=str(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from" in again.stdout and "exp-000" in again.stdout
    records = [json.loads(line) for line in open(os.path.join(run_dir, "stats.jsonl"))]
    assert records[-1]["Progress/kimg"] == pytest.approx(0.064)


@pytest.mark.parametrize("args,needle", [
    (["--train", "--dataset", "nope"], "--dataset nope"),
    (["--train", "--dataset", "shapes", "--batch-size", "6"], "--batch-size"),
    (["--train", "--dataset", "shapes", "--g-loss", "nope"], "--g-loss"),
    (["--train", "--dataset", "shapes", "--ratio", "2"], "--ratio"),
    (["--train", "--dataset", "shapes", "--iterative"], "--iterative"),
    (["--train", "--dataset", "shapes", "--ganformer-default", "--baseline", "GAN"], "exclusive"),
    (["--train", "--dataset", "shapes", "--components-num", "3", "--transformer"], "divisible"),
])
def test_bad_flags_give_one_line_errors(args, needle, data_dir, tmp_path):
    proc = run_cli([*args, "--data-dir", data_dir, "--result-dir", str(tmp_path)], cwd=str(tmp_path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "WARNING" not in line
             and not line.startswith(("I0000", "E0000", "W0000"))]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _metric_records(path):
    """`<snapshot name> -> record` of a `metric-<name>.jsonl` file."""
    return {rec["snapshot"]: rec for rec in map(json.loads, open(path, encoding="utf-8"))}


@pytest.mark.slow
def test_two_workers_record_the_fid_one_process_computes(data_dir, tmp_path):
    """--metrics fid with two workers: the chief records the FID of each snapshot, and `--eval` of the trained
    snapshot in one process computes the same value: the chief evaluates alone, with the samples one process draws
    (`metrics/images.py`). Both generate the same 16 fakes in batches of 2 from a network without noise inputs and
    read the same cached real statistics, so the values agree to float rounding (they were bit-identical when this
    was written: 346.8634 and 346.8634); a chief that kept only its replica's half of each two-worker batch recorded
    338.7184, 2.3% off."""
    metric = ["--metrics", "fid", "--eval-images-num", "16", "--local-noise", "false"]
    procs = _start_workers(lambda i: _base(data_dir, str(tmp_path / f"w{i}"), 0.004)
                           + ["--kimg-per-tick", "0.004", "--batch-gpu", "2", *metric])
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    run = os.path.join(str(tmp_path / "w0"), "exp-000")
    snap = "network-snapshot-000000.004.pkl"
    trained = _metric_records(os.path.join(run, "metric-fid.jsonl"))
    assert sorted(trained) == ["network-snapshot-000000.000.pkl", snap], trained
    assert not glob.glob(os.path.join(str(tmp_path / "w1"), "exp-000", "metric-*.jsonl"))  # the chief evaluates
    one = run_cli(["--eval", "--dataset", "shapes", "--data-dir", data_dir, "--result-dir", str(tmp_path / "one"),
                   "--pretrained-pkl", os.path.join(run, snap), "--metrics", "fid", "--eval-images-num", "16",
                   "--batch-gpu", "2"], cwd=str(tmp_path), timeout=1200)
    assert one.returncode == 0, one.stderr[-3000:]
    single = _metric_records(os.path.join(str(tmp_path / "one"), "exp-000", "metric-fid.jsonl"))[snap]
    print(f"FID of {snap}: two workers {trained[snap]['value']!r}, one process {single['value']!r}")
    assert single["num_images"] == trained[snap]["num_images"] == 16 and single["kimg"] == trained[snap]["kimg"]
    assert trained[snap]["value"] == pytest.approx(single["value"], rel=1e-6)
