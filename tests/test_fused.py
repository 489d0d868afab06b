"""The hand-written backward of :func:`recurrax.fused.scan` equals autodiff, for every cell.

``unroll`` takes the fused path for every cell; ``unroll_internals`` keeps the plain autodiff
scan of ``cell.step``, so it is the reference here. Each test compiles one program holding
both paths and all its cases, which keeps the file fast.
"""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import pytest

from recurrax import GRU, LSTM, RNN, fused, unroll, unroll_internals

VARIANTS = {
    "rnn-tanh": RNN(5),
    "rnn-relu": RNN(5, nonlinearity="relu"),
    "gru": GRU(5),
    "lstm": LSTM(5),
    "lstm-noforget": LSTM(5, forget_gate=False),
    "lstm-peephole": LSTM(5, peephole=True),
    "lstm-identity": LSTM(5, output_activation="identity"),
    "lstm-peephole-identity": LSTM(5, peephole=True, output_activation="identity"),
    "lstm-noforget-peephole": LSTM(5, forget_gate=False, peephole=True),
    "lstm-proj": LSTM(5, proj_size=3, peephole=True),
}
M, B, T, I = 2, 4, 6, 3
LENGTHS = jnp.array([6, 2, 0, 5])
# The file's time is XLA compiling the scans; the cheapest settings keep it short.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _loss(cell, run, lengths, reverse):
    """A loss that weighs every output and both parts of the final carry differently."""
    w = jax.random.normal(jax.random.key(9), (B, T, cell.output_size))

    def loss(params, xs, carry):
        ys, carry = run(cell, params, xs, carry, lengths=lengths, reverse=reverse)[:2]
        leaves = jax.tree.leaves(carry)
        return jnp.sum(ys * w) + jnp.sum(jnp.sin(leaves[0])) + sum(jnp.sum(v**3) for v in leaves)

    return loss


def _random_carry(cell, key):
    carry = cell.initial_carry((B,))
    keys = jax.random.split(key, len(jax.tree.leaves(carry)))
    leaves = [jax.random.normal(k, v.shape) for k, v in zip(keys, jax.tree.leaves(carry))]
    return jax.tree.unflatten(jax.tree.structure(carry), leaves)


def _check(name, cases):
    """Loss value and gradients w.r.t. params, xs and a random initial carry, per case
    ``(with_lengths, reverse)``: the fused ``unroll`` against the autodiff scan, under
    ``jax.vmap`` over ``M`` members (params batched, data shared), as in a sweep."""
    cell = VARIANTS[name]
    assert fused.supports(cell)

    def member(params, xs, carry, lengths):
        out = []
        for with_lengths, reverse in cases:
            for run in (unroll, unroll_internals):
                loss = _loss(cell, run, lengths if with_lengths else None, reverse)
                out.append(jax.value_and_grad(loss, argnums=(0, 1, 2))(params, xs, carry))
        return out

    @partial(jax.jit, compiler_options=FAST_COMPILE)  # one program: data, all cases, both paths
    def run(lengths):
        params = jax.vmap(lambda k: cell.init(k, I))(jax.random.split(jax.random.key(0), M))
        # bigger than init's weights, so that peepholes and saturation matter
        noise = lambda p: p + 0.3 * jax.random.normal(jax.random.key(5), p.shape)  # noqa: E731
        params = jax.tree.map(noise, params)
        xs = jax.random.normal(jax.random.key(1), (B, T, I))
        carry = _random_carry(cell, jax.random.key(2))
        return jax.vmap(member, in_axes=(0, None, None, None))(params, xs, carry, lengths)

    out = run(LENGTHS)
    for (with_lengths, _), fast, plain in zip(cases, out[::2], out[1::2]):
        chex.assert_trees_all_close(fast, plain, atol=2e-5, rtol=1e-5)
        if with_lengths:  # sequence 2 has length 0: its inputs have no effect
            chex.assert_trees_all_close(fast[1][1][:, 2], jnp.zeros((M, T, I)))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fused_gradients_equal_autodiff(name):
    """Every cell, with lengths (one of them 0), reverse, a random initial carry, vmapped."""
    _check(name, [(True, True)])


@pytest.mark.parametrize("name", ["gru", "lstm-peephole", "rnn-relu"])
def test_fused_gradients_equal_autodiff_without_lengths_and_forward(name):
    """The rest of the grid. The fused scan's only branch is on ``lengths``; ``reverse`` lives in
    the caller, which flips the inputs within each length."""
    _check(name, [(False, False), (False, True), (True, False)])


def test_fused_empty_sequence():
    """T = 0: no steps, the final carry is the initial one, and the gradients are autodiff's
    (zero for the weights, the identity for the carry); one program for four cells."""
    names = ["rnn-tanh", "gru", "lstm", "lstm-peephole"]
    xs = jnp.zeros((B, 0, I))

    def both(cell):
        params = cell.init(jax.random.key(0), I)
        carry = _random_carry(cell, jax.random.key(2))

        def loss(run):
            return lambda p, c: sum(jnp.sum(v**3) for v in jax.tree.leaves(run(cell, p, xs, c)[1]))

        return [
            jax.value_and_grad(loss(r), argnums=(0, 1))(params, carry)
            for r in (unroll, unroll_internals)
        ]

    out = jax.jit(lambda: [both(VARIANTS[n]) for n in names], compiler_options=FAST_COMPILE)()
    for name, (fast, plain) in zip(names, out):
        chex.assert_trees_all_close(fast, plain, custom_message=name)
