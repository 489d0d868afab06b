"""Formal languages for next-symbol prediction (Gers & Schmidhuber 2001).

Strings are ``^ w $`` (the paper's S ... T) over the vocabulary ``PAD ^ $ <alphabet>``. At each
position the target is the *set* of legal next symbols (multi-hot ``[V]``), which depends on the
prefix only. A string is accepted when the prediction is right at every position, under one of
two **criteria** (:data:`CRITERIA`), each named by its source:

- ``strict`` — Gers & Schmidhuber (2001), also Gers, Pérez-Ortiz & Schmidhuber (2002): every
  output thresholded (``sigmoid(logit) > 0.5``) equals the legal set: all legal next symbols
  predicted and none of the others. Compare those papers' numbers with this one.
- ``argmax`` — the teaching notebook recurrax grew from: the arg-max output lies in the legal set.

A criterion is reported for a language only where no constant or marginal-frequency predictor
passes it (:attr:`Language.criteria`). Dyck-1 has only ``strict``: '(' is legal at every
position, so an arg-max that always says '(' would accept every string.

Languages (every count n, m >= 0 with ``empty=True``, the default; >= 1 with ``empty=False``):

- ``anbn``: aⁿbⁿ (context-free), ``anbncn``: aⁿbⁿcⁿ (context-sensitive),
- ``anbmBmAn``: aⁿbᵐBᵐAⁿ (nested counters; n and m independent),
- ``dyck1``: balanced parentheses with n pairs.

**The empty string.** n = 0 gives ``^$``, which belongs to every language here: after ``^``
the end ``$`` is legal beside the first symbols (aⁿbⁿ: ``a $``; aⁿbᵐBᵐAⁿ: ``a b $``, since
n or m may be 0; Dyck-1: ``( $``). Training samples n = 0..n_max and ranges count from n = 0.
``get(name, empty=False)`` reproduces recurrax's old convention for the block languages
(n >= 1, ``^$`` not in the language; old Dyck-1 legal sets allowed ``$`` after ``^`` but never
tested it, ``empty=False`` now excludes it consistently).

**Generalization range.** Each test string has a *level* (aⁿbⁿ, aⁿbⁿcⁿ: n; aⁿbᵐBᵐAⁿ:
max(n, m); Dyck-1: the number of pairs). The range under a criterion is the largest N such that
every test string of level n_min..N is accepted (n_min = 0, or 1 with ``empty=False``); a
model that rejects a string of level n_min has range n_min - 1 (-1 by default: it rejects
``^$``). The test set of each level is fixed and independent of how far one tests
(:func:`test_set`):

- aⁿbⁿ, aⁿbⁿcⁿ: the one string of level n — the complete language. N + 1 strings.
- aⁿbᵐBᵐAⁿ: every (n, m) with max(n, m) = level, for levels <= ``NESTED_FULL`` (20: all
  441 pairs n, m <= 20); beyond it the pairs (L, k) and (k, L) for k in
  {0, 1, L//2, L-1, L} (9 strings per level L). N = 100: 1,161 strings; N = 1000: 9,261.
- Dyck-1: every balanced string with <= ``DYCK_FULL`` (6) pairs (197 strings, all strings of
  length <= 12); for each level n above it, 5 adversarial strings — ``(ⁿ)ⁿ`` (deepest),
  ``()ⁿ`` (flattest), ``(()ⁿ⁻¹)`` (never at depth 0 until the end), ``(ⁿ⁻¹)ⁿ⁻¹()`` and
  ``()(ⁿ⁻¹)ⁿ⁻¹`` (a return to depth 0 right after / before a deep excursion) — and
  ``DYCK_RANDOM`` (3) random strings from the training sampler with a fixed key per level:
  8 strings per level. N = 100: 949 strings; N = 1000: 8,149.

Strings of a set are padded into one batch and evaluated in one compiled scan
(:func:`acceptance`), so the cost is strings x the longest length: aⁿbⁿcⁿ to N = 1000 is
1,001 x 3,002 steps; aⁿbᵐBᵐAⁿ and Dyck-1 to N = 1000 cost about 12x and 5x that.
:func:`generalization` first tests every member to ``first_stage`` and only the members that
pass all of it to N.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "^", "$")

CRITERIA = {
    "strict": "Gers & Schmidhuber (2001): every thresholded output (sigmoid > 0.5) equals the "
    "legal set: all legal next symbols predicted, none of the others",
    "argmax": "teaching notebook: the arg-max output lies in the legal set",
}
NESTED_FULL = 20  # aⁿbᵐBᵐAⁿ: every (n, m) tested up to this level, probes beyond
DYCK_FULL = 6  # Dyck-1: every string with up to this many pairs
DYCK_RANDOM = 3  # Dyck-1: random strings per level beyond DYCK_FULL (5 adversarial besides)


@dataclasses.dataclass(frozen=True)
class Language:
    """A language of blocks ``s₀^k₀ s₁^k₁ ...``; block j's count must equal block
    ``match[j]``'s (``None``: free, drawn from ``[n_min, n_max]``). Dyck-1 is the one exception.

    Attributes:
      name, alphabet, match: as above.
      criteria: the acceptance criteria (keys of :data:`CRITERIA`) that no constant or
        marginal-frequency predictor passes on this language; only these are reported.
      empty: whether ``^$`` (every count 0) is in the language (see the module docstring).
    """

    name: str
    alphabet: str
    match: tuple[int | None, ...] = ()
    criteria: tuple[str, ...] = ("strict", "argmax")
    empty: bool = True

    @property
    def vocab(self) -> tuple[str, ...]:
        return SPECIALS + tuple(self.alphabet)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def n_min(self) -> int:
        """The smallest count (and level): 0 with the empty string, else 1."""
        return 0 if self.empty else 1

    @property
    def free_blocks(self) -> int:
        return 1 if self.name == "dyck1" else sum(m is None for m in self.match)

    def max_len(self, n_max: int) -> int:
        """Length of the longest string ``^ ... $`` with every count <= n_max."""
        return len(self.alphabet) * n_max + 2

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (e.g. ``"^aabb$"``)."""
        return [self.vocab.index(ch) for ch in text]

    def decode(self, tokens) -> str:
        """The text of token ids ``tokens [L]`` (padding dropped)."""
        return "".join(self.vocab[int(t)] for t in tokens if int(t) != PAD)


