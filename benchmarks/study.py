"""Train several models on one dataset under an equal budget and compare them (FID, FG-ARI and locality).

Every model trains through `run_network.py --train` (its own training loop, in a subprocess) once per seed of
`--seeds`, with the same dataset, resolution, channel cap, batch size, R1 gamma and number of images seen; metrics
are evaluated at kimg 0 and every `--eval-every` kimg: FID for every model, and for attention models also FG-ARI
(attention vs object regions) and locality (how much of the change from resampling one latent falls in that
latent's own attention region, as a multiple of chance). The outputs go to one folder (default `results/study`):

    study.json   per model and evaluation: the mean and min-max over seeds of FID, FG-ARI and locality (plus the
                 per-seed values), images seen, training seconds; per-seed run records, wall seconds, parameter
                 counts; the options; the segmenter's own FG-ARI on rendered scenes (the ceiling of FG-ARI)
    fid.png      FID vs kimg, FID vs training time, FG-ARI vs kimg, locality vs kimg (mean, min-max band)
    samples/     final samples of every run (latents from its seed), the real images
    maps/        attention maps (image | hard map | blend | soft map) of every attention run at every evaluation
    study.html   all of it on one page
    runs/        the training runs (checkpoints, logs, snapshots); <run>.log is each run's console output

A run is one model trained with one seed, named after the model (`runs/<model>-000`) when the study has a single
seed and `<model>-s<seed>` (`runs/<model>-s<seed>-000`) when it has several. Re-running the same command continues
unfinished runs and keeps finished ones; a stop or kill loses at most one evaluation interval (checkpoints are
written at every evaluation).

    python benchmarks/study.py                                   # the default study: shapes 32x32, ganformer vs stylegan2
    python benchmarks/study.py --seeds 1000,1001,1002 --parallel 2   # the same with three seeds: mean and min-max bands
    python benchmarks/study.py --models ganformer,stylegan2,kgan --dataset clevr --resolution 64 --gpus 0,1
    python benchmarks/study.py --models ganformer,ganformer@ada --shapes-images 1000 --data-dir datasets-1k
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from tqdm import tqdm

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import study_report  # noqa: E402
from dnnlib.files import write_json_atomic  # noqa: E402
from dnnlib.util import OneLineArgumentParser, UserError, print_user_error  # noqa: E402
from training.options import gamma_value  # noqa: E402
from training.config import auto_gamma  # noqa: E402

# run_network.py flags per model name. "ganformer" is the paper's CLEVR preset (k=8 latents of 128 dims, no
# latent-to-latent attention in the mapping, no style modulation besides attention).
MODELS: dict[str, list[str]] = {
    "ganformer": ["--ganformer-default", "--components-num", "8", "--latent-size", "128",
                  "--mapping-ltnt2ltnt", "false", "--style", "false"],
    "ganformer-ffhq": ["--ganformer-default"],
    "stylegan2": ["--baseline", "StyleGAN2"],
    "gan": ["--baseline", "GAN"],
    "kgan": ["--baseline", "kGAN"],
    "sagan": ["--baseline", "SAGAN"],
}
ATTENTION_MODELS = ("ganformer", "ganformer-ffhq")
# `NAME@AUG` trains model NAME with `--aug AUG` (e.g. ganformer@ada next to ganformer on a small dataset).
AUG_VARIANTS = ("noaug", "ada", "diffaugment")
ARI_METRIC = "fg_ari500"  # FG-ARI on 500 generated images (attention models only)
LOCALITY_METRIC = "locality200"  # locality on 200 generated images (attention models only)
MAX_SEED = 2 ** 32 - 1  # the largest --seed of run_network.py (np.random.RandomState's range)
STOP_SECONDS = 300.0  # how long a stopped run may take to write its checkpoint before it is killed


@dataclass(frozen=True)
class Run:
    """One training run of the study: a model trained with one seed.

    Attributes:
        name: The run's name: its `--expname` (folder `runs/<name>-000`) and log `runs/<name>.log`.
        model: The model name (`NAME` or `NAME@AUG`).
        seed: Its `--seed`.
    """

    name: str
    model: str
    seed: int


@dataclass
class StudyOptions:
    """What makes two studies comparable (stored in `study.json`; a re-run must match it)."""

    dataset: str = "shapes"
    data_dir: str = "datasets"
    resolution: int = 32
    models: list[str] = field(default_factory=lambda: ["ganformer", "stylegan2"])
    kimg: float = 250.0
    eval_every: float = 50.0
    fid_images: int = 2000
    channel_max: int = 32
    batch_size: int = 16
    batch_gpu: Optional[int] = None
    gamma: float = 0.0128
    seeds: list[int] = field(default_factory=lambda: [1000])
    xla: bool = True
    gpus: Optional[str] = None
    shapes_images: int = 5000
    run_args: str = ""


def parse_args(argv: Optional[list[str]] = None) -> tuple[StudyOptions, str, int]:
    """Parses and validates the command line; returns (options, result dir, models trained at once)."""
    d = StudyOptions()
    p = OneLineArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=d.dataset, help="a prepared dataset name (shapes is rendered if missing)")
    p.add_argument("--data-dir", default=d.data_dir)
    p.add_argument("--resolution", type=int, default=d.resolution)
    p.add_argument("--models", default=",".join(d.models),
                   help=f"comma list of {', '.join(MODELS)}; NAME@ada or NAME@diffaugment trains NAME with that --aug")
    p.add_argument("--kimg", type=float, default=d.kimg, help="thousands of real images each model sees")
    p.add_argument("--eval-every", type=float, default=d.eval_every, help="kimg between evaluations")
    p.add_argument("--fid-images", type=int, default=d.fid_images, help="generated (and real) images per FID")
    p.add_argument("--channel-max", type=int, default=d.channel_max)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--batch-gpu", type=int, default=None, help="per-replica micro-batch (default: --batch-size)")
    p.add_argument("--gamma", type=gamma_value, default="auto",
                   help="R1 weight, the same for every model; auto: StyleGAN2-ADA's 0.0002 * resolution^2 / batch")
    p.add_argument("--seeds", default=None, help="comma list of seeds; every model trains once per seed "
                   f"(default {d.seeds[0]}), e.g. 1000,1001,1002")
    p.add_argument("--seed", type=int, default=None, help="a single seed: the same as --seeds N")
    p.add_argument("--xla", choices=["true", "false"], default="true",
                   help="compile the training steps with XLA (slower start, faster steps: worth it past a few kimg)")
    p.add_argument("--gpus", default=None, help="e.g. 0,1 (passed to run_network.py)")
    p.add_argument("--shapes-images", type=int, default=d.shapes_images, help="images to render for shapes")
    p.add_argument("--run-args", default="", help="extra run_network.py flags for every model, e.g. --run-args=--eager")
    p.add_argument("--parallel", type=int, default=1,
                   help="runs trained at the same time (e.g. one per GPU); not part of the study's identity")
    p.add_argument("--result-dir", default=os.path.join("results", "study"))
    a = p.parse_args(argv)
    if a.parallel < 1:
        raise UserError(f"--parallel {a.parallel}: must be >= 1")
    gamma = auto_gamma(a.resolution, a.batch_size) if a.gamma == "auto" else a.gamma
    opts = StudyOptions(dataset=a.dataset, data_dir=a.data_dir, resolution=a.resolution,
                        models=[m.strip() for m in a.models.split(",") if m.strip()], kimg=a.kimg,
                        eval_every=a.eval_every, fid_images=a.fid_images,
                        channel_max=a.channel_max, batch_size=a.batch_size, batch_gpu=a.batch_gpu, gamma=gamma,
                        seeds=parse_seeds(a.seed, a.seeds), xla=a.xla == "true", gpus=a.gpus,
                        shapes_images=a.shapes_images, run_args=a.run_args)
    validate(opts)
    return opts, a.result_dir, a.parallel


def parse_seeds(seed: Optional[int], seeds: Optional[str]) -> list[int]:
    """The study's seeds from `--seed N` (one seed) or `--seeds A,B,...`; one-line UserErrors naming the flag."""
    if seed is not None and seeds is not None:
        raise UserError(f"--seed {seed} and --seeds {seeds}: give one of them (--seed N is the same as --seeds N)")
    if seeds is None:
        out, flag = [StudyOptions().seeds[0] if seed is None else seed], f"--seed {seed}"
    else:
        try:
            out, flag = [int(s) for s in seeds.split(",") if s.strip()], f"--seeds {seeds}"
        except ValueError:
            out, flag = [], f"--seeds {seeds}"
        if not out:
            raise UserError(f"{flag}: give a comma list of integers, e.g. --seeds 1000,1001,1002")
    if len(set(out)) != len(out) or not all(0 <= s <= MAX_SEED for s in out):
        raise UserError(f"{flag}: give distinct seeds in 0..{MAX_SEED}")
    return out


