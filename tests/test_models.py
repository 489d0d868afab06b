"""Models as plain functions and as Flax modules give the same numbers."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from recurrax import GRU, LSTM, Model, nn


def test_flax_module_equals_plain_function():
    model = Model((LSTM(8), GRU(6)), output_size=4, vocab_size=10, embed_size=5, bidirectional=True)
    tokens = jax.random.randint(jax.random.key(0), (3, 7), 0, 10)
    lengths = jnp.array([7, 4, 1])
    module = nn.Recurrent(model)
    variables = module.init(jax.random.key(1), tokens, lengths)
    out_flax = module.apply(variables, tokens, lengths)
    out_plain, _ = model.apply(variables["params"]["weights"], tokens, lengths=lengths)
    chex.assert_trees_all_equal(out_flax, out_plain)
    chex.assert_shape(out_plain, (3, 7, 4))


def test_flax_rnn_module_equals_unroll():
    from recurrax import unroll

    cell = LSTM(5, peephole=True)
    xs = jax.random.normal(jax.random.key(0), (2, 4, 3))
    module = nn.RNN(cell)
    variables = module.init(jax.random.key(1), xs)
    chex.assert_trees_all_equal(
        module.apply(variables, xs), unroll(cell, variables["params"]["weights"], xs)
    )


def test_many_to_one_reads_the_last_real_step():
    model = Model((GRU(6),), output_size=3, input_size=2, many_to_one=True)
    full = Model((GRU(6),), output_size=3, input_size=2)
    params = model.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (3, 5, 2))
    lengths = jnp.array([5, 2, 3])
    last, _ = model.apply(params, xs, lengths=lengths)
    every, _ = full.apply(params, xs, lengths=lengths)
    np.testing.assert_allclose(last, every[jnp.arange(3), lengths - 1], atol=1e-6)


def test_internals_per_layer_and_stateful_carry():
    model = Model((LSTM(4), LSTM(4)), output_size=2, vocab_size=3, embed_size=2)
    params = model.init(jax.random.key(0))
    tokens = jnp.zeros((2, 6), jnp.int32)
    out, carry, inner = model.apply_internals(params, tokens)
    assert len(inner) == 2 and inner[1]["f"].shape == (2, 6, 4)
    # two chunks with the carry passed on equal one long run
    a, c1 = model.apply(params, tokens[:, :3])
    b, _ = model.apply(params, tokens[:, 3:], c1)
    np.testing.assert_allclose(jnp.concatenate([a, b], 1), out, atol=1e-6)
