"""Flax (linen) modules over the same pure functions.

The modules hold recurrax params unchanged under one Flax param named ``"weights"``, so
``module.apply({"params": {"weights": p}}, ...)`` gives exactly the numbers of the plain
function with params ``p`` (tested).

>>> model = Recurrent(recurrax.Model((recurrax.LSTM(32),), output_size=5, vocab_size=10,
...                                  embed_size=8))
>>> variables = model.init(jax.random.key(0), jnp.zeros((2, 7), jnp.int32))
>>> logits = model.apply(variables, jnp.zeros((2, 7), jnp.int32))   # [2, 7, 5]
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from recurrax.cells import Cell
from recurrax.models import Model
from recurrax.unroll import unroll

Array = jax.Array


class Recurrent(nn.Module):
    """A :class:`recurrax.Model` as a Flax module: ``inputs [B, T(, F)] -> outputs``."""

    model: Model

    @nn.compact
    def __call__(
        self, inputs: Array, lengths: Array | None = None, deterministic: bool = True
    ) -> Array:
        params = self.param("weights", lambda key: self.model.init(key))
        key = None if deterministic or not self.model.dropout else self.make_rng("dropout")
        return self.model.apply(params, inputs, lengths=lengths, key=key)[0]


class RNN(nn.Module):
    """One recurrax cell unrolled over ``xs [B, T, F]``; returns ``(ys [B, T, Y], carry)``."""

    cell: Cell

    @nn.compact
    def __call__(
        self, xs: Array, carry: Any = None, lengths: Array | None = None, reverse: bool = False
    ):
        params = self.param("weights", lambda key: self.cell.init(key, xs.shape[-1]))
        return unroll(self.cell, params, xs, carry, lengths=lengths, reverse=reverse)
