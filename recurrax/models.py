"""Sequence models: embedding (or raw features) -> stacked cells -> linear readout.

Plain functions over a frozen description, like the cells: ``model.init(key) -> params`` and
``model.apply(params, inputs, ...) -> (outputs, carry)`` (``apply_internals`` adds the gates).
:mod:`recurrax.linen` and :mod:`recurrax.nnx` wrap the same functions as Flax modules.

Params::

    {"embed": [V, E]                      (only with vocab_size)
     "layers": [cell params, ...]         ({"fw": ..., "bw": ...} per layer when bidirectional)
     "readout": {"W": [Y, O], "b": [O]}}  (Y = last layer's output size, x2 if bidirectional)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from recurrax import cells as _cells
from recurrax.cells import Cell, Params
from recurrax.unroll import Tokens, _stack, check_inputs

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Model:
    """A stack of recurrent layers between an input map and a linear readout.

    Attributes:
      cells: one cell per layer (``(LSTM(256),) * 2`` for a 2-layer LSTM).
      input_size: feature size F of float inputs ``[B, T, F]``; or
      vocab_size: V for integer token inputs ``[B, T]``, embedded to ``embed_size`` first.
      output_size: O, the readout width (logits or regression targets).
      bidirectional: each layer runs both directions; its outputs are concatenated.
      dropout: rate of dropout between layers (as ``torch.nn.LSTM(dropout=p)``: not after the
        last layer), needs a key.
      many_to_one: read out only the last real step (``[B, O]``) instead of every step.
      dtype: the dtype the whole model computes in (None: promote inputs and params), e.g.
        ``"bfloat16"`` for mixed precision on float32 params.
      param_dtype: the dtype of the embedding and readout params ``init`` makes (each cell's
        own ``param_dtype`` sets its layer's).
    """

    cells: tuple[Cell, ...]
    output_size: int
    input_size: int | None = None
    vocab_size: int | None = None
    embed_size: int | None = None
    bidirectional: bool = False
    dropout: float = 0.0
    many_to_one: bool = False
    dtype: str | None = None
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        if not self.cells:
            raise ValueError("cells must hold at least one layer")
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError("give exactly one of input_size (float inputs) or vocab_size (tokens)")
        for name in ("output_size", "input_size", "vocab_size", "embed_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.vocab_size is not None and self.embed_size is None:
            raise ValueError("vocab_size needs embed_size")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        _cells._check_dtype("dtype", self.dtype)
        _cells._check_dtype("param_dtype", self.param_dtype)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (run folders store it; :meth:`from_dict` rebuilds it)."""
        fields = dataclasses.asdict(self)
        fields["cells"] = [_cells.to_dict(c) for c in self.cells]
        return fields

    @classmethod
    def from_dict(cls, description: dict[str, Any]) -> Model:
        """The model described by :meth:`to_dict`."""
        fields = dict(description)
        fields["cells"] = tuple(_cells.from_dict(c) for c in fields.get("cells", ()))
        try:
            return cls(**fields)
        except TypeError as err:
            raise ValueError(f"not a model description: {err}") from None

    @property
    def layer_input_sizes(self) -> list[int]:
        sizes = [self.embed_size if self.vocab_size else self.input_size]
        for cell in self.cells[:-1]:
            sizes.append(cell.output_size * (2 if self.bidirectional else 1))
        return sizes

    def init(self, key: Array, dtype: Any = None) -> Params:
        """Params (see the module docstring); embedding and readout in ``dtype`` (default
        ``param_dtype``), each layer in its cell's ``param_dtype`` unless ``dtype`` is given."""
        keys = jax.random.split(key, len(self.cells) + 2)
        cell_dtype, dtype = dtype, jnp.dtype(dtype or self.param_dtype)
        layers = []
        for cell, size, k in zip(self.cells, self.layer_input_sizes, keys):
            if self.bidirectional:
                kf, kb = jax.random.split(k)
                pair = {
                    "fw": cell.init(kf, size, cell_dtype),
                    "bw": cell.init(kb, size, cell_dtype),
                }
                layers.append(pair)
            else:
                layers.append(cell.init(k, size, cell_dtype))
        Y = self.cells[-1].output_size * (2 if self.bidirectional else 1)
        bound = 1 / math.sqrt(Y)
        params = {
            "layers": layers,
            "readout": {
                "W": jax.random.uniform(keys[-2], (Y, self.output_size), dtype, -bound, bound),
                "b": jnp.zeros((self.output_size,), dtype),
            },
        }
        if self.vocab_size:
            params["embed"] = jax.random.normal(keys[-1], (self.vocab_size, self.embed_size), dtype)
        return params

    def with_forget_bias(self, params: Params, forget_bias: Array | float) -> Params:
        """``params`` with every forget-gated LSTM layer's forget-gate bias offset set to
        ``forget_bias`` (replacing the cell's own), so the bias can be a swept, traced
        hyperparameter; other layers are returned as they are."""
        layers = []
        for cell, p in zip(self.cells, params["layers"]):
            if getattr(cell, "forget_gate", False):
                H = cell.hidden_size
                p = dict(p, b=p["b"].at[H : 2 * H].add(forget_bias - cell.forget_bias))
            layers.append(p)
        return dict(params, layers=layers)

    def initial_carry(self, batch_size: int, dtype: Any = None) -> list[Any]:
        """Zero carry for every layer (a ``(fw, bw)`` pair per layer when bidirectional)."""
        one = [cell.initial_carry((batch_size,), dtype) for cell in self.cells]
        return [(c, c) for c in one] if self.bidirectional else one

    def embed(self, params: Params, inputs: Array) -> Array:
        """Map ``inputs`` (tokens ``[B, T]`` or features ``[B, T, F]``) to ``[B, T, E]``."""
        if self.vocab_size:
            return params["embed"][self._check_tokens(inputs)]
        if inputs.ndim != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"inputs must be [B, T, {self.input_size}], got {list(inputs.shape)}")
        return inputs

    def _check_tokens(self, inputs: Array) -> Array:
        if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError(
                f"token inputs must be integers [B, T], got {inputs.dtype}{list(inputs.shape)}"
            )
        return inputs

    def apply(
        self,
        params: Params,
        inputs: Array,
        carry: list[Any] | None = None,
        *,
        lengths: Array | None = None,
        key: Array | None = None,
    ) -> tuple[Array, list[Any]]:
        """Run the model; returns ``(outputs, carry)``, like :func:`recurrax.unroll`.

        Args:
          inputs: tokens ``[B, T]`` (int) or features ``[B, T, F]``.
          carry: per-layer initial carries (default zeros); pass the returned carry back in
            for stateful (truncated-BPTT) training.
          lengths: ``[B]`` real lengths of padded sequences.
          key: PRNG key; enables dropout when ``self.dropout > 0``.

        Returns:
          outputs ``[B, T, O]`` (or ``[B, O]`` if ``many_to_one``) and the per-layer carries.
        """
        outputs, carry, _ = self._run(params, inputs, carry, lengths, key, False)
        return outputs, carry

    def apply_internals(
        self,
        params: Params,
        inputs: Array,
        carry: list[Any] | None = None,
        *,
        lengths: Array | None = None,
        key: Array | None = None,
    ) -> tuple[Array, list[Any], list[Any]]:
        """:meth:`apply` that also returns each layer's per-step internals (gates, states):
        ``(outputs, carry, internals)``, ``internals[k][name]`` ``[B, T, H]`` (a ``(fw, bw)``
        pair per layer when bidirectional)."""
        return self._run(params, inputs, carry, lengths, key, True)

    def _run(self, params, inputs, carry, lengths, key, internals):
        if self.dtype is not None:
            params = jax.tree.map(lambda v: v.astype(self.dtype), params)
            if jnp.issubdtype(inputs.dtype, jnp.floating):
                inputs = inputs.astype(self.dtype)
        if self.vocab_size and not internals:  # the first layer may project the table's rows
            xs = Tokens(self._check_tokens(inputs), params["embed"])
        else:
            xs = self.embed(params, inputs)
        check_inputs(xs, lengths)
        xs, carry, inner = _stack(
            self.cells,
            params["layers"],
            xs,
            carry,
            lengths,
            self.bidirectional,
            self.dropout,
            key,
            internals,
            1,
        )
        if self.many_to_one:
            xs = self._last(xs, lengths)
        outputs = xs @ params["readout"]["W"] + params["readout"]["b"]
        return outputs, carry, inner

    def _last(self, ys: Array, lengths: Array | None) -> Array:
        """``[B, Y]``: the output at each sequence's last real step (bidirectional: the
        forward half there and the backward half at step 0, which has seen the whole input)."""
        B, T, Y = ys.shape
        last = jnp.full((B,), T - 1) if lengths is None else jnp.maximum(lengths - 1, 0)
        fw = jnp.take_along_axis(ys, last[:, None, None], axis=1)[:, 0]
        if not self.bidirectional:
            return fw
        half = Y // 2
        return jnp.concatenate([fw[:, :half], ys[:, 0, half:]], axis=-1)
