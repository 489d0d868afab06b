"""Formal languages for next-symbol prediction (Gers & Schmidhuber 2001).

Strings are ``^ w $`` (the paper's S ... T) over the vocabulary ``PAD ^ $ <alphabet>``. At each
position the target is the *set* of legal next symbols (multi-hot ``[V]``), which depends on the
prefix only; a string is **accepted** when the arg-max prediction lies in the legal set at
every position (the classic criterion), or, **strictly**, when every symbol's thresholded
output (``sigmoid(logit) > 0.5``) equals the legal set. The **generalization range** is the
largest N such that every n <= N is accepted.

Languages (n, m >= 1):

- ``anbn``: aⁿbⁿ (context-free), ``anbncn``: aⁿbⁿcⁿ (context-sensitive),
- ``anbmBmAn``: aⁿbᵐBᵐAⁿ (nested counters), evaluated at n = m for the range,
- ``dyck1``: balanced parentheses with n pairs (the empty word is in the language); the range
  is measured on the deepest string ``(ⁿ )ⁿ``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "^", "$")


@dataclasses.dataclass(frozen=True)
class Language:
    """A language of blocks ``s₀^k₀ s₁^k₁ ...``; block j's count must equal block
    ``match[j]``'s (``None``: free, drawn from ``[1, n_max]``). Dyck-1 is the one exception."""

    name: str
    alphabet: str
    match: tuple[int | None, ...] = ()

    @property
    def vocab(self) -> tuple[str, ...]:
        return SPECIALS + tuple(self.alphabet)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def free_blocks(self) -> int:
        return 1 if self.name == "dyck1" else sum(m is None for m in self.match)

    def max_len(self, n_max: int) -> int:
        """Length of the longest string ``^ ... $`` with every count <= n_max."""
        return len(self.alphabet) * n_max + 2

    def encode(self, text: str) -> list[int]:
        return [self.vocab.index(ch) for ch in text]

    def decode(self, tokens) -> str:
        return "".join(self.vocab[int(t)] for t in tokens if int(t) != PAD)


LANGUAGES = {
    "anbn": Language("anbn", "ab", (None, 0)),
    "anbncn": Language("anbncn", "abc", (None, 0, 0)),
    "anbmBmAn": Language("anbmBmAn", "abBA", (None, None, 1, 0)),
    "dyck1": Language("dyck1", "()"),
}


def get(name: str) -> Language:
    """The language called ``name`` (one of :data:`LANGUAGES`); ``ValueError`` otherwise."""
    if name not in LANGUAGES:
        raise ValueError(f"unknown language {name!r}; choose from {sorted(LANGUAGES)}")
    return LANGUAGES[name]


# ---------------------------------------------------------------------------------------------
# strings


def block_string(lang: Language, counts: Array, length: int) -> Array:
    """Tokens ``[length]`` of ``^ s₀^counts[0] s₁^counts[1] ... $`` padded with PAD."""
    full = jnp.asarray(
        [counts[m] if m is not None else counts[j] for j, m in enumerate(lang.match)]
    )
    ends = 1 + jnp.cumsum(full)  # position after each block
    p = jnp.arange(length)
    block = jnp.sum(p[:, None] >= ends[None, :], axis=1)  # block index of position p (>= 1)
    tokens = jnp.where(block < len(full), 3 + block, PAD)
    tokens = jnp.where(p == ends[-1], EOS, tokens)
    return jnp.where(p == 0, BOS, tokens)


def dyck_string(key: Array, pairs: Array, length: int) -> Array:
    """A random balanced string of ``pairs`` pairs: open with probability 1/2 while legal."""
    opened = jax.random.bernoulli(key, 0.5, (length,))

    def step(carry, want_open):
        opens, closes = carry
        depth = opens - closes
        is_open = jnp.where(depth == 0, True, jnp.where(opens == pairs, False, want_open))
        live = closes < pairs
        tok = jnp.where(live, jnp.where(is_open, 3, 4), PAD)
        return (opens + (live & is_open), closes + (live & ~is_open)), tok

    _, body = jax.lax.scan(step, (jnp.int32(0), jnp.int32(0)), opened[: length - 2])
    tokens = jnp.concatenate([jnp.array([BOS]), body, jnp.array([PAD])])
    return jnp.where(jnp.arange(length) == 2 * pairs + 1, EOS, tokens)


def nested_dyck(pairs: Array, length: int) -> Array:
    """The deepest Dyck-1 string ``^ (ⁿ )ⁿ $``."""
    p = jnp.arange(length)
    tokens = jnp.where(p <= pairs, 3, jnp.where(p <= 2 * pairs, 4, PAD))
    return jnp.where(p == 0, BOS, jnp.where(p == 2 * pairs + 1, EOS, tokens))


