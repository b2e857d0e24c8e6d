"""Miscellaneous utilities: EasyDict, user-facing errors."""

from __future__ import annotations

from typing import Any


class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


class UserError(Exception):
    """An error caused by bad input (a flag, a file); CLIs print its message as one line and exit non-zero."""