LANGUAGES = {
    "anbn": Language("anbn", "ab", (None, 0)),
    "anbncn": Language("anbncn", "abc", (None, 0, 0)),
    "anbmBmAn": Language("anbmBmAn", "abBA", (None, None, 1, 0)),
    "dyck1": Language("dyck1", "()", criteria=("strict",)),
}


def get(name: str, *, empty: bool = True) -> Language:
    """The language called ``name`` (one of :data:`LANGUAGES`); ``ValueError`` otherwise.
    ``empty=False`` leaves out the empty string (every count >= 1, recurrax's old convention)."""
    if name not in LANGUAGES:
        raise ValueError(f"unknown language {name!r}; choose from {sorted(LANGUAGES)}")
    return dataclasses.replace(LANGUAGES[name], empty=empty)


# ---------------------------------------------------------------------------------------------
# strings


def block_string(lang: Language, counts: Array, length: int) -> Array:
    """Tokens ``[length]`` of ``^ s₀^counts[0] s₁^counts[1] ... $`` padded with PAD
    (``counts [blocks]``: matched blocks read their partner's count; zero counts allowed)."""
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


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def sample(lang: Language, key: Array, batch: int, n_max: int) -> Array:
    """``[batch, max_len(n_max)]`` random strings, every free count ~ U{n_min..n_max}
    (Dyck-1: the number of pairs)."""
    L = lang.max_len(n_max)
    k_counts, k_dyck = jax.random.split(key)
    counts = jax.random.randint(k_counts, (batch, lang.free_blocks), lang.n_min, n_max + 1)
    if lang.name == "dyck1":
        keys = jax.random.split(k_dyck, batch)
        return jax.vmap(lambda k, n: dyck_string(k, n, L))(keys, counts[:, 0])
    return _block_strings(lang, counts, L)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _block_strings(lang: Language, free_counts: Array, length: int) -> Array:
    """``[K, length]`` block strings from the free counts ``[K, free_blocks]``."""
    free = [j for j, m in enumerate(lang.match) if m is None]
    full = jnp.zeros((free_counts.shape[0], len(lang.match)), jnp.int32)
    full = full.at[:, jnp.asarray(free)].set(free_counts)
    return jax.vmap(lambda c: block_string(lang, c, length))(full)


