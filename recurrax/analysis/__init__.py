"""Analysis tools: gradient flow, counters in cell states, learning-curve summaries."""

import importlib

SUBMODULES = ("gradflow", "counters", "curves")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"recurrax.analysis.{name}")
    raise AttributeError(f"module 'recurrax.analysis' has no attribute {name!r}")
