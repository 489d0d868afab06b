"""recurrax: recurrent neural networks as pure JAX functions."""

from recurrax.cells import GRU, LSTM, RNN, Cell, LSTMState
from recurrax.models import Model
from recurrax.unroll import bidirectional, unroll, unroll_internals

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Cell",
    "LSTMState",
    "Model",
    "bidirectional",
    "unroll",
    "unroll_internals",
]