@functools.partial(jax.jit, static_argnums=2)
def _random_dyck(ids: Array, pairs: Array, length: int) -> Array:
    """``[K, length]`` random Dyck strings; string k from the key ``fold_in(key(1), ids[k])``."""
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1), i))(ids)
    return jax.vmap(lambda k, n: dyck_string(k, n, length))(keys, pairs)


def range_strings(lang: Language, n_max: int, n_min: int = 1) -> Array:
    """One string for each n in ``[n_min, n_max]`` (all counts = n; Dyck: ``(ⁿ )ⁿ``), for
    showing a model at work. The generalization range uses :func:`test_set`."""
    L = lang.max_len(n_max)
    ns = jnp.arange(n_min, n_max + 1)
    if lang.name == "dyck1":
        return jax.vmap(lambda n: nested_dyck(n, L))(ns)
    return jax.vmap(lambda n: block_string(lang, jnp.full(len(lang.match), n), L))(ns)


def _dyck_words(pairs: int) -> list[str]:
    """Every balanced string of exactly ``pairs`` pairs."""
    if pairs == 0:
        return [""]
    return [
        "(" + inner + ")" + rest
        for k in range(pairs)
        for inner in _dyck_words(k)
        for rest in _dyck_words(pairs - 1 - k)
    ]


def _dyck_adversarial(n: int) -> list[str]:
    """Five strings of ``n`` pairs at the edges of a depth counter (module docstring)."""
    deep = "(" * (n - 1) + ")" * (n - 1)
    return ["(" * n + ")" * n, "()" * n, "(" + "()" * (n - 1) + ")", deep + "()", "()" + deep]


def _pad_texts(lang: Language, texts: list[str], length: int) -> np.ndarray:
    """``[K, length]`` tokens of ``^ text $`` for each text, padded with PAD."""
    table = np.zeros(256, np.int32)
    for i, ch in enumerate(lang.vocab[1:], start=1):
        table[ord(ch[0])] = i
    out = np.zeros((len(texts), length), np.int32)
    for row, text in zip(out, texts):
        row[: len(text) + 2] = table[np.frombuffer(("^" + text + "$").encode(), np.uint8)]
    return out


