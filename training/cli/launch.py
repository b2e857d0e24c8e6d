"""What run_network.py does after parsing: the distribution strategy, option resolution, run dirs, resume checks
and the run record. The --train / --eval / --vis entry points are in run_network.py. Import this module only after
the device environment is set (`CUDA_VISIBLE_DEVICES`, see `run_network._set_device_env`): it imports TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from typing import Any, Optional

import tensorflow as tf

from dnnlib.util import UserError
from training import presets
from training.formats.checkpoint import list_snapshots
from training.cli.flags import MODEL_FLAGS, parse_gpus, parse_metrics
from training.cli.cluster import read_tf_config, wait_for_peers
from training.config import DiscriminatorConfig, GeneratorConfig, auto_gamma, config_changes, to_dict
from training.data.catalog import CATALOG, dataset_constants
from training.options import TrainingOptions
from training.run_folder import OPTIONS_FILE, has_training_state, run_dirs  # noqa: F401 (run_dirs: re-exported)


def make_strategy(args: argparse.Namespace) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy from TF_CONFIG, MirroredStrategy over several GPUs / CPU replicas, else default."""
    if args.cpu_replicas and args.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_replicas)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    cluster = read_tf_config(dict(os.environ))
    if cluster is not None:
        wait_for_peers(cluster, args.cluster_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if args.cpu_replicas and args.cpu_replicas > 1:
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in cpus], cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.get_strategy()


