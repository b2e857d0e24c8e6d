"""One case of `bench_training.py` (a preset at one resolution, batch and precision), run in a process of its own.

The parent (`bench_training.py`) starts this file as `python bench_training_case.py '<spec json>'`. The case builds
G, D, Gs, the optimizers and `training.steps.TrainingSteps`, traces and compiles the gradient phases as the training
loop does before minibatch 0 (`TrainingSteps.trace`, then `compile`: with XLA, side by side), runs both kinds of
step once (plain and with R1), and
answers on stdout, one protocol line each (prefixed with `MARKER`; anything else on stdout is ignored):

- when ready: `{"event": "ready"}`;
- to the stdin line `step N`: `{"seconds": s}`, the wall time of minibatch N (R1 runs when N % 16 == 0);
- to the stdin line `quit`: `{"event": "done", "pid": its process id, "memory": [...], "peak_rss_mib": ...,
  "device_peak_mib": ..., "flops": FLOPs of one step with R1 amortized over 16 minibatches}` and exits. The
  FLOPs are counted after the memory is read (the profiler's extra graph is not part of training).

Memory. Peak RSS is the process's own high-water mark (`VmHWM` of `/proc/self/status`), read after the last step:
the most resident memory this case needed at any moment, from the import of TensorFlow to the end. It is a
property of the case, not of the machine's load. `memory` holds `VmRSS` and `VmHWM` after each stage (import, build,
trace + compile, first plain step, first R1 step, the timed steps) to show where memory goes. (Records made before
commit c416196 compiled the phases one after the other in the first steps: a lower peak with XLA.) On a GPU,
`device_peak_mib` is TensorFlow's peak allocation on GPU:0 (`tf.config.experimental.get_memory_info`), else None.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MARKER = "@@bench_training_case "
R1_INTERVAL = 16  # the D regularization interval of the benchmarked training step


def memory_mib(pid: str = "self") -> dict[str, float]:
    """Resident memory of a process from `/proc/<pid>/status`.

    Args:
        pid: A process id, or `self`.

    Returns:
        `{"rss_mib": VmRSS, "hwm_mib": VmHWM}` in MiB (the current and the peak resident set).
    """
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024.0  # kB -> MiB
    return {"rss_mib": fields["VmRSS"], "hwm_mib": fields["VmHWM"]}


def device_peak_mib() -> Optional[float]:
    """TensorFlow's peak memory allocation on the first GPU in MiB; None without a GPU."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2 ** 20


def count_flops(G: Any, D: Any, batch: int, r1: bool) -> float:
    """Float operations of G main + D main (+ one R1 step) for one minibatch, from TensorFlow's graph profiler."""
    import tensorflow as tf

    from training import loss as losses
    K, d = G.latent_shape
    res = G.resolution

    def step(z, reals):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.generator_loss("logistic_ns", D(G(z, training=True), training=True)))
        g_grads = tape.gradient(loss, G.trainable_variables)
        fakes = G(z, training=True)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.discriminator_loss("logistic", D(reals, training=True),
                                                            D(fakes, training=True)))
        out = [g_grads, tape.gradient(loss, D.trainable_variables)]
        if r1:
            with tf.GradientTape() as tape:
                reg, _ = losses.discriminator_reg("r1", lambda x: D(x, training=True), reals, fakes, 10.0)
            out.append(tape.gradient(tf.reduce_mean(reg), D.trainable_variables))
        return out

    fn = tf.function(step, autograph=False).get_concrete_function(
        tf.TensorSpec([batch, K, d]), tf.TensorSpec([batch, res, res, 3]))
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(fn.graph, options=opts)
    return float(prof.total_float_ops)


def build_case(spec: dict[str, Any], memory: list[dict[str, Any]]) -> tuple[Callable[[int], float],
                                                                            Callable[[], float]]:
    """Builds and compiles the training step of a case; appends the memory after each stage to `memory`.

    Args:
        spec: `preset`, `res`, `batch`, `xla`, `precision`, `flops` (count FLOPs: bool), `overrides` (network
            config fields, e.g. `{"channel_max": 16}`) and optional `aug` (`--aug` mode, default noaug; the
            augmentation's graph is branchless, so its cost does not depend on p, which stays at its start value).
        memory: Receives `{"stage": name, "rss_mib": ..., "hwm_mib": ...}` records.

    Returns:
        (timer of one minibatch index -> seconds, counter of the FLOPs of one step with R1 amortized over 16, which
        returns 0 when `spec["flops"]` is false).
    """
    import numpy as np
    import tensorflow as tf

    from training.formats.checkpoint import Progress
    from training.networks import build_networks
    from training.optimizer import Adam
    from training.options import TrainingOptions
    from training.steps import TrainingSteps

    memory.append({"stage": "import", **memory_mib()})
    preset, res, batch, overrides = spec["preset"], spec["res"], spec["batch"], spec.get("overrides", {})
    G, D = build_networks(preset, res, mbstd_group_size=min(4, batch), **overrides)
    Gs, _ = build_networks(preset, res, **overrides)
    opts = TrainingOptions(run_dir=tempfile.mkdtemp(prefix="bench-training-"), batch_size=batch, batch_gpu=batch,
                           xla=spec["xla"], metrics=[], precision=spec["precision"],
                           aug=spec.get("aug", "noaug"))
    steps_fn = TrainingSteps(G, D, Gs, Adam(G.trainable_variables, reg_interval=None),
                             Adam(D.trainable_variables, reg_interval=R1_INTERVAL), opts,
                             tf.distribute.get_strategy(), Progress().pl_mean)
    reals = tf.constant(np.random.default_rng(0).integers(0, 255, (batch, res, res, 3)), tf.uint8)
    memory.append({"stage": "build", **memory_mib()})

    def timed(step_idx: int) -> float:
        t0 = time.perf_counter()
        stats = steps_fn.minibatch(reals, None, step_idx)
        float(stats["D/loss"])
        return time.perf_counter() - t0

    # What the training loop does before minibatch 0: trace the gradient phases, then compile them side by side
    # (with XLA several compilations at once: a higher peak than compiling them one after the other).
    spec_reals = tf.TensorSpec.from_tensor(reals)
    steps_fn.trace(spec_reals, None)
    steps_fn.compile(spec_reals, None)
    memory.append({"stage": "trace + compile", **memory_mib()})
    timed(1)
    memory.append({"stage": "first plain step", **memory_mib()})
    timed(R1_INTERVAL)
    memory.append({"stage": "first R1 step", **memory_mib()})

    def flops() -> float:
        if not spec.get("flops", True):
            return 0.0
        return (count_flops(G, D, batch, False) * (R1_INTERVAL - 1) / R1_INTERVAL
                + count_flops(G, D, batch, True) / R1_INTERVAL)
    return timed, flops


def _send(record: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(record) + "\n")
    sys.stdout.flush()


def serve(spec: dict[str, Any]) -> None:
    """Builds the case, then answers `step N` / `quit` lines from stdin (see the module docstring)."""
    memory: list[dict[str, Any]] = []
    timed, flops = build_case(spec, memory)
    _send({"event": "ready"})
    for line in sys.stdin:
        command = line.split()
        if command and command[0] == "step":
            _send({"seconds": timed(int(command[1]))})
        elif command and command[0] == "quit":
            break
    memory.append({"stage": "timed steps", **memory_mib()})
    peak_device = device_peak_mib()
    _send({"event": "done", "pid": os.getpid(), "memory": memory, "peak_rss_mib": memory[-1]["hwm_mib"],
           "device_peak_mib": peak_device, "flops": flops()})


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
