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
    args = cli_args.parse_command_line(["--ganformer-default", "--dataset", name])
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


# ------------------------------------------------------------------------------------------------ the RunRecord
def _small_record(**training):
    from training.config import DiscriminatorConfig, GeneratorConfig
    from training.formats.record import RunRecord
    return RunRecord(G=GeneratorConfig(resolution=16, channel_max=16, latent_dim=16).validate(),
                     D=DiscriminatorConfig(resolution=16, channel_max=16).validate(), training=training,
                     preset="stylegan2", model_options={"channel_max": 16})


def test_run_record_round_trips_through_json_and_names_what_is_known():
    import json

    from training.formats.record import RunRecord
    record = _small_record(dataset="clevr", ratio=0.75, mirror_augment=False, g_lr=0.002)
    again = RunRecord.from_json(json.loads(json.dumps(record.to_json())), "x.json")
    assert again == record and set(record.to_json()) == {"preset", "model_options", "training", "G", "D"}
    assert record.facts() == {"dataset": "clevr", "ratio": 0.75, "mirror_augment": False, "resolution": 16,
                              "label_dim": 0}
    unknown = _small_record()  # e.g. an authors' pickle loaded by path: nothing is guessed
    assert unknown.dataset is None and unknown.ratio is None and unknown.mirror_augment is None
    assert unknown.facts() == {"resolution": 16, "label_dim": 0}


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: [], "expected a JSON object"), (lambda d: {**d, "G": 3}, "no 'G'/'D' configs"),
    (lambda d: {**d, "training": [1]}, "'training' is not a mapping"),
    (lambda d: {**d, "G": {**d["G"], "channel_max": 1 << 30}}, "channel_max"),
    (lambda d: {**d, "D": {**d["D"], "bogus": 1}}, "unknown option"),
])
def test_a_damaged_run_record_is_one_line_naming_the_file(mutate, needle):
    from dnnlib.util import UserError
    from training.formats.record import RunRecord
    with pytest.raises(UserError, match=needle) as info:
        RunRecord.from_json(mutate(_small_record().to_json()), "run/training_options.json")
    assert "\n" not in str(info.value)


def test_catalog_models_get_their_record_from_the_catalog():
    """The authors' models: dataset, ratio and mirroring from the catalogs, in the same type."""
    from training.formats.record import RunRecord
    entry = MODEL_CATALOG["gdrive:cityscapes-snapshot.pkl"]
    assert (entry.dataset, entry.ratio) == ("cityscapes", 0.5)
    assert isinstance(_small_record(dataset=entry.dataset, ratio=entry.ratio), RunRecord)


def test_snapshots_and_checkpoints_embed_the_run_record(tmp_path):
    """The record a run starts with is the one its snapshots and checkpoints carry, and what readers get back."""
    import glob
    import json

    from tests.train_helpers import make_shapes, make_trainer
    from training.formats.checkpoint import read_run_record
    from training.formats.networks import load_networks
    data_dir = str(tmp_path / "data")
    make_shapes(data_dir, count=8, resolution=16)
    trainer = make_trainer(str(tmp_path / "run"), data_dir, preset="stylegan2", total_kimg=0.004,
                           kimg_per_tick=0.004)
    trainer.run()
    snapshots = sorted(glob.glob(str(tmp_path / "run" / "network-snapshot-*.pkl")))
    nets = load_networks(snapshots[-1])
    assert nets.record == trainer.record and nets.record.dataset == "shapes"
    assert nets.record.training == json.loads(json.dumps(trainer.opts.to_dict()))
    prefixes = sorted(p[:-len(".index")] for p in glob.glob(str(tmp_path / "run" / "checkpoints" / "ckpt-*.index")))
    assert prefixes and read_run_record(prefixes[-1]) == trainer.record.to_json()
