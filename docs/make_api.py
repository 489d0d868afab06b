"""Write docs/API.md from the docstrings: ``python docs/make_api.py`` (tests/test_docs.py checks
that the committed file is what this prints, and that every public function, class and method
has a docstring)."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

MODULES = [
    "recurrax.cells", "recurrax.unroll", "recurrax.fused", "recurrax.models", "recurrax.linen",
    "recurrax.nnx", "recurrax.interop", "recurrax.problem", "recurrax.optim", "recurrax.engine",
    "recurrax.runs", "recurrax.tasks.formal", "recurrax.tasks.memory", "recurrax.tasks.chomsky",
    "recurrax.tasks.charlm", "recurrax.analysis.gradflow", "recurrax.analysis.counters",
    "recurrax.analysis.curves", "recurrax.plots", "recurrax.cli",
]  # fmt: skip
HEADER = """# API reference

Generated from the docstrings by `python docs/make_api.py` (the tests check it is current);
`python -m pydoc recurrax.MODULE` shows the full text, with shapes, equations and papers.
Layers, lowest first: cells -> unroll -> models -> tasks -> engine -> runs -> analysis -> cli.
"""


def public(module) -> list[tuple[str, object]]:
    """The module's own public functions and classes, in source order."""
    items = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            items.append((name, obj))
    return sorted(items, key=lambda item: _line(item[1]))


def _line(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 0


def methods(cls) -> list[tuple[str, object]]:
    return [
        (name, obj)
        for name, obj in vars(cls).items()
        if not name.startswith("_") and (inspect.isfunction(obj) or isinstance(obj, classmethod))
    ]


def first_line(obj) -> str | None:
    doc = inspect.getdoc(obj)
    return doc.strip().splitlines()[0] if doc else None


def render() -> tuple[str, list[str]]:
    """``(API.md text, names without a docstring)``."""
    out, missing = [HEADER], []
    for modname in MODULES:
        module = importlib.import_module(modname)
        out.append(f"\n## `{modname}`\n\n{first_line(module)}\n")
        for name, obj in public(module):
            kind = "class" if inspect.isclass(obj) else "def"
            line = first_line(obj)
            if line is None:
                missing.append(f"{modname}.{name}")
            out.append(f"- **{kind} `{name}`** — {line}")
            if inspect.isclass(obj) and obj.__doc__ and not obj.__doc__.startswith(name + "("):
                for mname, meth in methods(obj):
                    mline = first_line(meth.__func__ if isinstance(meth, classmethod) else meth)
                    if mline is None:
                        missing.append(f"{modname}.{name}.{mname}")
                    out.append(f"  - `{name}.{mname}` — {mline}")
    return "\n".join(out) + "\n", missing


if __name__ == "__main__":
    text, missing = render()
    Path(__file__).with_name("API.md").write_text(text)
    if missing:
        sys.exit("no docstring: " + ", ".join(missing))
