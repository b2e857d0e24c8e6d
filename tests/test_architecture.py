"""The import layers of ARCHITECTURE.md hold: no upward import, no import cycle, no module outside the table.

The layers are read from ARCHITECTURE.md's table (its one home). Every import counts, function-local ones too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dnnlib", "training", "metrics", "benchmarks")
SCRIPTS = ("run_network", "generate", "prepare_data")


def read_layers(text: str) -> tuple[dict[str, int], dict[str, int]]:
    """Parses the `## Layers` table: ({name: layer} for prefix names, {name: layer} for `(root)` names)."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    prefix, roots = {}, {}
    for m in re.finditer(r"^\|\s*(\d+)\s*\|[^|]*\|([^|]*)\|\s*$", section, re.M):
        for name in (n.strip() for n in m.group(2).split(",")):
            if name.endswith("(root)"):
                roots[name[:-len("(root)")].strip()] = int(m.group(1))
            elif name:
                prefix[name] = int(m.group(1))
    return prefix, roots


def layer_of(module: str, prefix: dict[str, int], roots: dict[str, int]) -> Optional[int]:
    if module in roots:
        return roots[module]
    best = max((n for n in prefix if module == n or module.startswith(n + ".")), key=len, default=None)
    return None if best is None else prefix[best]


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the packages and the top-level scripts."""
    mods = {name: root / f"{name}.py" for name in SCRIPTS}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            if "results" in path.relative_to(root).parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports, anywhere in its file (`from a import b` counts `a` and, when it is a
    module, `a.b`)."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[:len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != module}


def graph(root: Path) -> dict[str, set[str]]:
    mods = project_modules(root)
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]; counter[0] += 1
        stack.append(start); on.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                    stack.append(nxt); on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop(); on.discard(m); comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


@pytest.fixture(scope="module")
def layers() -> tuple[dict[str, int], dict[str, int]]:
    return read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return graph(ROOT)


def test_every_module_has_a_layer(layers, edges):
    missing = [m for m in edges if layer_of(m, *layers) is None]
    assert not missing, f"modules that no row of ARCHITECTURE.md's table names: {missing}"


def test_no_upward_import(layers, edges):
    upward = [f"{a} (layer {layer_of(a, *layers)}) imports {b} (layer {layer_of(b, *layers)})"
              for a, bs in sorted(edges.items()) for b in sorted(bs)
              if None not in (layer_of(a, *layers), layer_of(b, *layers)) and layer_of(b, *layers) > layer_of(a, *layers)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle(edges):
    assert not cycles(edges), cycles(edges)


# The checks themselves, on a made-up tree: they must fail where they should.
def test_checks_find_an_upward_import_and_a_cycle(tmp_path):
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text('"""x"""\n')
    for name in SCRIPTS:
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "dnnlib" / "low.py").write_text("def f():\n    from training.cli import flags\n")
    (tmp_path / "training" / "a.py").write_text("import training.b\n")
    (tmp_path / "training" / "b.py").write_text("from training import a\n")
    e = graph(tmp_path)
    prefix, roots = read_layers("## Layers\n| 0 | f | dnnlib, training (root) |\n| 5 | c | training |\n")
    assert layer_of("training.b", prefix, roots) == 5 and layer_of("training", prefix, roots) == 0
    assert "training.cli" not in e["dnnlib.low"]  # not a module of this tree: nothing to point at
    (tmp_path / "training" / "cli.py").write_text("")
    e = graph(tmp_path)
    assert "training.cli" in e["dnnlib.low"]
    assert cycles(e) == [["training.a", "training.b"]]
