"""benchmarks/study.py end to end at toy size: every output, resume after a stop, one-line refusals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.train_helpers import ROOT, make_shapes

STUDY = os.path.join(ROOT, "benchmarks", "study.py")
TOY = ["--resolution", "16", "--channel-max", "16", "--kimg", "0.008", "--eval-every", "0.008", "--fid-images", "8",
       "--batch-size", "4", "--xla", "false", "--run-args=--eager", "--shapes-images", "32"]


def _default_sigint() -> None:
    # Ctrl-C as in a terminal: a suite started as a background job (`pytest &`) ignores SIGINT, and a child would
    # inherit that and never see the interrupt this file sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _study(args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, STUDY, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint, **kw)


def _commands(log_path):
    return sum(1 for line in open(log_path, encoding="utf-8") if line.startswith("$ "))


@pytest.mark.parametrize("args, message", [
    (["--models", "ganformer,bogus"], "--models"),
    (["--kimg", "1", "--eval-every", "2"], "--eval-every"),
    (["--resolution", "12"], "--resolution"),
    (["--fid-images", "1"], "--fid-images"),
    (["--kimg"], "--kimg"),
    (["--dataset", "nosuch"], "--dataset nosuch"),
    (["--parallel", "0"], "--parallel"),
    (["--gamma", "nan"], "--gamma nan"),
    (["--gamma", "often"], "--gamma: invalid float value: 'often'"),
    (["--gamma", "-1"], "--gamma -1.0"),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    proc = _study([*args, "--data-dir", str(tmp_path), "--result-dir", str(tmp_path / "s")], cwd=str(tmp_path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_toy_study_writes_everything_and_resumes(tmp_path):
    data = str(tmp_path / "data")
    make_shapes(data, count=32, resolution=16)
    result = str(tmp_path / "study")
    args = [*TOY, "--data-dir", data, "--result-dir", result]
    # 1. Stop the study (Ctrl-C to its process group) once the first model has finished and the second started.
    proc = _study(args, cwd=str(tmp_path), start_new_session=True)
    second_log = os.path.join(result, "runs", "stylegan2.log")
    deadline = time.time() + 900
    while not os.path.isfile(second_log) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert os.path.isfile(os.path.join(result, "runs", "ganformer-000", "_finished.txt"))
    assert not os.path.isfile(os.path.join(result, "study.json"))
    # 2. The same command continues: the finished model is not trained again.
    proc = _study(args, cwd=str(tmp_path))
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    assert _commands(os.path.join(result, "runs", "ganformer.log")) == 1
    assert _commands(second_log) == 2
    summary = json.load(open(os.path.join(result, "study.json")))
    assert list(summary["models"]) == ["ganformer", "stylegan2"]
    for name, rec in summary["models"].items():
        assert [e["kimg"] for e in rec["evaluations"]] == [0.0, 0.008]
        assert all(e["fid"] > 0 and e["fid_num_images"] == 8 for e in rec["evaluations"])
        assert rec["finished"] and rec["parameters"]["G"] > 0 and rec["wall_seconds"] > 0
        assert ("fg_ari" in rec["evaluations"][-1]) == (name == "ganformer")
    assert len(summary["models"]["ganformer"]["maps"]) == 2 and not summary["models"]["stylegan2"]["maps"]
    assert 0.0 <= summary["segmenter_vs_renderer"]["fg_ari"] <= 1.0
    page = open(os.path.join(result, "study.html"), encoding="utf-8").read()
    for rel in ["fid.png", "samples/reals.png", "samples/ganformer.png", "samples/stylegan2.png",
                *summary["models"]["ganformer"]["maps"]]:
        assert os.path.isfile(os.path.join(result, rel)) and rel in page, rel
    assert "| ganformer |" in out
    # 3. Once more (--parallel is not part of the study's identity): nothing is trained; other options are refused.
    proc = _study([*args, "--parallel", "2"], cwd=str(tmp_path))
    proc.communicate(timeout=600)
    assert proc.returncode == 0 and _commands(second_log) == 2
    proc = _study([*args, "--gamma", "5"], cwd=str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "gamma" in err and len(err.strip().splitlines()) == 1


def test_gamma_auto_is_the_ada_heuristic_resolved_before_it_is_stored(monkeypatch):
    """--gamma auto = 0.0002 * res^2 / batch as a number in the options (so study.json and the runs agree)."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import study
    opts, _, _ = study.parse_args([])
    assert opts.gamma == pytest.approx(0.0128) and opts.xla
    opts, _, _ = study.parse_args(["--resolution", "64", "--batch-size", "32"])
    assert opts.gamma == pytest.approx(0.0256)
    assert study.parse_args(["--gamma", "10"])[0].gamma == 10.0
    assert "--gamma 0.0128" in " ".join(study.run_flags(study.parse_args([])[0], "stylegan2", "r"))


