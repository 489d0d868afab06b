"""Gradient flow: exact vs a naive per-T loop, no underflow, and the forget-gate ordering."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import GRU, LSTM, RNN, LSTMState
from recurrax.analysis import gradflow as G


@pytest.mark.parametrize(
    "cell", [RNN(6), GRU(5), LSTM(4), LSTM(4, forget_gate=False), LSTM(5, peephole=True)], ids=str
)
def test_one_call_equals_naive_loop_of_grads(cell):
    with jax.enable_x64(True):
        params = jax.tree.map(lambda v: v.astype(jnp.float64), cell.init(jax.random.key(0), 3))
        xs = jax.random.normal(jax.random.key(1), (2, 10, 3), jnp.float64)
        for wrt in ("h0", "c0", "x0") if isinstance(cell, LSTM) else ("h0", "x0"):
            flow = G.gradient_flow(cell, params, xs, wrt=wrt)
            naive = G.naive_gradient_norms(cell, params, xs, wrt=wrt)
            np.testing.assert_allclose(10.0**flow.per_example, naive, rtol=1e-6)
            np.testing.assert_allclose(10.0**flow.mean, naive.mean(0), rtol=1e-6)


def test_float32_does_not_underflow_and_matches_float64():
    """A bias −1 LSTM over 700 steps: float32 naive gradients are exact zeros long before the
    end; the renormalized float32 curve matches float64 wherever float64 is above 1e-300."""
    cell = LSTM(8, forget_bias=-1.0)
    params = cell.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (2, 700, 4))
    flow32 = jax.jit(lambda p, x: G.gradient_flow(cell, p, x))(params, xs)
    assert np.all(np.isfinite(flow32.per_example)) and float(flow32.per_example.min()) < -100
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda v: v.astype(jnp.float64), params)
        naive_hit_zero = G.naive_gradient_norms(cell, params, xs[:, :120])  # float32, no rescue
        assert float(naive_hit_zero[:, -1].max()) == 0.0

        def plain64(p, x):  # float64 Jacobian product without renormalization
            xs_t = jnp.swapaxes(x, 0, 1)

            def body(state, x):
                carry, tan = state
                new, jvp = jax.linearize(lambda c: cell.step(p, c, x)[0], carry)
                tan = jax.vmap(jvp)(tan)
                g = jax.grad(lambda c: jnp.sum(G.l1_of_h(c)))(new)
                d = jnp.einsum("bh,kbh->kb", g.h, tan.h) + jnp.einsum("bh,kbh->kb", g.c, tan.c)
                return (new, tan), G._log_norm(d) / np.log(10)

            carry = cell.initial_carry((2,), jnp.float64)
            eye = jnp.broadcast_to(jnp.eye(8)[:, None], (8, 2, 8))
            tan = LSTMState(eye, jnp.zeros_like(eye))
            return jax.lax.scan(body, (carry, tan), xs_t)[1].T

        ref = jax.jit(plain64)(p64, xs.astype(jnp.float64))
        flow64 = G.gradient_flow(cell, p64, xs.astype(jnp.float64))
    ref = np.asarray(ref)  # log10 of the plain float64 norms
    ok = ref > -300
    # float32 and float64 trajectories drift apart a little over hundreds of steps: compare
    # in decades (log10), where underflow would show as -inf or a gap of hundreds
    err32 = np.abs(flow32.per_example[ok] - ref[ok])
    assert np.median(err32) < 1e-3 and err32.max() < 0.2
    np.testing.assert_allclose(flow64.per_example[ok], ref[ok], atol=1e-9)
    assert float(ref[ok].min()) < -250  # it really went that deep


def test_forget_gate_ordering_at_t50():
    xs = jax.random.normal(jax.random.key(0), (16, 50, 20))
    flows = {}
    for name, cell in {
        "noforget": LSTM(32, forget_gate=False),
        "+1": LSTM(32, forget_bias=1.0),
        "0": LSTM(32, forget_bias=0.0),
        "-1": LSTM(32, forget_bias=-1.0),
        "rnn": RNN(32),
    }.items():
        keys = jax.random.split(jax.random.key(3), 4)
        params = jax.vmap(lambda k: cell.init(k, 20))(keys)
        curves = jax.vmap(lambda p: G.gradient_flow(cell, p, xs).mean)(params)
        flows[name] = float(np.median(curves[:, 49]))
    assert flows["noforget"] >= flows["+1"] > flows["0"] > flows["-1"]
    assert flows["noforget"] - flows["rnn"] > 3  # orders of magnitude


def test_pinned_forget_gate_decays_at_sigma_bf():
    """Forget gate fixed at σ(b_f) (no weights into it, no recurrence): ‖∂L_T/∂c₀‖ with
    L_T = Σ c_T decays exactly as σ(b_f)^T."""
    for b_f in (-1.0, 0.0, 1.0, 2.0):
        cell = LSTM(6, forget_bias=0.0)
        params = cell.init(jax.random.key(0), 3)
        params["W_hh"] = jnp.zeros_like(params["W_hh"])
        params["W_ih"] = params["W_ih"].at[:, 6:12].set(0.0)
        params["b"] = params["b"].at[6:12].set(b_f)
        xs = jax.random.normal(jax.random.key(1), (4, 40, 3))
        flow = G.gradient_flow(cell, params, xs, wrt="c0", loss=lambda c: jnp.sum(c.c, -1))
        assert G.decay_rate(flow.mean) == pytest.approx(1 / (1 + np.exp(-b_f)), rel=1e-4)
        assert G.forget_gate_decay(LSTM(6, forget_bias=b_f)) == pytest.approx(
            G.decay_rate(flow.mean), rel=1e-4
        )
    assert G.forget_gate_decay(LSTM(6, forget_gate=False)) is None


def test_step_jacobian_norms():
    cell = RNN(5)
    params = cell.init(jax.random.key(0), 2)
    params["W_hh"] = 0.5 * jnp.eye(5)
    params["W_ih"] = jnp.zeros_like(params["W_ih"])
    params["b"] = jnp.zeros(5)
    norms = G.step_jacobian_norms(cell, params, jnp.zeros((2, 4, 2)))
    np.testing.assert_allclose(norms["hh"], 0.5, rtol=1e-6)  # tanh'(0) = 1
    lstm_norms = G.step_jacobian_norms(
        LSTM(3), LSTM(3).init(jax.random.key(0), 2), jnp.ones((2, 4, 2))
    )
    assert set(lstm_norms) == {"hh", "cc"} and lstm_norms["cc"].shape == (2, 4)
    assert float(lstm_norms["cc"].max()) < 1  # the cell path is diag(f), f < 1


def test_bad_wrt():
    with pytest.raises(ValueError, match="wrt must be one of"):
        G.gradient_flow(RNN(2), RNN(2).init(jax.random.key(0), 1), jnp.ones((1, 2, 1)), wrt="y")
    with pytest.raises(ValueError, match="wrt='c0' needs an LSTM"):
        G.gradient_flow(RNN(2), RNN(2).init(jax.random.key(0), 1), jnp.ones((1, 2, 1)), wrt="c0")


def test_gradient_flow_recorded_during_training():
    from recurrax import Model, engine, optim, runs
    from recurrax.tasks import formal

    lang = formal.get("anbn")
    model = Model(
        (LSTM(3, peephole=True),),
        output_size=lang.vocab_size,
        vocab_size=lang.vocab_size,
        embed_size=4,
    )
    problem = formal.problem(
        lang, model, batch=8, optimizer=optim.adam(), n_max_train=4, gradflow=True
    )
    config = engine.Config(steps=100, eval_every=25, chunk_evals=4)
    result = runs.train(
        problem, config, engine.members(2, {}, {"lr": 0.05, "forget_bias": 1.0}), progress=False
    )
    curve = result.history["log10_grad_h0"]
    assert curve.shape == (4, 2) and np.all(np.isfinite(curve))
    assert np.ptp(curve[:, 0]) > 0  # it changes as the model learns