def validate(o: StudyOptions) -> None:
    """One-line UserErrors naming the flag."""
    unknown = [m for m in o.models if model_flags(m) is None]
    if unknown or not o.models or len(set(o.models)) != len(o.models):
        raise UserError(f"--models {','.join(o.models)}: give distinct names from {', '.join(MODELS)}, each "
                        f"optionally with @{'|@'.join(AUG_VARIANTS)}")
    if not (o.kimg > 0 and o.eval_every > 0):
        raise UserError(f"--kimg {o.kimg} / --eval-every {o.eval_every}: both must be positive")
    if o.eval_every > o.kimg:
        raise UserError(f"--eval-every {o.eval_every} is longer than --kimg {o.kimg}; e.g. --eval-every {o.kimg}")
    if not 0 <= o.gamma < float("inf"):
        raise UserError(f"--gamma {o.gamma}: must be a finite number >= 0, or auto")
    if o.fid_images < 2:
        raise UserError(f"--fid-images {o.fid_images}: must be >= 2")
    if o.resolution < 4 or o.resolution & (o.resolution - 1):
        raise UserError(f"--resolution {o.resolution}: must be a power of two >= 4")
    if o.channel_max < 1 or o.batch_size < 1 or (o.batch_gpu is not None and o.batch_gpu < 1):
        raise UserError("--channel-max, --batch-size and --batch-gpu must be >= 1")


