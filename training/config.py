"""Typed network configurations (spec §1.1, §2, §7.3).

`GeneratorConfig` and `DiscriminatorConfig` hold every architectural option of the original `Generator` /
`Discriminator`; `validate()` rejects inconsistent combinations with a one-line `UserError`. Presets live in
`training/presets.py`.

Resume compatibility is part of the schema: a field marked `runtime_field` (sampling and regularization settings)
may differ between the runs that continue one checkpoint; any other field describes the architecture, and
`config_changes` reports a change of it as incompatible. Nested configs are compared field by field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import typing
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

from dnnlib.util import UserError

ARCHITECTURES = ("orig", "skip", "resnet")
NORMS = (None, "layer", "instance", "batch")
INTEGRATIONS = ("add", "mul", "both")
POS_TYPES = ("sinus", "linear", "trainable", "trainable2d")
POS_INITS = ("uniform", "normal")
MERGE_TYPES = ("sum", "softmax", "max", "leaves")
RUNTIME = "runtime"  # field metadata key: True = may change when resuming a checkpoint
COMPARED = "compared"  # field metadata key: False = a per-invocation setting, never compared across runs


# Inclusive ranges of the numeric settings (types come from the annotations). They keep a setting read from a file
# (e.g. 2**40 channels) from reaching the network code; the size of the whole network is bounded separately
# (training.networks.limits) since settings that are each in range can still multiply into a huge network.
FIELD_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(dict(
    resolution=(4, 1 << 14), num_channels=(1, 64), label_dim=(0, 1 << 16), components_num=(1, 256),
    latent_dim=(1, 1 << 14), channel_base=(1, 1 << 22), channel_max=(1, 1 << 14), mapping_layers=(0, 64),
    mapping_lrmul=(1e-6, 1e3), mapping_dim=(1, 1 << 14), mapping_shared_dim=(1, 1 << 14), start_res=(0, 32),
    end_res=(0, 32), img2img=(0, 14), merge_layer=(-1, 14), truncation_psi=(-100.0, 100.0),
    w_avg_beta=(0.0, 1.0), mbstd_group_size=(0, 1 << 10), mbstd_num_channels=(0, 1 << 10),
    crop_ratio=(1e-3, 1.0), num_heads=(1, 1 << 10), kmeans_iters=(1, 64), pos_dim=(1, 1 << 14),
    pos_directions_num=(1, 64),
))
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40


class Range(NamedTuple):
    """The allowed values of a numeric option: `lo <= value <= hi` (an open end excludes it); floats must be finite.

    Used for the training options (`training.options.OPTION_RANGES`) and the command-line flags
    (`training.cli.flags.check_flags`), whose messages name the flag.
    """

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        """E.g. `>= 1`, `> 0`, `in [0, 1)`."""
        lower = (f"> {_number(self.lo)}" if self.lo_open else f">= {_number(self.lo)}") if self.lo > -2 ** 62 else ""
        upper = (f"< {_number(self.hi)}" if self.hi_open else f"<= {_number(self.hi)}") if self.hi < 2 ** 62 else ""
        if not (lower and upper):  # (bounds beyond 2**62, e.g. int64's largest count, are not worth a mention)
            return lower or upper
        return f"in {'(' if self.lo_open else '['}{_number(self.lo)}, {_number(self.hi)}{')' if self.hi_open else ']'}"

    def check(self, flag: str, value: Any, integer: bool) -> None:
        """Raises a one-line `UserError` naming `flag` unless `value` is a number of the kind and in the range."""
        kind = "an integer" if integer else "a finite number"
        is_number = isinstance(value, (int, np.integer) if integer else (int, float, np.integer, np.floating))
        ok = (is_number and not isinstance(value, (bool, np.bool_))
              and (isinstance(value, (int, np.integer)) or math.isfinite(value))
              and (value > self.lo if self.lo_open else value >= self.lo)
              and (value < self.hi if self.hi_open else value <= self.hi))
        if not ok:
            raise UserError(f"{flag} {_SHORT.repr(value)}: must be {' '.join(filter(None, (kind, self.describe())))}")


def _number(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    name = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(base, base.__name__)
    return f"{name} or null" if typing.get_args(hint) else name


def _coerce(where: str, name: str, value: Any, hint: Any) -> Any:
    """`value` as the annotated type (numpy scalars and ints for floats accepted), or a one-line UserError."""
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint)
    is_bool = isinstance(value, (bool, np.bool_))
    if value is None and type(None) in args:
        return None
    if base is bool and (is_bool or (isinstance(value, (int, np.integer)) and value in (0, 1))):
        return bool(value)
    if base is int and isinstance(value, (int, np.integer)) and not is_bool:
        return int(value)
    if base is float and isinstance(value, (int, float, np.integer, np.floating)) and not is_bool:
        number = float(value) if abs(value) < 1e300 else math.inf
        if not math.isfinite(number):
            raise UserError(f"{where}: {name} must be a finite number, got {_SHORT.repr(value)}")
        return number
    if (base is str and isinstance(value, str)) or (dataclasses.is_dataclass(base) and isinstance(value, base)):
        return value
    raise UserError(f"{where}: {name} must be {_type_name(hint)}, got {type(value).__name__} {_SHORT.repr(value)}")


def check_fields(config: Any, where: str) -> None:
    """Checks every field of a config dataclass against its annotated type and `FIELD_RANGES` (in place: numpy
    scalars become Python ones, ints in float fields become floats).

    Raises:
        UserError: One line naming the setting, what it must be and what it is.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = _coerce(where, f.name, getattr(config, f.name), hints[f.name])
        limits = FIELD_RANGES.get(f.name)
        if limits is not None and value is not None and not limits[0] <= value <= limits[1]:
            raise UserError(f"{where}: {f.name}={value} is out of range [{limits[0]}, {limits[1]}]")
        setattr(config, f.name, value)


