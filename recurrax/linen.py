"""Flax linen modules over the same pure functions.

The modules hold recurrax params unchanged under one Flax param named ``"weights"``, so
``module.apply({"params": {"weights": p}}, ...)`` gives exactly the numbers of the plain
function with params ``p`` (tested). Both return ``(outputs, carry)`` and take an initial
carry, like :func:`recurrax.unroll` and :meth:`recurrax.Model.apply`, so stateful
(truncated-BPTT) training passes the carry of one chunk into the next. They are named after
what they compute, not after a cell, so that nothing clashes with :class:`recurrax.RNN` (the
Elman cell); unlike ``flax.linen.RNN`` they always return the carry, after the outputs.

>>> model = recurrax.Model((recurrax.LSTM(32),), output_size=5, vocab_size=10, embed_size=8)
>>> seq = Sequence(model)
>>> variables = seq.init(jax.random.key(0), jnp.zeros((2, 7), jnp.int32))
>>> logits, carry = seq.apply(variables, jnp.zeros((2, 7), jnp.int32))   # [2, 7, 5]
>>> logits, carry = seq.apply(variables, jnp.zeros((2, 7), jnp.int32), carry)  # next chunk
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from recurrax.cells import Cell
from recurrax.models import Model
from recurrax.unroll import unroll

Array = jax.Array


class Unroll(nn.Module):
    """One recurrax cell unrolled over ``xs [B, T, F]``: :func:`recurrax.unroll` as a linen
    module, returning ``(ys [B, T, Y], final carry)``.

    Attributes:
      cell: a :mod:`recurrax.cells` cell; its params are ``variables["params"]["weights"]``.
    """

    cell: Cell

    @nn.compact
    def __call__(
        self,
        xs: Array,
        carry: Any = None,
        *,
        lengths: Array | None = None,
        reverse: bool = False,
    ) -> tuple[Array, Any]:
        params = self.param("weights", lambda key: self.cell.init(key, xs.shape[-1]))
        return unroll(self.cell, params, xs, carry, lengths=lengths, reverse=reverse)


class Sequence(nn.Module):
    """A :class:`recurrax.Model` as a linen module: ``inputs [B, T(, F)] -> (outputs, carry)``.

    Attributes:
      model: the model; its params are ``variables["params"]["weights"]``.
    """

    model: Model

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        carry: list[Any] | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool = True,
    ) -> tuple[Array, list[Any]]:
        """Args as :meth:`recurrax.Model.apply`; ``deterministic=False`` applies the model's
        dropout with the ``"dropout"`` rng (``apply(..., rngs={"dropout": key})``)."""
        params = self.param("weights", lambda key: self.model.init(key))
        key = None if deterministic or not self.model.dropout else self.make_rng("dropout")
        return self.model.apply(params, inputs, carry, lengths=lengths, key=key)
