"""`benchmarks/bench_training.py`: every case runs in a fresh process that reports its own peak RSS, one record per
precision asked for, and the table and GPU note that go with them."""

from __future__ import annotations

import argparse
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import bench_training as bench  # noqa: E402
from bench_training_case import memory_mib  # noqa: E402


@pytest.mark.slow
def test_each_precision_runs_in_its_own_process_and_reports_its_peak_rss(capfd):
    # The smallest network the presets build: the plain GAN at 8x8 with 8 channels, batch 2, no XLA, no FLOP count.
    records = bench.run_cases([8], ["fp32", "bf16"], ["gan"], batch=2, steps=1, xla=False,
                              overrides={"channel_max": 8}, flops=False)
    assert [r["precision"] for r in records] == ["fp32", "bf16"]
    pids = {r["pid"] for r in records}
    assert len(pids) == 2 and os.getpid() not in pids  # a fresh process per case, not this one
    for r in records:
        stages = [m["stage"] for m in r["memory"]]
        assert stages == ["import", "build", "trace + compile", "first plain step", "first R1 step", "timed steps"]
        # The peak is the case's high-water mark: at least every resident set it passed through, and more than
        # TensorFlow's import alone (building and running the steps allocates).
        assert r["peak_rss_mib"] >= max(m["rss_mib"] for m in r["memory"])
        assert r["peak_rss_mib"] > r["memory"][0]["rss_mib"] > 0
        assert r["device_peak_mib"] is None  # no GPU in the tests
        assert r["plain"] > 0 and r["r1"] > 0 and r["amortized"] > 0
    out = capfd.readouterr().out
    table = [line for line in out.splitlines() if line.strip().startswith("gan ")]
    assert len(table) == 2 and all(f"{r['peak_rss_mib']:,.0f}" in line for r, line in zip(records, table))


def test_memory_of_this_process_reads_proc_status():
    before = memory_mib()
    block = bytearray(64 << 20)  # 64 MiB, touched
    for i in range(0, len(block), 4096):
        block[i] = 1
    after = memory_mib()
    assert after["hwm_mib"] >= after["rss_mib"] >= before["rss_mib"] + 60
    del block


def test_precision_list_parses_and_rejects_unknown_names():
    assert bench.parse_precisions("fp32,fp16,bf16") == ["fp32", "fp16", "bf16"]
    assert bench.parse_precisions(" bf16 ") == ["bf16"]
    for bad in ("fp8", "fp32,int8", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_precisions(bad)


def test_gpu_note_is_printed_only_when_a_reduced_precision_is_timed():
    assert bench.GPU_NOTE not in bench.preamble(8, True, ["fp32"])
    lines = bench.preamble(8, True, ["fp32", "fp16"])
    assert bench.GPU_NOTE in lines
    assert "not measured" in bench.GPU_NOTE and "--precision fp32,fp16,bf16" in bench.GPU_NOTE
    assert lines[-1] == bench.HEADER and "peak RSS" in bench.HEADER


@pytest.mark.slow
def test_aug_modes_are_timed_per_preset_and_compared_with_noaug(capfd):
    records = bench.run_cases([8], ["fp32"], ["gan"], batch=2, steps=1, xla=False, overrides={"channel_max": 8},
                              flops=False, augs=["noaug", "ada"])
    assert [(r["preset"], r["aug"]) for r in records] == [("gan", "noaug"), ("gan", "ada")]
    out = capfd.readouterr().out
    ratio = records[1]["amortized"] / records[0]["amortized"]
    assert f"gan at 8 fp32: --aug ada / noaug = {ratio:.3f}" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("gan ") and ":" not in line]
    assert [row[3] for row in rows] == ["noaug", "ada"]


def test_ratio_lines_compare_each_mode_with_its_presets_noaug_and_the_two_presets():
    rec = lambda preset, aug, am: dict(preset=preset, aug=aug, amortized=am, res=32, precision="fp32")  # noqa: E731
    lines = bench.ratio_lines([rec("a", "noaug", 2.0), rec("a", "ada", 2.2), rec("b", "noaug", 1.0),
                               rec("b", "diffaugment", 1.05)])
    assert lines == ["a at 32 fp32: --aug ada / noaug = 1.100 (+10.0%)",
                     "b at 32 fp32: --aug diffaugment / noaug = 1.050 (+5.0%)",
                     "a/b at 32 fp32: 2.00"]


def test_aug_list_parses_and_rejects_unknown_or_repeated_modes():
    assert bench.parse_augs("noaug, ada") == ["noaug", "ada"]
    for bad in ("adaa", "ada,ada", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_augs(bad)
