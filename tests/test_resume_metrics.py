"""A run killed or stopped (SIGTERM) while it evaluates a snapshot finishes that evaluation when it resumes (no missing
curve point); SIGTERM abandons a long evaluation at once instead of outliving a pre-emption's grace period."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from metrics.registry import is_recorded
from tests.train_helpers import ROOT, make_shapes
from training.data.loader import open_dataset
from training.options import TrainingOptions
from training.presets import configs_from_options, preset_options
from training.training_loop import Trainer


class Killed(BaseException):
    """Stands for the kill (SIGKILL / pre-emption) that stops a process in the middle of an evaluation."""


def _trainer(run_dir: str, data_dir: str, metrics_fn) -> Trainer:
    ds = open_dataset(os.path.join(data_dir, "shapes"))
    options = preset_options("stylegan2")
    options.update(channel_max=16, latent_size=16, mbstd_group_size=4)
    g, d = configs_from_options(options, ds.resolution)
    opts = TrainingOptions(run_dir=run_dir, dataset="shapes", batch_size=4, batch_gpu=4, total_kimg=0.016,
                           kimg_per_tick=0.008, img_snapshot_ticks=1, network_snapshot_ticks=1, metrics=["fid"],
                           eager=True, summarize=False, seed=7)
    os.makedirs(run_dir, exist_ok=True)
    return Trainer(opts, g, d, ds, metrics_fn=metrics_fn)


def test_a_resumed_run_evaluates_the_snapshot_whose_evaluation_was_killed(tmp_path):
    data = str(tmp_path / "data")
    make_shapes(data, count=16, resolution=16)
    run = str(tmp_path / "run")
    calls = []

    def killed_at_first_tick(Gs, path, kimg, tb_writer=None, missing_only=False):
        calls.append((os.path.basename(path), round(kimg, 3), missing_only))
        if kimg > 0:
            raise Killed()

    with pytest.raises(Killed):
        _trainer(run, data, killed_at_first_tick).run()
    assert calls == [("network-snapshot-000000.000.pkl", 0.0, True), ("network-snapshot-000000.008.pkl", 0.008,
                                                                     False)]
    calls.clear()

    def recording(Gs, path, kimg, tb_writer=None, missing_only=False):
        calls.append((os.path.basename(path), round(kimg, 3), missing_only))

    _trainer(run, data, recording).run()
    # the interrupted evaluation first (only what is missing), then the next tick's as usual; kimg 0 is not redone
    assert calls == [("network-snapshot-000000.008.pkl", 0.008, True), ("network-snapshot-000000.016.pkl", 0.016,
                                                                       False)]


def test_is_recorded_reads_the_metric_file_and_ignores_torn_lines(tmp_path):
    path = tmp_path / "metric-fid.jsonl"
    assert not is_recorded(str(tmp_path), "fid", "network-snapshot-000020.000.pkl")
    path.write_text(json.dumps({"snapshot": "network-snapshot-000000.000.pkl", "value": 1.0}) + "\n{\"snapsh")
    assert is_recorded(str(tmp_path), "fid", "network-snapshot-000000.000.pkl")
    assert not is_recorded(str(tmp_path), "fid", "network-snapshot-000020.000.pkl")
    assert not is_recorded(str(tmp_path), "kid", "network-snapshot-000000.000.pkl")


@pytest.mark.parametrize("stop_at", [0.0, 0.008, 0.016])
def test_sigterm_abandons_a_running_evaluation_and_the_resumed_run_redoes_it(tmp_path, stop_at):
    data = str(tmp_path / "data")
    make_shapes(data, count=16, resolution=16)
    run = str(tmp_path / "run")
    calls, finished = [], []

    def long_evaluation(Gs, path, kimg, tb_writer=None, missing_only=False):
        calls.append((os.path.basename(path), round(kimg, 3)))
        if round(kimg, 3) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(600):  # a 60-second evaluation, in Python steps as the metrics' batches are
                time.sleep(0.1)
        finished.append(round(kimg, 3))

    _trainer(run, data, long_evaluation).run()
    assert stop_at not in finished  # abandoned (run to its end, it would have been recorded as finished)
    assert calls[-1][1] == stop_at  # nothing trained or evaluated after the stop
    assert not os.path.isfile(os.path.join(run, "_finished.txt"))
    calls.clear()

    def recording(Gs, path, kimg, tb_writer=None, missing_only=False):
        calls.append((os.path.basename(path), round(kimg, 3), missing_only))

    _trainer(run, data, recording).run()
    assert calls[0][1:] == (stop_at, True)  # the abandoned evaluation first, only what is missing
    assert [c[1] for c in calls] == [kimg for kimg in (0.0, 0.008, 0.016) if kimg >= stop_at]
    assert os.path.isfile(os.path.join(run, "_finished.txt"))


# ---------------------------------------------------------------------------------------------------------------
# SIGINT and SIGKILL during an evaluation, through the CLI (the stand-in feature network of eval_interrupt_worker.py
# stalls one evaluation so the signal arrives inside it).

WORKER = os.path.join(ROOT, "tests", "eval_interrupt_worker.py")
TRAIN = ["--train", "--baseline", "StyleGAN2", "--dataset", "shapes", "--channel-max", "16", "--latent-size", "16",
         "--batch-size", "4", "--batch-gpu", "4", "--kimg-per-tick", "0.008", "--total-kimg", "0.008",
         "--metrics", "fid", "--eval-images-num", "16", "--eager", "--xla", "false", "--attention-stats", "false"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even when the suite runs as a background job


class Worker:
    """A `run_network.py` process (through the worker) with its output in files; killed if a test fails."""

    def __init__(self, tmp_path, args, stall: str = ""):
        self.mark = tmp_path / "stalled"
        if self.mark.exists():
            self.mark.unlink()
        self.out, self.err = tmp_path / "out.txt", tmp_path / "err.txt"
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", STALL=stall, STALL_MARK=str(self.mark))
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, WORKER, *args], cwd=str(tmp_path), env=env, stdout=out,
                                         stderr=err, preexec_fn=_default_sigint)

    def stop_when_stalled(self, sig: int, timeout: float = 240) -> int:
        """Sends `sig` once the stall begins; returns the exit status."""
        deadline = time.time() + timeout
        while not self.mark.exists() and self.proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert self.mark.exists(), f"no stall (exit {self.proc.poll()}): {self.err.read_text()[-2000:]}"
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=120)

    def wait(self, timeout: float = 240) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _recorded_kimg(run: str) -> list:
    """kimg of every line of the run's metric-fid.jsonl (each line must be whole JSON)."""
    with open(os.path.join(run, "metric-fid.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["kimg"] for line in f]


def _temporaries(run: str) -> list:
    return [os.path.join(d, n) for d, _, names in os.walk(run) for n in names if ".tmp-" in n]


@pytest.mark.slow
def test_sigint_and_sigkill_during_an_evaluation_then_resume(tmp_path):
    data = str(tmp_path / "data")
    make_shapes(data, count=16, resolution=16)
    args = [*TRAIN, "--data-dir", data, "--result-dir", str(tmp_path / "results")]
    run = str(tmp_path / "results" / "exp-000")
    workers = []
    try:
        # 1. Ctrl-C in the evaluation of the last snapshot (kimg 0.008): one line, exit 130, its checkpoint kept.
        workers.append(Worker(tmp_path, args, stall="features:2"))
        assert workers[-1].stop_when_stalled(signal.SIGINT) == 130
        err = workers[-1].err.read_text()
        assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
        assert _recorded_kimg(run) == [0.0] and not _temporaries(run)
        assert os.path.isfile(os.path.join(run, "network-snapshot-000000.008.pkl"))
        assert not os.path.isfile(os.path.join(run, "_finished.txt"))
        # 2. The resumed run (training already done) redoes that evaluation; SIGKILL while it writes the result
        #    (temporary file full, not yet renamed): the metric file keeps its whole old lines.
        workers.append(Worker(tmp_path, args, stall="write:1"))
        assert workers[-1].stop_when_stalled(signal.SIGKILL) == -signal.SIGKILL
        assert "Training already reached 0.008" in workers[-1].out.read_text()
        assert _recorded_kimg(run) == [0.0] and len(_temporaries(run)) == 1
        # 3. Resumed again: the leftover goes, the killed evaluation is done once, the run finishes.
        workers.append(Worker(tmp_path, args))
        assert workers[-1].wait() == 0, workers[-1].err.read_text()[-2000:]
        assert "Removed 1 leftover(s)" in workers[-1].out.read_text()
        assert _recorded_kimg(run) == [0.0, 0.008] and not _temporaries(run)
        assert os.path.isfile(os.path.join(run, "_finished.txt"))
        # 4. `--eval` interrupted while it writes its result: one line, exit 130, the metric file as it was.
        before = open(os.path.join(run, "metric-fid.jsonl"), "rb").read()
        eval_args = ["--eval", "--dataset", "shapes", "--data-dir", data, "--result-dir", str(tmp_path / "results"),
                     "--metrics", "fid", "--eval-images-num", "16", "--batch-gpu", "4"]
        workers.append(Worker(tmp_path, eval_args, stall="write:1"))
        assert workers[-1].stop_when_stalled(signal.SIGINT) == 130
        err = workers[-1].err.read_text()
        assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
        assert open(os.path.join(run, "metric-fid.jsonl"), "rb").read() == before and not _temporaries(run)
    finally:
        for worker in workers:
            worker.kill()


def test_the_sigterm_handler_prints_nothing_and_the_log_lock_is_reentrant(tmp_path, capsys):
    """A handler that prints can run while the console or the log file is being written: the handler only sets
    flags (the loop prints), and the log's lock lets the same thread in again instead of waiting for itself."""
    from dnnlib.util import Logger
    from training.training_loop import EvaluationInterrupted
    trainer = Trainer.__new__(Trainer)
    trainer._stop, trainer._evaluating = False, False
    trainer._on_sigterm(signal.SIGTERM, None)
    trainer._evaluating = True
    with pytest.raises(EvaluationInterrupted):
        trainer._on_sigterm(signal.SIGTERM, None)
    assert trainer._stop and not trainer._evaluating and capsys.readouterr().out == ""
    with Logger(str(tmp_path / "log.txt")) as logger:
        with logger._lock:  # as a handler's print inside a write would
            print("inside", flush=True)
    assert (tmp_path / "log.txt").read_text() == "inside\n"
