"""dtype / param_dtype: mixed precision through unroll, models and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import GRU, LSTM, RNN, Model, unroll


@pytest.mark.parametrize("cell", [LSTM(8, peephole=True), GRU(8), RNN(8)], ids=str)
def test_float32_params_with_bfloat16_inputs_promote_instead_of_crashing(cell):
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    ys32, _ = unroll(cell, params, xs)
    ys, carry = unroll(cell, params, xs.astype(jnp.bfloat16))  # was a scan carry dtype error
    assert ys.dtype == jnp.float32 and jax.tree.leaves(carry)[0].dtype == jnp.float32
    np.testing.assert_allclose(ys, ys32, atol=2e-2)  # only the inputs were rounded


def test_dtype_computes_in_bfloat16_on_float32_params_and_grads_stay_float32():
    half, full = LSTM(8, dtype="bfloat16"), LSTM(8)
    params = full.init(jax.random.key(0), 3)
    assert jax.tree.leaves(params)[0].dtype == jnp.float32
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    ys, carry = unroll(half, params, xs)
    assert ys.dtype == jnp.bfloat16 and carry.c.dtype == jnp.bfloat16
    np.testing.assert_allclose(ys.astype(jnp.float32), unroll(full, params, xs)[0], atol=3e-2)
    grads = jax.grad(lambda p: jnp.sum(unroll(half, p, xs)[0].astype(jnp.float32)))(params)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
    assert (
        jax.tree.leaves(LSTM(8, param_dtype="bfloat16").init(jax.random.key(0), 3))[0].dtype
        == jnp.bfloat16
    )


def test_model_dtype_and_bad_names():
    model = Model((LSTM(8),) * 2, output_size=3, vocab_size=5, embed_size=4, dtype="bfloat16")
    params = model.init(jax.random.key(0))
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(params))
    out, _ = model.apply(params, jnp.zeros((2, 6), jnp.int32))
    assert out.dtype == jnp.bfloat16 and out.shape == (2, 6, 3)
    with pytest.raises(ValueError, match="dtype must name a dtype"):
        LSTM(4, dtype="half-ish")
    with pytest.raises(ValueError, match="param_dtype must name a dtype"):
        Model((GRU(2),), output_size=1, input_size=1, param_dtype="nope")
