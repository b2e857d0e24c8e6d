"""Metrics by name (a registry filled by the `register` decorator) and the single evaluation entry point.

Names: `fid50k`, `fid10k`, `fid5k`, `fid1k`, `fid` (FID); `kid50k`, `kid10k`, `kid` (KID); `is50k`, `is10k`, `is`
(Inception Score); `pr50k3`, `pr10k3`, `pr` (precision/recall, k=3); `ppl_zfull`, `ppl_wfull`, `ppl_zend`,
`ppl_wend` (PPL with StyleGAN2's face crop, as the names mean there), `ppl2_wend`, `ppl` (PPL without the crop);
`fg_ari`, `fg_ari500`, `fg_ari1k` (attention maps vs object regions on grey-floor scenes); `locality`,
`locality200` (how much of the change from resampling one latent falls in that latent's attention region, as a
multiple of chance; `metrics.attention_stats`). Names without a count use `num_images` of `evaluate` (`--eval-images-num`).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import tensorflow as tf

from dnnlib.files import write_atomic
from dnnlib.util import UserError
from metrics import fid as fid_lib
from metrics import kid as kid_lib
from metrics import ppl as ppl_lib
from metrics import precision_recall as pr_lib
from metrics.context import VGG16_PREPROCESSING, EvalContext

Results = Dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: Registry name, e.g. "fid50k".
        compute: `(ctx, num_images, **options) -> {"value": primary, other results..., "num_reals": n}`.
        plan: `(ctx, num_images) -> None`: declares needs and fails early (UserError) when a network is unusable.
        num_images: Fixed image count, or None to use `evaluate`'s `num_images`.
        network: "inception", "vgg16", "segmenter" or "none" (recorded with the results).
        options: Extra keyword arguments for `compute`.
    """

    name: str
    compute: Callable[..., Results]
    plan: Callable[[EvalContext, int], None]
    num_images: Optional[int]
    network: str
    options: Dict[str, Any] = field(default_factory=dict)


_REGISTRY: Dict[str, Metric] = {}


def register(counts: Dict[str, Optional[int]], network: str, plan: Callable[[EvalContext, int], None],
             **options: Any) -> Callable[[Callable[..., Results]], Callable[..., Results]]:
    """Decorator: registers `fn` under every name of `counts` (name -> image count or None)."""
    def decorate(fn: Callable[..., Results]) -> Callable[..., Results]:
        for name, count in counts.items():
            _REGISTRY[name] = Metric(name, fn, plan, count, network, dict(options))
        return fn
    return decorate


def available_metrics() -> List[str]:
    """Sorted names of all registered metrics."""
    return sorted(_REGISTRY)


def get_metric(name: str) -> Metric:
    """Looks a metric up by name (UserError listing the known names when unknown)."""
    if name not in _REGISTRY:
        raise UserError(f"--metrics: unknown metric '{name}'; choose from {', '.join(available_metrics())}")
    return _REGISTRY[name]


def _plan_inception(capture: bool = False, probs: bool = False) -> Callable[[EvalContext, int], None]:
    def plan(ctx: EvalContext, n: int) -> None:
        net = ctx.inception()
        if probs and n < 10:
            raise UserError(f"is: the Inception Score uses 10 splits and needs at least 10 images, got {n}; "
                            "raise --eval-images-num")
        if probs and not net.has_logits:
            raise UserError("is: the Inception Score needs the full inception-2015-12-05 network with its output "
                            f"layer, but {net.path} has pool_3 only; pass --inception PATH to NVIDIA's "
                            "inception-2015-12-05.pt or the TTUR inception-2015-12-05.tgz")
        ctx.plan(n, capture=capture, probs=probs)
    return plan


def _plan_vgg(features: bool) -> Callable[[EvalContext, int], None]:
    def plan(ctx: EvalContext, n: int) -> None:
        vgg = ctx.vgg16()[0]
        if features and not vgg.has_fc:
            raise UserError("pr: the VGG16 file has no fc6/fc7 layers; pass --vgg16 PATH to NVIDIA's vgg16.pt")
        if not features and not vgg.has_lpips:
            raise UserError("ppl: the VGG16 file has no LPIPS weights; pass --vgg16 PATH to NVIDIA's vgg16.pt")
    return plan


@register({"fid50k": 50000, "fid10k": 10000, "fid5k": 5000, "fid1k": 1000, "fid": None}, "inception",
          _plan_inception())
def compute_fid(ctx: EvalContext, n: int) -> Results:
    fake = ctx.fake_inception(n).stats
    real = ctx.real_inception(n)
    return {"value": fid_lib.fid_from_feature_stats(real, fake), "num_reals": real.num_items}