def preset_name(args: argparse.Namespace) -> str:
    """The preset chosen by --ganformer-default / --baseline (else the plain CLI defaults = StyleGAN2)."""
    if args.ganformer_default and args.baseline:
        raise UserError("--ganformer-default and --baseline are exclusive; pass one of them")
    if args.ganformer_default:
        return f"ganformer-{args.dataset}" if args.dataset in CATALOG else "ganformer-ffhq"
    return args.baseline.lower() if args.baseline else "stylegan2"


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Preset options with exactly the model flags the user passed on top."""
    options = presets.preset_options(preset_name(args))
    passed = vars(args)
    for flag in list(MODEL_FLAGS) + ["style-mixing", "component-mixing", "component-dropout", "attention-dropout",
                                     "truncation-psi"]:
        key = flag.replace("-", "_")
        if key in passed:
            options[key] = passed[key]
    # D's minibatch-stddev group: --mbstd-group-size, else min(batch_gpu, 4) as the original.
    options["mbstd_group_size"] = passed.get("mbstd_group_size", min(args.batch_gpu, 4))
    return options


def open_training_dataset(args: argparse.Namespace, facts: Optional[dict[str, Any]] = None):
    """Opens `<data-dir>/<dataset>` with a one-line error when it is missing. `facts` (the networks' record, for
    --eval) supply the dataset name and resolution when --dataset / --resolution are not given."""
    from training.data.loader import open_dataset
    facts = facts or {}
    name, resolution = args.dataset or facts.get("dataset"), args.resolution or facts.get("resolution")
    if not name:
        raise UserError("--dataset: required (a folder name inside --data-dir, e.g. --dataset shapes)")
    path = os.path.join(args.data_dir, name)
    if not os.path.isdir(path):
        hint = ("python prepare_data.py --shapes --resolution 32 --max-images 10000" if name == "shapes"
                else f"python prepare_data.py --{name}" if name in CATALOG
                else f"python prepare_data.py --task {name} --images-dir DIR --format png")
        raise UserError(f"--dataset {name}: {path} does not exist; prepare it first: {hint}")
    return open_dataset(path, resolution=resolution, max_images=args.train_images_num)


def training_options(args: argparse.Namespace, dataset: Any, run_dir: str) -> TrainingOptions:
    """TrainingOptions from the flags and the dataset (gamma/mirror: the dataset's preset with --ganformer-default)."""
    passed = vars(args)
    _, preset_gamma, _ = dataset_constants(args.dataset)
    gamma = passed.get("gamma", preset_gamma if args.ganformer_default else 10.0)
    if gamma == "auto":
        gamma = auto_gamma(dataset.resolution, args.batch_size)
    mirror = dataset_mirror(args)
    metrics = parse_metrics(args.metrics)
    return TrainingOptions(
        run_dir=run_dir, dataset=args.dataset, resolution=dataset.resolution, ratio=dataset_ratio(args, dataset),
        mirror_augment=bool(mirror), train_images_num=args.train_images_num, batch_size=args.batch_size,
        batch_gpu=args.batch_gpu, total_kimg=args.total_kimg, gamma=gamma, clip=args.clip, g_lr=args.g_lr,
        d_lr=args.d_lr, g_loss=args.g_loss, d_loss=args.d_loss, d_reg=args.d_reg, pl_weight=args.pl_weight,
        ema_kimg=args.ema_kimg, ema_rampup=args.ema_rampup or None, kimg_per_tick=args.kimg_per_tick, img_snapshot_ticks=args.img_snapshot_ticks,
        network_snapshot_ticks=args.network_snapshot_ticks, maps_snapshot_ticks=args.maps_snapshot_ticks,
        last_snapshots=args.last_snapshots, metrics=metrics, eval_images_num=args.eval_images_num, seed=args.seed,
        deterministic=args.deterministic, xla=args.xla, eager=args.eager, summarize=args.summarize,
        keep_samples=args.keep_samples, attention_stats=args.attention_stats, pretrained_pkl=args.pretrained_pkl, max_ticks=args.max_ticks,
        num_threads=args.num_threads, gpus=parse_gpus(args.gpus), cache_dir=args.cache_dir,
        precision=args.precision, num_fp16_res=args.num_fp16_res, conv_clamp=args.conv_clamp,
        **augment_options(args))


# The augmentation flags (named as their TrainingOptions fields), the --aug modes each applies to, its default.
_AUG_FLAGS = {"augpipe": (("ada", "fixed"), "bgc"), "p": (("ada", "fixed"), 0.0), "target": (("ada",), 0.6),
              "ada_kimg": (("ada",), 500.0), "ada_interval": (("ada",), 4),
              "diffaugment": (("diffaugment",), "color,translation,cutout")}


def augment_options(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainingOptions fields of the augmentation flags. A flag that the chosen --aug does not use is an error
    (it would be ignored), as is --aug fixed without --p."""
    out: dict[str, Any] = {"aug": args.aug}
    for key, (modes, default) in _AUG_FLAGS.items():
        value = getattr(args, key)
        flag = "--" + key.replace("_", "-")
        if value is not None and args.aug not in modes:
            raise UserError(f"{flag} applies to --aug {' and '.join(modes)} only, not --aug {args.aug}; drop it or "
                            f"pass --aug {modes[0]}")
        out[key] = default if value is None else value
    if args.aug == "fixed" and args.p is None:
        raise UserError("--aug fixed needs --p, the constant augmentation probability (e.g. --p 0.2); "
                        "--aug ada adapts p instead")
    return out


def dataset_ratio(args: argparse.Namespace, dataset: Any) -> float:
    """--ratio, else the dataset's recorded ratio, else the per-dataset default."""
    if args.ratio is not None:
        if not 0 < args.ratio <= 1:
            raise UserError(f"--ratio {args.ratio}: must be in (0, 1]")
        return args.ratio
    if dataset is not None and getattr(dataset, "ratio", None):
        return float(dataset.ratio)
    return dataset_constants(args.dataset)[0]


def dataset_mirror(args: argparse.Namespace) -> bool:
    """--mirror-augment, else the dataset's --ganformer-default preset (ffhq, cityscapes), else off."""
    return bool(vars(args).get("mirror_augment", dataset_constants(args.dataset)[2] and args.ganformer_default))


def recorded_data_settings(args: argparse.Namespace, facts: dict[str, Any], dataset: Any) -> tuple[float, bool]:
    """`(ratio, mirror)` for --eval / --vis: an explicit --ratio / --mirror-augment, else the networks' record
    (`training.formats.networks.training_facts`), else what a training run with these flags would use. A flag that
    contradicts the record is used, with a one-line note."""
    passed = {"ratio": args.ratio is not None, "mirror_augment": "mirror_augment" in vars(args)}
    derived = {"ratio": lambda: dataset_ratio(args, dataset), "mirror_augment": lambda: dataset_mirror(args)}
    out = {}
    for key, flag in (("ratio", "--ratio"), ("mirror_augment", "--mirror-augment")):
        recorded = facts.get(key)
        out[key] = derived[key]() if passed[key] or recorded is None else recorded
        if recorded is not None and out[key] != recorded:
            print(f"Note: {flag} {out[key]} differs from the {recorded} the networks were trained with")
    return float(out["ratio"]), bool(out["mirror_augment"])


def choose_run_dir(result_dir: str, expname: str, restart: bool) -> tuple[str, bool]:
    """(run dir, resuming): the latest run of the experiment when it holds a training record
    (`training_options.json`) or checkpoints, and not --restart; the latest dir without either (e.g. made by
    --eval) as a new run; else the next `<expname>-NNN` (made, atomically, by `run_folder.claim_new_run_dir`)."""
    existing = run_dirs(result_dir, expname)
    if existing and not restart:
        latest = existing[-1]
        return latest, os.path.exists(os.path.join(latest, OPTIONS_FILE)) or has_training_state(latest)
    next_id = int(existing[-1].rsplit("-", 1)[1]) + 1 if existing else 0
    path = os.path.join(result_dir, f"{expname}-{next_id:03d}")
    return path, False


def latest_snapshot(run_dir: str) -> Optional[str]:
    """`network-final.pkl` of a run, else its snapshot with the most kimg (parsed from the name, so that old
    `000001.pkl` and new `000001.000.pkl` names order right), or None."""
    final = os.path.join(run_dir, "network-final.pkl")
    files = list_snapshots(run_dir)
    return final if os.path.exists(final) else (files[-1] if files else None)


def options_record(options: dict[str, Any], train: TrainingOptions, g_cfg: Any, d_cfg: Any,
                   preset: str) -> dict[str, Any]:
    """The JSON written to training_options.json."""
    return {"preset": preset, "model_options": options, "training": train.to_dict(), "G": to_dict(g_cfg),
            "D": to_dict(d_cfg)}


def check_resume(run_dir: str, record: dict[str, Any]) -> None:
    """Refuses changes of the networks' architecture since the run's saved options; prints the allowed changes.

    What may change is a property of the config schema (`training.config.runtime_field`); G and D configs are
    compared field by field, nested attention options included. Raises `UserError` (one line naming the changed
    settings with their old and new values) before anything is written or printed.
    """
    path = os.path.join(run_dir, OPTIONS_FILE)
    if not os.path.exists(path):
        print(f"Note: {path} is missing: resuming with the command-line flags (the architecture cannot be "
              f"compared with the run's)")
        return
    old = read_record(path, "pass --restart for a new run")
    changes = [(section, change) for section, cls in (("training", TrainingOptions), ("G", GeneratorConfig),
                                                      ("D", DiscriminatorConfig))
               for change in config_changes(cls, _section(old, section), record[section])]
    arch = [f"{section}.{c.path} {c.old!r} -> {c.new!r}" for section, c in changes
            if section != "training" and not c.runtime]
    if arch:
        more = f" and {len(arch) - 4} more" if len(arch) > 4 else ""
        raise UserError(f"{run_dir}: the architecture differs from the run's ({', '.join(arch[:4])}{more}); "
                        "pass --restart for a new run or the original flags to resume")
    for section, c in changes:
        print(f"Resume: {section}.{c.path} changed: {c.old!r} -> {c.new!r}")


def _section(record: dict[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    return value if isinstance(value, dict) else {}


def check_architecture(g_cfg: GeneratorConfig, d_cfg: DiscriminatorConfig) -> None:
    """Builds G and D shape-only (variables counted, never allocated; no TensorFlow graph) so that model options
    that only fail inside the networks are refused before any work: a `--num-heads` that does not divide every
    attention width is named with the widths and the head counts that fit; any other unbuildable combination is one
    line too.

    Raises:
        UserError: One line naming the flag (or the setting) and what fits.
    """
    from training.networks.limits import network_values
    for name, cfg in (("G", g_cfg), ("D", d_cfg)):
        heads = cfg.attention.num_heads
        one_head = dataclasses.replace(cfg, attention=dataclasses.replace(cfg.attention, num_heads=1))
        network_values(one_head, name)  # one line for anything unbuildable but the head count
        widths = attention_widths(one_head)
        if any(w % heads for w in widths):
            fits = [n for n in range(1, max(widths) + 1) if all(w % n == 0 for w in widths)]
            raise UserError(f"--num-heads {heads}: must divide every attention width of {name} "
                            f"({', '.join(map(str, widths))}); pass one of {', '.join(map(str, fits))}")
        if heads > 1:
            network_values(cfg, name)


def check_pretrained(spec: str) -> None:
    """--pretrained-pkl of a new run: a catalog name must be known and a local file must exist (checked here, before
    the run dir is made; URLs and catalog files are fetched when the weights are loaded)."""
    from training.formats.pretrained import CATALOG, CATALOG_PREFIX, resolve_network_path
    spec = spec.strip()
    if spec.startswith(CATALOG_PREFIX):
        if spec not in CATALOG:
            raise UserError(f"--pretrained-pkl {spec}: unknown pretrained network; known names: {', '.join(CATALOG)}")
    elif not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec):
        try:
            resolve_network_path(spec)  # a local path: only checked
        except UserError as exc:
            raise UserError(f"--pretrained-pkl {exc}") from None


def attention_widths(cfg: GeneratorConfig | DiscriminatorConfig) -> list[int]:
    """The widths of the network's attention layers (sorted, distinct), from a shape-only build."""
    from training.networks.attention import AttentionLayer
    from training.networks.discriminator import Discriminator
    from training.networks.generator import Generator
    from training.networks.module import ShapeOnlyRng
    net = (Generator if isinstance(cfg, GeneratorConfig) else Discriminator)(cfg, seed=ShapeOnlyRng())
    return sorted({m.dim for m in net.submodules if isinstance(m, AttentionLayer)})


def load_saved_options(run_dir: str) -> dict[str, Any]:
    """The run's training_options.json (for --reload)."""
    path = os.path.join(run_dir, OPTIONS_FILE)
    if not os.path.exists(path):
        raise UserError(f"--reload: {path} is missing, so the run's options are unknown; resume without --reload "
                        "(with the original flags) or pass --restart for a new run")
    record = read_record(path, "resume without --reload (with the original flags) or pass --restart")
    for section in ("training", "G", "D"):
        if not isinstance(record.get(section), dict):
            raise UserError(f"--reload: {path} has no '{section}' section (not a run record of this code); resume "
                            "without --reload or pass --restart")
    return record


def read_record(path: str, fix: str) -> dict[str, Any]:
    """A run record (`training_options.json`) as a dict.

    Raises:
        UserError: The file is unreadable, not JSON or not a JSON object; the message ends with `fix`.
    """
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
        raise UserError(f"{path}: the run record is damaged ({reason}); restore it from a backup, or {fix}") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: the run record is damaged (not a JSON object); restore it from a backup, or {fix}")
    return record


def replace_training(train: TrainingOptions, saved: dict[str, Any]) -> TrainingOptions:
    """TrainingOptions from a saved record, keeping the current run dir."""
    fields = {f.name for f in dataclasses.fields(TrainingOptions)}
    data = {k: v for k, v in saved.items() if k in fields}
    data["grid_size"] = tuple(data.get("grid_size", train.grid_size))
    return dataclasses.replace(train, **{**data, "run_dir": train.run_dir})

