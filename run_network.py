#!/usr/bin/env python3
"""Train, evaluate and visualize GANformer and baseline GANs (TensorFlow 2). See `--help` for flags and examples.

Modes (combinable; eval and vis run before training): `--train`, `--eval`, `--vis`. Without a mode, prints the
networks the options describe. Bad input is reported as one line on stderr with exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Optional

from dnnlib.util import UserError, print_user_error
from training.cli.flags import CommandLine, check_flags, parse_command_line
from training.cli.cluster import read_tf_config

VIS_KINDS = {"images": "images", "latents": "latents", "maps": "maps", "layer_maps": "layer_maps",
             "interpolations": "interpolations", "noise_var": "noise_var", "style_mix": "style_mix"}


def _set_device_env(cmd: CommandLine) -> None:
    """Must run before TensorFlow is imported."""
    gpus = cmd.training.get("gpus")
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpus)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    folder = xla_cache_dir(cmd)
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            print(f"warning: --xla-cache {folder}: cannot create it ({exc.strerror}); compiling without the "
                  f"persistent cache", file=sys.stderr)
            return
        flag = f"--tf_xla_persistent_cache_directory={folder}"
        os.environ["TF_XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("TF_XLA_FLAGS", ""), flag]))


def xla_cache_dir(cmd: CommandLine) -> Optional[str]:
    """The persistent XLA cache folder of a --train run with --xla (None: off).

    TensorFlow keys each compiled step by its traced function's name and HLO, so entries of other configurations,
    code versions or TensorFlow versions are simply not found (the default folder is per TensorFlow version).
    """
    opts = cmd.options
    if not (cmd.run.train and opts.xla and not opts.eager) or (cmd.run.xla_cache or "").lower() == "none":
        return None
    if cmd.run.xla_cache:
        return os.path.abspath(cmd.run.xla_cache)
    from importlib.metadata import PackageNotFoundError, version
    try:
        tf_version = version("tensorflow")
    except PackageNotFoundError:
        tf_version = "unknown"
    from dnnlib.download import default_cache_dir
    return os.path.join(opts.cache_dir or default_cache_dir(), f"xla-{tf_version}")


def _networks_path(cmd: CommandLine, launch) -> tuple[str, str]:
    """(network file or catalog name, run dir) for --eval / --vis."""
    result_dir, expname, pretrained = cmd.run.result_dir, cmd.run.expname, cmd.options.pretrained_pkl
    existing = launch.run_dirs(result_dir, expname)
    if pretrained:
        run_dir = existing[-1] if existing else launch.choose_run_dir(result_dir, expname, True)[0]
        return pretrained, run_dir
    snap = launch.latest_snapshot(existing[-1]) if existing else None
    if snap is None:
        raise UserError(f"--eval/--vis: no snapshot found in {result_dir}/{expname}-*; pass "
                        "--pretrained-pkl FILE (or a catalog name such as gdrive:ffhq-snapshot.pkl)")
    return snap, existing[-1]


def evaluate(cmd: CommandLine, launch, strategy) -> None:
    """--eval: metrics of the latest snapshot or --pretrained-pkl."""
    from metrics.registry import evaluate as run_metrics
    from training.formats.networks import load_networks
    opts = cmd.options
    if not opts.metrics:
        raise UserError("--eval: --metrics none leaves nothing to evaluate; e.g. --metrics fid")
    source, run_dir = _networks_path(cmd, launch)
    nets = load_networks(source, opts.cache_dir)
    record = nets.record  # the run's record: the same crop and mirroring as the in-training metrics
    dataset = launch.open_training_dataset(cmd, record.facts())
    ratio, mirror = launch.recorded_data_settings(cmd, record, dataset)
    os.makedirs(run_dir, exist_ok=True)
    run_metrics(",".join(opts.metrics), nets.Gs, dataset, opts.eval_images_num, run_dir, os.path.basename(source),
                float(nets.metadata.get("kimg", 0.0)), batch_size=opts.batch_gpu, strategy=strategy,
                inception_path=cmd.run.inception, cache_dir=opts.cache_dir, mirror=mirror, ratio=ratio,
                vgg16_path=cmd.run.vgg16, seed=opts.seed)


def visualize(cmd: CommandLine, launch) -> None:
    """--vis: the selected --vis-* outputs under <run>/vis/ (training's own grids are in <run>/visuals/)."""
    from training.formats.networks import load_networks
    from training.vis.visualize import vis
    run, opts = cmd.run, cmd.options
    kinds = {kind for flag, kind in VIS_KINDS.items() if getattr(run, f"vis_{flag}")}
    if not kinds:
        raise UserError("--vis: choose what to write, e.g. --vis-images --vis-maps (see --help)")
    source, run_dir = _networks_path(cmd, launch)
    nets = load_networks(source, opts.cache_dir)
    ratio, _ = launch.recorded_data_settings(cmd, nets.record, None)
    psi = cmd.model.get("truncation_psi", nets.Gs.cfg.truncation_psi)
    index = vis(nets.Gs, os.path.join(run_dir, "vis"), kinds, num=run.vis_num, rich_num=run.vis_rich_num,
                section_size=run.vis_section_size, blending_alpha=run.blending_alpha,
                interpolation_density=run.interpolation_density, ratio=ratio, batch_size=opts.batch_gpu,
                truncation_psi=psi, seed=opts.seed, grid=run.vis_grid)
    print(f"Visualizations written; open {index}")


def prepare_training(cmd: CommandLine, launch, strategy) -> Optional[dict]:
    """--train, first half: resolves the options, builds the configs (checking the architecture shape-only), picks
    the run dir and checks a resume: all before anything is written or trained, and before --eval/--vis run. The
    flags on their own were checked by `check_flags`. Returns what `train` needs, or None for --dry-run."""
    from training.presets import configs_from_options
    options = launch.model_options(cmd)
    dataset = launch.open_training_dataset(cmd)  # its metadata: the networks' resolution, channels and labels
    ratio = launch.dataset_ratio(cmd, dataset)
    if dataset.resolution > 256 and ratio <= 0.5:
        options["crop_ratio"] = ratio
    g_cfg, d_cfg = configs_from_options(options, dataset.resolution, dataset.channels, dataset.label_dim)
    run_dir, resuming = launch.choose_run_dir(cmd.run.result_dir, cmd.run.expname, cmd.run.restart)
    from training.run_folder import lock_run_dir
    from training.training_loop import is_chief
    # a resume owns its folder from here on: a second process stops here, before reading the run's record
    lock = lock_run_dir(run_dir) if resuming and not cmd.run.dry_run and is_chief(strategy) else None
    try:
        return _plan(cmd, launch, strategy, dict(dataset=dataset, g_cfg=g_cfg, d_cfg=d_cfg, run_dir=run_dir,
                                                  resuming=resuming, lock=lock, options=options))
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _plan(cmd: CommandLine, launch, strategy, plan: dict) -> Optional[dict]:
    """The rest of `prepare_training` (the run dir chosen, a resumed one locked): options, checks, the record."""
    from training.cli.flags import check_metrics
    from training.formats.record import RunRecord
    run_dir, resuming, g_cfg, d_cfg = plan["run_dir"], plan["resuming"], plan["g_cfg"], plan["d_cfg"]
    options, dataset = plan["options"], plan["dataset"]
    opts = launch.training_options(cmd, dataset, run_dir)
    if resuming and cmd.run.reload:
        saved = launch.load_saved_options(run_dir)
        saved_record = RunRecord.from_json(saved, os.path.join(run_dir, launch.OPTIONS_FILE))
        g_cfg, d_cfg = saved_record.G, saved_record.D
        opts = launch.replace_training(opts, saved["training"])
    opts.validate(strategy.num_replicas_in_sync)
    check_metrics(opts.metrics)
    launch.check_architecture(g_cfg, d_cfg)
    if opts.pretrained_pkl and not resuming:  # a resumed run continues its checkpoint
        launch.check_pretrained(opts.pretrained_pkl)
    record = launch.options_record(options, opts, g_cfg, d_cfg, launch.preset_name(cmd))
    if resuming:
        launch.check_resume(run_dir, record.to_json(), type(opts))
    if cmd.run.dry_run:
        print(json.dumps(record.to_json(), indent=2))
        print(f"(dry run: would {'resume' if resuming else 'start'} {run_dir})")
        return None
    return dict(dataset=dataset, g_cfg=g_cfg, d_cfg=d_cfg, opts=opts, record=record, resuming=resuming,
                lock=plan["lock"])


def _claim_run_dir(cmd: CommandLine, plan: dict, chief: bool) -> None:
    """A new run's folder, made and locked now (atomically: two processes never share one); updates the plan."""
    if plan["lock"] is not None or plan["resuming"] or not chief:
        return
    from training.run_folder import claim_new_run_dir
    run_dir, plan["lock"] = claim_new_run_dir(cmd.run.result_dir, cmd.run.expname, plan["opts"].run_dir)
    if run_dir != plan["opts"].run_dir:
        plan["opts"] = dataclasses.replace(plan["opts"], run_dir=run_dir)
        plan["record"] = plan["record"].replace(training=plan["opts"].to_dict())


def train(cmd: CommandLine, launch, strategy, plan: dict) -> None:
    """--train, second half: writes the run record and runs the training loop."""
    from dnnlib.files import write_json_atomic
    from dnnlib.util import Logger
    from training.training_loop import Trainer, is_chief
    chief = is_chief(strategy)
    _claim_run_dir(cmd, plan, chief)
    dataset, opts = plan["dataset"], plan["opts"]
    run_dir = opts.run_dir
    os.makedirs(run_dir, exist_ok=True)
    if chief:
        write_json_atomic(os.path.join(run_dir, launch.OPTIONS_FILE), plan["record"].to_json())
    log_name = "log.txt" if chief else f"log-worker{strategy.cluster_resolver.task_id}.txt"
    with Logger(os.path.join(run_dir, log_name), "a"):
        print(f"{'Resuming' if plan['resuming'] else 'Starting'} {run_dir}: {launch.preset_name(cmd)} on "
              f"{dataset.name} ({dataset.num_images} images, {dataset.resolution}px), "
              f"{strategy.num_replicas_in_sync} replica(s)")
        trainer = Trainer(opts, plan["g_cfg"], plan["d_cfg"], dataset, strategy,
                          _metrics_fn(cmd, opts, dataset, strategy, launch), record=plan["record"])
        print(f"G: {trainer.G.num_params():,} parameters, D: {trainer.D.num_params():,} parameters")
        _run_trainer(trainer, dataset)
        print(f"Done. Samples: {run_dir}/visuals/images, attention maps: {run_dir}/visuals/maps, "
              f"snapshots: {run_dir}/network-*.pkl, log: {run_dir}/log.txt")


def _run_trainer(trainer, dataset) -> None:
    """Runs the training loop; a dataset file that turns out damaged while reading is one line naming it."""
    import tensorflow as tf
    try:
        trainer.run()
    except tf.errors.DataLossError as exc:
        detail = " ".join(str(exc.message).split())[:200]
        raise UserError(f"{dataset.path}: a dataset file is damaged ({detail}); the checkpoints are intact: "
                        "re-create the dataset with prepare_data.py, then rerun to resume") from None


def _metrics_fn(cmd: CommandLine, opts, dataset, strategy, launch):
    if not opts.metrics:
        return None
    from metrics.registry import evaluate as run_metrics

    def fn(Gs, path, kimg, tb_writer=None, missing_only=False):
        return run_metrics(opts.metrics, Gs, dataset, opts.eval_images_num, opts.run_dir, os.path.basename(path),
                           kimg, batch_size=opts.batch_gpu, strategy=strategy, inception_path=cmd.run.inception,
                           cache_dir=opts.cache_dir, mirror=opts.mirror_augment, ratio=opts.ratio,
                           tb_writer=tb_writer, vgg16_path=cmd.run.vgg16, seed=opts.seed, missing_only=missing_only)
    return fn


def describe(cmd: CommandLine, launch) -> None:
    """No mode: print the networks the options describe."""
    from training.presets import configs_from_options
    from training.networks import Discriminator, Generator
    res = cmd.options.resolution or 256
    g_cfg, d_cfg = configs_from_options(launch.model_options(cmd), res)
    launch.check_architecture(g_cfg, d_cfg)
    G, D = Generator(g_cfg), Discriminator(d_cfg)
    print(f"{launch.preset_name(cmd)} at {res}x{res}: G {G.num_params():,} parameters "
          f"({len(G.variable_dict())} variables), D {D.num_params():,} parameters; pass --train, --eval or --vis")


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    from dnnlib.disk import path_errors_as_user_error
    cmd = parse_command_line(argv)
    read_tf_config(dict(os.environ))  # a malformed TF_CONFIG is one line, before TensorFlow starts
    with path_errors_as_user_error("check that --result-dir and --data-dir are writable folders, or pass others"):
        _main(cmd)


def _main(cmd: CommandLine) -> None:
    _set_device_env(cmd)
    check_flags(cmd)  # every flag on its own, before any work (imports TensorFlow: after the device environment)
    from training.cli import launch
    strategy = launch.make_strategy(cmd)
    if not (cmd.run.train or cmd.run.eval or cmd.run.vis):
        describe(cmd, launch)
        return
    plan = prepare_training(cmd, launch, strategy) if cmd.run.train else None
    try:
        if cmd.run.eval:
            evaluate(cmd, launch, strategy)
        if cmd.run.vis:
            visualize(cmd, launch)
        if plan is not None:
            train(cmd, launch, strategy, plan)
    finally:
        if plan is not None and plan["lock"] is not None:
            plan["lock"].release()


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        sys.exit(print_user_error(exc))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
