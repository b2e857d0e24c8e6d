"""`run_network.py --eval` and `--vis` on a snapshot of a tiny trained model."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from dnnlib.util import UserError
from tests.train_helpers import TINY_FLAGS, make_shapes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data dir and a run trained for one tick with content ratio 0.5 and mirrored reals (its snapshots are what
    --eval/--vis read; they must take both from the run's record, not from flags or the dataset's name)."""
    from run_network import main
    root = tmp_path_factory.mktemp("evalvis")
    data = str(root / "data")
    make_shapes(data, count=32, resolution=16)
    results = str(root / "results")
    main(["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data, "--result-dir", results,
          "--total-kimg", "0.008", "--eager", *TINY_FLAGS, "--ratio", "0.5", "--mirror-augment", "true"])
    return data, results


@pytest.mark.slow
def test_eval_records_fid(trained, capsys):
    from run_network import main
    data, results = trained
    main(["--eval", "--dataset", "shapes", "--data-dir", data, "--result-dir", results, "--metrics", "fid",
          "--eval-images-num", "32"])
    out = capsys.readouterr().out
    assert "fid" in out
    records = [json.loads(line) for line in open(os.path.join(results, "exp-000", "metric-fid.jsonl"))]
    assert records[-1]["value"] > 0 and records[-1]["num_images"] == 32
    assert records[-1]["snapshot"] == "network-final.pkl"
    assert (records[-1]["ratio"], records[-1]["mirror"]) == (0.5, True)  # as the run trained, without the flags


def test_eval_is_without_logits_says_how_to_get_them(trained):
    from run_network import main
    data, results = trained
    with pytest.raises(UserError, match="(?i)inception.*(\\.pt|--inception)"):
        main(["--eval", "--dataset", "shapes", "--data-dir", data, "--result-dir", results, "--metrics", "is",
              "--eval-images-num", "32"])


def _tree(folder):
    return {os.path.relpath(p, folder): open(p, "rb").read() for p in glob.glob(os.path.join(folder, "**", "*.*"),
                                                                              recursive=True)}


def test_vis_writes_images_maps_and_index_beside_the_training_grids(trained):
    from run_network import main
    data, results = trained
    run = os.path.join(results, "exp-000")
    training_grids = _tree(os.path.join(run, "visuals"))
    assert training_grids  # the kimg-0 grid was once named 000000.png, as seed 0 of --vis
    main(["--vis", "--dataset", "shapes", "--data-dir", data, "--result-dir", results, "--vis-images",
          "--vis-maps", "--vis-num", "4", "--seed", "0"])
    assert _tree(os.path.join(run, "visuals")) == training_grids  # --vis does not touch training's files
    visuals = os.path.join(run, "vis")
    assert os.path.exists(os.path.join(visuals, "index.html"))
    for seed in range(4):  # cropped to the run's content ratio 0.5
        assert np.asarray(Image.open(os.path.join(visuals, "images", f"{seed:06d}.png"))).shape == (8, 16, 3)
    assert glob.glob(os.path.join(visuals, "maps", "*.png"))


def test_eval_without_snapshot_is_a_clear_error(tmp_path):
    from run_network import main
    with pytest.raises(UserError, match="--pretrained-pkl"):
        main(["--eval", "--dataset", "shapes", "--result-dir", str(tmp_path)])
