"""LSTMs learning aⁿbⁿcⁿ (and aⁿbⁿ, aⁿbᵐBᵐAⁿ, Dyck-1) after Gers & Schmidhuber (2001).

Next-symbol prediction on strings ^ aⁿbⁿcⁿ $ with n <= 10, many seeds and a small
hyperparameter grid in one compiled program per cell shape, then every member tested on
n = 1 ... n_test. Prints a summary per configuration, a table per seed of the best one, and
the paper's numbers; writes summary.json, members.csv, plots and the mechanics of the best
seed (gates, cell states, a counter report) to the run folder.

    python experiments/anbncn.py                      # the default study (~3 min on 2 CPU cores)
    python experiments/anbncn.py --compare            # LSTM variants vs GRU vs RNNs
    python experiments/anbncn.py --language anbn --grid none --hidden 2 --seeds 16
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from recurrax import Model, cli, plots
from recurrax import train as engine
from recurrax.analysis import counters
from recurrax.cells import CELL_NAMES, from_name
from recurrax.tasks import formal

# --- the defaults: the classic teaching setup ------------------------------------------------
LANGUAGE = "anbncn"
CELL = "lstm-peephole"  # Gers & Schmidhuber 2001: peepholes and forget gates
EMBED = 4
BATCH = 10
STEPS = 2000
EVAL_EVERY = 50
N_MAX_TRAIN = 10
SEEDS = 64
# swept in one run (hidden changes shapes: one compiled program per value)
GRID = "hidden=2,4 lr=0.02,0.05 forget_bias=0,1"
COMPARE = ("lstm-peephole", "lstm", "lstm-noforget", "gru", "rnn-tanh", "rnn-relu")
GRID_KEYS = ("hidden", "lr", "forget_bias")


def parse_grid(text: str) -> dict[str, list[float]]:
    if text.strip().lower() == "none":
        return {}
    grid = {}
    for item in text.split():
        name, _, values = item.partition("=")
        if name not in GRID_KEYS or not values:
            raise ValueError(
                f"--grid item {item!r}: expected NAME=V1,V2 with NAME in {list(GRID_KEYS)}"
            )
        try:
            grid[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"--grid item {item!r}: values must be numbers") from None
    return grid


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--language",
        default=LANGUAGE,
        choices=sorted(formal.LANGUAGES),
        help=f"the language to learn (default {LANGUAGE})",
    )
    ap.add_argument(
        "--cell", default=CELL, choices=CELL_NAMES, help=f"recurrent cell (default {CELL})"
    )
    ap.add_argument(
        "--hidden",
        type=int,
        help="memory cells per layer (default: the grid's "
        "values, else 2); overrides hidden in --grid",
    )
    ap.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    ap.add_argument(
        "--seeds",
        type=int,
        default=SEEDS,
        help=f"seeds per configuration, trained at once (default {SEEDS})",
    )
    ap.add_argument(
        "--lr",
        type=float,
        help="Adam learning rate, decaying linearly to 0.2x "
        "(default: the grid's values, else 0.05); overrides lr in --grid",
    )
    ap.add_argument(
        "--forget-bias",
        type=float,
        help="forget-gate bias at init (default: the "
        "grid's values, else 0); overrides forget_bias in --grid",
    )
    ap.add_argument("--steps", type=int, default=STEPS, help=f"training steps (default {STEPS})")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"strings per step (default {BATCH})")
    ap.add_argument(
        "--n-max-train",
        type=int,
        default=N_MAX_TRAIN,
        help=f"train on n = 1..N (default {N_MAX_TRAIN})",
    )
    ap.add_argument(
        "--n-test", type=int, help="test every n = 1..N (default: max(10 x n-max-train, 1000))"
    )
    ap.add_argument(
        "--grid",
        default=GRID,
        help="hyperparameters swept in one run, e.g. "
        f"'lr=0.01,0.05 hidden=2,4' over {list(GRID_KEYS)}; 'none' for no grid "
        f"(default '{GRID}')",
    )
    ap.add_argument(
        "--stop-on-solve",
        action="store_true",
        help="freeze a member once it solves the training range (the classic "
        "protocol); by default members keep training, which measured about twice "
        "as many far generalizers",
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help=f"run the same sweep for each of {list(COMPARE)} and print one table",
    )
    ap.add_argument(
        "--inspect",
        type=int,
        metavar="SEED",
        help="draw the mechanics of this seed of the best configuration (default: the best seed)",
    )
    ap.add_argument("--out", type=Path, help="run folder (default runs/anbncn/LANGUAGE-TIME)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its last checkpoints",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.n_test = args.n_test or max(10 * args.n_max_train, 1000)
    for name in ("seeds", "layers", "steps", "batch", "n_max_train"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.hidden is not None and args.hidden < 1:
        ap.error("--hidden must be at least 1")
    if args.n_test < args.n_max_train:
        ap.error(f"--n-test ({args.n_test}) must be at least --n-max-train ({args.n_max_train})")
    if args.resume and args.out is None:
        ap.error("--resume needs --out, the folder of the run to continue")
    try:
        args.grid = parse_grid(args.grid)
    except ValueError as err:
        ap.error(str(err))
    for name in GRID_KEYS:
        if getattr(args, name) is not None:
            args.grid.pop(name, None)
    if any(h < 1 or h != int(h) for h in args.grid.get("hidden", [])):
        ap.error("--grid hidden values must be positive integers")


def run_group(args, cell_name: str, hidden: int, out: Path) -> dict:
    """Train every seed x (lr, forget bias) point of one cell shape, then test them."""
    lang = formal.get(args.language)
    cell = from_name(cell_name, hidden, forget_bias=0.0)
    model = Model(
        (cell,) * args.layers,
        output_size=lang.vocab_size,
        vocab_size=lang.vocab_size,
        embed_size=EMBED,
    )
    problem = formal.problem(
        model, lang, n_max_train=args.n_max_train, batch=args.batch, steps=args.steps
    )
    grid = {k: v for k, v in args.grid.items() if k != "hidden"}
    if not getattr(cell, "forget_gate", False):
        grid.pop("forget_bias", None)  # meaningless without a forget gate
    defaults = {"lr": args.lr or 0.05, "forget_bias": args.forget_bias or 0.0}
    table = engine.members(args.seeds, grid, defaults)
    config = engine.Config(
        steps=args.steps,
        eval_every=EVAL_EVERY,
        chunk_evals=8,
        target_metric="train_acc",
        target=1.0,
        stop_on_target=args.stop_on_solve,
    )
    name = f"{cell_name}-h{hidden}"
    run_config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("resume", "no_progress", "inspect", "compare", "out")
    }
    run_config |= {"cell": cell_name, "hidden": hidden}
    t0 = time.perf_counter()
    result = engine.train(
        problem,
        config,
        table,
        out=out / name,
        run_config=run_config,
        resume=args.resume,
        progress=not args.no_progress,
        desc=name,
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    classic, strict = formal.generalization(model, result.state.params, lang, args.n_test)
    test_s = time.perf_counter() - t0
    for m, s in zip(result.summary, table):
        s["range"], s["strict_range"] = int(classic[m["member"]]), int(strict[m["member"]])
        s["solved_step"] = m["reached"]
        s["diverged_step"] = m["diverged"]
    print(
        f"{name}: {len(table)} members, {args.steps} steps trained in {train_s:.1f} s, "
        f"tested n <= {args.n_test} in {test_s:.1f} s",
        file=sys.stderr,
    )
    return {
        "name": name,
        "cell": cell_name,
        "hidden": hidden,
        "model": model,
        "table": table,
        "params": result.state.params,
        "train_s": train_s,
        "test_s": test_s,
    }


def config_rows(groups: list[dict], n_train: int) -> list[dict]:
    """Summary per (cell, hidden, lr, forget bias) point, in the paper's terms."""
    rows = []
    for g in groups:
        points: dict[tuple, list[dict]] = {}
        for m in g["table"]:
            points.setdefault((m["lr"], m["forget_bias"]), []).append(m)
        for (lr, fb), ms in points.items():
            r = np.array([m["range"] for m in ms])
            rows.append(
                {
                    "cell": g["cell"],
                    "hidden": g["hidden"],
                    "lr": lr,
                    "forget_bias": fb,
                    "seeds": len(ms),
                    "solved": float(np.mean([m["solved_step"] is not None for m in ms])),
                    "ge2x": float(np.mean(r >= 2 * n_train)),
                    "ge5x": float(np.mean(r >= 5 * n_train)),
                    "ge10x": float(np.mean(r >= 10 * n_train)),
                    "ge1000": int(np.sum(r >= 1000)),
                    "median": float(np.median(r)),
                    "best": int(r.max()),
                    "best_strict": int(max(m["strict_range"] for m in ms)),
                    "members": ms,
                    "group": g,
                }
            )
    return rows


