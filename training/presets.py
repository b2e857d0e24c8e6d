"""Model options, the presets of the paper's models (the authors' `run_network.py` defaults and per-dataset
settings) and the translation of the options into network configs.

`ModelOptions` declares the original CLI's model options (flag, help, default, range: the command line is made from
it); `PRESETS` hold only what each preset changes. The CLI applies a preset, then the flags the user actually
passed, then calls `configs_from_options`.
`build_networks(preset, resolution, **overrides)` is the programmatic shortcut.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional

from dnnlib.options import Range, fields_of, none_or, option
from dnnlib.util import UserError
from training.config import (ARCHITECTURES, INTEGRATIONS, MERGE_TYPES, NORMS, POS_INITS, POS_TYPES, AttentionConfig,
                             DiscriminatorConfig, GeneratorConfig, field_range)

def _config_range(name: str) -> Optional[Range]:
    for cls in (GeneratorConfig, DiscriminatorConfig, AttentionConfig):
        if name in fields_of(cls):
            return field_range(cls, name)
    raise KeyError(name)


def _m(default: Any, config: Optional[str] = None, *, range: Optional[Range] = None, group: str = "model",
       **kw: Any) -> Any:
    """A model option; `config` names the G/D/attention config field it sets, whose declared range it shares."""
    return option(default, range=range or (_config_range(config) if config else None), group=group, **kw)


_UNIT = Range(0.0, 1.0)


@dataclass
class ModelOptions:
    """The original CLI's model options with their defaults (the plain StyleGAN2 setup); a preset changes some of
    them (`PRESETS`), the flags the user passes change others, and `configs_from_options` turns them into the G and
    D configs. Each field's flag is its name with dashes (`g_start_res` -> `--g-start-res`)."""

    latent_size: int = _m(512, "latent_dim", help="latent dimension (split among the --components-num latents)")
    components_num: int = _m(1, "components_num", help="k: number of local latents")
    g_arch: str = _m("skip", choices=ARCHITECTURES)
    d_arch: str = _m("resnet", choices=ARCHITECTURES)
    transformer: bool = _m(False, help="bipartite attention between the latents and the image (GANformer)")
    style: bool = _m(True, help="global style modulation")
    latent_stem: bool = _m(False, help="4x4 grid from a dense layer of the latent instead of a constant")
    local_noise: bool = _m(True)
    tanh: bool = _m(False)
    mapping_layersnum: int = _m(8, "mapping_layers")
    mapping_lrmul: float = _m(0.01, "mapping_lrmul")
    mapping_dim: Optional[int] = _m(None, "mapping_dim", parse=none_or(int))
    mapping_resnet: bool = _m(False)
    mapping_shared_dim: Optional[int] = _m(None, "mapping_shared_dim", parse=none_or(int))
    mapping_ltnt2ltnt: bool = _m(False, help="attention among the latents in the mapping network")
    num_heads: int = _m(1, "num_heads")
    normalize: Optional[str] = _m(None, parse=none_or(str), choices=NORMS)
    integration: str = _m("add", choices=INTEGRATIONS)
    g_start_res: int = _m(0, "start_res", help="log2 resolution from which G's layers attend")
    g_end_res: int = _m(8, "end_res", help="log2 resolution up to which (excluded) G's layers attend")
    d_start_res: int = _m(0, "start_res")
    d_end_res: int = _m(8, "end_res")
    ltnt_gate: bool = _m(False)
    img_gate: bool = _m(False)
    kmeans: bool = _m(False, help="k-means keys (duplex attention)")
    kmeans_iters: int = _m(1, "kmeans_iters")
    g_ltnt2ltnt: bool = _m(False)
    g_img2img: int = _m(0, "img2img")
    g_img2ltnt: bool = _m(False)
    d_transformer: bool = _m(False)
    d_ltnt2ltnt: bool = _m(False)
    d_img2img: int = _m(0, "img2img")
    use_pos: bool = _m(False, help="positional encodings in the attention")
    pos_dim: Optional[int] = _m(None, "pos_dim", parse=none_or(int))
    pos_type: str = _m("sinus", choices=POS_TYPES)
    pos_init: str = _m("uniform", choices=POS_INITS)
    pos_directions_num: int = _m(2, "pos_directions_num")
    kgan: bool = _m(False)
    merge_layer: int = _m(-1, "merge_layer")
    merge_type: str = _m("sum", choices=MERGE_TYPES)
    merge_same: bool = _m(False)
    attention_dropout: float = _m(0.12, range=Range(0.0, 1.0, hi_open=True), group="training")
    truncation_psi: float = _m(0.75, "truncation_psi", group="logging", help="psi for samples (0.75)")
    style_mixing: float = _m(0.9, range=_UNIT, group="training")
    component_mixing: float = _m(0.0, range=_UNIT, group="training")
    component_dropout: float = _m(0.0, range=_UNIT, group="training")
    channel_base: int = _m(16384, "channel_base")
    channel_max: int = _m(512, "channel_max")
    crop_ratio: Optional[float] = _m(None, "crop_ratio", flag="")
    mbstd_group_size: int = _m(4, "mbstd_group_size", help="D's minibatch-stddev group (default: min(--batch-gpu, "
                                                          "4); 0 turns the layer off)")


OPTION_DEFAULTS: Mapping[str, Any] = MappingProxyType(dataclasses.asdict(ModelOptions()))

