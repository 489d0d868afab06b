"""Tasks: formal languages, memory tasks, the Chomsky-hierarchy suite, character-level LM."""

import importlib

SUBMODULES = ("formal", "memory", "chomsky", "charlm")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"recurrax.tasks.{name}")
    raise AttributeError(f"module 'recurrax.tasks' has no attribute {name!r}")
