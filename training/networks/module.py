"""Base module with named variables in the original checkpoint layout.

Every network piece is a `NamedModule`: a `tf.Module` that creates its `tf.Variable`s eagerly in `__init__` under the
names the original TF1 code used (`4x4/Conv/weight`, `AttLayer_l2n/toasgn_init`, ...). `named_variables()` returns
them in creation order with full slash-separated paths, which is what snapshots and the legacy-checkpoint loader use.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

Initializer = Callable[[tuple[int, ...], np.random.Generator], np.ndarray]


def normal_init(std: float = 1.0) -> Initializer:
    """N(0, std²) initializer."""
    return lambda shape, rng: rng.standard_normal(shape) * std


def uniform_init() -> Initializer:
    """U[0, 1) initializer (the original's latent embeddings)."""
    return lambda shape, rng: rng.random(shape)


def constant_init(value: float) -> Initializer:
    """Constant initializer."""
    return lambda shape, rng: np.full(shape, value)


class ShapeOnlyRng(np.random.Generator):
    """A generator that, passed as a network's seed, makes it record its variables' shapes without allocating them.

    `Generator(cfg, seed=ShapeOnlyRng())` (and `Discriminator`) then holds `ShapeOnlyVariable`s, which cannot be
    computed with; `num_values` counts the scalars the real network would hold. Used to bound a network built from
    a file's settings before any memory is committed to it.
    """

    def __init__(self) -> None:
        super().__init__(np.random.PCG64(0))
        self.num_values = 0


class ShapeOnlyVariable:
    """Stand-in for a `tf.Variable` in a shape-only build: shape, dtype and trainability, no values."""

    def __init__(self, shape: tuple[int, ...], trainable: bool) -> None:
        self.shape = tf.TensorShape(shape)
        self.dtype = tf.float32
        self.trainable = trainable


class NamedModule(tf.Module):
    """A `tf.Module` whose variables and children are kept in ordered, original-style name tables.

    Args:
        rng: NumPy generator used for all initial values (deterministic builds from one seed).
    """

    def __init__(self, rng: np.random.Generator, name: str | None = None) -> None:
        super().__init__(name=name)
        self._rng = rng
        self._entries: list[tuple[str, tf.Variable | NamedModule]] = []

    def add_var(self, name: str, shape: tuple[int, ...], init: Initializer, trainable: bool = True) -> tf.Variable:
        """Creates a float32 variable `name` (relative to this module) and registers it."""
        if isinstance(self._rng, ShapeOnlyRng):
            shape = tuple(int(s) for s in shape)
            self._rng.num_values += int(np.prod(shape, dtype=object))
            placeholder = ShapeOnlyVariable(shape, trainable)
            self._entries.append((name, placeholder))
            return placeholder  # type: ignore[return-value]
        value = np.asarray(init(tuple(int(s) for s in shape), self._rng), dtype=np.float32).reshape(shape)
        var = tf.Variable(value, trainable=trainable, name=name.replace("/", "."))
        self._entries.append((name, var))
        return var

    def add_child(self, name: str, module: NamedModule) -> NamedModule:
        """Registers a child module whose variables appear under `name/` (directly in this scope if `name` is "")."""
        self._entries.append((name, module))
        return module

    def named_variables(self, prefix: str = "") -> Iterator[tuple[str, tf.Variable]]:
        """Yields `(full_name, variable)` for every variable of this module and its children, in creation order."""
        for name, entry in self._entries:
            if isinstance(entry, NamedModule):
                yield from entry.named_variables(f"{prefix}{name}/" if name else prefix)
            else:
                yield f"{prefix}{name}", entry

    def variable_dict(self) -> dict[str, tf.Variable]:
        """Full name -> variable, in creation order."""
        return dict(self.named_variables())

    def num_params(self, trainable_only: bool = True) -> int:
        """Number of scalar parameters (trainable only by default)."""
        return int(sum(np.prod(v.shape) for _, v in self.named_variables() if v.trainable or not trainable_only))
