"""Every flag of run_network.py's parser reaches the options (or its consumer), or is refused with a one-line
reason: no flag is accepted and dropped."""

import dataclasses
import types

import pytest

from dnnlib.util import UserError
from training.cli import flags as cli_args
from training.cli import launch
from training.config import to_dict
from training.options import TrainingOptions, parse_gpus
from training.presets import configs_from_options

# Non-default values that are valid for a 16x16 GANformer (k = 16 latents of 32 dims by default).
MODEL_VALUES = {
    "g-arch": "orig", "d-arch": "skip", "tanh": "true", "mapping-layersnum": "4", "mapping-lrmul": "0.1",
    "mapping-dim": "64", "mapping-resnet": "false", "mapping-shared-dim": "64", "style": "false",
    "latent-stem": "true", "local-noise": "false", "transformer": "true", "latent-size": "256",
    "components-num": "8", "num-heads": "2", "normalize": "instance", "integration": "both", "g-start-res": "1",
    "g-end-res": "4", "d-start-res": "1", "d-end-res": "4", "ltnt-gate": "true", "img-gate": "true",
    "kmeans": "false", "kmeans-iters": "2", "mapping-ltnt2ltnt": "false", "g-ltnt2ltnt": "true", "g-img2img": "3",
    "g-img2ltnt": "true", "d-transformer": "true", "d-ltnt2ltnt": "true", "d-img2img": "3", "use-pos": "false",
    "pos-dim": "64", "pos-type": "linear", "pos-init": "normal", "pos-directions-num": "4", "kgan": "true",
    "merge-layer": "3", "merge-type": "max", "merge-same": "true", "channel-max": "256", "channel-base": "8192",
    "style-mixing": "0.5", "component-mixing": "0.5", "component-dropout": "0.5", "attention-dropout": "0.3",
    "truncation-psi": "0.5", "mbstd-group-size": "2",
}
TRAINING_VALUES = {
    "batch-size": "8", "batch-gpu": "2", "total-kimg": "12", "gamma": "3", "clip": "1.5", "g-lr": "0.001",
    "d-lr": "0.003", "g-loss": "hinge", "d-loss": "wgan", "d-reg": "gp", "pl-weight": "2", "ema-kimg": "5",
    "ema-rampup": "0.1", "kimg-per-tick": "2", "max-ticks": "3", "metrics": "fid,kid", "eval-images-num": "99",
    "summarize": "false", "keep-samples": "false", "attention-stats": "false", "img-snapshot-ticks": "5", "network-snapshot-ticks": "6",
    "maps-snapshot-ticks": "7", "seed": "3", "deterministic": "true", "xla": "false", "eager": "true",
    "last-snapshots": "2", "pretrained-pkl": "x.pkl", "train-images-num": "10", "mirror-augment": "true",
    "ratio": "0.5", "num-threads": "2", "cache-dir": "/tmp/cache", "gpus": "0,1",
    "aug": "ada", "augpipe": "bgcf", "p": "0.3", "target": "0.7", "ada-kimg": "100", "ada-interval": "8",
    "diffaugment": "color", "precision": "fp16", "num-fp16-res": "2", "conv-clamp": "128",
}
# The --aug mode a training flag applies to (it is refused with the others, tests/test_ada.py).
TRAINING_CONTEXT = {"augpipe": ["--aug", "ada"], "p": ["--aug", "ada"], "target": ["--aug", "ada"],
                    "ada-kimg": ["--aug", "ada"], "ada-interval": ["--aug", "ada"],
                    "diffaugment": ["--aug", "diffaugment"]}
EXPECTED_TRAINING = {"metrics": ["fid", "kid"], "gpus": [0, 1]}  # parsed forms; others: the flag's typed value
VIS_FLAGS = {"vis-images", "vis-latents", "vis-maps", "vis-layer-maps", "vis-interpolations", "vis-noise-var",
             "vis-style-mix", "vis-grid", "vis-num", "vis-rich-num", "vis-section-size", "blending-alpha",
             "interpolation-density"}
EVAL_FLAGS = {"inception", "vgg16"}
# Flags run_network.py / launch.py consume directly, each with the test that shows it.
RUN_FLAGS = {
    "train", "eval", "vis",  # the modes (test_training_loop, test_eval_vis_cli)
    "expname", "result-dir", "restart", "reload", "dry-run",  # run dirs (test_resume_compat)
    "dataset", "data-dir", "resolution",  # the dataset (test_training_loop, test_data_loader)
    "ganformer-default", "baseline",  # presets (test_preset_flags_choose_the_preset below)
    "cpu-replicas",  # test_training_processes (two replicas)
    "xla-cache",  # sets TF_XLA_FLAGS before TensorFlow starts (test_xla_cache)
    "cluster-timeout",  # the multi-worker start-up deadline (test_reliability_cluster)
}


def _parse(*argv):
    return cli_args.parse_command_line(list(argv))


def _dests():
    return {a.option_strings[0][2:] for a in cli_args.build_parser()._actions if a.option_strings
            and a.dest != "help"}


def test_every_flag_is_classified():
    classified = [set(MODEL_VALUES), set(TRAINING_VALUES), VIS_FLAGS, EVAL_FLAGS, RUN_FLAGS,
                  set(cli_args.REJECTED_FLAGS)]
    assert sum(len(c) for c in classified) == len(set().union(*classified))  # disjoint
    assert set().union(*classified) == _dests()


