"""Time to first step: per training phase, Python tracing, compilation and first-call seconds, with and without XLA.

Usage: python benchmarks/bench_startup.py [--configs quickstart quickstart64 full32 full256]
                                          [--xla off off-serial on serial]
                                          [--out benchmarks/results/startup.json] [--xla-cache DIR] [--repeats 1]

Every (config, XLA) case runs in a fresh Python process, as a training run would. The process builds the networks,
optimizers and `training.steps.TrainingSteps` exactly as `run_network.py --train` does (the options come from the
command line's own parser, presets and defaults), then runs the phases of minibatch 0 in the training loop's
order: G main, G apply, G reg, G apply, D main, D apply, D reg, D apply, EMA. For each phase it reports

- trace: `get_concrete_function` seconds (Python tracing of the phase and its nested XLA function);
- first: seconds of the first call after tracing (graph optimization, XLA compilation and one execution);
- steady: seconds of a later call with the same arguments (the execution alone; median of `--repeats`);
- compile: first - steady (everything the first call pays once);
- xla: seconds TensorFlow itself reports for XLA compilation ("Compilation of XLA executable time", read from its
  log; it covers lowering the graph to HLO, HLO optimization and code generation); compile - xla is then graph
  optimization and the rest;
- ops: nodes of the phase's graph and of every function it calls (a measure of what tracing builds);
- cpu: the process's CPU seconds (all threads) of trace, first and steady as well, in the JSON; trace is
  single-threaded Python, so its CPU seconds are what it takes on an idle machine even when others share it.

`--xla`: `on` (XLA as the training loop runs it: the gradient phases are traced first, then compiled side by side,
one thread each, by `TrainingSteps.compile`; its wall time is the row `first calls (side by side)`), `serial` (XLA,
each phase compiled at its first call, as up to commit 99560b0), `off` (no XLA, as the training loop runs it: traced
first, then the gradient phases' first calls side by side, as `on`), `off-serial` (no XLA, each phase optimized at its
first call; what `off` measured in the records made before the side-by-side first calls without XLA).

`first step` = import + build + trace + first of every phase minibatch 0 runs (G reg only with `--pl-weight` > 0,
which no config here sets: its row is measured but not counted). `--xla-cache DIR` runs the children with
TensorFlow's persistent XLA cache (`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR`): run twice to see a
cold and a warm cache.

Configs (full-size configs use small batches so that the one execution in `first` stays short):
  quickstart    README command 1's network and batch: --ganformer-default with the CLEVR preset's k = 8 latents
                of 128 dims, no latent self-attention, plain convs (--style false), --channel-max 32, batch 16, 32x32
  quickstart64  the earlier quickstart (records up to commit 99560b0 call it `quickstart`): --ganformer-default
                --channel-max 64, batch 16, 32x32
  full32        --ganformer-default (ffhq preset, channels up to 512), 32x32, batch 8
  full256       --ganformer-default (ffhq preset, channels up to 512), 256x256, batch 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (run_network.py flags, resolution)
CONFIGS: dict[str, tuple[list[str], int]] = {
    "quickstart": (["--ganformer-default", "--dataset", "shapes", "--components-num", "8", "--latent-size", "128",
                    "--mapping-ltnt2ltnt", "false", "--style", "false", "--channel-max", "32", "--batch-size", "16",
                    "--batch-gpu", "16", "--gamma", "auto"], 32),
    "quickstart64": (["--ganformer-default", "--dataset", "shapes", "--channel-max", "64", "--batch-size", "16",
                      "--batch-gpu", "16"], 32),
    "full32": (["--ganformer-default", "--dataset", "ffhq", "--batch-size", "8", "--batch-gpu", "8"], 32),
    "full256": (["--ganformer-default", "--dataset", "ffhq", "--batch-size", "2", "--batch-gpu", "2"], 256),
}
MODES = {"off": "no XLA as the training loop runs it: the gradient phases traced, then first-called side by side",
         "off-serial": "no XLA, each phase optimized at its first call (earlier records' `off`)",
         "on": "XLA as the training loop runs it: the gradient phases traced, then compiled side by side",
         "serial": "XLA, each phase compiled at its first call (up to commit 99560b0)"}
PHASES = ("G main", "G apply", "G reg", "G apply (reg)", "D main", "D apply", "D reg", "D apply (reg)", "EMA")
MARKER = "@@bench_startup phase "
_XLA_LINE = re.compile(r"Compilation of XLA executable time: .*?\((\d+) us\)")


# ----------------------------------------------------------------------------------------------- child process
def build_steps(config: str, xla: bool) -> tuple[Any, Any, int]:
    """Builds G, D, Gs, optimizers and `TrainingSteps` for `config` as `run_network.py --train` would.

    Returns:
        (steps, uint8 reals `[batch, res, res, 3]`, resolution).
    """
    import numpy as np
    import tensorflow as tf

    from training.cli import launch
    from training.formats.checkpoint import Progress
    from training.cli.flags import parse_command_line
    from training.networks.discriminator import Discriminator
    from training.networks.generator import Generator
    from training.optimizer import Adam
    from training.presets import configs_from_options
    from training.steps import TrainingSteps

    flags, res = CONFIGS[config]
    args = parse_command_line(["--train", *flags, "--xla", "true" if xla else "false", "--metrics", "none"])
    dataset = SimpleNamespace(resolution=res, ratio=None, channels=3, label_dim=0)
    g_cfg, d_cfg = configs_from_options(launch.model_options(args), res)
    opts = launch.training_options(args, dataset, tempfile.mkdtemp(prefix="bench-startup-")).validate()
    G, D, Gs = Generator(g_cfg, seed=opts.seed), Discriminator(d_cfg, seed=opts.seed + 1), Generator(g_cfg, seed=opts.seed)
    for src, dst in zip(G.variables, Gs.variables):
        dst.assign(src)
    g_opt = Adam(G.trainable_variables, opts.g_lr, reg_interval=opts.g_reg_interval, name="g_opt")
    d_opt = Adam(D.trainable_variables, opts.d_lr, reg_interval=opts.d_reg_interval, name="d_opt")
    steps = TrainingSteps(G, D, Gs, g_opt, d_opt, opts, tf.distribute.get_strategy(), Progress().pl_mean)
    reals = tf.constant(np.random.default_rng(0).integers(0, 256, (opts.batch_size, res, res, 3)), tf.uint8)
    return steps, reals, res


def phase_calls(steps: Any, reals: Any) -> tuple[list[tuple[str, Any, Callable[[], tuple], bool]], dict[str, Any]]:
    """The phases of minibatch 0 in the training loop's order, as (name, tf.function, args thunk, runs at step 0),
    and the dict the gradient phases' results go into (the apply phases read it).

    The arguments are those `TrainingSteps.minibatch(reals, None, step=0)` passes; each apply phase takes the
    gradients of the phase before it (the thunk reads them when called).
    """
    import tensorflow as tf

    opts = steps.opts
    K, d = steps.G.latent_shape
    keys = tf.random.experimental.stateless_split(tf.constant([opts.seed, 0], tf.int64), 4)
    z_g = tf.random.stateless_normal([opts.batch_size, K, d], keys[0])
    z_d = tf.random.stateless_normal([opts.batch_size, K, d], keys[1])
    p, r = tf.convert_to_tensor(steps.aug_state.p), tf.constant(0, tf.int32)
    grads: dict[str, Any] = {}
    reg_g = opts.pl_weight > 0
    reg_d = opts.d_reg != "non" and opts.gamma > 0
    return [("G main", steps._g_main, lambda: (z_g, None, p, r, keys[2]), True),
            ("G apply", steps._apply_g, lambda: (grads["G main"],), True),
            ("G reg", steps._g_reg, lambda: (z_g, None, r, keys[2]), reg_g),
            ("G apply (reg)", steps._apply_g, lambda: (grads["G reg"],), reg_g),
            ("D main", steps._d_main, lambda: (z_d, None, reals, p, r, keys[3]), True),
            ("D apply", steps._apply_d, lambda: (grads["D main"],), True),
            ("D reg", steps._d_reg, lambda: (z_d, None, reals, p, r, keys[3]), reg_d),
            ("D apply (reg)", steps._apply_d, lambda: (grads["D reg"],), reg_d),
            ("EMA", steps._ema, lambda: (tf.constant(0.5, tf.float32),), True)], grads


def _sync(out: Any) -> Any:
    """Waits for every tensor in `out` (a phase's result)."""
    import tensorflow as tf
    for t in tf.nest.flatten(out):
        if hasattr(t, "numpy"):
            t.numpy()
    return out


def count_ops(concrete: Any) -> int:
    """Nodes of a concrete function's graph plus those of every function in its library."""
    graph_def = concrete.graph.as_graph_def()
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


GRADIENT_PHASES = ("G main", "G reg", "D main", "D reg")
COMPILE_ROW = "first calls (side by side)"


def _pre_compile(steps: Any, reals: Any, calls: list) -> tuple[dict[str, tuple[float, float, Any]], dict[str, Any]]:
    """What the training loop does before minibatch 0: traces every gradient phase (`TrainingSteps.trace`), then
    makes their first calls (with XLA: compiles them) side by side (`TrainingSteps.compile`).
    Returns {phase: (trace s, trace CPU s, concrete function)} and the compile row."""
    import tensorflow as tf

    traced = {}
    for name, fn, args, _ in calls:
        if name in GRADIENT_PHASES:
            t0, c0 = time.perf_counter(), time.process_time()
            concrete = fn.get_concrete_function(*args())
            traced[name] = (time.perf_counter() - t0, time.process_time() - c0, concrete)
    print(MARKER + COMPILE_ROW, file=sys.stderr, flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    steps.compile(tf.TensorSpec.from_tensor(reals), None)
    row = {"phase": COMPILE_ROW, "runs_at_step0": True, "trace": 0.0, "trace_cpu": 0.0, "ops": 0,
           "first": time.perf_counter() - t0, "first_cpu": time.process_time() - c0, "steady": 0.0, "steady_cpu": 0.0}
    return traced, row


def measure_phases(steps: Any, reals: Any, repeats: int, side_by_side: bool = False) -> list[dict[str, Any]]:
    """Trace, first-call and steady seconds and op counts of every phase (see the module docstring). With
    `side_by_side`, the gradient phases are traced first and first-called at once, as the training loop does."""
    calls, grads = phase_calls(steps, reals)
    traced, rows = {}, []
    if side_by_side:
        traced, compile_row = _pre_compile(steps, reals, calls)
        rows.append(compile_row)
    for name, fn, args, runs in calls:
        print(MARKER + name, file=sys.stderr, flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        concrete = fn.get_concrete_function(*args())
        t1, c1 = time.perf_counter(), time.process_time()
        if name in traced:
            t0, c0, concrete = t1 - traced[name][0], c1 - traced[name][1], traced[name][2]
        out = _sync(fn(*args()))
        t2, c2 = time.perf_counter(), time.process_time()
        if name in GRADIENT_PHASES:
            grads[name] = out[0]
        rows.append({"phase": name, "runs_at_step0": runs, "trace": t1 - t0, "first": t2 - t1,
                     "trace_cpu": c1 - c0, "first_cpu": c2 - c1, "ops": count_ops(concrete)})
    print(MARKER + "steady", file=sys.stderr, flush=True)
    steady: dict[str, list[tuple[float, float]]] = {name: [] for name in PHASES}
    for _ in range(repeats):
        for name, fn, args, _ in calls:
            t0, c0 = time.perf_counter(), time.process_time()
            _sync(fn(*args()))
            steady[name].append((time.perf_counter() - t0, time.process_time() - c0))
    for row in rows:
        if row["phase"] in steady:
            row["steady"] = statistics.median(t for t, _ in steady[row["phase"]])
            row["steady_cpu"] = statistics.median(c for _, c in steady[row["phase"]])
        row["compile"] = max(row["first"] - row["steady"], 0.0)
    return rows


def child_main(config: str, mode: str, repeats: int, result_file: str, started: float) -> None:
    """Measures one case (`mode`: see MODES) in this process; writes its record to `result_file`."""
    import tensorflow as tf  # noqa: F401  (timed: part of every run's start-up)

    import training.steps  # noqa: F401
    imported = time.time()
    t1 = time.perf_counter()
    xla = mode in ("on", "serial")
    steps, reals, res = build_steps(config, xla)
    t2 = time.perf_counter()
    rows = measure_phases(steps, reals, repeats, side_by_side=mode in ("on", "off"))
    record = {"config": config, "xla": xla, "mode": mode, "resolution": res, "batch": steps.opts.batch_size,
              "import": imported - started, "build": t2 - t1, "phases": rows}
    with open(result_file, "w") as f:
        json.dump(record, f)


# ---------------------------------------------------------------------------------------------- parent process
def xla_seconds_per_phase(log: str) -> dict[str, float]:
    """Sums TensorFlow's logged XLA compilation times between the child's phase markers."""
    out: dict[str, float] = {}
    phase: Optional[str] = None
    for line in log.splitlines():
        if line.startswith(MARKER):
            phase = line[len(MARKER):].strip()
        elif phase is not None:
            m = _XLA_LINE.search(line)
            if m:
                out[phase] = out.get(phase, 0.0) + int(m.group(1)) / 1e6
    return out


def first_step_seconds(record: dict[str, Any]) -> float:
    """import + build + trace + first call of the phases that minibatch 0 of the config runs."""
    return record["import"] + record["build"] + sum(r["trace"] + r["first"] for r in record["phases"]
                                                    if r["runs_at_step0"])


def run_case(config: str, mode: str, repeats: int, xla_cache: Optional[str]) -> dict[str, Any]:
    """Runs one case in a fresh process; returns its record with the XLA compile seconds and the total."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", TF_CPP_VMODULE="device_compiler=1")
    if xla_cache:
        env["TF_XLA_FLAGS"] = (env.get("TF_XLA_FLAGS", "") + f" --tf_xla_persistent_cache_directory={xla_cache}").strip()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        result_file, log_file = os.path.join(tmp, "result.json"), os.path.join(tmp, "stderr.txt")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", config, "--xla", mode,
               "--repeats", str(repeats), "--result-file", result_file, "--started", repr(time.time())]
        with open(log_file, "w") as log:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        with open(log_file) as log:
            text = log.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{config} xla={mode} failed ({proc.returncode}):\n{text[-3000:]}")
        with open(result_file) as f:
            record = json.load(f)
    xla_times = xla_seconds_per_phase(text)
    for row in record["phases"]:
        row["xla"] = xla_times.get(row["phase"], 0.0)
    record["first_step"] = first_step_seconds(record)
    record["xla_cache"] = xla_cache
    return record


def format_table(records: list[dict[str, Any]]) -> str:
    """One line per (case, phase) with trace / compile / xla / first / steady seconds and op counts."""
    head = (f"{'config':>12} {'xla':>6} {'phase':>13} {'trace s':>8} {'(cpu s)':>8} {'compile s':>9} {'(xla s)':>8} "
            f"{'first s':>8} {'steady s':>8} {'ops':>7}")
    lines = [head, "-" * len(head)]
    for rec in records:
        tag = (rec["config"], rec.get("mode", "on" if rec["xla"] else "off"))
        lines.append(f"{tag[0]:>12} {tag[1]:>6} {'import+build':>13} {rec['import'] + rec['build']:>8.1f}")
        for r in rec["phases"]:
            mark = "" if r["runs_at_step0"] else "*"
            lines.append(f"{tag[0]:>12} {tag[1]:>6} {r['phase'] + mark:>13} {r['trace']:>8.2f} {r['trace_cpu']:>8.2f} {r['compile']:>9.2f} "
                         f"{r['xla']:>8.2f} {r['first']:>8.2f} {r['steady']:>8.2f} {r['ops']:>7}")
        lines.append(f"{tag[0]:>12} {tag[1]:>6} {'FIRST STEP':>13} {rec['first_step']:>8.1f}  (import + build + "
                     f"trace + first of the phases minibatch 0 runs)")
    lines.append("* measured, but not run in minibatch 0 of this config (not counted in FIRST STEP)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--xla", nargs="+", choices=list(MODES), default=["off", "on"],
                        help="; ".join(f"{k}: {v}" for k, v in MODES.items()))
    parser.add_argument("--repeats", type=int, default=1, help="steady-state calls per phase (median)")
    parser.add_argument("--out", default=None, help="JSON output (default benchmarks/results/startup.json)")
    parser.add_argument("--xla-cache", default=None, help="persistent XLA cache directory for the children")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.xla[0], args.repeats, args.result_file, args.started or time.time())
        return
    from tqdm import tqdm
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "startup.json")
    cases = [(c, x) for c in args.configs for x in args.xla]
    records = []
    with tqdm(total=len(cases), unit="case", desc="startup") as bar:
        for config, mode in cases:
            bar.set_postfix_str(f"{config} xla={mode}")
            records.append(run_case(config, mode, args.repeats, args.xla_cache))
            bar.update(1)
    print(format_table(records))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"command": " ".join(sys.argv), "cpu_threads": os.cpu_count(), "records": records}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
