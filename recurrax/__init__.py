"""recurrax: recurrent neural networks as pure JAX functions.

The cells, ``unroll`` (the function) and ``Model`` are imported here; the other documented
submodules (``engine``, ``runs``, ``optim``, ``problem``, ``plots``, ``interop``, ``linen``,
``nnx``, ``fused``, ``tasks``, ``analysis``, ``cli``) load on first use:
``recurrax.runs.load(...)`` works after ``import recurrax``.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

from recurrax.cells import GRU, LSTM, RNN, Cell, LSTMState
from recurrax.models import Model
from recurrax.unroll import Tokens, bidirectional, unroll, unroll_internals

try:
    __version__ = version("recurrax")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

SUBMODULES = (
    "analysis",
    "cells",
    "cli",
    "engine",
    "fused",
    "interop",
    "linen",
    "models",
    "nnx",
    "optim",
    "plots",
    "problem",
    "runs",
    "tasks",
)

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Cell",
    "LSTMState",
    "Model",
    "Tokens",
    "bidirectional",
    "unroll",
    "unroll_internals",
    "__version__",
    *SUBMODULES,
]


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"recurrax.{name}")
    raise AttributeError(f"module 'recurrax' has no attribute {name!r}")