@pytest.mark.parametrize("flag", sorted(MODEL_VALUES))
def test_model_flag_reaches_the_network_configs(flag):
    base = ["--ganformer-default", "--dataset", "shapes"]
    if flag in ("transformer", "kgan"):  # switched on over StyleGAN2
        base = ["--baseline", "StyleGAN2"]
    if flag in ("merge-layer", "merge-type", "merge-same"):
        base += ["--kgan", "true", "--transformer", "false", "--components-num", "4", "--latent-size", "64"]
    default = configs_from_options(launch.model_options(_parse(*base)), 16)
    options = launch.model_options(_parse(*base, f"--{flag}", MODEL_VALUES[flag]))
    changed = configs_from_options(options, 16)
    assert (to_dict(changed[0]), to_dict(changed[1])) != (to_dict(default[0]), to_dict(default[1])), flag


@pytest.mark.parametrize("flag", sorted(TRAINING_VALUES))
def test_training_flag_reaches_the_training_options(flag):
    args = _parse("--dataset", "shapes", *TRAINING_CONTEXT.get(flag, []), f"--{flag}", TRAINING_VALUES[flag])
    opts = launch.training_options(args, types.SimpleNamespace(resolution=16, ratio=1.0), "run")
    key = flag.replace("-", "_")
    field = {f.name: f for f in dataclasses.fields(TrainingOptions)}[key]
    want = EXPECTED_TRAINING.get(key, args.training[key])
    assert getattr(opts, key) == want != (field.default if field.default is not dataclasses.MISSING else None)
    assert opts.to_dict()[key] == want  # recorded in training_options.json


@pytest.mark.parametrize("flag", sorted(cli_args.REJECTED_FLAGS))
def test_meaningless_original_flags_are_refused_with_a_reason(flag):
    from run_network import main
    with pytest.raises(UserError, match=f"^--{flag}: ") as info:
        main(["--train", "--dataset", "shapes", f"--{flag}"])
    assert "\n" not in str(info.value)


def test_gpus_are_parsed_and_bad_ids_refused():
    assert parse_gpus(None) is None and parse_gpus("") == [] and parse_gpus("1") == [1]
    assert _parse("--gpus", "0,1").training["gpus"] == [0, 1]
    with pytest.raises(UserError, match="--gpus a,b"):
        _parse("--gpus", "a,b")


@pytest.mark.parametrize("argv,preset", [([], "stylegan2"), (["--ganformer-default", "--dataset", "clevr"],
                                                                "ganformer-clevr"),
                                         (["--baseline", "kGAN"], "kgan")])
def test_preset_flags_choose_the_preset(argv, preset):
    assert launch.preset_name(_parse(*argv)) == preset


def test_command_line_holds_only_passed_model_and_training_flags():
    assert _parse().model == {} and _parse().training == {}
    cmd = _parse("--components-num", "8", "--g-lr", "0.01")
    assert cmd.model == {"components_num": 8} and cmd.training == {"g_lr": 0.01}
    assert isinstance(cmd.run, cli_args.RunFlags) and cmd.options.batch_gpu == 4  # the defaults under the passed


def test_gamma_auto_is_resolved_from_the_resolution_and_batch_before_it_is_stored():
    """`--gamma auto` = StyleGAN2-ADA's 0.0002 * res^2 / batch, stored as a number; other words are refused."""
    data = types.SimpleNamespace(resolution=32, ratio=1.0)
    opts = launch.training_options(_parse("--dataset", "shapes", "--gamma", "auto", "--batch-size", "16"), data, "r")
    assert opts.gamma == pytest.approx(0.0128) and opts.to_dict()["gamma"] == opts.gamma
    opts = launch.training_options(_parse("--dataset", "shapes", "--gamma", "AUTO", "--batch-size", "8"), data, "r")
    assert opts.gamma == pytest.approx(0.0256)
    with pytest.raises(UserError, match="--gamma") as info:
        _parse("--dataset", "shapes", "--gamma", "often")
    assert "\n" not in str(info.value)


def test_mbstd_group_defaults_to_min_of_batch_gpu_and_4_and_must_divide_batch_gpu():
    """D's minibatch-stddev group: min(--batch-gpu, 4) unless --mbstd-group-size is passed; a group that does not
    divide the micro-batch is refused in one line (0 turns the layer off)."""
    assert launch.model_options(_parse("--dataset", "shapes", "--batch-gpu", "2"))["mbstd_group_size"] == 2
    assert launch.model_options(_parse("--dataset", "shapes", "--batch-gpu", "16"))["mbstd_group_size"] == 4
    args = _parse("--train", "--dataset", "shapes", "--batch-size", "16", "--batch-gpu", "16",
                  "--mbstd-group-size", "16")
    cli_args.check_flags(args)
    assert launch.model_options(args)["mbstd_group_size"] == 16
    cli_args.check_flags(_parse("--train", "--dataset", "shapes", "--batch-size", "16", "--batch-gpu", "16",
                                "--mbstd-group-size", "0"))
    with pytest.raises(UserError, match="--mbstd-group-size 6") as info:
        cli_args.check_flags(_parse("--train", "--dataset", "shapes", "--batch-size", "16", "--batch-gpu", "16",
                                    "--mbstd-group-size", "6"))
    assert "\n" not in str(info.value)
