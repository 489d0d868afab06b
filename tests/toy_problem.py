"""A small LSTM regression problem for the training-engine tests (also runnable as a script:
``python tests/toy_problem.py OUT [--resume]``, used by the SIGKILL/resume and sharding tests)."""

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import optax

from recurrax import LSTM, Model
from recurrax import train as T

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


PROBLEM = T.Problem(
    init=lambda key, hp: MODEL.init(key),
    sample=sample,
    loss=loss,
    evaluate=evaluate,
    optimizer=lambda hp: optax.chain(optax.clip_by_global_norm(hp["clip"]), optax.adam(hp["lr"])),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--shard", default="members")
    args = ap.parse_args()
    table = T.members(args.seeds, {"lr": [0.003, 0.01]}, DEFAULTS)
    config = T.Config(steps=args.steps, eval_every=20, chunk_evals=1, shard=args.shard)
    result = T.train(
        PROBLEM,
        config,
        table,
        out=args.out,
        resume=args.resume,
        progress=False,
        run_config={"steps": args.steps, "seeds": args.seeds},
    )
    json.dump(
        {
            "devices": jax.device_count(),
            "params": jax.tree.map(lambda v: v.tolist(), result.state.params),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
