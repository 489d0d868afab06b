"""Models as plain functions and as Flax linen modules give the same numbers."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from recurrax import GRU, LSTM, Model, linen, unroll


def test_linen_sequence_equals_plain_function_and_returns_the_carry():
    model = Model((LSTM(8),), output_size=4, vocab_size=10, embed_size=5)
    tokens = jax.random.randint(jax.random.key(0), (3, 8), 0, 10)
    module = linen.Sequence(model)
    variables = module.init(jax.random.key(1), tokens)
    apply = jax.jit(module.apply)
    out, carry = apply(variables, tokens)
    want = jax.jit(model.apply)(variables["params"]["weights"], tokens)
    chex.assert_trees_all_equal((out, carry), want)
    chex.assert_shape(out, (3, 8, 4))
    # stateful (truncated BPTT): two chunks with the carry passed on equal one long run
    a, c1 = apply(variables, tokens[:, :4], model.initial_carry(3))
    b, c2 = apply(variables, tokens[:, 4:], c1)
    chex.assert_trees_all_close((jnp.concatenate([a, b], 1), c2), (out, carry), atol=1e-6)


def test_linen_unroll_equals_unroll_and_chains_chunks():
    cell = LSTM(5, peephole=True)
    xs = jax.random.normal(jax.random.key(0), (2, 6, 3))
    module = linen.Unroll(cell)
    variables = module.init(jax.random.key(1), xs)
    apply = jax.jit(module.apply)
    ys, carry = apply(variables, xs)
    want = jax.jit(unroll, static_argnums=0)(cell, variables["params"]["weights"], xs)
    chex.assert_trees_all_equal((ys, carry), want)
    a, c1 = apply(variables, xs[:, :3], cell.initial_carry((2,)))
    b, c2 = apply(variables, xs[:, 3:], c1)
    chex.assert_trees_all_close((jnp.concatenate([a, b], 1), c2), (ys, carry), atol=1e-6)


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
