#!/usr/bin/env python3
"""Train, evaluate and visualize GANformer and baseline GANs (TensorFlow 2). See `--help` for flags and examples.

Modes (combinable; eval and vis run before training): `--train`, `--eval`, `--vis`. Without a mode, prints the
networks the options describe. Bad input is reported as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Optional

from dnnlib.util import UserError, print_user_error
from training.cli.flags import build_parser, check_flags, reject_unsupported
from training.cli.cluster import read_tf_config

VIS_KINDS = {"images": "images", "latents": "latents", "maps": "maps", "layer_maps": "layer_maps",
             "interpolations": "interpolations", "noise_var": "noise_var", "style_mix": "style_mix"}


def _set_device_env(args: argparse.Namespace) -> None:
    """Must run before TensorFlow is imported."""
    if args.gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpus
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    folder = xla_cache_dir(args)
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            print(f"warning: --xla-cache {folder}: cannot create it ({exc.strerror}); compiling without the "
                  f"persistent cache", file=sys.stderr)
            return
        flag = f"--tf_xla_persistent_cache_directory={folder}"
        os.environ["TF_XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("TF_XLA_FLAGS", ""), flag]))


def xla_cache_dir(args: argparse.Namespace) -> Optional[str]:
    """The persistent XLA cache folder of a --train run with --xla (None: off).

    TensorFlow keys each compiled step by its traced function's name and HLO, so entries of other configurations,
    code versions or TensorFlow versions are simply not found (the default folder is per TensorFlow version).
    """
    if not (args.train and args.xla and not args.eager) or (args.xla_cache or "").lower() == "none":
        return None
    if args.xla_cache:
        return os.path.abspath(args.xla_cache)
    from importlib.metadata import PackageNotFoundError, version
    try:
        tf_version = version("tensorflow")
    except PackageNotFoundError:
        tf_version = "unknown"
    from dnnlib.download import default_cache_dir
    return os.path.join(args.cache_dir or default_cache_dir(), f"xla-{tf_version}")


def _networks_path(args: argparse.Namespace, launch) -> tuple[str, str]:
    """(network file or catalog name, run dir) for --eval / --vis."""
    if args.pretrained_pkl:
        existing = launch.run_dirs(args.result_dir, args.expname)
        run_dir = existing[-1] if existing else launch.choose_run_dir(args.result_dir, args.expname, True)[0]
        return args.pretrained_pkl, run_dir
    existing = launch.run_dirs(args.result_dir, args.expname)
    snap = launch.latest_snapshot(existing[-1]) if existing else None
    if snap is None:
        raise UserError(f"--eval/--vis: no snapshot found in {args.result_dir}/{args.expname}-*; pass "
                        "--pretrained-pkl FILE (or a catalog name such as gdrive:ffhq-snapshot.pkl)")
    return snap, existing[-1]


def evaluate(args: argparse.Namespace, launch, strategy) -> None:
    """--eval: metrics of the latest snapshot or --pretrained-pkl."""
    from metrics.registry import evaluate as run_metrics
    from training.formats.networks import load_networks, training_facts
    metrics = args.metrics if args.metrics.lower() != "none" else ""
    if not metrics:
        raise UserError("--eval: --metrics none leaves nothing to evaluate; e.g. --metrics fid")
    source, run_dir = _networks_path(args, launch)
    nets = load_networks(source, args.cache_dir)
    facts = training_facts(nets)  # the run's record: the same crop and mirroring as the in-training metrics
    dataset = launch.open_training_dataset(args, facts)
    ratio, mirror = launch.recorded_data_settings(args, facts, dataset)
    os.makedirs(run_dir, exist_ok=True)
    run_metrics(metrics, nets.Gs, dataset, args.eval_images_num, run_dir, os.path.basename(source),
                float(nets.metadata.get("kimg", 0.0)), batch_size=args.batch_gpu, strategy=strategy,
                inception_path=args.inception, cache_dir=args.cache_dir, mirror=mirror, ratio=ratio,
                vgg16_path=args.vgg16, seed=args.seed)


def visualize(args: argparse.Namespace, launch) -> None:
    """--vis: the selected --vis-* outputs under <run>/vis/ (training's own grids are in <run>/visuals/)."""
    from training.formats.networks import load_networks, training_facts
    from training.vis.visualize import vis
    kinds = {kind for flag, kind in VIS_KINDS.items() if getattr(args, f"vis_{flag}")}
    if not kinds:
        raise UserError("--vis: choose what to write, e.g. --vis-images --vis-maps (see --help)")
    source, run_dir = _networks_path(args, launch)
    nets = load_networks(source, args.cache_dir)
    ratio, _ = launch.recorded_data_settings(args, training_facts(nets), None)
    psi = vars(args).get("truncation_psi", nets.Gs.cfg.truncation_psi)
    index = vis(nets.Gs, os.path.join(run_dir, "vis"), kinds, num=args.vis_num, rich_num=args.vis_rich_num,
                section_size=args.vis_section_size, blending_alpha=args.blending_alpha,
                interpolation_density=args.interpolation_density, ratio=ratio, batch_size=args.batch_gpu,
                truncation_psi=psi, seed=args.seed, grid=args.vis_grid)
    print(f"Visualizations written; open {index}")


def prepare_training(args: argparse.Namespace, launch, strategy) -> Optional[dict]:
    """--train, first half: resolves the options, builds the configs (checking the architecture shape-only), picks
    the run dir and checks a resume: all before anything is written or trained, and before --eval/--vis run. The
    flags on their own were checked by `check_flags`. Returns what `train` needs, or None for --dry-run."""
    from training.presets import configs_from_options
    options = launch.model_options(args)
    dataset = launch.open_training_dataset(args)  # its metadata: the networks' resolution, channels and labels
    ratio = launch.dataset_ratio(args, dataset)
    if dataset.resolution > 256 and ratio <= 0.5:
        options["crop_ratio"] = ratio
    g_cfg, d_cfg = configs_from_options(options, dataset.resolution, dataset.channels, dataset.label_dim)
    run_dir, resuming = launch.choose_run_dir(args.result_dir, args.expname, args.restart)
    from training.run_folder import lock_run_dir
    from training.training_loop import is_chief
    # a resume owns its folder from here on: a second process stops here, before reading the run's record
    lock = lock_run_dir(run_dir) if resuming and not args.dry_run and is_chief(strategy) else None
    try:
        return _plan(args, launch, strategy, dict(dataset=dataset, g_cfg=g_cfg, d_cfg=d_cfg, run_dir=run_dir,
                                                  resuming=resuming, lock=lock, options=options))
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _plan(args: argparse.Namespace, launch, strategy, plan: dict) -> Optional[dict]:
    """The rest of `prepare_training` (the run dir chosen, a resumed one locked): options, checks, the record."""
    from training.cli.flags import check_metrics
    run_dir, resuming, g_cfg, d_cfg = plan["run_dir"], plan["resuming"], plan["g_cfg"], plan["d_cfg"]
    options, dataset = plan["options"], plan["dataset"]
    opts = launch.training_options(args, dataset, run_dir)
    if resuming and args.reload:
        saved = launch.load_saved_options(run_dir)
        g_cfg, d_cfg = _configs_from_record(saved)
        opts = launch.replace_training(opts, saved["training"])
    opts.validate(strategy.num_replicas_in_sync)
    check_metrics(opts.metrics)
    launch.check_architecture(g_cfg, d_cfg)
    if opts.pretrained_pkl and not resuming:  # a resumed run continues its checkpoint
        launch.check_pretrained(opts.pretrained_pkl)
    record = launch.options_record(options, opts, g_cfg, d_cfg, launch.preset_name(args))
    if resuming:
        launch.check_resume(run_dir, record)
    if args.dry_run:
        print(json.dumps(record, indent=2))
        print(f"(dry run: would {'resume' if resuming else 'start'} {run_dir})")
        return None
    return dict(dataset=dataset, g_cfg=g_cfg, d_cfg=d_cfg, opts=opts, record=record, resuming=resuming,
                lock=plan["lock"])


def _claim_run_dir(args: argparse.Namespace, plan: dict, chief: bool) -> None:
    """A new run's folder, made and locked now (atomically: two processes never share one); updates the plan."""
    if plan["lock"] is not None or plan["resuming"] or not chief:
        return
    from training.run_folder import claim_new_run_dir
    run_dir, plan["lock"] = claim_new_run_dir(args.result_dir, args.expname, plan["opts"].run_dir)
    if run_dir != plan["opts"].run_dir:
        plan["opts"] = dataclasses.replace(plan["opts"], run_dir=run_dir)
        plan["record"]["training"] = plan["opts"].to_dict()


def train(args: argparse.Namespace, launch, strategy, plan: dict) -> None:
    """--train, second half: writes the run record and runs the training loop."""
    from dnnlib.files import write_json_atomic
    from dnnlib.util import Logger
    from training.training_loop import Trainer, is_chief
    chief = is_chief(strategy)
    _claim_run_dir(args, plan, chief)
    dataset, opts = plan["dataset"], plan["opts"]
    run_dir = opts.run_dir
    os.makedirs(run_dir, exist_ok=True)
    if chief:
        write_json_atomic(os.path.join(run_dir, launch.OPTIONS_FILE), plan["record"])
    log_name = "log.txt" if chief else f"log-worker{strategy.cluster_resolver.task_id}.txt"
    with Logger(os.path.join(run_dir, log_name), "a"):
        print(f"{'Resuming' if plan['resuming'] else 'Starting'} {run_dir}: {launch.preset_name(args)} on "
              f"{dataset.name} ({dataset.num_images} images, {dataset.resolution}px), "
              f"{strategy.num_replicas_in_sync} replica(s)")
        trainer = Trainer(opts, plan["g_cfg"], plan["d_cfg"], dataset, strategy,
                          _metrics_fn(args, opts, dataset, strategy, launch))
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


def _configs_from_record(saved: dict):
    from training.config import DiscriminatorConfig, GeneratorConfig, from_dict
    return (from_dict(GeneratorConfig, saved["G"]).validate(), from_dict(DiscriminatorConfig, saved["D"]).validate())


def _metrics_fn(args, opts, dataset, strategy, launch):
    if not opts.metrics:
        return None
    from metrics.registry import evaluate as run_metrics

    def fn(Gs, path, kimg, tb_writer=None, missing_only=False):
        return run_metrics(opts.metrics, Gs, dataset, opts.eval_images_num, opts.run_dir, os.path.basename(path),
                           kimg, batch_size=opts.batch_gpu, strategy=strategy, inception_path=args.inception,
                           cache_dir=args.cache_dir, mirror=opts.mirror_augment, ratio=opts.ratio,
                           tb_writer=tb_writer, vgg16_path=args.vgg16, seed=opts.seed, missing_only=missing_only)
    return fn


def describe(args: argparse.Namespace, launch) -> None:
    """No mode: print the networks the options describe."""
    from training.presets import configs_from_options
    from training.networks import Discriminator, Generator
    res = args.resolution or 256
    g_cfg, d_cfg = configs_from_options(launch.model_options(args), res)
    launch.check_architecture(g_cfg, d_cfg)
    G, D = Generator(g_cfg), Discriminator(d_cfg)
    print(f"{launch.preset_name(args)} at {res}x{res}: G {G.num_params():,} parameters "
          f"({len(G.variable_dict())} variables), D {D.num_params():,} parameters; pass --train, --eval or --vis")


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    from dnnlib.disk import path_errors_as_user_error
    args = build_parser().parse_args(argv)
    reject_unsupported(args)
    read_tf_config(dict(os.environ))  # a malformed TF_CONFIG is one line, before TensorFlow starts
    with path_errors_as_user_error("check that --result-dir and --data-dir are writable folders, or pass others"):
        _main(args)


def _main(args: argparse.Namespace) -> None:
    _set_device_env(args)
    check_flags(args)  # every flag on its own, before any work (imports TensorFlow: after the device environment)
    from training.cli import launch
    strategy = launch.make_strategy(args)
    if not (args.train or args.eval or args.vis):
        describe(args, launch)
        return
    plan = prepare_training(args, launch, strategy) if args.train else None
    try:
        if args.eval:
            evaluate(args, launch, strategy)
        if args.vis:
            visualize(args, launch)
        if plan is not None:
            train(args, launch, strategy, plan)
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
