"""The Chomsky-hierarchy suite: every sampler against its plain-Python definition, the paper's
worked examples, the tape layout, and one small run that learns a regular task."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import Model
from recurrax.cells import LSTM
from recurrax.tasks import chomsky


def _tokens(text):
    return [int(c) for c in text]


@pytest.mark.parametrize(
    "name, x, y",
    [  # worked examples from the paper's task definitions
        ("even_pairs", "001110", "0"),
        ("even_pairs", "0101001", "1"),
        ("parity_check", "1010100", "1"),
        ("parity_check", "01111", "0"),
        ("cycle_navigation", "20100", "3"),  # moves +1 -1 0 -1 -1 -> -2 = 3 (0: -1, 1: 0, 2: +1)
        ("reverse_string", "0111", "1110"),
        ("duplicate_string", "011", "011011"),
        ("odds_first", "00110101", "01000111"),
        ("odds_first", "110", "101"),
        ("missing_duplicate", "01100210", "1"),
        ("missing_duplicate", "1011213", "0"),
        ("bucket_sort", "42031", "01234"),
        ("stack_manipulation", "0110422", "11020000"),  # 0 1 1 0 PUSH1 POP POP
        ("stack_manipulation", "110222", "2000000"),
        ("binary_addition", "001201101", "0101120000"),  # 4 + 22 = 26
        ("binary_multiplication", "0112101", "0111120"),  # 6 * 5 = 30
        ("compute_sqrt", "100101", "110"),  # 37 -> 6 (big-endian, width ceil(n/2))
        ("compute_sqrt", "111", "10"),
    ],
)
def test_definitions_match_the_papers_examples(name, x, y):
    assert chomsky.TASKS[name].solve(_tokens(x)) == _tokens(y)


def test_arithmetic_definitions():
    arith = chomsky.TASKS["modular_arithmetic"]
    plus, minus, times = chomsky.PLUS, chomsky.MINUS, chomsky.TIMES
    assert arith.solve([1, plus, 2, times, 3]) == [2]  # 1 + 2 * 3 = 7 = 2 (mod 5)
    assert arith.solve([1, minus, 1, minus, 1]) == [4]
    assert arith.solve([0, times, 1, plus, 4, times, 3, minus, 2]) == [0]
    enc = chomsky._encode
    assert chomsky.TASKS["modular_arithmetic_brackets"].solve(enc("((1-(-3))+4)")) == [3]
    assert chomsky.TASKS["solve_equation"].solve(enc("((1-x)+4)=2")) == [3]


@pytest.mark.parametrize("name", [n for n, t in chomsky.TASKS.items()])
def test_generators_give_the_requested_lengths_and_alphabets(name):
    task = chomsky.TASKS[name]
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 4, 5, 8, 17, 40]:
        x = task.generate(rng, n)
        y = task.solve(x)
        assert len(x) == int(task.in_len(n))
        assert len(y) == int(task.out_len(n))
        assert set(x) <= set(range(task.vocab)) and set(y) <= set(range(task.classes))


@pytest.mark.parametrize("name", [n for n, t in chomsky.TASKS.items() if t.draw is not None])
def test_jax_sampler_agrees_with_the_python_definition(name):
    task = chomsky.TASKS[name]
    N = 24
    draw = jax.jit(lambda key, n: chomsky.sample(task, key, n, 64, N))
    for n in [1, 2, 3, 7, 24]:
        b = jax.device_get(draw(jax.random.key(n), jnp.asarray(n)))
        assert b.tape.dtype.kind == "i" and b.y.dtype.kind == "i"  # token ids, not floats
        L, m = int(task.in_len(n)), int(task.out_len(n))
        for row in range(64):
            assert b.start[row] == L
            x = [int(t) for t in b.tape[row, :L]]
            assert set(x) <= set(range(task.vocab))
            assert (b.tape[row, L:] == task.vocab).all()  # blanks ask for the outputs
            assert [int(t) for t in b.y[row, :m]] == task.solve(x), (n, x)
            assert b.loss_mask[row].sum() == m


def test_jax_samplers_cover_the_input_space():
    # the samplers draw inputs like the definition: every string of length 3 appears
    for name in ["parity_check", "reverse_string", "duplicate_string"]:
        b = chomsky.sample(chomsky.TASKS[name], jax.random.key(0), 3, 512, 3)
        seen = {tuple(int(t) for t in row[:3]) for row in np.asarray(b.tape)}
        assert len(seen) == 8
    # binary addition: operands are >= 1 and of every width
    task = chomsky.TASKS["binary_addition"]
    b = chomsky.sample(task, jax.random.key(1), 6, 512, 6)
    seps = {int(np.argmax(row == 2)) for row in np.asarray(b.tape)[:, :6]}
    assert seps == {1, 2, 3, 4}


def test_termination_masks_score_up_to_the_end_token():
    task = chomsky.TASKS["stack_manipulation"]
    batch = chomsky.reference(task, [7], 1, 0)
    x = [int(t) for t in batch.tape[0, :7]]
    y = task.solve(x)
    end = y.index(2)
    assert np.asarray(batch.acc_mask[0]).tolist() == [j <= end for j in range(8)]
    assert bool(batch.loss_mask[0].all())


def test_pool_tasks_draw_from_the_pool_at_the_requested_length():
    task = chomsky.TASKS["solve_equation"]
    pool = chomsky.make_pool(task, 10, 32, 0)
    b = chomsky.sample(task, jax.random.key(0), 9, 16, 10, pool)
    assert (b.start == 9).all()
    for row in range(16):
        x = [int(t) for t in b.tape[row, :9]]
        assert task.solve(x) == [int(b.y[row, 0])]
        assert x[-2] == chomsky._BRACKETS["="] and chomsky._BRACKETS["x"] in x
    with pytest.raises(ValueError, match="pool"):
        chomsky.sample(task, jax.random.key(0), 9, 16, 10)


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown task 'parity'"):
        chomsky.get("parity")


def test_lstm_learns_parity_and_generalizes_beyond_training_lengths():
    from recurrax import engine, optim, runs

    task = chomsky.get("parity_check")
    model = Model((LSTM(16),), output_size=task.classes, input_size=task.vocab + 1)
    problem = chomsky.problem(task, model, batch=64, optimizer=optim.adam(clip=True), train_max=10)
    table = engine.members([0, 1], {}, {"lr": 1e-2, "clip": 1.0})
    result = runs.train(problem, engine.Config(steps=600, eval_every=200), table, progress=False)
    train_acc = result.history["train_acc"][-1]
    scores = chomsky.generalization(task, model, result.state.params, range(11, 41), 8)
    assert scores.shape == (2, 30)
    assert train_acc.max() > 0.95
    assert scores.mean(1).max() > 0.9  # lengths 11..40, never seen in training


SCRIPT = str(Path(__file__).resolve().parents[1] / "experiments" / "chomsky.py")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tasks", "parity"], "invalid choice: 'parity'"),
        (["--test-max", "40"], "--test-max (40) must be above --train-max (40)"),
        (["--train-max", "10", "--test-max", "5"], "must be above --train-max"),
        (["--lrs", "0"], "learning rates must be positive"),
        (["--steps", "0"], "--steps must be at least 1"),
    ],
)
def test_cli_bad_input(flags, message):
    proc = subprocess.run([sys.executable, SCRIPT, *flags], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_small_suite(tmp_path):
    out = tmp_path / "run"
    flags = ["--tasks", "cycle_navigation", "reverse_string", "--cells", "lstm", "rnn-tanh"]
    flags += ["--hidden", "8", "--steps", "20", "--train-max", "6", "--test-max", "9"]
    flags += ["--per-length", "4", "--out", str(out), "--no-progress"]
    proc = subprocess.run([sys.executable, SCRIPT, *flags], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("paper RNN") :]
    assert "cycle_navigation" in table and "reverse_string" in table and "60.9" in table
    data = json.loads((out / "results.json").read_text())["results"]
    row = data["reverse_string"]["lstm"]
    assert row["lengths"] == [7, 8, 9] and len(row["score"]) == 3  # 3 learning rates x 1 seed
    assert all(0 <= s <= 1 for s in row["score"])
    assert np.allclose(row["score"], np.mean(row["acc_by_length"], 1))
    lines = (out / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + 4
    assert (out / "cycle_navigation.png").stat().st_size > 0
