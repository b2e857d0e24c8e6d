"""benchmarks/study.py stopped (SIGTERM to the study, or Ctrl-C to its process group: the run gets SIGINT, then
SIGTERM from the study) while a run evaluates its last snapshot stops in one line, and run again: the run is resumed without training, the interrupted evaluation is done once, study.json
has each evaluation once, and a finished run is never trained again.

The study's runs are the real `run_network.py` (through tests/eval_interrupt_worker.py, whose stand-in feature
network stalls the evaluation to interrupt and keeps FID cheap)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.train_helpers import ROOT

WORKER = os.path.join(ROOT, "tests", "eval_interrupt_worker.py")
TOY = ["--models", "stylegan2", "--resolution", "16", "--channel-max", "16", "--kimg", "0.008", "--eval-every",
       "0.008", "--fid-images", "16", "--batch-size", "4", "--xla", "false", "--run-args=--eager",
       "--shapes-images", "16"]
# study.py with its runs started through the worker: `run_network.py` is looked up under study.ROOT
DRIVER = ("import sys; sys.path.insert(0, {root!r}); from benchmarks import study; study.ROOT = {shim!r}; "
          "sys.exit(study.main(sys.argv[1:]))")
SHIM = "import runpy, sys\nsys.argv[0] = {worker!r}\nrunpy.run_path({worker!r}, run_name='__main__')\n"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even when the suite runs as a background job


def _study(tmp_path, args, stall=""):
    """Starts the study (own process group) with its output in files; returns (process, stderr path)."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "run_network.py").write_text(SHIM.format(worker=WORKER))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", STALL=stall,
               STALL_MARK=str(tmp_path / "stalled"))
    err = tmp_path / "study-err.txt"
    with open(tmp_path / "study-out.txt", "w") as out_f, open(err, "w") as err_f:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER.format(root=ROOT, shim=str(shim)), *args],
                                cwd=str(tmp_path), env=env, stdout=out_f, stderr=err_f, preexec_fn=_default_sigint,
                                start_new_session=True)
    return proc, err


def _jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM to the study", "Ctrl-C to the group"])
def test_a_study_stopped_during_an_evaluation_resumes_it_once(tmp_path, how):
    result = str(tmp_path / "study")
    args = [*TOY, "--data-dir", str(tmp_path / "data"), "--result-dir", result]
    run = os.path.join(result, "runs", "stylegan2-000")
    log = os.path.join(result, "runs", "stylegan2.log")
    procs = []
    try:
        # 1. Stopped while the run evaluates its last snapshot (kimg 0.008).
        proc, err = _study(tmp_path, args, stall="features:2")
        procs.append(proc)
        deadline = time.time() + 300
        while not (tmp_path / "stalled").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "stalled").exists(), err.read_text()[-2000:]
        if how == "SIGTERM to the study":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130
        lines = err.read_text().strip().splitlines()
        assert lines[-1] == "study.py: interrupted; run the same command again to continue"
        assert "Traceback" not in err.read_text()
        assert [r["kimg"] for r in _jsonl(os.path.join(run, "metric-fid.jsonl"))] == [0.0]
        assert not os.path.isfile(os.path.join(run, "_finished.txt"))
        assert not os.path.isfile(os.path.join(result, "study.json"))
        if how != "SIGTERM to the study":
            return  # the rerun is the same from here on (checked once, to keep the test short)
        # 2. The same command: the run resumes without training, evaluates the interrupted snapshot, finishes.
        proc, err = _study(tmp_path, args)
        procs.append(proc)
        assert proc.wait(timeout=600) == 0, err.read_text()[-2000:]
        second = open(log, encoding="utf-8").read().split("\n$ ")[-1]
        assert "Training already reached 0.008" in second and "tick 1" not in second
        assert [r["kimg"] for r in _jsonl(os.path.join(run, "metric-fid.jsonl"))] == [0.0, 0.008]
        assert [r["Progress/kimg"] for r in _jsonl(os.path.join(run, "stats.jsonl"))] == [0.008]
        summary = json.load(open(os.path.join(result, "study.json")))
        rec = summary["models"]["stylegan2"]
        assert [e["kimg"] for e in rec["evaluations"]] == [0.0, 0.008] and rec["finished"]
        # 3. Once more: the finished run is not started again, the report is the same.
        proc, err = _study(tmp_path, args)
        procs.append(proc)
        assert proc.wait(timeout=300) == 0, err.read_text()[-2000:]
        assert open(log, encoding="utf-8").read().count("\n$ ") == 2
        again = json.load(open(os.path.join(result, "study.json")))
        assert again["models"]["stylegan2"]["evaluations"] == rec["evaluations"]
    finally:
        for proc in procs:
            _stop(proc)