def test_set(lang: Language, n_max: int) -> tuple[Array, Array]:
    """The strings the generalization range is measured on, levels ``n_min..n_max``.

    Returns ``(tokens [K, max_len(n_max)], level [K])``; the strings of each level do not
    depend on ``n_max`` (the sets and their sizes are in the module docstring).
    """
    L, lo = lang.max_len(n_max), lang.n_min
    levels = range(lo, n_max + 1)
    if lang.name == "dyck1":
        texts, lvl = [], []
        for n in levels:
            words = _dyck_words(n) if n <= DYCK_FULL else _dyck_adversarial(n)
            texts += words
            lvl += [n] * len(words)
        tokens = _pad_texts(lang, texts, L)
        random_n = np.repeat(np.arange(max(lo, DYCK_FULL + 1), n_max + 1), DYCK_RANDOM)
        if random_n.size:
            ids = random_n * DYCK_RANDOM + np.arange(random_n.size) % DYCK_RANDOM
            rand = _random_dyck(jnp.asarray(ids), jnp.asarray(random_n), L)
            tokens = np.concatenate([tokens, np.asarray(rand, np.int32)])
            lvl += random_n.tolist()
        return jnp.asarray(tokens), jnp.asarray(lvl, jnp.int32)
    if lang.free_blocks == 1:
        counts = np.arange(lo, n_max + 1)[:, None]
    else:  # aⁿbᵐBᵐAⁿ: pairs (n, m) with max(n, m) = level
        counts = []
        for n in levels:
            others = (
                range(lo, n + 1) if n <= NESTED_FULL else sorted({lo, lo + 1, n // 2, n - 1, n})
            )
            counts += sorted({p for k in others for p in ((n, k), (k, n))})
        counts = np.asarray(counts)
    return _block_strings(lang, jnp.asarray(counts, jnp.int32), L), jnp.asarray(counts.max(1))


# ---------------------------------------------------------------------------------------------
# legal next symbols and acceptance


@functools.partial(jax.jit, static_argnums=0)
def legal_next(lang: Language, tokens: Array) -> Array:
    """Multi-hot ``[..., L, V]``: the symbols that may follow each prefix ``tokens[..., :t+1]``.

    Computed from the prefix's running symbol counts; zero at ``$`` and padding.
    """
    onehot = jax.nn.one_hot(tokens, lang.vocab_size, dtype=jnp.int32)
    return _legal(lang, tokens, jnp.cumsum(onehot, axis=-2))


def _legal(lang: Language, tokens: Array, counts: Array) -> Array:
    """Legal next symbols ``[..., V]`` after a prefix ending in ``tokens [...]`` whose symbol
    counts are ``counts [..., V]``."""
    cols = [jnp.zeros(tokens.shape, bool) for _ in range(lang.vocab_size)]
    if lang.name == "dyck1":
        depth = counts[..., 3] - counts[..., 4]
        cols[3] = jnp.ones(tokens.shape, bool)
        cols[4] = depth > 0
        cols[EOS] = (depth == 0) & ((tokens != BOS) | lang.empty)
    else:
        # after block j (j = -1: after ^) one may stay in j (free, or matched and still short),
        # or, once j is complete, start any later block k whose blocks in between may be empty;
        # ``$`` when every later block may be empty
        nb, match = len(lang.match), lang.match
        cnt = [counts[..., 3 + k] for k in range(nb)]
        true = jnp.ones(tokens.shape, bool)
        can_skip = [true & lang.empty if m is None else cnt[m] == 0 for m in match]
        can_start = [true if m is None else cnt[m] > 0 for m in match]
        block = jnp.where(tokens >= 3, tokens - 3, jnp.where(tokens == BOS, -1, -2))
        for j in range(-1, nb):
            reach = block == j
            if j >= 0 and match[j] is not None:
                cols[3 + j] |= reach & (cnt[j] < cnt[match[j]])
                reach &= cnt[j] >= cnt[match[j]]
            elif j >= 0:
                cols[3 + j] |= reach
            for k in range(j + 1, nb):
                cols[3 + k] |= reach & can_start[k]
                reach &= can_skip[k]
            cols[EOS] |= reach
    live = (tokens != PAD) & (tokens != EOS)
    return (jnp.stack(cols, -1) & live[..., None]).astype(jnp.int32)


def accepted(logits: Array, legal: Array, criterion: str) -> Array:
    """``[...]`` bool: is each string accepted under ``criterion`` (a key of
    :data:`CRITERIA`)? ``logits, legal: [..., L, V]``. Positions whose legal set is empty
    (``$``, padding) are ignored."""
    real = legal.sum(-1) > 0
    if criterion == "strict":
        ok = jnp.all((logits > 0) == (legal > 0), axis=-1)
    elif criterion == "argmax":
        ok = jnp.take_along_axis(legal, jnp.argmax(logits, -1)[..., None], -1)[..., 0] > 0
    else:
        raise ValueError(f"unknown criterion {criterion!r}; choose from {list(CRITERIA)}")
    return jnp.all(ok | ~real, axis=-1)


def generalization_range(accepted_by_n: Array, n_min: int = 0) -> Array:
    """The largest N such that every n in ``[n_min, N]`` is accepted (``n_min - 1`` if n_min
    is not). ``accepted_by_n [..., K]`` holds acceptance for n = n_min ... n_min + K - 1."""
    K = accepted_by_n.shape[-1]
    first_fail = jnp.where(jnp.all(accepted_by_n, -1), K, jnp.argmin(accepted_by_n, -1))
    return n_min - 1 + first_fail


def accepted_by_level(accepted: Array, level: Array, n_min: int, n_max: int) -> Array:
    """``[..., n_max - n_min + 1]``: are all strings of each level accepted? ``accepted
    [..., K]`` per string of a :func:`test_set` with levels ``level [K]``."""
    init = jnp.ones((*accepted.shape[:-1], n_max - n_min + 1), jnp.int32)
    return init.at[..., level - n_min].min(accepted.astype(jnp.int32)) > 0


def brute_force_legal(lang: Language, text: str, n_limit: int) -> list[set[str]]:
    """Plain-Python reference: for each prefix of ``text``, the symbols that continue it to a
    prefix of some word with every count in ``[n_min, n_limit]`` (Dyck: balanced words of
    n_min..n_limit pairs). Exponential for Dyck; used by the tests on small cases."""
    words = set()
    if lang.name == "dyck1":

        def gen(prefix, opens, closes):
            if closes == opens and (prefix or lang.empty):
                words.add("^" + prefix + "$")
            if opens < n_limit:
                gen(prefix + "(", opens + 1, closes)
            if closes < opens:
                gen(prefix + ")", opens, closes + 1)

        gen("", 0, 0)
    else:
        free = sum(m is None for m in lang.match)
        for counts in itertools.product(range(lang.n_min, n_limit + 1), repeat=free):
            it = iter(counts)
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


def acceptance(model, params, tokens: Array, lang: Language) -> dict[str, Array | None]:
    """``{criterion: accepted [B]}`` for strings ``tokens [B, L]``, one entry per key of
    :data:`CRITERIA`; ``None`` for the criteria the language does not report
    (:attr:`Language.criteria`).

    One scan over time that keeps only the model carry, the running symbol counts and an "all
    correct so far" flag per criterion, so a batch of a thousand strings of length 3000 costs
    kilobytes, not the full logits or legal sets.
    """
    B, V = tokens.shape[0], lang.vocab_size

    def step(carry, tok):
        state, counts, ok = carry
        tok = tok.astype(jnp.int32)
        counts = counts + jax.nn.one_hot(tok, V, dtype=jnp.int32)
        legal = _legal(lang, tok, counts)[:, None]
        logits, state = model.apply(params, tok[:, None], state)
        ok = {c: ok[c] & accepted(logits, legal, c) for c in ok}
        return (state, counts, ok), None

    flags = {c: jnp.ones(B, bool) for c in CRITERIA}
    init = (model.initial_carry(B), jnp.zeros((B, V), jnp.int32), flags)
    (_, _, ok), _ = jax.lax.scan(step, init, tokens.T)
    return {c: ok[c] if c in lang.criteria else None for c in CRITERIA}


def ranges(model, params, lang: Language, n_max: int) -> dict[str, np.ndarray | None]:
    """``{criterion: range [M]}`` of members ``params`` (leaves ``[M, ...]``) on the
    :func:`test_set` up to level ``n_max`` (``None`` for criteria the language does not report).
    One compiled program for all members and strings."""
    tokens, level = test_set(lang, n_max)
    run = jax.jit(jax.vmap(lambda p, t: acceptance(model, p, t, lang), in_axes=(0, None)))
    acc = run(params, tokens.astype(jnp.int8))  # the biggest array: keep it small
    return {
        c: None
        if a is None
        else np.array(
            generalization_range(accepted_by_level(a, level, lang.n_min, n_max), lang.n_min)
        )
        for c, a in acc.items()
    }


def generalization(
    model, params, lang: Language, n_test: int, first_stage: int = 100
) -> dict[str, np.ndarray | None]:
    """Generalization ranges ``{criterion: [M]}`` of members ``params`` (leaves ``[M, ...]``),
    every level n_min..n_test tested; ``None`` for criteria the language does not report.

    Two stages keep it fast: every member on levels <= ``first_stage``; then only the members
    that passed all of those under some criterion on levels <= n_test (their count padded to a
    power of two, one compile). A level's strings are the same in both stages.
    """
    first = min(first_stage, n_test)
    out = ranges(model, params, lang, first)
    survivors = np.flatnonzero(np.any([r == first for r in out.values() if r is not None], 0))
    if n_test > first and survivors.size:
        padded = 1 << int(np.ceil(np.log2(survivors.size)))
        idx = np.resize(survivors, padded)
        second = ranges(model, jax.tree.map(lambda v: v[idx], params), lang, n_test)
        for c, r in out.items():
            if r is not None:
                r[survivors] = second[c][: survivors.size]
    return out


def problem(
    lang: Language, model, *, batch: int, optimizer, n_max_train: int, gradflow: bool = False
):
    """The engine's :class:`~recurrax.problem.Problem` for next-symbol prediction on ``lang``.

    ``optimizer`` is a recipe from :mod:`recurrax.optim` (the main job: Adam decaying linearly
        to 0.2 x lr). Hyperparameters: those of the optimizer and ``forget_bias``. ``evaluate``
    reports ``train_acc_<criterion>`` for each criterion the
    language reports (``train_acc_strict``; ``train_acc_argmax`` except for Dyck-1): the
    fraction of the :func:`test_set` up to level ``n_max_train`` accepted (1.0 = the training
    range is solved; stop on ``train_acc_strict``, the criterion of Gers & Schmidhuber 2001);
    with ``gradflow``, also ``log10_grad_h0``: log10 ‖∂L_T/∂h₀‖ of the first layer (L_T =
    ‖h_T‖₁) along the longest training string, so the learning curves show how gradient flow
    changes as the model learns.
    """
    from recurrax.analysis.gradflow import gradient_flow
    from recurrax.problem import Problem, stateless

    train_strings, _ = test_set(lang, n_max_train)
    longest = range_strings(lang, n_max_train, n_max_train)[:, : lang.max_len(n_max_train) - 1]

    def evaluate(params, hp):
        acc = acceptance(model, params, train_strings, lang)
        metrics = {f"train_acc_{c}": jnp.mean(a) for c, a in acc.items() if a is not None}
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


# ---------------------------------------------------------------------------------------------
# summaries the studies and notebooks share


def range_table(groups: list[dict], n_train: int) -> list[dict]:
    """One row per (cell, hidden, lr, forget bias) point of ``groups`` (each ``{"cell",
    "hidden", "members"}``, members carrying ``strict``/``argmax`` ranges and ``solved_step``):
    the fraction solved, the fractions whose strict range reaches 2x/5x/10x the training
    range, the count reaching 1000, the median and best strict range, the best argmax range."""
    rows = []
    for g in groups:
        points: dict[tuple, list[dict]] = {}
        for m in g["members"]:
            points.setdefault((m["lr"], m["forget_bias"]), []).append(m)
        for (lr, fb), ms in points.items():
            r = np.array([m["strict"] for m in ms])
            argmax = [m["argmax"] for m in ms if m["argmax"] is not None]
            rows.append(
                {
                    "cell": g["cell"],
                    "hidden": g["hidden"],
                    "lr": lr,
                    "forget_bias": fb,
                    "seeds": len(ms),
                    "solved": float(np.mean([m["solved_step"] is not None for m in ms])),
                    **{f"ge{k}x": float(np.mean(r >= k * n_train)) for k in (2, 5, 10)},
                    "ge1000": int(np.sum(r >= 1000)),
                    "median": float(np.median(r)),
                    "best": int(r.max()),
                    "best_argmax": max(argmax) if argmax else None,
                    "members": ms,
                }
            )
    return rows


def range_summary(members: list[dict], n_train: int, n_test: int) -> str:
    """The summary line over all members, under each criterion they carry."""
    solved = np.mean([m["solved_step"] is not None for m in members])
    lines = [f"summary over {len(members)} runs: {solved:.0%} solve n <= {n_train} (strict)"]
    for c in ("strict", "argmax"):
        if any(m[c] is None for m in members):
            continue
        r = np.array([m[c] for m in members])
        name = CRITERIA[c].split(":")[0]
        share = {k: f"{np.mean(r >= k * n_train):.0%}" for k in (2, 10)}
        best = f"{r.max()}{'+' if r.max() >= n_test else ''}"
        lines.append(
            f"{c} ({name}): generalize to >= 2x: {share[2]}, >= 10x: {share[10]}; "
            f"{int(np.sum(r >= 100))} runs reach N >= 100, {int(np.sum(r >= 1000))} reach "
            f"N >= 1000; median N {np.median(r):g}, best N {best} (tested up to {n_test})"
        )
    return "\n".join(lines)


def mechanics_view(model, params, lang: Language, n: int):
    """What a model does along the string of level ``n`` (all counts n): ``(text, internals,
    probs, legal)`` with the last layer's ``internals[name]`` ``[T, H]``, the predicted
    next-symbol probabilities and the legal sets ``[T, V]``, over the string without ``$``."""
    tokens = range_strings(lang, n, n)
    logits, _, inner = model.apply_internals(params, tokens)
    T = int(jnp.sum(tokens[0] != PAD)) - 1
    text = lang.decode(tokens[0])[:T]
    layer = {k: np.asarray(v[0, :T]) for k, v in inner[-1].items()}
    probs = np.asarray(jax.nn.sigmoid(logits[0, :T]))
    return text, layer, probs, np.asarray(legal_next(lang, tokens)[0, :T])
