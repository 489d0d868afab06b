"""LSTMs learning aⁿbⁿcⁿ (and aⁿbⁿ, aⁿbᵐBᵐAⁿ, Dyck-1) after Gers & Schmidhuber (2001).

Next-symbol prediction on strings ^ aⁿbⁿcⁿ $ with n = 0..10, many seeds and a small
hyperparameter grid in one compiled program per cell shape, then every member tested on every
level up to --n-test. Acceptance is named by its source: **strict** (Gers & Schmidhuber 2001:
every thresholded output equals the set of legal next symbols) is what the papers report and
what the tables, `solved` and early stopping use; **argmax** (the teaching notebook recurrax
grew from: the arg-max output is legal) is shown beside it, except for Dyck-1, where a constant
predictor passes it. The range is the largest N such that every test string of level 0..N is
accepted (-1: even ^$ is rejected); test sets per level: aⁿbⁿ, aⁿbⁿcⁿ the one string of each n;
aⁿbᵐBᵐAⁿ every (n, m) up to level 20, then probes; Dyck-1 every string of up to 6 pairs, then
adversarial and random strings (recurrax.tasks.formal.test_set).

    recurrax anbncn                       # the default study (~3 min on 2 CPU cores)
    recurrax anbncn --compare             # LSTM variants vs GRU vs RNNs
    recurrax anbncn --language anbn --hidden 2 --lr 0.05 --forget-bias 0 --seeds 16
    recurrax anbncn --out FOLDER --inspect 45   # mechanics of seed 45 of a finished study
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence

import numpy as np

from recurrax import Model, cli, engine, optim, plots, runs
from recurrax.analysis import counters
from recurrax.cells import CELL_NAMES, LSTM, from_name
from recurrax.tasks import formal

EMBED, EVAL_EVERY = 4, 50
COMPARE = ("lstm-peephole", "lstm", "lstm-noforget", "gru", "rnn-tanh", "rnn-relu")


def build_parser() -> cli.Parser:
    ap = cli.Parser(
        prog="recurrax anbncn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = ap.add_argument
    add("--language", default="anbncn", choices=sorted(formal.LANGUAGES), help="(anbncn)")
    add(
        "--cells",
        nargs="+",
        default=["lstm-peephole"],
        choices=CELL_NAMES,
        help="cells compared (default lstm-peephole: Gers & Schmidhuber's peephole LSTM)",
    )
    add("--compare", action="store_true", help=f"--cells {' '.join(COMPARE)}")
    add(
        "--hidden",
        type=cli.positive_int,
        nargs="+",
        default=[2, 4],
        help="memory cells per layer; one compiled program per value (default 2 4)",
    )
    add("--layers", type=cli.positive_int, default=1, help="stacked layers (1)")
    add("--seeds", type=cli.positive_int, default=64, help="seeds per grid point (64)")
    add(
        "--lr",
        type=cli.positive_float,
        nargs="+",
        default=[0.02, 0.05],
        help="Adam learning rates, decaying linearly to 0.2x (default 0.02 0.05)",
    )
    add(
        "--forget-bias",
        type=cli.finite_float,
        nargs="+",
        default=[0.0, 1.0],
        help="forget-gate biases at init (default 0 1)",
    )
    add(
        "--output-activation",
        choices=["tanh", "identity"],
        default="tanh",
        help="LSTM output squashing ψ in h = o ψ(c): tanh (default) or identity, "
        "Gers & Schmidhuber 2001's choice",
    )
    add("--no-empty", action="store_true", help="leave out the empty string ^$ (n >= 1)")
    add("--steps", type=cli.positive_int, default=2000, help="training steps (2000)")
    add("--batch", type=cli.positive_int, default=10, help="strings per step (10)")
    add("--n-max-train", type=cli.positive_int, default=10, help="train on n = 0..N (10)")
    add("--n-test", type=cli.positive_int, default=1000, help="test every level 0..N (1000)")
    add(
        "--stop-on-solve",
        action="store_true",
        help="freeze a member once it solves the "
        "training range (the classic protocol); by default members keep training",
    )
    add(
        "--inspect",
        type=int,
        metavar="SEED",
        help="draw the mechanics of this seed of the "
        "best configuration (default the best seed); with --out of a finished study, no training",
    )
    cli.add_run_flags(ap, "anbncn")
    return ap


def make_model(args, lang, cell_name: str, hidden: int) -> Model:
    cell = from_name(cell_name, hidden, forget_bias=0.0)
    if isinstance(cell, LSTM):
        cell = LSTM(**{**vars(cell), "output_activation": args.output_activation})
    V = lang.vocab_size
    return Model((cell,) * args.layers, output_size=V, vocab_size=V, embed_size=EMBED)


def run_group(args, lang, cell_name: str, hidden: int, out) -> dict:
    """Train every seed x (lr, forget bias) point of one cell shape (resumable), then test."""
    model = make_model(args, lang, cell_name, hidden)
    opt = optim.adam(steps=args.steps, decay="linear", end=0.2)
    problem = formal.problem(
        lang, model, batch=args.batch, optimizer=opt, n_max_train=args.n_max_train
    )
    grid = {"lr": args.lr, "forget_bias": args.forget_bias}
    if not getattr(model.cells[0], "forget_gate", False):
        grid["forget_bias"] = [0.0]  # meaningless without a forget gate
    table = engine.members(args.seeds, grid, {"lr": args.lr[0], "forget_bias": 0.0})
    config = engine.Config(
        steps=args.steps,
        eval_every=EVAL_EVERY,
        chunk_evals=8,
        target_metric="train_acc_strict",
        target=1.0,
        stop_on_target=args.stop_on_solve,
    )
    t0 = time.perf_counter()
    r = runs.train(
        problem,
        config,
        table,
        out=out,
        run=cli.flags(args),
        model=model,
        resume=args.resume,
        progress=not args.no_progress,
        desc=out.name,
    )
    train_s, t0 = time.perf_counter() - t0, time.perf_counter()
    ranges = formal.generalization(model, r.state.params, lang, args.n_test)
    members = [
        {
            **m,
            "strict": int(ranges["strict"][i]),
            "argmax": None if ranges["argmax"] is None else int(ranges["argmax"][i]),
            "solved_step": s["reached"],
            "diverged_step": s["diverged"],
        }
        for i, (m, s) in enumerate(zip(table, r.summary))
    ]
    return {
        "cell": cell_name,
        "hidden": hidden,
        "members": members,
        "train_s": train_s,
        "test_s": time.perf_counter() - t0,
    }


def print_tables(rows: list[dict], args) -> None:
    print(
        f"\nranges under the strict criterion ({formal.CRITERIA['strict']}); argmax = "
        f"{formal.CRITERIA['argmax']}"
    )
    print(
        f"{'cell':<14}{'H':>3}{'lr':>6}{'b_f':>5}{'seeds':>6}{'solved':>8}{'>=2x':>7}{'>=5x':>7}"
        f"{'>=10x':>7}{'>=1000':>7}{'median':>8}{'best':>6}{'argmax':>8}"
    )
    for r in rows:
        best = f"{r['best']}" + ("+" if r["best"] >= args.n_test else "")
        argmax = "-" if r["best_argmax"] is None else str(r["best_argmax"])
        print(
            f"{r['cell']:<14}{r['hidden']:>3}{r['lr']:>6.3g}{r['forget_bias']:>5.3g}"
            f"{r['seeds']:>6}{100 * r['solved']:>7.0f}%{100 * r['ge2x']:>6.0f}%"
            f"{100 * r['ge5x']:>6.0f}%{100 * r['ge10x']:>6.0f}%{r['ge1000']:>7}"
            f"{r['median']:>8.1f}{best:>6}{argmax:>8}"
        )
    best = max(rows, key=lambda r: (r["best"], r["ge1000"], r["ge10x"], r["median"]))
    print(
        f"\nper seed, {best['cell']} H={best['hidden']} lr={best['lr']:g} "
        f"b_f={best['forget_bias']:g} (solve step, strict range N, argmax range N):"
    )
    cells = [
        f"seed {m['seed']:>3}: {str(m['solved_step'] or '-'):>5} {m['strict']:>5} "
        f"{'-' if m['argmax'] is None else m['argmax']:>5}"
        for m in best["members"]
    ]
    for i in range(0, len(cells), 4):
        print("   ".join(cells[i : i + 4]))


def mechanics(args, lang, row: dict, out) -> str:
    """Figures and counter report for one seed of the best configuration."""
    ms = row["members"]
    pick = (
        max(ms, key=lambda m: (m["strict"], m["argmax"] or -1))
        if args.inspect is None
        else next((m for m in ms if m["seed"] == args.inspect), None)
    )
    if pick is None:
        raise ValueError(f"--inspect {args.inspect}: no such seed (0..{args.seeds - 1})")
    run = runs.load(out / f"{row['cell']}-h{row['hidden']}")
    params = run.member_params(run.table.index({k: pick[k] for k in run.table[0]}))
    tag = f"{row['cell']} H={row['hidden']} lr={pick['lr']:g} b_f={pick['forget_bias']:g}"
    tag += f" seed {pick['seed']}"
    n_show = min(args.n_max_train, 8)
    view = formal.mechanics_view(run.model, params, lang, n_show)
    plots.mechanics(
        *view,
        lang.vocab,
        title=f"{lang.name}, n={n_show}: {tag} (strict range {pick['strict']})",
        path=out / "mechanics.png",
    )
    key = "c" if "c" in view[1] else "h"
    curves = [
        (n, formal.mechanics_view(run.model, params, lang, n)[1][key]) for n in (5, 10, 20, 40)
    ]
    plots.states_by_length(curves, title=tag, path=out / "states_by_length.png")
    text, inner = formal.mechanics_view(run.model, params, lang, 20)[:2]
    report = (
        f"counter report, {tag}, along n=20 (state {key} of the last layer):\n"
        + counters.report(counters.fit_counters(inner[key], text, lang.alphabet))
    )
    (out / "counters.txt").write_text(report + "\n")
    return report


def write_results(out, args, lang, groups: list[dict], rows: list[dict], wall: float) -> None:
    """summary.json, members.csv and ranges.png of the study."""
    summary = {
        "language": lang.name,
        "empty": lang.empty,
        "criteria": formal.CRITERIA,
        "flags": cli.flags(args),
        "configs": [{k: v for k, v in r.items() if k != "members"} for r in rows],
        "members": [
            {"cell": g["cell"], "hidden": g["hidden"], **m} for g in groups for m in g["members"]
        ],
        "wall_time_s": wall,
    }
    runs.write_json(out / "summary.json", summary)
    with open(out / "members.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary["members"][0]))
        w.writeheader()
        w.writerows(summary["members"])
    plots.ranges(
        {
            f"{r['cell']} H={r['hidden']} lr={r['lr']:g} b_f={r['forget_bias']:g}": np.array(
                [m["strict"] for m in r["members"]]
            )
            for r in rows
        },
        args.n_max_train,
        path=out / "ranges.png",
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.compare:
        args.cells = list(COMPARE)
    if args.n_test < args.n_max_train:
        raise ValueError(
            f"--n-test ({args.n_test}) must be at least --n-max-train ({args.n_max_train})"
        )
    if args.inspect is not None and args.out is not None and (args.out / "study.json").exists():
        args.resume = True  # inspecting a finished study: its parts are read, not retrained
    lang = formal.get(args.language, empty=not args.no_empty)
    out = cli.study_folder(args, "anbncn")
    print(
        f"{lang.name}: train n <= {args.n_max_train}, test levels <= {args.n_test}; cells "
        f"{args.cells}, hidden {args.hidden}, lr {args.lr}, forget bias {args.forget_bias}, "
        f"{args.seeds} seeds; study folder {out}",
        flush=True,
    )
    t0 = time.perf_counter()
    parts = [(c, h, out / f"{c}-h{h}") for c in args.cells for h in args.hidden]
    groups = [
        cli.finished(
            part.with_suffix(".json"), lambda c=c, h=h, p=part: run_group(args, lang, c, h, p)
        )
        for c, h, part in parts
    ]
    rows = formal.range_table(groups, args.n_max_train)
    print_tables(rows, args)
    all_members = [m for g in groups for m in g["members"]]
    print("\n" + formal.range_summary(all_members, args.n_max_train, args.n_test))
    best = max(rows, key=lambda r: (r["best"], r["ge1000"], r["ge10x"], r["median"]))
    print("\n" + mechanics(args, lang, best, out))
    write_results(out, args, lang, groups, rows, time.perf_counter() - t0)
    print(
        f"\nwrote {out}/summary.json, members.csv, ranges.png, mechanics.png, "
        f"states_by_length.png, counters.txt and one run folder per cell shape "
        f"({time.perf_counter() - t0:.0f} s)"
    )
