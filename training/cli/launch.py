"""What run_network.py does after parsing: the distribution strategy, option resolution, run dirs, resume checks
and the run record. The --train / --eval / --vis entry points are in run_network.py. Import this module only after
the device environment is set (`CUDA_VISIBLE_DEVICES`, see `run_network._set_device_env`): it imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Optional

import tensorflow as tf

from dnnlib.options import changes
from dnnlib.util import UserError
from training import presets
from training.cli.cluster import read_tf_config, wait_for_peers
from training.cli.flags import CommandLine
from training.config import DiscriminatorConfig, GeneratorConfig, auto_gamma, to_dict
from training.data.catalog import CATALOG, dataset_constants
from training.formats.record import RunRecord
from training.formats.checkpoint import list_snapshots
from training.options import TrainingOptions
from training.run_folder import OPTIONS_FILE, has_training_state, run_dirs  # noqa: F401 (run_dirs: re-exported)


def make_strategy(cmd: CommandLine) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy from TF_CONFIG, MirroredStrategy over several GPUs / CPU replicas, else default."""
    replicas = cmd.run.cpu_replicas
    if replicas and replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    if cmd.options.deterministic:
        tf.config.experimental.enable_op_determinism()
    cluster = read_tf_config(dict(os.environ))
    if cluster is not None:
        wait_for_peers(cluster, cmd.run.cluster_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if replicas and replicas > 1:
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in cpus], cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.get_strategy()


def preset_name(cmd: CommandLine) -> str:
    """The preset chosen by --ganformer-default / --baseline (else the plain CLI defaults = StyleGAN2)."""
    if cmd.run.ganformer_default and cmd.run.baseline:
        raise UserError("--ganformer-default and --baseline are exclusive; pass one of them")
    if cmd.run.ganformer_default:
        dataset = cmd.training.get("dataset")
        return f"ganformer-{dataset}" if dataset in CATALOG else "ganformer-ffhq"
    return cmd.run.baseline.lower() if cmd.run.baseline else "stylegan2"


def model_options(cmd: CommandLine) -> dict[str, Any]:
    """Preset options with exactly the model flags the user passed on top; D's minibatch-stddev group is
    --mbstd-group-size, else min(batch_gpu, 4) as the original."""
    options = presets.preset_options(preset_name(cmd))
    options.update(cmd.model)
    options["mbstd_group_size"] = cmd.model.get("mbstd_group_size", min(cmd.options.batch_gpu, 4))
    return options


def open_training_dataset(cmd: CommandLine, facts: Optional[dict[str, Any]] = None):
    """Opens `<data-dir>/<dataset>` with a one-line error when it is missing. `facts` (the networks' record, for
    --eval) supply the dataset name and resolution when --dataset / --resolution are not given."""
    from training.data.loader import open_dataset
    facts, opts = facts or {}, cmd.options
    name, resolution = opts.dataset or facts.get("dataset"), opts.resolution or facts.get("resolution")
    if not name:
        raise UserError("--dataset: required (a folder name inside --data-dir, e.g. --dataset shapes)")
    path = os.path.join(cmd.run.data_dir, name)
    if not os.path.isdir(path):
        hint = ("python prepare_data.py --shapes --resolution 32 --max-images 10000" if name == "shapes"
                else f"python prepare_data.py --{name}" if name in CATALOG
                else f"python prepare_data.py --task {name} --images-dir DIR --format png")
        raise UserError(f"--dataset {name}: {path} does not exist; prepare it first: {hint}")
    return open_dataset(path, resolution=resolution, max_images=opts.train_images_num)


def training_options(cmd: CommandLine, dataset: Any, run_dir: str) -> Any:
    """The run's training options: the flags the user passed over the defaults, with what depends on the dataset
    resolved (resolution; ratio; gamma and mirroring: the dataset's preset with --ganformer-default; `--gamma auto`;
    the augmentation settings of the chosen --aug)."""
    passed = dict(cmd.training)
    dataset_name = passed.get("dataset", "")
    _, preset_gamma, _ = dataset_constants(dataset_name)
    defaults = cmd.options
    gamma = passed.get("gamma", preset_gamma if cmd.run.ganformer_default else cmd.training_cls().gamma)
    if gamma == "auto":
        gamma = auto_gamma(dataset.resolution, defaults.batch_size)
    check_augment_flags(cmd)
    passed.update(run_dir=run_dir, resolution=dataset.resolution, ratio=dataset_ratio(cmd, dataset), gamma=gamma,
                  mirror_augment=dataset_mirror(cmd), ema_rampup=defaults.ema_rampup or None)
    return cmd.training_cls(**passed)


# The augmentation options, the --aug modes each applies to (a passed flag that the mode does not use is refused).
_AUG_MODES_OF = {"augpipe": ("ada", "fixed"), "p": ("ada", "fixed"), "target": ("ada",), "ada_kimg": ("ada",),
                 "ada_interval": ("ada",), "diffaugment": ("diffaugment",)}


