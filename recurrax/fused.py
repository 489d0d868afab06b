"""The plain LSTM unroll with a hand-written backward pass (``jax.custom_vjp``).

Autodiff of ``lax.scan`` accumulates the weight gradients inside the reverse loop, one small
outer product per step, and keeps the elementwise gate work in many separate ops. Fused RNN
kernels (cuDNN, PyTorch's CPU ``nn.LSTM``) do better, and so does this module:

- forward: the scan stores the gate activations ``[T, B, 4H]`` and cell states ``[T, B, H]``;
- backward: a reverse scan carries only ``(dh, dc)`` and emits the gate pre-activation
  gradients ``dz [T, B, 4H]``;
- then the weight and input gradients are single large matmuls over all steps:
  ``dW_ih = Σ_t x_tᵀ dz_t``, ``dW_hh = Σ_t h_{t-1}ᵀ dz_t``, ``dx = dz W_ihᵀ``.

The gradients equal autodiff's (``tests/test_fused.py``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from recurrax.cells import LSTM, LSTMState, Params

Array = jax.Array


def supports(cell) -> bool:
    """Whether ``cell`` is the plain LSTM this module implements."""
    return (
        isinstance(cell, LSTM)
        and cell.forget_gate
        and not cell.peephole
        and not cell.proj_size
        and cell.output_activation == "tanh"
    )


def _gate_scale(H: int, g_scale: float, dtype) -> Array:
    """``[4H]``: 1 for the sigmoid gates, ``g_scale`` for the g block, so that one sigmoid over
    all gates serves for ``g = tanh(z) = 2σ(2z) - 1`` too (one elementwise pass, no concat)."""
    return jnp.ones((4, H), dtype).at[2].set(g_scale).reshape(-1)


def _forward(params: Params, carry: LSTMState, xs: Array, lengths: Array | None, unroll: int):
    W_ih, W_hh, b = params["W_ih"], params["W_hh"], params["b"]
    H = W_hh.shape[0]
    scale = _gate_scale(H, 2.0, xs.dtype)
    mask = None if lengths is None else jnp.arange(xs.shape[0])[:, None] < lengths[None, :]

    def body(carry, inp):
        h, c = carry
        x, m = inp
        a = jax.nn.sigmoid((x @ W_ih + h @ W_hh + b) * scale)  # i, f, (g+1)/2, o
        i, f, g, o = a[..., :H], a[..., H : 2 * H], 2 * a[..., 2 * H : 3 * H] - 1, a[..., 3 * H :]
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if m is not None:  # padded steps keep the carry and output zeros
            m = m[:, None]
            h_new, c_new = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
            return (h_new, c_new), (jnp.where(m, h_new, 0), a, c_new)
        return (h_new, c_new), (h_new, a, c_new)

    final, (ys, acts, cs) = jax.lax.scan(body, tuple(carry), (xs, mask), unroll=unroll)
    return LSTMState(*final), ys, (acts, cs, mask)


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def lstm_scan(
    params: Params, carry: LSTMState, xs: Array, lengths: Array | None, unroll: int = 1
) -> tuple[LSTMState, Array]:
    """Plain LSTM over time-major ``xs [T, B, I]`` with optional ``lengths [B]``.

    Returns ``(final LSTMState, ys [T, B, H])``; steps past a sequence's length keep the
    carry and output zeros, exactly like :func:`recurrax.unroll`.
    """
    final, ys, _ = _forward(params, carry, xs, lengths, unroll)
    return final, ys


def _fwd(params, carry, xs, lengths, unroll):
    final, ys, res = _forward(params, carry, xs, lengths, unroll)
    return (final, ys), (params, carry, xs, ys, res)


def _bwd(unroll, saved, cotangents):
    params, (h0, c0), xs, ys, (acts, cs, mask) = saved
    (dh_T, dc_T), dys = cotangents
    W_hh_T = params["W_hh"].T
    H = W_hh_T.shape[1]
    dscale = _gate_scale(H, 4.0, xs.dtype)  # d/dz of 2σ(2z) - 1 is 4σ(1 - σ)
    # Padding only ever follows the real steps, so step t's previous state is step t-1's.
    hs_prev = jnp.concatenate([h0[None], ys[:-1]])
    cs_prev = jnp.concatenate([c0[None], cs[:-1]])

    def body(carry, inp):
        dh, dc = carry
        dy, a, c, c_prev, m = inp
        i, f, g, o = a[..., :H], a[..., H : 2 * H], 2 * a[..., 2 * H : 3 * H] - 1, a[..., 3 * H :]
        tc = jnp.tanh(c)
        dh_tot = dh + dy
        dc_tot = dc + dh_tot * o * (1 - tc * tc)
        d_act = jnp.concatenate([dc_tot * g, dc_tot * c_prev, dc_tot * i, dh_tot * tc], -1)
        dz = d_act * a * (1 - a) * dscale
        dh_prev, dc_prev = dz @ W_hh_T, dc_tot * f
        if m is not None:
            m = m[:, None]
            dz = jnp.where(m, dz, 0)
            dh_prev, dc_prev = jnp.where(m, dh_prev, dh), jnp.where(m, dc_prev, dc)
        return (dh_prev, dc_prev), dz

    (dh0, dc0), dz = jax.lax.scan(
        body, (dh_T, dc_T), (dys, acts, cs, cs_prev, mask), reverse=True, unroll=unroll
    )
    grads = {
        "W_ih": jnp.einsum("tbi,tbg->ig", xs, dz),
        "W_hh": jnp.einsum("tbh,tbg->hg", hs_prev, dz),
        "b": dz.sum((0, 1)),
    }
    return grads, LSTMState(dh0, dc0), dz @ params["W_ih"].T, None


lstm_scan.defvjp(_fwd, _bwd)
