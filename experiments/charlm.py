"""Character-level language model (char-rnn, compiled): train with stateful truncated BPTT,
evaluate in bits per character, sample text.

    python experiments/charlm.py train                       # embedded corpus, a few minutes
    python experiments/charlm.py train --corpus ../shared/data/tinyshakespeare.txt \\
        --steps 6000 --out runs/shakespeare
    python experiments/charlm.py sample --run runs/shakespeare --prompt "ROMEO:" --length 500 \\
        --temperature 0.8 --top-k 20

`train` prints the validation loss (nats and bits per character) at every evaluation in its
progress bar, the final numbers, the wall time and a sample; the run folder holds config.json,
vocab.json, metrics.jsonl, summary.json, learning_curves.png and checkpoints (continue an
interrupted run with --resume --out FOLDER).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from recurrax import Model, cli
from recurrax import train as engine
from recurrax.cells import CELL_NAMES, from_name
from recurrax.tasks import charlm

TRAIN_FLAGS = {  # name: (type, default, help)
    "corpus": (Path, None, "UTF-8 text file (default: the embedded Python-stdlib corpus)"),
    "cell": (str, "lstm", f"recurrent cell, one of {list(CELL_NAMES)}"),
    "layers": (int, 2, "stacked layers"),
    "hidden": (int, 256, "hidden units per layer"),
    "embed": (int, 64, "character embedding size"),
    "seq": (int, 128, "characters per truncated-BPTT chunk"),
    "batch": (int, 32, "parallel streams through the corpus"),
    "steps": (int, 1500, "training steps"),
    "lr": (float, 3e-3, "peak Adam learning rate"),
    "warmup": (int, 100, "linear warm-up steps"),
    "decay": (str, "cosine", "decay after warm-up to 0.1x: cosine or linear"),
    "clip": (float, 1.0, "global gradient-norm clip"),
    "dropout": (float, 0.0, "dropout between layers"),
    "eval_every": (int, 250, "steps between validation passes"),
    "seed": (int, 0, "initialization/dropout seed"),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    tr.add_argument("--out", type=Path, help="run folder (default runs/charlm/TIME)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    sa = sub.add_parser("sample", help="sample text from a trained run")
    sa.add_argument("--run", type=Path, required=True, help="run folder made by train")
    sa.add_argument("--prompt", default="\n", help="text to start from (default a newline)")
    sa.add_argument("--length", type=int, default=500, help="characters to sample")
    sa.add_argument("--temperature", type=float, default=0.8, help="softmax temperature")
    sa.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0: all)")
    sa.add_argument("--seed", type=int, default=0, help="sampling seed")
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
    problem = charlm.problem(
        model,
        corpus,
        batch=cfg["batch"],
        seq=cfg["seq"],
        steps=cfg["steps"],
        warmup=cfg["warmup"],
        decay=cfg["decay"],
    )
    table = engine.members([cfg["seed"]], {}, {"lr": cfg["lr"], "clip": cfg["clip"]})
    config = engine.Config(
        steps=cfg["steps"], eval_every=cfg["eval_every"], chunk_evals=1, shard="batch"
    )
    return corpus, model, problem, table, config


def sample_text(
    model, params, corpus, prompt: str, length: int, temperature: float, top_k: int, seed: int
) -> str:
    if not prompt:
        raise ValueError("the prompt is empty")
    try:
        ids = charlm.encode(corpus.vocab, prompt)
    except ValueError as err:
        raise ValueError(f"the prompt has {err}") from None
    run = jax.jit(charlm.generate, static_argnums=(0, 3, 6))
    tokens = run(model, params, jnp.asarray(ids), length, jax.random.key(seed), temperature, top_k)
    return prompt + "".join(corpus.vocab[int(t)] for t in tokens)


def train(args) -> None:
    cfg = {
        k: (str(getattr(args, k)) if isinstance(getattr(args, k), Path) else getattr(args, k))
        for k in TRAIN_FLAGS
    }
    for name in ("layers", "hidden", "embed", "seq", "batch", "steps", "eval_every"):
        if cfg[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
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
    result = engine.train(
        problem,
        config,
        table,
        out=out,
        run_config=cfg,
        resume=args.resume,
        progress=not args.no_progress,
        desc="charlm",
    )
    wall = time.perf_counter() - t0
    (out / "vocab.json").write_text(json.dumps({"vocab": corpus.vocab, "source": corpus.source}))
    final = result.summary[0]["final"]
    print(
        f"\nvalidation {final['val_nats']:.3f} nats/char = {final['val_bits']:.3f} bits/char "
        f"after {result.summary[0]['steps']} steps ({wall:.0f} s, {cfg['layers']} x "
        f"{cfg['hidden']} {cfg['cell']}, seq {cfg['seq']}, batch {cfg['batch']})"
    )
    params = jax.tree.map(lambda v: v[0], result.state.params)
    start = "\n" if "\n" in corpus.vocab else corpus.vocab[corpus.train[0]]
    print(
        "\nsample (temperature 0.8):\n" + sample_text(model, params, corpus, start, 300, 0.8, 0, 0)
    )
    print(f"\nwrote {out}")


def sample(args) -> None:
    config_path = args.run / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{args.run} is not a charlm run folder (no config.json)")
    if args.length < 1 or args.temperature <= 0 or args.top_k < 0:
        raise ValueError("need --length >= 1, --temperature > 0 and --top-k >= 0")
    cfg = json.loads(config_path.read_text())
    corpus, model, problem, table, _ = setup(cfg)
    state = engine.restore(problem, table, args.run)
    params = jax.tree.map(lambda v: v[0], state.params)
    print(
        sample_text(
            model, params, corpus, args.prompt, args.length, args.temperature, args.top_k, args.seed
        )
    )


def main() -> None:
    args = build_parser().parse_args()
    (train if args.command == "train" else sample)(args)


if __name__ == "__main__":
    cli.run(main)