_GANFORMER = dict(transformer=True, components_num=16, latent_size=512, normalize="layer", integration="mul",
                  kmeans=True, use_pos=True, mapping_ltnt2ltnt=True, style=True, g_arch="resnet",
                  mapping_resnet=True)

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "ganformer-ffhq": MappingProxyType(dict(_GANFORMER)),
    "ganformer-bedrooms": MappingProxyType(dict(_GANFORMER)),
    "ganformer-cityscapes": MappingProxyType(dict(_GANFORMER)),
    "ganformer-clevr": MappingProxyType(dict(_GANFORMER, components_num=8, latent_size=128,
                                             mapping_ltnt2ltnt=False, style=False)),
    "gan": MappingProxyType(dict(style=False, latent_stem=True)),
    "stylegan2": MappingProxyType({}),
    "kgan": MappingProxyType(dict(kgan=True, merge_layer=5, merge_type="softmax", components_num=8)),
    "sagan": MappingProxyType(dict(style=False, latent_stem=True, g_img2img=5)),
})


def preset_options(preset: str) -> dict[str, Any]:
    """Default options with the preset applied."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return {**OPTION_DEFAULTS, **PRESETS[preset]}


def _attention(o: Mapping[str, Any]) -> AttentionConfig:
    return AttentionConfig(num_heads=o["num_heads"], norm=o["normalize"], integration=o["integration"],
                           kmeans=o["kmeans"], kmeans_iters=o["kmeans_iters"], use_pos=o["use_pos"],
                           pos_dim=o["pos_dim"], pos_type=o["pos_type"], pos_init=o["pos_init"],
                           pos_directions_num=o["pos_directions_num"], ltnt_gate=o["ltnt_gate"],
                           img_gate=o["img_gate"], attention_dropout=o["attention_dropout"])


def configs_from_options(options: Mapping[str, Any], resolution: int, num_channels: int = 3,
                         label_dim: int = 0) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """Builds validated G and D configs from run_network-style options (see `OPTION_DEFAULTS`)."""
    o = {**OPTION_DEFAULTS, **options}
    unknown = sorted(set(o) - set(OPTION_DEFAULTS))
    if unknown:
        raise UserError(f"unknown model option(s): {', '.join(unknown)}")
    k = o["components_num"]
    if k > 1 and o["latent_size"] % k:
        raise UserError(f"--latent-size {o['latent_size']} is not divisible by --components-num {k}")
    d = o["latent_size"] // k if k > 1 else o["latent_size"]
    res_log2 = resolution.bit_length() - 1
    g = GeneratorConfig(
        resolution=resolution, num_channels=num_channels, label_dim=label_dim, components_num=k, latent_dim=d,
        architecture=o["g_arch"], transformer=o["transformer"], style=o["style"], latent_stem=o["latent_stem"],
        local_noise=o["local_noise"], channel_base=o["channel_base"], channel_max=o["channel_max"], tanh=o["tanh"],
        crop_ratio=o["crop_ratio"], mapping_layers=o["mapping_layersnum"], mapping_lrmul=o["mapping_lrmul"],
        mapping_dim=o["mapping_dim"], mapping_resnet=o["mapping_resnet"], mapping_shared_dim=o["mapping_shared_dim"],
        mapping_ltnt2ltnt=o["mapping_ltnt2ltnt"], start_res=o["g_start_res"], end_res=o["g_end_res"],
        img2img=min(o["g_img2img"], res_log2), img2ltnt=o["g_img2ltnt"], ltnt2ltnt=o["g_ltnt2ltnt"],
        attention=_attention(o), kgan=o["kgan"],
        merge_layer=min(o["merge_layer"], res_log2) if o["merge_layer"] >= 0 else -1,
        merge_type=o["merge_type"], merge_same=o["merge_same"], truncation_psi=o["truncation_psi"],
        style_mixing=o["style_mixing"], component_mixing=o["component_mixing"],
        component_dropout=o["component_dropout"])
    dcfg = DiscriminatorConfig(
        resolution=resolution, num_channels=num_channels, label_dim=label_dim, architecture=o["d_arch"],
        channel_base=o["channel_base"], channel_max=o["channel_max"], mbstd_group_size=o["mbstd_group_size"],
        transformer=o["d_transformer"], components_num=k, latent_dim=d, start_res=o["d_start_res"],
        end_res=o["d_end_res"], img2img=min(o["d_img2img"], res_log2), ltnt2ltnt=o["d_ltnt2ltnt"],
        crop_ratio=o["crop_ratio"], attention=_attention(o))
    return g.validate(), dcfg.validate()


def apply_overrides(g: GeneratorConfig, d: DiscriminatorConfig,
                    overrides: Mapping[str, Any]) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """Overrides config fields by name: G/D fields of that name, and attention fields on both networks."""
    g_fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
    d_fields = {f.name for f in dataclasses.fields(DiscriminatorConfig)}
    a_fields = {f.name for f in dataclasses.fields(AttentionConfig)}
    g_over = {k: v for k, v in overrides.items() if k in g_fields}
    d_over = {k: v for k, v in overrides.items() if k in d_fields}
    a_over = {k: v for k, v in overrides.items() if k in a_fields}
    unknown = sorted(set(overrides) - g_fields - d_fields - a_fields)
    if unknown:
        raise UserError(f"unknown config field(s): {', '.join(unknown)}")
    g = dataclasses.replace(g, **g_over, attention=dataclasses.replace(g.attention, **a_over))
    d = dataclasses.replace(d, **d_over, attention=dataclasses.replace(d.attention, **a_over))
    return g.validate(), d.validate()
