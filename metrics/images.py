"""Image streams for the metrics: generated fakes (on the replicas of this process) and dataset reals, as uint8
NHWC batches.

Generation runs on the replicas of the calling process only. Under a multi-worker strategy the chief evaluates alone
(the training loop calls the metrics on the chief; the other workers wait at their next step), so it draws exactly
the latents and labels one process with the same local devices draws: a metric does not depend on the number of
workers.

Both are cropped to the dataset's content ratio by `dnnlib.crop.crop_to_content`: the way the original metrics
did (`inclusive`: rows [floor((1 - ratio) H / 2), ceil((1 + ratio) H / 2)] kept inclusive, one extra row, e.g. 129
rows for ratio 0.5 at 256) so that numbers stay comparable, except for a generator that returns only the content
rows itself (`crop_ratio`): its images are not cropped again and the reals get the same rows. Reals are mirrored at random (half of them, seeded) when training
used mirror augmentation. Fakes are quantized as round(clip((x + 1) * 127.5, 0, 255)).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.quantize import quantize
from dnnlib.crop import crop_to_content


def to_rgb(images: np.ndarray) -> np.ndarray:
    """`[B, H, W, 1|3]` -> `[B, H, W, 3]` (grayscale repeated)."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def random_labels(rng: np.random.RandomState, num: int, label_dim: int) -> Optional[np.ndarray]:
    """Uniformly random one-hot labels `[num, label_dim]` float32, or None for unconditional models."""
    if not label_dim:
        return None
    return np.eye(label_dim, dtype=np.float32)[rng.randint(0, label_dim, size=num)]


def num_replicas(strategy: Optional[tf.distribute.Strategy]) -> int:
    """Replicas of `strategy` in this process: all of a one-process strategy's, this worker's share of a
    multi-worker one (1 without a strategy)."""
    if strategy is None:
        return 1
    try:
        return len(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy (no `strategy.scope()` entered) has one replica and no device list
        return strategy.num_replicas_in_sync


def replicated(strategy: Optional[tf.distribute.Strategy], fn: Callable[..., tf.Tensor]) -> Callable[..., np.ndarray]:
    """Wraps `fn(*tensors) -> tensor` to run on the replicas of this process: host arrays are split along axis 0 (one
    equal chunk per local replica), `strategy.run` executes `fn`, and the per-replica results are concatenated back
    in chunk order. `fn` must not communicate across replicas: under a multi-worker strategy only the calling worker
    runs it. Without a strategy it is a plain call.
    """
    if strategy is None:
        return lambda *arrays: fn(*[tf.convert_to_tensor(a) for a in arrays]).numpy()
    step = tf.function(lambda *args: strategy.run(fn, args=args))
    n = num_replicas(strategy)

    def call(*arrays: np.ndarray) -> np.ndarray:
        chunks = [np.array_split(a, n) for a in arrays]
        # A worker's replicas have consecutive ids (its index * n + 0..n-1): the id modulo n is the local position,
        # which is also the order of `experimental_local_results`.
        dist = [strategy.experimental_distribute_values_from_function(
            lambda ctx, c=c: c[ctx.replica_id_in_sync_group % n]) for c in chunks]
        out = step(*dist)
        return np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)], axis=0)

    return call


def generate_fakes(Gs: Any, num_images: int, batch_size: int, seed: int = 0, ratio: float = 1.0,
                   strategy: Optional[tf.distribute.Strategy] = None, truncation_psi: float = 1.0,
                   noise_mode: str = "random", inclusive: bool = True) -> Iterator[np.ndarray]:
    """Yields uint8 `[B, H', W, 3]` generated images, `num_images` in total, cropped to `ratio`.

    Args:
        Gs: Generator with `Gs(z, labels=None, truncation_psi, noise_mode)`, `latent_shape`, `label_dim`.
        num_images: Total number of images.
        batch_size: Images per replica per step (a step generates batch_size * the replicas of this process).
        seed: Seed of the latents and labels.
        ratio: Content height/width ratio for cropping.
        strategy: Optional tf.distribute strategy; generation then runs on the replicas of this process.
        truncation_psi: 1.0 (no truncation) for metrics.
        noise_mode: Noise inputs; "random" as the original validation-mode generator.
        inclusive: The original metrics' crop window (see module docstring).
    """
    rng = np.random.RandomState(seed)
    global_batch = batch_size * num_replicas(strategy)
    label_dim = int(getattr(Gs, "label_dim", 0) or 0)

    def synth(z: tf.Tensor, labels: Optional[tf.Tensor] = None) -> tf.Tensor:
        out = Gs(z, labels=labels, truncation_psi=truncation_psi, noise_mode=noise_mode)
        return quantize(out[0] if isinstance(out, (tuple, list)) else out)

    run = replicated(strategy, synth)
    done = 0
    while done < num_images:
        z = rng.standard_normal([global_batch, *Gs.latent_shape]).astype(np.float32)
        labels = random_labels(rng, global_batch, label_dim)
        images = run(z) if labels is None else run(z, labels)
        images = to_rgb(crop_to_content(images, ratio, inclusive=inclusive))[: num_images - done]
        done += len(images)
        yield images


def iterate_reals(dataset: Any, num_images: int, batch_size: int, ratio: float = 1.0, mirror: bool = False,
                  seed: int = 0, inclusive: bool = True) -> Iterator[np.ndarray]:
    """Yields uint8 `[B, H', W, 3]` dataset images (at most `num_images`, fewer if the dataset is smaller).

    Args:
        dataset: Object with `tf_dataset(batch_size, shuffle, repeat, seed)` yielding uint8 `[B, H, W, C]`
            (or `(images, labels)`).
        num_images: Maximum number of images.
        batch_size: Images per batch.
        ratio: Content ratio for cropping.
        mirror: Flip a random half of the images horizontally (as training with mirror augmentation).
        seed: Seed for the shuffle and the mirroring.
        inclusive: The original metrics' crop window (see module docstring).
    """
    rng = np.random.RandomState(seed + 1)
    done = 0
    for element in dataset.tf_dataset(batch_size, shuffle=True, repeat=False, seed=seed):
        images = element[0] if isinstance(element, (tuple, list)) else element
        images = np.asarray(images.numpy() if hasattr(images, "numpy") else images)[: num_images - done]
        if mirror:
            flip = rng.rand(len(images)) < 0.5
            images = images.copy()
            images[flip] = images[flip, :, ::-1]
        images = to_rgb(crop_to_content(images, ratio, inclusive=inclusive))
        done += len(images)
        yield images
        if done >= num_images:
            return
