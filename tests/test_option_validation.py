"""Every run_network.py option is checked before any work starts, and a resume that changes the architecture is
refused before anything is written.

A bad flag (a NaN or infinite number, a number out of range, an unknown metric, a head count that does not divide
the attention widths) must end in one line naming the flag, exit status 2, no traceback, and no run dir. A resume
with a changed architecture flag must leave `training_options.json` byte-identical. In-process tests replace
`run_network.train` by a function that fails the test, so an option that gets through is caught before it trains.
"""

import dataclasses
import json
import os
import typing

import pytest

import run_network
from dnnlib.files import write_json_atomic
from dnnlib.util import UserError
from tests.train_helpers import make_shapes, run_cli
from training.cli import flags as cli_args
from training.cli import launch
from dnnlib.options import fields_of, label_of, spec_of, value_kind
from training.options import TrainingOptions
from training.presets import ModelOptions

FLAGS = ["--train", "--ganformer-default", "--dataset", "shapes", "--resolution", "16", "--channel-max", "16",
         "--components-num", "2", "--latent-size", "16", "--batch-size", "4", "--batch-gpu", "4", "--metrics",
         "none", "--total-kimg", "0.004", "--kimg-per-tick", "0.004", "--xla", "false", "--summarize", "false"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=8, resolution=16)
    return d


@pytest.fixture
def no_training(monkeypatch):
    def train(*args, **kwargs):
        raise AssertionError("training started: the options were accepted")
    monkeypatch.setattr(run_network, "train", train)


def _parse(*argv):
    return cli_args.parse_command_line(list(argv))


def _numeric_flags():
    """(flag, dest, kind) of every flag whose value is a number."""
    return [(a.option_strings[0], a.dest, value_kind(a)) for a in cli_args.build_parser()._actions
            if a.option_strings and value_kind(a) in (int, float)]


def _range(dest):
    """The range the field behind a flag declares."""
    for cls in (cli_args.RunFlags, TrainingOptions, ModelOptions):
        if dest in fields_of(cls):
            return spec_of(fields_of(cls)[dest]).range
    raise KeyError(dest)


def _error_lines(stderr):
    """stderr without TensorFlow's native start-up lines (printed before its logging is configured)."""
    return [line for line in stderr.splitlines() if line.strip() and "absl::InitializeLog" not in line
            and not line.startswith(("I0000", "E0000", "W0000"))]


def _refused(argv, flag):
    with pytest.raises(UserError) as info:
        cli_args.check_flags(_parse(*argv))
    message = str(info.value)
    assert "\n" not in message and flag in message, message
    return message


# ------------------------------------------------------------------------------ every flag, checked in-process
def test_every_numeric_flag_has_a_range_and_the_defaults_pass():
    assert all(_range(dest) is not None for _, dest, _ in _numeric_flags())
    cli_args.check_flags(_parse("--train", "--dataset", "shapes"))
    cli_args.check_flags(_parse("--train", "--ganformer-default", "--dataset", "shapes", "--metrics", "fid,kid10k",
                                "--vis", "--eval", "--last-snapshots", "-1", "--merge-layer", "-1"))


def _outside(limits, kind):
    """Values just outside a range (none for an unbounded side)."""
    step = 1 if kind is int else max(abs(limits.lo) * 1e-3, 1e-3)
    out = []
    if limits.lo > -2 ** 62:
        out.append(limits.lo if limits.lo_open else limits.lo - step)
    if limits.hi < 2 ** 62:
        out.append(limits.hi if limits.hi_open else limits.hi + 1)
    return [str(v) for v in out]


@pytest.mark.parametrize("flag,dest,kind", _numeric_flags(), ids=[f for f, _, _ in _numeric_flags()])
def test_every_numeric_flag_refuses_non_finite_and_out_of_range_values(flag, dest, kind):
    bad = (["nan", "inf", "-inf"] if kind is float else []) + _outside(_range(dest), kind)
    assert _outside(_range(dest), kind) or dest == "last_snapshots", dest  # every other number has a bound
    for value in bad:
        message = _refused(["--train", "--dataset", "shapes", f"{flag}={value}"], flag)  # = keeps -inf a value
        assert message.startswith(f"{flag} ") and "must be" in message, message


