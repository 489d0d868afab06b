"""Cell equations, gradients (check_grads) and per-step internals."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from recurrax import GRU, LSTM, RNN, LSTMState, unroll, unroll_internals

VARIANTS = {
    "rnn-tanh": RNN(4),
    "rnn-relu": RNN(4, nonlinearity="relu", recurrent_init="orthogonal"),
    "gru": GRU(4, input_init="xavier"),
    "lstm": LSTM(4),
    "lstm-noforget": LSTM(4, forget_gate=False),
    "lstm-peephole": LSTM(4, peephole=True, output_activation="identity"),
    "lstm-proj": LSTM(4, proj_size=2, recurrent_init="orthogonal"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_match_finite_differences(name):
    cell = VARIANTS[name]
    key = jax.random.key(3)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), cell.init(key, 3))
    xs = jax.random.normal(jax.random.key(4), (2, 5, 3), jnp.float64)
    lengths = jnp.array([5, 3])
    with jax.enable_x64(True):
        f = lambda p, x: jnp.sum(jnp.tanh(unroll(cell, p, x, lengths=lengths)[0]))  # noqa: E731
        check_grads(f, (params, xs), order=1, modes=["rev"], eps=1e-4)


class CellTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_lstm_internals_satisfy_the_equations(self):
        for cell in (LSTM(6), LSTM(6, peephole=True), LSTM(6, forget_gate=False)):
            params = cell.init(jax.random.key(0), 3)
            xs = jax.random.normal(jax.random.key(1), (2, 7, 3))
            run = self.variant(lambda p, x, cell=cell: unroll_internals(cell, p, x))
            ys, carry, inner = run(params, xs)
            chex.assert_shape([inner["i"], inner["c"], inner["h"], ys], (2, 7, 6))
            c_prev = jnp.concatenate([jnp.zeros((2, 1, 6)), inner["c"][:, :-1]], axis=1)
            f = inner.get("f", 1.0)
            chex.assert_trees_all_close(inner["c"], f * c_prev + inner["i"] * inner["g"], atol=1e-6)
            chex.assert_trees_all_close(ys, inner["o"] * jnp.tanh(inner["c"]), atol=1e-6)
            chex.assert_trees_all_close(carry, LSTMState(ys[:, -1], inner["c"][:, -1]))
            self.assertEqual("f" in inner, cell.forget_gate)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gru_internals_satisfy_the_equations(self):
        cell = GRU(5)
        params = cell.init(jax.random.key(0), 3)
        xs = jax.random.normal(jax.random.key(1), (2, 4, 3))
        ys, _, inner = self.variant(lambda p, x: unroll_internals(cell, p, x))(params, xs)
        h_prev = jnp.concatenate([jnp.zeros((2, 1, 5)), ys[:, :-1]], axis=1)
        chex.assert_trees_all_close(
            ys, (1 - inner["z"]) * inner["n"] + inner["z"] * h_prev, atol=1e-6
        )


def test_forget_bias_is_added_to_the_forget_block_only():
    base = LSTM(8, forget_bias=0.0).init(jax.random.key(0), 3)["b"]
    biased = LSTM(8, forget_bias=2.5).init(jax.random.key(0), 3)["b"]
    np.testing.assert_allclose(
        biased - base, np.r_[np.zeros(8), 2.5 * np.ones(8), np.zeros(16)], atol=1e-6
    )


def test_no_forget_gate_carousel_keeps_the_cell_state():
    """Without input (i = 0), the 1997 LSTM holds c exactly; with a forget gate it decays."""
    for cell, decays in ((LSTM(3, forget_gate=False), False), (LSTM(3, forget_bias=0.0), True)):
        params = cell.init(jax.random.key(0), 2)
        params["b"] = params["b"].at[:3].set(-1e4)  # input gate shut
        c0 = LSTMState(jnp.zeros((1, 3)), jnp.ones((1, 3)))
        _, carry = unroll(cell, params, jnp.zeros((1, 20, 2)), c0)
        assert bool(jnp.all(carry.c < 0.9)) == decays


def test_initializers_orthogonal_and_xavier():
    W = LSTM(16, recurrent_init="orthogonal").init(jax.random.key(0), 3)["W_hh"]
    for g in range(4):
        block = W[:, g * 16 : (g + 1) * 16]
        np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-5)
    Wx = GRU(16, input_init="xavier").init(jax.random.key(0), 100)["W_ih"]
    bound = np.sqrt(6 / (100 + 16))
    assert float(jnp.max(jnp.abs(Wx))) <= bound and float(jnp.max(jnp.abs(Wx))) > 0.8 * bound


def test_cells_are_hashable_static_arguments():
    cell = LSTM(4, peephole=True)
    assert hash(cell) == hash(LSTM(4, peephole=True)) and cell != LSTM(4)
    f = jax.jit(lambda c, p, x: unroll(c, p, x)[0], static_argnums=0)
    assert f(cell, cell.init(jax.random.key(0), 2), jnp.ones((1, 3, 2))).shape == (1, 3, 4)


def test_chrono_initialization_spreads_forget_time_constants():
    cell = LSTM(256, peephole=True)
    params = cell.init(jax.random.key(0), 3)
    chrono = cell.chrono(params, jax.random.key(1), t_max=200)
    H = 256
    b_i, b_f = chrono["b"][:H], chrono["b"][H : 2 * H]
    np.testing.assert_allclose(b_i, -b_f)
    assert 0 <= float(b_f.min()) and float(b_f.max()) <= np.log(199) + 1e-6
    # time constants 1/(1 - σ(b_f)) span 1..t_max: some cells remember for > 100 steps
    tau = 1 / (1 - jax.nn.sigmoid(b_f))
    assert float(tau.max()) > 100 and float(tau.min()) < 3
    np.testing.assert_array_equal(chrono["b"][2 * H :], params["b"][2 * H :])  # g, o untouched
    assert chrono["W_hh"] is params["W_hh"]
    with pytest.raises(ValueError, match="has none"):
        noforget = LSTM(4, forget_gate=False)
        noforget.chrono(noforget.init(jax.random.key(0), 3), jax.random.key(1), 50)


@pytest.mark.parametrize("psi", ["tanh", "identity"])
def test_peephole_lstm_matches_a_numpy_transcription_of_the_paper(psi):
    """Gers & Schmidhuber (2000), Gers, Schraudolph & Schmidhuber (2002): the input and forget
    gates peek at c_{t-1}, the output gate at c_t; c_t = f c_{t-1} + i g, h_t = o ψ(c_t).
    Written here from the equations in float64 numpy, gate order i, f, g, o."""
    H, I, B, T = 3, 2, 4, 6
    cell = LSTM(H, peephole=True, output_activation=psi)
    p = cell.init(jax.random.key(7), I)
    p = {
        **p,
        **{
            k: 0.8 * jax.random.normal(jax.random.key(i), (H,))
            for i, k in enumerate(("p_i", "p_f", "p_o"))
        },
    }
    xs = np.asarray(jax.random.normal(jax.random.key(8), (B, T, I)), np.float64)
    W_ih, W_hh, b = (np.asarray(p[k], np.float64) for k in ("W_ih", "W_hh", "b"))
    p_i, p_f, p_o = (np.asarray(p[k], np.float64) for k in ("p_i", "p_f", "p_o"))
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h, c = np.zeros((B, H)), np.zeros((B, H))
    hs = []
    for t in range(T):
        a = xs[:, t] @ W_ih + h @ W_hh + b
        a_i, a_f, a_g, a_o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        i = sig(a_i + p_i * c)
        f = sig(a_f + p_f * c)
        c = f * c + i * np.tanh(a_g)
        o = sig(a_o + p_o * c)
        h = o * (np.tanh(c) if psi == "tanh" else c)
        hs.append(h)
    carry = cell.initial_carry((B,))
    ys = []
    for t in range(T):
        carry, y = cell.step(p, carry, jnp.asarray(xs[:, t], jnp.float32))
        ys.append(y)
    np.testing.assert_allclose(np.stack(ys, 1), np.stack(hs, 1), atol=1e-6)
    np.testing.assert_allclose(carry.c, c, atol=1e-6)
