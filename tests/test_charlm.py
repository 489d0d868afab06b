"""Char-LM: corpus checks, stream batching and carry alignment, untrained loss, overfitting,
resume, reproducible compiled sampling, CLI errors."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrax import LSTM, Model, engine, optim, runs
from recurrax.tasks import charlm

ROOT = Path(__file__).parents[1]
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def test_corpus_split_vocab_and_bad_files(tmp_path):
    corpus = charlm.build(TEXT, "test")
    assert corpus.vocab == "".join(sorted(set(TEXT)))
    assert len(corpus.train) + len(corpus.valid) == len(TEXT)
    assert len(corpus.valid) == round(0.1 * len(TEXT))
    decoded = "".join(corpus.vocab[i] for i in np.concatenate([corpus.train, corpus.valid]))
    assert decoded == TEXT  # contiguous: train is the head, validation the tail
    text, source = charlm.default_text()
    assert len(text) > 500_000 and "stdlib" in source
    for content, message in [
        (b"", "is empty"),
        (b"ab\x00cd", "looks binary"),
        (b"caf\xe9", "is not UTF-8"),
    ]:
        (tmp_path / "f.txt").write_bytes(content)
        with pytest.raises(ValueError, match=message):
            charlm.read_text(tmp_path / "f.txt")
    with pytest.raises(ValueError, match="does not exist"):
        charlm.read_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"characters not in the vocabulary: '\?Z'"):
        charlm.encode(corpus.vocab, "Zap?")


def test_streams_are_contiguous_and_chunks_continue_each_other():
    ids = np.arange(1000, dtype=np.int32)
    s = charlm.streams(ids, 4, 10)
    assert s.shape == (4, 250)
    np.testing.assert_array_equal(s[1], np.arange(250, 500))
    x0, y0 = charlm.chunk(s, 0, 10)
    x1, _ = charlm.chunk(s, 1, 10)
    np.testing.assert_array_equal(y0, x0 + 1)  # targets are the next characters
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # chunk 1 continues chunk 0
    assert charlm.chunks_per_epoch(s, 10) == 24
    with pytest.raises(ValueError, match="too short for batch 4 x seq 300"):
        charlm.streams(ids, 4, 300)


def test_carry_passes_between_chunks_like_one_long_run():
    corpus = charlm.build(TEXT, "test")
    V = len(corpus.vocab)
    model = Model((LSTM(16),), output_size=V, vocab_size=V, embed_size=8)
    params = model.init(jax.random.key(0))
    problem = charlm.problem(corpus, model, batch=4, seq=10, optimizer=optim.adam())
    carry = problem.init_state({})
    losses = []
    for _ in range(2):
        loss, carry = problem.loss(params, {"dropout": None}, {}, carry)
        losses.append(loss)
    s = charlm.streams(corpus.train, 4, 10)
    logits, _ = model.apply(params, s[:, :20])
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, s[:, 1:21, None], -1)[..., 0]
    want = [float(nll[:, :10].mean()), float(nll[:, 10:].mean())]
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    assert int(carry[1]) == 2


def test_untrained_validation_loss_is_about_log_vocab_and_training_overfits():
    corpus = charlm.build(TEXT, "test")
    V = len(corpus.vocab)
    model = Model((LSTM(64),), output_size=V, vocab_size=V, embed_size=16)
    problem = charlm.problem(
        corpus,
        model,
        batch=8,
        seq=16,
        optimizer=optim.adam(steps=300, decay="cosine", end=0.1, warmup=10, clip=True),
    )
    table = engine.members([0], {}, {"lr": 1e-2, "clip": 1.0})
    params = jax.vmap(lambda k: model.init(k))(jax.random.split(jax.random.key(0), 1))
    untrained = float(problem.evaluate(jax.tree.map(lambda v: v[0], params), {})["val_nats"])
    assert abs(untrained - math.log(V)) < 0.15
    r = runs.train(
        problem, engine.Config(steps=300, eval_every=300, chunk_evals=1), table, progress=False
    )
    assert r.summary[0]["final"]["val_nats"] < 0.3  # the repeated sentence is memorized


def test_resume_gives_the_same_numbers_and_sampling_is_reproducible(tmp_path):
    corpus = charlm.build(TEXT, "test")
    V = len(corpus.vocab)
    model = Model((LSTM(32),) * 2, output_size=V, vocab_size=V, embed_size=8, dropout=0.1)
    table = engine.members([0], {}, {"lr": 5e-3, "clip": 1.0})
    problem = charlm.problem(corpus, model, batch=4, seq=16, optimizer=optim.adam(clip=True))
    config = engine.Config(steps=60, eval_every=20, chunk_evals=1)
    full = runs.train(problem, config, table, out=tmp_path / "r", progress=False)
    # as if killed before the last checkpoint was written
    import shutil

    shutil.rmtree(tmp_path / "r" / "checkpoints" / "3")
    resumed = runs.train(problem, config, table, out=tmp_path / "r", resume=True, progress=False)
    np.testing.assert_array_equal(resumed.history["val_nats"], full.history["val_nats"])
    with pytest.raises(ValueError, match="different config"):
        runs.train(
            problem,
            engine.Config(steps=80, eval_every=20),
            table,
            out=tmp_path / "r",
            resume=True,
            progress=False,
        )
    params = jax.tree.map(lambda v: v[0], full.state.params)
    prompt = jnp.asarray(charlm.encode(corpus.vocab, "the "))
    a = charlm.generate(model, params, prompt, 40, jax.random.key(1), 0.8, 5)
    b = charlm.generate(model, params, prompt, 40, jax.random.key(1), 0.8, 5)
    c = charlm.generate(model, params, prompt, 40, jax.random.key(2), 0.8, 5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (40,) and not np.array_equal(a, c)
    top1 = charlm.generate(model, params, prompt, 40, jax.random.key(3), 0.8, 1)
    top1_again = charlm.generate(model, params, prompt, 40, jax.random.key(4), 0.8, 1)
    np.testing.assert_array_equal(top1, top1_again)  # top-k = 1 is greedy: keys do not matter
