"""An option is declared once, on its dataclass field: a new field reaches the command line, its checks, the run
record and the resume check with no other edit."""

import dataclasses
import json
import types
from dataclasses import dataclass

import pytest

from dnnlib.options import ARCHITECTURE, RUNTIME, UNSET, Range, changes, option
from dnnlib.util import UserError
from training.cli import launch
from training.cli.flags import build_parser, check_flags, parse_command_line
from training.config import DiscriminatorConfig, GeneratorConfig, to_dict
from training.options import TrainingOptions

DATA = types.SimpleNamespace(resolution=16, ratio=1.0)
BASE = ["--train", "--dataset", "shapes", "--metrics", "none"]


@dataclass
class WithKnob(TrainingOptions):
    """The training options plus one new field, declared as every option is."""

    knob: int = option(3, help="a new knob", range=Range(1, 9), group="training", resume=ARCHITECTURE)
    dial: float = option(0.5, help="a new runtime dial", range=Range(0.0, 1.0), group="training", resume=RUNTIME)


def _record(opts) -> dict:
    return {"training": opts.to_dict(), "G": to_dict(GeneratorConfig()), "D": to_dict(DiscriminatorConfig())}


def test_a_new_field_becomes_a_flag_with_its_help_and_default():
    text = build_parser(WithKnob).format_help()
    assert "--knob KNOB" in text and "a new knob (default: 3)" in " ".join(text.split())
    assert "--knob" not in build_parser().format_help()
    cmd = parse_command_line([*BASE, "--knob", "5"], training_cls=WithKnob)
    assert cmd.training == {"dataset": "shapes", "metrics": [], "knob": 5}
    assert parse_command_line(BASE, training_cls=WithKnob).options.knob == 3  # not passed: the declared default


def test_a_new_field_is_checked_against_its_declared_range_and_type():
    for bad in ("0", "10"):
        with pytest.raises(UserError, match=rf"^--knob {bad}: must be an integer in \[1, 9\]$"):
            check_flags(parse_command_line([*BASE, "--knob", bad], training_cls=WithKnob))
    with pytest.raises(UserError, match="--knob"):
        parse_command_line([*BASE, "--knob", "x"], training_cls=WithKnob)  # argparse: invalid int value
    opts = launch.training_options(parse_command_line(BASE, training_cls=WithKnob), DATA, "run")
    with pytest.raises(UserError, match=r"^--dial 2\.0: must be a finite number in \[0, 1\]$"):
        dataclasses.replace(opts, dial=2.0).validate()


def test_a_new_field_reaches_the_run_record():
    opts = launch.training_options(parse_command_line([*BASE, "--knob", "7"], training_cls=WithKnob), DATA, "run")
    assert isinstance(opts, WithKnob) and opts.validate() is opts
    assert json.loads(json.dumps(opts.to_dict()))["knob"] == 7


def test_a_new_field_takes_part_in_the_resume_check(tmp_path, capsys):
    old = launch.training_options(parse_command_line([*BASE, "--knob", "7"], training_cls=WithKnob), DATA, "run")
    (tmp_path / launch.OPTIONS_FILE).write_text(json.dumps(_record(old)))
    same_arch = dataclasses.replace(old, dial=0.25, total_kimg=5.0)
    launch.check_resume(str(tmp_path), _record(same_arch), WithKnob)  # runtime changes: printed, allowed
    out = capsys.readouterr().out
    assert "Resume: training.dial changed: 0.5 -> 0.25" in out and "training.total_kimg" in out
    with pytest.raises(UserError, match=r"the architecture differs from the run's \(training\.knob 7 -> 4\)"):
        launch.check_resume(str(tmp_path), _record(dataclasses.replace(old, knob=4)), WithKnob)
    assert [c.path for c in changes(WithKnob, old.to_dict(), dataclasses.replace(old, run_dir="x").to_dict())] == []


def test_flags_not_passed_are_unset_not_defaults():
    """The parser never fills in defaults, so "passed" is known without reading sys.argv."""
    ns = build_parser().parse_args([])
    assert all(getattr(ns, f.name) is UNSET for f in dataclasses.fields(TrainingOptions) if hasattr(ns, f.name))
