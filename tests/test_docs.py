"""What the README and the reference pages in docs/ promise, checked without TensorFlow.

- README.md is at most 200 lines and starts with the two commands: install + train (command 1), install + the test
  command that `.ci/run` runs (command 2).
- Every relative link (and its #anchor) in README.md and docs/*.md, and every repository path written in inline code,
  points at something that exists. Inline paths are written from the repository root; a path right after "authors' "
  names a file of the authors' repository and is not checked.
- Every file tracked under benchmarks/results/ is cited by README.md or a docs page, by its path or by the path of a
  folder below benchmarks/results/ that holds it; at most one study's `study.html` is committed.
- No "spec §" references, issue numbers or "session" wording in README.md, docs/*.md and the module docstrings of
  training/, dnnlib/ and metrics/; no "spec §" anywhere in those packages' sources.
"""

from __future__ import annotations

import ast
import glob
import itertools
import re
import subprocess
from pathlib import Path
from typing import Iterable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results"
MAX_README_LINES = 200
PACKAGES = ("training", "dnnlib", "metrics")

# Inline code that starts like this is a path in this repository.
REPO_PREFIXES = ("benchmarks/", "training/", "metrics/", "dnnlib/", "tests/", "docs/", ".ci/")
ROOT_FILES = ("README.md", "ARCHITECTURE.md", "LICENSE", "run_network.py", "generate.py", "prepare_data.py",
              "requirements.txt", "requirements-test.txt", "conftest.py", "pytest.ini")

SPEC_EXCEPTIONS: set[str] = set()  # files allowed to cite "spec §N" (none)

