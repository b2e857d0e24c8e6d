"""Every bad input of the data tools gives one line naming the file and problem, the right exit status, no
traceback, and nothing half-written."""

import errno
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from data_helpers import assert_nothing_written, make_images, run_cli
from training.data import writer as writer_module

ROOT = Path(__file__).resolve().parents[1]


def _custom(tmp_path, images_dir, *extra):
    return ("--task", "mine", "--images-dir", str(images_dir), "--data-dir", str(tmp_path / "ds"), *extra)


def test_missing_folder(tmp_path, capsys):
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "nope"))
    assert status == 2
    assert msgs == [f"error: --images-dir {tmp_path / 'nope'}: no such file or folder"]
    assert_nothing_written(tmp_path / "ds", "mine")


def test_empty_folder_and_folder_without_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "empty"))
    assert status == 2 and len(msgs) == 1 and "no image files found" in msgs[0]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "docs"))
    assert status == 2 and "(1 other files)" in msgs[0]
    assert_nothing_written(tmp_path / "ds", "mine")


def test_unreadable_truncated_and_fake_png_are_skipped_and_counted(tmp_path, capsys):
    src = tmp_path / "imgs"
    make_images(src, 3)
    (src / "fake.png").write_text("this is a text file, not a PNG")
    good = (src / "img000.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    status, out, msgs = run_cli(capsys, *_custom(tmp_path, src))
    assert status == 0
    assert any("fake.png: not an image" in m for m in msgs)
    assert any("truncated.png: unreadable" in m for m in msgs)
    assert "Wrote 3 images of 16x16" in out and "Skipped 2 images: 2 unreadable" in out
    meta = json.loads((tmp_path / "ds" / "mine" / "dataset.json").read_text())
    assert meta["count"] == 3 and meta["skipped"] == {"unreadable": 2}
    listed = (tmp_path / "ds" / "mine" / "skipped.txt").read_text()
    assert "fake.png" in listed and "truncated.png" in listed


def test_every_image_bad_is_fatal(tmp_path, capsys):
    src = tmp_path / "imgs"
    src.mkdir()
    (src / "a.png").write_text("nope")
    (src / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, src))
    assert status == 2
    assert msgs[-1].startswith("error:") and "none of the images can be used" in msgs[-1]
    assert "nothing written" in msgs[-1]
    assert_nothing_written(tmp_path / "ds", "mine")


def test_images_too_small_for_resolution(tmp_path, capsys):
    src = tmp_path / "imgs"
    make_images(src, 2, size=(40, 40))           # natural 32: fine for --resolution 32
    make_images(src, 1, size=(20, 20), prefix="small")  # natural 16: too small
    status, out, msgs = run_cli(capsys, *_custom(tmp_path, src, "--resolution", "32"))
    assert status == 0 and "Wrote 2 images of 32x32" in out and "1 too small" in out
    assert any("small000.png: 20x20 is too small for 32x32" in m for m in msgs)
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, src, "--resolution", "64", "--overwrite"))
    assert status == 2 and "none of the images can be used" in msgs[-1] and "3 too small" in msgs[-1]


def test_mixed_sizes_without_resolution(tmp_path, capsys):
    src = tmp_path / "imgs"
    make_images(src, 2, size=(64, 64), prefix="big")
    make_images(src, 1, size=(16, 16), prefix="small")
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, src))
    assert status == 2 and len(msgs) == 1
    assert "different sizes" in msgs[0] and "big000.png" in msgs[0] and "small000.png" in msgs[0]
    assert "--resolution" in msgs[0]
    assert_nothing_written(tmp_path / "ds", "mine")


@pytest.mark.parametrize("member", ["../evil.png", "/abs/evil.png", "a/../../evil.png", "C:/evil.png"])
def test_zip_member_escaping_the_folder(tmp_path, capsys, member):
    arrays_dir = tmp_path / "imgs"
    make_images(arrays_dir, 1)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.write(arrays_dir / "img000.png", "ok.png")
        zf.writestr(member, (arrays_dir / "img000.png").read_bytes())
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, bad))
    assert status == 2 and len(msgs) == 1
    assert str(bad) in msgs[0] and "refusing" in msgs[0]
    assert_nothing_written(tmp_path / "ds", "mine")
    assert not (tmp_path / "evil.png").exists()


@pytest.mark.parametrize("ratio", ["0", "1.5", "-0.5", "nan"])
def test_ratio_outside_range(tmp_path, capsys, ratio):
    make_images(tmp_path / "imgs", 1)
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs", "--ratio", ratio))
    assert status == 2 and len(msgs) == 1 and msgs[0].startswith(f"error: --ratio {float(ratio)}: must be in (0, 1]")
    assert_nothing_written(tmp_path / "ds", "mine")


def test_unknown_format(tmp_path, capsys):
    make_images(tmp_path / "imgs", 1)
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs", "--format", "gif"))
    assert status == 2
    assert msgs == ["error: --format gif: unknown format; choose one of png, jpg, npy, hdf5, tfds, lmdb"]


