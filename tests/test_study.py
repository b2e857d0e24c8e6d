"""benchmarks/study.py end to end at toy size: every output, resume after a stop, several seeds, one-line refusals;
the bands over seeds on hand-written run records."""

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
    (["--seed", "1", "--seeds", "1,2"], "--seed 1 and --seeds 1,2"),
    (["--seeds", "1,x"], "--seeds 1,x"),
    (["--seeds", "5,5"], "--seeds 5,5"),
    (["--seeds", ","], "--seeds ,"),
    (["--seed", "-1"], "--seed -1"),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    proc = _study([*args, "--data-dir", str(tmp_path), "--result-dir", str(tmp_path / "s")], cwd=str(tmp_path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


@pytest.mark.slow
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
        assert ("locality" in rec["evaluations"][-1]) == (name == "ganformer")
        assert [r["name"] for r in rec["runs"]] == [name] and rec["runs"][0]["run_dir"].endswith(f"{name}-000")
    assert len(summary["models"]["ganformer"]["maps"]) == 2 and not summary["models"]["stylegan2"]["maps"]
    assert 0.0 <= summary["segmenter_vs_renderer"]["fg_ari"] <= 1.0
    page = open(os.path.join(result, "study.html"), encoding="utf-8").read()
    for rel in ["fid.png", "samples/reals.png", "samples/ganformer.png", "samples/stylegan2.png",
                *summary["models"]["ganformer"]["maps"]]:
        assert os.path.isfile(os.path.join(result, rel)) and rel in page, rel
    rows = [line for line in out.splitlines() if line.startswith("| ganformer |")]
    assert [r.split("|")[2].strip() for r in rows] == ["FID", "FG-ARI", "locality"] and "[" not in "".join(rows)
    assert "FG-ARI ceiling of the segmenter at this resolution: " in out
    runs = set(os.listdir(os.path.join(result, "runs")))  # single-seed names, as before several seeds
    assert {"ganformer-000", "ganformer.log", "stylegan2-000", "stylegan2.log"} <= runs
    assert not any("-s1000" in name for name in runs)
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


def _two_seed_args(data, result):
    return [*TOY, "--models", "ganformer", "--seeds", "1000,1001", "--data-dir", data, "--result-dir", result]


@pytest.mark.slow
def test_a_two_seed_toy_study_writes_bands_and_never_retrains_a_finished_run(tmp_path):
    data = str(tmp_path / "data")
    make_shapes(data, count=32, resolution=16)
    result = str(tmp_path / "study")
    args = _two_seed_args(data, result)
    proc = _study(args, cwd=str(tmp_path))
    out, err = proc.communicate(timeout=1500)
    assert proc.returncode == 0, err[-2000:]
    runs = os.path.join(result, "runs")
    names = ["ganformer-s1000", "ganformer-s1001"]
    assert {f"{n}-000" for n in names} | {f"{n}.log" for n in names} <= set(os.listdir(runs))
    assert not os.path.exists(os.path.join(runs, "ganformer-000"))
    summary = json.load(open(os.path.join(result, "study.json")))
    rec = summary["models"]["ganformer"]
    assert summary["options"]["seeds"] == [1000, 1001] and "seed" not in summary["options"]
    assert [(r["name"], r["seed"]) for r in rec["runs"]] == [(n, s) for n, s in zip(names, [1000, 1001])]
    assert [e["kimg"] for e in rec["evaluations"]] == [0.0, 0.008] and rec["finished"]
    for i, e in enumerate(rec["evaluations"]):
        for key in ("fid", "fg_ari", "locality"):
            values = e[f"{key}_seeds"]
            assert values == [r["evaluations"][i][key] for r in rec["runs"]]
            assert e[f"{key}_min"] == min(values) and e[f"{key}_max"] == max(values)
            assert e[key] == pytest.approx(sum(values) / 2)
    page = open(os.path.join(result, "study.html"), encoding="utf-8").read()
    assert any(m.startswith("maps/ganformer-s1001-") for m in rec["maps"]) and len(rec["maps"]) == 4
    for rel in ["fid.png", "samples/reals.png", "samples/ganformer-s1000.png", "samples/ganformer-s1001.png",
                *rec["maps"]]:
        assert os.path.isfile(os.path.join(result, rel)) and rel in page, rel
    assert "FG-ARI ceiling of the segmenter at this resolution: " in page
    assert "image | hard map | blend | soft map" in page
    fid_row = next(line for line in out.splitlines() if line.startswith("| ganformer | FID |"))
    assert fid_row.count("[") == 2 and "mean [min–max] over the 2 seeds" in out
    # The same command again trains nothing (no new command in the logs, the final networks untouched).
    finals = [os.path.join(runs, f"{n}-000", "network-final.pkl") for n in names]
    mtimes = [os.path.getmtime(p) for p in finals]
    proc = _study(args, cwd=str(tmp_path))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert [_commands(os.path.join(runs, f"{n}.log")) for n in names] == [1, 1]
    assert [os.path.getmtime(p) for p in finals] == mtimes
    # Other seeds are another study.
    proc = _study([*TOY, "--models", "ganformer", "--seed", "1000", "--data-dir", data, "--result-dir", result],
                  cwd=str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "other options (seeds)" in err and len(err.strip().splitlines()) == 1


class _Proc:
    """A stand-in for a run's process: running until `done`."""

    returncode = 0

    def __init__(self):
        self.done = False

    def poll(self):
        return 0 if self.done else None

    def terminate(self):
        self.done = True

    def wait(self):
        return 0


def test_several_seeds_make_one_run_per_model_and_seed_each_waiting_for_a_recorded_fid(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import io

    import study
    from tqdm import tqdm
    opts = study.parse_args(["--kimg", "1", "--eval-every", "1", "--seeds", "7,8"])[0]
    assert opts.seeds == [7, 8] and study.parse_args(["--seed", "7"])[0].seeds == [7]
    runs = study.study_runs(opts)
    assert [(r.name, r.model, r.seed) for r in runs] == [
        ("ganformer-s7", "ganformer", 7), ("stylegan2-s7", "stylegan2", 7),
        ("ganformer-s8", "ganformer", 8), ("stylegan2-s8", "stylegan2", 8)]
    flags = study.run_flags(opts, "ganformer", "r", 8)
    assert flags[flags.index("--seed") + 1] == "8" and flags[flags.index("--expname") + 1] == "ganformer-s8"
    assert flags[flags.index("--metrics") + 1] == "fid,fg_ari500,locality200"
    assert study.run_dir("r", "ganformer-s8") == os.path.join("r", "runs", "ganformer-s8-000")
    result = str(tmp_path)
    procs, seen = {}, []

    def launch(o, name, result_dir):
        procs[name] = _Proc()
        return procs[name], io.StringIO()

    def sleep(_):
        seen.append(sorted(procs))
        if len(seen) == 2:  # the first run records its kimg-0 FID; the second starts and records one at once
            for name in ("ganformer-s7", "stylegan2-s7"):
                os.makedirs(os.path.join(result, "runs", f"{name}-000"))
                with open(os.path.join(result, "runs", f"{name}-000", "metric-fid.jsonl"), "w") as f:
                    f.write('{"kimg": 0}\n')
        if len(seen) >= 4:
            for proc in procs.values():
                proc.done = True

    monkeypatch.setattr(study, "_launch", launch)
    monkeypatch.setattr(study.time, "sleep", sleep)
    state = {"options": {}, "wall_seconds": {}}
    with tqdm(total=4, disable=True) as bar:
        study.train_models(opts, ["ganformer-s7", "stylegan2-s7", "ganformer-s8"], result, state, bar, parallel=2)
    assert seen[:3] == [["ganformer-s7"]] * 2 + [["ganformer-s7", "stylegan2-s7"]]
    assert set(state["wall_seconds"]) == {"ganformer-s7", "stylegan2-s7", "ganformer-s8"}


def test_a_state_from_before_several_seeds_resumes_with_the_same_single_seed(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    from dataclasses import asdict

    import study
    opts = study.parse_args(["--seed", "1234"])[0]
    old = asdict(opts)
    del old["seeds"]
    old["seed"] = 1234
    with open(tmp_path / "state.json", "w") as f:
        json.dump({"options": old, "wall_seconds": {"ganformer": 5.0}}, f)
    state = study.load_state(str(tmp_path), opts)
    assert state["options"]["seeds"] == [1234] and state["wall_seconds"] == {"ganformer": 5.0}
    with pytest.raises(study.UserError, match=r"other options \(seeds\)"):
        study.load_state(str(tmp_path), study.parse_args(["--seeds", "1234,1235"])[0])


def _write_jsonl(path, rows):
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def _hand_written_run(path, fids, aris, locality, tick_seconds):
    os.makedirs(path)
    _write_jsonl(os.path.join(path, "metric-fid.jsonl"),
                 [{"kimg": k, "value": v, "num_images": 8, "seconds": 1.0} for k, v in fids])
    _write_jsonl(os.path.join(path, "metric-fg_ari500.jsonl"),
                 [{"kimg": k, "value": v, "results": {"num_scored": 500}} for k, v in aris])
    _write_jsonl(os.path.join(path, "metric-locality200.jsonl"),
                 [{"kimg": 1.0, "value": locality, "results": {"share": locality / 8, "change": 0.1,
                                                               "entropy_last": 0.5, "latents_used_last": 0.7}}])
    _write_jsonl(os.path.join(path, "stats.jsonl"), [{"Progress/kimg": 1.0, "Timing/sec_per_tick": tick_seconds}])


def test_bands_are_the_mean_min_and_max_over_seeds_of_the_runs_records(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    from dataclasses import asdict

    import study
    from benchmarks import study_bands, study_report
    # Seed 2's run re-evaluated kimg 1 after a resume: its last record counts.
    _hand_written_run(str(tmp_path / "a"), [(0, 300.0), (1, 200.0)], [(0, 0.1), (1, 0.3)], 1.5, 60.0)
    _hand_written_run(str(tmp_path / "b"), [(0, 310.0), (1, 999.0), (1, 220.0)], [(0, 0.2), (1, 0.5)], 2.5, 120.0)
    runs = [{"name": f"ganformer-s{seed}", "seed": seed, "wall_seconds": wall, "maps": [],
             **study_report.run_record(str(tmp_path / folder), 16, "fg_ari500", "locality200")}
            for folder, seed, wall in (("a", 1, 100.0), ("b", 2, 300.0))]
    rec = study_bands.model_summary(runs)
    zero, one = rec["evaluations"]
    assert one["fid"] == pytest.approx(210.0) and (one["fid_min"], one["fid_max"]) == (200.0, 220.0)
    assert one["fid_seeds"] == [200.0, 220.0] and zero["fid_seeds"] == [300.0, 310.0]
    assert one["fg_ari"] == pytest.approx(0.4) and one["fg_ari_seeds"] == [0.3, 0.5]
    assert one["locality"] == pytest.approx(2.0) and (one["locality_min"], one["locality_max"]) == (1.5, 2.5)
    assert "locality" not in zero and one["train_seconds"] == pytest.approx(90.0) and rec["wall_seconds"] == 200.0
    assert runs[1]["evaluations"][1]["latents_used_last"] == 0.7 and rec["seeds"] == [1, 2]
    options = asdict(study.StudyOptions(models=["ganformer"], seeds=[1, 2]))
    summary = {"options": options, "models": {"ganformer": rec},
               "segmenter_vs_renderer": {"fg_ari": 0.78, "ari": 0.5, "object_recall": 0.9, "num_images": 1000,
                                         "floor_false_positive": 0.01}}
    table = study_bands.summary_table(summary)
    assert "| ganformer | FID | 305.0 [300.0–310.0] | 210.0 [200.0–220.0] | 1.5 | 3.3 |" in table
    assert "| ganformer | FG-ARI | 0.15 [0.10–0.20] | 0.40 [0.30–0.50] | | |" in table
    assert "| ganformer | locality | – | 2.00 [1.50–2.50] | | |" in table
    assert "FG-ARI ceiling of the segmenter at this resolution: 0.78." in table
    page = study_report.render_html(summary)
    assert "FG-ARI ceiling of the segmenter at this resolution: 0.78." in page and "seeds 1, 2" in page
    study_bands.plot(summary, str(tmp_path / "fid.png"))
    assert open(tmp_path / "fid.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    single = study_bands.model_summary(runs[:1])
    assert single["evaluations"][1]["fid"] == 200.0 and study_bands._cell(single["evaluations"][1], "fid") == "200.0"
    assert study_report.run_name("ganformer", 1, [1]) == "ganformer"
    assert study_report.run_name("ganformer", 1, [1, 2]) == "ganformer-s1"
