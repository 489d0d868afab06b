"""Memory tasks: sampler structure, baselines vs empirical estimates, the 1997 adding problem's
rules, padded steps that do not matter, small runs that beat the baselines."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import LSTM, Model
from recurrax.tasks import memory

ROOT = Path(__file__).parents[1]


def test_constructors_are_the_cli_names_and_check_the_delay():
    for name, make in memory.TASKS.items():
        task = make(30)
        assert task.name == name and task.T == 30
        batch = task.sample(jax.random.key(0), 3)
        assert batch.inputs.shape[:2] == (3, task.length)
        integer = jnp.issubdtype(batch.targets.dtype, jnp.integer)  # labels: logits per class
        shape = (*batch.targets.shape, task.io["output_size"]) if integer else batch.targets.shape
        assert float(task.loss(jnp.zeros(shape), batch.targets)) > 0
    with pytest.raises(ValueError, match="T must be an int >= 22 for adding"):
        memory.adding(21, form="hs1997")
    with pytest.raises(ValueError, match="unknown adding form"):
        memory.adding(40, form="hs1998")
    with pytest.raises(ValueError, match="T must be an int >= 1 for copy"):
        memory.copy(0)


def test_copy_structure_and_baseline():
    task = memory.copy(30)
    x, y, lengths = task.sample(jax.random.key(0), 500)
    assert x.shape == y.shape == (500, 50) and lengths is None
    assert np.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert np.all(x[:, 10:39] == memory.BLANK) and np.all(x[:, 39] == memory.DELIM)
    assert np.all(x[:, 40:] == memory.BLANK)
    assert np.all(y[:, :40] == memory.BLANK) and np.all(y[:, 40:] == x[:, :10])
    # the memoryless predictor: blank until the delimiter, then uniform over the 8 symbols
    logits = jnp.where(
        jnp.arange(50)[:, None] < 40,
        jnp.where(jnp.arange(10) == 0, 50.0, -50.0),
        jnp.where((jnp.arange(10) >= 1) & (jnp.arange(10) <= 8), 0.0, -50.0),
    )
    empirical = task.loss(jnp.broadcast_to(logits, (500, 50, 10)), y)
    assert float(empirical) == pytest.approx(task.baseline, rel=1e-4)
    assert task.baseline == pytest.approx(10 * math.log(8) / 50)
    assert memory.copy(100).baseline == pytest.approx(0.173, abs=1e-3)  # Arjovsky et al.


def test_adding_le2015_structure_and_baseline():
    task = memory.adding(40)
    x, y, lengths = task.sample(jax.random.key(1), 20000)
    marks = np.asarray(x[..., 1])
    assert lengths is None and np.all(marks.sum(1) == 2)
    assert np.all(marks[:, :20].sum(1) == 1) and np.all(marks[:, 20:].sum(1) == 1)
    assert 0 <= float(x[..., 0].min()) and float(x[..., 0].max()) <= 1
    np.testing.assert_allclose(y[:, 0], np.sum(x[..., 0] * marks, 1), rtol=1e-6)
    empirical = task.loss(jnp.ones_like(y), y)  # always predict 1
    assert float(empirical) == pytest.approx(task.baseline, rel=0.03)


def test_adding_hs1997_follows_experiment_4():
    T = 30
    task = memory.adding(T, form="hs1997")
    x, y, lengths = (np.asarray(a) for a in task.sample(jax.random.key(2), 20000))
    values, marker = x[..., 0], x[..., 1]
    B, L = values.shape
    assert L == task.length == T + T // 10
    assert lengths.min() == T and lengths.max() == T + T // 10  # every length is drawn
    assert set(np.unique(lengths)) == set(range(T, T + T // 10 + 1))
    t = np.arange(L)
    pad = t >= lengths[:, None]
    assert np.all(values[pad] == 0) and np.all(marker[pad] == 0)
    assert np.abs(values).max() <= 1 and values.min() < -0.99
    marked = marker == 1
    assert np.all(marked.sum(1) == 2)
    pos = np.sort(np.argwhere(marked)[:, 1].reshape(B, 2), axis=1)
    assert np.all(pos[:, 0] < 10)  # X1 among the first 10 pairs
    assert np.all(pos[:, 1] < T // 2 - 1) and pos[:, 1].max() == T // 2 - 2  # X2 among T/2 - 1
    # first and last pair -1 unless marked, every other unmarked pair 0
    last = lengths - 1
    first_marked = marked[:, 0]
    assert np.all(marker[~first_marked, 0] == -1) and np.all(marker[np.arange(B), last] == -1)
    others = ~marked & ~pad & (t != 0) & (t != last[:, None])
    assert np.all(marker[others] == 0)
    # the first pair marked: X1 is 0, so one marked value is 0 (and only then, a.s.)
    marked_values = values[marked].reshape(B, 2)
    assert np.all(np.prod(marked_values, 1)[first_marked] == 0)
    assert np.all(np.prod(marked_values, 1)[~first_marked] != 0)
    assert first_marked.mean() == pytest.approx(memory.hs1997_first_marked(T), abs=0.01)
    np.testing.assert_allclose(y[:, 0], 0.5 + marked_values.sum(1) / 4, atol=1e-6)
    # the baseline is the best constant's MSE, the target's variance
    assert task.baseline == pytest.approx(float(y.var()), rel=0.03)
    assert float(task.loss(jnp.full_like(y, 0.5), y)) == pytest.approx(task.baseline, rel=0.03)
    # correct when |error| < 0.04
    err = np.where(np.arange(B) % 4 == 0, 0.0399, 0.0401)[:, None] * np.sign(y - 0.5)
    frac = task.metrics(jnp.asarray(y + err), jnp.asarray(y))[task.accuracy]
    assert float(frac) == pytest.approx(np.mean(np.arange(B) % 4 == 0), abs=1e-6)


def test_padded_steps_do_not_matter():
    task = memory.adding(22, form="hs1997")
    model = Model((LSTM(5),), **task.io)
    params = model.init(jax.random.key(0))
    x, _, lengths = task.sample(jax.random.key(3), 8)
    out = model.apply(params, x, lengths=lengths)[0]
    pad = (jnp.arange(x.shape[1]) >= lengths[:, None])[..., None]
    noise = jax.random.normal(jax.random.key(4), x.shape)
    np.testing.assert_allclose(
        model.apply(params, jnp.where(pad, noise, x), lengths=lengths)[0], out, atol=1e-6
    )
    for b in range(2):  # each sequence alone, unpadded
        alone = model.apply(params, x[b : b + 1, : int(lengths[b])])[0]
        np.testing.assert_allclose(alone[0], out[b], atol=1e-5)


def test_xor_and_parity_targets():
    task = memory.xor(12)
    x, y, _ = task.sample(jax.random.key(3), 64)
    bits = np.asarray(x[..., 0]).astype(int)
    prev = np.pad(bits, ((0, 0), (1, 0)))[:, :-1]
    np.testing.assert_array_equal(y[..., 0], bits ^ prev)
    x, y, _ = memory.xor(12, parity=True).sample(jax.random.key(3), 64)
    np.testing.assert_array_equal(y[..., 0], np.cumsum(np.asarray(x[..., 0]), 1) % 2)
    chance = task.loss(jnp.zeros_like(y), y)  # logit 0 = probability 1/2
    assert float(chance) == pytest.approx(task.baseline, rel=1e-5)
    assert float(task.metrics(jnp.where(y > 0.5, 1.0, -1.0), y)["acc"]) == 1.0


def test_copy_vector_baseline():
    task = memory.copy_vector(10)
    x, y, _ = task.sample(jax.random.key(4), 20000)
    np.testing.assert_array_equal(x[:, 0], y)
    assert float(jnp.abs(x[:, 1:]).mean()) < 0.1
    assert float(task.loss(jnp.zeros_like(y), y)) == pytest.approx(task.baseline, rel=0.03)
