"""Augmentation in training: ADA's adaptive p, exact resume and replicas with --aug ada, the default
(noaug) unchanged, the flags, the logs and the snapshots."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dnnlib.util import UserError
from tests.train_helpers import ROOT, TINY_FLAGS, make_shapes, make_trainer, read_scalars, trainer_weights
from training.augment.ada import AugmentState, ada_adjustment
from training.formats.checkpoint import TrainCheckpoint
from training.train_log import status_line


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=32, resolution=16)
    return d


# ------------------------------------------------------------------------------------------------ the rule
def test_p_rises_with_positive_real_scores_and_falls_when_balanced():
    step = ada_adjustment(batch_size=4, interval=2, ada_kimg=1.0)
    assert step == pytest.approx(0.008)
    state = AugmentState(0.5)
    for _ in range(2):
        state.accumulate(1.0, 4)  # every real score positive: r_t = 1 > target
    assert state.adjust(0.6, step) == 1.0 and float(state.p.numpy()) == pytest.approx(0.508)
    assert float(state.count.numpy()) == 0 and float(state.sign_sum.numpy()) == 0  # reset for the next interval
    for _ in range(3):
        state.accumulate(0.5, 4)
        state.accumulate(-0.5, 4)  # balanced: r_t = 0 < target
        assert state.adjust(0.6, step) == 0.0
    assert float(state.p.numpy()) == pytest.approx(0.484)
    low, high = AugmentState(0.005), AugmentState(0.995)
    low.accumulate(0.0, 4)
    high.accumulate(1.0, 4)
    low.adjust(0.6, step)
    high.adjust(0.6, step)
    assert float(low.p.numpy()) == 0.0 and float(high.p.numpy()) == 1.0  # clamped to [0, 1]


@pytest.mark.parametrize("bias,direction", [(100.0, 1), (-100.0, -1)])
def test_training_moves_p_by_the_sign_of_the_real_scores(data_dir, tmp_path, bias, direction):
    """D's output bias makes every real score positive (p rises) or negative (p falls): 2 minibatches, interval 1,
    steps of 4 * 1 / (0.1 * 1000) = 0.04."""
    t = make_trainer(str(tmp_path), data_dir, aug="ada", p=0.5, ada_kimg=0.1, ada_interval=1)
    t.D.output.bias.assign([bias])
    reals = next(t._data_iterator())
    for step in (1, 2):  # (no R1 pass: quicker)
        stats = t.steps.minibatch(reals, None, step=step)
        assert float(stats["scores/real_sign"]) == direction
    assert float(t.aug_state.p.numpy()) == pytest.approx(0.5 + direction * 0.08, abs=1e-6)


# ---------------------------------------------------------------------------------------- exactness
@pytest.mark.slow
def test_fixed_p_zero_trains_exactly_like_noaug(data_dir, tmp_path):
    """With p = 0 every image passes unchanged (G main, D main and the R1 step of minibatch 0): the same weights as
    the default --aug noaug, bit for bit; with p = 0.5 they differ (the augmentation acts)."""
    runs = {}
    for name, kw in (("noaug", {}), ("zero", dict(aug="fixed", p=0.0)), ("half", dict(aug="fixed", p=0.5))):
        t = make_trainer(str(tmp_path / name), data_dir, total_kimg=0.008, **kw)
        t.run()
        runs[name] = trainer_weights(t)
    for key in runs["noaug"]:
        np.testing.assert_array_equal(runs["zero"][key], runs["noaug"][key], err_msg=key)
    assert any(not np.array_equal(runs["half"][k], runs["noaug"][k]) for k in runs["noaug"] if k.startswith("D/"))
    record = json.loads(open(os.path.join(str(tmp_path / "noaug"), "stats.jsonl")).readline())
    assert "Augment/p" not in record and "Timing/augment_sec_per_step" not in record
    assert " rt " not in status_line(record, 1.0)  # the default's status line is unchanged


@pytest.mark.slow
def test_exact_resume_with_ada_is_bit_identical(data_dir, tmp_path):
    """p moves at minibatches 2 and 5 (interval 3); the run stops after minibatch 3, mid-interval, so the resumed
    run needs the checkpointed accumulator as well as p."""
    kw = dict(total_kimg=0.024, aug="ada", p=0.5, ada_kimg=0.1, ada_interval=3)
    straight = make_trainer(str(tmp_path / "a"), data_dir, **kw)
    straight.run()
    first = make_trainer(str(tmp_path / "b"), data_dir, max_ticks=2, **kw)
    first.run()
    saved = {k: float(getattr(first.aug_state, k).numpy()) for k in ("p", "sign_sum", "count")}
    assert saved["count"] == 4 and saved["p"] != 0.5  # one minibatch into the interval, p already moved
    resumed = make_trainer(str(tmp_path / "b"), data_dir, **kw)
    resumed.restore_or_init()
    assert {k: float(getattr(resumed.aug_state, k).numpy()) for k in saved} == saved
    resumed.run()
    assert float(resumed.aug_state.p.numpy()) == float(straight.aug_state.p.numpy())
    a, b = trainer_weights(straight), trainer_weights(resumed)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for opt in ("g_opt", "d_opt"):
        for x, y in zip(getattr(straight, opt).v, getattr(resumed, opt).v):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_checkpoint_without_augment_state_resumes_with_the_initial_p(data_dir, tmp_path, capsys):
    """A run from before augmentation existed: its checkpoint restores, p starts at --p."""
    old = make_trainer(str(tmp_path), data_dir)
    TrainCheckpoint(str(tmp_path), G=old.G, D=old.D, Gs=old.Gs, g_opt=old.g_opt, d_opt=old.d_opt,
                    progress=old.progress).save(0)
    new = make_trainer(str(tmp_path), data_dir, aug="ada", p=0.25)
    assert new.restore_or_init().startswith("Resuming")
    assert float(new.aug_state.p.numpy()) == 0.25
    assert "predates the state of augment" in capsys.readouterr().out


@pytest.mark.slow
def test_two_replicas_give_the_same_p_and_update_as_one_with_two_rounds(data_dir, tmp_path):
    """The augmentation seeds follow the slice, not the replica: 2 replicas x 1 round == 1 replica x 2 rounds."""
    out = str(tmp_path / "weights.npz")
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    options = json.dumps(dict(aug="ada", p=0.6, ada_kimg=0.1, ada_interval=1))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "dist_worker.py"), "replicas", data_dir, out,
                           options], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = np.load(out)
    assert res["one:augment/p"] == res["two:augment/p"] != np.float32(0.6)  # p moved, identically
    names = [k.split(":", 1)[1] for k in res.files if k.startswith("one:")]
    scale = {opt: max(np.abs(res[f"one:{n}"]).max() for n in names if n.startswith(opt)) for opt in ("g_opt", "d_opt")}
    for name in names:
        a, b = res[f"one:{name}"], res[f"two:{name}"]
        if "_opt/v" in name:  # as tests/test_training_processes.py: squared gradients carry a layout bug
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-9 * scale[name[:5]], err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4, err_msg=name)


# ------------------------------------------------------------------------------------- CLI, logs, snapshot
def _cli(data_dir, result_dir, *extra):
    return ["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data_dir, "--result-dir",
            result_dir, "--total-kimg", "0.016", "--eager", *TINY_FLAGS, "--network-snapshot-ticks", "2", *extra]


@pytest.mark.slow
def test_cli_ada_run_logs_p_rt_and_augment_time(data_dir, tmp_path):
    from run_network import main
    from training.formats.networks import load_networks
    main(_cli(data_dir, str(tmp_path), "--aug", "ada", "--p", "0.3", "--ada-kimg", "0.1", "--ada-interval", "1"))
    run = os.path.join(str(tmp_path), "exp-000")
    records = [json.loads(line) for line in open(os.path.join(run, "stats.jsonl"))]
    assert len(records) == 2
    for r in records:
        assert 0 <= r["Augment/p"] <= 1 and -1 <= r["scores/real_sign"] <= 1 and r["Timing/augment_sec_per_step"] > 0
    log = open(os.path.join(run, "log.txt")).read()
    assert f"p {records[-1]['Augment/p']:.3f} rt " in log and "s/step" in log
    scalars = read_scalars(run)
    assert [v for _, v in scalars["Augment/p"]] == pytest.approx([r["Augment/p"] for r in records])
    assert "Timing/augment_sec_per_step" in scalars
    saved = json.load(open(os.path.join(run, "training_options.json")))["training"]
    assert (saved["aug"], saved["p"], saved["augpipe"], saved["ada_interval"]) == ("ada", 0.3, "bgc", 1)
    nets = load_networks(os.path.join(run, "network-final.pkl"))  # G never saw augmentation: a plain snapshot
    z = np.random.default_rng(0).standard_normal((2, *nets.Gs.latent_shape)).astype(np.float32)
    images = nets.Gs(z, noise_mode="const").numpy()
    assert np.isfinite(images).all() and np.array_equal(images, nets.Gs(z, noise_mode="const").numpy())


@pytest.mark.parametrize("extra,needle", [
    (["--p", "0.3"], "--p applies to --aug ada and fixed only"),
    (["--aug", "fixed"], "--aug fixed needs --p"),
    (["--aug", "ada", "--diffaugment", "color"], "--diffaugment applies to --aug diffaugment only"),
    (["--aug", "diffaugment", "--target", "0.5"], "--target applies to --aug ada only"),
    (["--aug", "ada", "--augpipe", "bgx"], "--augpipe bgx: choose one of"),
    (["--aug", "ada", "--p", "1.5"], "--p 1.5: must be a finite number in [0, 1]"),
    (["--aug", "ada", "--target", "1"], "--target 1.0: must be a finite number in [0, 1)"),
    (["--aug", "ada", "--ada-kimg", "0"], "--ada-kimg 0.0: must be a finite number > 0"),
    (["--aug", "ada", "--ada-interval", "0"], "--ada-interval 0: must be an integer in [1, 1048576]"),
    (["--aug", "diffaugment", "--diffaugment", "color,zoom"], "--diffaugment 'color,zoom'"),
])
def test_bad_augmentation_flags_are_one_line_errors(data_dir, tmp_path, extra, needle):
    from run_network import main
    with pytest.raises(UserError) as info:
        main(_cli(data_dir, str(tmp_path), *extra))
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not os.path.exists(os.path.join(str(tmp_path), "exp-000"))  # refused before anything was written
