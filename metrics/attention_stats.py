"""Attention diagnostics of a GANformer generator: how sharp its attention is and whether each latent owns a region.

For B images from fixed latents (stored noise), with maps `A[b, j, l, n, p]` (latent j, attention layer l, head n,
pixel p of the R×R image; nearest-upsampled from the layer's grid, which leaves every per-pixel mean unchanged):

- **entropy** of layer l: `H = −Σ_j A log A / log k`, averaged over images, heads and pixels (1 = uniform over the k
  latents, 0 = every pixel attends to one latent).
- **logit spread** of layer l: the standard deviation over j of `log A` (= of the attention logits, since a softmax
  shifts all logits of a pixel by one constant), averaged over images, heads and pixels: the logits' scale that
  decides how sharp the softmax is.
- **win share** of latent j in layer l: the fraction of pixels whose argmax latent (heads averaged) is j; summarized by
  its maximum and by the number of latents in use, `exp(entropy of the shares) / k` (1 = every latent wins as many
  pixels, 1/k = one latent wins all).
- **change**: resampling one local latent j (its w replaced by the w of a fresh z; the other latents, the global
  latent and the noise kept) changes pixel p by `Δ_bj(p) = ‖x'_bj(p) − x_b(p)‖₂` over the colour channels (images in
  [−1, 1]); reported as its mean over b, j and p.
- **locality**: with `R_bj` the pixels that latent j wins in the last attention layer of the unchanged image,
  `share_bj = Σ_{p∈R_bj} Δ_bj(p) / Σ_p Δ_bj(p)` is the part of the change inside the latent's own region, and
  `area_bj = |R_bj| / R²` the part expected by chance. `locality = mean(share) / mean(area)` over every (b, j) whose
  change is not negligible; since the regions partition the image, `mean(area) = 1/k` when every pair counts, so
  locality is `k · mean(share)`: 1 = chance, k = each latent changes only its own region.

Resampling happens in w space so that a mapping network that mixes the latents (`--mapping-ltnt2ltnt`) does not
spread one resampled z over all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np
import tensorflow as tf

from dnnlib.util import UserError

# Mean per-pixel change (in [-1, 1] image units) below which resampling a latent counts as changing nothing.
NEGLIGIBLE_CHANGE = 1e-6


@dataclass
class AttentionProbe:
    """What one probe of a generator saw.

    Attributes:
        maps: `[B, k, L, N, R, R]` attention maps of the unchanged images.
        images: `[B, R, R, C]` unchanged images.
        changes: `[B, k, R, R]` per-pixel change when latent j is resampled.
    """

    maps: np.ndarray
    images: np.ndarray
    changes: np.ndarray


class Prober:
    """Probes a generator on fixed latents: once unchanged, then once per local latent with that latent resampled.

    The synthesis is compiled once (per probe size), so probing every training tick costs k + 1 synthesis passes
    of `num_images` images and no retracing.

    Args:
        G: A generator with attention (`G.cfg.transformer`), called as `G.mapping(z, labels)` and
            `G.synthesis(ws, noise_mode=..., return_maps=True)`.
        num_images: B, the number of images.
        seed: Seed of the latents and of the replacement latents (the same every call).
        batch_size: Images per synthesis call.
    """

    def __init__(self, G: Any, num_images: int = 8, seed: int = 0, batch_size: int = 8) -> None:
        check_generator(G)
        self.G, self.batch_size = G, batch_size
        rng = np.random.RandomState(seed)
        self.z = rng.standard_normal([num_images, *G.latent_shape]).astype(np.float32)
        self.z2 = rng.standard_normal([num_images, *G.latent_shape]).astype(np.float32)
        self.labels = None
        if G.label_dim:
            self.labels = np.eye(G.label_dim, dtype=np.float32)[np.arange(num_images) % G.label_dim]

        @tf.function(reduce_retracing=True)
        def synth(ws: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return G.synthesis(ws, noise_mode="const", return_maps=True)

        self._synth = synth

    def _ws(self, z: np.ndarray, sl: slice) -> tf.Tensor:
        labels = None if self.labels is None else tf.constant(self.labels[sl])
        return self.G.mapping(tf.constant(z[sl]), labels)  # [b, K, S, d]

    def batches(self) -> Iterator[AttentionProbe]:
        """Yields the maps, images and per-latent changes of the fixed latents, one batch at a time."""
        k = self.G.cfg.components_num
        for start in range(0, len(self.z), self.batch_size):
            sl = slice(start, start + self.batch_size)
            ws, ws2 = self._ws(self.z, sl), self._ws(self.z2, sl)
            img, maps = self._synth(ws)
            img = img.numpy()
            delta = []
            for j in range(k):
                keep = tf.reshape(tf.range(ws.shape[1]) != j, [1, -1, 1, 1])
                img_j, _ = self._synth(tf.where(keep, ws, ws2))
                delta.append(np.sqrt(np.sum(np.square(img_j.numpy() - img), axis=-1)))
            yield AttentionProbe(maps.numpy(), img, np.stack(delta, axis=1))

    def __call__(self) -> AttentionProbe:
        """All batches at once (small probes; `summarize_batches` streams large ones)."""
        parts = list(self.batches())
        return AttentionProbe(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("maps", "images", "changes")))


def check_generator(G: Any) -> None:
    """Raises a one-line UserError unless `G` has latent->image attention maps."""
    cfg = getattr(G, "cfg", None)
    if cfg is None or not getattr(cfg, "transformer", False) or not getattr(G, "num_attention_layers", 0):
        raise UserError("locality: measures attention maps, and this generator has none (not a GANformer); "
                        "drop locality from --metrics")


class Summary:
    """Accumulates the statistics of probe batches (see the module docstring); `result()` gives the flat scalars.

    Keys: `l<i>/entropy`, `l<i>/logit_spread`, `l<i>/win_share_max`, `l<i>/latents_used` for every attention layer,
    `change` (mean per-pixel change of one resampled latent), `locality`, `locality_share` (both left out when no
    latent changes the image).
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.pixels = 0
        self.wins: Optional[np.ndarray] = None  # [L, k] pixel counts
        self.share = self.area = 0.0
        self.pairs = 0

    def add(self, probe: AttentionProbe) -> "Summary":
        """Adds one batch `[B, ...]`; returns self."""
        maps = probe.maps
        k, layers = maps.shape[1], maps.shape[2]
        p = np.clip(maps.astype(np.float64), 1e-30, 1.0)
        logp = np.log(p)
        entropy = (-np.sum(p * logp, axis=1) / math.log(k)).mean(axis=(0, 2, 3, 4))  # [L]
        spread = np.std(logp, axis=1).mean(axis=(0, 2, 3, 4))  # [L]
        n = maps.shape[0] * maps.shape[-1] * maps.shape[-2]
        wins = np.stack([np.bincount(hard_regions(maps[:, :, i]).ravel(), minlength=k) for i in range(layers)])
        self.wins = wins if self.wins is None else self.wins + wins
        for i in range(layers):
            self._add(f"l{i}/entropy", entropy[i] * n)
            self._add(f"l{i}/logit_spread", spread[i] * n)
        self._add("change", float(probe.changes.mean()) * n)
        self.pixels += n
        share, area, pairs = _locality_sums(probe.changes, hard_regions(maps[:, :, -1]))
        self.share, self.area, self.pairs = self.share + share, self.area + area, self.pairs + pairs
        return self

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def result(self) -> dict[str, float]:
        """The flat scalars of everything added."""
        out = {key: value / self.pixels for key, value in self.sums.items()}
        for i, wins in enumerate(self.wins):
            shares = wins / wins.sum()
            out[f"l{i}/win_share_max"] = float(shares.max())
            nz = shares[shares > 0]
            out[f"l{i}/latents_used"] = float(math.exp(-np.sum(nz * np.log(nz))) / len(shares))
        if self.pairs:
            out["locality"] = self.share / self.area
            out["locality_share"] = self.share / self.pairs
        return dict(sorted(out.items()))


