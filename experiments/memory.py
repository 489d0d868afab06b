"""Memory tasks: copy, copy-vector, adding, sequential XOR — RNN vs GRU vs LSTM over seeds.

Each cell type trains all its seeds in one compiled program (recurrax.train); every delay T in
``--T`` is its own run. Prints one table per T (final loss mean ± std over seeds and best, the
memoryless baseline, the fraction of seeds that beat it clearly, i.e. reach <= 10% of it, the
first evaluation at which the median seed does so with the wall time to it, and the task's
accuracy), then, for a length sweep, where each cell stops beating the baseline.
Writes results.json and one learning-curve PNG per T (median and 25-75% band per cell, the
baseline dashed) to the run folder.

    python experiments/memory.py adding --T 100 200
    python experiments/memory.py copy --T 100 --cells lstm gru --hidden 64
    python experiments/memory.py xor --T 50 --parity
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recurrax import Model, cli
from recurrax import train as engine
from recurrax.cells import CELL_NAMES, from_name
from recurrax.plots import band_curves
from recurrax.tasks import memory

CLEAR = 0.1  # "beats the baseline clearly": final loss <= 10% of the baseline
DEFAULTS = {  # per task: T, hidden, lr, steps, batch
    "copy": dict(T=[100], hidden=64, lr=2e-3, steps=3000, batch=32),
    "copy-vector": dict(T=[50], hidden=32, lr=3e-3, steps=1500, batch=32),
    "adding": dict(T=[100], hidden=64, lr=1e-2, steps=3000, batch=32),
    "xor": dict(T=[50], hidden=16, lr=1e-2, steps=1000, batch=32),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("task", choices=memory.TASKS, help="which memory task")
    ap.add_argument(
        "--T",
        type=int,
        nargs="+",
        help="delays / lengths; several make a length "
        "sweep (defaults: copy 100, copy-vector 50, adding 100, xor 50)",
    )
    ap.add_argument(
        "--cells",
        nargs="+",
        default=["rnn-tanh", "gru", "lstm"],
        choices=CELL_NAMES,
        help="cells to compare (default rnn-tanh gru lstm)",
    )
    ap.add_argument("--hidden", type=int, help="hidden units (task default otherwise)")
    ap.add_argument("--seeds", type=int, default=16, help="seeds per cell (default 16)")
    ap.add_argument("--steps", type=int, help="training steps (task default otherwise)")
    ap.add_argument("--batch", type=int, help="sequences per step (default 32)")
    ap.add_argument(
        "--lr", type=float, help="Adam learning rate, cosine decay to 0.1x (task default otherwise)"
    )
    ap.add_argument("--clip", type=float, default=1.0, help="global-norm clip (default 1)")
    ap.add_argument(
        "--hs1997", action="store_true", help="adding: Hochreiter & Schmidhuber's 1997 form"
    )
    ap.add_argument("--parity", action="store_true", help="xor: temporal parity instead")
    ap.add_argument(
        "--chrono",
        action="store_true",
        help="LSTM gate biases by chrono initialization (Tallec & Ollivier 2018) with t_max = "
        "the sequence length; other cells unchanged",
    )
    ap.add_argument("--out", type=Path, help="run folder (default runs/memory/TASK-TIME)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    d = DEFAULTS[args.task]
    Ts = args.T or d["T"]
    hidden, steps = args.hidden or d["hidden"], args.steps or d["steps"]
    lr, batch = args.lr or d["lr"], args.batch or d["batch"]
    for name, v in (("seeds", args.seeds), ("hidden", hidden), ("steps", steps), ("batch", batch)):
        if v < 1:
            ap.error(f"--{name} must be at least 1")
    try:
        tasks = [memory.Task(args.task, T, hs1997=args.hs1997, parity=args.parity) for T in Ts]
    except ValueError as err:
        ap.error(str(err))
    out = args.out or Path("runs/memory") / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} already holds a run; choose another --out")
    results = {}
    t_start = time.perf_counter()
    for task in tasks:
        variant = ""
        if task.name == "xor" and task.parity:
            variant = " (temporal parity)"
        elif task.name == "adding" and task.hs1997:
            variant = " (1997 form)"
        chrono = ", chrono init" if args.chrono else ""
        print(
            f"\n{task.name}{variant} T={task.T} (length {task.length}), hidden {hidden}, "
            f"{args.seeds} seeds, {steps} steps, lr {lr:g}{chrono}; baseline loss "
            f"{task.baseline:.4f}"
        )
        header = (
            f"{'cell':<14}{'final loss':>20}{'best':>9}{'/baseline':>10}{'clear':>7}"
            f"{'median clear at':>18}"
        )
        acc_key = {"copy": "recall_acc", "xor": "acc"}.get(task.name)
        acc_key = "solved_frac" if task.hs1997 and task.name == "adding" else acc_key
        print(header + (f"{acc_key + ' (best)':>18}" if acc_key else "") + f"{'time':>8}")
        curves = {}
        for cell_name in args.cells:
            model = Model((from_name(cell_name, hidden),), **task.io)
            problem = memory.problem(task, model, batch=batch, steps=steps, chrono=args.chrono)
            config = engine.Config(
                steps=steps, eval_every=max(steps // 20, 1), chunk_evals=5, checkpoint_every=0
            )
            table = engine.members(args.seeds, {}, {"lr": lr, "clip": args.clip})
            t0 = time.perf_counter()
            r = engine.train(
                problem,
                config,
                table,
                progress=not args.no_progress,
                desc=f"{cell_name} T={task.T}",
            )
            secs = time.perf_counter() - t0
            final = np.array([s["final"]["loss"] for s in r.summary])
            clear = float(np.mean(final <= CLEAR * task.baseline))
            # first evaluation at which the median seed is clearly below the baseline, and the
            # wall time to it (pro rata of this cell's time, compilation included)
            median_curve = np.median(r.history["loss"], axis=1)
            hit = np.nonzero(median_curve <= CLEAR * task.baseline)[0]
            reached = int(r.history["step"][hit[0], 0]) if hit.size else None
            reached_s = secs * reached / steps if reached else None
            row = {
                "cell": cell_name,
                "final_mean": float(final.mean()),
                "final_std": float(final.std()),
                "best": float(final.min()),
                "median": float(np.median(final)),
                "clear_frac": clear,
                "median_clear_step": reached,
                "median_clear_s": reached_s,
                "per_seed": final.tolist(),
                "seconds": secs,
            }
            line = (
                f"{cell_name:<14}{final.mean():>11.4f} ± {final.std():<6.4f}"
                f"{final.min():>9.4f}{np.median(final) / task.baseline:>9.1%}{clear:>7.0%}"
                + (f"{reached:>9} ({reached_s:>4.0f}s)" if reached else f"{'-':>18}")
            )
            if acc_key:
                acc = np.array([s["final"][acc_key] for s in r.summary])
                row[acc_key] = acc.tolist()
                line += f"{acc.mean():>11.3f} ({acc.max():.3f})"
            print(line + f"{secs:>7.0f}s")
            results.setdefault(task.T, {})[cell_name] = row
            curves[cell_name] = (r.history["step"][:, 0], r.history["loss"])
        out.mkdir(parents=True, exist_ok=True)
        band_curves(
            curves,
            out / f"curves_T{task.T}.png",
            baseline=task.baseline,
            ylabel="loss",
            title=f"{task.name}, T={task.T}, {args.seeds} seeds (median, 25-75%)",
        )
    if len(tasks) > 1:
        print(f"\nlength sweep: T where the median seed reaches <= {CLEAR:.0%} of the baseline")
        for c in args.cells:
            ok = [t.T for t in tasks if results[t.T][c]["median"] <= CLEAR * t.baseline]
            beyond = [T for T in Ts if T not in ok]
            print(f"  {c:<14} beats it at T = {ok or '-'}; not at T = {beyond or '-'}")
    payload = {
        "task": args.task,
        "hidden": hidden,
        "steps": steps,
        "lr": lr,
        "batch": batch,
        "chrono": args.chrono,
        "seeds": args.seeds,
        "clear_threshold": CLEAR,
        "baselines": {t.T: t.baseline for t in tasks},
        "results": results,
        "wall_time_s": time.perf_counter() - t_start,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}/results.json and curves_T*.png ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    cli.run(main)
