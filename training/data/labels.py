"""Optional class labels for custom datasets (`prepare_data.py --labels ...`).

Sources of labels:
    `--labels folders`        the first sub-folder of each image's path is its class (`cat/001.png` -> cat);
    `--labels FILE.json`      either {"relative/path.png": label, ...} or {"labels": [["path", label], ...]};
    `--labels FILE.csv`       rows `path,label` (a header row is allowed).
Paths are relative to `--images-dir` with '/' separators; a bare file name also matches when it is unique.
Labels may be class names or integers. Integer labels 0..K-1 give K classes in numeric order; names
are sorted. Each image's label is stored as a one-hot float32 vector `[K]`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from dnnlib.util import UserError


class LabelMap:
    """Maps an item's label key (relative path) to a one-hot label vector.

    Attributes:
        classes: class names; `len(classes)` is the label dimension.
    """

    def __init__(self, by_key: dict[str, str] | None, classes: list[str], folders: bool = False):
        self._by_key = by_key or {}
        self._folders = folders
        self.classes = classes
        self._index = {c: i for i, c in enumerate(classes)}
        names: dict[str, list[str]] = {}
        for key in self._by_key:
            names.setdefault(key.rsplit("/", 1)[-1], []).append(key)
        self._by_name = {n: self._by_key[keys[0]] for n, keys in names.items() if len(keys) == 1}

    def class_of(self, key: str) -> str | None:
        """Class name of an item, or None when it has no label."""
        if self._folders:
            return key.split("/", 1)[0] if "/" in key else None
        return self._by_key.get(key, self._by_name.get(key.rsplit("/", 1)[-1]))

    def vector(self, key: str) -> np.ndarray | None:
        """One-hot float32 `[len(classes)]` for an item, or None when it has no label."""
        name = self.class_of(key)
        if name is None or name not in self._index:
            return None
        out = np.zeros(len(self.classes), np.float32)
        out[self._index[name]] = 1.0
        return out


def _class_list(values: list[str], max_classes: int | None, where: str) -> list[str]:
    """Sorted class names; integers 0..K-1 become all K classes in numeric order.

    Raises:
        UserError: a negative index, or more classes than `max_classes` (checked before any list is built).
    """
    unique = set(values)
    if unique and all(v.lstrip("-").isdecimal() and len(v) <= 18 for v in unique):
        ints = sorted(int(v) for v in unique)
        if ints[0] < 0:
            raise UserError(f"{where}: negative class index {ints[0]}; use 0..K-1 or class names")
        if max_classes is not None and ints[-1] >= max_classes:
            raise UserError(f"{where}: class index {ints[-1]} means {ints[-1] + 1} classes (0..K-1), but there are "
                            f"only {max_classes} images; number the classes 0..K-1 or use class names")
        return [str(i) for i in range(ints[-1] + 1)]
    if max_classes is not None and len(unique) > max_classes:
        raise UserError(f"{where}: {len(unique)} classes for only {max_classes} images")
    return sorted(unique)


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"--labels {path}: not readable JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("labels"), list):
        pairs = data["labels"]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise UserError(f"--labels {path}: expected an object {{path: label}} or {{\"labels\": [[path, label]]}}")
    out = {}
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2) or isinstance(pair[1], (list, dict)):
            raise UserError(f"--labels {path}: entry {pair!r} is not a [path, label] pair with a single label")
        out[str(pair[0]).replace("\\", "/")] = str(pair[1])
    return out


def _read_csv(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"--labels {path}: not a readable CSV file ({exc})") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["file", "label"], ["path", "label"],
                                                             ["filename", "label"], ["image", "label"]):
        rows = rows[1:]
    out = {}
    for line, row in enumerate(rows, 1):
        if len(row) < 2:
            raise UserError(f"--labels {path}: row {line} {row!r} needs two columns: path,label")
        out[row[0].strip().replace("\\", "/")] = row[1].strip()
    return out


def load_labels(spec: str | None, keys: list[str], max_classes: int | None = None) -> LabelMap | None:
    """Builds the label map for `--labels`.

    Args:
        spec: None (no labels), "folders", or a .json / .csv file path.
        keys: label keys (relative paths) of all items, to derive folder classes.
        max_classes: the number of images; more classes than images are refused (the label vectors have one
            entry per class, so `--labels` with class 10^9 would otherwise allocate gigabytes per image).

    Returns:
        A LabelMap, or None without `--labels`.

    Raises:
        UserError: unreadable file, unsupported extension, no labelled image at all, or more classes than images.
    """
    if spec is None:
        return None
    if spec == "folders":
        classes = sorted({k.split("/", 1)[0] for k in keys if "/" in k})
        if not classes:
            raise UserError("--labels folders: images are not in sub-folders (expected DIR/<class>/<image>)")
        return LabelMap(None, classes, folders=True)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--labels {spec}: no such file (use 'folders' or a .json/.csv file)")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise UserError(f"--labels {spec}: unsupported file type {suffix or '(none)'}; use .json or .csv")
    by_key = _read_json(path) if suffix == ".json" else _read_csv(path)
    if not by_key:
        raise UserError(f"--labels {spec}: holds no labels")
    return LabelMap(by_key, _class_list(list(by_key.values()), max_classes, f"--labels {spec}"))
