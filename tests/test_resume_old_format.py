"""A run written before the run record existed still loads and resumes exactly.

`tests/fixtures/run-before-record/` is a tiny GANformer run stopped after its first tick, written by an earlier
version (its `training_options.json`, checkpoint and first snapshot; `README.md` there has the command), and
`expected.json` the sha256 of G, D and Gs after that version resumed it to the second tick. Resuming it with
today's code must give the same weights bit for bit, and the old snapshot must load with a record made from its
recorded training options.
"""

import hashlib
import json
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


def _digests(path: Path) -> dict[str, str]:
    from training.formats.archive import read_snapshot
    nets, _ = read_snapshot(str(path))
    out = {}
    for name in ("G", "D", "Gs"):
        h = hashlib.sha256()
        for key, value in sorted(nets[name][1].items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        out[name] = h.hexdigest()
    return out


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
    expected = json.loads((FIXTURE / "expected.json").read_text())
    assert _digests(final) == expected["sha256"]
    from training.formats.networks import load_networks
    assert load_networks(str(final)).record.preset == "ganformer-ffhq"  # today's snapshots embed the whole record
