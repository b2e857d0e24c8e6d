"""Tests for training.formats.tf1_pickle (reading the authors' TF1 pickles) and training.formats.pretrained."""

import json
import os
import pickle
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import requests

from dnnlib import download
from training.formats import pretrained as catalog
from training.formats import tf1_pickle as legacy
from training.formats import archive as snapshot
from dnnlib.util import UserError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "official")
NAMES = ["ganformer-ffhq-32", "ganformer-legacy-names-32"]
# The older file's StyleGAN2 baseline (k=1, skip G) and duplex GANformer (AttLayer_n2l), 16x16.
ALL_NAMES = NAMES + ["stylegan2-legacy-32", "ganformer-duplex-legacy-16"]


def _fixture(name):
    return os.path.join(FIXTURES, name, "network.pkl")


def _expected(name):
    with open(os.path.join(FIXTURES, name, "static_kwargs.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def checkpoints():
    return {name: legacy.read_legacy_pickle(_fixture(name)) for name in ALL_NAMES}


# ---------------------------------------------------------------------------------------------------------------
# The authors' fixtures


@pytest.mark.parametrize("name", NAMES)
def test_structure_and_counts(checkpoints, name):
    ck = checkpoints[name]
    for net in (ck.G, ck.Gs):
        assert net.version == 4
        assert list(net.variables) == ["ltnt_emb/emb", "dlatent_avg"]
        assert list(net.components) == ["synthesis", "mapping"]
        assert net.components["synthesis"].name == "G_synthesis"
        assert net.components["mapping"].name == "G_mapping"
        assert len(net.components["synthesis"].variables) == 152
        assert len(net.components["mapping"].variables) == 84
        assert len(net.flat_variables()) == 2 + 152 + 84
    assert (ck.G.name, ck.D.name, ck.Gs.name) == ("G", "D", "Gs")
    assert ck.D.components == {} and len(ck.D.variables) == 24
    counts = _expected(name)["param_counts"]
    assert sum(a.size for a in ck.G.flat_variables().values()) == counts["G"]["all"] == 512186
    assert sum(a.size for a in ck.D.flat_variables().values()) == counts["D"]["all"] == 337793


@pytest.mark.parametrize("name", NAMES)
def test_names_shapes_dtypes(checkpoints, name):
    flat = checkpoints[name].G.flat_variables()
    names = list(flat)
    assert names[:3] == ["ltnt_emb/emb", "dlatent_avg", "synthesis/noise0"]
    assert names.index("synthesis/noise7") < names.index("synthesis/4x4/Const/const") < names.index(
        "mapping/AttLayer_0/weight_query")
    assert all(n.startswith("synthesis/") for n in names[2:154])
    assert all(n.startswith("mapping/") for n in names[154:])
    assert all(a.dtype == np.float32 and isinstance(a, np.ndarray) for a in flat.values())
    shapes = {"ltnt_emb/emb": (16, 32), "dlatent_avg": (32,), "synthesis/noise7": (1, 1, 64, 64),
              "synthesis/4x4/Const/const": (1, 64, 4, 4), "synthesis/4x4/Conv/weight": (3, 3, 64, 64),
              "synthesis/4x4/Conv/mod_weight": (32, 64), "synthesis/32x32/ToRGB/weight": (1, 1, 64, 3),
              "synthesis/4x4/Conv/noise_strength": (), "mapping/AttLayer_0/weight_query": (32, 32)}
    for key, shape in shapes.items():
        assert flat[key].shape == shape, key
    scalars = [n for n, a in flat.items() if a.ndim == 0]
    assert len(scalars) == 7 and all(n.endswith("/noise_strength") for n in scalars)
    d = checkpoints[name].D.variables
    assert d["4x4/Conv/weight"].shape == (3, 3, 65, 64)  # + 1 minibatch-stddev channel
    assert d["Output/weight"].shape == (64, 1)
    assert all(a.flags.writeable and a.flags.c_contiguous for a in flat.values())


@pytest.mark.parametrize("name", ALL_NAMES)
def test_static_kwargs_and_build_funcs(checkpoints, name):
    ck, exp = checkpoints[name], _expected(name)
    assert ck.G.static_kwargs == exp["static_kwargs"]["G"]
    assert ck.Gs.static_kwargs == exp["static_kwargs"]["G"]
    assert ck.G.components["synthesis"].static_kwargs == exp["static_kwargs"]["G_synthesis"]
    assert ck.G.components["mapping"].static_kwargs == exp["static_kwargs"]["G_mapping"]
    assert ck.D.static_kwargs == exp["static_kwargs"]["D"]
    assert ck.G.build_func_name == exp["build_func_name"]["G"]
    assert ck.D.build_func_name == exp["build_func_name"]["D"]
    assert ck.G.components["synthesis"].build_func_name == "G_synthesis"
    assert type(ck.G.static_kwargs) is dict


def test_both_naming_generations(checkpoints):
    new, old = checkpoints["ganformer-ffhq-32"], checkpoints["ganformer-legacy-names-32"]
    assert (new.G.build_func_name, new.D.build_func_name) == ("Generator", "Discriminator")
    assert (old.G.build_func_name, old.D.build_func_name) == ("G_GANformer", "D_GANformer")
    assert new.G.static_kwargs["z_dim"] == old.G.static_kwargs["latent_size"] == 32
    assert new.G.static_kwargs["channel_max"] == old.G.static_kwargs["fmap_max"] == 64
    assert new.D.static_kwargs["a_dim"] == old.D.static_kwargs["latent_size"] == 32
    assert new.G.components["mapping"].static_kwargs["num_broadcast"] == 9
    assert old.G.components["mapping"].static_kwargs["dlatent_broadcast"] == 9
    for net in ("G", "D", "Gs"):  # the README promises bit-identical weights across the two generations
        a, b = getattr(new, net).flat_variables(), getattr(old, net).flat_variables()
        assert list(a) == list(b)
        assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_g_and_gs_differ(checkpoints, name):
    g, gs = checkpoints[name].G.flat_variables(), checkpoints[name].Gs.flat_variables()
    assert list(g) == list(gs)
    trainable = [k for k in g if not k.split("/")[-1].startswith("noise") or k.endswith("noise_strength")]
    trainable = [k for k in trainable if k != "dlatent_avg"]
    diff = max(float(np.abs(g[k] - gs[k]).max()) for k in trainable)
    assert 0.2 < diff < 0.3  # README: largest trainable difference 0.249
    assert not np.array_equal(g["dlatent_avg"], gs["dlatent_avg"])
    noise = [k for k in g if re.fullmatch(r"synthesis/noise\d+", k)]
    assert len(noise) == 2 * int(np.log2(_expected(name)["static_kwargs"]["G"]["resolution"])) - 2
    for key in noise:  # noise buffers are shared
        assert np.array_equal(g[key], gs[key])
    assert checkpoints[name].G.components["synthesis"] is not checkpoints[name].Gs.components["synthesis"]


@pytest.mark.parametrize("name", ALL_NAMES[2:])
def test_older_file_baseline_and_duplex_records(checkpoints, name):
    ck, exp = checkpoints[name], _expected(name)
    assert (ck.G.build_func_name, ck.D.build_func_name) == ("G_GANformer", "D_GANformer")
    counts = exp["param_counts"]
    assert sum(a.size for a in ck.G.flat_variables().values()) == counts["G"]["all"]
    assert sum(a.size for a in ck.D.flat_variables().values()) == counts["D"]["all"]
    flat = ck.Gs.flat_variables()
    attention = [k for k in flat if "AttLayer_" in k]
    if name == "stylegan2-legacy-32":  # no transformer: a skip G with ToRGB at every resolution, no extraLayer
        assert not attention and ck.G.static_kwargs["components_num"] == 1
        assert all(f"synthesis/{r}x{r}/ToRGB/weight" in flat for r in (4, 8, 16, 32))
        assert not any("extraLayer" in k for k in flat)
    else:
        assert any("AttLayer_n2l" in k for k in attention) and ck.G.static_kwargs["img2ltnt"] is True


def test_is_legacy_pickle(tmp_path):
    assert all(legacy.is_legacy_pickle(_fixture(n)) for n in ALL_NAMES)
    snap = tmp_path / "snap.pkl"
    snapshot.write_snapshot(str(snap), {"G": ({}, {"w": np.zeros(2, np.float32)})}, {})
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"a": 1}))
    assert not legacy.is_legacy_pickle(str(snap))
    assert not legacy.is_legacy_pickle(str(other))
    assert not legacy.is_legacy_pickle(str(tmp_path / "missing.pkl"))


