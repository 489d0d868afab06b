"""Why the LSTM learns what the vanilla RNN cannot: ‖∂L_T/∂h₀‖ as the horizon T grows.

The forget-gate analysis: a loss L_T = ‖h_T‖₁ at step T, its gradient with respect to the
initial hidden state, for a tanh RNN, the original LSTM without forget gate, and LSTMs with
forget-gate bias +1, 0, −1 (input 50, hidden 125, batch 32, random input embeddings), over 16
initialization seeds at once. Prints the gradient norm at several T (median and the 25–75%
spread over seeds) and the fitted per-step decay next to the σ(b_f) prediction; plots the
curves on a log scale and, in a second figure, the gradient retention ∂(output at T)/∂x₀ for
RNN, GRU and LSTM. Writes gradflow.json, gradflow.png and retention.png.

    recurrax gradflow [--T 100] [--forget-bias 1 0 -1] [--seeds 16] [--out DIR]

Nothing here trains, so there is nothing to resume: a run takes about a minute.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from recurrax import GRU, LSTM, RNN, cli, engine, runs
from recurrax.analysis import gradflow
from recurrax.plots import flow_curves

INPUT, HIDDEN, BATCH, VOCAB = 50, 125, 32, 65
RESUMABLE = False  # nothing trains: an interrupted run is simply started again
REPORT_T = (1, 10, 25, 50, 100)


def inputs(key, T: int, embeddings: np.ndarray | None = None):
    """``[B, T, INPUT]``: random tokens through an embedding table (random N(0, 1) entries
    unless ``embeddings`` gives a trained one)."""
    k1, k2 = jax.random.split(key)
    table = jax.random.normal(k1, (VOCAB, INPUT)) if embeddings is None else jnp.asarray(embeddings)
    return table[jax.random.randint(k2, (BATCH, T), 0, table.shape[0])]


def cells(biases: list[float]) -> dict[str, object]:
    out = {"rnn-tanh": RNN(HIDDEN), "lstm-noforget": LSTM(HIDDEN, forget_gate=False)}
    out |= {f"lstm b_f={b:+g}": LSTM(HIDDEN, forget_bias=b) for b in biases}
    return out


def flows(cell, seeds: int, xs, wrt: str = "h0") -> np.ndarray:
    """Batch-mean log10 gradient norm ``[seeds, T]``, all seeds in one vmapped call."""
    keys = jax.random.split(jax.random.key(1), seeds)
    params = jax.vmap(lambda k: cell.init(k, xs.shape[-1]))(keys)
    mesh = engine.member_mesh(seeds)  # the seeds split over all cores, as the sweeps are
    if mesh is not None:
        params = jax.device_put(params, jax.NamedSharding(mesh, jax.P("members")))
    run = jax.jit(jax.vmap(lambda p: gradflow.gradient_flow(cell, p, xs, wrt=wrt).mean))
    return np.asarray(run(params))


def build_parser() -> cli.Parser:
    ap = cli.Parser(
        prog="recurrax gradflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--T", type=cli.positive_int, default=100, help="largest horizon T (100)")
    ap.add_argument(
        "--forget-bias",
        type=cli.finite_float,
        nargs="+",
        default=[1.0, 0.0, -1.0],
        help="forget-gate biases to compare (default 1 0 -1)",
    )
    ap.add_argument("--seeds", type=cli.positive_int, default=16, help="initialization seeds (16)")
    ap.add_argument(
        "--retention-T",
        type=cli.positive_int,
        default=200,
        help="longest sequence of the retention study (default 200)",
    )
    ap.add_argument(
        "--embeddings",
        type=Path,
        help="a .npy [V, 50] embedding table (e.g. from a trained char-LM) instead "
        "of random embeddings",
    )
    ap.add_argument("--out", type=Path, help="output folder (default runs/gradflow/TIME)")
    return ap


def read_embeddings(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    try:
        embeddings = np.load(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read --embeddings {path}: {err}") from None
    if embeddings.ndim != 2 or embeddings.shape[1] != INPUT:
        raise ValueError(f"--embeddings must be [V, {INPUT}], got {list(embeddings.shape)}")
    return embeddings


def forget_gate_study(args, xs, out) -> dict:
    shown = [t for t in REPORT_T if t <= args.T]
    print(
        f"log10 ||dL_T/dh0||, L_T = ||h_T||_1; input {INPUT}, hidden {HIDDEN}, batch {BATCH}, "
        f"median [25%, 75%] over {args.seeds} seeds"
    )
    print(
        f"{'cell':<16}"
        + "".join(f"{'T=' + str(t):>20}" for t in shown)
        + f"{'decay/step':>12}{'sigma(b_f)':>11}"
    )
    results = {}
    for name, cell in cells(args.forget_bias).items():
        r = gradflow.summarize(flows(cell, args.seeds, xs[:, : args.T]))
        r["sigma_bf"] = pred = gradflow.forget_gate_decay(cell)
        results[name] = r
        med, lo, hi = r["median"], r["q25"], r["q75"]
        row = "".join(f"{med[t - 1]:>8.1f} [{lo[t - 1]:>5.1f},{hi[t - 1]:>5.1f}]" for t in shown)
        rate = f"{r['decay_per_step']:>12.3f}{'' if pred is None else f'{pred:.3f}':>11}"
        print(f"{name:<16}{row}{rate}")
    flow_curves(
        {k: np.asarray(v["median"]) for k, v in results.items()},
        {k: (np.asarray(v["q25"]), np.asarray(v["q75"])) for k, v in results.items()},
        ylabel="log10 ||dL_T/dh0||",
        title=f"forget-gate analysis (hidden {HIDDEN}, {args.seeds} seeds)",
        path=out / "gradflow.png",
    )
    return results


def retention_study(args, xs, out) -> dict:
    cells_ = {"rnn-tanh": RNN(HIDDEN), "gru": GRU(HIDDEN), "lstm b_f=+1": LSTM(HIDDEN)}
    retention = {
        name: np.median(flows(cell, args.seeds, xs[:, : args.retention_T], wrt="x0"), 0)
        for name, cell in cells_.items()
    }
    lengths = [t for t in (10, 25, 50, 100, 150, 200) if t <= args.retention_T]
    print("\ngradient retention log10 ||d(L at T)/dx0|| vs sequence length (median over seeds)")
    print(f"{'cell':<16}" + "".join(f"{'T=' + str(t):>9}" for t in lengths))
    for name, curve in retention.items():
        print(f"{name:<16}" + "".join(f"{curve[t - 1]:>9.1f}" for t in lengths))
    flow_curves(
        retention,
        {},
        ylabel="log10 ||d(L at T)/dx0||",
        title="gradient retention vs sequence length",
        path=out / "retention.png",
    )
    return {k: v.tolist() for k, v in retention.items()}


def main(argv: Sequence[str] | None = None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.T < 2 or args.retention_T < 10:
        ap.error("need --T >= 2 and --retention-T >= 10")
    embeddings = read_embeddings(args.embeddings)
    args.resume = False
    out = cli.study_folder(args, "gradflow")
    xs = inputs(jax.random.key(0), max(args.T, args.retention_T), embeddings)
    t0 = time.perf_counter()
    h0 = forget_gate_study(args, xs, out)
    retention = retention_study(args, xs, out)
    sizes = {"T": args.T, "seeds": args.seeds, "hidden": HIDDEN, "input": INPUT, "batch": BATCH}
    wall = time.perf_counter() - t0
    payload = sizes | {"h0": h0, "retention": retention, "wall_time_s": wall}
    runs.write_json(out / "gradflow.json", payload)
    print(f"\nwrote {out}/gradflow.json, gradflow.png, retention.png ({wall:.0f} s)")