def print_config_table(rows: list[dict], n_test: int) -> None:
    print(
        f"\n{'cell':<14}{'H':>3}{'lr':>6}{'b_f':>5}{'seeds':>6}{'solved':>8}{'>=2x':>7}"
        f"{'>=5x':>7}{'>=10x':>7}{'>=1000':>7}{'median':>8}{'best':>6}{'strict':>7}"
    )
    for r in rows:
        best = f"{r['best']}" + ("+" if r["best"] >= n_test else "")
        print(
            f"{r['cell']:<14}{r['hidden']:>3}{r['lr']:>6.3g}{r['forget_bias']:>5.3g}"
            f"{r['seeds']:>6}{100 * r['solved']:>7.0f}%{100 * r['ge2x']:>6.0f}%"
            f"{100 * r['ge5x']:>6.0f}%{100 * r['ge10x']:>6.0f}%{r['ge1000']:>7}"
            f"{r['median']:>8.1f}{best:>6}{r['best_strict']:>7}"
        )


def print_seed_table(row: dict) -> None:
    ms = row["members"]
    print(
        f"\nper seed, {row['cell']} H={row['hidden']} lr={row['lr']:g} "
        f"b_f={row['forget_bias']:g} (solve step, generalization range N, strict N):"
    )
    cells = [
        f"seed {m['seed']:>3}: {str(m['solved_step'] or '-'):>5} {m['range']:>5} "
        f"{m['strict_range']:>5}"
        for m in ms
    ]
    for i in range(0, len(cells), 4):
        print("   ".join(cells[i : i + 4]))