# ---------------------------------------------------------------------------------------------------------------
# Malicious and broken files


class _Evil:
    """Pickles to a call of `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_cmd(marker):
    return f"{sys.executable} -c \"open({str(marker)!r}, 'w').close()\""


def _assert_refused(path, marker, global_name):
    with pytest.raises(UserError) as info:
        legacy.read_legacy_pickle(str(path))
    msg = str(info.value)
    assert msg.startswith(f"{path}: refusing to load: the pickle references {global_name}, which is not allowed")
    assert "\n" not in msg
    assert not marker.exists()


def test_os_system_refused(tmp_path):
    marker = tmp_path / "pwned"
    cmd = _touch_cmd(marker).encode()
    data = b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."
    bad = tmp_path / "os_system.pkl"
    bad.write_bytes(data)
    _assert_refused(bad, marker, "os.system")
    assert not legacy.is_legacy_pickle(str(bad))
    pickle.loads(data)  # control: the same bytes, unpickled normally, do run the command
    assert marker.exists()


def test_os_system_after_network_record_refused(tmp_path):
    """The evil global comes after a valid-looking Network record: still refused, nothing runs."""
    marker = tmp_path / "pwned"
    cmd = _touch_cmd(marker).encode()
    data = (b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81}b"
            b"cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85RN\x87.")
    bad = tmp_path / "nested.pkl"
    bad.write_bytes(data)
    assert legacy.is_legacy_pickle(str(bad))  # the sniff is not a safety check; the unpickler is
    _assert_refused(bad, marker, "os.system")


def test_builtins_eval_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "eval.pkl"
    bad.write_bytes(pickle.dumps(_Evil(eval, f"open({str(marker)!r}, 'w').close()"), protocol=4))
    _assert_refused(bad, marker, "builtins.eval")


def test_subprocess_popen_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "popen.pkl"
    bad.write_bytes(pickle.dumps(_Evil(subprocess.Popen, ["touch", str(marker)]), protocol=4))
    _assert_refused(bad, marker, "subprocess.Popen")


@pytest.mark.parametrize("cut", [0, 100, 2_000_000, -10])
def test_truncated_file(tmp_path, cut):
    with open(_fixture(NAMES[0]), "rb") as f:
        data = f.read()
    bad = tmp_path / "truncated.pkl"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(UserError, match="truncated or corrupt") as info:
        legacy.read_legacy_pickle(str(bad))
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_not_a_pickle(tmp_path):
    bad = tmp_path / "text.pkl"
    bad.write_text("hello world\n" * 10)
    with pytest.raises(UserError, match="truncated or corrupt"):
        legacy.read_legacy_pickle(str(bad))
    with pytest.raises(UserError, match="cannot open"):
        legacy.read_legacy_pickle(str(tmp_path / "missing.pkl"))


def _net_state(name, version=4, variables=(("w", np.ones((2, 3), np.float32)),), components=None):
    return {"version": version, "name": name, "static_kwargs": {"resolution": 32},
            "components": components or {}, "build_module_src": "# omitted", "build_func_name": "Fn",
            "variables": list(variables)}


@pytest.fixture
def fake_net(monkeypatch):
    """A class pickled like the authors' Network (NEWOBJ of dnnlib.tflib.network.Network + BUILD state dict)."""

    def init(self, state):
        self.__dict__.update(state)

    cls = type("Network", (), {"__module__": "dnnlib.tflib.network", "__init__": init})
    module = types.ModuleType("dnnlib.tflib.network")
    module.Network = cls
    monkeypatch.setitem(sys.modules, "dnnlib.tflib.network", module)
    return cls


