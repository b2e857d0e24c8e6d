"""Resource bombs and useless inputs in small files, each crafted by the test.

Every load of a crafted network, weights or dataset file runs in a child process whose address space is capped
at its size before the load plus `BOUND` (`RLIMIT_AS`): a loader that allocated more than the bound beyond the
real data (a few KiB here) would die with MemoryError instead of answering. Each answer must be one line naming
the file, for the CLIs with exit status 2, and nothing may be published.
"""

import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_helpers import assert_nothing_written, make_images, run_cli
from training.formats import archive as snapshot
from tests.train_helpers import ROOT

BOUND = 128 << 20  # bytes a load may allocate beyond the child's size before it (numpy-only loaders)
TF_BOUND = 512 << 20  # the same with TensorFlow imported (its thread pools reserve address space)
BIG = 300 << 20  # what the zip bombs expand to: more than the bound, so an unbounded reader dies
TF_LOG = re.compile(r"^(WARNING: All log messages|[IWE]\d{4} |To enable the following)")
_CHILD = r'''
import json, os, resource, sys
sys.path.insert(0, {root!r})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
{setup}
from dnnlib.util import UserError, print_user_error

with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
if {bound}:
    resource.setrlimit(resource.RLIMIT_AS, (size + {bound}, size + {bound}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
{body}
'''
_LOAD_EACH = r'''
out = []
for path in sys.argv[1:]:
    try:
        LOAD(path)
        out.append("ok")
    except UserError as exc:
        out.append("error: " + str(exc))
    except BaseException as exc:
        out.append(f"crash: {type(exc).__name__}: {str(exc)[:200]}")
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"results": out, "grew": grew}))
'''


