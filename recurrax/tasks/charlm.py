"""Character-level language modelling: corpus, stateful truncated BPTT, evaluation, sampling.

**Corpus.** Any UTF-8 text; the vocabulary is its sorted set of characters; the split is
contiguous (first 90% train, last 10% validation). The embedded default, present wherever
Python is, is the source of a fixed list of standard-library modules of the running interpreter
(:data:`DEFAULT_MODULES`, about 0.9 MB of Python).

**Truncated BPTT over streams** (char-rnn, Karpathy 2015): the training text is cut into B
contiguous streams; step i reads characters ``[i T, (i+1) T)`` of every stream and predicts the
next ones; the carry of each stream passes from one chunk to the next (gradients stop at the
chunk boundary) and resets to zero when an epoch starts again at chunk 0.

**Evaluation** runs the whole validation text as contiguous streams with carried state, in
nats/char (bits/char = nats / ln 2).
"""

from __future__ import annotations

import math
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
DEFAULT_MODULES = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "dataclasses.py",
    "difflib.py", "enum.py", "fractions.py", "functools.py", "inspect.py", "pathlib.py",
    "pprint.py", "random.py", "shutil.py", "statistics.py", "string.py", "textwrap.py",
    "threading.py", "typing.py", "zipfile.py",
)  # fmt: skip


class Corpus(NamedTuple):
    vocab: str  # sorted distinct characters
    train: np.ndarray  # int32 [N_train]
    valid: np.ndarray  # int32 [N_valid]
    source: str  # where the text came from