def model_flags(name: str) -> Optional[list[str]]:
    """run_network.py flags of a model name (`NAME` or `NAME@AUG`, see AUG_VARIANTS); None for an unknown name."""
    base, sep, aug = name.partition("@")
    if base not in MODELS or (sep and aug not in AUG_VARIANTS):
        return None
    return MODELS[base] + (["--aug", aug] if sep else [])


def is_attention(name: str) -> bool:
    """Whether the model (`NAME` or `NAME@AUG`) has attention maps (FG-ARI and map grids)."""
    return name.partition("@")[0] in ATTENTION_MODELS


def study_runs(o: StudyOptions) -> list[Run]:
    """The study's runs, seed by seed (every model of the first seed, then of the next, ...)."""
    return [Run(study_report.run_name(m, seed, o.seeds), m, seed) for seed in o.seeds for m in o.models]


def find_run(o: StudyOptions, name: str) -> Run:
    """The run of the study called `name`."""
    return next(r for r in study_runs(o) if r.name == name)


def run_flags(o: StudyOptions, model: str, result_dir: str, seed: Optional[int] = None) -> list[str]:
    """The run_network.py command line of one run: `model` trained with `seed` (default: the first seed)."""
    seed = o.seeds[0] if seed is None else seed
    metrics = "fid" + (f",{ARI_METRIC},{LOCALITY_METRIC}" if is_attention(model) else "")
    flags = ["--train", *model_flags(model), "--dataset", o.dataset, "--data-dir", o.data_dir, "--resolution",
             str(o.resolution), "--result-dir", os.path.join(result_dir, "runs"),
             "--expname", study_report.run_name(model, seed, o.seeds),
             "--channel-max", str(o.channel_max), "--batch-size", str(o.batch_size),
             "--batch-gpu", str(o.batch_gpu or o.batch_size), "--total-kimg", str(o.kimg),
             "--kimg-per-tick", str(o.eval_every), "--network-snapshot-ticks", "1", "--img-snapshot-ticks", "1",
             "--maps-snapshot-ticks", "1", "--last-snapshots", "0", "--metrics", metrics,
             "--eval-images-num", str(o.fid_images), "--seed", str(seed), "--gamma", str(o.gamma),
             "--xla", "true" if o.xla else "false"]
    if o.gpus:
        flags += ["--gpus", o.gpus]
    return flags + o.run_args.split()


