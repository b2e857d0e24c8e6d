"""Loading and saving networks: our data-only snapshots, the authors' TF1 pickles and catalog names.

`load_networks(path_or_name)` accepts any of them and returns a `Networks` (`.G`, `.D`, `.Gs`). Nothing loaded is
ever executed: our snapshots are JSON + .npy (`training.formats.archive`), the authors' pickles go through a
restricted unpickler (`training.formats.tf1_pickle`).

The networks' record is the single source of the facts of their training data for --eval, --vis and generate.py
(`Networks.record`): our snapshots carry the run's record in their metadata; the authors' released models
loaded by catalog name get their dataset's catalog constants.
"""

from __future__ import annotations

import dataclasses
import os
import reprlib
import warnings
from typing import Any, Optional

import numpy as np

from dnnlib.disk import disk_full_as_user_error
from training.formats import tf1_pickle as legacy
from training.formats.record import RunRecord
from training.formats.pretrained import CATALOG as MODEL_CATALOG
from training.formats.pretrained import resolve_network_path
from training.formats.archive import is_snapshot, read_snapshot, write_snapshot
from dnnlib.util import UserError
from training import config as config_lib
from training.formats.checkpoint import list_snapshots
from training.data.catalog import dataset_constants
from training.formats.legacy_convert import convert_variables, discriminator_config, generator_config
from training.networks.limits import check_networks_fit
from training.networks.discriminator import Discriminator
from training.networks.generator import Generator
from training.networks.module import NamedModule


@dataclasses.dataclass
class Networks:
    """The three networks of a snapshot: G (trained generator), D, Gs (moving average of G, for sampling)."""

    G: Generator
    D: Discriminator
    Gs: Generator
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""

    @property
    def record(self) -> RunRecord:
        """The run record: the one embedded in the snapshot; for snapshots of earlier versions, their recorded
        training options with the networks' configs; for an authors' pickle, the catalog's facts (none when it was
        loaded by path)."""
        data = self.metadata.get("run_record")
        if data is not None:
            return RunRecord.from_json(data, self.source or "snapshot")
        return RunRecord(G=self.G.cfg, D=self.D.cfg, training=dict(self.metadata.get("training_options") or {}))


def assign_variables(module: NamedModule, arrays: dict[str, np.ndarray], where: str,
                     allow_unused: bool = False) -> None:
    """Copies `arrays` (full name -> value) into the module's variables, checking names and shapes.

    Raises:
        UserError: A variable of the module is missing from `arrays`, a shape differs, or a value is NaN or inf.
    """
    targets = module.variable_dict()
    missing = [n for n in targets if n not in arrays]
    if missing:
        raise UserError(f"{where}: {len(missing)} variable(s) missing from the file: {_shown(missing)}")
    non_finite = [n for n in targets if not _finite(arrays[n])]
    if non_finite:
        raise UserError(f"{where}: {len(non_finite)} variable(s) hold NaN or infinite values ({_shown(non_finite)}); "
                        "the network diverged or the file is corrupt: use an earlier snapshot")
    for name, var in targets.items():
        value = np.asarray(arrays[name])
        if tuple(value.shape) != tuple(var.shape):
            raise UserError(f"{where}: variable {name} has shape {list(value.shape)} in the file but "
                            f"{list(var.shape)} in the network built from its config")
        var.assign(value.astype(np.float32))
    unused = [n for n in arrays if n not in targets]
    if unused and not allow_unused:
        raise UserError(f"{where}: the file has {len(unused)} variable(s) the network does not: {unused[:5]}")
    if unused:
        warnings.warn(f"{where}: ignoring {len(unused)} unused variable(s) of the file: {unused[:5]}", stacklevel=2)


_ZIP_TAIL_BYTES = 22 + 65535  # the end-of-central-directory record and the longest zip comment


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def _finite(value: Any) -> bool:
    arr = np.asarray(value)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


def variable_arrays(module: NamedModule) -> dict[str, np.ndarray]:
    """Full name -> numpy value of every variable, in creation order."""
    return {name: var.numpy() for name, var in module.named_variables()}


def _network_config(net: Generator | Discriminator) -> dict[str, Any]:
    kind = "generator" if isinstance(net, Generator) else "discriminator"
    return {"kind": kind, "config": config_lib.to_dict(net.cfg)}


def save_networks(path: str, G: Generator, D: Discriminator, Gs: Generator,
                  metadata: Optional[dict[str, Any]] = None) -> None:
    """Writes a portable data-only snapshot (atomically) holding the configs and weights of G, D and Gs.

    Raises:
        UserError: The disk is full (the file is not written; an older file of that name stays as it was).
    """
    nets = {name: (_network_config(net), variable_arrays(net)) for name, net in (("G", G), ("D", D), ("Gs", Gs))}
    needed = sum(arr.nbytes + 512 for _, arrays in nets.values() for arr in arrays.values())  # + headers, index
    with disk_full_as_user_error(f"snapshot {os.path.basename(path)}", os.path.dirname(path) or ".", needed,
                                 "existing files are intact"):
        write_snapshot(path, nets, dict(metadata or {}))


