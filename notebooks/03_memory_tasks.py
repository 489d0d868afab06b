# %% [markdown]
# # 03 · Memory tasks: what gating buys
#
# The adding problem and the copy task for a tanh RNN, a GRU and an LSTM, against the
# memoryless baselines (adding: 1/6, predicting 1; copy: 10 ln 8 / (T + 20)).

# %%
# %matplotlib inline
import os

import numpy as np

from recurrax import Model, engine, optim, plots, runs
from recurrax.cells import from_name
from recurrax.tasks import memory

QUICK = os.environ.get("RECURRAX_QUICK") == "1"
T_ADD, T_COPY, STEPS, SEEDS, H = (20, 5, 100, 2, 16) if QUICK else (100, 50, 3000, 8, 64)


def run(task, steps, lr):
    curves = {}
    for name in ("rnn-tanh", "gru", "lstm"):
        model = Model((from_name(name, H),), **task.io)
        problem = memory.problem(
            task,
            model,
            batch=32,
            eval_batch=256,
            optimizer=optim.adam(steps=steps, decay="cosine", end=0.1, clip=True),
        )
        config = engine.Config(steps=steps, eval_every=steps // 10, chunk_evals=10)
        r = runs.train(
            problem, config, engine.members(SEEDS, {}, {"lr": lr, "clip": 1.0}), progress=False
        )
        curves[name] = (r.history["step"][:, 0], r.history["loss"])
        final = r.history["loss"][-1]
        print(
            f"{task.name} T={task.T} {name:9} final loss {np.median(final):.4f} "
            f"({np.median(final) / task.baseline:.0%} of the baseline {task.baseline:.4f})"
        )
    # median over seeds and the 25-75% band; the figure is the cell's result
    return plots.band_curves(
        curves, baseline=task.baseline, title=f"{task.name}, T={task.T}, {SEEDS} seeds"
    )


# %%
run(memory.adding(T_ADD), STEPS, 1e-2)

# %%
run(memory.copy(T_COPY), STEPS, 1e-2)
