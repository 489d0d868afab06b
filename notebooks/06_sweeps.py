# %% [markdown]
# # 06 · Sweeps: seeds × learning rates in one program
#
# `engine.members` expands seeds × a grid of shape-preserving hyperparameters into *members*;
# `runs.train` runs them all in one `jit(vmap(...))` program and writes a run folder.

# %%
# %matplotlib inline
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from recurrax import LSTM, Model, engine, optim, plots, runs
from recurrax.tasks import formal

QUICK = os.environ.get("RECURRAX_QUICK") == "1"
SEEDS, STEPS = (2, 100) if QUICK else (16, 1000)
lang = formal.get("anbn")
model = Model(
    (LSTM(3, peephole=True),), output_size=lang.vocab_size, vocab_size=lang.vocab_size, embed_size=4
)
problem = formal.problem(
    lang, model, batch=10, optimizer=optim.adam(steps=STEPS, decay="linear", end=0.2), n_max_train=5
)
table = engine.members(SEEDS, {"lr": [0.01, 0.05]}, {"lr": 0.05, "forget_bias": 1.0})
print(len(table), "members, e.g.", table[0], table[-1])

# %%
out = Path(tempfile.mkdtemp()) / "sweep"
config = engine.Config(
    steps=STEPS, eval_every=50, chunk_evals=2, target_metric="train_acc_strict", target=1.0
)
result = runs.train(
    problem, config, table, out=out, run={"notebook": "06"}, model=model, progress=False
)
print(sorted(p.name for p in out.iterdir()))

# %% [markdown]
# The median over seeds per learning rate, with the 25-75% band (the figure is the cell's
# result; `runs.train` also wrote it to `learning_curves.png` in the folder):

# %%
plots.learning_curves(result.history, table, target=("train_acc_strict", 1.0))

# %% [markdown]
# ## Reading the run folder
# `summary.json` has one entry per member; `metrics.jsonl` one row per evaluation and member,
# with the member's seed and hyperparameters. `runs.load` reads it all back, with the model and
# the params of every checkpoint, without the code that made the run.

# %%
summary = json.loads((out / "summary.json").read_text())
for lr in (0.01, 0.05):
    rows = [s for s in summary if s["lr"] == lr]
    steps = [s["reached"] for s in rows if s["reached"] is not None]
    print(
        f"lr {lr}: {len(steps)}/{len(rows)} solved, median steps "
        f"{np.median(steps) if steps else '-'}"
    )
rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
print(rows[0])

run = runs.load(out)
print(len(run.table), "members; checkpoints", run.checkpoints, "; model", run.model)
tokens = formal.range_strings(lang, 5)  # a^n b^n for n = 1..5
logits, _ = run.model.apply(run.member_params(0), tokens)
print("member 0, last checkpoint: logits", logits.shape, "for strings", tokens.shape)

# %% [markdown]
# ## Sharding over devices
# With several devices, members are split over them automatically
# (`Config(shard="members")`, the default) or each batch is (`shard="batch"`). On a CPU,
# expose one device per core *before* importing jax:
# `XLA_FLAGS=--xla_force_host_platform_device_count=2 python my_sweep.py`.

# %%
import jax  # noqa: E402

print(jax.device_count(), "device(s):", engine.member_mesh(len(table)))
