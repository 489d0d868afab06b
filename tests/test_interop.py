"""Parity with torch.nn.RNN/GRU/LSTM and Flax cells: outputs, final states and gradients."""

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from recurrax import LSTMState, interop, unroll
from recurrax.unroll import stack

TOL = dict(rtol=1e-5, atol=1e-5)


def torch_run(module, x, lengths):
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False
    )
    out, state = module(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.nn.RNN(5, 7, num_layers=2, batch_first=True),
        lambda: torch.nn.RNN(5, 7, nonlinearity="relu", batch_first=True, bidirectional=True),
        lambda: torch.nn.GRU(5, 7, num_layers=2, batch_first=True, bidirectional=True),
        lambda: torch.nn.LSTM(5, 7, num_layers=2, batch_first=True, bidirectional=True),
        lambda: torch.nn.LSTM(5, 7, num_layers=2, batch_first=True, proj_size=3),
    ],
    ids=["rnn-tanh-2layer", "rnn-relu-bidir", "gru-2layer-bidir", "lstm-2layer-bidir", "lstm-proj"],
)
def test_torch_parity_outputs_states_and_gradients(make):
    torch.manual_seed(0)
    module = make()
    rng = np.random.default_rng(0)
    B, T = 6, 9
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    x_np = rng.normal(size=(B, T, 5)).astype(np.float32)
    Y = (module.proj_size or module.hidden_size) * (2 if module.bidirectional else 1)
    w_out = rng.normal(size=(B, T, Y)).astype(np.float32)

    # torch: outputs, states, gradients of a random linear functional of the outputs
    x_t = torch.tensor(x_np, requires_grad=True)
    out_t, state_t = torch_run(module, x_t, lengths)
    h_n = state_t[0] if isinstance(state_t, tuple) else state_t
    loss_t = (out_t * torch.tensor(w_out)).sum() + (h_n**2).sum()
    loss_t.backward()

    cell, layers = interop.from_torch(module)
    bidir = module.bidirectional

    def loss(layers, x):
        ys, carries = stack(
            (cell,) * module.num_layers,
            layers,
            x,
            lengths=jnp.asarray(lengths),
            bidirectional=bidir,
        )
        is_state = lambda v: isinstance(v, LSTMState)  # noqa: E731
        hs = [c.h if is_state(c) else c for c in jax.tree.leaves(carries, is_leaf=is_state)]
        return jnp.sum(ys * w_out) + sum(jnp.sum(h**2) for h in hs), (carries, ys)

    (val, (carries, ys)), (g_layers, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        layers, jnp.asarray(x_np)
    )
    np.testing.assert_allclose(ys, out_t.detach().numpy(), **TOL)
    want = interop.carry_from_torch(
        cell, *(state_t if isinstance(state_t, tuple) else (state_t,)), bidirectional=bidir
    )
    for a, b in zip(jax.tree.leaves(carries), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, **TOL)
    np.testing.assert_allclose(val, loss_t.item(), rtol=1e-5)
    np.testing.assert_allclose(g_x, x_t.grad.numpy(), **TOL)
    # weight gradients, mapped back to torch's names: d/db = d/d bias_ih for every cell
    grads = {n: p.grad.numpy() for n, p in module.named_parameters()}
    H = module.hidden_size
    for k, layer in enumerate(g_layers):
        for sfx, g in zip(["", "_reverse"], [layer["fw"], layer["bw"]] if bidir else [layer]):
            np.testing.assert_allclose(g["W_ih"].T, grads[f"weight_ih_l{k}{sfx}"], **TOL)
            np.testing.assert_allclose(g["W_hh"].T, grads[f"weight_hh_l{k}{sfx}"], **TOL)
            np.testing.assert_allclose(g["b"], grads[f"bias_ih_l{k}{sfx}"], **TOL)
            if "b_hn" in g:
                np.testing.assert_allclose(g["b_hn"], grads[f"bias_hh_l{k}{sfx}"][2 * H :], **TOL)
            if "W_hr" in g:
                np.testing.assert_allclose(g["W_hr"].T, grads[f"weight_hr_l{k}{sfx}"], **TOL)


def test_to_torch_roundtrip():
    torch.manual_seed(1)
    src = torch.nn.GRU(4, 6, num_layers=2, batch_first=True, bidirectional=True)
    cell, layers = interop.from_torch(src)
    dst = torch.nn.GRU(4, 6, num_layers=2, batch_first=True, bidirectional=True)
    interop.to_torch(layers, dst)
    x = torch.randn(3, 5, 4)
    np.testing.assert_allclose(dst(x)[0].detach().numpy(), src(x)[0].detach().numpy(), **TOL)
    _, again = interop.from_torch(dst)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(layers)):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("flax_cell", [fnn.LSTMCell, fnn.OptimizedLSTMCell, fnn.GRUCell])
def test_flax_parity(flax_cell, key):
    B, T, F, H = 4, 6, 3, 5
    xs = jax.random.normal(key, (B, T, F))
    module = fnn.RNN(flax_cell(H), return_carry=True)
    variables = module.init(jax.random.key(1), xs)
    flax_params = variables["params"]["cell"]

    def flax_loss(p):
        carry, ys = module.apply({"params": {"cell": p}}, xs)
        h = carry[1] if isinstance(carry, tuple) else carry
        return jnp.sum(ys * jnp.arange(H)) + jnp.sum(jnp.sin(h)), (carry, ys)

    def recurrax_loss(p):
        cell, params = interop.from_flax(p)
        ys, carry = unroll(cell, params, xs)
        h = carry.h if hasattr(carry, "h") else carry
        return jnp.sum(ys * jnp.arange(H)) + jnp.sum(jnp.sin(h)), (carry, ys)

    (v1, (c1, y1)), g1 = jax.value_and_grad(flax_loss, has_aux=True)(flax_params)
    (v2, (c2, y2)), g2 = jax.value_and_grad(recurrax_loss, has_aux=True)(flax_params)
    np.testing.assert_allclose(y1, y2, **TOL)
    if isinstance(c1, tuple):
        c2 = interop.lstm_state_to_flax(c2)
    for a, b in zip(jax.tree.leaves(c1), jax.tree.leaves(c2)):
        np.testing.assert_allclose(a, b, **TOL)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, **TOL)
