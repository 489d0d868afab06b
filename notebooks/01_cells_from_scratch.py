# %% [markdown]
# # 01 · Cells from scratch
#
# Every recurrax cell is a pair of pure functions (`init`, `step`) over a plain dict of
# arrays. This notebook puts each cell's equations next to its step, counts parameters,
# checks an LSTM against `torch.nn.LSTM` and draws a hidden state over time.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import recurrax
from recurrax import GRU, LSTM, RNN

QUICK = os.environ.get("RECURRAX_QUICK") == "1"

# %% [markdown]
# **Elman RNN**: $h' = \tanh(x W_{ih} + h W_{hh} + b)$.
# **GRU** (PyTorch convention): $r, z = \sigma(\cdot)$, $n = \tanh(x W_{in} + b_n + r \odot
# (h W_{hn} + b_{hn}))$, $h' = (1-z) \odot n + z \odot h$.
# **LSTM**: $i, f, o = \sigma(\cdot)$, $g = \tanh(\cdot)$, $c' = f \odot c + i \odot g$,
# $h' = o \odot \tanh(c')$.

# %%
I, H = 10, 32
for cell, formula in [
    (RNN(H), "I*H + H*H + H"),
    (GRU(H), "3*(I*H + H*H + H) + H"),
    (LSTM(H), "4*(I*H + H*H + H)"),
]:
    params = cell.init(jax.random.key(0), I)
    count = sum(p.size for p in params.values())
    expected = eval(formula)
    print(
        f"{type(cell).__name__:5} params {count:6}  = {formula} = {expected}  "
        f"{ {k: v.shape for k, v in params.items()} }"
    )
    assert count == expected

# %% [markdown]
# The step is the equation. Here is the LSTM step written out by hand, checked against
# `LSTM.step`:

# %%
cell = LSTM(H, forget_bias=0.0)
p = cell.init(jax.random.key(1), I)
x = jax.random.normal(jax.random.key(2), (4, I))
h, c = jnp.zeros((4, H)), jnp.zeros((4, H))
z = x @ p["W_ih"] + h @ p["W_hh"] + p["b"]
i, f, g, o = jnp.split(z, 4, axis=-1)
c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
(state, y) = cell.step(p, recurrax.LSTMState(h, c), x)
print("max difference to LSTM.step:", float(jnp.abs(y - h_new).max()))
assert jnp.allclose(y, h_new, atol=1e-6)

# %% [markdown]
# ## Parity with `torch.nn.LSTM`
# `recurrax.interop.from_torch` converts the weights (transposes, sums the two biases).

# %%
import torch  # noqa: E402

from recurrax import interop  # noqa: E402

torch.manual_seed(0)
tl = torch.nn.LSTM(I, H, batch_first=True)
tcell, (tp,) = interop.from_torch(tl)
xs = np.random.default_rng(0).normal(size=(3, 12, I)).astype(np.float32)
ours = recurrax.unroll(tcell, tp, jnp.asarray(xs))[0]
theirs = tl(torch.from_numpy(xs))[0].detach().numpy()
print("max |recurrax - torch| =", float(np.abs(ours - theirs).max()))
assert np.allclose(ours, theirs, atol=1e-5)

# %% [markdown]
# ## A hidden state over time
# An LSTM reading a sine wave with a step in it; `unroll_internals` returns every gate.

# %%
T = 60 if QUICK else 200
t = np.linspace(0, 6 * np.pi, T)
signal = np.sin(t) + (t > 3 * np.pi)
xs = jnp.asarray(np.stack([signal] * I, -1)[None], jnp.float32)
ys, _, gates = recurrax.unroll_internals(cell, p, xs)
fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
axes[0].plot(signal)
axes[0].set_ylabel("input")
axes[1].imshow(np.asarray(ys[0]).T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
axes[1].set_ylabel("hidden unit")
axes[1].set_xlabel("time")
plt.tight_layout()
print("mean forget gate:", float(gates["f"].mean()))