def runtime_field(default: Any) -> Any:
    """A dataclass field that does not shape the checkpoint: it may change between runs resuming one checkpoint."""
    return field(default=default, metadata={RUNTIME: True})


def invocation_field(default: Any) -> Any:
    """A dataclass field that belongs to one invocation (e.g. the run dir): recorded, never compared across runs."""
    return field(default=default, metadata={COMPARED: False})


class Change(NamedTuple):
    """One difference between a saved config and the current one (`path` like `attention.num_heads`)."""

    path: str
    old: Any
    new: Any
    runtime: bool


@dataclass
class AttentionConfig:
    """Options of the bipartite attention layers shared by G and D (spec §2.4.2)."""

    num_heads: int = 1
    norm: Optional[str] = None
    integration: str = "add"
    kmeans: bool = False
    kmeans_iters: int = 1
    use_pos: bool = False
    pos_dim: Optional[int] = None
    pos_type: str = "sinus"
    pos_init: str = "uniform"
    pos_directions_num: int = 2
    ltnt_gate: bool = False
    img_gate: bool = False
    attention_dropout: float = runtime_field(0.12)

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

    resolution: int = 256
    num_channels: int = 3
    label_dim: int = 0
    components_num: int = 1
    latent_dim: int = 512
    architecture: str = "skip"
    transformer: bool = False
    style: bool = True
    latent_stem: bool = False
    local_noise: bool = True
    channel_base: int = 16384
    channel_max: int = 512
    tanh: bool = False
    crop_ratio: Optional[float] = None
    mapping_layers: int = 8
    mapping_lrmul: float = 0.01
    mapping_dim: Optional[int] = None
    mapping_resnet: bool = False
    mapping_shared_dim: Optional[int] = None
    mapping_ltnt2ltnt: bool = False
    start_res: int = 0
    end_res: int = 8
    img2img: int = 0
    img2ltnt: bool = False
    ltnt2ltnt: bool = False
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    kgan: bool = False
    merge_layer: int = -1
    merge_type: str = "sum"
    merge_same: bool = False
    truncation_psi: float = runtime_field(0.75)
    style_mixing: float = runtime_field(0.9)
    component_mixing: float = runtime_field(0.0)
    component_dropout: float = runtime_field(0.0)
    w_avg_beta: float = runtime_field(0.995)

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

    resolution: int = 256
    num_channels: int = 3
    label_dim: int = 0
    architecture: str = "resnet"
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    transformer: bool = False
    components_num: int = 1
    latent_dim: int = 512
    start_res: int = 0
    end_res: int = 8
    img2img: int = 0
    ltnt2ltnt: bool = False
    crop_ratio: Optional[float] = None
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
    unknown = sorted(_SHORT.repr(k) for k in set(data) - names)
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


def config_changes(cls: type, old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[Change]:
    """The fields of dataclass `cls` whose values differ between two `to_dict` records (nested configs recursively).

    A field missing from a record counts as its default (records of older versions); keys the schema no longer has
    are reported as runtime changes (they cannot shape a network built today). Fields with `compared=False`
    metadata are skipped. Values are compared as JSON (tuples equal lists).
    """
    out: list[Change] = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get(COMPARED, True):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += config_changes(type(default), old.get(f.name) or {}, new.get(f.name) or {}, f"{prefix}{f.name}.")
            continue
        a, b = (_as_json(r[f.name]) if f.name in r else _as_json(default) for r in (old, new))
        if a != b:
            out.append(Change(prefix + f.name, a, b, bool(f.metadata.get(RUNTIME, False))))
    names = {f.name for f in dataclasses.fields(cls)}
    out += [Change(prefix + k, old[k], None, True) for k in sorted(set(old) - names)]
    return out


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def auto_gamma(resolution: int, batch_size: int) -> float:
    """StyleGAN2-ADA's R1 weight heuristic `0.0002 * resolution^2 / batch` (`--gamma auto`; 0.0128 at 32x32, batch
    16), rounded to 4 significant digits so that it reads the same in the options JSON and on a command line."""
    return float(f"{0.0002 * resolution ** 2 / max(batch_size, 1):.4g}")