def test_existing_output_needs_overwrite(tmp_path, capsys):
    make_images(tmp_path / "imgs", 2)
    assert run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs"))[0] == 0
    make_images(tmp_path / "imgs", 3, seed=1, prefix="more")
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs"))
    assert status == 2 and len(msgs) == 1 and "already exists; pass --overwrite" in msgs[0]
    assert json.loads((tmp_path / "ds" / "mine" / "dataset.json").read_text())["count"] == 2
    assert run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs", "--overwrite"))[0] == 0
    assert json.loads((tmp_path / "ds" / "mine" / "dataset.json").read_text())["count"] == 5
    assert_nothing_written(tmp_path / "ds", "other")  # no leftovers of the replaced dataset
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["mine"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_while_writing_shards(tmp_path, capsys, monkeypatch):
    make_images(tmp_path / "imgs", 4, size=(64, 64))
    monkeypatch.setattr(writer_module.DatasetWriter, "_shard_path", lambda self, i: Path("/dev/full"))
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs"))
    assert status == 2 and "disk full" in msgs[-1] and "deleted the partial dataset" in msgs[-1]
    assert_nothing_written(tmp_path / "ds", "mine")


def test_disk_full_while_writing_metadata(tmp_path, capsys, monkeypatch):
    make_images(tmp_path / "imgs", 2)

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(writer_module, "write_json", full)
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs"))
    assert status == 2 and "disk full" in msgs[-1]
    assert_nothing_written(tmp_path / "ds", "mine")


def test_not_enough_free_space_is_refused_up_front(tmp_path, capsys, monkeypatch):
    from training.data import convert
    make_images(tmp_path / "imgs", 2)
    monkeypatch.setattr(convert, "_free_bytes", lambda folder: 100)
    status, _, msgs = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs"))
    assert status == 2 and "only 100 B are free" in msgs[-1]
    assert_nothing_written(tmp_path / "ds", "mine")


@pytest.mark.parametrize("args,needle", [
    (("--images-dir", "x"), "--images-dir: also pass --task"),
    (("--task", "mine"), "--task mine: not a catalog dataset"),
    ((), "nothing to do"),
    (("--task", "../up", "--images-dir", "."), "--task '../up': not a valid dataset name"),
    (("--shapes", "--resolution", "48"), "--resolution 48: must be a power of two"),
    (("--shapes", "--max-images", "0"), "--max-images 0: must be >= 1"),
    (("--ffhq", "--clevr", "--source", "x.zip"), "--source: use it with exactly one catalog dataset"),
])
def test_flag_errors_are_one_line(tmp_path, capsys, args, needle):
    status, _, msgs = run_cli(capsys, *args, "--data-dir", str(tmp_path / "ds"))
    assert status == 2 and len(msgs) == 1 and needle in msgs[0]


def test_argparse_errors_are_one_line(capsys):
    status, _, msgs = run_cli(capsys, "--max-images", "abc")
    assert status == 2 and len(msgs) == 1 and "--max-images: invalid int value: 'abc'" in msgs[0]


def test_real_process_exit_status_and_single_stderr_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "prepare_data.py"), "--task", "mine", "--images-dir",
                           str(tmp_path / "missing"), "--data-dir", str(tmp_path / "ds")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    tf_log = re.compile(r"^(WARNING: All log messages|[IWE]\d{4} )")  # TensorFlow's own start-up chatter, if any
    assert [ln for ln in proc.stderr.strip().splitlines() if not tf_log.match(ln)] == [
        f"error: --images-dir {tmp_path / 'missing'}: no such file or folder"]


def test_ctrl_c_during_conversion_leaves_nothing(tmp_path, capsys, monkeypatch):
    from training.data import convert

    make_images(tmp_path / "imgs", 4)
    real = convert._process
    calls = []

    def interrupted(item, ratio, resolution):
        calls.append(item)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(item, ratio, resolution)

    monkeypatch.setattr(convert, "_process", interrupted)
    status, _, _ = run_cli(capsys, *_custom(tmp_path, tmp_path / "imgs"))
    assert status == 130 and len(calls) == 3
    assert_nothing_written(tmp_path / "ds", "mine")


def test_disk_full_while_extracting_a_catalog_archive(tmp_path, capsys, monkeypatch):
    import dataclasses
    import hashlib
    import shutil as shutil_module

    from training.data import catalog

    zip_path = tmp_path / "cityscapes.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("cityscapes/cityscapes-r03.tfrecords1of1", b"x" * 1000)
    entry = dataclasses.replace(catalog.CATALOG["cityscapes"], md5=hashlib.md5(zip_path.read_bytes()).hexdigest())
    monkeypatch.setitem(catalog.CATALOG, "cityscapes", entry)

    def full(src, dst, length=0):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil_module, "copyfileobj", full)
    status, _, msgs = run_cli(capsys, "--cityscapes", "--source", str(zip_path), "--data-dir", str(tmp_path / "ds"))
    assert status == 2 and len(msgs) == 1 and "disk full; partial output deleted" in msgs[0]
    assert_nothing_written(tmp_path / "ds", "cityscapes")
