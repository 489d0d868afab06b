"""Unrolling a cell over time with ``jax.lax.scan`` (batch-first ``[B, T, F]``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recurrax import fused
from recurrax.cells import LSTM, Cell, LSTMState, Params

Array = jax.Array


class Tokens(NamedTuple):
    """Inputs given as token ids ``[B, T]`` (ints) into an embedding ``table [V, E]``: what
    :meth:`recurrax.Model.apply` hands its first layer, and what :func:`unroll` accepts in
    place of ``xs = table[ids]``.

    The embedding is a lookup, so the input projection commutes with it:
    ``table[ids] W_ih + b = (table W_ih + b)[ids]``. Where there are fewer rows V than
    positions B·T, the fused path projects the V rows once instead of every step's input, and
    the projection's gradient sums each token's rows; the result is the same up to float
    rounding. Otherwise, and for :func:`unroll_internals`, the table is looked up first.
    Measured on the char-LM step of ``benchmarks/lstm_step.py`` (V = 65, B·T = 4,096): 61 ms
    to 52 ms a training step.
    """

    ids: Array
    table: Array


def check_inputs(xs: Array | Tokens, lengths: Array | None) -> tuple[int, int, int]:
    """Validate ``xs [B, T, F]`` (or :class:`Tokens`) and ``lengths [B]`` at trace time;
    return ``(B, T, F)``."""
    if isinstance(xs, Tokens):
        if getattr(xs.ids, "ndim", None) != 2 or not jnp.issubdtype(xs.ids.dtype, jnp.integer):
            raise ValueError(f"token ids must be integers [B, T], got shape {jnp.shape(xs.ids)}")
        xs = jax.ShapeDtypeStruct((*xs.ids.shape, xs.table.shape[-1]), xs.table.dtype)
    if getattr(xs, "ndim", None) != 3:
        raise ValueError(f"xs must be batch-first [B, T, F], got shape {jnp.shape(xs)}")
    B, T, F = xs.shape
    if lengths is not None:
        if jnp.shape(lengths) != (B,):
            raise ValueError(f"lengths must have shape [B] = ({B},), got {jnp.shape(lengths)}")
        if not jnp.issubdtype(jnp.asarray(lengths).dtype, jnp.integer):
            raise TypeError(f"lengths must be integers, got dtype {jnp.asarray(lengths).dtype}")
        if not isinstance(lengths, jax.core.Tracer):
            concrete = np.asarray(lengths)  # jnp arrays closed over by jit stay concrete
            lo, hi = int(concrete.min()), int(concrete.max())
            if lo < 0 or hi > T:
                raise ValueError(f"lengths must lie in [0, T={T}], got values in [{lo}, {hi}]")
    return B, T, F


def flip_padded(xs_t: Array, lengths: Array | None) -> Array:
    """Reverse time-major ``[T, B, ...]`` within each sequence's length (padding stays put).

    Its own inverse; with ``lengths=None`` it is a plain flip. This is how PyTorch's packed
    sequences run the reverse direction: each sequence starts at its last real step.
    """
    if lengths is None:
        return jnp.flip(xs_t, 0)
    T = xs_t.shape[0]
    t = jnp.arange(T)[:, None]
    idx = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # [T, B]
    idx = idx.reshape(idx.shape + (1,) * (xs_t.ndim - 2))
    return jnp.take_along_axis(xs_t, idx, axis=0)


def _where(mask: Array, new: Any, old: Any) -> Any:
    """Per-example select over carry pytrees: ``mask [B]`` against leaves ``[B, ...]``."""
    return jax.tree.map(
        lambda n, o: jnp.where(mask.reshape(-1, *([1] * (n.ndim - 1))), n, o), new, old
    )


def _run(cell, params, xs, carry, lengths, reverse, internals, unroll):
    """``(ys, carry, internals or None)``: the one implementation behind the public unrolls."""
    B, T, F = check_inputs(xs, lengths)
    fast = fused.supports(cell) and not internals  # the hand-written backward
    if isinstance(xs, Tokens) and not (fast and xs.table.shape[0] < B * T):
        xs = xs.table[xs.ids]
    cell.check_params(params, F)
    floats = xs.table if isinstance(xs, Tokens) else xs
    dtype = cell.compute_dtype(params, floats)  # one dtype for params, inputs and carry
    params = jax.tree.map(lambda v: v.astype(dtype), params)
    if carry is None:
        carry = cell.initial_carry((B,), dtype)
    carry = jax.tree.map(lambda v: jnp.asarray(v).astype(dtype), carry)

    def time_major(v: Array) -> Array:  # [B, T, ...] -> [T, B, ...], reversed within lengths
        v = jnp.swapaxes(v, 0, 1)
        return flip_padded(v, lengths) if reverse else v

    mask = None if lengths is None else jnp.arange(T)[:, None] < lengths[None, :]  # [T, B]
    if fast:
        carry = LSTMState(*carry) if isinstance(cell, LSTM) else carry
        if isinstance(xs, Tokens):  # project the V table rows, then look up every step's
            zxs = fused.project(params, xs.table.astype(dtype))[time_major(xs.ids)]
            carry, ys = fused.recur(cell, params, carry, zxs, lengths, unroll)
        else:
            carry, ys = fused.scan(
                cell, params, carry, time_major(xs.astype(dtype)), lengths, unroll
            )
        extras = None
    else:
        xs_t = time_major(xs.astype(dtype))

        def body(carry, inp):
            x, m = inp
            new_carry, *out = cell.step(params, carry, x, internals)
            if m is not None:
                new_carry = _where(m, new_carry, carry)
                out = jax.tree.map(lambda v: jnp.where(m[:, None], v, 0), out)
            return new_carry, out

        carry, (ys, *extras) = jax.lax.scan(body, carry, (xs_t, mask), unroll=unroll)
        extras = extras[0] if internals else None
    if reverse:
        ys, extras = jax.tree.map(lambda v: flip_padded(v, lengths), (ys, extras))
    ys, extras = jax.tree.map(lambda v: jnp.swapaxes(v, 0, 1), (ys, extras))
    return ys, carry, extras


def unroll(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Any = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
) -> tuple[Array, Any]:
    """Run ``cell`` over ``xs [B, T, F]``; returns ``(ys [B, T, Y], final carry)``.

    The order is PyTorch's ``nn.LSTM`` and Haiku's ``dynamic_unroll`` (outputs first), the same
    as :meth:`recurrax.Model.apply`; :func:`unroll_internals` also returns the gates.

    Args:
      cell: a :mod:`recurrax.cells` cell; ``params`` its params.
      xs: ``[B, T, F]`` inputs, batch-first, or :class:`Tokens` (ids ``[B, T]`` into an
        embedding table ``[V, F]``).
      carry: initial carry (default zeros, ``cell.initial_carry((B,))``).
      lengths: ``[B]`` integers in ``[0, T]``. Outputs past a sequence's end are zero and the
        final carry is the carry after its last real step, for every cell.
      reverse: run from each sequence's last real step back to its first (packed-sequence
        semantics); outputs are returned in the original time order.
      unroll: passed to ``jax.lax.scan``.

    Every cell (RNN, GRU and all LSTM variants) runs through :func:`recurrax.fused.scan`
    (:class:`Tokens`: the table's projection, then :func:`recurrax.fused.recur`), whose
    hand-written backward computes the same gradients as autodiff of the per-step scan
    (tested) at less cost; :func:`unroll_internals` keeps the plain autodiff scan.
    """
    ys, carry, _ = _run(cell, params, xs, carry, lengths, reverse, False, unroll)
    return ys, carry


def unroll_internals(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Any = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
) -> tuple[Array, Any, dict[str, Array]]:
    """:func:`unroll` that also returns every per-step internal: ``(ys, carry, internals)``
    with ``internals[name]`` ``[B, T, H]`` (LSTM ``i, f, g, o, c, h``; GRU ``r, z, n, h``;
    RNN ``h``), zero past each sequence's length."""
    return _run(cell, params, xs, carry, lengths, reverse, True, unroll)


def _bidirectional(cells, params, xs, carry, lengths, internals, unroll):
    carry = (None, None) if carry is None else carry
    outs = [
        _run(c, p, xs, k, lengths, r, internals, unroll)
        for c, p, k, r in zip(cells, params, carry, (False, True))
    ]
    ys = jnp.concatenate([outs[0][0], outs[1][0]], axis=-1)
    inner = (outs[0][2], outs[1][2]) if internals else None
    return ys, (outs[0][1], outs[1][1]), inner


def bidirectional(
    cells: tuple[Cell, Cell],
    params: tuple[Params, Params],
    xs: Array,
    carry: tuple[Any, Any] | None = None,
    *,
    lengths: Array | None = None,
    unroll: int = 1,
) -> tuple[Array, tuple[Any, Any]]:
    """Forward and reverse unrolls of ``xs [B, T, F]``; returns ``(ys, (carry_fw, carry_bw))``
    with outputs concatenated on features, ``ys [B, T, Y_fw + Y_bw]``."""
    ys, carries, _ = _bidirectional(cells, params, xs, carry, lengths, False, unroll)
    return ys, carries


def _stack(cells, params, xs, carry, lengths, bidirectional, dropout, key, internals, unroll):
    if len(params) != len(cells):
        raise ValueError(f"params hold {len(params)} layers, cells {len(cells)}")
    carry = [None] * len(cells) if carry is None else carry
    use_dropout = key is not None and dropout > 0
    keys = jax.random.split(key, len(cells)) if use_dropout else [None] * len(cells)
    carries, inner = [], []
    for layer, (cell, p, c, k) in enumerate(zip(cells, params, carry, keys)):
        if bidirectional:
            pair = (p["fw"], p["bw"])
            xs, c, extras = _bidirectional((cell, cell), pair, xs, c, lengths, internals, unroll)
        else:
            xs, c, extras = _run(cell, p, xs, c, lengths, False, internals, unroll)
        carries.append(c)
        inner.append(extras)
        if use_dropout and layer < len(cells) - 1:
            xs = jnp.where(jax.random.bernoulli(k, 1 - dropout, xs.shape), xs / (1 - dropout), 0)
    return xs, carries, inner if internals else None


def stack(
    cells: tuple[Cell, ...],
    params: list[Any],
    xs: Array,
    carry: list[Any] | None = None,
    *,
    lengths: Array | None = None,
    bidirectional: bool = False,
    dropout: float = 0.0,
    key: Array | None = None,
    unroll: int = 1,
) -> tuple[Array, list[Any]]:
    """Stacked layers over ``xs [B, T, F]``: layer k's outputs ``[B, T, Y_k]`` are layer k+1's
    inputs. Returns ``(ys [B, T, Y_last], carries)``.

    ``params[k]`` is layer k's cell params (``{"fw": ..., "bw": ...}`` when bidirectional);
    ``carry[k]`` its initial carry (a ``(fw, bw)`` pair when bidirectional). With ``key`` and
    ``dropout > 0``, inverted dropout is applied to the outputs of every layer but the last,
    where ``torch.nn.LSTM(dropout=p)`` applies it.
    """
    ys, carries, _ = _stack(
        cells, params, xs, carry, lengths, bidirectional, dropout, key, False, unroll
    )
    return ys, carries
