"""Char-LM training step: recurrax vs PyTorch's fused ``nn.LSTM`` vs Flax ``OptimizedLSTMCell``.

Embedding 64 -> LSTM (H = 256, 1 and 2 layers) -> readout to 65 symbols, B = 32, T = 128,
cross-entropy, Adam. All three in one process on the same sizes; prints tokens/s (median of
``--repeats`` timed steps), ratios, achieved GFLOP/s against a measured matmul peak, and
compile time. GFLOP/s counts the model's matmuls as written (embedding lookup, then every
step's input projection), as model-FLOP utilization does; recurrax projects the 65 embedding
rows once instead (``recurrax.Tokens``), 1.6 of the 8.5 GFLOP of a 1-layer step fewer.

PyTorch's CPU LSTM runs each step's matmuls on all cores; XLA runs the small per-step
matmuls of a scan on one thread. JAX's answer is its own multi-device engine: the script sets
up the machine as the study commands do (:func:`recurrax.cli.use_all_cores`: one host device
per core, and glibc's malloc keeping freed memory, which every row in this process shares,
torch's too) and the JAX rows marked "sharded" split the batch over the devices with
``jax.sharding`` (data parallel, the same program and numbers). Both the 1-device and the
sharded rows are printed.

On a GPU machine (jax with CUDA, torch with CUDA) the same script times torch's cuDNN
``nn.LSTM`` on the GPU and adds a ``jax.experimental.rnn`` (cuDNN) row; none was lent to this
project yet, so those rows have not run.

    python benchmarks/lstm_step.py [--layers 1 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import recurrax  # noqa: E402
from recurrax import cli  # noqa: E402

cli.use_all_cores()  # as the study commands: one JAX device per core, freed memory kept

V, E, H, B, T = 65, 64, 256, 32, 128
# On a GPU machine the torch peer runs on the GPU (cuDNN) and jax.experimental.rnn is added.
TORCH_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def timed(step, repeats: int) -> tuple[float, float]:
    """(compile-or-first-call seconds, median seconds per step)."""
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T), dtype=np.int32), rng.integers(0, V, (B, T), dtype=np.int32)


def jax_step(apply, params, sharded: bool = False):
    opt = optax.adam(1e-3)

    def loss_fn(params, x, y):
        logits = apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    x, y = map(jnp.asarray, data())
    if sharded:  # batch split over all host devices, params replicated
        mesh = jax.make_mesh(
            (jax.device_count(),), ("batch",), axis_types=(jax.sharding.AxisType.Auto,)
        )
        x, y = (jax.device_put(a, jax.NamedSharding(mesh, jax.P("batch"))) for a in (x, y))
        params = jax.device_put(params, jax.NamedSharding(mesh, jax.P()))
    state = [params, opt.init(params)]

    def run():
        state[0], state[1], loss = step(state[0], state[1], x, y)
        loss.block_until_ready()

    return run


def recurrax_step(layers: int, sharded: bool = False):
    model = recurrax.Model(
        cells=(recurrax.LSTM(H),) * layers, output_size=V, vocab_size=V, embed_size=E
    )
    params = model.init(jax.random.key(0))
    return jax_step(lambda p, x: model.apply(p, x)[0], params, sharded)


class FlaxLM(nn.Module):
    layers: int

    @nn.compact
    def __call__(self, x):
        h = nn.Embed(V, E)(x)
        for _ in range(self.layers):
            h = nn.RNN(nn.OptimizedLSTMCell(H))(h)
        return nn.Dense(V)(h)


def flax_step(layers: int, sharded: bool = False):
    module = FlaxLM(layers)
    params = module.init(jax.random.key(0), jnp.zeros((B, T), jnp.int32))
    return jax_step(module.apply, params, sharded)


def torch_step(layers: int):
    torch.manual_seed(0)
    emb, lstm, head = (
        torch.nn.Embedding(V, E).to(TORCH_DEVICE),
        torch.nn.LSTM(E, H, layers, batch_first=True).to(TORCH_DEVICE),
        torch.nn.Linear(H, V).to(TORCH_DEVICE),
    )
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x, y = (torch.from_numpy(a).long().to(TORCH_DEVICE) for a in data())

    def run():
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(emb(x))
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        if TORCH_DEVICE == "cuda":
            torch.cuda.synchronize()

    return run


def cudnn_step(layers: int):
    """``jax.experimental.rnn.lstm`` (cuDNN's fused LSTM; GPU only) in the same model."""
    from jax.experimental import rnn

    k = jax.random.split(jax.random.key(0), 3)
    params = {
        "embed": jax.random.normal(k[0], (V, E)),
        "lstm": rnn.init_lstm_weight(k[1], E, H, layers, False),
        "W": jax.random.normal(k[2], (H, V)) / H**0.5,
        "b": jnp.zeros(V),
    }

    def apply(p, x):
        h0 = jnp.zeros((layers, x.shape[0], H))
        lengths = jnp.full((x.shape[0],), x.shape[1], jnp.int32)
        ys, _, _ = rnn.lstm(p["embed"][x], h0, h0, p["lstm"], lengths, E, H, layers, 0.0, False)
        return ys @ p["W"] + p["b"]

    return jax_step(apply, params)


def step_flops(layers: int) -> float:
    """Matmul FLOPs of one training step (backward = 2x forward)."""
    fwd = sum(2 * B * T * (i + H) * 4 * H for i in [E] + [H] * (layers - 1)) + 2 * B * T * H * V
    return 3 * fwd


def matmul_peak() -> float:
    """Measured float32 GFLOP/s of a 1024^3 jnp.dot on this machine."""
    a = jax.random.normal(jax.random.key(0), (1024, 1024))
    f = jax.jit(lambda a: a @ a)
    _, sec = timed(lambda: f(a).block_until_ready(), 20)
    return 2 * 1024**3 / sec / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="layer counts to run")
    ap.add_argument("--repeats", type=int, default=20, help="timed steps per framework")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    peak = matmul_peak()
    print(
        f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} cores, torch on "
        f"{TORCH_DEVICE} ({torch.get_num_threads()} threads), matmul peak {peak:.0f} GFLOP/s"
    )
    print(
        f"{'layers':>6} {'framework':<26} {'tokens/s':>10} {'GFLOP/s':>8} {'%peak':>6} "
        f"{'compile s':>9}"
    )
    for layers in args.layers:
        results = {}
        n = jax.device_count()
        rows = [
            ("recurrax", recurrax_step),
            (f"recurrax sharded x{n}", partial(recurrax_step, sharded=True)),
            ("torch nn.LSTM", torch_step),
            ("flax OptimizedLSTMCell", flax_step),
            (f"flax sharded x{n}", partial(flax_step, sharded=True)),
        ]
        if jax.default_backend() == "gpu":
            rows.append(("jax.experimental.rnn", cudnn_step))
        for name, make in rows:
            first, sec = timed(make(layers), args.repeats)
            results[name] = B * T / sec
            gflops = step_flops(layers) / sec / 1e9
            print(
                f"{layers:>6} {name:<26} {B * T / sec:>10,.0f} {gflops:>8.1f} "
                f"{100 * gflops / peak:>5.0f}% {first:>9.2f}"
            )
        torch_r, flax_r = results["torch nn.LSTM"], results["flax OptimizedLSTMCell"]
        for name in ("recurrax", f"recurrax sharded x{n}"):
            r = results[name]
            print(
                f"{layers:>6} {name}: {r / torch_r:.2f}x torch, {r / flax_r:.2f}x flax, "
                f"{r / results[f'flax sharded x{n}']:.2f}x flax sharded"
            )


if __name__ == "__main__":
    main()