def check_augment_flags(cmd: CommandLine) -> None:
    """Refuses an augmentation flag that the chosen --aug does not use (it would be ignored), and --aug fixed
    without --p."""
    aug = cmd.options.aug
    for key, modes in _AUG_MODES_OF.items():
        if key in cmd.training and aug not in modes:
            raise UserError(f"--{key.replace('_', '-')} applies to --aug {' and '.join(modes)} only, not --aug {aug}; "
                            f"drop it or pass --aug {modes[0]}")
    if aug == "fixed" and "p" not in cmd.training:
        raise UserError("--aug fixed needs --p, the constant augmentation probability (e.g. --p 0.2); "
                        "--aug ada adapts p instead")


def dataset_ratio(cmd: CommandLine, dataset: Any) -> float:
    """--ratio, else the dataset's recorded ratio, else the per-dataset default."""
    ratio = cmd.training.get("ratio")
    if ratio is not None:
        if not 0 < ratio <= 1:
            raise UserError(f"--ratio {ratio}: must be in (0, 1]")
        return ratio
    if dataset is not None and getattr(dataset, "ratio", None):
        return float(dataset.ratio)
    return dataset_constants(cmd.training.get("dataset"))[0]


def dataset_mirror(cmd: CommandLine) -> bool:
    """--mirror-augment, else the dataset's --ganformer-default preset (ffhq, cityscapes), else off."""
    if "mirror_augment" in cmd.training:
        return bool(cmd.training["mirror_augment"])
    return bool(dataset_constants(cmd.training.get("dataset"))[2] and cmd.run.ganformer_default)


def recorded_data_settings(cmd: CommandLine, record: RunRecord, dataset: Any) -> tuple[float, bool]:
    """`(ratio, mirror)` for --eval / --vis: an explicit --ratio / --mirror-augment, else the networks' run record,
    else the opened dataset's own ratio (--eval), else the whole image and no mirroring, said in a note. A flag that
    contradicts the record is used, with a one-line note. Nothing is derived from a dataset's name."""
    out = {}
    for key, flag, recorded in (("ratio", "--ratio", record.ratio), ("mirror_augment", "--mirror-augment",
                                                                     record.mirror_augment)):
        passed = cmd.training.get(key)
        if passed is not None:
            out[key] = passed
            if recorded is not None and passed != recorded:
                print(f"Note: {flag} {passed} differs from the {recorded} the networks were trained with")
        elif recorded is not None:
            out[key] = recorded
        elif key == "ratio" and dataset is not None and getattr(dataset, "ratio", None):
            out[key] = float(dataset.ratio)
        else:
            out[key] = 1.0 if key == "ratio" else False
            print(f"Note: the networks' record does not say their {key.replace('_', ' ')}; using {out[key]} (pass "
                  f"{flag} to set it)")
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


def options_record(options: dict[str, Any], train: Any, g_cfg: Any, d_cfg: Any, preset: str) -> RunRecord:
    """The run's record (written to training_options.json, embedded in its snapshots and checkpoints)."""
    return RunRecord(G=g_cfg, D=d_cfg, training=train.to_dict(), preset=preset, model_options=dict(options))


def check_resume(run_dir: str, record: dict[str, Any], training_cls: type = TrainingOptions) -> None:
    """Refuses changes of the networks' architecture since the run's saved options; prints the allowed changes.

    What may change is declared by each field (`dnnlib.options.option(resume=...)`): the training options are
    runtime settings, G and D configs are compared field by field, nested attention options included. Raises `UserError` (one line naming the changed
    settings with their old and new values) before anything is written or printed.
    """
    path = os.path.join(run_dir, OPTIONS_FILE)
    if not os.path.exists(path):
        print(f"Note: {path} is missing: resuming with the command-line flags (the architecture cannot be "
              f"compared with the run's)")
        return
    old = read_record(path, "pass --restart for a new run")
    found = [(section, change) for section, cls in (("training", training_cls), ("G", GeneratorConfig),
                                                    ("D", DiscriminatorConfig))
             for change in changes(cls, _section(old, section), record[section])]
    arch = [f"{section}.{c.path} {c.old!r} -> {c.new!r}" for section, c in found if not c.runtime]
    if arch:
        more = f" and {len(arch) - 4} more" if len(arch) > 4 else ""
        raise UserError(f"{run_dir}: the architecture differs from the run's ({', '.join(arch[:4])}{more}); "
                        "pass --restart for a new run or the original flags to resume")
    for section, c in found:
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


def replace_training(train: Any, saved: dict[str, Any]) -> Any:
    """Training options from a saved record, keeping the current run dir."""
    fields = {f.name for f in dataclasses.fields(train)}
    data = {k: v for k, v in saved.items() if k in fields}
    data["grid_size"] = tuple(data.get("grid_size", train.grid_size))
    return dataclasses.replace(train, **{**data, "run_dir": train.run_dir})