def summarize(probe: AttentionProbe) -> dict[str, float]:
    """The flat scalars of one probe (`Summary` keys)."""
    return Summary().add(probe).result()


def summarize_batches(prober: Prober) -> dict[str, float]:
    """The flat scalars of a whole probe, streamed batch by batch (memory of one batch)."""
    summary = Summary()
    for batch in prober.batches():
        summary.add(batch)
    return summary.result()


def layer_stats(maps: np.ndarray) -> list[dict[str, float]]:
    """Per attention layer of `[B, k, L, N, R, R]` maps: `{"entropy", "logit_spread", "win_share_max",
    "latents_used"}` (see the module docstring)."""
    result = Summary().add(AttentionProbe(maps, np.zeros([0]), np.zeros([maps.shape[0], maps.shape[1], 1, 1]))).result()
    return [{key: result[f"l{i}/{key}"] for key in ("entropy", "logit_spread", "win_share_max", "latents_used")}
            for i in range(maps.shape[2])]


def hard_regions(layer_maps: np.ndarray) -> np.ndarray:
    """Argmax latent per pixel of one layer's maps `[B, k, N, R, R]` (heads averaged) -> int `[B, R, R]`."""
    return np.argmax(layer_maps.mean(axis=2), axis=1)


def _locality_sums(changes: np.ndarray, regions: np.ndarray) -> tuple[float, float, int]:
    """Sums of share and area over the (image, latent) pairs whose change is not negligible, and their count.

    Args:
        changes: `[B, k, R, R]` non-negative per-pixel change when latent j is resampled.
        regions: int `[B, R, R]` winning latent per pixel.
    """
    k = changes.shape[1]
    own = regions[:, None] == np.arange(k)[None, :, None, None]  # [B, k, R, R]
    total = changes.sum(axis=(2, 3))  # [B, k]
    counted = total > NEGLIGIBLE_CHANGE * changes.shape[2] * changes.shape[3]
    share = (changes * own).sum(axis=(2, 3))[counted] / total[counted]
    area = own.mean(axis=(2, 3))[counted]
    return float(share.sum()), float(area.sum()), int(counted.sum())


def locality(changes: np.ndarray, regions: np.ndarray) -> dict[str, float]:
    """The locality score of resampling changes against the latents' hard regions.

    Args:
        changes: `[B, k, R, R]` non-negative per-pixel change when latent j is resampled.
        regions: int `[B, R, R]` winning latent per pixel.

    Returns:
        {"value": mean share / mean area (1 = chance), "share": mean share, "area": mean area of the counted
        pairs, "pairs": the number of counted (image, latent) pairs}.

    Raises:
        UserError: when no latent changes its image (the generator ignores its local latents).
    """
    share, area, pairs = _locality_sums(changes, regions)
    if not pairs:
        raise UserError("locality: resampling a local latent changes no image; the generator ignores its latents")
    return {"value": share / area, "share": share / pairs, "area": area / pairs, "pairs": pairs}
