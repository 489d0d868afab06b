# %% [markdown]
# # 05 · A character-level language model
#
# Stateful truncated BPTT on the embedded corpus (Python standard-library source), then samples
# at three temperatures. The same code trains on any UTF-8 file
# (`python experiments/charlm.py train --corpus FILE`).

# %%
import math
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from recurrax import LSTM, Model, engine, optim, runs
from recurrax.tasks import charlm

QUICK = os.environ.get("RECURRAX_QUICK") == "1"
STEPS, H, SEQ, SAMPLE = (30, 32, 32, 60) if QUICK else (1500, 256, 128, 120)
text, source = charlm.default_text()
corpus = charlm.build(text, source)
V = len(corpus.vocab)
print(source, "| vocabulary", V, "| uniform", round(math.log(V), 2), "nats/char")

# %%
model = Model((LSTM(H),) * 2, output_size=V, vocab_size=V, embed_size=64)
problem = charlm.problem(
    corpus,
    model,
    batch=32,
    seq=SEQ,
    optimizer=optim.adam(steps=STEPS, decay="cosine", end=0.1, warmup=min(100, STEPS), clip=True),
)
config = engine.Config(steps=STEPS, eval_every=STEPS // 3, chunk_evals=1)
result = runs.train(
    problem, config, engine.members([0], {}, {"lr": 3e-3, "clip": 1.0}), progress=False
)
print("validation:", [round(v, 3) for v in result.history["val_nats"][:, 0]], "nats/char")
plt.plot(result.history["step"][:, 0], result.history["val_bits"][:, 0], marker="o")
plt.xlabel("step")
plt.ylabel("validation bits/char")

# %%
params = jax.tree.map(lambda v: v[0], result.state.params)
prompt = jnp.asarray(charlm.encode(corpus.vocab, "def "))
for temperature in (0.5, 0.8, 1.2):
    tokens = charlm.generate(model, params, prompt, SAMPLE, jax.random.key(0), temperature)
    print(f"--- temperature {temperature}\ndef " + "".join(corpus.vocab[int(t)] for t in tokens))
