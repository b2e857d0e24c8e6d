"""`benchmarks/bench_startup.py`'s bookkeeping: XLA compile times from TensorFlow's log are attributed to the phase
whose marker precedes them, and the first-step total counts only the phases minibatch 0 runs."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import bench_startup as bench  # noqa: E402


def _xla_line(us: int) -> str:
    return (f"I0000 00:00:1.0  1 device_compiler.h:538] Compilation of XLA executable time: {us / 1e6:.2f} s "
            f"({us} us) (cumulative: 9 s, max: 9 s, #called: 1)")


def test_xla_seconds_go_to_the_phase_whose_marker_precedes_them():
    log = "\n".join([_xla_line(5_000_000),  # before any marker: not a phase's
                     bench.MARKER + "G main", "noise", _xla_line(2_500_000), _xla_line(500_000),
                     bench.MARKER + "G apply",
                     bench.MARKER + "D main", _xla_line(1_250_000),
                     bench.MARKER + "steady", _xla_line(7_000_000)])
    got = bench.xla_seconds_per_phase(log)
    assert got == {"G main": 3.0, "D main": 1.25, "steady": 7.0}


def test_first_step_counts_only_the_phases_minibatch_0_runs():
    phases = [{"phase": "G main", "runs_at_step0": True, "trace": 2.0, "first": 3.0},
              {"phase": "G reg", "runs_at_step0": False, "trace": 100.0, "first": 100.0},
              {"phase": "EMA", "runs_at_step0": True, "trace": 0.5, "first": 0.25}]
    record = {"import": 1.0, "build": 0.5, "phases": phases}
    assert bench.first_step_seconds(record) == 1.0 + 0.5 + 2.0 + 3.0 + 0.5 + 0.25


def test_table_marks_phases_not_run_and_prints_the_total():
    row = {"phase": "G reg", "runs_at_step0": False, "trace": 1.0, "trace_cpu": 1.0, "compile": 2.0, "xla": 0.0,
           "first": 3.0, "steady": 1.0, "ops": 10}
    record = {"config": "quickstart", "xla": True, "import": 1.0, "build": 1.0, "phases": [row], "first_step": 2.0}
    table = bench.format_table([record])
    assert "G reg*" in table and "FIRST STEP" in table and "quickstart" in table


def _readme_training_command() -> list[str]:
    """The `run_network.py --train` part of README command 1, as words."""
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(readme) as f:
        line = next(ln for ln in f if "run_network.py --train" in ln)
    words = line[line.index("run_network.py --train"):].split("&&")[0].split()
    return words[1:]


def test_the_quickstart_config_is_readme_command_1s_network_and_batch():
    """Every flag (and value) of the benchmark's `quickstart` config is in README command 1, and every flag of the
    command that shapes the networks or the step is in the config (the rest: data, length, metrics, XLA)."""
    readme = _readme_training_command()
    flags, res = bench.CONFIGS["quickstart"]
    pairs = dict(zip(flags[1::2], flags[2::2]))
    assert flags[0] in readme
    for flag, value in pairs.items():
        i = readme.index(flag)
        assert readme[i + 1] == value, flag
    not_network = {"--train", "--dataset", "--total-kimg", "--kimg-per-tick", "--metrics", "--xla"}
    readme_flags = {w for w in readme if w.startswith("--")} - not_network - {flags[0]}
    assert readme_flags == set(pairs) - {"--dataset"}
    assert res == 32
