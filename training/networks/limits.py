"""The size of a network built from settings read from a file, known before any of its memory is allocated.

Settings that are each in range (the ranges declared on the config fields, `training.config`) can still multiply
into a huge network (e.g. resolution 16384 with 16384 channels). `network_values` builds the network shape-only
(`ShapeOnlyRng`: variables are counted, never allocated) and `check_networks_fit` refuses networks that need more
values than the file holds: every variable of a network loaded from a file is copied from the file, so a network
larger than the file's data cannot be the file's network.
"""

from __future__ import annotations

from typing import Mapping, Union

from dnnlib import limits
from dnnlib.util import UserError
from training.config import DiscriminatorConfig, GeneratorConfig
from training.networks.discriminator import Discriminator
from training.networks.generator import Generator
from training.networks.module import ShapeOnlyRng

NetworkConfig = Union[GeneratorConfig, DiscriminatorConfig]


def network_values(cfg: NetworkConfig, where: str) -> int:
    """Number of float32 values the network of `cfg` holds (trainable or not), counted without allocating them.

    Args:
        cfg: A generator or discriminator config (validated here).
        where: Names the config in messages, e.g. "net.pkl [G]".

    Raises:
        UserError: The settings are invalid or do not describe a network that can be built.
    """
    rng = ShapeOnlyRng()
    try:
        if isinstance(cfg, GeneratorConfig):
            Generator(cfg, seed=rng)
        else:
            Discriminator(cfg, seed=rng)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    except (ValueError, TypeError, ArithmeticError, IndexError, KeyError) as exc:
        raise UserError(f"{where}: the network settings do not describe a buildable network "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    return rng.num_values


def check_networks_fit(configs: Mapping[str, NetworkConfig], file_values: int, source: str) -> None:
    """Refuses settings whose networks need more values than the file holds, or more than the network-file cap.

    Args:
        configs: Network name -> config, e.g. {"G": ..., "D": ..., "Gs": ...} ({"": cfg} for one network that
            `source` already names).
        file_values: Number of numeric values the file's variables hold (all networks).
        source: The file, for messages.

    Raises:
        UserError: One line naming the file, what the settings need and what the file holds.
    """
    need = {name: network_values(cfg, f"{source} [{name}]" if name else source) for name, cfg in configs.items()}
    total = sum(need.values())
    cap_values = limits.NETWORK_FILE_CAP // 4
    if total > min(file_values, cap_values):
        shown = " (" + ", ".join(f"{name} {count:,}" for name, count in need.items()) + ")" if len(need) > 1 else ""
        raise UserError(f"{source}: the network settings describe {total:,} values{shown} but the file holds "
                        f"{file_values:,} (and at most {cap_values:,} are allowed: 4x the largest real model); "
                        f"the settings are corrupt or crafted")