SPEC = re.compile(r"spec\s*§")
ISSUE = re.compile(r"\bissues?\s*[-#]?\s*\d+", re.IGNORECASE)
SESSION = re.compile(r"\bsessions?\b", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


# ------------------------------------------------------------------------------------------------------- helpers

def doc_pages(root: Path) -> list[Path]:
    """README.md and every docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def strip_fences(text: str) -> str:
    """The text with fenced code blocks blanked out (line numbers kept)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def fenced_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(index of the opening line, body lines) of every fenced code block."""
    blocks, start, body = [], None, []
    for i, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            if start is None:
                start, body = i, []
            else:
                blocks.append((start, body))
                start = None
        elif start is not None:
            body.append(line)
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in strip_fences(page.read_text(encoding="utf-8")).splitlines()
            if re.match(r"#{1,6} ", line)}


def expand_braces(path: str) -> list[str]:
    """`a-{1,2}.json` -> [`a-1.json`, `a-2.json`] (any number of brace groups)."""
    parts = re.split(r"\{([^{}]*)\}", path)
    options = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*options)]


def inline_paths(text: str) -> Iterator[str]:
    """Repository paths written in inline code (outside fenced blocks), braces expanded."""
    text = strip_fences(text)
    for match in INLINE_CODE.finditer(text):
        token = match.group(1).strip()
        if text[:match.start()].endswith("authors' "):
            continue
        if not (token.startswith(REPO_PREFIXES) or token in ROOT_FILES) or " " in token or "<" in token:
            continue
        yield from expand_braces(token)


def links(text: str) -> Iterator[str]:
    """Targets of the relative links of a page (outside fenced blocks)."""
    for match in LINK.finditer(strip_fences(text)):
        target = match.group(1)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            yield target


def exists(root: Path, rel: str) -> bool:
    if any(ch in rel for ch in "*?["):
        return bool(glob.glob(str(root / rel)))
    return (root / rel).exists()


def broken_references(root: Path) -> list[str]:
    """Relative links, anchors and inline repository paths of README.md and docs/*.md that point at nothing."""
    problems = []
    for page in doc_pages(root):
        text = page.read_text(encoding="utf-8")
        name = page.relative_to(root).as_posix()
        for target in links(text):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                problems.append(f"{name}: link to {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{name}: link to {target}: no heading with that anchor")
        for rel in inline_paths(text):
            if not exists(root, rel.rstrip("/")):
                problems.append(f"{name}: `{rel}`: no such file or folder")
    return problems


def cited_paths(root: Path) -> set[str]:
    """Repository paths (relative, no trailing slash) that README.md and docs/*.md cite by link or inline path."""
    cited = set()
    for page in doc_pages(root):
        text = page.read_text(encoding="utf-8")
        for target in links(text):
            path = target.partition("#")[0]
            if path:
                dest = (page.parent / path).resolve()
                if dest.is_relative_to(root):
                    cited.add(dest.relative_to(root).as_posix())
        for rel in inline_paths(text):
            rel = rel.rstrip("/")
            if any(ch in rel for ch in "*?["):
                cited.update(Path(p).relative_to(root).as_posix() for p in glob.glob(str(root / rel)))
            else:
                cited.add(rel)
    return cited


def uncited_records(tracked: Iterable[str], cited: set[str]) -> list[str]:
    """Files of `tracked` (under benchmarks/results/) cited neither by path nor by a folder below RESULTS."""
    folders = {c for c in cited if c.startswith(RESULTS + "/")}
    out = []
    for path in tracked:
        parents = [p.as_posix() for p in Path(path).parents]
        if path not in cited and not any(p in folders for p in parents):
            out.append(path)
    return out


def wording_problems(name: str, text: str) -> list[str]:
    found = [(SPEC, "a 'spec §' reference"), (ISSUE, "an issue number"), (SESSION, "'session' wording")]
    return [f"{name}: {what}: {m.group(0)!r}" for pattern, what in found for m in pattern.finditer(text)]


def package_sources(root: Path) -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def source_problems(root: Path) -> list[str]:
    """Wording problems of module docstrings, and 'spec §' anywhere in the packages' sources (not the exceptions)."""
    problems = []
    for path in package_sources(root):
        name = path.relative_to(root).as_posix()
        if name in SPEC_EXCEPTIONS:
            continue
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text, filename=name)) or ""
        problems += wording_problems(f"{name} (module docstring)", docstring)
        problems += [f"{name}: a 'spec §' reference: {m.group(0)!r}" for m in SPEC.finditer(text)
                     if not SPEC.search(docstring)]
    return problems


def tracked_results(root: Path) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", RESULTS], cwd=root, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files of benchmarks/results/ are unknown")
    return [p for p in out.stdout.decode().split("\0") if p]


# --------------------------------------------------------------------------------------------------------- tests

def test_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("# "), "README.md starts with its title"
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    assert headings and lines[headings[0]] == "## Quickstart", "the first section is the quickstart"
    start, body = fenced_blocks(text)[0]
    assert headings[0] < start < (headings[1] if len(headings) > 1 else len(lines)) and start < 25, \
        "the first code block is the quickstart's, near the top"
    commands = [line.strip() for line in body if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2, f"the quickstart block holds exactly two commands, not {len(commands)}"
    train, test = ([part.strip() for part in command.split("&&")] for command in commands)
    assert train[0].startswith("python3 -m pip install -r requirements.txt"), "command 1 installs"
    assert any(part.startswith("python3 prepare_data.py --shapes") for part in train), "command 1 renders shapes"
    assert train[-1].startswith("python3 run_network.py --train --ganformer-default"), "command 1 trains a GANformer"
    assert test[0].startswith("python3 -m pip install -r requirements.txt -r requirements-test.txt"), \
        "command 2 installs the test dependencies"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test[-1] == "python3 -m pytest -q" and test[-1] in [line.strip() for line in ci], \
        "command 2 ends with the test command that .ci/run runs"
    for name in ("requirements.txt", "requirements-test.txt", "prepare_data.py", "run_network.py"):
        assert (ROOT / name).is_file(), f"the commands use {name}"


def test_links_and_paths_of_the_docs_exist():
    assert (ROOT / "docs" / "README.md").is_file(), "docs/README.md is the index of the docs"
    assert broken_references(ROOT) == []


def test_every_committed_record_is_cited():
    tracked = tracked_results(ROOT)
    assert tracked, "benchmarks/results/ holds the records the docs cite"
    assert uncited_records(tracked, cited_paths(ROOT)) == []
    pages = [p for p in tracked if p.endswith("/study.html")]
    assert len(pages) <= 1, f"one committed copy of a study's study.html at most, not {pages}"


def test_no_spec_issue_or_session_wording_in_the_docs():
    problems = []
    for page in doc_pages(ROOT):
        problems += wording_problems(page.relative_to(ROOT).as_posix(), page.read_text(encoding="utf-8"))
    assert problems == []


def test_no_spec_issue_or_session_wording_in_module_docstrings():
    assert package_sources(ROOT), "the packages' sources are found"
    assert source_problems(ROOT) == []