def test_a_model_starts_once_the_running_ones_have_recorded_an_fid(tmp_path, monkeypatch):
    """With --parallel 2 the second run waits for the first's kimg-0 FID (its real statistics are then cached)."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import io

    import study
    from tqdm import tqdm
    opts = study.parse_args(["--kimg", "1", "--eval-every", "1"])[0]
    result = str(tmp_path)
    os.makedirs(os.path.join(result, "runs", "ganformer-000"))

    class Proc:
        returncode = 0

        def __init__(self):
            self.done = False

        def poll(self):
            return 0 if self.done else None

        def terminate(self):
            self.done = True

        def wait(self):
            return 0

    procs, seen = {}, []

    def launch(o, model, result_dir):
        procs[model] = Proc()
        return procs[model], io.StringIO()

    def sleep(_):
        seen.append(sorted(procs))
        if len(seen) == 3:  # the first run records its kimg-0 FID
            with open(os.path.join(result, "runs", "ganformer-000", "metric-fid.jsonl"), "w") as f:
                f.write('{"kimg": 0}\n')
        if len(seen) == 6:
            for proc in procs.values():
                proc.done = True

    monkeypatch.setattr(study, "_launch", launch)
    monkeypatch.setattr(study.time, "sleep", sleep)
    state = {"options": {}, "wall_seconds": {}}
    with tqdm(total=2, disable=True) as bar:
        study.train_models(opts, ["ganformer", "stylegan2"], result, state, bar, parallel=2)
    assert seen[:3] == [["ganformer"]] * 3 and seen[3] == ["ganformer", "stylegan2"]
    assert set(state["wall_seconds"]) == {"ganformer", "stylegan2"}


def test_a_model_name_with_an_augmentation_suffix_trains_that_model_with_that_aug(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import study
    opts = study.parse_args(["--models", "ganformer,ganformer@ada,stylegan2@diffaugment"])[0]
    flags = study.run_flags(opts, "ganformer@ada", "r")
    assert flags[flags.index("--aug") + 1] == "ada" and "--ganformer-default" in flags
    assert "fg_ari500" in flags[flags.index("--metrics") + 1]  # still an attention model
    assert "--aug" not in study.run_flags(opts, "ganformer", "r")
    sg2 = study.run_flags(opts, "stylegan2@diffaugment", "r")
    assert sg2[sg2.index("--aug") + 1] == "diffaugment" and sg2[sg2.index("--metrics") + 1] == "fid"
    for bad in ("ganformer@fixed", "ganformer@", "nosuch@ada"):
        with pytest.raises(study.UserError, match="--models"):
            study.parse_args(["--models", bad])


def test_a_rendered_shapes_set_of_another_size_is_refused(tmp_path):
    data = tmp_path / "data"
    make_shapes(str(data), count=8, resolution=16)
    proc = _study(["--resolution", "16", "--shapes-images", "1000", "--data-dir", str(data), "--result-dir",
                   str(tmp_path / "s")], cwd=str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1
    assert "--shapes-images 1000" in err and "holds 8 scenes at 16x16" in err
