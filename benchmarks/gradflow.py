"""‖∂L_T/∂h₀‖ for T = 1..200: recurrax's one call vs a per-T loop of ``jax.grad`` vs the
classic PyTorch notebook loop (one forward, then ``backward(retain_graph=True)`` per T).

LSTM with hidden 125, input 50, batch 32, L_T = ‖h_T‖₁. Prints wall times (median of
``--repeats``; compile time separately), the ratios, and recurrax's arithmetic rate. recurrax's
call gets the examples split over one JAX device per core (``jax.sharding``, data parallel),
as the studies use the whole machine; the ``jax.grad`` loop is the obvious one-device code.

recurrax's call is forward mode: K = 125 tangents per example pushed through every step, one
``[K·B, H] @ [H, 4H]`` matmul a step, ≈ 100 GFLOP for T = 200 — about the work of the T
backward passes themselves (Σ_T T ≈ 20,000 step-backwards), so the exact answer is bound by
matmul throughput: on a 2-core CPU that measures ~210 GFLOP/s on a 1024³ matmul it cannot take
less than ~0.5 s, whatever the implementation. ``python benchmarks/gradflow.py``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from recurrax import cli, interop  # noqa: E402

cli.use_all_cores()  # one JAX device per core, as the studies do
from recurrax.analysis import gradflow  # noqa: E402

INPUT, HIDDEN, BATCH = 50, 125, 32


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--T", type=int, default=200, help="largest horizon (default 200)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(INPUT, HIDDEN, batch_first=True)
    cell, (params,) = interop.from_torch(lstm)
    xs_np = np.random.default_rng(0).normal(size=(BATCH, args.T, INPUT)).astype(np.float32)
    xs = jnp.asarray(xs_np)

    # recurrax: one compiled call, the examples split over all cores (data parallel: each
    # example's tangents are independent), the params replicated
    one_call = jax.jit(lambda p, x: gradflow.gradient_flow(cell, p, x).per_example)
    mesh = jax.make_mesh((jax.device_count(),), ("batch",))
    xs_split = jax.device_put(xs, jax.NamedSharding(mesh, jax.P("batch")))
    params_all = jax.device_put(params, jax.NamedSharding(mesh, jax.P()))
    t0 = time.perf_counter()
    ours = np.asarray(one_call(params_all, xs_split))
    compile_s = time.perf_counter() - t0
    t_ours = median_time(lambda: one_call(params_all, xs_split).block_until_ready(), args.repeats)

    # per-T loop of jax.grad (one compiled function, T calls)
    def naive():
        return np.asarray(gradflow.naive_gradient_norms(cell, params, xs))

    naive()
    t_naive = median_time(naive, 1)

    # the PyTorch notebook loop
    def torch_loop():
        x = torch.from_numpy(xs_np)
        h0 = torch.zeros(1, BATCH, HIDDEN, requires_grad=True)
        c0 = torch.zeros(1, BATCH, HIDDEN)
        out, _ = lstm(x, (h0, c0))
        norms = []
        for t in range(args.T):
            (g,) = torch.autograd.grad(out[:, t].abs().sum(), h0, retain_graph=True)
            norms.append(g[0].norm(dim=-1))
        return torch.stack(norms, 1).numpy()

    ref = torch_loop()
    t_torch = median_time(torch_loop, args.repeats)
    ok = ref > 1e-15
    agree = np.max(np.abs(ours[ok] - np.log10(ref[ok])))
    print(
        f"T = 1..{args.T}, LSTM hidden {HIDDEN}, input {INPUT}, batch {BATCH}, "
        f"{os.cpu_count()} cores"
    )
    flops = 2 * args.T * HIDDEN * BATCH * HIDDEN * 4 * HIDDEN  # the tangent matmuls
    print(
        f"  recurrax one call     {t_ours:8.3f} s  (batch over {jax.device_count()} devices; "
        f"compile {compile_s:.1f} s; tangent matmuls {flops / 1e9:.0f} GFLOP, "
        f"{flops / t_ours / 1e9:.0f} GFLOP/s)"
    )
    print(
        f"  jax.grad per-T loop   {t_naive:8.3f} s  -> recurrax is {t_naive / t_ours:.1f}x faster"
    )
    print(
        f"  torch retain_graph    {t_torch:8.3f} s  -> recurrax is {t_torch / t_ours:.1f}x faster"
    )
    print(
        f"  max |log10 difference| to torch where torch > 1e-15: {agree:.1e}; "
        f"torch hits exact 0 at {int((ref == 0).sum())} of {ref.size} entries"
    )


if __name__ == "__main__":
    main()