def run_dir(result_dir: str, name: str) -> str:
    """The folder of the run called `name`."""
    return study_report.run_folder(result_dir, name)


def evaluated(path: str) -> bool:
    """True once the run in `path` has recorded an FID (then the real images' statistics are in the cache)."""
    record = os.path.join(path, "metric-fid.jsonl")
    return os.path.isfile(record) and os.path.getsize(record) > 0


def kimg_done(path: str) -> float:
    """Progress of a run from its stats.jsonl (0 when it has not finished a tick)."""
    stats = os.path.join(path, "stats.jsonl")
    if not os.path.isfile(stats):
        return 0.0
    kimg = 0.0
    with open(stats, encoding="utf-8") as f:
        for line in f:
            try:
                kimg = max(kimg, float(json.loads(line).get("Progress/kimg", 0.0)))
            except ValueError:
                continue
    return kimg


def prepare_dataset(o: StudyOptions) -> None:
    """Renders `shapes` when it is missing; any other dataset must be prepared by the user."""
    path = os.path.join(o.data_dir, o.dataset)
    if os.path.isdir(path):
        if o.dataset == "shapes":
            _check_rendered(path, o)
        return
    if o.dataset != "shapes":
        raise UserError(f"--dataset {o.dataset}: {path} does not exist; prepare it with prepare_data.py first")
    from prepare_data import main as prepare
    rc = prepare(["--shapes", "--resolution", str(o.resolution), "--max-images", str(o.shapes_images),
                  "--data-dir", o.data_dir])
    if rc not in (0, None):
        raise UserError(f"--dataset shapes: rendering into {path} failed (exit {rc})")


