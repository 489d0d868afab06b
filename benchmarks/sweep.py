"""Seed sweeps: recurrax's compiled member sweep vs PyTorch and the obvious JAX approach.

The aⁿbⁿcⁿ-sized model (vocabulary 6, embedding 4, one LSTM layer of 8 cells, readout 6,
sigmoid cross-entropy against the legal next-symbol sets), batch 10 strings with n <= 10
(length 32), Adam, ``--steps`` steps, for S members at once. In one process:

- recurrax: ``recurrax.runs.train`` (the whole loop compiled, vmapped over members, the members
  split over one JAX device per core, as the studies do by default), timed on a second call
  with the same problem, which reuses the compiled program (the first call's time, compile
  included, is printed below the table);
- torch sequential: the same model trained S times one after another (measured at S = 1 and
  8, extrapolated linearly beyond: said so in the output);
- torch ensemble: ``torch.func.stack_module_state`` + ``vmap`` over ``functional_call`` of a
  hand-written LSTM (``nn.LSTM`` has no vmap batching rule), one Adam over the stacked params;
- jax obvious: ``jax.jit(jax.vmap(train_step))`` of a Flax-linen model, driven by a Python loop.

Prints member-steps/s and the ratios. ``python benchmarks/sweep.py [--steps 2000]``

Member layouts measured for the recurrax row (S = 128, plain LSTM with its hand-written
backward, members over both cores, compile excluded, 500 steps): vmap's own batching (the
member axis in front; each step's ``h W_hh`` a batched matmul of 128 small matrices) 15,121
member-steps/s — kept; members last (every scan array ``[..., M]`` through a
``jax.custom_batching.custom_vmap`` rule, the recurrent contraction a fused multiply and sum,
the all-step projections and weight gradients batched matmuls, the member-axis moves folding
away between forward and backward) 5,709, and with the hoisted projection also as multiply
and sum 4,113 (one YNNPACK fusion of it took 34 ms a call). On one device, compile included:
6,270 vs 1,964. The issue's calibration had found members last 1.14x (one device) to 2.5x (two)
over a textbook autodiff scan; against hand-written backwards it lost here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from recurrax import cli  # noqa: E402

cli.use_all_cores()  # the recurrax row is what a user gets by default: members over all cores
from recurrax import LSTM, Model, engine, optim, runs  # noqa: E402
from recurrax.tasks import formal  # noqa: E402

LANG = formal.get("anbncn")
V, E, H, B, N_MAX, LR = LANG.vocab_size, 4, 8, 10, 10, 0.01


def batches(steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` batches of tokens ``[steps, B, L]`` and legal sets ``[steps, B, L, V]``."""
    keys = jax.random.split(jax.random.key(seed), steps)
    tokens = jax.vmap(lambda k: formal.sample(LANG, k, B, N_MAX))(keys)
    return np.asarray(tokens), np.asarray(formal.legal_next(LANG, tokens), np.float32)


# --- recurrax -----------------------------------------------------------------------------------


def recurrax_sweep(S: int, steps: int) -> tuple[float, float]:
    """(member-steps/s of a second ``runs.train`` of the same problem, which reuses the compiled
    program; seconds of the first call, which compiles it)."""
    model = Model((LSTM(H, forget_bias=0.0),), output_size=V, vocab_size=V, embed_size=E)
    problem = formal.problem(
        LANG,
        model,
        batch=B,
        optimizer=optim.adam(steps=steps, decay="linear", end=0.2),
        n_max_train=N_MAX,
    )
    problem = problem._replace(evaluate=lambda p, hp: {})
    config = engine.Config(steps=steps, eval_every=steps // 4, chunk_evals=4)
    table = engine.members(S, {}, {"lr": LR, "forget_bias": 0.0})
    t0 = time.perf_counter()
    runs.train(problem, config, table, progress=False)  # compiles (and warms up)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs.train(problem, config, table, progress=False)
    return S * steps / (time.perf_counter() - t0), first


# --- torch --------------------------------------------------------------------------------------


class TorchLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E)
        self.lstm = torch.nn.LSTM(E, H, batch_first=True)
        self.head = torch.nn.Linear(H, V)

    def forward(self, tokens):
        return self.head(self.lstm(self.embed(tokens))[0])


def masked_bce(logits, legal):
    real = (legal.sum(-1, keepdim=True) > 0).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, legal, reduction="none")
    return (bce * real).sum() / (real.sum() * V)


def torch_sequential(S: int, steps: int, data) -> float:
    tokens, legal = (torch.from_numpy(a.copy()) for a in data)
    tokens = tokens.long()
    t0 = time.perf_counter()
    for s in range(S):
        torch.manual_seed(s)
        model = TorchLM()
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        for t in range(steps):
            opt.zero_grad(set_to_none=True)
            masked_bce(model(tokens[t]), legal[t]).backward()
            opt.step()
    return S * steps / (time.perf_counter() - t0)


