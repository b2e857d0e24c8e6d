"""Prepare datasets for training: the paper's catalog, your own images, or the built-in `shapes` scenes.

Examples:
    python prepare_data.py --shapes --resolution 64 --max-images 10000
    python prepare_data.py --ffhq --clevr                      # download (resumable, md5-checked)
    python prepare_data.py --task mine --images-dir ~/photos --format png [--ratio 0.75] [--resolution 256]
    python prepare_data.py --task mine --images-dir photos.zip --format jpg --labels folders

Datasets are written to `<data-dir>/<name>/` (default `datasets/`); see docs/datasets.md.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dnnlib.util import OneLineArgumentParser, UserError, print_user_error  # noqa: E402
from training.data import catalog, convert, sources  # noqa: E402
from training.data.writer import check_target  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (the original's names, plus --shapes, --overwrite and a few more)."""
    p = OneLineArgumentParser(prog="prepare_data.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    cat = p.add_argument_group("catalog datasets (spec §4.1)")
    for entry in catalog.CATALOG.values():
        cat.add_argument(f"--{entry.name}", action="store_true",
                         help=f"{entry.name}: {entry.images:,} images, download {entry.download_size}")
    cat.add_argument("--source", metavar="FILE", help="use this local copy of the catalog download (md5-checked)")
    p.add_argument("--data-dir", default="datasets", help="parent folder of datasets (default: datasets)")
    p.add_argument("--max-images", type=int, help="write at most N images")
    p.add_argument("--shards-num", type=int, help="number of TFRecord shards (default: ~256 MiB each)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same name")
    p.add_argument("--resolution", type=int, help="output side, a power of two (default: from the images)")
    custom = p.add_argument_group("custom datasets")
    custom.add_argument("--task", metavar="NAME", help="name of the dataset to create")
    custom.add_argument("--images-dir", metavar="PATH",
                        help="folder or .zip of images; .npy/.h5 file; LMDB folder; TFDS name (--format tfds)")
    custom.add_argument("--format", default="png",
                        help=f"one of {', '.join(sources.FORMATS)} (png/jpg: any common image type is read)")
    custom.add_argument("--ratio", type=float, help="content height/width in (0, 1] (default 1.0)")
    custom.add_argument("--labels", metavar="SPEC", help="class labels: 'folders' or a .json/.csv file")
    shapes = p.add_argument_group("built-in dataset")
    shapes.add_argument("--shapes", action="store_true", help="render the multi-object 'shapes' dataset")
    shapes.add_argument("--seed", type=int, default=0, help="seed of the shapes dataset (default 0)")
    p.add_argument("--encoding", choices=("raw", "png"), help="record encoding (default raw; bedrooms: png)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode/render threads")
    return p


def _print_summary(summary: convert.Summary) -> None:
    for line in summary.lines():
        print(line)


def _warn_few(max_images: int | None) -> None:
    if max_images is not None and max_images < catalog.FEW_IMAGES_WARNING:
        print(f"warning: --max-images {max_images} < {catalog.FEW_IMAGES_WARNING:,}: FID-50k will reuse real "
              f"images", file=sys.stderr)


def _prepare_catalog(name: str, args: argparse.Namespace) -> None:
    entry = catalog.CATALOG[name]
    data_dir = Path(args.data_dir)
    downloaded = catalog.fetch(entry, data_dir, args.source)
    if entry.kind != catalog.LMDB_ZIP:
        if args.max_images is not None:
            print(f"note: --max-images does not apply to {name} (installed as published); use "
                  f"run_network.py --train-images-num", file=sys.stderr)
        path = catalog.install_tfrecords(entry, downloaded, data_dir, args.overwrite)
        print(f"Installed {name} in {path} ({entry.images:,} images, ratio {entry.ratio:g}, gamma {entry.gamma:g}).")
        return
    _warn_few(args.max_images)
    lmdb_dir = catalog.extract_lmdb(entry, downloaded, data_dir)
    opts = convert.ConvertOptions(
        name=name, data_dir=data_dir, ratio=entry.ratio, resolution=args.resolution or entry.resolution,
        max_images=args.max_images, shards=args.shards_num if args.max_images else entry.shards,
        encoding=args.encoding or "png", overwrite=args.overwrite, workers=args.workers)
    _print_summary(convert.convert(sources.open_source(str(lmdb_dir), "lmdb"), opts))


def run(args: argparse.Namespace) -> None:
    """Carries out the request described by the parsed flags."""
    wanted = [name for name in catalog.CATALOG if getattr(args, name)]
    if args.task in catalog.CATALOG and args.images_dir is None:
        wanted.append(args.task)
    custom = args.images_dir is not None
    if custom and not args.task:
        raise UserError("--images-dir: also pass --task NAME (the dataset name to create)")
    if args.task and not custom and args.task not in catalog.CATALOG:
        raise UserError(f"--task {args.task}: not a catalog dataset; pass --images-dir PATH to convert your images")
    if not (wanted or custom or args.shapes):
        raise UserError("nothing to do: pass --ffhq, --clevr, --cityscapes, --bedrooms, --shapes or "
                        "--task NAME --images-dir PATH")
    if args.source and len(wanted) != 1:
        raise UserError("--source: use it with exactly one catalog dataset flag")
    if args.labels and not custom:
        raise UserError("--labels: only applies to custom datasets (--task NAME --images-dir PATH)")
    if args.ratio is not None and not custom:
        raise UserError("--ratio: only applies to custom datasets; catalog and shapes ratios are fixed")
    for name in [*wanted, *(["shapes"] if args.shapes else []), *([args.task] if custom else [])]:
        check_target(Path(args.data_dir), name, args.overwrite)  # fail fast, before any download or scan
    for name in wanted:
        _prepare_catalog(name, args)
    common = dict(data_dir=Path(args.data_dir), resolution=args.resolution, max_images=args.max_images,
                  shards=args.shards_num, encoding=args.encoding or "raw", overwrite=args.overwrite,
                  workers=args.workers)
    if args.shapes:
        _print_summary(convert.write_shapes(convert.ConvertOptions(name="shapes", **common), seed=args.seed))
    if custom:
        opts = convert.ConvertOptions(name=args.task, ratio=1.0 if args.ratio is None else args.ratio,
                                      labels=args.labels, **common)
        convert.validate_options(opts)
        _warn_few(args.max_images)
        source = sources.open_source(args.images_dir, args.format)
        try:
            _print_summary(convert.convert(source, opts))
        finally:
            source.close()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 bad input (bad flags included), 130 interrupted)."""
    from dnnlib.disk import path_errors_as_user_error

    args = None
    try:
        args = build_parser().parse_args(argv)
        with path_errors_as_user_error("choose a writable --data-dir (partial output deleted)"):
            run(args)
    except UserError as exc:
        return print_user_error(exc)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: {exc.filename or args.data_dir}: disk full; partial output deleted (downloads are kept and "
              f"resume); free space or choose another --data-dir", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: partial output deleted (downloads resume on the next run)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
