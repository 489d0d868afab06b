"""Parity with torch.nn.RNN/GRU/LSTM and Flax cells: outputs, final states and gradients."""

import chex
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from recurrax import GRU, LSTM, LSTMState, interop, unroll
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


FLAX_CELLS = {
    "linen-LSTMCell": lambda I, H: fnn.LSTMCell(H),
    "linen-OptimizedLSTMCell": lambda I, H: fnn.OptimizedLSTMCell(H),
    "linen-GRUCell": lambda I, H: fnn.GRUCell(H),
    "nnx-LSTMCell": lambda I, H: nnx.LSTMCell(I, H, rngs=nnx.Rngs(1)),
    "nnx-OptimizedLSTMCell": lambda I, H: nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(1)),
    "nnx-GRUCell": lambda I, H: nnx.GRUCell(I, H, rngs=nnx.Rngs(1)),
}


def _loss(ys, carry):
    h = carry.h if isinstance(carry, LSTMState) else carry
    return jnp.sum(ys * jnp.arange(ys.shape[-1])) + jnp.sum(jnp.sin(h)), (ys, carry)


def _flax_runner(flax_cell, xs):
    """``(run, flax_params)``: ``run(flax_params) -> (ys, carry as recurrax carry)`` steps the
    Flax cell over ``xs [B, T, I]`` from a zero carry; NNX params are its ``nnx.State``."""
    is_lstm = "LSTM" in type(flax_cell).__name__
    carry0 = jnp.zeros((xs.shape[0], 5))
    carry0 = (carry0, carry0) if is_lstm else carry0
    if isinstance(flax_cell, nnx.Module):
        graphdef, flax_params = nnx.split(flax_cell, nnx.Param)
        call = lambda p, c, x: nnx.merge(graphdef, p)(c, x)  # noqa: E731
    else:
        flax_params = flax_cell.init(jax.random.key(1), carry0, xs[:, 0])["params"]
        call = lambda p, c, x: flax_cell.apply({"params": p}, c, x)  # noqa: E731

    def run(p):
        carry, ys = jax.lax.scan(lambda c, x: call(p, c, x), carry0, jnp.swapaxes(xs, 0, 1))
        ys = jnp.swapaxes(ys, 0, 1)
        return ys, interop.lstm_state_from_flax(carry) if is_lstm else carry

    return run, flax_params


@jax.jit(static_argnums=0)
def _recurrax_grad(cell, params, xs):
    return jax.value_and_grad(lambda p: _loss(*unroll(cell, p, xs)), has_aux=True)(params)


def _assert_close(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, **TOL)


@pytest.mark.parametrize("kind", FLAX_CELLS)
def test_flax_cells_both_ways(kind, key):
    """from_flax and to_flax for NNX and linen cells: outputs, carries, gradients within 1e-5."""
    B, T, I, H = 4, 5, 3, 5
    xs = jax.random.normal(key, (B, T, I))
    flax_cell = FLAX_CELLS[kind](I, H)
    run, flax_params = _flax_runner(flax_cell, xs)
    flax_grad = jax.jit(jax.value_and_grad(lambda p: _loss(*run(p)), has_aux=True))
    no_b_hn = kind == "nnx-GRUCell"  # NNX GRUCell has no hidden bias inside the reset gate

    # from_flax: the cell itself or its params
    cell, params = interop.from_flax(flax_params)
    if isinstance(flax_cell, nnx.Module):
        chex.assert_trees_all_equal(interop.from_flax(flax_cell), (cell, params))
    (_, (y1, c1)), g1 = flax_grad(flax_params)
    (_, (y2, c2)), g2 = _recurrax_grad(cell, params, xs)
    _assert_close((y1, c1), (y2, c2))
    g1 = interop.from_flax(g1)[1]  # Flax gradients under recurrax names
    if no_b_hn:
        g1, g2 = ({k: v for k, v in g.items() if k != "b_hn"} for g in (g1, g2))
    _assert_close(g1, g2)

    # to_flax: fresh recurrax params into the Flax cell
    params = cell.init(jax.random.key(2), I)
    if no_b_hn:
        params["b_hn"] = jnp.zeros(H)
    (_, (y2, c2)), g2 = _recurrax_grad(cell, params, xs)
    converted = interop.to_flax(cell, params, flax_cell)  # linen: a dict; NNX: in place
    if isinstance(flax_cell, nnx.Module):
        assert converted is flax_cell
        converted = nnx.state(flax_cell, nnx.Param)
    (_, (y1, c1)), g1 = flax_grad(converted)
    g1 = interop.from_flax(g1)[1]
    if no_b_hn:
        g1, g2 = ({k: v for k, v in g.items() if k != "b_hn"} for g in (g1, g2))
    _assert_close((y1, c1), (y2, c2))
    _assert_close(g1, g2)
    _assert_close(interop.from_flax(interop.to_flax(cell, params, flax_cell))[1], params)


def test_to_flax_refuses_what_flax_cannot_compute():
    lstm = LSTM(5, peephole=True)
    with pytest.raises(ValueError, match="cannot compute"):
        interop.to_flax(lstm, lstm.init(jax.random.key(0), 3), fnn.LSTMCell(5))
    with pytest.raises(ValueError, match="cannot compute"):
        interop.to_flax(GRU(5), GRU(5).init(jax.random.key(0), 3), fnn.LSTMCell(5))
    gru = GRU(5)
    with pytest.raises(ValueError, match="b_hn"):
        interop.to_flax(gru, gru.init(jax.random.key(0), 3), nnx.GRUCell(3, 5, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="features"):
        interop.to_flax(gru, gru.init(jax.random.key(0), 3), fnn.GRUCell(4))


def test_model_from_torch_carries_dropout_and_readout():
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(4, 6, num_layers=2, dropout=0.3, bidirectional=True, batch_first=True)
    linear = torch.nn.Linear(12, 3)
    model, params = interop.model_from_torch(lstm, linear)
    assert model.dropout == 0.3 and model.bidirectional and len(model.cells) == 2
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        want = linear(lstm.eval()(x)[0]).numpy()
    np.testing.assert_allclose(jax.jit(model.apply)(params, jnp.asarray(x.numpy()))[0], want, **TOL)
    bare, bare_params = interop.model_from_torch(lstm)  # no readout: the identity
    assert bare.output_size == 12 and bare.dropout == 0.3
    chex.assert_trees_all_equal(bare_params["readout"]["W"], jnp.eye(12))
    chex.assert_trees_all_equal(bare_params["layers"], params["layers"])
