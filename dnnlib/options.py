"""Options declared once: a dataclass field carries its flag, help, default, range, choices and resume behaviour.

    @dataclass
    class Schedule:
        total_kimg: float = option(25000.0, help="training length in thousands of real images", range=Range(0.001))

From such fields this module builds the command line (`add_flags`, one argparse argument per field with a flag;
an argument the user does not pass holds `UNSET`, so "passed" needs no guessing), checks values against their
annotation, range and choices with a one-line error naming the flag (`check_value`, `check_options`), and compares
two records of the same class field by field for a resume (`changes`), each field's `resume` saying whether a change
is refused (`ARCHITECTURE`), allowed and printed (`RUNTIME`) or not compared at all (`INVOCATION`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import reprlib
import typing
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Optional

import numpy as np

from dnnlib.util import UserError

ARCHITECTURE = "architecture"  # shapes what a checkpoint holds: a resume refuses a change
RUNTIME = "runtime"  # may change when a run resumes (the change is printed)
INVOCATION = "invocation"  # belongs to one invocation (e.g. the run folder): recorded, never compared
_KEY = "option"  # field metadata key
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # the parsed value of a flag the user did not pass


class Range(NamedTuple):
    """The allowed values of a number: `lo <= value <= hi` (an open end excludes it); floats must be finite."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        """E.g. `>= 1`, `> 0`, `in [0, 1)`."""
        lower = (f"> {_number(self.lo)}" if self.lo_open else f">= {_number(self.lo)}") if self.lo > -2 ** 62 else ""
        upper = (f"< {_number(self.hi)}" if self.hi_open else f"<= {_number(self.hi)}") if self.hi < 2 ** 62 else ""
        if not (lower and upper):  # (bounds beyond 2**62, e.g. int64's largest count, are not worth a mention)
            return lower or upper
        return f"in {'(' if self.lo_open else '['}{_number(self.lo)}, {_number(self.hi)}{')' if self.hi_open else ']'}"

    def contains(self, value: float) -> bool:
        return ((value > self.lo if self.lo_open else value >= self.lo)
                and (value < self.hi if self.hi_open else value <= self.hi))

    def check(self, flag: str, value: Any, integer: bool) -> None:
        """Raises a one-line `UserError` naming `flag` unless `value` is a number of the kind and in the range."""
        kind = "an integer" if integer else "a finite number"
        is_number = isinstance(value, (int, np.integer) if integer else (int, float, np.integer, np.floating))
        ok = (is_number and not isinstance(value, (bool, np.bool_))
              and (isinstance(value, (int, np.integer)) or math.isfinite(value)) and self.contains(value))
        if not ok:
            raise UserError(f"{flag} {_SHORT.repr(value)}: must be {' '.join(filter(None, (kind, self.describe())))}")


def _number(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What a field declares besides its default (see `option`)."""

    flag: Optional[str] = None
    help: Optional[str] = None
    range: Optional[Range] = None
    choices: Optional[tuple] = None
    parse: Optional[Callable[[str], Any]] = None
    resume: str = ARCHITECTURE
    group: Optional[str] = None


def option(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, flag: Optional[str] = None,
           help: Optional[str] = None, range: Optional[Range] = None, choices: Optional[tuple] = None,
           parse: Optional[Callable[[str], Any]] = None, resume: str = ARCHITECTURE,
           group: Optional[str] = None) -> Any:
    """A dataclass field with everything about it in one place.

    Args:
        default: The default value (or `factory`, a callable making it, for lists).
        flag: The command-line flag; None derives it from the name (`g_lr` -> `--g-lr`), "" means no flag.
        help: The flag's help text.
        range: Allowed numbers (checked for ints and floats; None: any finite number).
        choices: Allowed values.
        parse: Turns the flag's text into the value (default: the annotation's type; bools take true/false).
        resume: ARCHITECTURE (a resume refuses a change), RUNTIME (allowed, printed) or INVOCATION (not compared).
        group: The `--help` section of the flag.
    """
    spec = OptionSpec(flag, help, range, choices, parse, resume, group)
    return dataclasses.field(default=default, default_factory=factory, metadata={_KEY: spec})


