"""The engine and the run manager: member equivalence, early stop, NaN guard, run folders,
loading a run back, checkpoints, SIGKILL/resume, sharding."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from recurrax import engine, runs
from recurrax.problem import Problem, stateless

sys.path.insert(0, str(Path(__file__).parent))
import toy_problem  # noqa: E402

TOY = Path(__file__).parent / "toy_problem.py"


def test_member_in_a_sweep_equals_a_lone_run():
    config = engine.Config(steps=60, eval_every=20, chunk_evals=2)
    table = engine.members(3, {"lr": [0.003, 0.02]}, toy_problem.DEFAULTS)
    sweep = runs.train(toy_problem.PROBLEM, config, table, progress=False)
    for m in (1, 4):
        lone = runs.train(toy_problem.PROBLEM, config, [table[m]], progress=False)
        for k in ("neg_mse", "train_loss"):
            np.testing.assert_allclose(
                lone.history[k][:, 0], sweep.history[k][:, m], rtol=1e-6, atol=1e-7
            )
        chex.assert_trees_all_close(
            jax.tree.map(lambda v: v[0], lone.state.params),
            jax.tree.map(lambda v: v[m], sweep.state.params),
            atol=1e-5,
        )


def test_training_the_same_problem_again_compiles_nothing():
    """init's and the chunk's programs are cached per (problem, config): training the same
    problem again (a re-run notebook cell, a benchmark's timed call) compiles nothing and
    gives the same numbers."""
    config = engine.Config(steps=20, eval_every=10, chunk_evals=1)
    table = engine.members(2, {"lr": [0.003, 0.02]}, toy_problem.DEFAULTS)
    first = runs.train(toy_problem.PROBLEM, config, table, progress=False)
    compiled = []

    def listener(event, seconds, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        again = runs.train(toy_problem.PROBLEM, config, table, progress=False)
        n_again = len(compiled)
        # another config is another program: the listener does see compiles
        runs.train(
            toy_problem.PROBLEM, dataclasses.replace(config, steps=30), table, progress=False
        )
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert n_again == 0 and len(compiled) > 0
    chex.assert_trees_all_equal(first.state.params, again.state.params)


def quadratic(target):
    """Gradient descent on ||w - target||^2; evaluate = -distance."""
    return Problem(
        init=lambda key, hp: {"w": jnp.zeros(2)},
        sample=lambda key, hp: jax.random.normal(key, (2,)) * 0.0,
        loss=stateless(lambda p, b, hp: jnp.sum((p["w"] - target) ** 2) + jnp.sum(b)),
        evaluate=lambda p, hp: {"neg_dist": -jnp.sqrt(jnp.sum((p["w"] - target) ** 2))},
        optimizer=lambda hp: optax.sgd(hp["lr"]),
    )


def test_early_stop_freezes_and_nan_guard_reports_divergence():
    # lr 0.1 converges, lr 0.01 slowly, lr 2.0 blows up to inf then NaN
    table = engine.members(1, {"lr": [0.1, 0.01, 2.0]}, {"lr": 0.1})
    config = engine.Config(
        steps=2000, eval_every=10, chunk_evals=5, target_metric="neg_dist", target=-1e-3
    )
    r = runs.train(quadratic(jnp.array([3.0, -4.0])), config, table, progress=False)
    fast, slow, bad = r.summary
    assert fast["reached"] is not None and fast["steps"] == fast["reached"] <= 60
    assert slow["reached"] is not None and slow["reached"] > fast["reached"]
    assert bad["reached"] is None and bad["diverged"] is not None and bad["diverged"] < 2000
    assert np.all(np.isfinite(np.asarray(r.state.params["w"][2])))  # frozen before the NaN
    # the program ended once everyone was done, not at 2000 steps
    assert np.nanmax(r.history["step"]) < 2000
    # continuing after the target (stop_on_target=False) still records the reach step
    cont = runs.train(
        quadratic(jnp.array([3.0, -4.0])),
        engine.Config(**{**config.__dict__, "stop_on_target": False, "steps": 200}),
        table[:1],
        progress=False,
    )
    assert cont.summary[0]["reached"] == fast["reached"] and cont.summary[0]["steps"] == 200


def test_stateful_problem_carries_its_state_per_member():
    """The loss's state passes from step to step (here: a step counter per member)."""
    problem = Problem(
        init=lambda key, hp: {"w": jnp.zeros(())},
        sample=lambda key, hp: jnp.zeros(()),
        loss=lambda p, b, hp, state: (p["w"] ** 2 + b, state + 1),
        evaluate=lambda p, hp: {"zero": jnp.zeros(())},
        optimizer=lambda hp: optax.sgd(hp["lr"]),
        init_state=lambda hp: jnp.asarray(0, jnp.int32),
    )
    r = runs.train(
        problem,
        engine.Config(steps=30, eval_every=10),
        engine.members(2, {}, {"lr": 0.1}),
        progress=False,
    )
    np.testing.assert_array_equal(r.state.problem_state, [30, 30])


def test_bad_input():
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['lrr'\]"):
        engine.members(2, {"lrr": [0.1]}, {"lr": 0.1})
    with pytest.raises(ValueError, match="grid for 'lr' is empty"):
        engine.members(2, {"lr": []}, {"lr": 0.1})
    with pytest.raises(ValueError, match="at least one seed"):
        engine.members(0, {}, {"lr": 0.1})
    with pytest.raises(ValueError, match="steps must be a positive int"):
        engine.Config(steps=0)
    with pytest.raises(ValueError, match="eval_every must be a positive int"):
        engine.Config(steps=10, eval_every=-1)
    with pytest.raises(ValueError, match="shard must be"):
        engine.Config(steps=10, shard="heads")


def test_run_folder_load_callback_and_refusals(tmp_path):
    table = engine.members(2, {"lr": [0.003, 0.01]}, toy_problem.DEFAULTS)
    config = engine.Config(steps=40, eval_every=20, chunk_evals=1)
    out = tmp_path / "run"
    seen = []
    a = runs.train(
        toy_problem.PROBLEM,
        config,
        table,
        out=out,
        run={"x": 1},
        model=toy_problem.MODEL,
        progress=False,
        callback=lambda step, rows: seen.append((step, len(rows), rows[0]["lr"])),
    )
    assert seen == [(20, 4, 0.003), (40, 4, 0.003)]  # one call per chunk, rows with hparams
    for name in ("config.json", "members.csv", "metrics.jsonl", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 4 and {r["member"] for r in rows} == {0, 1, 2, 3}
    assert {(r["seed"], r["lr"]) for r in rows} == {(s, lr) for lr in (0.003, 0.01) for s in (0, 1)}

    run = runs.load(out)  # back without the script: members, model, history, params
    assert run.table == table and run.model == toy_problem.MODEL and run.config["run"] == {"x": 1}
    np.testing.assert_array_equal(run.history["lr"], [r["lr"] for r in rows])
    np.testing.assert_allclose(run.history["neg_mse"], [r["neg_mse"] for r in rows])
    assert run.checkpoints == [1, 2] and run.summary == json.loads(json.dumps(a.summary))
    chex.assert_trees_all_equal(run.params(), jax.tree.map(np.asarray, a.state.params))
    first = run.params(checkpoint=1)
    assert not np.allclose(first["readout"]["W"], run.params()["readout"]["W"])
    x, _ = toy_problem.sample(jax.random.key(5), {})
    out_a, _ = run.model.apply(run.member_params(3), x)
    out_b, _ = toy_problem.MODEL.apply(jax.tree.map(lambda v: v[3], a.state.params), x)
    np.testing.assert_array_equal(out_a, out_b)

    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(FileExistsError, match="already holds a run"):
        runs.train(toy_problem.PROBLEM, config, table, out=out, run={"x": 1}, progress=False)
    with pytest.raises(ValueError, match=r"different config \(run.x: 1 there, 2 now\)"):
        runs.train(
            toy_problem.PROBLEM,
            config,
            table,
            out=out,
            run={"x": 2},
            model=toy_problem.MODEL,
            resume=True,
            progress=False,
        )
    assert (out / "metrics.jsonl").read_text() == before  # nothing overwritten
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty and holds no run"):
        runs.train(toy_problem.PROBLEM, config, table, out=tmp_path / "foreign", progress=False)
    for folder, message in [
        (tmp_path / "nope", "is not a folder"),
        (tmp_path / "foreign", "not a recurrax run folder"),
    ]:
        with pytest.raises(ValueError, match=message):
            runs.load(folder)
    # resume of a folder whose run never started (killed before config.json): starts it
    fresh = runs.train(
        toy_problem.PROBLEM, config, table, out=tmp_path / "new", resume=True, progress=False
    )
    assert fresh.summary == a.summary  # same config and seeds: identical metrics


def run_toy(out, *extra, env=None):
    return subprocess.run(
        [sys.executable, str(TOY), str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    steps = 400
    full = runs.train(
        toy_problem.PROBLEM, toy_problem.config(steps), toy_problem.table(), progress=False
    )
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(TOY), str(out), "--steps", str(steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (out / "checkpoints" / "3").exists() and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = runs.load(out).checkpoints
    assert saved and max(saved) < 20
    resumed = runs.train(
        toy_problem.PROBLEM,
        toy_problem.config(steps),
        toy_problem.table(),
        out=out,
        resume=True,
        progress=False,
        run={"steps": steps, "seeds": 4},
        model=toy_problem.MODEL,
    )
    chex.assert_trees_all_equal(resumed.state.params, full.state.params)  # bit-identical
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["eval"] for r in rows}) == list(range(20))  # no gaps, no duplicates


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path):
    out = tmp_path / "run"
    table = engine.members(2, {}, toy_problem.DEFAULTS)
    config = engine.Config(steps=60, eval_every=20, chunk_evals=1)
    runs.train(toy_problem.PROBLEM, config, table, out=out, progress=False, keep=5)
    latest = out / "checkpoints" / "3"
    for f in latest.rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"garbage")
    r = runs.train(toy_problem.PROBLEM, config, table, out=out, resume=True, progress=False)
    assert int(r.state.step.max()) == 60
    lone = runs.train(toy_problem.PROBLEM, config, table, progress=False)
    chex.assert_trees_all_equal(r.state.params, lone.state.params)


def test_sharded_equals_unsharded(tmp_path):
    flags = os.environ.get("XLA_FLAGS", "")  # keeps conftest's fast-compile setting
    env = dict(os.environ, XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4")
    sharded = json.loads(
        run_toy(tmp_path / "a", "--steps", "40", "--shard", "members", "batch", env=env).stdout
    )
    assert sharded["devices"] == 4 and jax.device_count() == 1
    single = runs.train(
        toy_problem.PROBLEM, toy_problem.config(40), toy_problem.table(), progress=False
    )
    want = jax.tree.leaves(single.state.params)
    for shard in ("members", "batch"):
        is_array = lambda v: isinstance(v, list) and not isinstance(v[0], dict)  # noqa: E731
        got = jax.tree.leaves(sharded["params"][shard], is_leaf=is_array)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(np.asarray(a), b, atol=1e-5)
