"""Resume compatibility is a property of the config schema: architecture changes are refused before anything is
written, runtime-only changes are allowed, nested attention options are compared field by field."""

import dataclasses
import os

import pytest

from dnnlib.files import write_json_atomic
from dnnlib.util import UserError
from tests.train_helpers import make_shapes
from dnnlib.options import changes as config_changes
from training.config import AttentionConfig, DiscriminatorConfig, GeneratorConfig, to_dict

FLAGS = ["--train", "--ganformer-default", "--dataset", "shapes", "--resolution", "16", "--channel-max", "16",
         "--components-num", "2", "--latent-size", "16", "--batch-size", "4", "--batch-gpu", "4", "--metrics",
         "none"]
RUNTIME = {"attention.attention_dropout", "truncation_psi", "style_mixing", "component_mixing",
           "component_dropout", "w_avg_beta"}


def _other(value):
    """A different value of the same JSON kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return "other" if value is None or isinstance(value, str) else None


def _leaves(record, prefix=""):
    for key, value in record.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
def test_every_field_is_classified_and_nested_fields_are_compared(cls):
    old = to_dict(cls())
    for path in _leaves(old):
        new = to_dict(cls())
        *parents, leaf = path.split(".")
        target = new
        for p in parents:
            target = target[p]
        target[leaf] = _other(target[leaf])
        changes = config_changes(cls, old, new)
        assert [c.path for c in changes] == [path]
        assert changes[0].runtime == (path in RUNTIME), path


def test_missing_keys_count_as_defaults_and_removed_keys_are_not_refused():
    old = to_dict(GeneratorConfig())
    del old["w_avg_beta"]
    old["retired_option"] = 3
    changes = config_changes(GeneratorConfig, old, to_dict(GeneratorConfig()))
    assert [(c.path, c.runtime) for c in changes] == [("retired_option", True)]
    assert dataclasses.fields(AttentionConfig)  # the nested schema is a dataclass too


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    make_shapes(d, count=8, resolution=16)
    return d


def _record_run(data_dir, results):
    """Writes exp-000/training_options.json as --train does."""
    from run_network import prepare_training
    from training.cli import flags as cli_args
    from training.cli import launch
    cmd = cli_args.parse_command_line([*FLAGS, "--data-dir", data_dir, "--result-dir", results])
    plan = prepare_training(cmd, launch, launch.make_strategy(cmd))
    os.makedirs(plan["opts"].run_dir)
    write_json_atomic(os.path.join(plan["opts"].run_dir, launch.OPTIONS_FILE), plan["record"].to_json())
    return plan["opts"].run_dir


def _state(folder):
    return {p: (os.path.getsize(os.path.join(folder, p)), os.path.getmtime(os.path.join(folder, p)))
            for p in sorted(os.listdir(folder))}


@pytest.mark.parametrize("flag", [["--integration", "add"], ["--normalize", "none"], ["--num-heads", "2"],
                                  ["--kmeans", "false"], ["--use-pos", "false"], ["--channel-max", "8"]])
def test_architecture_change_is_refused_before_anything_is_written(flag, data_dir, tmp_path):
    from run_network import main
    results = str(tmp_path)
    run = _record_run(data_dir, results)
    before = _state(run)
    with pytest.raises(UserError, match="architecture differs"):
        main([*FLAGS, "--data-dir", data_dir, "--result-dir", results, "--dry-run", "--eval", "--metrics", "fid",
              *flag])
    assert _state(run) == before and sorted(os.listdir(results)) == ["exp-000"]


def test_runtime_change_resumes(data_dir, tmp_path, capsys):
    from run_network import main
    _record_run(data_dir, str(tmp_path))
    main([*FLAGS, "--data-dir", data_dir, "--result-dir", str(tmp_path), "--dry-run", "--truncation-psi", "0.5",
          "--attention-dropout", "0.0"])
    out = capsys.readouterr().out
    assert "G.truncation_psi changed: 0.75 -> 0.5" in out and "D.attention.attention_dropout changed" in out
    assert "would resume" in out


def test_a_run_dir_without_a_training_record_is_not_resumed(tmp_path):
    from training.cli.launch import choose_run_dir
    os.makedirs(tmp_path / "exp-000")  # e.g. made by --eval --pretrained-pkl
    assert choose_run_dir(str(tmp_path), "exp", restart=False) == (str(tmp_path / "exp-000"), False)
    (tmp_path / "exp-000" / "training_options.json").write_text("{}")
    assert choose_run_dir(str(tmp_path), "exp", restart=False) == (str(tmp_path / "exp-000"), True)
    assert choose_run_dir(str(tmp_path), "exp", restart=True) == (str(tmp_path / "exp-001"), False)