def sample(lang: Language, key: Array, batch: int, n_max: int) -> Array:
    """``[batch, max_len(n_max)]`` random strings, every free count ~ U{1..n_max}."""
    L = lang.max_len(n_max)
    k_counts, k_dyck = jax.random.split(key)
    counts = jax.random.randint(k_counts, (batch, max(lang.free_blocks, 1)), 1, n_max + 1)
    if lang.name == "dyck1":
        keys = jax.random.split(k_dyck, batch)
        return jax.vmap(lambda k, n: dyck_string(k, n, L))(keys, counts[:, 0])
    free = [j for j, m in enumerate(lang.match) if m is None]
    full = jnp.zeros((batch, len(lang.match)), jnp.int32).at[:, jnp.asarray(free)].set(counts)
    return jax.vmap(lambda c: block_string(lang, c, L))(full)


def range_strings(lang: Language, n_max: int, n_min: int = 1) -> Array:
    """One string for each n in ``[n_min, n_max]`` (all counts = n; Dyck: ``(ⁿ )ⁿ``)."""
    L = lang.max_len(n_max)
    ns = jnp.arange(n_min, n_max + 1)
    if lang.name == "dyck1":
        return jax.vmap(lambda n: nested_dyck(n, L))(ns)
    return jax.vmap(lambda n: block_string(lang, jnp.full(len(lang.match), n), L))(ns)


# ---------------------------------------------------------------------------------------------
# legal next symbols and acceptance


def legal_next(lang: Language, tokens: Array) -> Array:
    """Multi-hot ``[..., L, V]``: the symbols that may follow each prefix ``tokens[..., :t+1]``.

    Computed from the prefix's running symbol counts; zero at ``$`` and padding.
    """
    V = lang.vocab_size
    onehot = jax.nn.one_hot(tokens, V, dtype=jnp.int32)
    counts = jnp.cumsum(onehot, axis=-2)  # [..., L, V]
    sym = lambda s: jax.nn.one_hot(s, V, dtype=jnp.int32)  # noqa: E731
    live = (tokens != PAD) & (tokens != EOS)
    if lang.name == "dyck1":
        depth = counts[..., 3] - counts[..., 4]
        legal = jnp.where((depth > 0)[..., None], sym(3) + sym(4), sym(3) + sym(EOS))
        return legal * live[..., None]
    nblocks = len(lang.match)
    symbols = jnp.arange(3, 3 + nblocks)
    nxt = jnp.where(symbols + 1 < 3 + nblocks, symbols + 1, EOS)  # first symbol after block j
    block = jnp.clip(tokens - 3, 0, nblocks - 1)
    is_free = jnp.asarray([m is None for m in lang.match])[block]
    ref = jnp.asarray([j if m is None else m for j, m in enumerate(lang.match)])[block]
    own = jnp.take_along_axis(counts, (3 + block)[..., None], -1)[..., 0]
    target = jnp.take_along_axis(counts, (3 + ref)[..., None], -1)[..., 0]
    complete = own >= target
    legal = jnp.where(
        is_free[..., None],
        sym(3 + block) + sym(nxt[block]),
        jnp.where(complete[..., None], sym(nxt[block]), sym(3 + block)),
    )
    legal = jnp.where((tokens == BOS)[..., None], sym(3), legal)
    return legal * live[..., None]


def accepted(logits: Array, legal: Array, strict: bool = False) -> Array:
    """``[...]`` bool: is each string accepted? ``logits, legal: [..., L, V]``.

    Positions whose legal set is empty (``$``, padding) are ignored.
    """
    real = legal.sum(-1) > 0
    if strict:
        ok = jnp.all((logits > 0) == (legal > 0), axis=-1)
    else:
        ok = jnp.take_along_axis(legal, jnp.argmax(logits, -1)[..., None], -1)[..., 0] > 0
    return jnp.all(ok | ~real, axis=-1)


def generalization_range(accepted_by_n: Array, n_min: int = 1) -> Array:
    """The largest N such that every n in ``[n_min, N]`` is accepted (``n_min - 1`` if none).

    ``accepted_by_n [..., K]`` holds acceptance for n = n_min ... n_min + K - 1.
    """
    K = accepted_by_n.shape[-1]
    first_fail = jnp.where(jnp.all(accepted_by_n, -1), K, jnp.argmin(accepted_by_n, -1))
    return n_min - 1 + first_fail


def brute_force_legal(lang: Language, text: str, n_limit: int) -> list[set[str]]:
    """Plain-Python reference: for each prefix of ``text``, the symbols that continue it to a
    prefix of some word with every count <= ``n_limit`` (Dyck: balanced words of that many
    pairs). Exponential for Dyck; used by the tests on small cases."""
    words = set()
    if lang.name == "dyck1":

        def gen(prefix, opens, closes):
            if closes == opens and prefix:
                words.add("^" + prefix + "$")
            if opens < n_limit:
                gen(prefix + "(", opens + 1, closes)
            if closes < opens:
                gen(prefix + ")", opens, closes + 1)

        gen("", 0, 0)
        words.add("^$")
    else:
        free = sum(m is None for m in lang.match)
        for counts in np.ndindex(*([n_limit] * free)):
            it = iter(c + 1 for c in counts)
            full = []
            for m in lang.match:
                full.append(next(it) if m is None else full[m])
            words.add("^" + "".join(s * k for s, k in zip(lang.alphabet, full)) + "$")
    sets = []
    for t in range(len(text)):
        prefix = text[: t + 1]
        sets.append({w[t + 1] for w in words if len(w) > t + 1 and w.startswith(prefix)})
    return sets


