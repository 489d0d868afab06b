"""Unrolls with a hand-written backward pass (``jax.custom_vjp``) for every cell.

Autodiff of ``lax.scan`` accumulates the weight gradients inside the reverse loop, one small
outer product per step per weight, and saves every intermediate of the step. Fused RNN kernels
(cuDNN, PyTorch's CPU ``nn.LSTM``) do better, and so does this module. Every cell's step splits
into two matmuls shared by all cells and an elementwise part of its own:

    zx_t = x_t W_ih + b                      [B, G·H]
    zh_t = h_{t-1} W_hh                      [B, G·H]
    (carry_t, y_t) = pointwise(s, z_t, carry_{t-1})

with ``z_t = zx_t + zh_t`` for the RNN and the LSTM, and ``z_t = (zx_t, zh_t)`` for the GRU
(its reset gate multiplies ``h W_hn + b_hn`` alone). ``s`` are the cell's small params, every
param but ``W_ih, W_hh, b``: the GRU's ``b_hn``; the LSTM's peepholes ``p_i, p_f, p_o [H]`` and
projection ``W_hr [H, P]``. Steps past a sequence's length (mask ``m_t = t < length``) keep the
carry and output zeros (in the generic path the mask is part of ``pointwise``, so its VJP
handles padding too).

The input projections of all steps are one matmul before the loop, ``zx = x W_ih + b``
(:func:`project`), differentiated by autodiff, again as single matmuls over all ``T·B`` rows:
``dW_ih = Σ_t x_tᵀ dzx_t``, ``db = Σ_t dzx_t``, ``dx_t = dzx_t W_ihᵀ``. The custom VJP covers
the recurrence over ``zx`` (:func:`recur`): a reverse scan that carries only the state's
gradient gives every ``dzx_t`` (the projections' cotangents), then ``dW_hh = Σ_t h_{t-1}ᵀ dzh_t``
is one matmul (``dzx = dzh = dz`` for the RNN and LSTM). Splitting at ``zx`` lets a first layer
fed by an embedding table project the table's rows once instead of every step's input
(:class:`recurrax.unroll.Tokens`).

- **Written out**, per cell (:func:`lstm_scan` for the plain LSTM: one tanh for all gates;
  :func:`peephole_scan` for every other LSTM without projection; :func:`gru_scan`;
  :func:`rnn_scan`): the forward saves the gates after their nonlinearity, the cell state and
  (LSTMs with tanh output) its tanh, the GRU its ``h W_hn + b_hn``, the RNN only its outputs;
  the backward's elementwise gradients are written out, and the
  small params' gradients (peepholes, ``b_hn``) are sums over all steps after the loop.
- **Generic** (:func:`generic_scan`, correct for every cell; used for the projection LSTM):
  the forward saves ``z_t`` and ``carry_t``; per step the backward takes the VJP of
  ``pointwise`` alone (recomputed from ``z_t``; autodiff writes it) for the cotangents
  ``(d carry_t, dy_t)``, which gives ``dz_t``, ``d s_t`` (summed inside the loop, as autodiff
  does) and the direct part of ``d carry_{t-1}``; the recurrent part is
  ``dh_{t-1} += dzh_t W_hhᵀ``. Recomputing under ``jax.vjp`` costs kernels, which is why the
  cells the studies use have their own: :func:`recur` picks, by measurement (timings in its
  docstring).

Padding only ever follows the real steps, so step t's previous state is step t-1's saved one.
The gradients equal autodiff's of the per-step ``cell.step`` scan (``tests/test_fused.py``,
every variant, with lengths, reverse, vmap, T = 0). Being a ``custom_vjp``, :func:`recur` (so
:func:`scan` too) has no forward-mode derivative (``jax.jvp``); use ``cell.step``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from recurrax.cells import ACTIVATIONS, GRU, LSTM, RNN, LSTMState, Params

Array = jax.Array
Carry = Any  # h [B, H] (RNN, GRU) or LSTMState(h [B, P], c [B, H])
Pointwise = Callable[[Params, Any, Carry], tuple[Carry, Array]]


def supports(cell) -> bool:
    """Whether :func:`scan` implements ``cell`` (every cell in :mod:`recurrax.cells`)."""
    return isinstance(cell, (RNN, GRU, LSTM))


def _h(carry: Carry) -> Array:
    """The hidden state that multiplies ``W_hh``."""
    return carry.h if isinstance(carry, LSTMState) else carry


def _add_h(carry: Carry, dh: Array) -> Carry:
    return carry._replace(h=carry.h + dh) if isinstance(carry, LSTMState) else carry + dh


def _pointwise(cell) -> Pointwise:
    """``(s, z, carry) -> (carry', y)``: the cell's step after its two matmuls (see above)."""
    if isinstance(cell, RNN):
        act = ACTIVATIONS[cell.nonlinearity]

        def rnn(s, z, h):
            h = act(z)
            return h, h

        return rnn

    if isinstance(cell, GRU):

        def gru(s, z, h):
            xr, xz, xn = jnp.split(z[0], 3, axis=-1)
            hr, hz, hn = jnp.split(z[1], 3, axis=-1)
            r = jax.nn.sigmoid(xr + hr)
            u = jax.nn.sigmoid(xz + hz)
            n = jnp.tanh(xn + r * (hn + s["b_hn"]))
            h = (1 - u) * n + u * h
            return h, h

        return gru

    psi = ACTIVATIONS[cell.output_activation]

    def lstm(s, z, carry):
        _, c = carry
        z = dict(zip(cell.gates, jnp.split(z, len(cell.gates), axis=-1)))
        if cell.peephole:
            z["i"] = z["i"] + s["p_i"] * c
            if cell.forget_gate:
                z["f"] = z["f"] + s["p_f"] * c
        i, g = jax.nn.sigmoid(z["i"]), jnp.tanh(z["g"])
        c = jax.nn.sigmoid(z["f"]) * c + i * g if cell.forget_gate else c + i * g
        o = jax.nn.sigmoid(z["o"] + s["p_o"] * c if cell.peephole else z["o"])
        h = o * psi(c)
        if cell.proj_size:
            h = h @ s["W_hr"]
        return LSTMState(h, c), h

    return lstm


def _masked(pointwise: Pointwise, s: Params, z, carry: Carry, m: Array | None):
    """``pointwise``, except that where ``m [B]`` is False the carry is kept and y is zero."""
    new, y = pointwise(s, z, carry)
    if m is None:
        return new, y
    keep = lambda n, o: jnp.where(m.reshape(-1, *[1] * (n.ndim - 1)), n, o)  # noqa: E731
    return jax.tree.map(keep, new, carry), jnp.where(m[:, None], y, 0)


def _forward(cell, params: Params, carry: Carry, zxs: Array, lengths: Array | None, unroll):
    """``(final carry, ys [T, B, Y], residuals)``."""
    W_hh = params["W_hh"]
    s = {k: v for k, v in params.items() if k != "W_hh"}
    pointwise, apart = _pointwise(cell), isinstance(cell, GRU)
    mask = None if lengths is None else jnp.arange(zxs.shape[0])[:, None] < lengths[None, :]

    def body(carry, inp):
        zx, m = inp
        zh = _h(carry) @ W_hh
        z = (zx, zh) if apart else zx + zh
        new, y = _masked(pointwise, s, z, carry, m)
        return new, (y, z, new)

    final, (ys, zs, carries) = jax.lax.scan(body, carry, (zxs, mask), unroll=unroll)
    # carry_{t-1} for every step, from the carries after each step
    prev = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs])[:-1], carry, carries)
    return final, ys, (zs, prev, mask)


@partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def generic_scan(
    cell, params: Params, carry: Carry, zxs: Array, lengths: Array | None = None, unroll: int = 1
) -> tuple[Carry, Array]:
    """``cell``'s recurrence over time-major projected inputs ``zxs [T, B, G·H]`` with optional
    ``lengths [B]``; ``params`` are the recurrent ones (all but ``W_ih, b``).

    Returns ``(final carry, ys [T, B, Y])``; steps past a sequence's length keep the carry and
    output zeros, exactly like :func:`recurrax.unroll`. ``cell`` and ``unroll`` are static.
    """
    final, ys, _ = _forward(cell, params, carry, zxs, lengths, unroll)
    return final, ys


def _fwd(cell, params, carry, zxs, lengths, unroll):
    final, ys, res = _forward(cell, params, carry, zxs, lengths, unroll)
    return (final, ys), (params, res)


def _bwd(cell, unroll, saved, cotangents):
    params, (zs, carries, mask) = saved
    d_final, dys = cotangents
    W_hh_T = params["W_hh"].T
    s = {k: v for k, v in params.items() if k != "W_hh"}
    pointwise, apart = _pointwise(cell), isinstance(cell, GRU)

    def body(acc, inp):
        d_carry, ds = acc
        dy, z, carry, m = inp
        _, vjp = jax.vjp(lambda s, z, c: _masked(pointwise, s, z, c, m), s, z, carry)
        ds_t, dz, d_prev = vjp((d_carry, dy))
        d_prev = _add_h(d_prev, (dz[1] if apart else dz) @ W_hh_T)
        return (d_prev, jax.tree.map(jnp.add, ds, ds_t)), dz

    init = (d_final, jax.tree.map(jnp.zeros_like, s))
    (d_carry0, ds), dzs = jax.lax.scan(
        body, init, (dys, zs, carries, mask), reverse=True, unroll=unroll
    )
    dzx, dzh = dzs if apart else (dzs, dzs)
    return {"W_hh": _recurrent_weight_grad(_h(carries), dzh), **ds}, d_carry0, dzx, None


generic_scan.defvjp(_fwd, _bwd)


def is_plain_lstm(cell) -> bool:
    """The plain LSTM (forget gate, no peephole or projection, tanh output): it has its own
    backward, :func:`lstm_scan`, with every elementwise gradient written out."""
    return (
        isinstance(cell, LSTM)
        and cell.forget_gate
        and not cell.peephole
        and not cell.proj_size
        and cell.output_activation == "tanh"
    )


def project(params: Params, xs: Array) -> Array:
    """``xs [..., I] -> xs W_ih + b [..., G·H]``: the input projections of all steps, one
    matmul before the loop (autodiff gives ``dW_ih, db, dxs`` as single matmuls too)."""
    return xs @ params["W_ih"] + params["b"]


def scan(
    cell, params: Params, carry: Carry, xs: Array, lengths: Array | None = None, unroll: int = 1
) -> tuple[Carry, Array]:
    """``cell`` over time-major ``xs [T, B, I]``: :func:`recur` over ``project(params, xs)``.
    Returns ``(final carry, ys [T, B, Y])``."""
    return recur(cell, params, carry, project(params, xs), lengths, unroll)


def recur(
    cell, params: Params, carry: Carry, zxs: Array, lengths: Array | None = None, unroll: int = 1
) -> tuple[Carry, Array]:
    """``cell``'s recurrence over time-major projected inputs ``zxs [T, B, G·H]`` (see
    :func:`project`; ``W_ih`` and ``b`` in ``params`` are not used) with optional
    ``lengths [B]``. Returns ``(final carry, ys [T, B, Y])``.

    The backward is hand-written, chosen by measurement: every elementwise gradient written
    out per cell — :func:`lstm_scan` (plain LSTM: one tanh for all gates),
    :func:`peephole_scan` (every other LSTM without projection), :func:`gru_scan`,
    :func:`rnn_scan` — and :func:`generic_scan` (the VJP of the elementwise step by autodiff)
    for the projection LSTM.

    Measured on this project's 2-core CPU, 128 vmapped members of the aⁿbⁿcⁿ model (H = 8,
    members over both cores, compile excluded), member-steps/s, written-out vs autodiff of the
    ``cell.step`` scan vs the generic VJP: plain LSTM 15,300 / 11,100 / 13,300; peephole LSTM
    10,850 / 9,700 / 8,900; GRU 13,400 / 11,500 / 11,000; tanh RNN 28,200 / 17,700 / -. The
    generic VJP was slower than autodiff for the peephole LSTM and the GRU, which is why
    every cell the studies use has its own. (Measured before the LSTMs saved ``tanh c`` and
    before the token fold; the plain LSTM's figure is now 15,000–17,700 over six runs.)
    """
    params = {k: v for k, v in params.items() if k not in ("W_ih", "b")}
    if is_plain_lstm(cell):
        return lstm_scan(params, LSTMState(*carry), zxs, lengths, unroll)
    if isinstance(cell, LSTM) and not cell.proj_size:
        return peephole_scan(cell, params, LSTMState(*carry), zxs, lengths, unroll)
    if isinstance(cell, GRU):
        return gru_scan(params, carry, zxs, lengths, unroll)
    if isinstance(cell, RNN):
        return rnn_scan(cell, params, carry, zxs, lengths, unroll)
    return generic_scan(cell, params, carry, zxs, lengths, unroll)


def _gate_scale(H: int, g_scale: float, dtype) -> Array:
    """``[4H]``: 1 for the sigmoid gates, ``g_scale`` for the g block, so that one elementwise
    pass over all gates serves both nonlinearities (no concat): the forward takes
    ``t = tanh(z · scale / 2)`` with ``g_scale = 2``, so ``t = tanh(z)`` for g and
    ``σ(z) = (t + 1) / 2`` for the others (one tanh costs less than XLA:CPU's logistic:
    sweep 16,900 -> 18,000 member-steps/s, mean of 8 alternated runs each)."""
    return jnp.ones((4, H), dtype).at[2].set(g_scale).reshape(-1)


def _lstm_out(m: Array | None, old: tuple, new: tuple, gates: Array, out: Array | None):
    """An LSTM forward step's ``(carry, (y, gates, c, ψ(c)))``; where ``m`` is False (padding)
    the carry is kept and ``y`` is zero."""
    (h, c), (h_new, c_new) = old, new
    if m is None:
        return (h_new, c_new), (h_new, gates, c_new, out)
    h_new, c_new = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
    return (h_new, c_new), (jnp.where(m, h_new, 0), gates, c_new, out)


def _lstm_forward(params: Params, carry: LSTMState, zxs: Array, lengths: Array | None, unroll):
    W_hh = params["W_hh"]
    H = W_hh.shape[0]
    scale = _gate_scale(H, 2.0, zxs.dtype) / 2
    mask = _mask(zxs, lengths)

    def body(carry, inp):
        h, c = carry
        zx, m = inp
        t = jnp.tanh((zx + h @ W_hh) * scale)  # σ(z) = (tanh(z/2) + 1)/2; tanh(z) for g
        a = 0.5 * t + 0.5  # i, f, (g+1)/2, o
        i, f, g, o = a[..., :H], a[..., H : 2 * H], t[..., 2 * H : 3 * H], a[..., 3 * H :]
        c_new = f * c + i * g
        tc = jnp.tanh(c_new)
        return _lstm_out(m, (h, c), (o * tc, c_new), a, tc)

    final, (ys, acts, cs, tcs) = jax.lax.scan(body, tuple(carry), (zxs, mask), unroll=unroll)
    return LSTMState(*final), ys, (acts, cs, tcs, mask)


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def lstm_scan(
    params: Params, carry: LSTMState, zxs: Array, lengths: Array | None, unroll: int = 1
) -> tuple[LSTMState, Array]:
    """Plain LSTM over time-major projected inputs ``zxs [T, B, 4H]`` with optional
    ``lengths [B]``; ``params`` holds ``W_hh``.

    Returns ``(final LSTMState, ys [T, B, H])``; steps past a sequence's length keep the
    carry and output zeros, exactly like :func:`recurrax.unroll`.
    """
    final, ys, _ = _lstm_forward(params, carry, zxs, lengths, unroll)
    return final, ys


def _lstm_fwd(params, carry, zxs, lengths, unroll):
    final, ys, res = _lstm_forward(params, carry, zxs, lengths, unroll)
    return (final, ys), (params, carry, ys, res)


def _lstm_bwd(unroll, saved, cotangents):
    params, (h0, c0), ys, (acts, cs, tcs, mask) = saved
    (dh_T, dc_T), dys = cotangents
    W_hh_T = params["W_hh"].T
    H = W_hh_T.shape[1]
    dscale = _gate_scale(H, 4.0, ys.dtype)  # d/dz of 2σ(2z) - 1 is 4σ(1 - σ)
    # Padding only ever follows the real steps, so step t's previous state is step t-1's.
    hs_prev = jnp.concatenate([h0[None], ys])[:-1]
    cs_prev = jnp.concatenate([c0[None], cs])[:-1]

    def body(carry, inp):
        dh, dc = carry
        dy, a, tc, c_prev, m = inp
        i, f, g, o = a[..., :H], a[..., H : 2 * H], 2 * a[..., 2 * H : 3 * H] - 1, a[..., 3 * H :]
        dh_tot = dh + dy
        dc_tot = dc + dh_tot * o * (1 - tc * tc)
        d_act = jnp.concatenate([dc_tot * g, dc_tot * c_prev, dc_tot * i, dh_tot * tc], -1)
        dz = d_act * a * (1 - a) * dscale
        dh_prev, dc_prev = dz @ W_hh_T, dc_tot * f
        if m is not None:
            dz = jnp.where(m, dz, 0)
            dh_prev, dc_prev = jnp.where(m, dh_prev, dh), jnp.where(m, dc_prev, dc)
        return (dh_prev, dc_prev), dz

    (dh0, dc0), dz = jax.lax.scan(
        body, (dh_T, dc_T), (dys, acts, tcs, cs_prev, mask), reverse=True, unroll=unroll
    )
    return {"W_hh": _recurrent_weight_grad(hs_prev, dz)}, LSTMState(dh0, dc0), dz, None


lstm_scan.defvjp(_lstm_fwd, _lstm_bwd)


# --- every LSTM without projection: elementwise gradients written out ---------------------------


def _peep_forward(cell, params: Params, carry: LSTMState, zxs: Array, lengths, unroll: int):
    """Gers & Schmidhuber's LSTM family (peepholes, no forget gate, identity output) forward:
    ``(final, ys, (gates [T, B, G·H] after their nonlinearity, cs [T, B, H], mask))``."""
    W_hh = params["W_hh"]
    psi = ACTIVATIONS[cell.output_activation]
    forget, peep = cell.forget_gate, cell.peephole
    mask = _mask(zxs, lengths)

    def body(carry, inp):
        h, c = carry
        zx, m = inp
        z = jnp.split(zx + h @ W_hh, len(cell.gates), axis=-1)
        z = dict(zip(cell.gates, z))
        i = jax.nn.sigmoid(z["i"] + params["p_i"] * c if peep else z["i"])
        g = jnp.tanh(z["g"])
        if forget:
            f = jax.nn.sigmoid(z["f"] + params["p_f"] * c if peep else z["f"])
            c_new = f * c + i * g
        else:
            c_new = c + i * g
        o = jax.nn.sigmoid(z["o"] + params["p_o"] * c_new if peep else z["o"])
        out = psi(c_new)
        h_new = o * out
        gates = jnp.concatenate([i, f, g, o] if forget else [i, g, o], axis=-1)
        out = out if cell.output_activation == "tanh" else None  # identity: the cell state
        return _lstm_out(m, (h, c), (h_new, c_new), gates, out)

    final, (ys, gates, cs, outs) = jax.lax.scan(body, tuple(carry), (zxs, mask), unroll=unroll)
    return LSTMState(*final), ys, (gates, cs, outs, mask)


@partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def peephole_scan(
    cell, params: Params, carry: LSTMState, zxs: Array, lengths: Array | None, unroll: int = 1
) -> tuple[LSTMState, Array]:
    """Any LSTM without projection (peepholes, no forget gate, identity output) over
    time-major projected inputs ``zxs [T, B, G·H]`` with optional ``lengths [B]``, every
    elementwise gradient written out. Returns ``(final LSTMState, ys [T, B, H])``."""
    final, ys, _ = _peep_forward(cell, params, carry, zxs, lengths, unroll)
    return final, ys


def _peep_fwd(cell, params, carry, zxs, lengths, unroll):
    final, ys, res = _peep_forward(cell, params, carry, zxs, lengths, unroll)
    return (final, ys), (params, carry, ys, res)


def _peep_bwd(cell, unroll, saved, cotangents):
    params, (h0, c0), ys, (gates, cs, outs, mask) = saved
    outs = cs if outs is None else outs  # ψ(c_t): tanh saved by the forward, or c itself
    (dh_T, dc_T), dys = cotangents
    W_hh_T = params["W_hh"].T
    forget, peep, tanh_out = cell.forget_gate, cell.peephole, cell.output_activation == "tanh"
    n = len(cell.gates)
    # Padding only ever follows the real steps, so step t's previous state is step t-1's.
    hs_prev = jnp.concatenate([h0[None], ys])[:-1]
    cs_prev = jnp.concatenate([c0[None], cs])[:-1]

    def body(carry, inp):
        dh, dc = carry
        dy, a, psi, c_prev, m = inp  # psi: the output activation of the new cell state
        a = dict(zip(cell.gates, jnp.split(a, n, axis=-1)))
        i, g, o = a["i"], a["g"], a["o"]
        dh_tot = dh + dy
        dzo = dh_tot * psi * o * (1 - o)
        dc_tot = dc + dh_tot * o * ((1 - psi * psi) if tanh_out else 1)
        if peep:
            dc_tot = dc_tot + dzo * params["p_o"]
        dzi = dc_tot * g * i * (1 - i)
        dzg = dc_tot * i * (1 - g * g)
        if forget:
            f = a["f"]
            dzf = dc_tot * c_prev * f * (1 - f)
            dc_prev = dc_tot * f
            dz = jnp.concatenate([dzi, dzf, dzg, dzo], axis=-1)
        else:
            dc_prev = dc_tot
            dz = jnp.concatenate([dzi, dzg, dzo], axis=-1)
        if peep:
            dc_prev = dc_prev + dzi * params["p_i"] + (dzf * params["p_f"] if forget else 0)
        dh_prev = dz @ W_hh_T
        if m is not None:
            dz = jnp.where(m, dz, 0)
            dh_prev, dc_prev = jnp.where(m, dh_prev, dh), jnp.where(m, dc_prev, dc)
        return (dh_prev, dc_prev), dz

    (dh0, dc0), dz = jax.lax.scan(
        body, (dh_T, dc_T), (dys, gates, outs, cs_prev, mask), reverse=True, unroll=unroll
    )
    grads = {"W_hh": _recurrent_weight_grad(hs_prev, dz)}
    if peep:  # p_i, p_f see the previous cell state, p_o the new one
        dzs = dict(zip(cell.gates, jnp.split(dz, n, axis=-1)))
        grads["p_i"] = jnp.sum(dzs["i"] * cs_prev, (0, 1))
        grads["p_o"] = jnp.sum(dzs["o"] * cs, (0, 1))
        if forget:
            grads["p_f"] = jnp.sum(dzs["f"] * cs_prev, (0, 1))
    return grads, LSTMState(dh0, dc0), dz, None


peephole_scan.defvjp(_peep_fwd, _peep_bwd)


# --- GRU and RNN: elementwise gradients written out --------------------------------------------


def _mask(xs: Array, lengths: Array | None) -> Array | None:
    """``[T, B, 1]``: True where ``t < length``, or None."""
    if lengths is None:
        return None
    return (jnp.arange(xs.shape[0])[:, None] < lengths[None, :])[..., None]


def _recurrent_weight_grad(hs_prev: Array, dzh: Array) -> Array:
    """``dW_hh = Σ_t h_{t-1}ᵀ dzh_t``: one matmul over all ``T·B`` rows."""
    return jnp.einsum("tbh,tbg->hg", hs_prev, dzh)


def _gru_forward(params: Params, h: Array, zxs: Array, lengths, unroll: int):
    """``(final h, ys, (gates r, z, n and h W_hn + b_hn [T, B, 4H]))``."""
    W_hh, b_hn = params["W_hh"], params["b_hn"]
    mask = _mask(zxs, lengths)

    def body(h, inp):
        zx, m = inp
        xr, xz, xn = jnp.split(zx, 3, axis=-1)
        hr, hz, hn = jnp.split(h @ W_hh, 3, axis=-1)
        r, u = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
        hn = hn + b_hn
        n = jnp.tanh(xn + r * hn)
        h_new = (1 - u) * n + u * h
        if m is not None:
            h_new = jnp.where(m, h_new, h)
            return h_new, (jnp.where(m, h_new, 0), jnp.concatenate([r, u, n, hn], -1))
        return h_new, (h_new, jnp.concatenate([r, u, n, hn], -1))

    final, (ys, saved) = jax.lax.scan(body, h, (zxs, mask), unroll=unroll)
    return final, ys, saved


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def gru_scan(
    params: Params, h: Array, zxs: Array, lengths: Array | None, unroll: int = 1
) -> tuple[Array, Array]:
    """The GRU over time-major projected inputs ``zxs [T, B, 3H]`` with optional
    ``lengths [B]``, every elementwise gradient written out. Returns
    ``(final h [B, H], ys [T, B, H])``."""
    final, ys, _ = _gru_forward(params, h, zxs, lengths, unroll)
    return final, ys


def _gru_fwd(params, h, zxs, lengths, unroll):
    final, ys, saved = _gru_forward(params, h, zxs, lengths, unroll)
    return (final, ys), (params, h, lengths, ys, saved)


def _gru_bwd(unroll, res, cotangents):
    params, h0, lengths, ys, saved = res
    dh_T, dys = cotangents
    W_hh_T = params["W_hh"].T
    hs_prev = jnp.concatenate([h0[None], ys])[:-1]  # padding only follows the real steps

    def body(dh, inp):
        dy, s, h, m = inp
        r, u, n, hn = jnp.split(s, 4, axis=-1)
        dh_tot = dh + dy
        dzn = dh_tot * (1 - u) * (1 - n * n)
        dzr = dzn * hn * r * (1 - r)
        dzu = dh_tot * (h - n) * u * (1 - u)
        dzx = jnp.concatenate([dzr, dzu, dzn], -1)
        dzh = jnp.concatenate([dzr, dzu, dzn * r], -1)
        dh_prev = dh_tot * u + dzh @ W_hh_T
        if m is not None:
            dzx, dzh = jnp.where(m, dzx, 0), jnp.where(m, dzh, 0)
            dh_prev = jnp.where(m, dh_prev, dh)
        return dh_prev, (dzx, dzh)

    dh0, (dzx, dzh) = jax.lax.scan(
        body, dh_T, (dys, saved, hs_prev, _mask(dys, lengths)), reverse=True, unroll=unroll
    )
    b_hn = jnp.split(dzh, 3, axis=-1)[2].sum((0, 1))
    grads = {"W_hh": _recurrent_weight_grad(hs_prev, dzh), "b_hn": b_hn}
    return grads, dh0, dzx, None


gru_scan.defvjp(_gru_fwd, _gru_bwd)


def _rnn_forward(cell, params: Params, h: Array, zxs: Array, lengths, unroll: int):
    act, W_hh, mask = ACTIVATIONS[cell.nonlinearity], params["W_hh"], _mask(zxs, lengths)

    def body(h, inp):
        zx, m = inp
        h_new = act(zx + h @ W_hh)
        if m is not None:
            return jnp.where(m, h_new, h), jnp.where(m, h_new, 0)
        return h_new, h_new

    return jax.lax.scan(body, h, (zxs, mask), unroll=unroll)


@partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def rnn_scan(
    cell, params: Params, h: Array, zxs: Array, lengths: Array | None, unroll: int = 1
) -> tuple[Array, Array]:
    """The Elman RNN (tanh or ReLU) over time-major projected inputs ``zxs [T, B, H]`` with
    optional ``lengths [B]``. Returns ``(final h [B, H], ys [T, B, H])``; the derivative of
    the nonlinearity is read off its output (``1 - h²``; ``h > 0``)."""
    return _rnn_forward(cell, params, h, zxs, lengths, unroll)


def _rnn_fwd(cell, params, h, zxs, lengths, unroll):
    final, ys = _rnn_forward(cell, params, h, zxs, lengths, unroll)
    return (final, ys), (params, h, lengths, ys)


def _rnn_bwd(cell, unroll, res, cotangents):
    params, h0, lengths, ys = res
    dh_T, dys = cotangents
    W_hh_T = params["W_hh"].T
    slope = {"tanh": lambda h: 1 - h * h, "relu": lambda h: (h > 0).astype(h.dtype)}
    slope = slope[cell.nonlinearity]

    def body(dh, inp):
        dy, h, m = inp
        dz = (dh + dy) * slope(h)
        dh_prev = dz @ W_hh_T
        if m is not None:
            dz, dh_prev = jnp.where(m, dz, 0), jnp.where(m, dh_prev, dh)
        return dh_prev, dz

    dh0, dz = jax.lax.scan(body, dh_T, (dys, ys, _mask(dys, lengths)), reverse=True, unroll=unroll)
    return {"W_hh": _recurrent_weight_grad(jnp.concatenate([h0[None], ys])[:-1], dz)}, dh0, dz, None


rnn_scan.defvjp(_rnn_fwd, _rnn_bwd)
