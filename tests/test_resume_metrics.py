"""A run killed or stopped (SIGTERM) while it evaluates a snapshot finishes that evaluation when it resumes (no missing
curve point); SIGTERM abandons a long evaluation at once instead of outliving a pre-emption's grace period."""

import json
import os
import signal
import time

import pytest

from metrics.registry import is_recorded
from tests.train_helpers import make_shapes
from training.dataset import open_dataset
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


@pytest.mark.parametrize("stop_at", [0.0, 0.008])
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
    assert [c[1] for c in calls] == sorted({stop_at, 0.008, 0.016})
    assert os.path.isfile(os.path.join(run, "_finished.txt"))