# ---------------------------------------------------------------------------------------------
# models on languages: loss, acceptance over many lengths, the training problem


def loss(model, params, tokens: Array, lang: Language) -> Array:
    """Mean sigmoid cross-entropy against the legal next-symbol sets (Gers & Schmidhuber's
    multi-hot targets) over the real positions of ``tokens [B, L]``."""
    import optax

    legal = legal_next(lang, tokens)
    logits = model.apply(params, tokens)[0]
    real = (legal.sum(-1) > 0)[..., None]
    bce = optax.sigmoid_binary_cross_entropy(logits, legal.astype(logits.dtype))
    return jnp.sum(bce * real) / (jnp.sum(real) * lang.vocab_size)


def acceptance(model, params, tokens: Array, lang: Language) -> tuple[Array, Array]:
    """``(accepted, strictly_accepted)``, each ``[B]``, for strings ``tokens [B, L]``.

    One scan over time that keeps only the model carry and an "all correct so far" flag, so a
    batch of a thousand strings of length 3000 costs kilobytes, not the full logits.
    """
    legal = legal_next(lang, tokens)
    B = tokens.shape[0]

    def step(carry, inp):
        state, ok, strict = carry
        tok, leg = inp
        logits, state = model.apply(params, tok[:, None], state)
        logits, real = logits[:, 0], leg.sum(-1) > 0
        ok &= accepted(logits[:, None], leg[:, None]) | ~real
        strict &= accepted(logits[:, None], leg[:, None], strict=True) | ~real
        return (state, ok, strict), None

    init = (model.initial_carry(B), jnp.ones(B, bool), jnp.ones(B, bool))
    (_, ok, strict), _ = jax.lax.scan(step, init, (tokens.T, jnp.swapaxes(legal, 0, 1)))
    return ok, strict


def generalization(model, params, lang: Language, n_test: int, first_stage: int = 100):
    """Generalization ranges ``(classic [M], strict [M])`` of members ``params`` (leaves
    ``[M, ...]``), every n = 1..n_test checked.

    Two stages keep it fast: every member on n <= ``first_stage``; then only the members that
    passed all of those on n <= n_test (their count padded to a power of two, one compile).
    """

    def ranges(params, n_max):
        strings = range_strings(lang, n_max)
        ok, strict = jax.jit(jax.vmap(lambda p: acceptance(model, p, strings, lang)))(params)
        return np.array(generalization_range(ok)), np.array(generalization_range(strict))

    first = min(first_stage, n_test)
    classic, strict = ranges(params, first)
    survivors = np.flatnonzero((classic == first) | (strict == first))
    if n_test > first and survivors.size:
        padded = 1 << int(np.ceil(np.log2(survivors.size)))
        idx = np.resize(survivors, padded)
        c2, s2 = ranges(jax.tree.map(lambda v: v[idx], params), n_test)
        classic[survivors] = np.where(
            classic[survivors] == first, c2[: survivors.size], classic[survivors]
        )
        strict[survivors] = np.where(
            strict[survivors] == first, s2[: survivors.size], strict[survivors]
        )
    return classic, strict


def problem(
    lang: Language, model, *, batch: int, optimizer, n_max_train: int, gradflow: bool = False
):
    """The engine's :class:`~recurrax.problem.Problem` for next-symbol prediction on ``lang``.

    ``optimizer`` is a recipe from :mod:`recurrax.optim` (the main job: Adam decaying linearly
    to 0.2 x lr). Hyperparameters: those of the optimizer and ``forget_bias``. ``evaluate``
    reports ``train_acc``: the fraction of n = 1..n_max_train accepted (1.0 = the training
    range is solved); with ``gradflow``, also ``log10_grad_h0``: log10 ‖∂L_T/∂h₀‖ of the first
    layer (L_T = ‖h_T‖₁) along the longest training string, so the learning curves show how
    gradient flow changes as the model learns.
    """
    from recurrax.analysis.gradflow import gradient_flow
    from recurrax.problem import Problem, stateless

    train_strings = range_strings(lang, n_max_train)
    longest = train_strings[-1:, : lang.max_len(n_max_train) - 1]

    def evaluate(params, hp):
        metrics = {"train_acc": jnp.mean(acceptance(model, params, train_strings, lang)[0])}
        if gradflow:
            xs = model.embed(params, longest)
            flow = gradient_flow(model.cells[0], params["layers"][0], xs)
            metrics["log10_grad_h0"] = flow.mean[-1]
        return metrics

    return Problem(
        init=lambda key, hp: model.with_forget_bias(model.init(key), hp["forget_bias"]),
        sample=lambda key, hp: sample(lang, key, batch, n_max_train),
        loss=stateless(lambda params, tokens, hp: loss(model, params, tokens, lang)),
        evaluate=evaluate,
        optimizer=optimizer,
    )