def spec_of(field: dataclasses.Field) -> OptionSpec:
    return field.metadata.get(_KEY, OptionSpec())


def flag_of(field: dataclasses.Field) -> Optional[str]:
    """The field's flag (`--g-lr`), or None when it has none."""
    flag = spec_of(field).flag
    return None if flag == "" else flag or "--" + field.name.replace("_", "-")


def label_of(field: dataclasses.Field) -> str:
    """How messages name a field: its flag, else its name."""
    return flag_of(field) or field.name


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def base_type(hint: Any) -> Any:
    """`int` for `Optional[int]`; the hint itself otherwise."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if type(None) in typing.get_args(hint) and len(args) == 1 else hint


# --- values ------------------------------------------------------------------------------------------------------

def check_value(label: str, value: Any, hint: Any, spec: OptionSpec = OptionSpec()) -> None:
    """Checks one value against its annotation, range and choices.

    Raises:
        UserError: One line naming `label` (a flag or a field), the value and what it must be.
    """
    if value is None and type(None) in typing.get_args(hint):
        return
    hint = base_type(hint)
    origin = typing.get_origin(hint)
    if hint in (int, float):
        (spec.range or Range()).check(label, value, integer=hint is int)
    elif origin in (list, tuple):
        items = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or (origin is tuple and len(value) != len(items)):
            raise UserError(f"{label} {value!r}: must be a list of {len(items) if origin is tuple else 'any'} "
                            f"{items[0].__name__} values")
        for item in value:
            check_value(label, item, items[0], dataclasses.replace(spec, choices=None))
    elif not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise UserError(f"{label}: must be {'true/false' if hint is bool else 'a ' + hint.__name__}, got "
                        f"{type(value).__name__} {_SHORT.repr(value)}")
    if spec.choices is not None and value not in spec.choices:
        raise UserError(f"{label} {value}: choose one of {', '.join(str(c) for c in spec.choices)}")


def check_options(obj: Any) -> None:
    """`check_value` on every field of a dataclass instance (messages name the flags)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_value(label_of(f), getattr(obj, f.name), hints[f.name], spec_of(f))


def coerce(where: str, name: str, value: Any, hint: Any) -> Any:
    """`value` read from a file as the annotated type (numpy scalars and ints for floats accepted).

    Raises:
        UserError: One line naming `where` and the setting.
    """
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint)
    is_bool = isinstance(value, (bool, np.bool_))
    if value is None and type(None) in args:
        return None
    if base is bool and (is_bool or (isinstance(value, (int, np.integer)) and value in (0, 1))):
        return bool(value)
    if base is int and isinstance(value, (int, np.integer)) and not is_bool:
        return int(value)
    if base is float and isinstance(value, (int, float, np.integer, np.floating)) and not is_bool:
        number = float(value) if abs(value) < 1e300 else math.inf
        if not math.isfinite(number):
            raise UserError(f"{where}: {name} must be a finite number, got {_SHORT.repr(value)}")
        return number
    if (base is str and isinstance(value, str)) or (dataclasses.is_dataclass(base) and isinstance(value, base)):
        return value
    raise UserError(f"{where}: {name} must be {_type_name(hint)}, got {type(value).__name__} {_SHORT.repr(value)}")


def _type_name(hint: Any) -> str:
    base = base_type(hint)
    name = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(base, base.__name__)
    return f"{name} or null" if type(None) in typing.get_args(hint) else name


# --- resume ------------------------------------------------------------------------------------------------------

class Change(NamedTuple):
    """One difference between a saved record and the current one (`path` like `attention.num_heads`)."""

    path: str
    old: Any
    new: Any
    runtime: bool