def _child(setup, body, args, bound, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", MALLOC_ARENA_MAX="2")
    code = _CHILD.format(root=ROOT, setup=setup, bound=bound, body=body)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def load_bounded(setup, paths, bound=BOUND):
    """Runs `LOAD(path)` (defined by `setup`) on each file in one capped child; returns one answer per file."""
    proc = _child(setup, _LOAD_EACH, paths, bound)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["grew"] < bound
    return report["results"]


def assert_refused(answer, path, *needles):
    """One line naming the file, from the loader's own check (not a MemoryError or RecursionError caught late)."""
    assert answer.startswith("error: ") and "\n" not in answer, answer
    assert str(path) in answer and "MemoryError" not in answer and "RecursionError" not in answer, answer
    for needle in needles:
        assert needle in answer, answer


def _zip_stream(zf, name, head, size, compress=zipfile.ZIP_DEFLATED):
    """Writes member `name`: `head` followed by zeros up to `size` bytes, compressed, in 1 MiB blocks."""
    zf.compression = compress
    with zf.open(name, "w", force_zip64=True) as f:
        f.write(head)
        block = bytes(1 << 20)
        left = size - len(head)
        while left > 0:
            f.write(block[:min(left, len(block))])
            left -= len(block)


# ---------------------------------------------------------------------------------------------------------------
# Item 8: the authors' pickles (restricted unpickler)

LEGACY_SETUP = "from training.formats.tf1_pickle import read_legacy_pickle as LOAD"


@pytest.fixture
def network_class(monkeypatch):
    """A class pickled like the authors' Network (NEWOBJ of dnnlib.tflib.network.Network + BUILD state dict)."""
    cls = type("Network", (), {"__module__": "dnnlib.tflib.network", "__init__": lambda s, st: s.__dict__.update(st)})
    module = types.ModuleType("dnnlib.tflib.network")
    module.Network = cls
    monkeypatch.setitem(sys.modules, "dnnlib.tflib.network", module)
    return cls


def _legacy(network_class, path, kwargs=None, variables=None):
    """Writes a (G, D, Gs) pickle (protocol 3: no frames, so opcodes can be spliced in); returns its bytes."""
    def state(name):
        return {"version": 4, "name": name, "build_func_name": "Fn", "components": {},
                "static_kwargs": kwargs if kwargs is not None else {"resolution": 32},
                "variables": variables if variables is not None else [("w", np.ones((2, 3), np.float32))]}
    data = pickle.dumps(tuple(network_class(state(n)) for n in ("G", "D", "Gs")), protocol=3)
    Path(path).write_bytes(data)
    return data


def test_legacy_pickle_bombs(tmp_path, network_class):
    files = {}
    dag = []
    for _ in range(20):
        dag = [dag] * 4  # 4^20 = 2^40 paths, 20 levels deep, a few hundred bytes pickled
    _legacy(network_class, files.setdefault("dag", tmp_path / "dag.pkl"), {"resolution": 32, "x": dag})
    cyclic = {"resolution": 32}
    cyclic["self"] = cyclic
    _legacy(network_class, files.setdefault("cycle", tmp_path / "cycle.pkl"), cyclic)
    marker = "DEEP_PLACEHOLDER"
    data = _legacy(network_class, tmp_path / "tmp.pkl", {"resolution": 32, "deep": marker})
    deep = b"]" * 200_000 + b"a" * 199_999  # a list nested 200,000 deep, built without recursion
    files["deep"] = tmp_path / "deep.pkl"
    files["deep"].write_bytes(data.replace(b"X" + struct.pack("<I", len(marker)) + marker.encode(), deep))
    data = _legacy(network_class, tmp_path / "tmp.pkl")
    files["memo"] = tmp_path / "memo.pkl"  # memo index 2^26: the unpickler would allocate a 512 MiB table
    files["memo"].write_bytes(data[:2] + b"Nr" + struct.pack("<I", 1 << 26) + b"0" + data[2:])
    shared = np.ones(1 << 16, np.float32)  # 256 KiB, referenced by 4096 variables: 1 GiB of float32 copies
    _legacy(network_class, files.setdefault("shared", tmp_path / "shared.pkl"),
            variables=[(f"w{i}", shared) for i in range(4096)])

    class Call:
        def __reduce__(self):
            return np.ndarray, ((1 << 15, 1 << 15), "f4")  # 4 GiB, no data in the file
    _legacy(network_class, files.setdefault("ndarray", tmp_path / "ndarray.pkl"), variables=[("w", Call())])
    official = os.path.join(ROOT, "tests", "fixtures", "official", "ganformer-ffhq-32", "network.pkl")
    answers = dict(zip([*files, "official"], load_bounded(LEGACY_SETUP, [*files.values(), official])))
    assert answers.pop("official") == "ok"  # the real file loads within the same bound
    assert_refused(answers["dag"], files["dag"], "counted along every path")
    assert_refused(answers["cycle"], files["cycle"], "static_kwargs")
    assert_refused(answers["deep"], files["deep"], "nested more than 32 levels")
    assert_refused(answers["memo"], files["memo"], "memo entry 67108864")
    assert_refused(answers["shared"], files["shared"], "4x the file's size")
    assert_refused(answers["ndarray"], files["ndarray"], "calls numpy.ndarray directly")


# ---------------------------------------------------------------------------------------------------------------
# Item 8: our snapshots (zip of JSON + .npy)

SNAPSHOT_SETUP = "from training.formats.archive import read_snapshot as LOAD"


def _snapshot(path, replace=None, config=None):
    """A small valid snapshot, then members rewritten: `replace` maps a member name to a writer `fn(zf, name)`."""
    tmp = path.with_suffix(".tmp")
    snapshot.write_snapshot(str(tmp), {"G": (config or {"kind": "generator"}, {"w": np.ones(4, np.float32)})}, {})
    with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if replace and info.filename in replace:
                replace[info.filename](dst, info.filename)
            else:
                dst.writestr(info, src.read(info))
    tmp.unlink()
    return path


def _npy_header(shape, dtype="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_snapshot_bombs(tmp_path):
    index = [{"name": "w", "file": "G/variables/00000.npy", "shape": [10**6, 10**6], "dtype": "<f4"}]
    huge_index = {"G/variables.json": lambda zf, n: zf.writestr(n, json.dumps(index)),
                  "G/variables/00000.npy": lambda zf, n: zf.writestr(n, _npy_header((10**6, 10**6)))}
    files = {
        "declared": _snapshot(tmp_path / "declared.pkl", huge_index),  # a 4 TB array declared, 128 bytes stored
        "deflated": _snapshot(tmp_path / "deflated.pkl", {  # the array's member expands to 300 MiB
            "G/variables.json": lambda zf, n: zf.writestr(n, json.dumps([dict(index[0], shape=[BIG // 4])])),
            "G/variables/00000.npy": lambda zf, n: _zip_stream(zf, n, _npy_header((BIG // 4,)), BIG + 128)}),
        "meta": _snapshot(tmp_path / "meta.pkl", {  # meta.json: a 300 MiB document in 300 KiB
            "meta.json": lambda zf, n: _zip_stream(zf, n, b'{"format": "ganformer-tf2-snapshot"' + b" " * 64,
                                                   BIG)}),
    }
    good = _snapshot(tmp_path / "good.pkl")
    answers = dict(zip([*files, "good"], load_bounded(SNAPSHOT_SETUP, [*files.values(), good])))
    assert answers.pop("good") == "ok"
    assert_refused(answers["declared"], files["declared"], "network G (1 variables) needs 3.6 TiB", "4x the largest")
    assert_refused(answers["deflated"], files["deflated"], "expands from", "zip bomb")
    assert_refused(answers["meta"], files["meta"], "'meta.json' declares 300.0 MiB")
    assert not snapshot.is_snapshot(str(files["meta"]))  # the sniff reads meta.json within the same cap


# ---------------------------------------------------------------------------------------------------------------
# Item 8: PyTorch / TorchScript .pt zips (metrics' feature networks)

TORCH_SETUP = "from metrics.torchzip import load_tensors as LOAD"


class _Global:
    """A global written by name into the pickle (never resolved on the writing side)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants reduce callables to be callable
        raise AssertionError


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Storage:
    def __init__(self, key, numel):
        self.pid = ("storage", _Global("torch", "FloatStorage"), key, "cpu", numel)


class _PtPickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global_ref(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = save_global_ref

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def _tensor(key, numel, size, stride):
    return _Reduce(_Global("torch._utils", "_rebuild_tensor_v2"), _Storage(key, numel), 0, size, stride, False,
                   _Reduce(_Global("collections", "OrderedDict")))


def _pt(path, obj=None, pickled=None, storages=None):
    """A `.pt` zip: `archive/data.pkl` (pickled `obj`, or raw `pickled` bytes) and `archive/data/<key>` members."""
    buf = io.BytesIO()
    if pickled is None:
        _PtPickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickled if pickled is not None else buf.getvalue())
        for key, write in (storages or {"0": lambda z, n: z.writestr(n, bytes(4))}).items():
            write(zf, f"archive/data/{key}")
    return path


def test_torch_zip_bombs(tmp_path):
    dag = []
    for _ in range(20):
        dag = [dag] * 4
    cyclic = {}
    cyclic["self"] = cyclic
    files = {
        "stride0": _pt(tmp_path / "stride0.pt", {"w": _tensor("0", 1, (10**6, 10**6), (0, 0))}),
        "deflated": _pt(tmp_path / "deflated.pt", {"w": _tensor("0", BIG // 4, (BIG // 4,), (1,))},
                        storages={"0": lambda z, n: _zip_stream(z, n, b"", BIG)}),
        "memo": _pt(tmp_path / "memo.pt", pickled=b"\x80\x02Nr" + struct.pack("<I", 1 << 26) + b"."),
        "dag": _pt(tmp_path / "dag.pt", {"w": _tensor("0", 1, (1,), (1,)), "x": dag}),
        "cycle": _pt(tmp_path / "cycle.pt", cyclic),
    }
    good = _pt(tmp_path / "good.pt", {"w": _tensor("0", 1, (1,), (1,))})
    answers = dict(zip([*files, "good"], load_bounded(TORCH_SETUP, [*files.values(), good])))
    assert answers.pop("good") == "ok"
    assert_refused(answers["stride0"], files["stride0"], "1,000,000,000,000 elements", "stride 0")
    assert_refused(answers["deflated"], files["deflated"], "zip bomb")
    assert_refused(answers["memo"], files["memo"], "memo entry 67108864")
    assert_refused(answers["dag"], files["dag"], "counted along every path")
    assert_refused(answers["cycle"], files["cycle"], "levels deep")


# ---------------------------------------------------------------------------------------------------------------
# Item 8: the settings of a network file (types and ranges of every field; the size of the whole network)

def test_every_setting_is_type_and_range_checked():
    import dataclasses

    from dnnlib.options import fields_of
    from dnnlib.util import UserError
    from training import config
    from training.config import AttentionConfig, DiscriminatorConfig, GeneratorConfig

    for cls in (GeneratorConfig, DiscriminatorConfig, AttentionConfig):
        for f in dataclasses.fields(cls):
            for bad in ([1], {"a": 1}, object(), float("nan"), 2**40, "x" * 10**6):
                if isinstance(bad, str) and f.name in ("norm", "architecture", "integration", "merge_type",
                                                       "pos_type", "pos_init"):
                    continue  # a string field: the long string is refused as a choice below
                cfg = cls()
                setattr(cfg, f.name, bad)
                with pytest.raises(UserError, match=re.escape(f.name)) as caught:
                    cfg.validate(*(("G",) if cls is AttentionConfig else ()))
                assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    declared = {name for cls in (config.GeneratorConfig, config.AttentionConfig)
                for name in ("resolution", "channel_max", "latent_dim", "components_num", "num_heads")
                if name in fields_of(cls) and config.field_range(cls, name) is not None}
    assert declared == {"resolution", "channel_max", "latent_dim", "components_num", "num_heads"}


def test_largest_real_model_count_behind_the_cap():
    from dnnlib import limits
    from training import presets
    from training.networks.limits import network_values

    g, d = presets.configs_from_options(presets.preset_options("ganformer-cityscapes"), 2048)
    assert 2 * network_values(g, "G") + network_values(d, "D") == limits.LARGEST_MODEL_VALUES
    assert limits.NETWORK_FILE_CAP == 4 * 4 * limits.LARGEST_MODEL_VALUES


def _bad_network_files(tmp_path, network_class):
    def snap(name, g_config):
        nets = {n: ({"kind": "discriminator" if n == "D" else "generator", "config": g_config},
                    {"w": np.ones(4, np.float32)}) for n in ("G", "D", "Gs")}
        snapshot.write_snapshot(str(tmp_path / name), nets, {})
        return tmp_path / name
    files = {"abc": snap("abc.pkl", {"resolution": "abc"}), "huge": snap("huge.pkl", {"resolution": 2**40}),
             "list": snap("list.pkl", [1]),
             "big_net": snap("big_net.pkl", {"resolution": 4096, "channel_max": 4096, "channel_base": 1 << 22})}
    for name, kwargs in (("legacy_huge", {"resolution": 2**40}), ("legacy_type", {"resolution": 32, "z_dim": "x"})):
        files[name] = tmp_path / f"{name}.pkl"
        _legacy(network_class, files[name], kwargs)
    return files


def test_network_settings_bombs(tmp_path, network_class):
    files = _bad_network_files(tmp_path, network_class)
    answers = dict(zip(files, load_bounded("from training.formats.networks import load_networks as LOAD", files.values(),
                                           bound=TF_BOUND)))
    assert_refused(answers["abc"], files["abc"], "resolution must be an integer, got str 'abc'")
    assert_refused(answers["huge"], files["huge"], "resolution=1099511627776 is out of range")
    assert_refused(answers["list"], files["list"], "the settings are a list")
    assert_refused(answers["big_net"], files["big_net"], "the network settings describe", "but the file holds 4")
    assert_refused(answers["legacy_huge"], files["legacy_huge"], "out of range")
    assert_refused(answers["legacy_type"], files["legacy_type"], "latent_dim must be an integer")


def test_generate_cli_refuses_a_bad_network_file_with_one_line(tmp_path, network_class):
    bad = _bad_network_files(tmp_path, network_class)["legacy_huge"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "generate.py"), "--model", str(bad), "--output-dir",
                           str(tmp_path / "out"), "--images-num", "1"], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    lines = [ln for ln in proc.stderr.strip().splitlines() if not TF_LOG.match(ln)]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("generate.py: error: ") and str(bad) in lines[0] and "out of range" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Item 9: datasets (prepare_data.py)

def prepare_bounded(tmp_path, *args, bound=BOUND, setup="import prepare_data"):
    """prepare_data.py in a child (address space capped unless `bound` is 0); (status, error/warning lines)."""
    proc = _child(setup, "sys.exit(prepare_data.main(sys.argv[1:]))",
                  [*args, "--workers", "1", "--data-dir", tmp_path / "ds"], bound)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln.strip() for ln in proc.stderr.replace("\r", "\n").splitlines()]
    return proc.returncode, proc.stdout, [ln for ln in lines if ln.startswith(("error:", "warning:"))]


def _png_bytes(size=16):
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_zip_member_expanding_past_the_cap(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", _png_bytes())
        _zip_stream(zf, "padded.png", _png_bytes(), BIG)  # a valid PNG, then 300 MiB of zeros: 300 KiB zipped
    assert bomb.stat().st_size < 1 << 20
    status, _, msgs = prepare_bounded(tmp_path, "--task", "bomb", "--images-dir", bomb,
                                      setup="import prepare_data, tensorflow")  # the writer's import is not a load
    assert status == 2 and len(msgs) == 1 and str(bomb) in msgs[0], msgs
    assert "'padded.png' expands to 300.0 MiB" in msgs[0] and "limit of 256.0 MiB per file" in msgs[0]
    assert_nothing_written(tmp_path / "ds", "bomb")


def test_zip_members_past_the_total_cap(tmp_path, capsys, monkeypatch):
    from training.data import sources

    monkeypatch.setattr(sources, "MAX_ZIP_BYTES", 200)  # a 1 TiB archive cannot be crafted in a test
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(4):
            zf.writestr(f"{i}.png", _png_bytes())
    status, _, msgs = run_cli(capsys, "--task", "many", "--images-dir", str(archive), "--data-dir", str(tmp_path))
    assert status == 2 and len(msgs) == 1 and "members expand to" in msgs[0] and "in total" in msgs[0]


def test_symlinks_out_of_the_folder_and_loops(tmp_path, capsys):
    src, outside = tmp_path / "imgs", tmp_path / "outside"
    make_images(src / "a", 2)
    make_images(outside, 3, prefix="secret")
    os.symlink(outside / "secret000.png", src / "a" / "link.png")
    os.symlink(outside, src / "elsewhere")
    os.symlink("..", src / "a" / "loop")  # imgs/a/loop -> imgs: a loop
    status, out, msgs = run_cli(capsys, "--task", "mine", "--images-dir", str(src), "--data-dir", str(tmp_path / "d"))
    assert status == 0 and "Wrote 2 images" in out
    assert any("skipped 2 symbolic link(s) leading out of the folder" in m for m in msgs), msgs
    assert any("reached again through a symbolic link" in m and "loop" in m for m in msgs), msgs


def test_fifo_named_like_an_image_is_not_read(tmp_path):
    src = tmp_path / "imgs"
    make_images(src, 2)
    os.mkfifo(src / "fifo.png")
    os.mkfifo(tmp_path / "fifo.npy")
    status, out, msgs = prepare_bounded(tmp_path, "--task", "mine", "--images-dir", src, bound=0)
    assert status == 0 and "Wrote 2 images" in out
    assert any("not regular files" in m and "fifo.png" in m for m in msgs), msgs
    status, _, msgs = prepare_bounded(tmp_path, "--task", "npy", "--images-dir", tmp_path / "fifo.npy", "--format",
                                      "npy")
    assert status == 2 and len(msgs) == 1 and "not a regular file or folder" in msgs[0]


def test_label_count_beyond_the_number_of_images(tmp_path):
    make_images(tmp_path / "imgs", 4)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"img000.png": 10**9, "img001.png": 0}))
    status, _, msgs = prepare_bounded(tmp_path, "--task", "mine", "--images-dir", tmp_path / "imgs", "--labels",
                                      labels)
    assert status == 2 and len(msgs) == 1 and str(labels) in msgs[0], msgs
    assert "class index 1000000000 means 1000000001 classes" in msgs[0] and "only 4 images" in msgs[0]
    assert_nothing_written(tmp_path / "ds", "mine")


# ---------------------------------------------------------------------------------------------------------------
# Item 10: inputs that would publish nothing useful

def _write_h5(path, **datasets):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("empty")
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
    return path


@pytest.mark.parametrize("case,fmt,needle", [
    ("two_channels", "npy", "images must have 1, 3 or 4 channels"),
    ("structured", "npy", "is not pixel data"),
    ("strings", "npy", "is not pixel data"),
    ("h5_strings", "hdf5", "is not pixel data"),
    ("h5_empty", "hdf5", "the HDF5 file holds no datasets"),
    ("all_nan", "npy", "holds NaN or infinite values"),
    ("one_pixel", "npy", "below the minimum resolution 4x4"),
    ("one_pixel_png", "png", "below the minimum resolution 4x4"),
])
def test_useless_inputs_are_refused(tmp_path, capsys, case, fmt, needle):
    f = tmp_path / f"{case}.{'h5' if fmt == 'hdf5' else fmt}"
    if case == "two_channels":
        np.save(f, np.zeros((3, 8, 8, 2), np.uint8))
    elif case == "structured":
        np.save(f, np.zeros((3, 8, 8, 3), dtype=[("a", "u1")]))
    elif case == "strings":
        np.save(f, np.full((3, 8, 8), "abcd"))
    elif case == "h5_strings":
        _write_h5(f, images=np.full((3, 8, 8), b"abc"))
    elif case == "h5_empty":
        _write_h5(f)
    elif case == "all_nan":
        np.save(f, np.full((3, 8, 8, 3), np.nan, np.float32))
    elif case == "one_pixel":
        np.save(f, np.zeros((3, 1, 1, 3), np.uint8))
    else:
        f = tmp_path / "tiny"
        make_images(f, 3, size=(1, 1))
    status, out, msgs = run_cli(capsys, "--task", case, "--images-dir", str(f), "--format", fmt, "--data-dir",
                                str(tmp_path / "ds"))
    errors = [m for m in msgs if m.startswith("error:")]
    assert status == 2 and len(errors) == 1 and str(f) in errors[0] and needle in " ".join(msgs), msgs
    assert "Wrote" not in out
    assert_nothing_written(tmp_path / "ds", case)
