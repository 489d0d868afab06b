"""Formal languages: samplers, legal sets (vs a brute-force reference), acceptance, ranges,
and a small fixed-seed training that learns aⁿbⁿ."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import LSTM, Model, engine, optim, runs
from recurrax.analysis import counters
from recurrax.tasks import formal

ROOT = Path(__file__).parents[1]


def legal_sets(lang, tokens):
    legal = np.asarray(formal.legal_next(lang, jnp.asarray(tokens)))
    return [{lang.vocab[v] for v in np.flatnonzero(row)} for row in legal]


@pytest.mark.parametrize("name", ["anbn", "anbncn"])
def test_legal_sets_match_brute_force_for_all_n_up_to_50(name):
    lang = formal.get(name)
    strings = np.asarray(formal.range_strings(lang, 50))
    for n, tokens in enumerate(strings, start=1):
        text = lang.decode(tokens)
        assert text == "^" + "".join(s * n for s in lang.alphabet) + "$"
        ref = formal.brute_force_legal(lang, text, 51)
        assert legal_sets(lang, tokens)[: len(text)] == ref


def test_nested_and_dyck_legal_sets_match_brute_force():
    nested = formal.get("anbmBmAn")
    for tokens in np.asarray(formal.sample(nested, jax.random.key(0), 40, 6)):
        text = nested.decode(tokens)
        assert legal_sets(nested, tokens)[: len(text)] == formal.brute_force_legal(nested, text, 7)
    dyck = formal.get("dyck1")
    for tokens in np.asarray(formal.sample(dyck, jax.random.key(1), 40, 6)):
        text = dyck.decode(tokens)
        depth = np.cumsum([{"(": 1, ")": -1}.get(c, 0) for c in text])
        assert depth.min() >= 0 and depth[-1] == 0 and text.count("(") <= 6
        assert legal_sets(dyck, tokens)[: len(text)] == formal.brute_force_legal(dyck, text, 7)


def test_sampler_structure():
    lang = formal.get("anbncn")
    tokens = np.asarray(formal.sample(lang, jax.random.key(2), 200, 10))
    assert tokens.shape == (200, 32)
    ns = []
    for row in tokens:
        text = lang.decode(row)
        n = text.count("a")
        assert text == "^" + "a" * n + "b" * n + "c" * n + "$"
        assert np.all(row[len(text) :] == formal.PAD)
        ns.append(n)
    assert set(ns) == set(range(1, 11))  # every n in the training range is drawn


def test_acceptance_on_hand_built_logits():
    lang = formal.get("anbn")
    tokens = formal.range_strings(lang, 2, 2)  # ^aabb$
    legal = formal.legal_next(lang, tokens)
    perfect = jnp.where(legal > 0, 5.0, -5.0)
    assert bool(formal.accepted(perfect, legal)[0]) and bool(
        formal.accepted(perfect, legal, strict=True)[0]
    )
    # argmax still legal, but an illegal symbol above threshold: classic yes, strict no
    loose = perfect.at[0, 1, formal.EOS].set(1.0)
    assert bool(formal.accepted(loose, legal)[0]) and not bool(
        formal.accepted(loose, legal, strict=True)[0]
    )
    # arg-max on an illegal symbol at one position: rejected
    wrong = perfect.at[0, 3, 3].set(9.0)
    assert not bool(formal.accepted(wrong, legal)[0])
    # positions past $ are ignored
    assert bool(formal.accepted(perfect.at[0, 5:].set(0.0), legal)[0])


def test_generalization_range_on_hand_built_patterns():
    pattern = jnp.array(
        [[True] * 5, [True, True, False, True, True], [False] * 5, [True, True, True, True, False]]
    )
    assert formal.generalization_range(pattern).tolist() == [5, 2, 0, 4]
    assert formal.generalization_range(pattern, n_min=3).tolist() == [7, 4, 2, 6]


def test_small_training_learns_anbn():
    """Fixed seeds, a few seconds: a peephole LSTM solves aⁿbⁿ on its training range n <= 5."""
    lang = formal.get("anbn")
    model = Model(
        (LSTM(3, peephole=True, forget_bias=0.0),),
        output_size=lang.vocab_size,
        vocab_size=lang.vocab_size,
        embed_size=4,
    )
    problem = formal.problem(
        lang,
        model,
        batch=10,
        optimizer=optim.adam(steps=600, decay="linear", end=0.2),
        n_max_train=5,
    )
    table = engine.members(8, {}, {"lr": 0.05, "forget_bias": 0.0})
    config = engine.Config(
        steps=600, eval_every=50, chunk_evals=12, target_metric="train_acc", target=1.0
    )
    result = runs.train(problem, config, table, progress=False)
    solved = [s for s in result.summary if s["reached"] is not None]
    assert len(solved) >= 4, result.summary
    classic, strict = formal.generalization(model, result.state.params, lang, 30, first_stage=10)
    for s in solved:
        assert classic[s["member"]] >= 5  # solving the training range means accepting n <= 5
    # the counter report finds an a-vs-b counter in the best member's cell state
    best = int(np.argmax(classic))
    params = jax.tree.map(lambda v: v[best], result.state.params)
    tokens = formal.range_strings(lang, 12, 12)
    _, _, inner = model.apply_internals(params, tokens)
    text = lang.decode(tokens[0])[:-1]
    fits = counters.fit_counters(np.asarray(inner[0]["c"][0, : len(text)]), text, "ab")
    assert max(f.r2 for f in fits) > 0.9


def test_counter_fit_recovers_a_planted_counter():
    text = "^" + "a" * 7 + "b" * 7
    feats = counters.count_features(text, "ab")
    states = np.stack([0.5 * feats["#a-#b"] + 0.1, np.sin(np.arange(len(text)))], 1)
    fits = counters.fit_counters(states, text, "ab")
    assert fits[0].feature == "#a-#b" and abs(fits[0].slope - 0.5) < 1e-9 and fits[0].r2 > 0.999
    assert fits[1].r2 < 0.9
    assert "cell 0: counts #a-#b" in counters.report(fits)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--language", "anbncnd"], "invalid choice"),
        (["--cell", "transformer"], "invalid choice"),
        (["--n-test", "5"], "--n-test (5) must be at least --n-max-train (10)"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--hidden", "0"], "--hidden must be at least 1"),
        (["--grid", "lr=0.1 momentum=0.9"], "--grid item 'momentum=0.9'"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_cli_rejects_bad_input_with_one_line_and_exit_2(flags, message):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "anbncn.py"), *flags],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_small_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    flags = [
        "--language",
        "anbn",
        "--grid",
        "none",
        "--hidden",
        "3",
        "--seeds",
        "4",
        "--steps",
        "300",
        "--n-max-train",
        "4",
        "--n-test",
        "40",
        "--out",
        str(out),
        "--no-progress",
    ]
    script = str(ROOT / "experiments" / "anbncn.py")
    proc = subprocess.run(
        [sys.executable, script, *flags], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "summary over 4 runs" in proc.stdout and "counter report" in proc.stdout
    for name in (
        "summary.json",
        "members.csv",
        "ranges.png",
        "mechanics.png",
        "states_by_length.png",
        "counters.txt",
    ):
        assert (out / name).stat().st_size > 0
    again = subprocess.run([sys.executable, script, *flags], capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a run" in again.stderr
