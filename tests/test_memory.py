"""Memory tasks: sampler structure, baselines vs empirical estimates, small runs beat them."""

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import GRU, LSTM, Model, engine, optim, runs
from recurrax.tasks import memory

ROOT = Path(__file__).parents[1]


def test_copy_structure_and_baseline():
    task = memory.Task("copy", 30)
    x, y = task.sample(jax.random.key(0), 500)
    assert x.shape == y.shape == (500, 50)
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
    assert memory.Task("copy", 100).baseline == pytest.approx(0.173, abs=1e-3)


def test_adding_structure_and_baselines():
    task = memory.Task("adding", 40)
    x, y = task.sample(jax.random.key(1), 20000)
    marks = np.asarray(x[..., 1])
    assert np.all(marks.sum(1) == 2)
    assert np.all(marks[:, :20].sum(1) == 1) and np.all(marks[:, 20:].sum(1) == 1)
    np.testing.assert_allclose(y[:, 0], np.sum(x[..., 0] * marks, 1), rtol=1e-6)
    empirical = task.loss(jnp.ones_like(y), y)  # always predict 1
    assert float(empirical) == pytest.approx(task.baseline, rel=0.03)
    hs = memory.Task("adding", 40, hs1997=True)
    x, y = hs.sample(jax.random.key(2), 20000)
    assert float(x[..., 0].min()) < -0.9 and float(hs.loss(jnp.full_like(y, 0.5), y)) == (
        pytest.approx(hs.baseline, rel=0.03)
    )


def test_xor_and_parity_targets():
    task = memory.Task("xor", 12)
    x, y = task.sample(jax.random.key(3), 64)
    bits = np.asarray(x[..., 0]).astype(int)
    prev = np.pad(bits, ((0, 0), (1, 0)))[:, :-1]
    np.testing.assert_array_equal(y[..., 0], bits ^ prev)
    x, y = memory.Task("xor", 12, parity=True).sample(jax.random.key(3), 64)
    np.testing.assert_array_equal(y[..., 0], np.cumsum(np.asarray(x[..., 0]), 1) % 2)
    chance = task.loss(jnp.zeros_like(y), y)  # logit 0 = probability 1/2
    assert float(chance) == pytest.approx(task.baseline, rel=1e-5)


def test_copy_vector_baseline():
    task = memory.Task("copy-vector", 10)
    x, y = task.sample(jax.random.key(4), 20000)
    np.testing.assert_array_equal(x[:, 0], y)
    assert float(jnp.abs(x[:, 1:]).mean()) < 0.1
    assert float(task.loss(jnp.zeros_like(y), y)) == pytest.approx(task.baseline, rel=0.03)


@pytest.mark.parametrize(
    "task, cell, steps, lr, fraction",
    [
        (memory.Task("adding", 20), LSTM(16), 800, 1e-2, 0.5),
        # copying 10 symbols takes thousands of steps; a few hundred already beat the
        # memoryless baseline and recall well above chance (1/8)
        (memory.Task("copy", 5), LSTM(64), 800, 1e-2, 0.85),
        (memory.Task("xor", 20), GRU(8), 300, 3e-2, 0.5),
        (memory.Task("copy-vector", 10), LSTM(16), 300, 1e-2, 0.5),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_small_fixed_seed_run_beats_the_baseline(task, cell, steps, lr, fraction):
    model = Model((cell,), **task.io)
    problem = memory.problem(
        task,
        model,
        batch=32,
        eval_batch=256,
        optimizer=optim.adam(steps=steps, decay="cosine", end=0.1, clip=True),
    )
    config = engine.Config(steps=steps, eval_every=steps, chunk_evals=1)
    r = runs.train(problem, config, engine.members(2, {}, {"lr": lr, "clip": 1.0}), progress=False)
    best = min(s["final"]["loss"] for s in r.summary)
    assert best < fraction * task.baseline, r.summary
    if task.name == "copy":
        assert max(s["final"]["recall_acc"] for s in r.summary) > 0.25


@pytest.mark.parametrize(
    "flags, message",
    [
        (["adding", "--T", "1"], "T must be an int >= 2 for adding"),
        (["copy", "--T", "0"], "T must be an int >= 1 for copy"),
        (["sorting"], "invalid choice"),
        (["xor", "--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_cli_bad_input(flags, message):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "memory.py"), *flags],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_small_sweep(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "memory.py"),
            "xor",
            "--T",
            "10",
            "20",
            "--cells",
            "rnn-tanh",
            "gru",
            "--hidden",
            "8",
            "--seeds",
            "2",
            "--steps",
            "100",
            "--lr",  # large enough that every cell clears the baseline within 100 steps
            "0.05",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "length sweep" in proc.stdout and "baseline loss 0.6931" in proc.stdout
    for name in ("results.json", "curves_T10.png", "curves_T20.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for T, rows in results["results"].items():
        baseline = results["baselines"][T]
        for row in rows.values():
            # every median ends clearly below the baseline, so it crossed at some evaluation
            assert row["median"] <= 0.1 * baseline, row
            assert 0 < row["median_clear_step"] <= results["steps"]
            assert 0 < row["median_clear_s"] <= row["seconds"]