class HandLSTM(torch.nn.Module):
    """The same model with the LSTM written out (vmap-able by torch.func)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E)
        self.ih = torch.nn.Linear(E, 4 * H)
        self.hh = torch.nn.Linear(H, 4 * H)
        self.head = torch.nn.Linear(H, V)

    def forward(self, tokens):
        x = self.embed(tokens)
        h = torch.zeros(x.shape[0], H)
        c = torch.zeros(x.shape[0], H)
        zx = self.ih(x)
        outs = []
        for t in range(x.shape[1]):
            i, f, g, o = (zx[:, t] + self.hh(h)).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return self.head(torch.stack(outs, 1))


def torch_ensemble(S: int, steps: int, data) -> float:
    from torch.func import functional_call, grad, stack_module_state, vmap

    tokens, legal = (torch.from_numpy(a.copy()) for a in data)
    tokens = tokens.long()
    models = []
    for s in range(S):
        torch.manual_seed(s)
        models.append(HandLSTM())
    params, buffers = stack_module_state(models)
    base = HandLSTM().to("meta")

    def loss(p, b, x, y):
        return masked_bce(functional_call(base, (p, b), (x,)), y)

    grads_fn = vmap(grad(loss), in_dims=(0, 0, None, None))
    opt = torch.optim.Adam(list(params.values()), lr=LR)
    t0 = time.perf_counter()
    for t in range(steps):
        g = grads_fn(params, buffers, tokens[t], legal[t])
        for name, p in params.items():
            p.grad = g[name]
        opt.step()
    return S * steps / (time.perf_counter() - t0)


# --- the obvious JAX approach ------------------------------------------------------------------


class FlaxLM(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(V, E)(tokens)
        return nn.Dense(V)(nn.RNN(nn.OptimizedLSTMCell(H))(x))


def jax_obvious(S: int, steps: int, data) -> float:
    module, opt = FlaxLM(), optax.adam(LR)
    tokens, legal = jnp.asarray(data[0]), jnp.asarray(data[1])

    def init(key):
        params = module.init(key, tokens[0])
        return params, opt.init(params)

    def loss(params, x, y):
        logits = module.apply(params, x)
        real = (y.sum(-1, keepdims=True) > 0).astype(jnp.float32)
        return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, y) * real) / (real.sum() * V)

    def step(params, opt_state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(jax.vmap(step, in_axes=(0, 0, None, None)))
    params, opt_state = jax.vmap(init)(jax.random.split(jax.random.key(0), S))
    jax.block_until_ready(step(params, opt_state, tokens[0], legal[0]))  # compile
    t0 = time.perf_counter()
    for t in range(steps):
        params, opt_state = step(params, opt_state, tokens[t], legal[t])
    jax.block_until_ready(params)
    return S * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000, help="training steps per member")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 8, 32, 128], help="S values")
    ap.add_argument(
        "--ensemble-max",
        type=int,
        default=128,
        help="largest S for the torch ensemble (it is slow)",
    )
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data = batches(args.steps, 0)
    seq = {S: torch_sequential(S, args.steps, data) for S in (1, 8)}
    seq_rate = seq[8]  # sequential runs do not speed up with S: extrapolate from S = 8
    print(f"{os.cpu_count()} cores, {args.steps} steps; member-steps/s (higher is better)")
    print(
        f"{'S':>4} {'recurrax':>10} {'torch seq':>10} {'torch ens':>10} {'jax obvious':>12}"
        f" {'x torch seq':>12} {'x torch ens':>12} {'x jax obv':>10}"
    )
    compiles = []
    for S in args.members:
        r, first = recurrax_sweep(S, args.steps)
        compiles.append(f"S={S}: {first:.1f} s")
        ts = seq.get(S, seq_rate)
        te = torch_ensemble(S, args.steps, data) if S <= args.ensemble_max else float("nan")
        jo = jax_obvious(S, args.steps, data)
        note = "" if S in seq else " (torch seq extrapolated from S=8)"
        print(
            f"{S:>4} {r:>10,.0f} {ts:>10,.0f} {te:>10,.0f} {jo:>12,.0f} {r / ts:>11.1f}x "
            f"{r / te:>11.1f}x {r / jo:>9.1f}x{note}",
            flush=True,
        )
    print(
        "JAX rows: steady state, compile excluded (recurrax: a second runs.train of the same "
        "problem reuses the compiled program); recurrax's first call, compile included: "
        + ", ".join(compiles)
    )


if __name__ == "__main__":
    main()