@pytest.mark.parametrize("argv,flag,needle", [
    (["--g-lr", "nan"], "--g-lr", "finite number > 0"),
    (["--total-kimg", "nan"], "--total-kimg", "finite number >= 0.001"),
    (["--seed", "-1"], "--seed", "in [0, 4294967295]"),
    (["--seed", "4294967296"], "--seed", "in [0, 4294967295]"),
    (["--network-snapshot-ticks", "0"], "--network-snapshot-ticks", ">= 1"),
    (["--kimg-per-tick", "0.0001"], "--kimg-per-tick", ">= 0.001"),
    (["--resolution", "24"], "--resolution", "power of two"),
    (["--metrics", "fid,bogus"], "--metrics", "unknown metric 'bogus'; choose from"),
    (["--integration", "bogus"], "--integration", "choose from 'add', 'mul', 'both'"),
    (["--batch-size", "6"], "--batch-size", "multiple of --batch-gpu"),
    (["--vis", "--seed", "4294967290"], "--seed", "<= 4294967295"),
])
def test_issue_flags_are_refused_with_the_fix(argv, flag, needle):
    assert needle in _refused(["--train", "--dataset", "shapes", *argv], flag)


def test_training_options_from_a_record_are_held_to_the_same_checks():
    hints = typing.get_type_hints(TrainingOptions)
    good = TrainingOptions(run_dir="run", dataset="shapes", resolution=16, ratio=1.0, metrics=["fid"])
    good.validate()
    for f in dataclasses.fields(TrainingOptions):
        hint = hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        bad = {float: [float("nan"), float("inf"), "1"], int: [1.5, True, "1"], bool: ["no", 1],
               str: [3]}.get(base, [7])  # lists and tuples
        for value in bad:
            with pytest.raises(UserError) as info:
                dataclasses.replace(good, **{f.name: value}).validate()
            assert "\n" not in str(info.value) and label_of(f) in str(info.value), (f.name, value)


# ------------------------------------------------------------------- the whole command, in-process and as a process
@pytest.mark.parametrize("argv,flag", [
    (["--g-lr", "nan"], "--g-lr"), (["--d-lr", "inf"], "--d-lr"), (["--total-kimg", "nan"], "--total-kimg"),
    (["--seed", "-1"], "--seed"), (["--network-snapshot-ticks", "0"], "--network-snapshot-ticks"),
    (["--img-snapshot-ticks", "0"], "--img-snapshot-ticks"), (["--metrics", "bogus"], "--metrics"),
    (["--num-heads", "3"], "--num-heads"), (["--num-heads", "16"], "--num-heads"),
    (["--train-images-num", "0"], "--train-images-num"), (["--style-mixing", "nan"], "--style-mixing"),
    (["--pos-dim", "6"], "--pos-dim"), (["--ema-rampup", "inf"], "--ema-rampup"),
    (["--pretrained-pkl", "missing.pkl"], "--pretrained-pkl"),
    (["--pretrained-pkl", "gdrive:no.pkl"], "--pretrained-pkl"),
])
def test_bad_option_is_refused_before_the_run_dir(argv, flag, data_dir, tmp_path, no_training):
    results = tmp_path / "results"
    with pytest.raises(UserError) as info:
        run_network.main([*FLAGS, "--data-dir", data_dir, "--result-dir", str(results), *argv])
    assert "\n" not in str(info.value) and flag in str(info.value), str(info.value)
    assert not results.exists()


def test_num_heads_names_the_widths_and_the_counts_that_fit(data_dir, tmp_path, no_training):
    with pytest.raises(UserError, match=r"^--num-heads 3: must divide every attention width of G \(8, 16\); pass "
                                        r"one of 1, 2, 4, 8$"):
        run_network.main([*FLAGS, "--data-dir", data_dir, "--result-dir", str(tmp_path), "--num-heads", "3"])


