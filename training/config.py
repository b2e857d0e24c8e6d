"""Typed network configurations.

`GeneratorConfig` and `DiscriminatorConfig` hold every architectural option of the authors' `G_GANformer` /
`D_GANformer` (their `training/networks.py`); `validate()` rejects inconsistent combinations with a one-line `UserError`. Presets live in
`training/presets.py`.

Every field declares its range and its resume behaviour (`dnnlib.options.option` metadata, through `_f`): a
runtime field (sampling and regularization settings) may differ between the runs that continue one checkpoint; any
other field describes the architecture, and `dnnlib.options.changes` reports a change of it as incompatible. Nested
configs are compared field by field.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from dnnlib.options import ARCHITECTURE, RUNTIME, Range, coerce, fields_of, option, spec_of
from dnnlib.util import UserError

ARCHITECTURES = ("orig", "skip", "resnet")
NORMS = (None, "layer", "instance", "batch")
INTEGRATIONS = ("add", "mul", "both")
POS_TYPES = ("sinus", "linear", "trainable", "trainable2d")
POS_INITS = ("uniform", "normal")
MERGE_TYPES = ("sum", "softmax", "max", "leaves")


def _f(default: Any, lo: Optional[float] = None, hi: Optional[float] = None, runtime: bool = False) -> Any:
    """A config field: its default, its inclusive range (numbers) and whether it may change on resume (`runtime`:
    sampling and regularization settings). Ranges keep a setting read from a file (e.g. 2**40 channels) from
    reaching the network code; the size of the whole network is bounded separately (training.networks.limits), since
    settings that are each in range can still multiply into a huge network."""
    return option(default, flag="", range=None if lo is None else Range(lo, hi),
                  resume=RUNTIME if runtime else ARCHITECTURE)


def field_range(cls: type, name: str) -> Optional[Range]:
    """The declared range of a config field (None: any)."""
    return spec_of(fields_of(cls)[name]).range


def check_fields(config: Any, where: str) -> None:
    """Checks every field of a config dataclass against its annotated type and declared range (in place: numpy
    scalars become Python ones, ints in float fields become floats).

    Raises:
        UserError: One line naming the setting, what it must be and what it is.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = coerce(where, f.name, getattr(config, f.name), hints[f.name])
        limits = spec_of(f).range
        if limits is not None and value is not None and not limits.contains(value):
            raise UserError(f"{where}: {f.name}={value} is out of range [{_number(limits.lo)}, {_number(limits.hi)}]")
        setattr(config, f.name, value)


