"""Evaluation context: lazily loaded feature networks, shared fake passes and disk-cached real statistics.

One `EvalContext` serves one `metrics.registry.evaluate` call: every metric that needs Inception features of N fakes
shares a single generation + Inception pass (with the union of what they need: captured rows for KID, class
probabilities for IS); real-image statistics are cached on disk under a hash of the dataset and all settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dnnlib import download
from metrics import images as image_utils
from metrics.inception import FeatureNet, load_inception
from metrics.inception_score import InceptionScoreAccumulator
from metrics.stats import CacheDamaged, FeatureStats, check_feature_rows, read_npz, save_npz_atomic
from metrics.vgg16 import FEATURE_DIM as VGG16_FEATURE_DIM
from metrics.vgg16 import VGG16, load_vgg16

VGG16_PREPROCESSING = "uint8 -> float32 [0,255], area resize to 224x224, ImageNet mean/std, fc7 after ReLU"
T = TypeVar("T")


@dataclass
class FakePass:
    """Result of one generation + Inception pass over N fakes."""

    stats: FeatureStats
    is_acc: Optional[InceptionScoreAccumulator]


@dataclass
class EvalContext:
    """Shared state of one evaluation (see module docstring).

    Attributes:
        Gs: Generator (documented call API).
        dataset: Dataset with `tf_dataset(...)`, `name`, `resolution`, optional `path`, `num_images`.
        batch_size: Images per replica per step.
        strategy: Optional tf.distribute strategy for generation (on the replicas of this process).
        inception_path: Explicit Inception weights (`--inception`), else the default loading order.
        vgg16_path: Explicit VGG16 weights (`--vgg16`), else cache/download.
        cache_dir: Download and statistics cache dir.
        mirror: Mirror reals as in training.
        ratio: Content ratio for cropping reals and fakes.
        seed: Seed of fakes and of the real-image sampling.
        print_fn: Where notes go (a damaged cache file discarded).
        needs: Planned Inception needs per N: (capture rows, class probabilities).
    """

    Gs: Any
    dataset: Any
    batch_size: int = 8
    strategy: Optional[tf.distribute.Strategy] = None
    inception_path: Optional[str] = None
    vgg16_path: Optional[str] = None
    cache_dir: Optional[str] = None
    mirror: bool = False
    ratio: float = 1.0
    seed: int = 0
    print_fn: Callable[[str], None] = print
    needs: Dict[int, Tuple[bool, bool]] = field(default_factory=dict)
    _inception: Optional[FeatureNet] = None
    _vgg: Optional[Tuple[VGG16, str, str]] = None
    _fake_passes: Dict[int, FakePass] = field(default_factory=dict)

    def inception(self) -> FeatureNet:
        """The Inception network (loaded once)."""
        if self._inception is None:
            self._inception = load_inception(self.inception_path, self.cache_dir)
        return self._inception

    def vgg16(self) -> Tuple[VGG16, str, str]:
        """(VGG16 module, file path, sha256), loaded once."""
        if self._vgg is None:
            self._vgg = load_vgg16(self.vgg16_path, self.cache_dir)
        return self._vgg

    def plan(self, num_images: int, capture: bool = False, probs: bool = False) -> None:
        """Declares what a metric will need from the fake Inception pass of `num_images` images."""
        old = self.needs.get(num_images, (False, False))
        self.needs[num_images] = (old[0] or capture, old[1] or probs)

    @property
    def inclusive(self) -> bool:
        """The original metrics' crop window, unless G crops to the content itself (then reals get G's rows)."""
        return not getattr(getattr(self.Gs, "cfg", None), "crop_ratio", None)

    def fakes(self, num_images: int) -> Any:
        return image_utils.generate_fakes(self.Gs, num_images, self.batch_size, seed=self.seed, ratio=self.ratio,
                                          strategy=self.strategy, inclusive=self.inclusive)

    def reals(self, num_images: int) -> Any:
        return image_utils.iterate_reals(self.dataset, num_images, self.batch_size, ratio=self.ratio,
                                         mirror=self.mirror, seed=self.seed, inclusive=self.inclusive)

    def fake_inception(self, num_images: int) -> FakePass:
        """Generates `num_images` fakes once and runs them through Inception (stats, rows, probs as planned)."""
        if num_images not in self._fake_passes:
            capture, probs = self.needs.get(num_images, (False, False))
            net = self.inception()
            stats = FeatureStats(capture=capture)
            acc = InceptionScoreAccumulator(num_images) if probs else None
            with tqdm(total=num_images, desc=f"fakes x{num_images} -> inception", unit="img", leave=False) as bar:
                for batch in self.fakes(num_images):
                    if acc is not None:
                        feats, p = net.features_and_probs(batch)
                        acc.append(p)
                    else:
                        feats = net.features(batch)
                    stats.append(feats)
                    bar.update(len(batch))
            self._fake_passes[num_images] = FakePass(stats, acc)
        return self._fake_passes[num_images]

    def real_stats_path(self, kind: str, num_images: int, extra: Dict[str, Any]) -> str:
        """Cache file of real statistics, keyed by a hash of the dataset and every setting that matters."""
        key = dict(kind=kind, num_images=num_images, ratio=self.ratio, inclusive=self.inclusive, mirror=self.mirror,
                   seed=self.seed,
                   dataset=str(getattr(self.dataset, "path", "")), name=str(getattr(self.dataset, "name", "")),
                   resolution=getattr(self.dataset, "resolution", None),
                   dataset_images=getattr(self.dataset, "num_images", None), **extra)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(key["name"]))[:40] or "dataset"
        return os.path.join(self.cache_dir or download.default_cache_dir(), "metrics",
                            f"{digest}-{kind}-{safe}-{num_images}.npz")

    def _load_cached(self, path: str, load: Callable[[str], T]) -> Optional[T]:
        """`load(path)` of a real-statistics cache file; None when there is none, or when it is damaged (it is then
        deleted with a one-line note, and the caller computes and caches the statistics again)."""
        if not os.path.isfile(path):
            return None
        try:
            return load(path)
        except CacheDamaged as exc:
            self.print_fn(f"metrics cache {path}: damaged ({exc}); discarded, computing it again")
            try:
                os.remove(path)
            except FileNotFoundError:
                pass  # another process discarded it first
            return None

    def real_inception(self, num_images: int, capture: bool = False) -> FeatureStats:
        """Inception statistics of up to `num_images` reals (cached on disk; rows kept when any metric needs them,
        so that FID and KID at the same count share one pass)."""
        capture = capture or self.needs.get(num_images, (False, False))[0]
        net = self.inception()
        path = self.real_stats_path("inception", num_images, dict(net=net.sha256, pre=net.preprocessing,
                                                                  capture=capture))
        cached = self._load_cached(path, lambda p: FeatureStats.load(p, capture, num_images,
                                                                      getattr(net, "feature_dim", None)))
        if cached is not None:
            return cached
        stats = FeatureStats(capture=capture)
        with tqdm(total=num_images, desc=f"reals x{num_images} -> inception", unit="img", leave=False) as bar:
            for batch in self.reals(num_images):
                stats.append(net.features(batch))
                bar.update(len(batch))
        stats.save(path)
        return stats

    def _vgg_features(self, batches: Any, total: int, desc: str) -> np.ndarray:
        vgg = self.vgg16()[0]
        fn = tf.function(vgg.features, reduce_retracing=True)
        rows = []
        with tqdm(total=total, desc=desc, unit="img", leave=False) as bar:
            for batch in batches:
                rows.append(fn(tf.convert_to_tensor(batch)).numpy())
                bar.update(len(batch))
        return np.concatenate(rows, axis=0)

    def real_vgg(self, num_images: int) -> np.ndarray:
        """VGG16 fc7 features of up to `num_images` reals `[N, 4096]` (cached on disk)."""
        _, _, sha = self.vgg16()
        path = self.real_stats_path("vgg16", num_images, dict(net=sha, pre=VGG16_PREPROCESSING))
        cached = self._load_cached(path, lambda p: check_feature_rows(read_npz(p), num_images, VGG16_FEATURE_DIM))
        if cached is not None:
            return cached
        feats = self._vgg_features(self.reals(num_images), num_images, f"reals x{num_images} -> vgg16")
        save_npz_atomic(path, features=feats)
        return feats

    def fake_vgg(self, num_images: int) -> np.ndarray:
        """VGG16 fc7 features of `num_images` fakes `[N, 4096]`."""
        return self._vgg_features(self.fakes(num_images), num_images, f"fakes x{num_images} -> vgg16")
