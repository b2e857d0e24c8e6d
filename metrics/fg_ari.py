"""FG-ARI of attention maps: do the latents' attention regions follow the objects a generator draws?

Generated images have no ground truth, so the objects are found by `metrics.segment` (objects on a plain grey
floor). For every generated image, each pixel gets the latent with the highest attention in the last attention
layer (averaged over heads, upsampled to the image); the score is the adjusted Rand index between that labeling and
the segmenter's object regions, over the segmenter's object pixels, averaged over images. Random maps score ~0;
maps whose regions coincide with the objects score 1.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Optional

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dnnlib.tflib.ops.quantize import quantize
from dnnlib.util import UserError
from metrics import segment

SCENE_DATASETS = ("shapes", "clevr")


def check_scene_data(dataset: Any, Gs: Any) -> None:
    """Raises a one-line UserError unless the data are grey-floor scenes and Gs has attention maps."""
    source = ""
    meta = os.path.join(str(getattr(dataset, "path", "")), "dataset.json")
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            source = str(json.load(f).get("source", ""))
    name = str(getattr(dataset, "name", ""))
    if name not in SCENE_DATASETS and "shapes renderer" not in source:
        raise UserError(f"fg_ari: needs scenes of objects on a plain grey floor (the built-in shapes dataset or "
                        f"CLEVR); dataset '{name}' is not one; drop fg_ari from --metrics")
    cfg = getattr(Gs, "cfg", None)
    if cfg is None or not getattr(cfg, "transformer", False):
        raise UserError("fg_ari: scores attention maps, and this generator has none (not a GANformer); "
                        "drop fg_ari from --metrics")


def images_and_labels(Gs: Any, num_images: int, batch_size: int, seed: int = 0) -> Iterator[tuple]:
    """Yields (uint8 `[B, H, W, 3]` images, int `[B, H, W]` argmax-over-latents of the last attention layer)."""
    rng = np.random.RandomState(seed)

    @tf.function(reduce_retracing=True)
    def run(z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, maps = Gs(z, None, truncation_psi=1.0, noise_mode="random", return_maps=True)
        last = tf.reduce_mean(maps[:, :, -1], axis=2)  # [B, k, H, W] (heads averaged)
        return quantize(images), tf.argmax(last, axis=1, output_type=tf.int32)

    done = 0
    while done < num_images:
        n = min(batch_size, num_images - done)
        z = rng.standard_normal([n, *Gs.latent_shape]).astype(np.float32)
        images, labels = run(tf.constant(z))
        done += n
        yield images.numpy(), labels.numpy()


def fg_ari(Gs: Any, num_images: int, batch_size: int = 16, seed: int = 0,
           progress: bool = True) -> dict[str, float]:
    """FG-ARI of `num_images` generated images (see the module docstring).

    Returns:
        {"value": mean ARI, "std": its standard deviation, "num_scored": images with >= 2 object pixels,
         "object_fraction": mean fraction of pixels the segmenter marks as objects}.
    """
    scores: list[float] = []
    fractions: list[float] = []
    with tqdm(total=num_images, desc="fg_ari", unit="img", leave=False, disable=not progress) as bar:
        for images, labels in images_and_labels(Gs, num_images, batch_size, seed):
            regions = segment.segment(images)
            scores += segment.foreground_ari(regions, labels)
            fractions += list((regions > 0).mean(axis=(1, 2)))
            bar.update(len(images))
    if not scores:
        raise UserError("fg_ari: the segmenter found no objects in any generated image")
    return {"value": float(np.mean(scores)), "std": float(np.std(scores)), "num_scored": len(scores),
            "object_fraction": float(np.mean(fractions))}


def segmenter_ari(num_images: int = 1000, resolution: int = 32, seed: int = 0,
                  batch: int = 100) -> dict[str, Optional[float]]:
    """The segmenter against the renderer's own object ids on rendered `shapes` images.

    Returns:
        {"fg_ari": ARI over the true object pixels, "ari": ARI over all pixels (floor included),
         "object_recall", "floor_false_positive": pixel rates, "num_images"}.
    """
    from training.data import shapes_render
    fg, full, hit, miss_floor, n_obj, n_floor = [], [], 0, 0, 0, 0
    for start in range(0, num_images, batch):
        images, ids = shapes_render.render_with_ids(seed, start, min(batch, num_images - start), resolution)
        regions = segment.segment(images)
        fg += segment.foreground_ari(ids, regions)
        full += [segment.adjusted_rand_index(a, b) for a, b in zip(ids, regions)]
        hit += int(((ids > 0) & (regions > 0)).sum())
        miss_floor += int(((ids == 0) & (regions > 0)).sum())
        n_obj += int((ids > 0).sum())
        n_floor += int((ids == 0).sum())
    return {"fg_ari": float(np.mean(fg)), "ari": float(np.mean(full)), "object_recall": hit / max(n_obj, 1),
            "floor_false_positive": miss_floor / max(n_floor, 1), "num_images": num_images,
            "resolution": resolution, "seed": seed}