def changes(cls: type, old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[Change]:
    """The fields of dataclass `cls` whose values differ between two records (`dataclasses.asdict` form; nested
    dataclasses recursively).

    A field missing from a record counts as its default (records of older versions); keys the class no longer has
    are reported as runtime changes (they cannot shape anything built today). `INVOCATION` fields are skipped.
    Values are compared as JSON (tuples equal lists).
    """
    out: list[Change] = []
    for f in dataclasses.fields(cls):
        resume = spec_of(f).resume
        if resume == INVOCATION:
            continue
        default = default_of(f)
        if dataclasses.is_dataclass(default):
            out += changes(type(default), old.get(f.name) or {}, new.get(f.name) or {}, f"{prefix}{f.name}.")
            continue
        a, b = (_as_json(r[f.name]) if f.name in r else _as_json(default) for r in (old, new))
        if a != b:
            out.append(Change(prefix + f.name, a, b, resume == RUNTIME))
    names = {f.name for f in dataclasses.fields(cls)}
    out += [Change(prefix + k, old[k], None, True) for k in sorted(set(old) - names)]
    return out


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


# --- command line ------------------------------------------------------------------------------------------------

def str2bool(v: Any) -> bool:
    """The original's BOOL flags: `--flag` (True) or `--flag true/false/yes/no/1/0`."""
    if isinstance(v, bool):
        return v
    s = str(v).lower()
    if s in ("yes", "true", "t", "y", "1"):
        return True
    if s in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def none_or(kind: type) -> Callable[[str], Any]:
    """A flag parser that also takes `none` (-> None)."""
    def parse(v: str) -> Optional[Any]:
        return None if str(v).lower() == "none" else kind(v)
    parse.kind = kind  # type: ignore[attr-defined]  # what it parses, for `value_kind`
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value" messages
    return parse


def value_kind(action: argparse.Action) -> Any:
    """The type a flag's value is parsed as (`int` for a `none_or(int)` flag)."""
    return getattr(action.type, "kind", action.type)


def flag_fields(cls: type) -> Iterator[tuple[dataclasses.Field, str]]:
    """`(field, flag)` of the fields of `cls` that have a flag, in declaration order."""
    for f in dataclasses.fields(cls):
        flag = flag_of(f)
        if flag:
            yield f, flag


def add_flags(parser: argparse.ArgumentParser, cls: type, groups: dict[str, Any]) -> None:
    """Adds one argument per field of `cls` with a flag, to `groups[field's group]` (None: the parser's own list).
    A flag not passed parses as `UNSET`; its help ends with the default unless it speaks of it."""
    hints = typing.get_type_hints(cls)
    for f, flag in flag_fields(cls):
        spec, hint = spec_of(f), base_type(hints[f.name])
        group = parser if spec.group is None else groups[spec.group]
        default = default_of(f)
        shown = "" if default in (None, "", False) or spec.help and "default" in spec.help else f" (default: {default})"
        kw: dict[str, Any] = dict(default=UNSET, dest=f.name, help=(spec.help or "") + shown if spec.help else None)
        if hint is bool and spec.parse is None:
            group.add_argument(flag, type=str2bool, nargs="?", const=True, **kw)
            continue
        kind = spec.parse or (hint if hint in (int, float, str) else str)
        choices = spec.choices if typing.get_origin(hint) is None else None
        group.add_argument(flag, type=kind, choices=list(choices) if choices else None, **kw)


def passed_values(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The values of the fields of `cls` whose flags the user passed (by field name)."""
    return {f.name: getattr(namespace, f.name) for f, _ in flag_fields(cls)
            if getattr(namespace, f.name, UNSET) is not UNSET}


def from_flags(cls: type, namespace: argparse.Namespace, **fixed: Any) -> Any:
    """An instance of `cls`: the passed flags' values over the defaults, then `fixed`."""
    return cls(**{**passed_values(namespace, cls), **fixed})