def _dump(tmp_path, obj):
    path = tmp_path / "net.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return str(path)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_handmade_pickle_versions(tmp_path, fake_net, version):
    comp = fake_net(_net_state("G_synthesis", version, [("s", np.float32(2.5)), ("t", np.zeros(4, np.float64))]))
    nets = tuple(fake_net(_net_state(n, version, components={"synthesis": comp} if n != "D" else None))
                 for n in ("G", "D", "Gs"))
    ck = legacy.read_legacy_pickle(_dump(tmp_path, nets))
    flat = ck.G.flat_variables()
    assert list(flat) == ["w", "synthesis/s", "synthesis/t"]
    assert flat["synthesis/s"].shape == () and flat["synthesis/s"].dtype == np.float32 and flat["synthesis/s"] == 2.5
    assert flat["synthesis/t"].dtype == np.float32
    assert ck.G.version == version and ck.D.components == {}


def test_bad_version_and_structure(tmp_path, fake_net):
    bad_version = tuple(fake_net(_net_state(n, version=5)) for n in ("G", "D", "Gs"))
    with pytest.raises(UserError, match="format version 5; only versions 2-4"):
        legacy.read_legacy_pickle(_dump(tmp_path, bad_version))
    with pytest.raises(UserError, match=r"expected a tuple \(G, D, Gs\) of networks, found a tuple of 2 items"):
        legacy.read_legacy_pickle(_dump(tmp_path, bad_version[:2]))
    with pytest.raises(UserError, match="found a dict"):
        legacy.read_legacy_pickle(_dump(tmp_path, {"G": 1}))
    with pytest.raises(UserError, match="D is a int, not a network"):
        legacy.read_legacy_pickle(_dump(tmp_path, (fake_net(_net_state("G")), 3, fake_net(_net_state("Gs")))))
    missing = _net_state("G")
    del missing["variables"]
    with pytest.raises(UserError, match="lacks variables"):
        legacy.read_legacy_pickle(_dump(tmp_path, (fake_net(missing),) * 3))
    strings = _net_state("G", variables=[("w", np.array(["a", "b"]))])
    with pytest.raises(UserError, match="'w' is not a numeric array"):
        legacy.read_legacy_pickle(_dump(tmp_path, (fake_net(strings),) * 3))