def _number(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() else f"{x:g}"


@dataclass
class AttentionConfig:
    """Options of the bipartite attention layers shared by G and D (the authors' `transformer_layer`)."""

    num_heads: int = _f(1, 1, 1 << 10)
    norm: Optional[str] = None
    integration: str = "add"
    kmeans: bool = False
    kmeans_iters: int = _f(1, 1, 64)
    use_pos: bool = False
    pos_dim: Optional[int] = _f(None, 1, 1 << 14)
    pos_type: str = "sinus"
    pos_init: str = "uniform"
    pos_directions_num: int = _f(2, 1, 64)
    ltnt_gate: bool = False
    img_gate: bool = False
    attention_dropout: float = _f(0.12, runtime=True)

    def validate(self, where: str) -> None:
        """Raises `UserError` on bad values; `where` names the config (e.g. "G")."""
        check_fields(self, where)
        _choice(where, "norm", self.norm, NORMS)
        _choice(where, "integration", self.integration, INTEGRATIONS)
        _choice(where, "pos_type", self.pos_type, POS_TYPES)
        _choice(where, "pos_init", self.pos_init, POS_INITS)
        if self.num_heads < 1 or self.kmeans_iters < 1 or self.pos_directions_num < 1:
            raise UserError(f"{where}: num_heads, kmeans_iters and pos_directions_num must be >= 1")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise UserError(f"{where}: attention_dropout must be in [0, 1), got {self.attention_dropout}")


@dataclass
class GeneratorConfig:
    """Generator options (names follow the original's CLI / static kwargs)."""

    resolution: int = _f(256, 4, 1 << 14)
    num_channels: int = _f(3, 1, 64)
    label_dim: int = _f(0, 0, 1 << 16)
    components_num: int = _f(1, 1, 256)
    latent_dim: int = _f(512, 1, 1 << 14)
    architecture: str = "skip"
    transformer: bool = False
    style: bool = True
    latent_stem: bool = False
    local_noise: bool = True
    channel_base: int = _f(16384, 1, 1 << 22)
    channel_max: int = _f(512, 1, 1 << 14)
    tanh: bool = False
    crop_ratio: Optional[float] = _f(None, 1e-3, 1.0)
    mapping_layers: int = _f(8, 0, 64)
    mapping_lrmul: float = _f(0.01, 1e-6, 1e3)
    mapping_dim: Optional[int] = _f(None, 1, 1 << 14)
    mapping_resnet: bool = False
    mapping_shared_dim: Optional[int] = _f(None, 1, 1 << 14)
    mapping_ltnt2ltnt: bool = False
    start_res: int = _f(0, 0, 32)
    end_res: int = _f(8, 0, 32)
    img2img: int = _f(0, 0, 14)
    img2ltnt: bool = False
    ltnt2ltnt: bool = False
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    kgan: bool = False
    merge_layer: int = _f(-1, -1, 14)
    merge_type: str = "sum"
    merge_same: bool = False
    truncation_psi: float = _f(0.75, -100.0, 100.0, runtime=True)
    style_mixing: float = _f(0.9, runtime=True)
    component_mixing: float = _f(0.0, runtime=True)
    component_dropout: float = _f(0.0, runtime=True)
    w_avg_beta: float = _f(0.995, 0.0, 1.0, runtime=True)

    @property
    def res_log2(self) -> int:
        """L = log2(resolution)."""
        return self.resolution.bit_length() - 1

    @property
    def num_latents(self) -> int:
        """K: k local latents plus one global latent when the transformer is on."""
        return self.components_num + 1 if self.transformer else self.components_num

    @property
    def num_ws(self) -> int:
        """Broadcast slots of w: 2L - 1."""
        return 2 * self.res_log2 - 1

    def validate(self) -> "GeneratorConfig":
        """Raises `UserError` on inconsistent options; returns self."""
        check_fields(self, "G")
        _check_common("G", self.resolution, self.num_channels, self.label_dim, self.architecture)
        self.attention.validate("G")
        _choice("G", "merge_type", self.merge_type, MERGE_TYPES)
        if self.components_num < 1 or self.latent_dim < 1:
            raise UserError("G: components_num and latent_dim must be >= 1")
        if self.components_num > 1 and not (self.transformer or self.kgan):
            raise UserError("G: components_num > 1 needs the transformer (--transformer) or k-GAN (--kgan)")
        if self.transformer and self.kgan:
            raise UserError("G: --transformer and --kgan are exclusive")
        if self.kgan and self.merge_layer >= 0 and not 2 <= self.merge_layer <= self.res_log2:
            raise UserError(f"G: --merge-layer must be in [2, {self.res_log2}] (log2 resolution) or -1 for the last")
        if self.img2img and not 2 <= self.img2img <= self.res_log2:
            raise UserError(f"G: --g-img2img must be a log2 resolution in [2, {self.res_log2}] or 0")
        if (self.img2ltnt or self.ltnt2ltnt) and not self.transformer:
            raise UserError("G: --g-img2ltnt / --g-ltnt2ltnt need --transformer")
        if self.attention.use_pos and self.transformer and self.pos_dim % 4 and self.attention.pos_type == "sinus":
            raise UserError(f"G: sinusoidal positions need pos_dim divisible by 4, got {self.pos_dim} (--pos-dim; "
                            "default: --latent-size / --components-num)")
        for name in ("style_mixing", "component_mixing", "component_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"G: {name} must be in [0, 1]")
        return self

    @property
    def pos_dim(self) -> int:
        """Dimension of the image-grid positional encodings (default: the latent dimension)."""
        return self.attention.pos_dim or self.latent_dim


@dataclass
class DiscriminatorConfig:
    """Discriminator options."""

    resolution: int = _f(256, 4, 1 << 14)
    num_channels: int = _f(3, 1, 64)
    label_dim: int = _f(0, 0, 1 << 16)
    architecture: str = "resnet"
    channel_base: int = _f(16384, 1, 1 << 22)
    channel_max: int = _f(512, 1, 1 << 14)
    mbstd_group_size: int = _f(4, 0, 1 << 10)
    mbstd_num_channels: int = _f(1, 0, 1 << 10)
    transformer: bool = False
    components_num: int = _f(1, 1, 256)
    latent_dim: int = _f(512, 1, 1 << 14)
    start_res: int = _f(0, 0, 32)
    end_res: int = _f(8, 0, 32)
    img2img: int = _f(0, 0, 14)
    ltnt2ltnt: bool = False
    crop_ratio: Optional[float] = _f(None, 1e-3, 1.0)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    @property
    def res_log2(self) -> int:
        """L = log2(resolution)."""
        return self.resolution.bit_length() - 1

    def validate(self) -> "DiscriminatorConfig":
        """Raises `UserError` on inconsistent options; returns self."""
        check_fields(self, "D")
        _check_common("D", self.resolution, self.num_channels, self.label_dim, self.architecture)
        self.attention.validate("D")
        if self.mbstd_group_size < 0 or self.mbstd_num_channels < 0:
            raise UserError("D: mbstd_group_size and mbstd_num_channels must be >= 0")
        if self.img2img and not 2 <= self.img2img <= self.res_log2:
            raise UserError(f"D: --d-img2img must be a log2 resolution in [2, {self.res_log2}] or 0")
        return self


def _choice(where: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        shown = ", ".join(str(a) for a in allowed)
        raise UserError(f"{where}: {name}={value!r} is not one of: {shown}")


def _check_common(where: str, resolution: int, num_channels: int, label_dim: int, architecture: str) -> None:
    if resolution < 4 or resolution & (resolution - 1):
        raise UserError(f"{where}: resolution must be a power of two >= 4, got {resolution}")
    if num_channels < 1 or label_dim < 0:
        raise UserError(f"{where}: num_channels must be >= 1 and label_dim >= 0")
    _choice(where, "architecture", architecture, ARCHITECTURES)


def to_dict(config: GeneratorConfig | DiscriminatorConfig) -> dict[str, Any]:
    """JSON-serializable dict of a config (nested attention options included)."""
    return dataclasses.asdict(config)


def _check_keys(cls: type, data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: the settings are a {type(data).__name__}, expected an object of options")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(repr(k)[:40] for k in set(data) - names)
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise UserError(f"{where}: unknown option(s) {shown}")
    return dict(data)


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Inverse of `to_dict`; unknown keys raise `UserError` (so stale files are noticed). Values are checked by the
    config's `validate()` (types and ranges of every setting).

    Raises:
        UserError: `data` (or its `attention`) is not an object, or holds unknown keys.
    """
    if not isinstance(data, Mapping):
        raise UserError(f"{cls.__name__}: the settings are a {type(data).__name__}, expected an object of options")
    data = dict(data)
    att = _check_keys(AttentionConfig, data.pop("attention", {}), f"{cls.__name__}.attention")
    data = _check_keys(cls, data, cls.__name__)
    return cls(attention=AttentionConfig(**att), **data)


def auto_gamma(resolution: int, batch_size: int) -> float:
    """StyleGAN2-ADA's R1 weight heuristic `0.0002 * resolution^2 / batch` (`--gamma auto`; 0.0128 at 32x32, batch
    16), rounded to 4 significant digits so that it reads the same in the options JSON and on a command line."""
    return float(f"{0.0002 * resolution ** 2 / max(batch_size, 1):.4g}")