def _build(entry: tuple[dict[str, Any], dict[str, np.ndarray]], where: str) -> Generator | Discriminator:
    """Builds one network of a snapshot after checking that its settings need no more values than it holds."""
    cfg_data, arrays = entry
    kind = cfg_data.get("kind")
    if kind not in ("generator", "discriminator"):
        raise UserError(f"{where}: unknown network kind {reprlib.repr(kind)}")
    cls = config_lib.GeneratorConfig if kind == "generator" else config_lib.DiscriminatorConfig
    try:
        cfg = config_lib.from_dict(cls, cfg_data.get("config")).validate()
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    check_networks_fit({"": cfg}, sum(int(a.size) for a in arrays.values()), where)
    net = Generator(cfg) if kind == "generator" else Discriminator(cfg)
    assign_variables(net, arrays, where)
    return net


def _load_snapshot(path: str) -> Networks:
    """Our snapshot (or a damaged zip that may have been one); errors name the newest intact snapshot beside it."""
    try:
        nets, metadata = _read_snapshot(path)
        for name in ("G", "D", "Gs"):
            if name not in nets:
                raise UserError(f"{path}: snapshot has no network {name!r}")
        built = {name: _build(nets[name], f"{path} [{name}]") for name in ("G", "D", "Gs")}
    except UserError as exc:
        raise UserError(f"{exc}{_intact_hint(path)}") from None
    return Networks(built["G"], built["D"], built["Gs"], metadata, path)


def _read_snapshot(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`read_snapshot`, saying "truncated" when the zip directory at the file's end is missing."""
    try:
        return read_snapshot(path)
    except UserError:
        size = _truncated_zip_size(path)
        if size is not None:
            raise UserError(f"{path}: the snapshot is truncated ({size:,} bytes, the zip directory at its end is "
                            f"missing: an interrupted copy, download or write)") from None
        raise


def _truncated_zip_size(path: str) -> Optional[int]:
    """The size of a zip file whose end-of-central-directory record is missing (zip64 files have one too), else
    None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - _ZIP_TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None
    return size if b"PK\x05\x06" not in tail else None


def _starts_like_zip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def snapshot_problem(path: str) -> Optional[str]:
    """Why `path` is not an intact snapshot (unreadable, truncated, corrupt, NaN/inf weights), or None if it is."""
    try:
        nets, _ = _read_snapshot(path)
    except UserError as exc:
        return str(exc)
    for net, (_, arrays) in nets.items():
        bad = [name for name, arr in arrays.items() if not _finite(arr)]
        if bad:
            return f"{path}: network {net}: {len(bad)} variable(s) hold NaN or infinite values"
    return None


def _intact_hint(path: str, max_checked: int = 20) -> str:
    """`"; the newest intact snapshot in <dir> is <file>"` for a file in a run dir (`network-final.pkl` first, then
    snapshots by kimg, newest first; at most `max_checked` are read), or "" when the folder has no other snapshots."""
    folder = os.path.dirname(path) or "."
    final = os.path.join(folder, "network-final.pkl")
    others = ([final] if os.path.isfile(final) else []) + list_snapshots(folder)[::-1]
    others = [p for p in others if not os.path.samefile(p, path)][:max_checked]
    if not others:
        return ""
    intact = next((p for p in others if snapshot_problem(p) is None), None)
    if intact is None:
        return f"; none of the {len(others)} newest other snapshot(s) in {folder} is intact either"
    return f"; the newest intact snapshot in {folder} is {intact}"


def _load_legacy(path: str) -> Networks:
    ckpt = legacy.read_legacy_pickle(path)
    try:
        configs = {"G": generator_config(ckpt.G), "D": discriminator_config(ckpt.D),
                   "Gs": generator_config(ckpt.Gs)}
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    file_values = sum(int(a.size) for rec in (ckpt.G, ckpt.D, ckpt.Gs) for a in rec.flat_variables().values())
    check_networks_fit(configs, file_values, path)
    out = {}
    for name in ("G", "Gs"):
        rec = getattr(ckpt, name)
        net = Generator(configs[name])
        assign_variables(net, convert_variables(rec.flat_variables(), net.cfg.resolution), f"{path} [{name}]",
                         allow_unused=True)
        out[name] = net
    D = Discriminator(configs["D"])
    assign_variables(D, convert_variables(ckpt.D.flat_variables(), D.cfg.resolution), f"{path} [D]",
                     allow_unused=True)
    return Networks(out["G"], D, out["Gs"], {"legacy_build_func": ckpt.G.build_func_name}, path)


def load_networks(path_or_name: str, cache_dir: Optional[str] = None) -> Networks:
    """Loads G, D and Gs from our snapshot, an authors' TF1 pickle, a URL or a catalog name (`gdrive:...`).

    Raises:
        UserError: Missing, corrupt or unrecognized file; refused pickle; config/weight mismatch.
    """
    path = resolve_network_path(path_or_name, cache_dir)
    if is_snapshot(path) or _starts_like_zip(path):  # a damaged snapshot is a zip that is_snapshot cannot read
        return _load_snapshot(path)
    if legacy.is_legacy_pickle(path):
        nets = _load_legacy(path)
        entry = MODEL_CATALOG.get(path_or_name)
        if entry is not None:  # e.g. gdrive:clevr-snapshot.pkl: trained on clevr
            facts = dict(dataset=entry.dataset, ratio=entry.ratio, mirror_augment=dataset_constants(entry.dataset)[2])
            record = RunRecord(G=nets.G.cfg, D=nets.D.cfg, training=facts, preset=f"ganformer-{entry.dataset}")
            nets.metadata["run_record"] = record.to_json()
        return nets
    raise UserError(f"{path}: not a network file (neither a GANformer-TF2 snapshot nor an authors' TF1 pickle); "
                    "pass a network-*.pkl written by run_network.py or a released checkpoint")
