"""Presets (spec §1.2–1.3) and the translation of run_network-style options into network configs.

`OPTION_DEFAULTS` are the original CLI's model defaults; `PRESETS` hold only what each preset changes. The CLI
applies a preset, then the flags the user actually passed, then calls `configs_from_options`.
`build_networks(preset, resolution, **overrides)` is the programmatic shortcut.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

from dnnlib.util import UserError
from training.config import AttentionConfig, DiscriminatorConfig, GeneratorConfig

OPTION_DEFAULTS: Mapping[str, Any] = MappingProxyType(dict(
    latent_size=512, components_num=1, g_arch="skip", d_arch="resnet", transformer=False, style=True,
    latent_stem=False, local_noise=True, tanh=False, mapping_layersnum=8, mapping_lrmul=0.01, mapping_dim=None,
    mapping_resnet=False, mapping_shared_dim=None, mapping_ltnt2ltnt=False, num_heads=1, normalize=None,
    integration="add", g_start_res=0, g_end_res=8, d_start_res=0, d_end_res=8, ltnt_gate=False, img_gate=False,
    kmeans=False, kmeans_iters=1, g_ltnt2ltnt=False, g_img2img=0, g_img2ltnt=False, d_transformer=False,
    d_ltnt2ltnt=False, d_img2img=0, use_pos=False, pos_dim=None, pos_type="sinus", pos_init="uniform",
    pos_directions_num=2, kgan=False, merge_layer=-1, merge_type="sum", merge_same=False, attention_dropout=0.12,
    truncation_psi=0.75, style_mixing=0.9, component_mixing=0.0, component_dropout=0.0, channel_base=16384,
    channel_max=512, crop_ratio=None, mbstd_group_size=4,
))

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
