"""The training engine: member equivalence, early stop, NaN guard, checkpoints, sharding."""

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

from recurrax import train as T

sys.path.insert(0, str(Path(__file__).parent))
import toy_problem  # noqa: E402

TOY = Path(__file__).parent / "toy_problem.py"


def test_member_in_a_sweep_equals_a_lone_run():
    config = T.Config(steps=60, eval_every=20, chunk_evals=2)
    table = T.members(3, {"lr": [0.003, 0.02]}, toy_problem.DEFAULTS)
    sweep = T.train(toy_problem.PROBLEM, config, table, progress=False)
    for m in (1, 4):
        lone = T.train(toy_problem.PROBLEM, config, [table[m]], progress=False)
        for k in ("neg_mse", "train_loss"):
            np.testing.assert_allclose(
                lone.history[k][:, 0], sweep.history[k][:, m], rtol=1e-6, atol=1e-7
            )
        chex.assert_trees_all_close(
            jax.tree.map(lambda v: v[0], lone.state.params),
            jax.tree.map(lambda v: v[m], sweep.state.params),
            atol=1e-5,
        )


def quadratic(target):
    """Gradient descent on ||w - target||^2; evaluate = -distance."""
    return T.Problem(
        init=lambda key, hp: {"w": jnp.zeros(2)},
        sample=lambda key, hp: jax.random.normal(key, (2,)) * 0.0,
        loss=lambda p, b, hp: jnp.sum((p["w"] - target) ** 2) + jnp.sum(b),
        evaluate=lambda p, hp: {"neg_dist": -jnp.sqrt(jnp.sum((p["w"] - target) ** 2))},
        optimizer=lambda hp: optax.sgd(hp["lr"]),
    )


def test_early_stop_freezes_and_nan_guard_reports_divergence():
    # lr 0.1 converges, lr 0.01 slowly, lr 2.0 blows up to inf then NaN
    table = T.members(1, {"lr": [0.1, 0.01, 2.0]}, {"lr": 0.1})
    config = T.Config(
        steps=2000, eval_every=10, chunk_evals=5, target_metric="neg_dist", target=-1e-3
    )
    r = T.train(quadratic(jnp.array([3.0, -4.0])), config, table, progress=False)
    fast, slow, bad = r.summary
    assert fast["reached"] is not None and fast["steps"] == fast["reached"] <= 60
    assert slow["reached"] is not None and slow["reached"] > fast["reached"]
    assert bad["reached"] is None and bad["diverged"] is not None and bad["diverged"] < 2000
    assert np.all(np.isfinite(np.asarray(r.state.params["w"][2])))  # frozen before the NaN
    # the program ended once everyone was done, not at 2000 steps
    assert np.nanmax(r.history["step"]) < 2000
    # continuing after the target (stop_on_target=False) still records the reach step
    cont = T.train(
        quadratic(jnp.array([3.0, -4.0])),
        config.__class__(**{**config.__dict__, "stop_on_target": False, "steps": 200}),
        table[:1],
        progress=False,
    )
    assert cont.summary[0]["reached"] == fast["reached"] and cont.summary[0]["steps"] == 200


def test_bad_input():
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['lrr'\]"):
        T.members(2, {"lrr": [0.1]}, {"lr": 0.1})
    with pytest.raises(ValueError, match="grid for 'lr' is empty"):
        T.members(2, {"lr": []}, {"lr": 0.1})
    with pytest.raises(ValueError, match="at least one seed"):
        T.members(0, {}, {"lr": 0.1})
    with pytest.raises(ValueError, match="steps must be a positive int"):
        T.Config(steps=0)
    with pytest.raises(ValueError, match="eval_every must be a positive int"):
        T.Config(steps=10, eval_every=-1)
    with pytest.raises(ValueError, match="shard must be"):
        T.Config(steps=10, shard="heads")


def test_run_folder_results_and_refusals(tmp_path):
    table = T.members(2, {}, toy_problem.DEFAULTS)
    config = T.Config(steps=40, eval_every=20, chunk_evals=1)
    out = tmp_path / "run"
    a = T.train(toy_problem.PROBLEM, config, table, out=out, run_config={"x": 1}, progress=False)
    for name in ("config.json", "metrics.jsonl", "summary.json", "learning_curves.png"):
        assert (out / name).stat().st_size > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 and {r["member"] for r in rows} == {0, 1}
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(FileExistsError, match="already holds a run"):
        T.train(toy_problem.PROBLEM, config, table, out=out, run_config={"x": 1}, progress=False)
    with pytest.raises(ValueError, match=r"different config \(x: 1 there, 2 now\)"):
        T.train(
            toy_problem.PROBLEM,
            config,
            table,
            out=out,
            run_config={"x": 2},
            resume=True,
            progress=False,
        )
    assert (out / "metrics.jsonl").read_text() == before  # nothing overwritten
    b = T.train(
        toy_problem.PROBLEM,
        config,
        table,
        out=tmp_path / "again",
        run_config={"x": 1},
        progress=False,
    )
    assert a.summary == b.summary  # same config and seeds: identical metrics


def run_toy(out, *extra, env=None):
    return subprocess.run(
        [sys.executable, str(TOY), str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    full = json.loads(run_toy(tmp_path / "full").stdout)["params"]
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(TOY), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (out / "checkpoints" / "3").exists() and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and max(saved) < 30
    resumed = run_toy(out, "--resume")
    assert "resuming" in resumed.stderr
    assert json.loads(resumed.stdout)["params"] == full  # bit-identical
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["eval"] for r in rows}) == list(range(30))  # no gaps, no duplicates


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path):
    out = tmp_path / "run"
    table = T.members(2, {}, toy_problem.DEFAULTS)
    config = T.Config(steps=60, eval_every=20, chunk_evals=1, keep=5)
    T.train(toy_problem.PROBLEM, config, table, out=out, run_config={}, progress=False)
    latest = out / "checkpoints" / "3"
    for f in latest.rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"garbage")
    r = T.train(
        toy_problem.PROBLEM, config, table, out=out, run_config={}, resume=True, progress=False
    )
    assert int(r.state.step.max()) == 60
    lone = T.train(toy_problem.PROBLEM, config, table, progress=False)
    chex.assert_trees_all_equal(r.state.params, lone.state.params)


@pytest.mark.parametrize("shard", ["members", "batch"])
def test_sharded_equals_unsharded(tmp_path, shard):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    sharded = json.loads(run_toy(tmp_path / "a", "--steps", "40", "--shard", shard, env=env).stdout)
    single = json.loads(run_toy(tmp_path / "b", "--steps", "40").stdout)
    assert sharded["devices"] == 4 and single["devices"] == 1
    chex.assert_trees_all_close(sharded["params"], single["params"], atol=1e-5)
