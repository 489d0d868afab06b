# %% [markdown]
# # 02 · Formal languages: LSTMs that count
#
# Gers & Schmidhuber (2001): next-symbol prediction on $a^nb^nc^n$, trained on $n \le 10$,
# tested far beyond. All seeds train at once in one compiled program.

# %%
# %matplotlib inline
import os

import jax
import numpy as np

from recurrax import LSTM, Model, engine, optim, plots, runs
from recurrax.analysis import counters
from recurrax.tasks import formal

QUICK = os.environ.get("RECURRAX_QUICK") == "1"
SEEDS, STEPS, N_TEST = (4, 200, 30) if QUICK else (64, 2000, 1000)
lang = formal.get("anbncn")
print(lang.decode(formal.range_strings(lang, 3)[2]))

# %% [markdown]
# Peephole LSTM vs the standard LSTM, 4 cells each, learning rate 0.02:

# %%
results = {}
for name, cell in {
    "peephole": LSTM(4, peephole=True, forget_bias=0.0),
    "standard": LSTM(4, forget_bias=0.0),
}.items():
    model = Model((cell,), output_size=lang.vocab_size, vocab_size=lang.vocab_size, embed_size=4)
    problem = formal.problem(
        lang,
        model,
        batch=10,
        optimizer=optim.adam(steps=STEPS, decay="linear", end=0.2),
        n_max_train=10,
    )
    config = engine.Config(
        steps=STEPS,
        eval_every=50,
        chunk_evals=8,
        target_metric="train_acc_strict",
        target=1.0,
        stop_on_target=False,
    )
    r = runs.train(
        problem, config, engine.members(SEEDS, {}, {"lr": 0.02, "forget_bias": 0.0}), progress=False
    )
    ranges = formal.generalization(model, r.state.params, lang, N_TEST)["strict"]
    results[name] = (model, r, ranges)
    solved = np.mean([s["reached"] is not None for s in r.summary])
    print(
        f"{name:9} solved n<=10: {solved:.0%}, generalization range median {np.median(ranges):g},"
        f" best {ranges.max()}, >= 10x: {np.mean(ranges >= 100):.0%}"
    )

# %% [markdown]
# Every seed's range, sorted (the `recurrax.plots` functions return a matplotlib `Figure`,
# which a notebook shows as the cell's result; `path=` also saves it):

# %%
plots.ranges({name: ranges for name, (_, _, ranges) in results.items()}, n_train=10)

# %% [markdown]
# ## Mechanics of the best peephole seed
# Gates, cell states and predictions along $a^8b^8c^8$, and the automatic counter report.

# %%
model, r, ranges = results["peephole"]
best = int(np.argmax(ranges))
params = jax.tree.map(lambda v: v[best], r.state.params)
text, layer, probs, legal = formal.mechanics_view(model, params, lang, 8)
fits = counters.fit_counters(layer["c"], text, lang.alphabet)
print(counters.report(fits))
plots.mechanics(
    text,
    layer,
    probs,
    legal,
    lang.vocab,
    title=f"peephole LSTM, seed {best}, range {ranges[best]}",
)
