"""Models as plain functions and as Flax linen modules give the same numbers."""

from functools import partial

import chex
import jax
import jax.extend.core
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


def _dot_lhs_shapes(fn, *args) -> set:
    """The lhs shapes of every ``dot_general`` in ``fn``'s jaxpr, nested calls included."""
    shapes = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                shapes.add(tuple(eqn.invars[0].aval.shape))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return shapes


def test_token_inputs_project_the_embedding_table_once():
    """A vocab model's first layer projects its V embedding rows once (V < B·T) instead of every
    embedded input; outputs and gradients (embedding included) equal the same layers fed the
    looked-up vectors as float inputs: LSTM bidirectional, and GRU under RNN, with lengths."""
    V, E, B, T = 5, 3, 4, 6
    ids = jax.random.randint(jax.random.key(0), (B, T), 0, V)
    lengths = jnp.array([6, 2, 0, 5])
    pairs = []
    for cells, bidirectional in [((LSTM(4, peephole=True),), True), ((GRU(4), LSTM(3)), False)]:
        tokens = Model(cells, V, vocab_size=V, embed_size=E, bidirectional=bidirectional)
        floats = Model(cells, V, input_size=E, bidirectional=bidirectional)
        pairs.append((tokens, floats, tokens.init(jax.random.key(1))))
        assert (V, E) in _dot_lhs_shapes(lambda p: tokens.apply(p, ids), pairs[-1][2])
        assert (V, E) not in _dot_lhs_shapes(
            lambda p: floats.apply(p, p["embed"][ids]), pairs[-1][2]
        )

    def loss(model, embed):
        def f(p):
            inputs = ids if embed else p["embed"][ids]
            out, carry = model.apply(p, inputs, lengths=lengths)
            return jnp.sum(jnp.sin(out)) + sum(jnp.sum(v**2) for v in jax.tree.leaves(carry))

        return jax.value_and_grad(f)

    @partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def both():  # one program for every case
        return [(loss(t, True)(p), loss(f, False)(p)) for t, f, p in pairs]

    for folded, looked_up in both():
        chex.assert_trees_all_close(folded, looked_up, atol=1e-5, rtol=1e-5)
    # more rows than positions: the table is looked up first
    big = Model((LSTM(4),), 2, vocab_size=B * T, embed_size=E)
    params = big.init(jax.random.key(2))
    assert (B * T, E) not in _dot_lhs_shapes(lambda p: big.apply(p, ids), params)
