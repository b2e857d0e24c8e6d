"""Converts the authors' TF1 checkpoints (read by `training.formats.tf1_pickle`) into our configs and variables.

Both kwarg-naming generations are accepted (`z_dim`/`latent_size`, `w_dim`/`dlatent_size`, `channel_max`/`fmap_max`,
...). Missing kwargs take the defaults of the original build functions (e.g. `architecture` skip for G, `end_res` 20,
`integration` add). Variables keep their names; only layouts differ: the 4x4 constant is stored NCHW `[1, C, 4, 4]`
(ours NHWC `[1, 4, 4, C]`), noise buffers `[n, 1, H, W]` (ours `[n, H, W, 1]`), and the very old `ToRGB_lod{i}` /
`FromRGB_lod{i}` names map to `{R}x{R}/ToRGB` / `{R}x{R}/FromRGB`.
"""

from __future__ import annotations

import re
import reprlib
import warnings
from typing import Any

import numpy as np

from training.formats.tf1_pickle import LegacyNetwork
from dnnlib.util import UserError
from training.config import AttentionConfig, DiscriminatorConfig, GeneratorConfig

# Kwargs that only affected the original's graph construction or sampling defaults, never the weights' meaning.
_IGNORED = {"fused_modconv", "num_broadcast", "dlatent_broadcast", "fmap_decay", "fmap_min", "randomize_noise",
            "truncation_cutoff", "truncation_cutoff_val", "is_training", "is_validation", "is_template_graph",
            "mapping_layersnum", "mapping_num_layers", "resample_kernel", "nonlinearity", "dtype",
            "num_fp16_res", "conv_clamp", "mbstd_group_size_val", "iterative"}

_ATTENTION_KEYS = {"num_heads": "num_heads", "norm": "norm", "integration": "integration", "kmeans": "kmeans",
                   "kmeans_iters": "kmeans_iters", "use_pos": "use_pos", "pos_dim": "pos_dim",
                   "pos_type": "pos_type", "pos_init": "pos_init", "pos_directions_num": "pos_directions_num",
                   "ltnt_gate": "ltnt_gate", "img_gate": "img_gate", "attention_dropout": "attention_dropout"}

_G_KEYS = {"resolution": "resolution", "num_channels": "num_channels", "label_size": "label_dim",
           "components_num": "components_num", "z_dim": "latent_dim", "latent_size": "latent_dim",
           "architecture": "architecture", "transformer": "transformer", "style": "style",
           "latent_stem": "latent_stem", "local_noise": "local_noise", "channel_base": "channel_base",
           "fmap_base": "channel_base", "channel_max": "channel_max", "fmap_max": "channel_max", "tanh": "tanh",
           "crop_ratio": "crop_ratio", "mapping_lrmul": "mapping_lrmul", "mapping_dim": "mapping_dim",
           "mapping_resnet": "mapping_resnet", "mapping_shared_dim": "mapping_shared_dim",
           "mapping_ltnt2ltnt": "mapping_ltnt2ltnt", "start_res": "start_res", "end_res": "end_res",
           "img2img": "img2img", "img2ltnt": "img2ltnt", "ltnt2ltnt": "ltnt2ltnt", "merge_layer": "merge_layer",
           "merge_type": "merge_type", "merge_same": "merge_same", "truncation_psi": "truncation_psi",
           "truncation_psi_val": "truncation_psi", "style_mixing": "style_mixing",
           "component_mixing": "component_mixing", "component_dropout": "component_dropout",
           "dlatent_avg_beta": "w_avg_beta", "w_dim": None, "dlatent_size": None, "merge": "kgan", "kgan": "kgan"}

