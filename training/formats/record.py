"""The run record: what a run is, in one typed value that every file of the run carries.

A `RunRecord` is written once when a run starts (`training_options.json` in the run folder), embedded in every
network snapshot (`run_record` in its metadata) and in every checkpoint's `ckpt-<step>.sha256.json`, and it is the
only thing `--eval`, `--vis`, `generate.py` and the study read to know what a network was trained on. The authors'
released models get theirs from the checkpoint catalog (`training.formats.pretrained`), in the same type; a file
whose training is unknown (an authors' pickle loaded by path) has a record whose data facts are None, never values
guessed from a dataset name.

JSON form (the keys of `training_options.json`, unchanged from earlier versions):
    {"preset": str, "model_options": {...}, "training": {...}, "G": GeneratorConfig, "D": DiscriminatorConfig}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from dnnlib.util import UserError
from training.config import DiscriminatorConfig, GeneratorConfig, from_dict, to_dict

SECTIONS = ("preset", "model_options", "training", "G", "D")


@dataclass(frozen=True)
class RunRecord:
    """What a run is.

    Attributes:
        G: The generator's config (Gs has the same).
        D: The discriminator's config.
        training: The training options as recorded (`TrainingOptions.to_dict()`; empty when unknown).
        preset: The preset the run started from ("" when unknown).
        model_options: The model options after the preset and the flags (empty when unknown).
    """

    G: GeneratorConfig
    D: DiscriminatorConfig
    training: Mapping[str, Any] = field(default_factory=dict)
    preset: str = ""
    model_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # held in their JSON form (tuples as lists), so that a record equals itself read back from a file
        for name in ("training", "model_options"):
            object.__setattr__(self, name, json.loads(json.dumps(dict(getattr(self, name)))))

    @property
    def dataset(self) -> Optional[str]:
        """The dataset's name, or None when unknown."""
        return self.training.get("dataset") or None

    @property
    def ratio(self) -> Optional[float]:
        """The content height / width the networks were trained with, or None when unknown."""
        value = self.training.get("ratio")
        return None if value is None else float(value)

    @property
    def mirror_augment(self) -> Optional[bool]:
        """Whether the reals were mirrored, or None when unknown."""
        value = self.training.get("mirror_augment")
        return None if value is None else bool(value)

    @property
    def resolution(self) -> int:
        return self.G.resolution

    @property
    def label_dim(self) -> int:
        return self.G.label_dim

    def facts(self) -> dict[str, Any]:
        """The known data facts: `dataset`, `ratio`, `mirror_augment` when known, and `resolution`, `label_dim`."""
        known = {"dataset": self.dataset, "ratio": self.ratio, "mirror_augment": self.mirror_augment}
        return {**{k: v for k, v in known.items() if v is not None}, "resolution": self.resolution,
                "label_dim": self.label_dim}

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `training_options.json` and of the snapshots' metadata."""
        return {"preset": self.preset, "model_options": dict(self.model_options), "training": dict(self.training),
                "G": to_dict(self.G), "D": to_dict(self.D)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "RunRecord":
        """Reads a record's JSON object; the configs are validated.

        Raises:
            UserError: One line naming `where` when the object or one of its sections is malformed.
        """
        if not isinstance(data, Mapping):
            raise UserError(f"{where}: the run record is a {type(data).__name__}, expected a JSON object")
        for name, kind, default in (("training", Mapping, {}), ("model_options", Mapping, {}), ("preset", str, "")):
            if not isinstance(data.get(name, default), kind):
                raise UserError(f"{where}: the run record's '{name}' is not a {kind.__name__.lower()}")
        if not isinstance(data.get("G"), Mapping) or not isinstance(data.get("D"), Mapping):
            raise UserError(f"{where}: the run record has no 'G'/'D' configs")
        return cls(G=from_dict(GeneratorConfig, data["G"]).validate(),
                   D=from_dict(DiscriminatorConfig, data["D"]).validate(), training=dict(data.get("training", {})),
                   preset=data.get("preset", ""), model_options=dict(data.get("model_options", {})))

    def replace(self, **changes: Any) -> "RunRecord":
        return dataclasses.replace(self, **changes)
