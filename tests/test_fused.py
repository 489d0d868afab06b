"""The hand-written LSTM backward equals autodiff of the plain scan."""

import chex
import jax
import jax.numpy as jnp
import pytest

from recurrax import LSTM, fused, unroll, unroll_internals


def losses(cell, lengths, reverse):
    w = jax.random.normal(jax.random.key(9), (5, 8, 6))

    def loss(params, xs, carry, internals):
        # unroll_internals takes the plain autodiff path; unroll the fused one
        run = unroll_internals if internals else unroll
        ys, carry = run(cell, params, xs, carry, lengths=lengths, reverse=reverse)[:2]
        return jnp.sum(ys * w) + jnp.sum(jnp.sin(carry.h)) + jnp.sum(carry.c**3)

    return (lambda *a: loss(*a, False)), (lambda *a: loss(*a, True))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_fused_gradients_equal_autodiff(reverse, with_lengths):
    cell = LSTM(6)
    assert fused.supports(cell) and not fused.supports(LSTM(6, peephole=True))
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (5, 8, 3))
    carry = jax.tree.map(
        lambda v: jax.random.normal(jax.random.key(2), v.shape), cell.initial_carry((5,))
    )
    lengths = jnp.array([8, 3, 0, 5, 1]) if with_lengths else None
    fused_loss, plain_loss = losses(cell, lengths, reverse)
    v1, g1 = jax.value_and_grad(fused_loss, argnums=(0, 1, 2))(params, xs, carry)
    v2, g2 = jax.value_and_grad(plain_loss, argnums=(0, 1, 2))(params, xs, carry)
    chex.assert_trees_all_close(v1, v2, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(g1, g2, atol=2e-5, rtol=1e-5)


def test_fused_gradients_under_vmap_over_members():
    cell = LSTM(4)
    keys = jax.random.split(jax.random.key(0), 3)
    params = jax.vmap(lambda k: cell.init(k, 2))(keys)
    xs = jax.random.normal(jax.random.key(1), (5, 8, 2))
    carry = cell.initial_carry((5,))
    w = jax.random.normal(jax.random.key(9), (5, 8, 4))

    def f(p, internals):
        run = unroll_internals if internals else unroll
        return jnp.sum(run(cell, p, xs, carry)[0] * w)

    g1 = jax.vmap(jax.grad(lambda p: f(p, False)))(params)
    g2 = jax.vmap(jax.grad(lambda p: f(p, True)))(params)
    chex.assert_trees_all_close(g1, g2, atol=2e-5, rtol=1e-5)
