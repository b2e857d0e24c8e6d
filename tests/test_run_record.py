"""Per-dataset constants live in one place (the dataset catalog), and the package layering has no import cycle."""

import ast
import pathlib
import types

import pytest

from training.formats.pretrained import CATALOG as MODEL_CATALOG
from training.cli import flags as cli_args
from training.cli import launch
from training.data.catalog import CATALOG, dataset_constants

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name,gamma,mirror", [("ffhq", 10.0, True), ("cityscapes", 20.0, True), ("clevr", 40.0, False),
                                               ("bedrooms", 100.0, False), ("shapes", 10.0, False)])
def test_ganformer_preset_takes_gamma_and_mirror_from_the_catalog(name, gamma, mirror):
    args = cli_args.build_parser().parse_args(["--ganformer-default", "--dataset", name])
    opts = launch.training_options(args, types.SimpleNamespace(resolution=16, ratio=None), "run")
    assert (opts.gamma, opts.mirror_augment, opts.ratio) == (gamma, mirror, dataset_constants(name)[0])


def test_released_models_agree_with_their_datasets():
    for entry in MODEL_CATALOG.values():
        assert entry.ratio == CATALOG[entry.name.split("-")[0]].ratio, entry.name


def test_per_dataset_constants_are_defined_once():
    """No module but the catalog spells a dataset's ratio table (the values 188 / 256 or 'cityscapes': 0.5)."""
    for path in (ROOT / "training").rglob("*.py"):
        text = path.read_text()
        if path.name != "catalog.py":
            assert "188 / 256" not in text and '"cityscapes": 0.5' not in text, path
