"""Bad input raises a clear error naming the argument, at trace time."""

import jax
import jax.numpy as jnp
import pytest

from recurrax import GRU, LSTM, RNN, Model, unroll


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LSTM(0), "hidden_size must be positive"),
        (lambda: RNN(-3), "hidden_size must be positive"),
        (lambda: GRU(2.5), "hidden_size must be an int"),
        (lambda: RNN(4, nonlinearity="sigmoid"), "nonlinearity must be one of"),
        (lambda: LSTM(4, output_activation="relu"), "output_activation must be one of"),
        (lambda: LSTM(4, recurrent_init="he"), "recurrent_init must be one of"),
        (lambda: LSTM(4, proj_size=4), "proj_size"),
        (lambda: Model((LSTM(4),), output_size=2), "exactly one of input_size"),
        (lambda: Model((LSTM(4),), output_size=2, input_size=3, dropout=1.0), "dropout"),
        (lambda: Model((), output_size=2, input_size=3), "at least one layer"),
    ],
)
def test_bad_configs(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_inputs_fail_at_trace_time():
    cell = LSTM(4)
    params = cell.init(jax.random.key(0), 3)
    run = jax.jit(lambda p, x, lengths=None: unroll(cell, p, x, lengths=lengths))
    with pytest.raises(ValueError, match=r"xs must be batch-first \[B, T, F\]"):
        run(params, jnp.ones((5, 3)))
    with pytest.raises(
        ValueError, match=r"params\['W_ih'\] has shape \(3, 16\), expected \(2, 16\)"
    ):
        run(params, jnp.ones((1, 5, 2)))
    with pytest.raises(ValueError, match="lengths must have shape"):
        run(params, jnp.ones((2, 5, 3)), jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
        unroll(cell, params, jnp.ones((2, 5, 3)), lengths=jnp.array([1, 6]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
        unroll(cell, params, jnp.ones((2, 5, 3)), lengths=jnp.array([-1, 2]))
    with pytest.raises(TypeError, match="lengths must be integers"):
        unroll(cell, params, jnp.ones((2, 5, 3)), lengths=jnp.array([1.0, 2.0]))


def test_params_of_another_cell_are_rejected():
    lstm, gru = LSTM(4), GRU(4)
    with pytest.raises(ValueError, match="params do not match"):
        unroll(lstm, gru.init(jax.random.key(0), 3), jnp.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="expected keys"):
        unroll(LSTM(4, peephole=True), lstm.init(jax.random.key(0), 3), jnp.ones((1, 2, 3)))
    with pytest.raises(TypeError, match="params must be a dict"):
        unroll(lstm, [1, 2], jnp.ones((1, 2, 3)))


def test_model_input_errors():
    model = Model((GRU(4),), output_size=2, vocab_size=5, embed_size=3)
    params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match="token inputs must be integers"):
        model.apply(params, jnp.ones((2, 3)))
    m2 = Model((GRU(4),), output_size=2, input_size=3)
    with pytest.raises(ValueError, match=r"inputs must be \[B, T, 3\]"):
        m2.apply(m2.init(jax.random.key(0)), jnp.ones((2, 3, 4)))
