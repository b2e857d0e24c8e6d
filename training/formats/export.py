"""Export of a generator as a TensorFlow SavedModel that needs nothing from this project to run.

The SavedModel's `serving_default` signature takes
- `z`: float32 `[None, K, d]` latents (index K-1 is the global latent for GANformer models),
- `truncation_psi`: float32 scalar (1.0: no truncation),
- `labels`: float32 `[None, label_dim]` one-hot classes (conditional models only),
and returns
- `images`: uint8 `[None, H, W, 3]`, `round(clip((x + 1) * 127.5, 0, 255))` of the generator's output, computed
  with the stored ("const") noise, so the same z always gives the same image;
- `attention_maps` (models with attention only): float32 `[None, k, heads, H, W]`, the last attention layer's
  probabilities over the k local latents (they sum to 1 over axis 1).
Load it with `tf.saved_model.load(DIR).signatures["serving_default"](z=..., truncation_psi=...)`.
The graph computes in the precision G was set to (`training.precision.policy.set_precision`; `generate.py --export
--precision fp16`): inputs and outputs keep the dtypes above, the weights stay float32.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import types
from typing import Any

import tensorflow as tf

from dnnlib.files import replace_folder
from dnnlib.util import UserError
from dnnlib.tflib.ops.quantize import quantize


class _ServingModule(tf.Module):
    """Holds the generator's variables and the serving function."""

    def __init__(self, G: Any) -> None:
        super().__init__(name="ganformer_generator")
        # The generator itself is hidden from checkpoint tracking (its layer tables have int keys, which SavedModel
        # cannot serialize); its variables are tracked explicitly instead.
        self._net = types.SimpleNamespace(G=G)
        self.weights = [v for _, v in G.named_variables()]
        K, d = G.latent_shape
        self.label_dim = int(G.label_dim)
        self.has_maps = bool(G.num_attention_layers)
        specs = [tf.TensorSpec([None, K, d], tf.float32, name="z"), tf.TensorSpec([], tf.float32,
                                                                                  name="truncation_psi")]
        if self.label_dim:
            specs.append(tf.TensorSpec([None, self.label_dim], tf.float32, name="labels"))
        self.serve = tf.function(self._serve, input_signature=specs, autograph=False)

    def _serve(self, z: tf.Tensor, truncation_psi: tf.Tensor, labels: tf.Tensor | None = None) -> dict:
        res = self._net.G(z, labels=labels, truncation_psi=truncation_psi, noise_mode="const",
                     return_maps=self.has_maps)
        if not self.has_maps:
            return {"images": quantize(res)}
        images, maps = res
        return {"images": quantize(images), "attention_maps": tf.identity(maps[:, :, -1], name="attention_maps")}


def export_saved_model(G: Any, export_dir: str, precision: str = "fp32") -> str:
    """Writes G as a SavedModel to `export_dir` (atomically: a temporary folder is renamed at the end).

    An existing `export_dir` is replaced only if it is empty or holds an earlier export (`saved_model.pb`).

    Args:
        G: Generator (usually Gs), already set to the precision to export.
        export_dir: Target folder.
        precision: Description of that precision for `ganformer_export.json` (`Precision.describe`).

    Returns:
        `export_dir`.

    Raises:
        UserError: `export_dir` exists and is neither empty nor a SavedModel.
    """
    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir):
        if not os.path.isdir(export_dir) or (os.listdir(export_dir) and
                                            not os.path.isfile(os.path.join(export_dir, "saved_model.pb"))):
            raise UserError(f"--export {export_dir}: exists and is not an earlier export; choose a new folder")
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.", dir=parent)
    try:
        module = _ServingModule(G)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        K, d = G.latent_shape
        info = {"latent_shape": [K, d], "resolution": int(G.resolution), "label_dim": module.label_dim,
                "attention_maps": module.has_maps, "noise": "const (stored buffers)",
                "images": "uint8 NHWC, round(clip((x + 1) * 127.5, 0, 255))", "precision": precision}
        with open(os.path.join(tmp, "ganformer_export.json"), "w") as f:
            json.dump(info, f, indent=1)
        replace_folder(tmp, export_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return export_dir