@register({"kid50k": 50000, "kid10k": 10000, "kid": None}, "inception", _plan_inception(capture=True))
def compute_kid(ctx: EvalContext, n: int) -> Results:
    fake = ctx.fake_inception(n).stats
    real = ctx.real_inception(n, capture=True)
    value = kid_lib.kid_from_features(real.features(), fake.features(), num_subsets=100, max_subset_size=1000)
    return {"value": value, "num_reals": real.num_items}


@register({"is50k": 50000, "is10k": 10000, "is": None}, "inception", _plan_inception(probs=True))
def compute_is(ctx: EvalContext, n: int) -> Results:
    mean, std = ctx.fake_inception(n).is_acc.result()
    return {"value": mean, "std": std, "num_splits": 10}


@register({"pr50k3": 50000, "pr10k3": 10000, "pr": None}, "vgg16", _plan_vgg(features=True))
def compute_pr(ctx: EvalContext, n: int) -> Results:
    real = ctx.real_vgg(n)
    precision, recall = pr_lib.precision_recall(real, ctx.fake_vgg(n), k=3)
    return {"value": precision, "precision": precision, "recall": recall, "num_reals": len(real), "k": 3}


def _ppl(space: str, sampling: str) -> Callable[..., Results]:
    def compute(ctx: EvalContext, n: int, crop: bool) -> Results:
        vgg = ctx.vgg16()[0]
        value = ppl_lib.compute_ppl(ctx.Gs, vgg.lpips, n, epsilon=1e-4, space=space, sampling=sampling, crop=crop,
                                    batch_size=ctx.batch_size, seed=ctx.seed, strategy=ctx.strategy)
        return {"value": value, "epsilon": 1e-4, "space": space, "sampling": sampling, "crop": crop}
    return compute


def _register_ppl() -> None:
    """StyleGAN2's names (its metric_defaults, kept by StyleGAN2-ADA): `ppl_{z,w}{full,end}` are the face-cropped
    variants, `ppl2_wend` the uncropped one; `ppl` is ppl2_wend with --eval-images-num samples."""
    for space, sampling in (("z", "full"), ("w", "full"), ("z", "end"), ("w", "end")):
        register({f"ppl_{space}{sampling}": 50000}, "vgg16", _plan_vgg(features=False),
                 crop=True)(_ppl(space, sampling))
    register({"ppl2_wend": 50000, "ppl": None}, "vgg16", _plan_vgg(features=False), crop=False)(_ppl("w", "end"))


_register_ppl()


def _plan_fg_ari(ctx: EvalContext, n: int) -> None:
    from metrics.fg_ari import check_scene_data
    check_scene_data(ctx.dataset, ctx.Gs)


@register({"fg_ari": None, "fg_ari500": 500, "fg_ari1k": 1000}, "segmenter", _plan_fg_ari)
def compute_fg_ari(ctx: EvalContext, n: int) -> Results:
    from metrics.fg_ari import fg_ari
    return fg_ari(ctx.Gs, n, batch_size=max(ctx.batch_size, 16), seed=ctx.seed)


def _plan_locality(ctx: EvalContext, n: int) -> None:
    from metrics.attention_stats import check_generator
    check_generator(ctx.Gs)


@register({"locality": None, "locality200": 200}, "none", _plan_locality)
def compute_locality(ctx: EvalContext, n: int) -> Results:
    from metrics.attention_stats import Prober, summarize_batches
    stats = summarize_batches(Prober(ctx.Gs, num_images=n, seed=ctx.seed, batch_size=max(ctx.batch_size, 8)))
    if "locality" not in stats:
        raise UserError("locality: resampling a local latent changes no image; the generator ignores its latents")
    last = max(int(key.split("/")[0][1:]) for key in stats if key.endswith("/entropy"))
    return {"value": stats["locality"], "share": stats["locality_share"], "change": stats["change"],
            "entropy_last": stats[f"l{last}/entropy"], "latents_used_last": stats[f"l{last}/latents_used"]}


def _append_jsonl(path: str, record: Dict[str, Any]) -> None:
    """Appends one JSON line, rewriting the file with `dnnlib.files.write_atomic` so it is never half-written."""
    old = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_atomic(path, old + json.dumps(record, sort_keys=True) + "\n")


def is_recorded(run_dir: str, metric_name: str, snapshot_name: str) -> bool:
    """Whether `<run_dir>/metric-<metric_name>.jsonl` already holds a result for `snapshot_name`."""
    path = os.path.join(run_dir, f"metric-{metric_name}.jsonl")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                if json.loads(line).get("snapshot") == snapshot_name:
                    return True
            except (ValueError, AttributeError):
                continue  # a torn line is not a result
    return False


def _network_info(ctx: EvalContext, network: str) -> Dict[str, str]:
    if network == "inception":
        net = ctx.inception()
        return dict(feature_network=net.name, feature_network_sha256=net.sha256,
                    feature_network_file=net.path, preprocessing=net.preprocessing)
    if network == "none":
        return dict(feature_network="none (the generator's own attention maps and images)")
    if network == "segmenter":
        return dict(feature_network="metrics.segment (grey-floor scene segmenter)", preprocessing="uint8 RGB")
    _, path, sha = ctx.vgg16()
    return dict(feature_network="vgg16 (NVIDIA vgg16.pt)", feature_network_sha256=sha, feature_network_file=path,
                preprocessing=VGG16_PREPROCESSING)


