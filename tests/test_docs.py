"""The README and docs/*.md say what runs: their ```python blocks execute, and every
command-line flag they name for a study script exists in that script's parser.

Python blocks of one file run in order in one namespace, in a temporary working directory.
Where a block needs data that only exists in its context (the README's ``tokens``), the
file's entry in ``FIXTURES`` provides it; ``SHRINK`` replaces the documented sizes by small
ones (the text is documentation, the test only checks that it runs). Both are listed per file
so that a reader of this test sees exactly what the docs leave to context.

Flags: ```bash blocks are split into commands; a command that runs ``experiments/STUDY.py``
(or ``recurrax STUDY``) names flags for STUDY. In prose, flags inside inline code are given to
the study named in the same paragraph or table row; flags in a paragraph that names no study
must exist in at least one study. A study's flags are those of
``recurrax.cli.STUDY.build_parser()`` and its subcommands (no subprocess); a study without that
module is skipped with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STUDIES = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if not p.stem.startswith("_"))

# Names a file's blocks use without defining them (kept small).
FIXTURES: dict[str, str] = {}
# Documented sizes -> test sizes, per file (plain text replacements inside python blocks).
SHRINK = {
    "README.md": {
        "seeds=64": "seeds=2",
        "steps=2000, eval_every=50": "steps=4, eval_every=2",
        "LSTM(256)": "LSTM(8)",
        "embed_size=64": "embed_size=4",
    },
}
# Files whose blocks are known to fail today, with the reason; strict, so a fixed file makes
# the test fail until its entry is removed here.
BROKEN: dict[str, str] = {}


def blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every fenced block of ``lang`` (line of the opening fence, 1-based)."""
    out, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if m:
            start, indent, tag = i + 1, m.group(1), m.group(2)
            i += 1
            body = []
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i][len(indent) :])
                i += 1
            if tag == lang:
                out.append((start, "\n".join(body)))
        i += 1
    return out


def _id(path: Path) -> str:
    return path.name


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=BROKEN[p.name], strict=True))
        if p.name in BROKEN
        else p
        for p in DOCS
        if blocks(p, "python")
    ],
    ids=_id,
)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__docs__"}
    exec(compile(FIXTURES.get(path.name, ""), f"<fixture {path.name}>", "exec"), ns)
    failures, shrunk = [], set()
    for line, code in blocks(path, "python"):
        for old, new in SHRINK.get(path.name, {}).items():
            shrunk |= {old} if old in code else set()
            code = code.replace(old, new)
        try:
            exec(compile(code, name := f"{path.name}:{line}", "exec"), ns)
        except Exception as err:  # noqa: BLE001 - every failing block is reported
            frames = traceback.extract_tb(err.__traceback__)
            at = [f.lineno for f in frames if f.filename == name][-1:] or ["?"]
            failures.append(f"{name} (line {at[0]} of the block): {err!r}")
    assert not failures, "\n".join(failures)
    # a size the docs no longer write would run at full size: update SHRINK with the docs
    assert shrunk == set(SHRINK.get(path.name, {})), "SHRINK entries not found in the docs"


# ---------------------------------------------------------------------------------------------
# Flags

SCRIPT = re.compile(r"(?:experiments/|\b)(\w+)\.py\b|\brecurrax\s+(\w+)")
FLAG = re.compile(r"(?<![\w=/-])(--[A-Za-z][\w-]*)")


def _study(m: re.Match) -> str | None:
    name = m.group(1) or m.group(2)
    return name if name in STUDIES else None


def parser_of(study: str) -> argparse.ArgumentParser | None:
    """``recurrax.cli.STUDY.build_parser()``, or None while that module does not exist."""
    try:
        spec = importlib.util.find_spec(f"recurrax.cli.{study}")
    except ModuleNotFoundError:  # recurrax.cli is a plain module, not yet a package
        spec = None
    if spec is None:
        return None
    return importlib.import_module(f"recurrax.cli.{study}").build_parser()


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option of ``parser`` and of its subcommands."""
    out = set()
    for action in parser._actions:
        out.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= option_strings(sub)
    return out


def mentions(path: Path) -> list[tuple[int, str | None, str]]:
    """``(line, study or None, flag)`` for every flag the file names."""
    out = []
    text = path.read_text()
    lines = text.splitlines()
    # Commands in ```bash blocks.
    for start, code in blocks(path, "bash"):
        for k, row in enumerate(code.splitlines()):
            for command in re.split(r"&&|\|\||[|;]", row.split(" #")[0]):
                m = SCRIPT.search(command)
                study = _study(m) if m else None
                if study:
                    for flag in FLAG.findall(command[m.end() :]):
                        out.append((start + 1 + k, study, flag))
    # Prose: paragraphs and table rows outside fenced blocks.
    fenced, units, unit = False, [], []
    for n, row in enumerate(lines, 1):
        if row.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if not row.strip() or row.lstrip().startswith("|"):
            if unit:
                units.append(unit)
            unit = []
            if row.strip():
                units.append([(n, row)])
        else:
            unit.append((n, row))
    if unit:
        units.append(unit)
    for unit in units:
        named = [s for _, row in unit for m in SCRIPT.finditer(row) if (s := _study(m))]
        for n, row in unit:
            for code in re.findall(r"`([^`]+)`", row):
                m = SCRIPT.search(code)
                own = _study(m) if m else None
                study = own or (named[0] if len(set(named)) == 1 else None)
                for flag in FLAG.findall(code):
                    out.append((n, study, flag))
    return out


@pytest.fixture(scope="module")
def all_mentions() -> list[tuple[str, int, str | None, str]]:
    return [(p.name, line, study, flag) for p in DOCS for line, study, flag in mentions(p)]


@pytest.mark.parametrize("study", STUDIES)
def test_named_flags_exist(study, all_mentions):
    named = [(f, n, flag) for f, n, s, flag in all_mentions if s == study]
    parser = parser_of(study)
    if parser is None:
        pytest.skip(
            f"recurrax.cli.{study} does not exist (yet): {len(named)} flag mention(s) of "
            f"{study} unchecked"
        )
    options = option_strings(parser) | {"--help"}
    missing = [
        f"{f}:{n}: {study} has no flag {flag}" for f, n, flag in named if flag not in options
    ]
    assert not missing, "\n".join(missing)


def test_flags_without_a_study_exist_somewhere(all_mentions):
    options, absent = {"--help"}, []
    for study in STUDIES:
        parser = parser_of(study)
        if parser is None:
            absent.append(study)
        else:
            options |= option_strings(parser)
    if absent:
        pytest.skip(f"recurrax.cli has no module for {', '.join(absent)} (yet)")
    missing = [
        f"{f}:{n}: {flag} is not a flag of any study"
        for f, n, s, flag in all_mentions
        if s is None and flag not in options
    ]
    assert not missing, "\n".join(missing)


# ---------------------------------------------------------------------------------------------
# docs/API.md


def test_api_md_is_generated_from_docstrings_that_exist():
    """docs/API.md is what docs/make_api.py writes, and every public name has a docstring."""
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    make_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_api)
    text, missing = make_api.render()
    assert not missing, f"public names without a docstring: {missing}"
    assert (ROOT / "docs" / "API.md").read_text() == text, "stale: run python docs/make_api.py"