def mechanics(args, row: dict, out: Path) -> str:
    """Figures and counter report for one seed of the best configuration."""
    lang = formal.get(args.language)
    group, ms = row["group"], row["members"]
    pick = (
        max(ms, key=lambda m: (m["range"], m["strict_range"]))
        if args.inspect is None
        else next((m for m in ms if m["seed"] == args.inspect), None)
    )
    if pick is None:
        raise ValueError(f"--inspect {args.inspect}: no such seed (0..{args.seeds - 1})")
    index = group["table"].index(pick)
    params = jax.tree.map(lambda v: v[index], group["params"])
    model = group["model"]
    n_show = min(args.n_max_train, 8)
    tokens = formal.range_strings(lang, n_show, n_show)
    logits, _, inner = model.apply_internals(params, tokens)
    L = 3 * n_show + 2 if lang.name == "anbncn" else int(jnp.sum(tokens[0] != formal.PAD))
    text = lang.decode(tokens[0])[: L - 1]
    layer = {k: np.asarray(v[0, : L - 1]) for k, v in inner[-1].items()}
    legal = np.asarray(formal.legal_next(lang, tokens)[0, : L - 1])
    probs = np.asarray(jax.nn.sigmoid(logits[0, : L - 1]))
    tag = f"{group['name']} lr={pick['lr']:g} b_f={pick['forget_bias']:g} seed {pick['seed']}"
    plots.mechanics(
        text,
        layer,
        probs,
        legal,
        lang.vocab,
        out / "mechanics.png",
        title=f"{lang.name}, n={n_show}: {tag} (range {pick['range']})",
    )
    curves = []
    for n in (5, 10, 20, 40):
        toks = formal.range_strings(lang, n, n)
        _, _, inn = model.apply_internals(params, toks)
        length = int(jnp.sum(toks[0] != formal.PAD)) - 1
        key = "c" if "c" in inn[-1] else "h"
        curves.append((n, np.asarray(inn[-1][key][0, :length])))
    plots.states_by_length(curves, out / "states_by_length.png", title=tag)
    n_fit = 20
    toks = formal.range_strings(lang, n_fit, n_fit)
    _, _, inn = model.apply_internals(params, toks)
    length = int(jnp.sum(toks[0] != formal.PAD)) - 1
    key = "c" if "c" in inn[-1] else "h"
    fits = counters.fit_counters(
        np.asarray(inn[-1][key][0, :length]), lang.decode(toks[0])[:length], lang.alphabet
    )
    text = (
        f"counter report, {tag}, along n={n_fit} (state {key} of the last layer):\n"
        + counters.report(fits)
    )
    (out / "counters.txt").write_text(text + "\n")
    return text


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    check_args(ap, args)
    out = args.out or Path("runs/anbncn") / f"{args.language}-{time.strftime('%Y%m%d-%H%M%S')}"
    hiddens = [args.hidden] if args.hidden else [int(h) for h in args.grid.get("hidden", [2])]
    cells = COMPARE if args.compare else (args.cell,)
    if not args.resume and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    print(
        f"{args.language}: train n <= {args.n_max_train}, test n <= {args.n_test}; "
        f"cells {list(cells)}, hidden {hiddens}, grid {args.grid or 'none'}, "
        f"{args.seeds} seeds; run folder {out}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    groups = [run_group(args, c, h, out) for c in cells for h in hiddens]
    rows = config_rows(groups, args.n_max_train)
    print_config_table(rows, args.n_test)
    if args.compare:  # one line per cell: its best configuration
        print("\nper cell (best configuration):")
        for c in cells:
            best = max((r for r in rows if r["cell"] == c), key=lambda r: (r["best"], r["median"]))
            print(
                f"  {c:<14} best N {best['best']:>5}, median {best['median']:>6.1f}, "
                f"solved {100 * best['solved']:.0f}%, >=10x {100 * best['ge10x']:.0f}% "
                f"(H={best['hidden']}, lr={best['lr']:g}, b_f={best['forget_bias']:g})"
            )
    best_row = max(rows, key=lambda r: (r["best"], r["ge1000"], r["ge10x"], r["median"]))
    print_seed_table(best_row)
    all_ranges = np.array([m["range"] for r in rows for m in r["members"]])
    n = args.n_max_train
    print(
        f"\nsummary over {all_ranges.size} runs: "
        f"{np.mean([m['solved_step'] is not None for r in rows for m in r['members']]):.0%} "
        f"solve n <= {n}; generalize to >= 2x: {np.mean(all_ranges >= 2 * n):.0%}, "
        f">= 5x: {np.mean(all_ranges >= 5 * n):.0%}, >= 10x: {np.mean(all_ranges >= 10 * n):.0%}"
        f"; {int(np.sum(all_ranges >= 100))} runs reach N >= 100, "
        f"{int(np.sum(all_ranges >= 1000))} reach N >= 1000; median N {np.median(all_ranges):g}, "
        f"best N {all_ranges.max()}{'+' if all_ranges.max() >= args.n_test else ''} "
        f"(tested up to {args.n_test}); wall time {time.perf_counter() - t0:.0f} s"
    )
    report = mechanics(args, best_row, out)
    print("\n" + report)
    summary = {
        "language": args.language,
        "n_max_train": n,
        "n_test": args.n_test,
        "configs": [{k: v for k, v in r.items() if k not in ("members", "group")} for r in rows],
        "members": [
            {"cell": r["cell"], "hidden": r["hidden"], **m} for r in rows for m in r["members"]
        ],
        "wall_time_s": time.perf_counter() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    with open(out / "members.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary["members"][0]))
        w.writeheader()
        w.writerows(summary["members"])
    plots.ranges(
        {
            f"{r['cell']} H={r['hidden']} lr={r['lr']:g} b_f={r['forget_bias']:g}": np.array(
                [m["range"] for m in r["members"]]
            )
            for r in rows
        },
        out / "ranges.png",
        n,
    )
    print(
        f"\nwrote {out}/summary.json, members.csv, ranges.png, mechanics.png, "
        f"states_by_length.png, counters.txt and one folder per cell shape"
    )


if __name__ == "__main__":
    cli.run(main)