def test_describing_the_networks_checks_the_architecture_too():
    with pytest.raises(UserError, match=r"^--num-heads 3: must divide every attention width of G"):
        run_network.main(["--ganformer-default", "--resolution", "16", "--channel-max", "16", "--num-heads", "3"])


@pytest.mark.parametrize("argv,flag", [(["--g-lr", "nan"], "--g-lr"), (["--metrics", "bogus"], "--metrics"),
                                       (["--num-heads", "3"], "--num-heads"), (["--seed", "-1"], "--seed"),
                                       (["--network-snapshot-ticks", "0"], "--network-snapshot-ticks"),
                                       (["--total-kimg", "nan"], "--total-kimg")])
def test_bad_option_as_a_process_is_one_line_exit_2(argv, flag, data_dir, tmp_path):
    res = run_cli([*FLAGS, "--data-dir", data_dir, "--result-dir", str(tmp_path / "results"), *argv],
                  cwd=str(tmp_path), timeout=300)
    lines = _error_lines(res.stderr)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag}"), res.stderr
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- 15. resume with a changed architecture flag
def _record_run(data_dir, results):
    """Writes exp-000/training_options.json as --train does (without training)."""
    cmd = cli_args.parse_command_line([*FLAGS, "--data-dir", data_dir, "--result-dir", results])
    plan = run_network.prepare_training(cmd, launch, launch.make_strategy(cmd))
    os.makedirs(plan["opts"].run_dir)
    write_json_atomic(os.path.join(plan["opts"].run_dir, launch.OPTIONS_FILE), plan["record"].to_json())
    return plan["opts"].run_dir


def _snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("argv,setting", [
    (["--integration", "add"], "G.attention.integration 'mul' -> 'add'"),
    (["--normalize", "none"], "G.attention.norm 'layer' -> None"),
    (["--num-heads", "2"], "G.attention.num_heads 1 -> 2"),
    (["--kmeans", "false"], "G.attention.kmeans True -> False"),
    (["--use-pos", "false"], "G.attention.use_pos True -> False"),
    (["--integration", "both"], "G.attention.integration 'mul' -> 'both'"),
])
def test_resume_with_a_changed_architecture_is_one_line_and_writes_nothing(argv, setting, data_dir, tmp_path,
                                                                           capsys, no_training):
    run = _record_run(data_dir, str(tmp_path))
    before = _snapshot(run)
    capsys.readouterr()
    with pytest.raises(UserError) as info:
        run_network.main([*FLAGS, "--data-dir", data_dir, "--result-dir", str(tmp_path), *argv])
    message = str(info.value)
    assert "\n" not in message and "architecture differs" in message and setting in message, message
    assert "--restart" in message
    assert "Resume:" not in capsys.readouterr().out  # the refusal is the one line, not a list of changes before it
    assert _snapshot(run) == before and sorted(os.listdir(tmp_path)) == ["exp-000"]


def test_resume_refusal_as_a_process(data_dir, tmp_path):
    run = _record_run(data_dir, str(tmp_path))
    before = _snapshot(run)
    res = run_cli([*FLAGS, "--data-dir", data_dir, "--result-dir", str(tmp_path), "--integration", "both"],
                  cwd=str(tmp_path), timeout=300)
    lines = _error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1 and "architecture differs" in lines[0], res.stderr[-2000:]
    assert "Resume:" not in res.stdout
    assert _snapshot(run) == before and sorted(os.listdir(tmp_path)) == ["exp-000"]


def test_reload_of_a_tampered_record_is_refused_before_anything_is_written(data_dir, tmp_path, no_training):
    run = _record_run(data_dir, str(tmp_path))
    path = os.path.join(run, launch.OPTIONS_FILE)
    record = json.load(open(path))
    record["training"]["g_lr"] = float("nan")  # json writes NaN, and reads it back
    with open(path, "w") as f:
        json.dump(record, f)
    before = _snapshot(run)
    with pytest.raises(UserError, match=r"^--g-lr nan: must be a finite number > 0$"):
        run_network.main([*FLAGS, "--data-dir", data_dir, "--result-dir", str(tmp_path), "--reload"])
    assert _snapshot(run) == before
