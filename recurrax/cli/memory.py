"""Memory tasks: copy, copy-vector, adding, sequential XOR — RNN vs GRU vs LSTM over seeds.

Each cell trains all its seeds (x learning rates) in one compiled program; every delay T in
``--T`` is its own part of the study. Prints one table per T: final loss mean ± std over
members and best, median / memoryless baseline, the fraction of members that beat it clearly
(<= 10% of it), the first evaluation at which the median member does so with the wall time to
it, and the task's accuracy; then, for a length sweep, where each cell stops beating the
baseline. The study folder holds one run folder per T and cell (resumable), results.json,
results.csv and one learning-curve PNG per T.

    recurrax memory adding --T 100 200
    recurrax memory copy --T 100 --cells lstm gru --hidden 64
    recurrax memory xor --T 50 --parity
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence

import numpy as np

from recurrax import Model, cli, engine, optim, plots, runs
from recurrax.analysis.curves import first_median_below, spread
from recurrax.cells import CELL_NAMES, from_name
from recurrax.tasks import memory

CLEAR = 0.1  # "beats the baseline clearly": loss <= 10% of the baseline
DEFAULTS = {  # per task: T, hidden, lr, steps
    "copy": dict(T=[100], hidden=64, lr=[2e-3], steps=3000),
    "copy-vector": dict(T=[50], hidden=32, lr=[3e-3], steps=1500),
    "adding": dict(T=[100], hidden=64, lr=[1e-2], steps=3000),
    "xor": dict(T=[50], hidden=16, lr=[1e-2], steps=1000),
}


def build_parser() -> cli.Parser:
    ap = cli.Parser(
        prog="recurrax memory",
        description=__doc__,
        formatter_class=cli.argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("task", choices=list(memory.TASKS), help="which memory task")
    ap.add_argument(
        "--T",
        type=cli.positive_int,
        nargs="+",
        help="delays; several make a "
        "length sweep (defaults: copy 100, copy-vector 50, adding 100, xor 50)",
    )
    ap.add_argument(
        "--cells",
        nargs="+",
        default=["rnn-tanh", "gru", "lstm"],
        choices=CELL_NAMES,
        help="cells compared (default rnn-tanh gru lstm)",
    )
    ap.add_argument("--hidden", type=cli.positive_int, help="hidden units (task default)")
    ap.add_argument("--seeds", type=cli.positive_int, default=16, help="seeds per lr (16)")
    ap.add_argument("--steps", type=cli.positive_int, help="training steps (task default)")
    ap.add_argument("--batch", type=cli.positive_int, default=32, help="sequences per step (32)")
    ap.add_argument(
        "--lr",
        type=cli.positive_float,
        nargs="+",
        help="Adam learning rate(s), "
        "cosine decay to 0.1x; several are swept as members (task default)",
    )
    ap.add_argument("--clip", type=cli.positive_float, default=1.0, help="global-norm clip (1)")
    ap.add_argument(
        "--form",
        choices=["le2015", "hs1997"],
        default="le2015",
        help="adding: Le et al. 2015 / Arjovsky et al. form (default) or "
        "Hochreiter & Schmidhuber 1997, Experiment 4",
    )
    ap.add_argument("--parity", action="store_true", help="xor: temporal parity instead")
    ap.add_argument(
        "--chrono",
        action="store_true",
        help="LSTM gate biases by chrono "
        "initialization (Tallec & Ollivier 2018), t_max = the sequence length",
    )
    cli.add_run_flags(ap, "memory")
    return ap


def make_task(args, T: int) -> memory.Task:
    kw = {"adding": {"form": args.form}, "xor": {"parity": args.parity}}.get(args.task, {})
    return memory.TASKS[args.task](T, **kw)


def run_cell(args, task: memory.Task, cell_name: str, out) -> dict:
    """Train one cell's members on one task (resumable) and summarize them."""
    model = Model((from_name(cell_name, args.hidden),), **task.io)
    opt = optim.adam(steps=args.steps, decay="cosine", end=0.1, clip=True)
    problem = memory.problem(task, model, batch=args.batch, optimizer=opt, chrono=args.chrono)
    config = engine.Config(steps=args.steps, eval_every=max(args.steps // 20, 1), chunk_evals=5)
    table = engine.members(args.seeds, {"lr": args.lr}, {"lr": args.lr[0], "clip": args.clip})
    t0 = time.perf_counter()
    r = runs.train(
        problem,
        config,
        table,
        out=out,
        run=vars_of(args),
        model=model,
        resume=args.resume,
        progress=not args.no_progress,
        desc=f"{cell_name} T={task.T}",
    )
    secs = time.perf_counter() - t0
    final = np.array([s["final"]["loss"] for s in r.summary])
    steps = r.history["step"][:, 0]
    clear_step = first_median_below(steps, r.history["loss"], CLEAR * task.baseline)
    row = {
        "cell": cell_name,
        **spread(final),
        "clear_frac": float(np.mean(final <= CLEAR * task.baseline)),
        "median_clear_step": clear_step,
        "median_clear_s": secs * clear_step / args.steps if clear_step else None,
        "per_member": final.tolist(),
        "seconds": secs,
        "steps": steps.tolist(),
        "loss_curves": r.history["loss"].tolist(),
    }
    if task.accuracy:
        row[task.accuracy] = [s["final"][task.accuracy] for s in r.summary]
    return row


def vars_of(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("out", "resume", "no_progress")}


def print_table(task: memory.Task, rows: list[dict], args) -> None:
    print(
        f"\n{task.title} (length {task.length}), hidden {args.hidden}, {args.seeds} seeds x lr "
        f"{args.lr}, {args.steps} steps{', chrono init' if args.chrono else ''}; baseline loss "
        f"{task.baseline:.4f}"
    )
    acc = f"{task.accuracy + ' (best)':>18}" if task.accuracy else ""
    print(
        f"{'cell':<14}{'final loss':>20}{'best':>9}{'/baseline':>10}{'clear':>7}"
        f"{'median clear at':>18}{acc}{'time':>8}"
    )
    for row in rows:
        at = row["median_clear_step"]
        line = (
            f"{row['cell']:<14}{row['mean']:>11.4f} ± {row['std']:<6.4f}{row['min']:>9.4f}"
            f"{row['median'] / task.baseline:>9.1%}{row['clear_frac']:>7.0%}"
            + (f"{at:>9} ({row['median_clear_s']:>4.0f}s)" if at else f"{'-':>18}")
        )
        if task.accuracy:
            a = np.asarray(row[task.accuracy])
            line += f"{a.mean():>11.3f} ({a.max():.3f})"
        print(line + f"{row['seconds']:>7.0f}s")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    d = DEFAULTS[args.task]
    args.T, args.hidden, args.steps, args.lr = (
        args.T or d["T"],
        args.hidden or d["hidden"],
        args.steps or d["steps"],
        args.lr or d["lr"],
    )
    tasks = [make_task(args, T) for T in args.T]
    out = cli.study_folder(args, "memory")
    t_start, results = time.perf_counter(), {}
    for task in tasks:
        rows = [
            cli.finished(
                out / f"T{task.T}" / f"{c}.json",
                lambda c=c: run_cell(args, task, c, out / f"T{task.T}" / c),
            )
            for c in args.cells
        ]
        results[task.T] = {"baseline": task.baseline, "rows": rows}
        print_table(task, rows, args)
        curves = {r["cell"]: (np.asarray(r["steps"]), np.asarray(r["loss_curves"])) for r in rows}
        plots.band_curves(
            curves,
            baseline=task.baseline,
            title=f"{task.title}, {args.seeds} seeds (median, 25-75%)",
            path=out / f"curves_T{task.T}.png",
        )
    if len(tasks) > 1:
        print_sweep(results, args.cells)
    write_results(out, args, results, time.perf_counter() - t_start)


COLUMNS = ("mean", "std", "min", "median", "clear_frac", "median_clear_step")


def print_sweep(results: dict, cells: list[str]) -> None:
    print(f"\nlength sweep: T where the median member reaches <= {CLEAR:.0%} of the baseline")
    for c in cells:
        rows = {T: next(x for x in r["rows"] if x["cell"] == c) for T, r in results.items()}
        ok = [T for T, x in rows.items() if x["median"] <= CLEAR * results[T]["baseline"]]
        no = [T for T in results if T not in ok]
        print(f"  {c:<14} beats it at T = {ok or '-'}; not at T = {no or '-'}")


def write_results(out, args, results: dict, wall: float) -> None:
    payload = {"task": args.task, "flags": vars_of(args), "clear_threshold": CLEAR}
    runs.write_json(out / "results.json", payload | {"results": results, "wall_time_s": wall})
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["T", "cell", "baseline", *COLUMNS])
        for T, r in results.items():
            w.writerows([T, x["cell"], r["baseline"], *(x[k] for k in COLUMNS)] for x in r["rows"])
    print(f"\nwrote {out}/results.json, results.csv and curves_T*.png ({wall:.0f} s)")