def evaluate(metric_names: Union[str, Sequence[str]], Gs: Any, dataset: Any, num_images: Optional[int],
             run_dir: str, snapshot_name: str, kimg: float, batch_size: int = 8,
             strategy: Optional[tf.distribute.Strategy] = None, inception_path: Optional[str] = None,
             cache_dir: Optional[str] = None, mirror: bool = False, ratio: float = 1.0, tb_writer: Any = None,
             vgg16_path: Optional[str] = None, seed: int = 0, print_fn: Callable[[str], None] = print,
             missing_only: bool = False) -> List[Dict[str, Any]]:
    """Evaluates metrics of a generator and records them (the entry point for the CLI and the training loop).

    Args:
        metric_names: Names ("fid50k,is" or a list); see `available_metrics()`.
        Gs: Generator (documented API: `Gs(z, labels, truncation_psi, noise_mode)`, `mapping`, `synthesis`,
            `latent_shape`, `label_dim`).
        dataset: Real data: `tf_dataset(batch_size, shuffle, repeat, seed)`, `name`, `resolution`, ... .
        num_images: Image count for names without one (`fid`, `is`, ...); `--eval-images-num`.
        run_dir: Results go to `<run_dir>/metric-<name>.jsonl`.
        snapshot_name: Snapshot identifier recorded with the results.
        kimg: Training progress recorded with the results (TensorBoard step: kimg * 1000, images seen).
        batch_size: Images per replica per step.
        strategy: tf.distribute strategy: generation runs on the replicas of this process (under a multi-worker
            strategy the training loop evaluates on the chief alone, which draws the samples one process draws).
        inception_path, vgg16_path: Explicit network files (`--inception`, `--vgg16`).
        cache_dir: Download and real-statistics cache.
        mirror: Mirror reals (when training used mirror augmentation).
        ratio: Content ratio for cropping reals and fakes.
        tb_writer: Optional `tf.summary` writer; scalars go to `Metrics/<name>[/<result>]`.
        seed: Seed for fakes and real sampling.
        print_fn: Where the one-line results and skip messages go.
        missing_only: Skip the metrics that already have a result for `snapshot_name` (a resumed run finishing the
            evaluation a kill interrupted).

    Returns:
        The records written. A metric that cannot run (e.g. IS with pool_3-only weights) is skipped with one
        printed line; if every requested metric fails, the first `UserError` is raised.
    """
    names = [n.strip() for n in (metric_names.split(",") if isinstance(metric_names, str) else metric_names)]
    metrics = [get_metric(n) for n in names if n]
    if missing_only:
        metrics = [m for m in metrics if not is_recorded(run_dir, m.name, snapshot_name)]
    ctx = EvalContext(Gs, dataset, batch_size, strategy, inception_path, vgg16_path, cache_dir, mirror, ratio, seed,
                      print_fn=print_fn)
    counts, errors, ready = {}, [], []
    for m in metrics:
        n = m.num_images if m.num_images is not None else num_images
        if not n:
            raise UserError(f"--eval-images-num: metric '{m.name}' needs an image count; pass --eval-images-num N")
        try:
            m.plan(ctx, n)
            counts[m.name] = n
            ready.append(m)
        except UserError as exc:
            errors.append(exc)
            print_fn(f"{m.name}: skipped: {exc}")
    os.makedirs(run_dir, exist_ok=True)
    records = []
    for m in ready:
        start = time.time()
        results = m.compute(ctx, counts[m.name], **m.options)
        seconds = time.time() - start
        record = dict(metric=m.name, snapshot=snapshot_name, kimg=kimg, value=float(results.pop("value")),
                      num_images=counts[m.name], results=results, seconds=round(seconds, 3), mirror=mirror,
                      ratio=ratio, time=datetime.datetime.now().isoformat(timespec="seconds"),
                      **_network_info(ctx, m.network))
        _append_jsonl(os.path.join(run_dir, f"metric-{m.name}.jsonl"), record)
        print_fn(f"{snapshot_name} time {seconds:.1f}s {m.name} {record['value']:.4f}")
        if tb_writer is not None:  # step = images seen, as the training scalars
            with tb_writer.as_default():
                tf.summary.scalar(f"Metrics/{m.name}", record["value"], step=round(kimg * 1000))
                for key, val in results.items():
                    if isinstance(val, float):
                        tf.summary.scalar(f"Metrics/{m.name}/{key}", val, step=round(kimg * 1000))
            tb_writer.flush()
        records.append(record)
    if errors and not records:
        raise errors[0]
    return records
