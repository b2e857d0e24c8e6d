"""Training speed and memory: seconds per step, img/s, achieved GFLOP/s and peak memory of a full training step
(G main + D main + the R1 step amortized over its 16-minibatch interval), default GANformer vs StyleGAN2, in each
precision asked for.

Usage: python benchmarks/bench_training.py [--resolutions 32 64] [--batch 8] [--steps 4] [--no-xla]
                                           [--precision fp32,fp16,bf16] [--presets ganformer-ffhq stylegan2]
                                           [--channel-max N] [--aug noaug,ada] [--json out.json]

Every case (preset, resolution, precision) runs in a fresh process of its own (`bench_training_case.py`), as a
training run would: it builds its networks, compiles both kinds of step, then waits. The cases of one resolution
and precision are built one after the other and then timed in alternation, step by step, so a change in machine
load affects them alike. FLOPs come from TensorFlow's graph profiler on one plain graph of the same computation
(forward and backward, float operations of every op), so "achieved GFLOP/s" = counted FLOPs / measured seconds.

Augmentation. `--aug noaug,ada` times each preset with each `--aug` mode of `run_network.py` (default: noaug) and
prints, per preset, the step time of each mode relative to noaug: what augmenting every image D sees (G main, D
main, R1) costs. The augmentation graph is branchless (every transform is computed, then kept with probability p),
so the cost does not depend on p.

Memory. "peak RSS" is the case process's own high-water resident set (`VmHWM`, read after its last step): from
the import of TensorFlow through building, compiling and running the steps. Each case has its own process because
one process's peak over several cases says nothing about any of them. On a GPU, "GPU peak" is TensorFlow's peak
allocation on GPU:0. `--json` also records the resident set after each stage of each case. Peak RSS does not
depend on how busy the machine is; the times do.

Precision. `--precision fp32,fp16,bf16` times each (the top 4 resolutions of G and D in the reduced dtype,
activations clamped to ±256, as `run_network.py --precision`). GPU SPEEDUPS ARE NOT MEASURED HERE: this benchmark
has only been run on CPUs, whose float16 arithmetic is not faster than float32 (often slower). On a GPU machine run
    python benchmarks/bench_training.py --resolutions 256 --batch 32 --precision fp32,fp16,bf16
to measure them there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_training_case import MARKER, R1_INTERVAL  # noqa: E402  (no TensorFlow; puts the repo on sys.path)
from training.augment.modes import AUG_MODES  # noqa: E402

CASE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_training_case.py")
PRECISIONS = ("fp32", "fp16", "bf16")
GPU_NOTE = ("GPU speedups of fp16/bf16 are not measured on this CPU machine; on a GPU run: python "
            "benchmarks/bench_training.py --resolutions 256 --batch 32 --precision fp32,fp16,bf16")


class CaseProcess:
    """A case running in its own process (see `bench_training_case.py` for the protocol).

    Args:
        spec: The case: `preset`, `res`, `batch`, `xla`, `precision`, `overrides`, `flops`.
        stderr: Where the process's stderr goes (a file object), None: inherited.
    """

    def __init__(self, spec: dict[str, Any], stderr: Any = None) -> None:
        self.spec = spec
        self.proc = subprocess.Popen([sys.executable, CASE_SCRIPT, json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr, text=True)

    def _receive(self) -> dict[str, Any]:
        for line in self.proc.stdout:
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER):])
        self.proc.wait()
        raise RuntimeError(f"case {self.spec} ended with exit code {self.proc.returncode} before answering")

    def _ask(self, command: str) -> dict[str, Any]:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._receive()

    def wait_ready(self) -> None:
        """Blocks until the case has built and compiled its steps."""
        self._receive()

    def step(self, step_idx: int) -> float:
        """Seconds of minibatch `step_idx` in the case process."""
        return float(self._ask(f"step {step_idx}")["seconds"])

    def finish(self) -> dict[str, Any]:
        """Ends the case; returns its memory record and FLOPs."""
        record = self._ask("quit")
        self.proc.wait()
        return record

    def kill(self) -> None:
        """Ends the process if it still runs (after an error)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_group(specs: Sequence[dict[str, Any]], steps: int, stderr: Any = None) -> list[dict[str, Any]]:
    """Builds each case in its own process (one after the other), times them in alternation, ends them.

    Args:
        specs: The cases.
        steps: Plain steps timed per case (and max(1, steps // 2) steps with R1).
        stderr: Where the case processes' stderr goes.

    Returns:
        One record per case: its spec, `plain` / `r1` (median seconds per plain / R1 step), `amortized` (seconds per
        step with R1 amortized over 16), `flops`, `peak_rss_mib`, `device_peak_mib`, `memory` (per stage).
    """
    cases: list[CaseProcess] = []
    try:
        for spec in specs:
            cases.append(CaseProcess(spec, stderr))
            cases[-1].wait_ready()
        plain: list[list[float]] = [[] for _ in cases]
        with_r1: list[list[float]] = [[] for _ in cases]
        for i in range(steps):
            for case, record in zip(cases, plain):
                record.append(case.step(1 + i))
        for i in range(max(1, steps // 2)):
            for case, record in zip(cases, with_r1):
                record.append(case.step(R1_INTERVAL * (i + 2)))
        out = []
        for case, p, r in zip(cases, plain, with_r1):
            rec = {**case.spec, "plain": statistics.median(p), "r1": statistics.median(r), **case.finish()}
            rec["amortized"] = (rec["plain"] * (R1_INTERVAL - 1) + rec["r1"]) / R1_INTERVAL
            rec.pop("event", None)
            out.append(rec)
        return out
    finally:
        for case in cases:
            case.kill()


def parse_precisions(text: str) -> list[str]:
    """`fp32,fp16` -> ["fp32", "fp16"]; raises `argparse.ArgumentTypeError` for anything else."""
    out = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in out if p not in PRECISIONS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of {', '.join(PRECISIONS)}")
    return out


def parse_augs(text: str) -> list[str]:
    """`noaug,ada` -> ["noaug", "ada"]; raises `argparse.ArgumentTypeError` for anything else."""
    out = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in out if a not in AUG_MODES]
    if bad or not out or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of distinct {', '.join(AUG_MODES)}")
    return out


def _mib(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def format_rows(records: Sequence[dict[str, Any]]) -> list[str]:
    """One table line per case record of `run_group`."""
    lines = []
    for r in records:
        am = r["amortized"]
        lines.append(f"{r['preset']:>16} {r['res']:>4} {r['precision']:>5} {r.get('aug', 'noaug'):>11} "
                     f"{r['plain']:>8.2f} {r['r1']:>10.2f} "
                     f"{am:>12.2f} {r['batch'] / am:>7.2f} {r['flops'] / 1e12:>11.3f} {r['flops'] / am / 1e9:>8.1f} "
                     f"{_mib(r['peak_rss_mib']):>13} {_mib(r['device_peak_mib']):>13}")
    return lines


HEADER = (f"{'preset':>16} {'res':>4} {'prec':>5} {'aug':>11} {'s/step':>8} {'s/R1 step':>10} {'amortized s':>12} "
          f"{'img/s':>7} {'TFLOP/step':>11} {'GFLOP/s':>8} {'peak RSS MiB':>13} {'GPU peak MiB':>13}")


def run_cases(resolutions: Sequence[int], precisions: Sequence[str], presets: Sequence[str], batch: int, steps: int,
              xla: bool, overrides: Optional[dict[str, Any]] = None, flops: bool = True,
              stderr: Any = None, augs: Sequence[str] = ("noaug",)) -> list[dict[str, Any]]:
    """Every (resolution, precision) group of `presets` x `augs`, each case in a process of its own (see
    `run_group`), printing the table lines of each group as it ends, then its ratios (`ratio_lines`).

    Returns:
        The records of `run_group`, resolution by resolution, precision by precision, in the order of `presets`
        (and, within a preset, of `augs`).
    """
    records = []
    for res in resolutions:
        for precision in precisions:
            specs = [dict(preset=p, res=res, batch=batch, xla=xla, precision=precision, overrides=overrides or {},
                          flops=flops, aug=a) for p in presets for a in augs]
            group = run_group(specs, steps, stderr)
            records += group
            print("\n".join(format_rows(group) + ratio_lines(group)), flush=True)
    return records


def ratio_lines(group: Sequence[dict[str, Any]]) -> list[str]:
    """The comparisons printed under a group's rows: each augmentation mode's amortized step time relative to the
    same preset's noaug step, and the first preset's relative to the second's (without augmentation)."""
    lines = []
    plain = {r["preset"]: r for r in group if r.get("aug", "noaug") == "noaug"}
    for r in group:
        base = plain.get(r["preset"])
        if r.get("aug", "noaug") != "noaug" and base is not None:
            ratio = r["amortized"] / base["amortized"]
            lines.append(f"{r['preset']} at {r['res']} {r['precision']}: --aug {r['aug']} / noaug = {ratio:.3f} "
                         f"({100 * (ratio - 1):+.1f}%)")
    names = list(plain)
    if len(names) == 2:
        a, b = plain[names[0]], plain[names[1]]
        lines.append(f"{a['preset']}/{b['preset']} at {a['res']} {a['precision']}: "
                     f"{a['amortized'] / b['amortized']:.2f}")
    return lines


def preamble(batch: int, xla: bool, precisions: Sequence[str]) -> list[str]:
    """The lines printed before the table (with the GPU note when a reduced precision is timed)."""
    lines = [f"{os.cpu_count()} CPU threads, batch {batch}, XLA {'on' if xla else 'off'}, "
             f"precision {','.join(precisions)}"]
    if any(p != "fp32" for p in precisions):
        lines.append(GPU_NOTE)
    return lines + [HEADER]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--precision", type=parse_precisions, default=["fp32"],
                        help="comma-separated precisions to time: fp32, fp16, bf16 (default fp32)")
    parser.add_argument("--presets", nargs="+", default=["ganformer-ffhq", "stylegan2"])
    parser.add_argument("--channel-max", type=int, default=None, help="cap the channels (default: the preset's)")
    parser.add_argument("--aug", type=parse_augs, default=["noaug"],
                        help="comma-separated --aug modes to time per preset, e.g. noaug,ada (default noaug)")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    parser.add_argument("--json", default=None, help="also write every record (with memory per stage) here")
    args = parser.parse_args()
    overrides = {} if args.channel_max is None else {"channel_max": args.channel_max}
    print("\n".join(preamble(args.batch, not args.no_xla, args.precision)), flush=True)
    records = run_cases(args.resolutions, args.precision, args.presets, args.batch, args.steps, not args.no_xla,
                        overrides, not args.no_flops, augs=args.aug)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": " ".join(sys.argv), "cpu_threads": os.cpu_count(), "records": records}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
