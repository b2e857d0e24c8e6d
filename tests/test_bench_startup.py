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
