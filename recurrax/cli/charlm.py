"""Character-level language model (char-rnn, compiled): train with stateful truncated BPTT,
evaluate in bits per character, sample text.

    recurrax charlm train                       # embedded corpus, a few minutes
    recurrax charlm train --corpus ../shared/data/tinyshakespeare.txt --steps 6000 \\
        --out runs/shakespeare
    recurrax charlm sample --run runs/shakespeare --prompt "ROMEO:" --length 500 \\
        --temperature 0.8 --top-k 20

`train` prints the validation loss (nats and bits per character) at every evaluation in its
progress bar, the final numbers, the wall time and a sample; the run folder holds config.json,
members.csv, metrics.jsonl, summary.json, learning_curves.png and checkpoints (continue an
interrupted run with --resume --out FOLDER; `recurrax.runs.load(FOLDER)` reads it back).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from recurrax import Model, cli, engine, optim, runs
from recurrax.cells import CELL_NAMES, from_name
from recurrax.tasks import charlm


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


TRAIN_FLAGS = {  # name: (type, default, help)
    "corpus": (str, None, "UTF-8 text file (default: the embedded Python-stdlib corpus)"),
    "cell": (str, "lstm", f"recurrent cell, one of {list(CELL_NAMES)}"),
    "layers": (cli.positive_int, 2, "stacked layers"),
    "hidden": (cli.positive_int, 256, "hidden units per layer"),
    "embed": (cli.positive_int, 64, "character embedding size"),
    "seq": (cli.positive_int, 128, "characters per truncated-BPTT chunk"),
    "batch": (cli.positive_int, 32, "parallel streams through the corpus"),
    "steps": (cli.positive_int, 1500, "training steps"),
    "lr": (cli.positive_float, 3e-3, "peak Adam learning rate"),
    "warmup": (_count, 100, "linear warm-up steps"),
    "decay": (str, "cosine", "decay after warm-up to 0.1x: cosine or linear"),
    "clip": (cli.positive_float, 1.0, "global gradient-norm clip"),
    "dropout": (_rate, 0.0, "dropout between layers (as torch.nn.LSTM(dropout=p))"),
    "eval_every": (cli.positive_int, 250, "steps between validation passes"),
    "seed": (_count, 0, "initialization/dropout seed"),
}


def build_parser() -> cli.Parser:
    ap = cli.Parser(
        prog="recurrax charlm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a model")
    for name, (typ, default, text) in TRAIN_FLAGS.items():
        tr.add_argument(
            "--" + name.replace("_", "-"),
            type=typ,
            default=default,
            help=f"{text} (default {default})",
        )
    cli.add_run_flags(tr, "charlm")
    sa = sub.add_parser("sample", help="sample text from a trained run")
    sa.add_argument("--run", type=Path, required=True, help="run folder made by train")
    sa.add_argument("--prompt", default="\n", help="text to start from (default a newline)")
    sa.add_argument("--length", type=cli.positive_int, default=500, help="characters to sample")
    sa.add_argument(
        "--temperature", type=cli.positive_float, default=0.8, help="softmax temperature"
    )
    sa.add_argument("--top-k", type=_count, default=0, help="sample among the k likeliest (0: all)")
    sa.add_argument("--seed", type=_count, default=0, help="sampling seed")
    return ap


def setup(cfg: dict):
    """Corpus, model, problem, members and engine config from a run's config dict."""
    if cfg["corpus"]:
        text, source = charlm.read_text(cfg["corpus"]), str(cfg["corpus"])
    else:
        text, source = charlm.default_text()
    corpus = charlm.build(text, source)
    if cfg["cell"] not in CELL_NAMES:
        raise ValueError(f"unknown cell {cfg['cell']!r}; choose from {list(CELL_NAMES)}")
    V = len(corpus.vocab)
    model = Model(
        (from_name(cfg["cell"], cfg["hidden"]),) * cfg["layers"],
        output_size=V,
        vocab_size=V,
        embed_size=cfg["embed"],
        dropout=cfg["dropout"],
    )
    warmup = min(cfg["warmup"], cfg["steps"])
    opt = optim.adam(steps=cfg["steps"], decay=cfg["decay"], end=0.1, warmup=warmup, clip=True)
    problem = charlm.problem(corpus, model, batch=cfg["batch"], optimizer=opt, seq=cfg["seq"])
    table = engine.members([cfg["seed"]], {}, {"lr": cfg["lr"], "clip": cfg["clip"]})
    config = engine.Config(
        steps=cfg["steps"], eval_every=cfg["eval_every"], chunk_evals=1, shard="batch"
    )
    return corpus, model, problem, table, config


def train(args) -> None:
    cfg = {"study": "charlm"} | {k: getattr(args, k) for k in TRAIN_FLAGS}
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the folder of the run to continue")
    corpus, model, problem, table, config = setup(cfg)
    out = args.out or Path("runs/charlm") / time.strftime("%Y%m%d-%H%M%S")
    print(
        f"corpus: {corpus.source}; vocabulary {len(corpus.vocab)}, train "
        f"{len(corpus.train):,} / validation {len(corpus.valid):,} chars; uniform "
        f"{math.log(len(corpus.vocab)):.2f} nats/char",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    result = runs.train(
        problem,
        config,
        table,
        out=out,
        run=cfg,
        model=model,
        resume=args.resume,
        progress=not args.no_progress,
        desc="charlm",
    )
    final = result.summary[0]["final"]
    print(
        f"\nvalidation {final['val_nats']:.3f} nats/char = {final['val_bits']:.3f} bits/char "
        f"after {result.summary[0]['steps']} steps ({time.perf_counter() - t0:.0f} s, "
        f"{cfg['layers']} x {cfg['hidden']} {cfg['cell']}, seq {cfg['seq']}, batch {cfg['batch']})"
    )
    params = jax.tree.map(lambda v: v[0], result.state.params)
    start = "\n" if "\n" in corpus.vocab else corpus.vocab[corpus.train[0]]
    text = charlm.sample_text(model, params, corpus.vocab, start, 300, jax.random.key(0), 0.8)
    print("\nsample (temperature 0.8):\n" + text)
    print(f"\nwrote {out}")


def sample(args) -> None:
    run = runs.load(args.run)
    if run.config["run"].get("study") != "charlm" or run.model is None:
        raise ValueError(f"{args.run} is not a charlm run folder")
    corpus, model, _, _, _ = setup(run.config["run"])
    key = jax.random.key(args.seed)
    print(
        charlm.sample_text(
            model,
            run.member_params(0),
            corpus.vocab,
            args.prompt,
            args.length,
            key,
            args.temperature,
            args.top_k,
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    (train if args.command == "train" else sample)(args)
