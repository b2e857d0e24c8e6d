"""`--xla-cache`: a resumed run loads the compiled training steps from TensorFlow's persistent XLA cache."""

import os

import pytest

from run_network import xla_cache_dir
from training.cli.flags import parse_command_line
from tests.train_helpers import TINY_FLAGS, make_shapes, run_cli


def _entries(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".pb"))


@pytest.mark.slow
def test_a_resumed_run_compiles_nothing_new(tmp_path):
    data = str(tmp_path / "data")
    make_shapes(data, count=16, resolution=16)
    cache = str(tmp_path / "xla")
    args = ["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data, "--result-dir",
            str(tmp_path / "runs"), "--total-kimg", "0.008", *TINY_FLAGS, "--kimg-per-tick", "0.004",
            "--summarize", "false",
            "--xla", "true", "--xla-cache", cache]
    # 1. A fresh run: kimg-0 outputs, then one tick, then it stops (--max-ticks) with a checkpoint.
    first = run_cli([*args, "--max-ticks", "1"], cwd=str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    written = _entries(cache)
    # G main, D main and D reg (R1), one executable each (--pl-weight is 0 by default: no G reg phase).
    assert len(written) == 3, written
    # 2. The resumed run skips the kimg-0 outputs, so other functions are traced before its first step; the
    # phases are traced first all the same, keep their names, and are found in the cache: nothing new is written.
    again = run_cli(args, cwd=str(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from" in again.stdout
    assert _entries(cache) == written


@pytest.mark.parametrize("argv, expected", [
    (dict(train=True, xla=True, eager=False, xla_cache=None, cache_dir="/c"), "/c/xla-"),
    (dict(train=True, xla=True, eager=False, xla_cache="rel", cache_dir=None), os.path.abspath("rel")),
    (dict(train=True, xla=True, eager=False, xla_cache="none", cache_dir=None), None),
    (dict(train=True, xla=False, eager=False, xla_cache="/x", cache_dir=None), None),
    (dict(train=True, xla=True, eager=True, xla_cache="/x", cache_dir=None), None),
    (dict(train=False, xla=True, eager=False, xla_cache="/x", cache_dir=None), None),
])
def test_cache_folder_follows_the_flags(argv, expected):
    flags = ["--train"] if argv["train"] else []
    flags += ["--xla", str(argv["xla"]).lower(), "--eager", str(argv["eager"]).lower()]
    flags += ["--xla-cache", argv["xla_cache"]] if argv["xla_cache"] else []
    flags += ["--cache-dir", argv["cache_dir"]] if argv["cache_dir"] else []
    got = xla_cache_dir(parse_command_line(flags))
    if expected is None or not expected.endswith("xla-"):
        assert got == expected
    else:
        assert got.startswith(expected) and len(got) > len(expected)  # per TensorFlow version


@pytest.mark.parametrize("xla", [pytest.param(True, marks=pytest.mark.slow), False])
def test_compiling_the_phases_side_by_side_changes_no_state(xla):
    """`TrainingSteps.compile` runs every gradient phase once on zeros (one thread each) and drops the results: every
    variable of G, D, Gs and both optimizers is unchanged. (That it compiles what the minibatches then use, and
    nothing else, is `test_a_resumed_run_compiles_nothing_new`'s count of 3 executables: the training loop calls it.)"""
    import numpy as np
    import tensorflow as tf

    from tests.train_helpers import tiny_steps

    steps = tiny_steps(eager=False, xla=xla)
    everything = (steps.G.variables + steps.D.variables + steps.Gs.variables + steps.g_opt.variables
                  + steps.d_opt.variables)
    before = [v.numpy().copy() for v in everything]
    reals = tf.TensorSpec([4, 8, 8, 3], tf.uint8)
    steps.trace(reals, None)
    steps.compile(reals, None)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, everything))
    assert int(steps.g_opt.step.numpy()) == 0 and int(steps.d_opt.step.numpy()) == 0


def test_without_xla_the_first_minibatch_uses_the_traced_phases():
    """Without XLA, `trace` + `compile` leave the first minibatch nothing to trace: the gradient phases it runs
    were traced (and first-called) before, for the minibatch's own shapes."""
    import tensorflow as tf

    from tests.train_helpers import tiny_steps

    steps = tiny_steps(eager=False, xla=False)
    reals = tf.zeros([4, 8, 8, 3], tf.uint8)
    steps.trace(tf.TensorSpec.from_tensor(reals), None)
    steps.compile(tf.TensorSpec.from_tensor(reals), None)
    phases = [fn for fn, _ in steps._phase_calls(tf.TensorSpec.from_tensor(reals), None)]
    assert len(phases) == 3  # G main, D main, D reg (R1); --pl-weight is 0 by default
    counts = [fn.experimental_get_tracing_count() for fn in phases]
    assert all(c == 1 for c in counts)
    steps.minibatch(reals, None, step=0)
    assert [fn.experimental_get_tracing_count() for fn in phases] == counts