def default_text() -> tuple[str, str]:
    """The embedded default corpus: ``(text, description)``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts = [
        (root / name).read_text(encoding="utf-8")
        for name in DEFAULT_MODULES
        if (root / name).exists()
    ]
    if not parts:
        raise ValueError(f"no standard-library sources found under {root}")
    text = "\n".join(parts)
    version = ".".join(map(str, sys.version_info[:3]))
    return text, f"Python {version} stdlib source ({len(parts)} modules, {len(text):,} chars)"


def read_text(path: str | Path) -> str:
    """Read a UTF-8 corpus; ``ValueError`` with a one-line reason if it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"corpus file {path} does not exist")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"corpus file {path} is empty")
    if b"\x00" in data[:65536]:
        raise ValueError(f"corpus file {path} looks binary (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"corpus file {path} is not UTF-8 text (byte {err.start})") from None


def build(text: str, source: str, valid_frac: float = 0.1) -> Corpus:
    """Vocabulary and the contiguous train/validation split."""
    if not 0 < valid_frac < 1:
        raise ValueError(f"valid_frac must be in (0, 1), got {valid_frac}")
    vocab = "".join(sorted(set(text)))
    ids = encode(vocab, text)
    cut = int(round(len(ids) * (1 - valid_frac)))
    return Corpus(vocab, ids[:cut], ids[cut:], source)


def encode(vocab: str, text: str) -> np.ndarray:
    """``int32`` ids; ``ValueError`` naming the characters that are not in ``vocab``."""
    index = {ch: i for i, ch in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError(f"characters not in the vocabulary: {''.join(missing)!r}")
    return np.fromiter((index[ch] for ch in text), np.int32, len(text))


def streams(ids: np.ndarray | Array, batch: int, seq: int) -> Array:
    """``[B, L]``: the text cut into ``batch`` contiguous streams (the tail that does not fill
    all streams is dropped); needs at least one chunk of ``seq`` + 1 characters per stream."""
    L = len(ids) // batch
    if L < seq + 1:
        raise ValueError(
            f"text of {len(ids):,} characters is too short for batch {batch} x "
            f"seq {seq} (needs at least {batch * (seq + 1):,})"
        )
    return jnp.asarray(ids[: batch * L]).reshape(batch, L)


def chunks_per_epoch(stream: Array, seq: int) -> int:
    """How many chunks of ``seq`` characters (plus the next-character target) fit a stream."""
    return (stream.shape[1] - 1) // seq


def chunk(stream: Array, index: Array, seq: int) -> tuple[Array, Array]:
    """Chunk ``index`` of every stream: inputs and next-character targets, each ``[B, seq]``."""
    start = index * seq
    window = jax.lax.dynamic_slice_in_dim(stream, start, seq + 1, axis=1)
    return window[:, :-1], window[:, 1:]


def evaluate(model, params, stream: Array, seq: int) -> Array:
    """Mean nats/char over every chunk of ``stream [B, L]``, carrying state along each stream."""

    def body(carry, i):
        x, y = chunk(stream, i, seq)
        logits, carry = model.apply(params, x, carry)
        return carry, optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    n = chunks_per_epoch(stream, seq)
    _, losses = jax.lax.scan(body, model.initial_carry(stream.shape[0]), jnp.arange(n))
    return losses.mean()


def problem(corpus: Corpus, model, *, batch: int, optimizer, seq: int, eval_streams: int = 32):
    """The engine's stateful Problem for stateful truncated-BPTT training on ``corpus``.

    ``optimizer`` is a recipe from :mod:`recurrax.optim` (the study: Adam with a linear warm-up,
    cosine decay to 0.1 x and global-norm clipping). The problem's state is
    ``(model carry, chunk index)``: each step reads the next chunk of every stream and starts
    from the carry the last step left (gradients stop at the chunk boundary). The text a step
    reads is fixed by that index, so what a step samples is only its randomness:
    ``{"dropout": key}``. ``evaluate`` reports ``val_nats`` and ``val_bits`` over
    the whole validation text.
    """
    from recurrax.problem import Problem

    train = streams(corpus.train, batch, seq)
    val_seq = max(1, min(seq, len(corpus.valid) // 2 - 1))
    valid = streams(
        corpus.valid, max(1, min(eval_streams, len(corpus.valid) // (val_seq + 1))), val_seq
    )
    n_chunks = chunks_per_epoch(train, seq)

    def loss(params, drawn, hp, state):
        model_carry, index = state
        fresh = model.initial_carry(batch)
        model_carry = jax.tree.map(lambda c, z: jnp.where(index == 0, z, c), model_carry, fresh)
        x, y = chunk(train, index, seq)
        carry_in = jax.lax.stop_gradient(model_carry)
        logits, model_carry = model.apply(params, x, carry_in, key=drawn["dropout"])
        value = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return value, (model_carry, (index + 1) % n_chunks)

    def evaluate_fn(params, hp):
        nats = evaluate(model, params, valid, val_seq)
        return {"val_nats": nats, "val_bits": nats / math.log(2)}

    return Problem(
        init=lambda key, hp: model.init(key),
        sample=lambda key, hp: {"dropout": key},
        loss=loss,
        evaluate=evaluate_fn,
        optimizer=optimizer,
        init_state=lambda hp: (model.initial_carry(batch), jnp.asarray(0, jnp.int32)),
    )


def generate(
    model, params, prompt: Array, length: int, key: Array, temperature: float = 1.0, top_k: int = 0
) -> Array:
    """``[length]`` sampled token ids after ``prompt [P]`` (a compiled scan, not a Python loop).

    Each next character is drawn from ``softmax(logits / temperature)``, restricted to the
    ``top_k`` most likely ones when ``top_k > 0``.
    """
    logits, carry = model.apply(params, prompt[None])
    last = logits[0, -1]

    def pick(logits, key):
        logits = logits / temperature
        if top_k:
            kth = jax.lax.top_k(logits, top_k)[0][-1]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        return jax.random.categorical(key, logits)

    def body(state, key):
        logits, carry = state
        token = pick(logits, key)
        out, carry = model.apply(params, token[None, None], carry)
        return (out[0, -1], carry), token

    _, tokens = jax.lax.scan(body, (last, carry), jax.random.split(key, length))
    return tokens


def sample_text(
    model,
    params,
    vocab: str,
    prompt: str,
    length: int,
    key: Array,
    temperature: float = 1.0,
    top_k: int = 0,
) -> str:
    """``prompt`` followed by ``length`` sampled characters (:func:`generate`, compiled);
    ``ValueError`` for an empty prompt or one with characters outside ``vocab``."""
    if not prompt:
        raise ValueError("the prompt is empty")
    try:
        ids = encode(vocab, prompt)
    except ValueError as err:
        raise ValueError(f"the prompt has {err}") from None
    run = jax.jit(generate, static_argnums=(0, 3, 6))
    tokens = run(model, params, jnp.asarray(ids), length, key, temperature, top_k)
    return prompt + "".join(vocab[int(t)] for t in tokens)
