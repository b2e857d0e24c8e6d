"""A run written before the run record existed still loads and resumes exactly.

`tests/fixtures/run-before-record/` is a tiny GANformer run stopped after its first tick, written by an earlier
version (its `training_options.json`, checkpoint and first snapshot; `README.md` there has the command), and
`expected.npz` the weights of G, D and Gs after that version resumed it to the second tick. Resuming it with
today's code must give those weights (on the machine that wrote them bit for bit; elsewhere up to the rounding of
another CPU, far below what the resumed tick changes), and the old snapshot must load with a record made from its
recorded training options.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.train_helpers import make_shapes, run_cli

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run-before-record"
FLAGS = ["--train", "--ganformer-default", "--dataset", "shapes", "--resolution", "16", "--channel-max", "16",
         "--components-num", "2", "--latent-size", "16", "--batch-size", "4", "--batch-gpu", "4", "--metrics", "none",
         "--total-kimg", "0.016", "--kimg-per-tick", "0.008", "--xla", "false", "--summarize", "false",
         "--deterministic", "--attention-stats", "false", "--img-snapshot-ticks", "1", "--network-snapshot-ticks",
         "1", "--maps-snapshot-ticks", "100", "--seed", "7"]


ATOL = 2e-5  # another CPU's rounding over one tick of 2 steps; the tick itself moves weights by up to 7.8e-3..4.8e-2


def _weights(path: Path) -> dict[str, np.ndarray]:
    """The variables of G, D and Gs of a snapshot, keyed `G/<name>`."""
    from training.formats.archive import read_snapshot
    nets, _ = read_snapshot(str(path))
    return {f"{name}/{key}": value for name in ("G", "D", "Gs") for key, value in nets[name][1].items()}


def _largest_gap(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """The largest absolute difference per network between two sets of weights with the same keys."""
    assert sorted(a) == sorted(b)
    gaps: dict[str, float] = {}
    for key in a:
        net = key.split("/")[0]
        gaps[net] = max(gaps.get(net, 0.0), float(np.abs(a[key].astype(np.float64) - b[key]).max()))
    return gaps


def test_the_old_snapshot_loads_with_a_record_from_its_training_options():
    from training.formats.networks import load_networks
    nets = load_networks(str(FIXTURE / "run" / "network-snapshot-000000.008.pkl"))
    assert "run_record" not in nets.metadata and "training_options" in nets.metadata
    assert nets.record.dataset == "shapes" and nets.record.ratio == 1.0 and nets.record.mirror_augment is False
    assert nets.record.G == nets.G.cfg and nets.record.training["total_kimg"] == 0.016


@pytest.mark.slow
def test_a_run_written_before_the_run_record_resumes_exactly(tmp_path):
    data = tmp_path / "data"
    make_shapes(str(data), count=32, resolution=16)
    shutil.copytree(FIXTURE / "run", tmp_path / "res" / "exp-000")
    res = run_cli([*FLAGS, "--data-dir", "data", "--result-dir", "res"], cwd=str(tmp_path), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Resuming" in res.stdout and "Resume:" not in res.stdout  # nothing changed since the old record
    final = tmp_path / "res" / "exp-000" / "network-snapshot-000000.016.pkl"
    with np.load(FIXTURE / "expected.npz") as f:
        expected = dict(f)
    got = _largest_gap(_weights(final), expected)
    assert all(gap <= ATOL for gap in got.values()), got
    moved = _largest_gap(_weights(FIXTURE / "run" / "network-snapshot-000000.008.pkl"), expected)
    assert all(gap > 100 * ATOL for gap in moved.values()), moved  # the tolerance cannot hide the resumed tick
    from training.formats.networks import load_networks
    assert load_networks(str(final)).record.preset == "ganformer-ffhq"  # today's snapshots embed the whole record