_D_KEYS = {"resolution": "resolution", "num_channels": "num_channels", "label_size": "label_dim",
           "architecture": "architecture", "channel_base": "channel_base", "fmap_base": "channel_base",
           "channel_max": "channel_max", "fmap_max": "channel_max", "mbstd_group_size": "mbstd_group_size",
           "mbstd_num_channels": "mbstd_num_channels", "mbstd_num_features": "mbstd_num_channels",
           "transformer": "transformer", "components_num": "components_num", "a_dim": "latent_dim",
           "latent_size": "latent_dim", "start_res": "start_res", "end_res": "end_res", "img2img": "img2img",
           "ltnt2ltnt": "ltnt2ltnt", "crop_ratio": "crop_ratio"}

# Defaults of the original build functions' signatures where they differ from our config defaults.
_G_SIGNATURE_DEFAULTS = {"end_res": 20, "attention": {"attention_dropout": 0.12}}


def _split(kwargs: dict[str, Any], table: dict[str, str | None], where: str) -> tuple[dict, dict]:
    main: dict[str, Any] = {}
    att: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _ATTENTION_KEYS:
            att[_ATTENTION_KEYS[key]] = value
        elif key in table:
            if table[key] is not None:
                main[table[key]] = value
        elif key not in _IGNORED:
            warnings.warn(f"{where}: ignoring unknown static kwarg {reprlib.repr(key)}={reprlib.repr(value)}",
                          stacklevel=3)
    if kwargs.get("iterative"):
        raise UserError(f"{where}: non-parametric k-means ('iterative') is not supported (it never worked in the "
                        "original either)")
    return main, att


def generator_config(net: LegacyNetwork) -> GeneratorConfig:
    """Builds a `GeneratorConfig` from an authors' G/Gs record (its own kwargs plus its synthesis sub-net's)."""
    kwargs = dict(net.static_kwargs)
    synth = net.components.get("synthesis")
    if synth is not None and "attention_dropout" in synth.static_kwargs:
        kwargs.setdefault("attention_dropout", synth.static_kwargs["attention_dropout"])
    main, att = _split(kwargs, _G_KEYS, f"{net.name} static kwargs")
    main.setdefault("end_res", _G_SIGNATURE_DEFAULTS["end_res"])
    att.setdefault("attention_dropout", 0.12)
    if main.get("label_dim") is None:
        main["label_dim"] = 0
    main["kgan"] = bool(main.get("kgan", False))
    if main.get("transformer") and main.get("kgan"):
        main["kgan"] = False
    return GeneratorConfig(attention=AttentionConfig(**att), **main).validate()


def discriminator_config(net: LegacyNetwork) -> DiscriminatorConfig:
    """Builds a `DiscriminatorConfig` from an authors' D record."""
    main, att = _split(dict(net.static_kwargs), _D_KEYS, f"{net.name} static kwargs")
    att.setdefault("attention_dropout", 0.12)
    main.setdefault("end_res", _G_SIGNATURE_DEFAULTS["end_res"])
    if main.get("label_dim") is None:
        main["label_dim"] = 0
    return DiscriminatorConfig(attention=AttentionConfig(**att), **main).validate()


_LOD = re.compile(r"^(.*?)(ToRGB|FromRGB)_lod(\d{1,2})/(.*)$")


def convert_variables(flat: dict[str, np.ndarray], resolution: int) -> dict[str, np.ndarray]:
    """Maps an authors' flat variable dict to our names and layouts (see module docstring)."""
    res_log2 = resolution.bit_length() - 1
    out: dict[str, np.ndarray] = {}
    for name, value in flat.items():
        value = np.asarray(value, dtype=np.float32)
        m = _LOD.match(name)
        if m:
            r = 2 ** (res_log2 - int(m.group(3)))
            name = f"{m.group(1)}{r}x{r}/{m.group(2)}/{m.group(4)}"
        leaf = name.rsplit("/", 1)[-1]
        if name.endswith("Const/const") and value.ndim == 4:
            value = np.transpose(value, [0, 2, 3, 1])
        elif re.fullmatch(r"noise\d+", leaf) and value.ndim == 4:
            value = np.transpose(value, [0, 2, 3, 1])
        out[name] = value
    return out
