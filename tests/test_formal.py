"""Formal languages: samplers, legal sets (vs a brute-force reference), the range test sets,
both acceptance criteria, chance predictors that must fail, and a small fixed-seed training
that learns aⁿbⁿ."""

import dataclasses
import math
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
    """The legal sets of ``tokens [L]`` (or of each row of ``[B, L]``) as sets of symbols."""
    legal = np.asarray(formal.legal_next(lang, jnp.asarray(tokens)))
    sets = lambda rows: [{lang.vocab[v] for v in np.flatnonzero(r)} for r in rows]  # noqa: E731
    return sets(legal) if legal.ndim == 2 else [sets(rows) for rows in legal]


def in_language(lang, text):
    """Plain-Python membership, from the definitions in the module docstring."""
    body, lo = text[1:-1], lang.n_min
    if lang.name == "dyck1":
        depth = np.cumsum([{"(": 1, ")": -1}[c] for c in body]) if body else np.zeros(1)
        return (
            text[0] + text[-1] == "^$"
            and depth.min() >= 0
            and depth[-1] == 0
            and (len(body) >= 2 * lo)
        )
    if lang.name == "anbmBmAn":
        n, m = body.count("a"), body.count("b")
        return body == "a" * n + "b" * m + "B" * m + "A" * n and min(n, m) >= lo
    n = body.count("a")
    return body == "".join(s * n for s in lang.alphabet) and n >= lo


@pytest.mark.parametrize("empty", [True, False])
@pytest.mark.parametrize("name", ["anbn", "anbncn"])
def test_legal_sets_match_brute_force_for_all_n_up_to_40(name, empty):
    lang = formal.get(name, empty=empty)
    tokens, level = formal.test_set(lang, 40)
    assert level.tolist() == list(range(lang.n_min, 41))  # one string per n: the language
    for n, row, sets in zip(level.tolist(), np.asarray(tokens), legal_sets(lang, tokens)):
        text = lang.decode(row)
        assert text == "^" + "".join(s * n for s in lang.alphabet) + "$"
        assert sets[: len(text)] == formal.brute_force_legal(lang, text, 41)


@pytest.mark.parametrize("empty", [True, False])
def test_nested_and_dyck_legal_sets_match_brute_force(empty):
    for name, key in (("anbmBmAn", 0), ("dyck1", 1)):
        lang = formal.get(name, empty=empty)
        samples = np.asarray(formal.sample(lang, jax.random.key(key), 40, 5))
        tests = np.asarray(formal.test_set(lang, 5)[0])
        rows = np.concatenate([samples, tests])
        for row, sets in zip(rows, legal_sets(lang, rows)):
            text = lang.decode(row)
            assert in_language(lang, text), text
            assert sets[: len(text)] == formal.brute_force_legal(lang, text, 6)


def test_the_empty_string_is_in_every_language_unless_excluded():
    for name in formal.LANGUAGES:
        with_empty, without = formal.get(name), formal.get(name, empty=False)
        # n = m = 0 is ^$; with n or m = 0 allowed, aⁿbᵐBᵐAⁿ may also start with b
        first = {"dyck1": "(", "anbmBmAn": "ab"}.get(name, "a")
        assert legal_sets(with_empty, [formal.BOS])[0] == set(first) | {"$"}
        assert legal_sets(without, [formal.BOS])[0] == set(first[0])
        assert formal.brute_force_legal(with_empty, "^", 3)[0] == set(first) | {"$"}
        assert formal.brute_force_legal(without, "^", 3)[0] == set(first[0])
        assert formal.test_set(with_empty, 3)[1][0] == 0 and formal.test_set(without, 3)[1][0] == 1


@pytest.mark.parametrize("empty", [True, False])
def test_sampler_draws_every_training_count(empty):
    lang = formal.get("anbncn", empty=empty)
    tokens = np.asarray(formal.sample(lang, jax.random.key(2), 400, 10))
    assert tokens.shape == (400, 32)
    ns = []
    for row in tokens:
        text = lang.decode(row)
        assert in_language(lang, text)
        assert np.all(row[len(text) :] == formal.PAD)
        ns.append(text.count("a"))
    assert set(ns) == set(range(lang.n_min, 11))


