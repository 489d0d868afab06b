"""A small LSTM regression problem for the training-engine tests (also runnable as a script:
``python tests/toy_problem.py OUT [--resume]``, used by the SIGKILL/resume and sharding tests)."""

import argparse
import json
import sys

import jax
import jax.numpy as jnp

from recurrax import LSTM, Model, engine, optim, runs
from recurrax.problem import Problem, stateless

MODEL = Model((LSTM(24),), output_size=1, input_size=2, many_to_one=True)
DEFAULTS = {"lr": 0.01, "clip": 1.0}


def sample(key, hp):
    """Sum of the first channel where the second is 1 (a tiny adding problem)."""
    k1, k2 = jax.random.split(key)
    vals = jax.random.uniform(k1, (16, 12))
    marks = (jax.random.uniform(k2, (16, 12)) < 0.3).astype(jnp.float32)
    return jnp.stack([vals, marks], -1), jnp.sum(vals * marks, 1, keepdims=True)


def loss(params, batch, hp):
    x, y = batch
    return jnp.mean((MODEL.apply(params, x)[0] - y) ** 2)


def evaluate(params, hp):
    return {"neg_mse": -loss(params, sample(jax.random.key(123), hp), hp)}


PROBLEM = Problem(
    init=lambda key, hp: MODEL.init(key),
    sample=sample,
    loss=stateless(loss),
    evaluate=evaluate,
    optimizer=optim.adam(clip=True),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--shard", nargs="+", default=["members"])
    args = ap.parse_args()
    params = {}
    for shard in args.shard:
        result = runs.train(
            PROBLEM,
            config(args.steps, shard),
            table(args.seeds),
            out=args.out if len(args.shard) == 1 else f"{args.out}/{shard}",
            resume=args.resume,
            progress=False,
            run={"steps": args.steps, "seeds": args.seeds},
            model=MODEL,
        )
        params[shard] = jax.tree.map(lambda v: v.tolist(), result.state.params)
    json.dump({"devices": jax.device_count(), "params": params}, sys.stdout)


def table(seeds: int = 4) -> list[dict]:
    return engine.members(seeds, {"lr": [0.003, 0.01]}, DEFAULTS)


def config(steps: int = 600, shard: str = "members") -> engine.Config:
    return engine.Config(steps=steps, eval_every=20, chunk_evals=1, shard=shard)


if __name__ == "__main__":
    main()
