"""Flax NNX modules over the same pure functions.

Each module keeps the recurrax params of its cell or model unchanged, as ``nnx.Param`` leaves
under one attribute, ``weights``; :meth:`params` returns them as the plain pytree. The modules
compute nothing of their own: a call is the pure function on those params, so

- ``Step(cell, I, rngs=r)(carry, x)`` is ``cell.step(step.params(), carry, x)``;
- ``Unroll(cell, I, rngs=r)(xs, carry, lengths=..., reverse=...)`` is :func:`recurrax.unroll`
  (``.internals(...)`` is :func:`recurrax.unroll_internals`);
- ``Sequence(model, rngs=r)(inputs, carry, lengths=..., key=...)`` is
  :meth:`recurrax.Model.apply` (``.internals(...)`` is ``Model.apply_internals``),

with identical numbers and gradients (tested). ``nnx.state(module, nnx.Param)`` holds the same
arrays under ``"weights"`` (lists appear as dicts keyed 0, 1, ...), so the modules work with
``nnx.jit``, ``nnx.grad``, ``nnx.vmap`` and ``nnx.Optimizer`` as any NNX module does.

>>> seq = Sequence(recurrax.Model((recurrax.LSTM(32),), output_size=5, input_size=3),
...                rngs=nnx.Rngs(0))
>>> outputs, carry = seq(jnp.ones((2, 7, 3)))           # [2, 7, 5], [LSTMState([2, 32] x2)]
>>> params = seq.params()                               # plain dict: model.apply(params, ...)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from recurrax.cells import Cell, Params
from recurrax.models import Model
from recurrax.unroll import unroll, unroll_internals

Array = jax.Array


def _is_variable(v: Any) -> bool:
    return isinstance(v, nnx.Variable)


class _Weights(nnx.Module):
    """Holds a recurrax params pytree as ``nnx.Param`` leaves under ``self.weights``."""

    def _set_params(self, params: Any) -> None:
        self.weights = nnx.data(jax.tree.map(nnx.Param, params))

    def params(self) -> Any:
        """The plain recurrax params (arrays in the pytree of :meth:`Cell.init` or
        :meth:`recurrax.Model.init`), for the pure functions."""
        return jax.tree.map(lambda v: v[...], self.weights, is_leaf=_is_variable)


class _CellWeights(_Weights):
    def __init__(
        self,
        cell: Cell,
        input_size: int | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        param_dtype: Any = jnp.float32,
    ) -> None:
        if params is None:
            if input_size is None or rngs is None:
                raise ValueError("give input_size and rngs (new params) or params (existing ones)")
            params = cell.init(rngs.params(), input_size, param_dtype)
        else:
            cell.check_params(params, input_size)
        self.cell = cell
        self._set_params(params)

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = jnp.float32) -> Any:
        """Zero carry for inputs with leading dimensions ``batch_shape``."""
        return self.cell.initial_carry(batch_shape, dtype)


class Step(_CellWeights):
    """One recurrax cell as an NNX module: ``(carry, x [..., I]) -> (carry, y [..., Y])``.

    The NNX counterpart of a Flax cell (``nnx.LSTMCell``), named after what it computes so that
    it does not clash with the cells :class:`recurrax.LSTM`, ``GRU``, ``RNN``.

    >>> step = Step(recurrax.GRU(8), 3, rngs=nnx.Rngs(0))
    >>> h, y = step(step.initial_carry((2,)), jnp.ones((2, 3)))    # [2, 8], [2, 8]

    Args:
      cell: a :mod:`recurrax.cells` cell (static).
      input_size: I, with ``rngs`` for new params (``cell.init(rngs.params(), I)``); or
      params: existing params of ``cell`` (e.g. from :mod:`recurrax.interop`).
      param_dtype: dtype of new params.
    """

    def __call__(self, carry: Any, x: Array) -> tuple[Any, Array]:
        return self.cell.step(self.params(), carry, x)


class Unroll(_CellWeights):
    """One recurrax cell unrolled over ``xs [B, T, I]``: :func:`recurrax.unroll` as an NNX module.

    >>> lstm = Unroll(recurrax.LSTM(16, peephole=True), 4, rngs=nnx.Rngs(0))
    >>> ys, carry = lstm(jnp.ones((2, 9, 4)), lengths=jnp.array([9, 5]))   # [2, 9, 16]
    >>> ys, carry, gates = lstm.internals(jnp.ones((2, 9, 4)))             # gates["f"] [2, 9, 16]

    Arguments as for :class:`Step`.
    """

    def __call__(
        self,
        xs: Array,
        carry: Any = None,
        *,
        lengths: Array | None = None,
        reverse: bool = False,
    ) -> tuple[Array, Any]:
        """``(ys [B, T, Y], final carry)``; see :func:`recurrax.unroll` for the arguments."""
        return unroll(self.cell, self.params(), xs, carry, lengths=lengths, reverse=reverse)

    def internals(
        self,
        xs: Array,
        carry: Any = None,
        *,
        lengths: Array | None = None,
        reverse: bool = False,
    ) -> tuple[Array, Any, dict[str, Array]]:
        """``(ys, carry, internals)`` with ``internals[name]`` ``[B, T, H]`` (gates, states):
        :func:`recurrax.unroll_internals`."""
        return unroll_internals(
            self.cell, self.params(), xs, carry, lengths=lengths, reverse=reverse
        )


class Sequence(_Weights):
    """A :class:`recurrax.Model` (input map, stacked cells, readout) as an NNX module.

    >>> model = recurrax.Model((recurrax.LSTM(32),) * 2, output_size=5, vocab_size=10,
    ...                        embed_size=8, dropout=0.1)
    >>> seq = Sequence(model, rngs=nnx.Rngs(0))
    >>> logits, carry = seq(jnp.zeros((2, 7), jnp.int32), key=jax.random.key(1))  # [2, 7, 5]

    Args:
      model: the model description (static).
      rngs: for new params (``model.init(rngs.params())``); or
      params: existing params of ``model``.
      param_dtype: dtype of new params.
    """

    def __init__(
        self,
        model: Model,
        *,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        param_dtype: Any = jnp.float32,
    ) -> None:
        if params is None:
            if rngs is None:
                raise ValueError("give rngs (new params) or params (existing ones)")
            params = model.init(rngs.params(), param_dtype)
        self.model = model
        self._set_params(params)

    def initial_carry(self, batch_size: int, dtype: Any = jnp.float32) -> list[Any]:
        """Zero carry for every layer (a ``(fw, bw)`` pair per layer when bidirectional)."""
        return self.model.initial_carry(batch_size, dtype)

    def __call__(
        self,
        inputs: Array,
        carry: list[Any] | None = None,
        *,
        lengths: Array | None = None,
        key: Array | None = None,
    ) -> tuple[Array, list[Any]]:
        """``(outputs [B, T, O] or [B, O], per-layer carries)``.

        Args:
          inputs: tokens ``[B, T]`` (int) or features ``[B, T, F]``.
          carry: per-layer initial carries (default zeros); pass the returned carry back in
            for stateful (truncated-BPTT) training.
          lengths: ``[B]`` real lengths of padded sequences.
          key: PRNG key (e.g. ``rngs.dropout()``); enables dropout between layers when
            ``model.dropout > 0``. Without it the model runs deterministically.
        """
        return self.model.apply(self.params(), inputs, carry, lengths=lengths, key=key)

    def internals(
        self,
        inputs: Array,
        carry: list[Any] | None = None,
        *,
        lengths: Array | None = None,
        key: Array | None = None,
    ) -> tuple[Array, list[Any], list[Any]]:
        """``(outputs, carry, internals)``: :meth:`recurrax.Model.apply_internals`."""
        return self.model.apply_internals(self.params(), inputs, carry, lengths=lengths, key=key)
