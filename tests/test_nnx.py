"""NNX modules equal the pure functions: outputs, carries, gradients, training, vmap.

Each comparison runs module and pure function in one compiled program on separate copies of
the params (so XLA cannot merge them), which keeps the compile count, and the time, small.
"""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

import recurrax
from recurrax import GRU, LSTM, Model
from recurrax import nnx as rnnx


def test_step_and_unroll_equal_the_pure_functions(key):
    cells = (LSTM(6, peephole=True),)  # the modules pass any cell through unchanged
    layers = [rnnx.Unroll(cell, 4, rngs=nnx.Rngs(1)) for cell in cells]
    xs = jax.random.normal(key, (3, 5, 4))
    lengths = jnp.array([5, 2, 0])

    @nnx.jit
    def run(layers, params, lengths):
        got, want = [], []
        for layer, cell, p in zip(layers, cells, params):
            step = rnnx.Step(cell, params=layer.params())
            got.append(
                (
                    layer(xs, lengths=lengths, reverse=True),
                    layer.internals(xs, lengths=lengths),
                    step(step.initial_carry((3,)), xs[:, 0]),
                )
            )
            want.append(
                (
                    recurrax.unroll(cell, p, xs, lengths=lengths, reverse=True),
                    recurrax.unroll_internals(cell, p, xs, lengths=lengths),
                    cell.step(p, cell.initial_carry((3,)), xs[:, 0]),
                )
            )
        return got, want

    params = [cell.init(nnx.Rngs(1).params(), 4) for cell in cells]
    chex.assert_trees_all_equal([layer.params() for layer in layers], params)
    got, want = run(layers, params, lengths)
    chex.assert_trees_all_equal(got, want)
    # the module's nnx.Param state is the params, leaf for leaf
    state = nnx.to_pure_dict(nnx.state(layers[0], nnx.Param))
    chex.assert_trees_all_equal(state["weights"], params[0])


def _model() -> Model:
    return Model((LSTM(8), GRU(6)), output_size=7, vocab_size=7, embed_size=4, dropout=0.25)


def _loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()


def test_sequence_equals_model_with_lengths_dropout_internals_and_chunks(key):
    model = _model()
    seq = rnnx.Sequence(model, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(key, (2, 8), 0, 7)
    lengths = jnp.array([8, 3])
    drop = jax.random.key(3)

    @nnx.jit
    def run(seq, params, lengths):
        a, carry = seq(tokens[:, :5], seq.initial_carry(2))
        b, carry = seq(tokens[:, 5:], carry)  # stateful: two chunks, the carry passed on
        got = (
            seq(tokens, lengths=lengths, key=drop),
            seq.internals(tokens),
            (jnp.concatenate([a, b], 1), carry),
        )
        want = (
            model.apply(params, tokens, lengths=lengths, key=drop),
            model.apply_internals(params, tokens),
            model.apply(params, tokens),
        )
        return got, want

    got, want = run(seq, seq.params(), lengths)
    chex.assert_trees_all_equal(got[:2], want[:2])
    chex.assert_trees_all_close(got[2], want[2], atol=1e-6)


def test_training_under_nnx_jit_tracks_the_pure_model_exactly(key):
    model = Model((LSTM(8),), output_size=7, vocab_size=7, embed_size=4)  # one compile: ~1 s
    seq = rnnx.Sequence(model, rngs=nnx.Rngs(0))
    params = seq.params()
    tx = optax.adam(0.05)
    optimizer = nnx.Optimizer(seq, tx, wrt=nnx.Param)
    opt_state = tx.init(params)
    tokens = jax.random.randint(key, (4, 9), 0, 7)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    @nnx.jit
    def nnx_step(seq, optimizer, k):
        loss, grads = nnx.value_and_grad(lambda m: _loss(m(inputs, key=k)[0], targets))(seq)
        optimizer.update(seq, grads)
        return loss, grads

    @jax.jit
    def pure_step(params, opt_state, k):
        loss_fn = lambda p: _loss(model.apply(p, inputs, key=k)[0], targets)  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, grads

    losses = []
    for k in jax.random.split(jax.random.key(1), 4):
        loss, grads = nnx_step(seq, optimizer, k)
        params, opt_state, pure_loss, pure_grads = pure_step(params, opt_state, k)
        # the gradient state, merged into a module, reads as plain params
        chex.assert_trees_all_equal(nnx.merge(nnx.graphdef(seq), grads).params(), pure_grads)
        assert loss == pure_loss
        losses.append(loss)
    chex.assert_trees_all_equal(seq.params(), params)
    assert losses[-1] < losses[0]


def test_vmap_over_members_equals_each_pure_member(key):
    model = Model((GRU(5),), output_size=2, input_size=3)
    members = 3

    @nnx.jit
    @nnx.split_rngs(splits=members)
    @nnx.vmap(in_axes=0, out_axes=0)
    def ensemble(rngs: nnx.Rngs) -> rnnx.Sequence:
        return rnnx.Sequence(model, rngs=rngs)

    @nnx.jit
    @nnx.vmap(in_axes=(0, None))
    def forward(seq: rnnx.Sequence, xs: jax.Array):
        return seq(xs)

    seqs = ensemble(nnx.Rngs(0))
    xs = jax.random.normal(key, (2, 4, 3))
    outputs, carry = forward(seqs, xs)
    chex.assert_shape(outputs, (members, 2, 4, 2))
    each = jax.jit(lambda p: [model.apply(jax.tree.map(lambda v: v[m], p), xs) for m in range(3)])
    for m, want in enumerate(each(seqs.params())):
        chex.assert_trees_all_close(jax.tree.map(lambda v: v[m], (outputs, carry)), want, atol=1e-6)
    assert not jnp.allclose(outputs[0], outputs[1])


def test_constructor_needs_rngs_or_params():
    with pytest.raises(ValueError, match="rngs"):
        rnnx.Unroll(GRU(3), 2)
    with pytest.raises(ValueError, match="expected keys"):
        rnnx.Step(GRU(3), params={k: jnp.zeros(s) for k, s in LSTM(3).shapes(2).items()})
