"""Unroll semantics: lengths, reverse (packed-sequence), bidirectional, stacking, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from recurrax import GRU, LSTM, RNN, bidirectional, unroll
from recurrax.unroll import stack

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

CELLS = [RNN(3), GRU(3), LSTM(3), LSTM(3, peephole=True), LSTM(4, proj_size=2)]
# each example compiles new shapes; XLA's cheapest settings keep the property test short
fast_unroll = jax.jit(unroll, static_argnames=("cell", "reverse"), compiler_options=FAST_COMPILE)


@given(
    cell_index=st.integers(0, len(CELLS) - 1),
    B=st.integers(1, 4),
    T=st.integers(1, 7),
    seed=st.integers(0, 1000),
    reverse=st.booleans(),
)
def test_lengths_match_running_each_sequence_alone(cell_index, B, T, seed, reverse):
    cell = CELLS[cell_index]
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, T + 1, B)
    params = cell.init(jax.random.key(seed), 2)
    xs = jnp.asarray(rng.normal(size=(B, T, 2)), jnp.float32)
    ys, carry = fast_unroll(cell, params, xs, lengths=jnp.asarray(lengths), reverse=reverse)
    for b, L in enumerate(lengths):
        y_b, c_b = fast_unroll(cell, params, xs[b : b + 1, :L], reverse=reverse)
        np.testing.assert_allclose(ys[b, :L], y_b[0], atol=1e-5)
        np.testing.assert_array_equal(ys[b, L:], 0)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(c_b)):
            np.testing.assert_allclose(got[b], want[0], atol=1e-5)


def test_reverse_is_forward_on_flipped_input():
    cell = GRU(5)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    ys_rev, _ = unroll(cell, params, xs, reverse=True)
    ys_fwd, _ = unroll(cell, params, xs[:, ::-1])
    np.testing.assert_allclose(ys_rev, ys_fwd[:, ::-1], atol=1e-6)


def test_bidirectional_concatenates_both_directions():
    cells = (LSTM(3), GRU(2))
    params = (cells[0].init(jax.random.key(0), 4), cells[1].init(jax.random.key(1), 4))
    xs = jax.random.normal(jax.random.key(2), (2, 5, 4))
    ys, (cf, cb) = bidirectional(cells, params, xs, lengths=jnp.array([5, 2]))
    assert ys.shape == (2, 5, 5)
    np.testing.assert_allclose(
        ys[..., 3:],
        unroll(cells[1], params[1], xs, lengths=jnp.array([5, 2]), reverse=True)[0],
        atol=1e-6,
    )


def test_stack_feeds_layers_and_dropout_needs_a_key():
    cells = (LSTM(6), LSTM(6))
    params = [cells[0].init(jax.random.key(0), 3), cells[1].init(jax.random.key(1), 6)]
    xs = jax.random.normal(jax.random.key(2), (2, 4, 3))
    ys, _ = stack(cells, params, xs)
    h1, _ = unroll(cells[0], params[0], xs)
    np.testing.assert_allclose(ys, unroll(cells[1], params[1], h1)[0], atol=1e-6)
    same, _ = stack(cells, params, xs, dropout=0.5)  # no key: no dropout
    np.testing.assert_allclose(same, ys, atol=1e-6)
    d1, _ = stack(cells, params, xs, dropout=0.5, key=jax.random.key(7))
    d2, _ = stack(cells, params, xs, dropout=0.5, key=jax.random.key(7))
    d3, _ = stack(cells, params, xs, dropout=0.5, key=jax.random.key(8))
    np.testing.assert_array_equal(d1, d2)
    assert not np.allclose(d1, d3)
    # as torch.nn.LSTM(dropout=p): between layers only, the last layer's outputs are kept
    assert float(jnp.mean(d1 == 0)) == 0.0
    h1_dropped = jnp.where(
        jax.random.bernoulli(jax.random.split(jax.random.key(7), 2)[0], 0.5, h1.shape), h1 / 0.5, 0
    )
    np.testing.assert_allclose(d1, unroll(cells[1], params[1], h1_dropped)[0], atol=1e-6)


def test_unroll_passes_unroll_through_and_matches():
    cell = LSTM(4, peephole=True)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (3, 9, 2))
    np.testing.assert_allclose(
        unroll(cell, params, xs, unroll=3)[0], unroll(cell, params, xs)[0], atol=1e-6
    )
