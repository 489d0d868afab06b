# %% [markdown]
# # 04 · Gradient flow
#
# ‖∂L_T/∂h₀‖ with L_T = ‖h_T‖₁ for every T in one call: a tanh RNN vanishes, an LSTM's decay
# is set by its forget-gate bias, the LSTM without forget gate keeps it.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from recurrax import GRU, LSTM, RNN
from recurrax.analysis import gradflow

QUICK = os.environ.get("RECURRAX_QUICK") == "1"
T, H, SEEDS, B = (20, 16, 2, 4) if QUICK else (100, 125, 16, 16)
xs = jax.random.normal(jax.random.key(0), (B, T, 20))

# %%
cells = {
    "tanh RNN": RNN(H),
    "LSTM, no forget gate": LSTM(H, forget_gate=False),
    "LSTM b_f=+1": LSTM(H, forget_bias=1.0),
    "LSTM b_f=0": LSTM(H, forget_bias=0.0),
    "LSTM b_f=-1": LSTM(H, forget_bias=-1.0),
}
plt.figure(figsize=(7, 4))
for name, cell in cells.items():
    params = jax.vmap(lambda k: cell.init(k, 20))(jax.random.split(jax.random.key(1), SEEDS))
    curves = jax.vmap(lambda p: gradflow.gradient_flow(cell, p, xs).mean)(params)
    median = np.median(curves, 0)
    plt.plot(np.arange(1, T + 1), median, label=name)
    print(
        f"{name:22} log10 ||dL/dh0|| at T={T}: {median[-1]:7.1f}, "
        f"decay per step {gradflow.decay_rate(median, 2):.3f}"
    )
plt.xlabel("T")
plt.ylabel("log10 ||dL_T/dh0||")
plt.legend()

# %% [markdown]
# ## Gradient clipping
# Clipping rescales the whole gradient when its norm exceeds a threshold; it tames exploding
# gradients but cannot revive vanishing ones: the *direction* (and the vanished long-range
# part) is unchanged.

# %%
g = {"near": jnp.array([30.0, 40.0]), "far": jnp.array([1e-9, 0.0])}
clipped, _ = optax.clip_by_global_norm(1.0).update(g, optax.clip_by_global_norm(1.0).init(g))
print("norm before", float(optax.global_norm(g)), "after", float(optax.global_norm(clipped)))
print(
    "far/near ratio before",
    float(g["far"][0] / g["near"][0]),
    "after",
    float(clipped["far"][0] / clipped["near"][0]),
)

# %% [markdown]
# ## Retention: ∂(L at T)/∂x₀ against sequence length

# %%
plt.figure(figsize=(7, 4))
for name, cell in {"tanh RNN": RNN(H), "GRU": GRU(H), "LSTM": LSTM(H)}.items():
    params = cell.init(jax.random.key(2), 20)
    flow = gradflow.gradient_flow(cell, params, xs, wrt="x0")
    plt.plot(np.arange(1, T + 1), flow.mean, label=name)
plt.xlabel("sequence length T")
plt.ylabel("log10 ||d(L at T)/dx0||")
plt.legend()