# ---------------------------------------------------------------------------------------------------------------
# Catalog


def test_catalog_table():
    assert catalog.catalog_names() == [
        "gdrive:clevr-snapshot.pkl", "gdrive:cityscapes-snapshot.pkl", "gdrive:ffhq-snapshot.pkl",
        "gdrive:bedrooms-snapshot.pkl", "gdrive:cityscapes-snapshot-2048.pkl", "gdrive:ffhq-snapshot-1024.pkl"]
    ffhq = catalog.CATALOG["gdrive:ffhq-snapshot.pkl"]
    assert ffhq.url == "https://drive.google.com/uc?id=1-b0vwevUQs6LI_EybdO8XJ5uYSx63vEa"
    assert (ffhq.resolution, ffhq.ratio, ffhq.eval_only) == (256, 1.0, False)
    assert catalog.CATALOG["gdrive:clevr-snapshot.pkl"].ratio == 0.75
    assert catalog.CATALOG["gdrive:bedrooms-snapshot.pkl"].ratio == 188 / 256
    assert catalog.CATALOG["gdrive:cityscapes-snapshot-2048.pkl"].resolution == 2048
    assert all(e.url.startswith("https://drive.google.com/uc?id=") for e in catalog.CATALOG.values())


def _no_network(*args, **kwargs):
    raise requests.ConnectionError("network disabled in tests")


def test_catalog_cache_hit_needs_no_network(tmp_path, monkeypatch):
    monkeypatch.setattr(requests.Session, "get", _no_network)
    entry = catalog.CATALOG["gdrive:ffhq-snapshot.pkl"]
    cached = download.cache_path_for(entry.url, str(tmp_path), entry.name)
    with open(_fixture(NAMES[0]), "rb") as src, open(cached, "wb") as dst:
        dst.write(src.read())
    path = catalog.resolve_network_path("gdrive:ffhq-snapshot.pkl", cache_dir=str(tmp_path))
    assert path == cached and legacy.read_legacy_pickle(path).G.name == "G"


def test_catalog_offline_message(tmp_path, monkeypatch):
    monkeypatch.setattr(requests.Session, "get", _no_network)
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    with pytest.raises(UserError) as info:
        catalog.resolve_network_path("gdrive:clevr-snapshot.pkl", cache_dir=str(tmp_path), progress=False)
    msg = str(info.value)
    entry = catalog.CATALOG["gdrive:clevr-snapshot.pkl"]
    assert msg.startswith("gdrive:clevr-snapshot.pkl: ") and entry.url in msg
    assert "local file path" in msg and download.cache_path_for(entry.url, str(tmp_path), entry.name) in msg


def test_resolve_unknown_and_local(tmp_path):
    with pytest.raises(UserError, match="unknown pretrained network; known names: gdrive:clevr-snapshot.pkl"):
        catalog.resolve_network_path("gdrive:horses.pkl")
    assert catalog.resolve_network_path(_fixture(NAMES[0])) == _fixture(NAMES[0])
    with pytest.raises(UserError, match="did you mean gdrive:ffhq-snapshot.pkl"):
        catalog.resolve_network_path(str(tmp_path / "ffhq-snapshot.pkl"))
    with pytest.raises(UserError, match="file not found; pass an existing network file"):
        catalog.resolve_network_path(str(tmp_path / "mine.pkl"))
    assert catalog.resolve_network_path("file://" + _fixture(NAMES[0])) == _fixture(NAMES[0])
