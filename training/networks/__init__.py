"""GANformer and baseline networks as `tf.Module`s (the authors' `training/networks.py`)."""

from __future__ import annotations

from typing import Any

from training.networks.discriminator import Discriminator
from training.networks.generator import Generator


def build_networks(preset: str, resolution: int, seed: int = 0, num_channels: int = 3, label_dim: int = 0,
                   **overrides: Any) -> tuple[Generator, Discriminator]:
    """Builds freshly initialized `(G, D)` from a preset and config-field overrides.

    Args:
        preset: `ganformer-ffhq`, `ganformer-clevr`, `ganformer-cityscapes`, `ganformer-bedrooms`, `gan`,
            `stylegan2`, `kgan` or `sagan`.
        resolution: Output resolution (power of two).
        seed: Seed of the initial weights (D uses `seed + 1`).
        num_channels: Image channels.
        label_dim: Number of classes for conditional models (0: unconditional).
        **overrides: Config fields, e.g. `components_num=8`, `channel_max=64`, `num_heads=2`.

    Returns:
        `(G, D)`.
    """
    from training.presets import apply_overrides, configs_from_options, preset_options

    g_cfg, d_cfg = configs_from_options(preset_options(preset), resolution, num_channels, label_dim)
    g_cfg, d_cfg = apply_overrides(g_cfg, d_cfg, overrides)
    return Generator(g_cfg, seed=seed), Discriminator(d_cfg, seed=seed + 1)


__all__ = ["Discriminator", "Generator", "build_networks"]