def test_range_test_sets_hold_the_documented_strings():
    nested, dyck = formal.get("anbmBmAn"), formal.get("dyck1")
    tokens, level = formal.test_set(nested, 30)
    pairs = set()
    for row, lvl in zip(np.asarray(tokens), level.tolist()):
        text = nested.decode(row)
        n, m = text.count("a"), text.count("b")
        assert in_language(nested, text) and max(n, m) == lvl
        pairs.add((n, m))
    grid = formal.NESTED_FULL
    full = {(n, m) for n in range(grid + 1) for m in range(grid + 1)}
    probes = {
        p for L in range(grid + 1, 31) for k in {0, 1, L // 2, L - 1, L} for p in ((L, k), (k, L))
    }
    assert pairs == full | probes and len(pairs) == len(level)
    tokens, level = formal.test_set(dyck, 12)
    texts = [dyck.decode(row) for row in np.asarray(tokens)]
    assert all(in_language(dyck, t) for t in texts)
    assert [2 * lvl for lvl in level.tolist()] == [len(t) - 2 for t in texts]
    small = {t for t in texts if len(t) - 2 <= 2 * formal.DYCK_FULL}
    catalan = sum(math.comb(2 * n, n) // (n + 1) for n in range(formal.DYCK_FULL + 1))
    assert len(small) == catalan  # every balanced string of <= DYCK_FULL pairs, once
    for n in range(formal.DYCK_FULL + 1, 13):
        of_n = [t for t, lvl in zip(texts, level.tolist()) if lvl == n]
        assert "^" + "(" * n + ")" * n + "$" in of_n and "^" + "()" * n + "$" in of_n
        assert len(of_n) == 5 + formal.DYCK_RANDOM
    # a level's strings do not depend on how far one tests (the two stages agree)
    for lang in (nested, dyck):
        a, la = formal.test_set(lang, 25)
        b, lb = formal.test_set(lang, 40)
        keep = np.asarray(lb) <= 25
        assert np.array_equal(np.asarray(b)[keep][:, : a.shape[1]], np.asarray(a))
        assert np.all(np.asarray(b)[keep][:, a.shape[1] :] == formal.PAD)


def test_both_criteria_on_hand_built_logits():
    lang = formal.get("anbn")
    tokens = formal.range_strings(lang, 2, 2)  # ^aabb$
    legal = formal.legal_next(lang, tokens)
    perfect = jnp.where(legal > 0, 5.0, -5.0)
    verdict = lambda logits: [  # noqa: E731
        bool(formal.accepted(logits, legal, c)[0]) for c in ("strict", "argmax")
    ]
    assert verdict(perfect) == [True, True]
    # the arg-max is still legal, but an illegal symbol is above threshold: strict rejects
    assert verdict(perfect.at[0, 1, formal.EOS].set(1.0)) == [False, True]
    # a legal symbol below threshold (a after ^aa): strict rejects, arg-max (b) accepts
    assert verdict(perfect.at[0, 2, 3].set(-1.0)) == [False, True]
    # the arg-max on an illegal symbol at one position: both reject
    assert verdict(perfect.at[0, 3, 3].set(9.0)) == [False, False]
    # positions past $ are ignored
    assert verdict(perfect.at[0, 5:].set(0.0)) == [True, True]
    with pytest.raises(ValueError, match="unknown criterion"):
        formal.accepted(perfect, legal, "loose")


def test_ranges_by_level_on_hand_built_patterns():
    pattern = jnp.array(
        [[True] * 5, [True, True, False, True, True], [False] * 5, [True, True, True, True, False]]
    )
    # the largest N with every level n_min..N accepted: the index of the first failure - 1
    first_fail = [5, 2, 0, 4]
    assert formal.generalization_range(pattern).tolist() == [k - 1 for k in first_fail]
    assert formal.generalization_range(pattern, n_min=3).tolist() == [k + 2 for k in first_fail]
    # strings -> levels: a level passes only if all its strings do
    ok = jnp.array([[True, True, False, True, True], [True, True, True, True, True]])
    level = jnp.array([0, 1, 1, 2, 2])
    by_level = formal.accepted_by_level(ok, level, 0, 2)
    assert by_level.tolist() == [[True, False, True], [True, True, True]]
    assert formal.generalization_range(by_level).tolist() == [0, 2]


# --- predictors that know nothing must not pass ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConstantModel:
    """Outputs its params (logits ``[V]``) at every step, whatever the input."""

    def initial_carry(self, batch):
        return jnp.zeros(())

    def apply(self, params, tokens, carry):
        return jnp.broadcast_to(params, (*tokens.shape, params.shape[-1])), carry


@dataclasses.dataclass(frozen=True)
class OracleModel:
    """Outputs the legal set of the prefix it has read (counts in its carry)."""

    lang: formal.Language

    def initial_carry(self, batch):
        return jnp.zeros((batch, self.lang.vocab_size), jnp.int32)

    def apply(self, params, tokens, counts):
        counts = counts + jax.nn.one_hot(tokens[:, 0], self.lang.vocab_size, dtype=jnp.int32)
        legal = formal._legal(self.lang, tokens[:, 0], counts)
        return jnp.where(legal > 0, 4.0, -4.0)[:, None] + 0 * params, counts


def chance_predictors(lang, n_max):
    """Logits ``[M, V]``: every constant thresholded set (so every constant arg-max), and the
    marginal frequencies of the training distribution: how often each symbol is legal next (the
    best constant under the training loss) and how often it comes next."""
    V = lang.vocab_size
    subsets = np.array([[(s >> v) & 1 for v in range(V)] for s in range(2**V)])
    tokens = formal.sample(lang, jax.random.key(5), 4096, n_max)
    legal = np.asarray(formal.legal_next(lang, tokens))
    real = legal.sum(-1) > 0
    p_legal = legal[real].mean(0)
    nxt = np.asarray(jax.nn.one_hot(tokens[:, 1:], V))[real[:, :-1]]
    p_next = nxt.mean(0)
    logit = lambda p: np.log(np.clip(p, 1e-6, 1)) - np.log(np.clip(1 - p, 1e-6, 1))  # noqa: E731
    return jnp.asarray(
        np.concatenate([np.where(subsets, 4.0, -4.0), [logit(p_legal)], [logit(p_next)]])
    )


@pytest.mark.parametrize("name", list(formal.LANGUAGES))
def test_chance_predictors_fail_every_reported_criterion(name):
    lang, n_max = formal.get(name), 4
    params = chance_predictors(lang, n_max)
    model = ConstantModel()
    ranges = formal.generalization(model, params, lang, 6)
    assert set(ranges) == set(formal.CRITERIA)
    for c, r in ranges.items():
        if c not in lang.criteria:
            assert r is None
            continue
        # a constant can at most accept ^$ (level 0), never a string of level 1
        assert r.shape == (len(params),) and r.max() <= 0, (c, r)
    problem = formal.problem(lang, model, batch=4, optimizer=optim.adam(), n_max_train=n_max)
    metrics = jax.vmap(lambda p: problem.evaluate(p, {}))(params)
    assert set(metrics) == {f"train_acc_{c}" for c in lang.criteria}
    n_train = formal.test_set(lang, n_max)[0].shape[0]
    for c in lang.criteria:
        assert float(metrics[f"train_acc_{c}"].max()) <= 1 / n_train + 1e-6
    # the oracle passes everything: the chance predictors fail for a reason
    oracle = formal.generalization(OracleModel(lang), params[:2], lang, 6)
    assert all(r.tolist() == [6, 6] for r in oracle.values() if r is not None)


def test_dyck_arg_max_is_passed_by_a_constant_so_it_is_not_reported():
    lang = formal.get("dyck1")
    tokens, _ = formal.test_set(lang, 10)
    legal = formal.legal_next(lang, tokens)
    always_open = jnp.broadcast_to(jnp.eye(lang.vocab_size)[3], legal.shape)
    assert bool(jnp.all(formal.accepted(always_open, legal, "argmax")))
    assert not bool(jnp.any(formal.accepted(always_open, legal, "strict")[1:]))
    assert lang.criteria == ("strict",)


def test_small_training_learns_anbn():
    """Fixed seeds, a few seconds: a peephole LSTM solves aⁿbⁿ on its training range n <= 5
    under the strict criterion (early stopping on it)."""
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
        steps=600, eval_every=50, chunk_evals=12, target_metric="train_acc_strict", target=1.0
    )
    result = runs.train(problem, config, table, progress=False)
    solved = [s for s in result.summary if s["reached"] is not None]
    assert len(solved) >= 4, result.summary
    ranges = formal.generalization(model, result.state.params, lang, 30, first_stage=10)
    for s in solved:
        # solving the training range means accepting n <= 5 under both criteria
        assert ranges["strict"][s["member"]] >= 5
        assert ranges["argmax"][s["member"]] >= 5
    # the counter report finds an a-vs-b counter in the best member's cell state
    best = int(np.argmax(ranges["strict"]))
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
