"""Bad files, folders and names around a run (reliability round 3, items 5-7, 9-21): each is one line naming the
path or flag and the fix (exit status 2 in the CLIs), with nothing written where it should not be.

Read-only folders are simulated (`EROFS` from every call that would write below them), so the tests also hold when
they run as root, whom `chmod` does not stop.
"""

import builtins
import errno
import json
import os
import shutil
import stat

import pytest
import tensorflow as tf

import generate
import prepare_data
from dnnlib.files import write_atomic
from dnnlib.util import UserError
from run_network import _run_trainer
from run_network import main as run_network
from tests.train_helpers import TINY_FLAGS, make_shapes, run_generate, save_tiny_snapshot
from training.formats.checkpoint import clean_leftovers
from training.data.loader import open_dataset
from training.run_folder import LOCK_FILE


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A prepared 16-image 16x16 shapes dataset: `<data dir>/shapes`."""
    data_dir = str(tmp_path_factory.mktemp("data"))
    return make_shapes(data_dir, count=16, resolution=16)


@pytest.fixture
def dataset(shapes, tmp_path):
    """A fresh copy of the shapes dataset: (data dir, dataset folder, its one shard, dataset.json)."""
    folder = tmp_path / "data" / "shapes"
    shutil.copytree(shapes, folder)
    meta = json.loads((folder / "dataset.json").read_text())
    return str(tmp_path / "data"), folder, folder / meta["shards"][0]["file"], folder / "dataset.json"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "network-snapshot-000001.000.pkl")
    save_tiny_snapshot(path)
    return path


def _train(data_dir, result_dir, *extra):
    run_network(["--train", "--ganformer-default", "--dataset", "shapes", "--data-dir", data_dir, "--result-dir", result_dir, "--xla",
                 "false", *TINY_FLAGS, *extra])


def _one_error(capsys, prog=""):
    err = capsys.readouterr().err
    lines = [part for line in err.splitlines() for part in line.split("\r") if part.strip()]
    lines = [line for line in lines if "error:" in line or "Traceback" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: " if prog else "error: "), err
    return lines[0]


def _read_only(monkeypatch, folder):
    """Every write below `folder` fails with EROFS, as on a read-only mount."""
    folder = os.path.abspath(folder) + os.sep
    below = lambda path: os.path.abspath(os.fsdecode(path)).startswith(folder)  # noqa: E731
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    def os_open(path, flags, *args, **kwargs):
        if below(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and below(file) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if below(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


# ------------------------------------------------------------------------------- 5, 15. damaged datasets
def test_truncated_shard_is_named_before_training(dataset):
    data_dir, folder, shard, _ = dataset
    os.truncate(shard, 20000)
    with pytest.raises(UserError, match=r"has 20000 bytes, \d+ when written \(truncated or overwritten\)"):
        open_dataset(folder)


def test_truncated_shard_of_a_dataset_without_checksums(dataset):
    data_dir, folder, shard, meta_path = dataset
    meta = json.loads(meta_path.read_text())
    meta["shards"] = [{"file": s["file"], "count": s["count"]} for s in meta["shards"]]  # as older versions wrote
    meta_path.write_text(json.dumps(meta))
    open_dataset(folder)
    os.truncate(shard, 5000)
    with pytest.raises(UserError, match=f"{shard}: damaged TFRecord shard .*runs past the end of the file"):
        open_dataset(folder)


def test_overwritten_bytes_in_a_shard_are_found_by_the_checksum(dataset, tmp_path):
    data_dir, folder, shard, _ = dataset
    with open(shard, "r+b") as f:
        f.seek(3000)
        f.write(b"\xa5" * 64)
    with pytest.raises(UserError, match=f"{shard}: differs from the sha256 recorded when it was written"):
        _train(data_dir, str(tmp_path / "r"))
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("where", ["total", "shard"])
def test_dataset_json_claiming_more_images_than_records(where, dataset):
    data_dir, folder, shard, meta_path = dataset
    meta = json.loads(meta_path.read_text())
    if where == "total":
        meta["count"] = 4800
    else:
        meta["count"] = meta["shards"][0]["count"] = 4800
    meta_path.write_text(json.dumps(meta))
    needle = "says 4800 images but its shards hold 16" if where == "total" else "says 4800 images in this shard " \
        "but it holds 16"
    with pytest.raises(UserError, match=needle):
        open_dataset(folder)


def test_damage_found_only_while_reading_is_one_line(tmp_path):
    class Trainer:
        def run(self):
            raise tf.errors.DataLossError(None, None, "corrupted record at 12")

    class Dataset:
        path = str(tmp_path / "data" / "x")

    with pytest.raises(UserError, match=r"data/x: a dataset file is damaged \(corrupted record at 12\)"):
        _run_trainer(Trainer(), Dataset())


# ------------------------------------------------------------------------------------ 6. read-only folders
def test_resume_in_a_read_only_result_dir(dataset, tmp_path, monkeypatch):
    run_dir = tmp_path / "r" / "exp-000"
    os.makedirs(run_dir)
    (run_dir / "training_options.json").write_text("{}")
    _read_only(monkeypatch, tmp_path / "r")
    with pytest.raises(UserError, match=r"exp-000: cannot create its lock file .*\(Read-only file system\)"):
        _train(dataset[0], str(tmp_path / "r"))


def test_vis_in_a_read_only_result_dir(tiny_model, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "r" / "exp-000"
    os.makedirs(run_dir)
    shutil.copy(tiny_model, run_dir)
    _read_only(monkeypatch, tmp_path / "r")
    with pytest.raises(UserError, match="read-only file system; check that --result-dir and --data-dir are "
                                        "writable folders"):
        run_network(["--vis", "--vis-images", "--vis-num", "2", "--result-dir", str(tmp_path / "r")])
    assert os.listdir(run_dir) == [os.path.basename(tiny_model)]


def test_prepare_data_overwrite_in_a_read_only_data_dir(dataset, monkeypatch, capsys):
    data_dir, folder, shard, _ = dataset
    before = sorted(os.listdir(data_dir))
    _read_only(monkeypatch, data_dir)
    assert prepare_data.main(["--shapes", "--resolution", "16", "--max-images", "4", "--data-dir", data_dir,
                              "--overwrite"]) == 2
    assert "(Read-only file system)" in _one_error(capsys)
    assert sorted(os.listdir(data_dir)) == before
    open_dataset(folder)  # intact


# ------------------------------------------------------------------------------ 7, 16. the run's record
def test_garbage_run_record_on_resume(dataset, tmp_path):
    run_dir = tmp_path / "r" / "exp-000"
    os.makedirs(run_dir)
    (run_dir / "training_options.json").write_text("{garbage")
    with pytest.raises(UserError, match="training_options.json: the run record is damaged .not valid JSON"):
        _train(dataset[0], str(tmp_path / "r"))
    assert not os.path.exists(run_dir / LOCK_FILE)  # released on the error


def test_reload_without_the_run_record(dataset, tmp_path):
    run_dir = tmp_path / "r" / "exp-000"
    os.makedirs(run_dir / "checkpoints")
    (run_dir / "checkpoints" / "ckpt-3.index").write_text("")
    with pytest.raises(UserError, match=r"--reload: .*training_options.json is missing, so the run's options are "
                                        "unknown"):
        _train(dataset[0], str(tmp_path / "r"), "--reload")


# ------------------------------------------------------------------------------ 9, 10, 13. names and folders
@pytest.mark.parametrize("expname,needle", [("../../escape", "path separator"), ("", "is empty"),
                                            (".hidden", "starts with a dot"), ("x" * 300, "longer than 200 bytes")])
def test_bad_expname(expname, needle, dataset, tmp_path):
    with pytest.raises(UserError, match=f"^--expname .*{needle}"):
        _train(dataset[0], str(tmp_path / "a" / "b" / "r"), "--expname", expname)
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_long_task_name(tmp_path, capsys):
    assert prepare_data.main(["--shapes", "--data-dir", str(tmp_path), "--task", "x" * 300,
                              "--images-dir", str(tmp_path)]) == 2
    assert "longer than 200 characters" in _one_error(capsys)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("flag", ["--result-dir", "--data-dir"])
def test_folder_flags_naming_a_file(flag, dataset, tmp_path):
    open(tmp_path / "file", "w").close()
    folders = {"--data-dir": dataset[0], "--result-dir": str(tmp_path / "r"), flag: str(tmp_path / "file" / "sub")}
    with pytest.raises(UserError, match=f"^{flag} .*/file/sub: not a folder .*file is a file"):
        _train(folders["--data-dir"], folders["--result-dir"])


def test_prepare_data_dir_naming_a_file(tmp_path, capsys):
    open(tmp_path / "file", "w").close()
    assert prepare_data.main(["--shapes", "--data-dir", str(tmp_path / "file")]) == 2
    assert "--data-dir" in _one_error(capsys) and os.listdir(tmp_path) == ["file"]


# ------------------------------------------------------------------------------------- generate.py (11, 12, 17,
# 18, 20)
def test_folder_in_the_place_of_a_sample(tiny_model, tmp_path, capsys):
    os.makedirs(tmp_path / "out" / "sample_000000.png")
    assert run_generate("--model", tiny_model, "--output-dir", str(tmp_path / "out"), "--images-num", "2") == 2
    assert "sample_000000.png: is a folder" in _one_error(capsys, "generate.py")
    assert os.listdir(tmp_path / "out") == ["sample_000000.png"]  # no temporary file left


def test_ctrl_c_in_generate(tiny_model, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "write_samples", interrupted)
    assert run_generate("--model", tiny_model, "--output-dir", str(tmp_path / "out")) == 130
    assert _one_error(capsys, "generate.py") == "generate.py: error: interrupted (the samples written so far are " \
                                                "complete files)"


@pytest.mark.parametrize("flags,needle", [(["--ratio", "5"], "--ratio 5.0: must be in (0, 1]"),
                                          (["--ratio", "nan"], "--ratio nan"),
                                          (["--gpus", "x;y"], "--gpus x;y: expected a comma list")])
def test_bad_generate_flags(flags, needle, tiny_model, tmp_path, capsys):
    assert run_generate("--model", tiny_model, "--output-dir", str(tmp_path / "out"), *flags) == 2
    assert needle in _one_error(capsys, "generate.py") and not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("kind", ["folder", "device", "fifo"])
def test_model_that_is_not_a_file(kind, tmp_path, capsys):
    path = {"folder": str(tmp_path), "device": os.devnull, "fifo": str(tmp_path / "fifo")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    assert run_generate("--model", path, "--output-dir", str(tmp_path / "out")) == 2
    line = _one_error(capsys, "generate.py")
    assert f"{path}: is a {'FIFO' if kind == 'fifo' else kind}, not a regular file" in line, line


# ----------------------------------------------------------------------------------------------- 14. modes
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_mode(umask, mode, tmp_path, tiny_model):
    from training.formats.networks import load_networks, save_networks
    old = os.umask(umask)
    try:
        write_atomic(str(tmp_path / "a.json"), "{}")
        nets = load_networks(tiny_model)
        save_networks(str(tmp_path / "n.pkl"), nets.G, nets.D, nets.Gs, {"kimg": 1})
    finally:
        os.umask(old)
    for name in ("a.json", "n.pkl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name


# ------------------------------------------------------------------------------------- 19. leftovers, 21. units
def test_leftover_temporaries_of_any_atomic_write_are_removed(tmp_path):
    run = tmp_path / "run"
    os.makedirs(run / "visuals" / "images")
    leftovers = [run / ".training_options.json.tmp-k3j2", run / "._finished.txt.tmp-a", run / ".reals.png.tmp-1",
                 run / "visuals" / "images" / ".000000.016.png.tmp-x"]
    kept = [run / "training_options.json", run / "run.lock", run / "visuals" / "images" / "000000.016.png"]
    for path in leftovers + kept:
        path.write_text("x")
    assert sorted(clean_leftovers(str(run))) == sorted(map(str, leftovers))
    assert all(p.exists() for p in kept) and not any(p.exists() for p in leftovers)


def test_nearly_full_disk_in_prepare_data_uses_readable_units(tmp_path, monkeypatch, capsys):
    from training.data import convert
    monkeypatch.setattr(convert, "_free_bytes", lambda folder: 1500)
    assert prepare_data.main(["--shapes", "--resolution", "16", "--max-images", "40", "--data-dir",
                              str(tmp_path)]) == 2
    assert "needs about 30.0 KiB but only 1.5 KiB are free" in _one_error(capsys)
