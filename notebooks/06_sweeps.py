# %% [markdown]
# # 06 · Sweeps: seeds × learning rates in one program
#
# `train.members` expands seeds × a grid of shape-preserving hyperparameters into *members*;
# `runs.train` runs them all in one `jit(vmap(...))` program and writes a results folder.

# %%
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from recurrax import LSTM, Model, engine, optim, runs
from recurrax.tasks import formal

QUICK = os.environ.get("RECURRAX_QUICK") == "1"
SEEDS, STEPS = (4, 200) if QUICK else (16, 1000)
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
result = runs.train(problem, config, table, out=out, run_config={"notebook": "06"}, progress=False)
print(sorted(p.name for p in out.iterdir()))

# %% [markdown]
# ## Reading the results folder
# `summary.json` has one entry per member; `metrics.jsonl` one row per evaluation and member.

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

# %% [markdown]
# ## Sharding over devices
# With several devices, members are split over them automatically
# (`Config(shard="members")`, the default) or each batch is (`shard="batch"`). On a CPU,
# expose one device per core *before* importing jax:
# `XLA_FLAGS=--xla_force_host_platform_device_count=2 python my_sweep.py`.

# %%
import jax  # noqa: E402

print(jax.device_count(), "device(s):", engine.member_mesh(len(table)))