def _check_rendered(path: str, o: StudyOptions) -> None:
    """Refuses a rendered `shapes` set whose size or resolution differs from --shapes-images / --resolution."""
    try:
        with open(os.path.join(path, "dataset.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return  # not rendered by prepare_data.py: the user's own dataset named shapes
    if meta.get("count") != o.shapes_images or meta.get("resolution") != o.resolution:
        raise UserError(f"--shapes-images {o.shapes_images} --resolution {o.resolution}: {path} holds "
                        f"{meta.get('count')} scenes at {meta.get('resolution')}x{meta.get('resolution')}; pass "
                        f"another --data-dir (or the same --shapes-images / --resolution)")


def load_state(result_dir: str, o: StudyOptions) -> dict:
    """The study's state (options and per-run wall seconds); refuses a re-run with other options.

    A state written before studies had several seeds (`seed: N` in its options) reads as `seeds: [N]`.
    """
    path = os.path.join(result_dir, "state.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        options = state.get("options")
        if isinstance(options, dict) and "seed" in options and "seeds" not in options:
            state["options"] = {**options, "seeds": [options["seed"]]}
            del state["options"]["seed"]
        if state.get("options") != asdict(o):
            old, new = state.get("options", {}), asdict(o)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(f"{result_dir} holds a study with other options ({', '.join(changed)}); "
                            "rerun with the same options or pass a new --result-dir")
        return state
    return {"options": asdict(o), "wall_seconds": {}}


def _launch(o: StudyOptions, name: str, result_dir: str) -> tuple[subprocess.Popen, Any]:
    """Starts (or resumes) the run called `name` in a subprocess; returns (process, its open log file)."""
    run = find_run(o, name)
    log = open(os.path.join(result_dir, "runs", f"{name}.log"), "a", encoding="utf-8")
    cmd = [sys.executable, os.path.join(ROOT, "run_network.py"), *run_flags(o, run.model, result_dir, run.seed)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log


def _failure(name: str, code: int, result_dir: str) -> UserError:
    """The one-line error of a run whose process exited with `code` (the last line of its log)."""
    log_path = os.path.join(result_dir, "runs", f"{name}.log")
    tail = open(log_path, encoding="utf-8", errors="replace").read().strip().splitlines()[-1:]
    return UserError(f"{name}: run_network.py exited {code} ({tail[0] if tail else 'no output'}); see {log_path}")


def train_models(o: StudyOptions, todo: list[str], result_dir: str, state: dict, bar: tqdm, parallel: int) -> None:
    """Trains the `todo` runs (names, see `study_runs`), at most `parallel` at a time, moving the study bar at every
    evaluation.

    A run starts only once every running run has recorded an evaluation: the first evaluation computes the real
    images' Inception statistics, which the runs share through the metrics cache, so they are computed once.

    Each run's wall seconds (its process's lifetime) are added to `state` and saved when the process ends; on an
    exception or Ctrl-C every running process gets SIGTERM (it writes a checkpoint and stops).
    """
    names = [r.name for r in study_runs(o)]
    queue, running, failure = list(todo), {}, None
    finished = {n: o.kimg for n in names if n not in todo}
    try:
        while (queue or running) and failure is None:
            while queue and len(running) < parallel and all(evaluated(run_dir(result_dir, n)) for n in running):
                name = queue.pop(0)
                running[name] = (*_launch(o, name, result_dir), time.time())
            bar.set_postfix_str(",".join(running))
            time.sleep(2.0)
            for name, (proc, log, start) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[name]
                _add_wall(state, name, start, result_dir)
                if proc.returncode != 0:
                    failure = _failure(name, proc.returncode, result_dir)
            done = sum(finished.values()) + sum(kimg_done(run_dir(result_dir, n)) for n in names
                                                if n not in finished)
            if done != bar.n:  # the bar moves at every evaluation (the runs' ticks)
                bar.n = done
                bar.refresh()
    finally:
        for proc, _, _ in running.values():
            proc.terminate()  # SIGTERM: the run writes a checkpoint (or abandons its evaluation) and stops
        for name, (proc, log, start) in running.items():
            _wait_or_kill(proc, STOP_SECONDS)
            log.close()
            _add_wall(state, name, start, result_dir)
    if failure is not None:
        raise failure


def _wait_or_kill(proc: subprocess.Popen, seconds: float) -> None:
    """Waits up to `seconds` for a run told to stop, then kills it (its newest intact checkpoint is resumed)."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _add_wall(state: dict, name: str, start: float, result_dir: str) -> None:
    """Adds a run's process lifetime to its wall seconds in `state` and saves the state."""
    state["wall_seconds"][name] = state["wall_seconds"].get(name, 0.0) + time.time() - start
    write_json_atomic(os.path.join(result_dir, "state.json"), state)


def run_study(o: StudyOptions, result_dir: str, parallel: int = 1) -> dict:
    """Trains every run that has not finished (`parallel` at a time), then writes the report; returns study.json's
    content."""
    os.makedirs(os.path.join(result_dir, "runs"), exist_ok=True)
    state = load_state(result_dir, o)
    write_json_atomic(os.path.join(result_dir, "state.json"), state)
    prepare_dataset(o)
    runs = study_runs(o)
    todo = [r.name for r in runs if not os.path.isfile(os.path.join(run_dir(result_dir, r.name), "_finished.txt"))]
    with tqdm(total=o.kimg * len(runs), unit="kimg", desc="study",
              bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}] {postfix}") as bar:
        train_models(o, todo, result_dir, state, bar, parallel)
        bar.n = bar.total
        bar.refresh()
    return study_report.write_report(result_dir, asdict(o), state["wall_seconds"],
                                     tuple(m for m in o.models if is_attention(m)), ARI_METRIC, LOCALITY_METRIC)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the study like Ctrl-C: the runs get SIGTERM and checkpoint


def main(argv: Optional[list[str]] = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        opts, result_dir, parallel = parse_args(argv)
        summary = run_study(opts, result_dir, parallel)
    except UserError as exc:
        print_user_error(exc, prog="study.py")
        return 2
    except KeyboardInterrupt:
        print("study.py: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(study_report.summary_table(summary))
    print(f"Wrote {os.path.join(result_dir, 'study.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
