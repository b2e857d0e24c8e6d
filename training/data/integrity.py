"""Integrity of a prepared dataset, checked when it is opened: every shard that `dataset.json` lists must exist,
hold as many records as it says (counted from the records' length headers, which also finds a truncated file) and,
for datasets written with them, match the size and sha256 recorded when it was written (which finds overwritten
bytes). A damaged dataset is a one-line error naming the shard, before any training step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnnlib.util import UserError
from training.data import records

_FIX = "re-create it with prepare_data.py (--overwrite)"


def check_shards(folder: Path, meta: dict[str, Any]) -> list[int]:
    """Checks the shards of a dataset of ours against `dataset.json`; returns their record counts.

    Raises:
        UserError: A shard is missing, truncated, holds another number of records than recorded, or differs from
            its recorded size or sha256; or the total count disagrees with the shards'.
    """
    shards = meta.get("shards")
    if not isinstance(shards, list) or not shards:
        raise UserError(f"{folder / records.META_FILE}: lists no shards; {_FIX}")
    counts = []
    for shard in shards:
        counts.append(_check_shard(folder, shard))
    total = meta.get("count")
    if total is not None and total != sum(counts):
        raise UserError(f"{folder / records.META_FILE}: says {total} images but its shards hold {sum(counts)}; "
                        f"{_FIX}")
    return counts


def _check_shard(folder: Path, shard: Any) -> int:
    if not isinstance(shard, dict) or not isinstance(shard.get("file"), str) or "/" in shard["file"]:
        raise UserError(f"{folder / records.META_FILE}: a shard entry is damaged ({str(shard)[:80]}); {_FIX}")
    path = folder / shard["file"]
    if not path.is_file():
        raise UserError(f"{path}: shard listed in dataset.json is missing; {_FIX}")
    size = path.stat().st_size
    if isinstance(shard.get("bytes"), int) and size != shard["bytes"]:
        raise UserError(f"{path}: has {size} bytes, {shard['bytes']} when written (truncated or overwritten); {_FIX}")
    count, problem = records.walk_records(path)
    if problem:
        raise UserError(f"{path}: damaged TFRecord shard ({problem}); {_FIX}")
    if count != shard.get("count"):
        raise UserError(f"{path}: dataset.json says {shard.get('count')} images in this shard but it holds {count}; "
                        f"{_FIX}")
    if isinstance(shard.get("sha256"), str) and records.file_digest(path)["sha256"] != shard["sha256"]:
        raise UserError(f"{path}: differs from the sha256 recorded when it was written (the file is corrupt); "
                        f"{_FIX}")
    return count
