"""The length-generalization suite of Delétang et al. 2023, "Neural Networks and the Chomsky
Hierarchy" (ICLR): 15 transduction tasks over the regular (R), deterministic context-free (DCF)
and context-sensitive (CS) levels.

Conventions follow the reference code (google-deepmind/neural_networks_chomsky_hierarchy,
non-autoregressive; docs/chomsky.md lists every remaining difference): the model reads the input
tokens, then ``|y|`` blank tokens (token ``V``, one past the task's input alphabet), and a
linear layer on ``relu`` of its outputs on those last ``|y|`` steps is scored; inputs are
one-hot vectors of size ``V + 1``. The score at a length is per-token accuracy on the output
positions, pooled over the strings of that length; the tasks whose output ends with a
termination token (stack manipulation, binary addition, binary multiplication) score only up
to and including it. "chance" is the best constant predictor's score at test lengths.

============================  ====  ======================================  ====  =====  =======
task                          level input -> output                         |V|   |out|  chance
============================  ====  ======================================  ====  =====  =======
even_pairs                    R     bits -> #(01 and 10 pairs) mod 2        2     1      50%
modular_arithmetic            R     d op d op d (mod 5, + - *) -> value     9     1      20%
parity_check                  R     bits -> #1s mod 2                       2     1      50%
cycle_navigation              R     stay/+1/-1 moves on a 5-cycle -> pos    3     1      20%
reverse_string                DCF   bits -> reversed                        2     n      50%
stack_manipulation            DCF   stack then POP/PUSH0/PUSH1 -> stack     5     n+1    ~49%
modular_arithmetic_brackets   DCF   bracketed + - * expression mod 5 -> v   11    1      ~33%
solve_equation                DCF   bracketed +/- equation in x = d -> x    11    1      20%
duplicate_string              CS    w -> ww                                 2     2n     50%
missing_duplicate             CS    ww with one bit blanked -> that bit     4     1      50%
odds_first                    CS    w1 w2 ... wn -> w2 w4 ... w1 w3 ...     2     n      50%
binary_addition               CS    a+b (little-endian) -> a+b, end token   3     n+1    ~49%
binary_multiplication         CS    a*b (little-endian) -> a*b, end token   3     n      ~49%
compute_sqrt                  CS    x (big-endian) -> floor(sqrt x)         2     ⌈n/2⌉  50%
bucket_sort                   CS    symbols from 5 -> sorted                5     n      20%
============================  ====  ======================================  ====  =====  =======

(Odds first follows the reference's code, ``x[1::2] + x[::2]``: the 1-indexed even positions
first, where the paper's text and the code's docstring say the odd ones. Bucket sort: an
input-blind predictor that knows the length, class ``floor(5 j / n)`` at output ``j``, scores
about 90% at lengths 41..500.)

Each task has a plain-Python definition — ``generate(rng, n)`` draws an input of length ``n``
and ``solve(x)`` gives its full target — which is the reference, and is what builds the test
sets. Training draws batches inside the compiled loop with ``draw(key, n, batch, N)``: ``n``
(the length) may be traced, shapes are padded to the static maximum ``N`` and the valid part is
given by the task's lengths. Twelve tasks have a jit-able sampler written in JAX; the three
whose inputs come from a recursive grammar or need big integers (modular arithmetic with
brackets, solve equation, compute sqrt) sample from a pool drawn once on the host with the
Python definition (:func:`pool_draw`), which is then just as jit-able.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from recurrax.cells import LSTM, RNN
from recurrax.unroll import stack

Array = jax.Array
MOD = 5  # the paper's modulus for the arithmetic tasks
PLUS, MINUS, TIMES = 5, 6, 7  # modular_arithmetic's operator tokens (digits are 0..4)
# The two bracket tasks use different alphabets in the reference code (digits are 0..4):
_BRACKETS = {"+": 5, "-": 6, "*": 7, "(": 8, ")": 9}  # modular_arithmetic_brackets
_EQUATION = {"+": 5, "-": 6, "(": 7, ")": 8, "x": 9, "=": 10}  # solve_equation


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its alphabets, output length and definition.

    Attributes:
      name, level: the paper's task name and Chomsky level (``R``, ``DCF``, ``CS``).
      vocab: the reference's ``input_size`` V (the blank that asks for outputs is token V;
        modular arithmetic and the bracket tasks have unused symbols, as there).
      classes: output alphabet size C.
      out_len: ``|y|`` as a function of the input length (works on ints and traced arrays).
      generate: ``(rng: np.random.Generator, n) -> list[int]``, an input of length ``n``.
      solve: ``(x: list[int]) -> list[int]``, the full target of length ``out_len(len(x))``.
      draw: ``(key, n, batch, N) -> (x [B, N], y [B, out_len(N)])`` in JAX, or None (pool).
      terminated: the output ends with token 2 and is scored only up to it.
      in_len: the input length actually used for a requested ``n`` (modular arithmetic rounds
        down to an odd length, like the paper).
    """

    name: str
    level: str
    vocab: int
    classes: int
    out_len: Callable
    generate: Callable[[np.random.Generator, int], list[int]]
    solve: Callable[[list[int]], list[int]]
    draw: Callable | None
    terminated: bool = False
    in_len: Callable = staticmethod(lambda n: n)

    @property
    def chance(self) -> float:
        return 1.0 / self.classes


# ---------------------------------------------------------------------------------------------
# plain-Python definitions (the reference)


def _bits(rng, n):
    return [int(b) for b in rng.integers(0, 2, n)]


def _le(value: int, width: int = 0) -> list[int]:
    """Little-endian bits of ``value``, zero-padded to ``width`` (no padding: minimal, >= 1)."""
    return [int(c) for c in f"{value:b}".zfill(width)[::-1]]


def _number(bits: Sequence[int]) -> int:  # little-endian
    return sum(b << i for i, b in enumerate(bits))


def _terminated(result: list[int], length: int) -> list[int]:
    return result + [2] + [0] * (length - len(result) - 1)


def _two_numbers(rng, n):
    """``a SEP b`` with little-endian a, b >= 1 of random widths summing to n - 1 (n >= 3)."""
    width_a = int(rng.integers(1, n - 1))
    width_b = n - 1 - width_a
    a = int(rng.integers(1, 2**width_a)) if width_a < 63 else _big(rng, width_a)
    b = int(rng.integers(1, 2**width_b)) if width_b < 63 else _big(rng, width_b)
    return _le(a, width_a) + [2] + _le(b, width_b)


def _big(rng, width):
    while True:
        v = _number(_bits(rng, width))
        if v:
            return v


def _split(x):
    sep = x.index(2)
    return _number(x[:sep]), _number(x[sep + 1 :])


def _arith_gen(rng, n):
    n -= 1 - n % 2
    digits = rng.integers(0, MOD, n // 2 + 1)
    ops = rng.integers(PLUS, TIMES + 1, n // 2)
    return [int(digits[0])] + [int(v) for pair in zip(ops, digits[1:]) for v in pair]


def _arith_solve(x):
    expr = "".join(str(t) if t < MOD else "+-*"[t - PLUS] for t in x)
    return [eval(expr) % MOD]  # noqa: S307 - digits and + - * only


def _stack_gen(rng, n):
    if n == 1:
        return _bits(rng, 1)
    size = int(rng.integers(1, n))
    return _bits(rng, size) + [int(a) for a in rng.integers(2, 5, n - size)]


def _stack_solve(x):
    n = len(x)
    size = 1 if n == 1 else next((i for i, t in enumerate(x) if t >= 2), n)
    stack = list(x[:size])
    for action in x[size:]:
        if action == 2:
            if stack:
                stack.pop()
        else:
            stack.append(action - 3)
    return _terminated(stack[::-1], n + 1)


def _expression(rng, n: int, mult: bool) -> tuple[str, int]:
    """A random bracketed expression mod 5 of exactly ``n`` characters and its value: a digit
    ``d``, ``-d``, ``(d)``, ``(-d)`` for n <= 4, else ``(L op R)`` with ``|L|`` uniform in
    1..n-4 and ``op`` uniform over ``+ -`` (and ``*`` with ``mult``), as in the reference."""
    d = int(rng.integers(0, MOD))
    if n <= 4:
        return [f"{d}", f"-{d}", f"({d})", f"(-{d})"][n - 1], [d, -d, d, -d][n - 1] % MOD
    left = int(rng.integers(1, n - 3))
    (ls, lv), (rs, rv) = _expression(rng, left, mult), _expression(rng, n - 3 - left, mult)
    op = "+-*"[int(rng.integers(0, 3 if mult else 2))]
    return f"({ls}{op}{rs})", {"+": lv + rv, "-": lv - rv, "*": lv * rv}[op] % MOD


def _encode(text: str, alphabet: dict[str, int]) -> list[int]:
    return [int(c) if c.isdigit() else alphabet[c] for c in text]


def _decode(x: Sequence[int], alphabet: dict[str, int]) -> str:
    chars = {v: k for k, v in alphabet.items()}
    return "".join(str(t) if t < MOD else chars[t] for t in x)


def _brackets_gen(rng, n):
    return _encode(_expression(rng, n, mult=True)[0], _BRACKETS)


def _brackets_solve(x):
    return [eval(_decode(x, _BRACKETS)) % MOD]  # noqa: S307 - digits, + - * and brackets only


def _equation(expr: str, value: int, start: int) -> str:
    """``expr = value`` with the digit at or cyclically after position ``start`` replaced by
    ``x`` (the reference's placement: a uniform ``start``, so a digit after a long run of
    brackets and operators is chosen more often than one after another digit)."""
    i = start
    while not expr[i].isdigit():
        i = (i + 1) % len(expr)
    return f"{expr[:i]}x{expr[i + 1 :]}={value}"


def _equation_gen(rng, n):
    if n < 3:
        return [0] * n
    expr, value = _expression(rng, n - 2, mult=False)  # the reference: no '*', one solution
    return _encode(_equation(expr, value, int(rng.integers(0, n - 2))), _EQUATION)


def _equation_solve(x):
    if len(x) < 3:
        return [0]
    lhs, rhs = _decode(x, _EQUATION).split("=")
    (answer,) = [v for v in range(MOD) if eval(lhs.replace("x", str(v))) % MOD == int(rhs)]  # noqa: S307
    return [answer]


def _missing_gen(rng, n):
    if n == 1:
        return [1]
    half = _bits(rng, n // 2)
    doubled = half + half
    doubled[int(rng.integers(0, len(doubled)))] = 2
    return doubled + [3] * (n % 2)


def _missing_solve(x):
    if len(x) == 1:
        return [1]
    h = len(x) // 2
    i = x.index(2)
    return [x[i + h] if i < h else x[i - h]]


def _addition_gen(rng, n):
    if n <= 2:
        return _le(int(rng.integers(0, 2**n - 1)), n)
    return _two_numbers(rng, n)


def _addition_solve(x):
    n = len(x)
    total = _number(x) if n <= 2 else sum(_split(x))
    return _terminated(_le(total), n + 1)


def _multiplication_solve(x):
    n = len(x)
    if n <= 2:
        return _terminated([0] * (n - 1), n)
    a, b = _split(x)
    return _terminated(_le(a * b), n)


def _sqrt_gen(rng, n):
    return _le(_big(rng, n), n)[::-1]  # big-endian, value in [1, 2^n - 1]


def _sqrt_solve(x):
    n = len(x)
    root = math.isqrt(_number(x[::-1]))
    return _le(root, math.ceil(n / 2))[::-1]


# ---------------------------------------------------------------------------------------------
# JAX samplers: n may be traced; arrays are padded to the static maximum N


def _positions(N):
    return jnp.arange(N)


def _gather(x, idx):
    """``x[b, idx[j]]`` for every row (idx [M] or [B, M], clipped into range)."""
    idx = jnp.broadcast_to(jnp.clip(idx, 0, x.shape[1] - 1), (x.shape[0],) + idx.shape[-1:])
    return jnp.take_along_axis(x, idx, axis=1)


def _rand_bits(key, B, N, hi=2):
    return jax.random.randint(key, (B, N), 0, hi)


def _even_pairs_draw(key, n, B, N):
    x = _rand_bits(key, B, N)
    pos = _positions(N - 1)
    changes = (x[:, 1:] != x[:, :-1]) & (pos + 1 < n)
    return x, (jnp.sum(changes, 1) % 2)[:, None]


def _arith_draw(key, n, B, N):
    k1, k2 = jax.random.split(key)
    L = n - (1 - n % 2)
    pos = _positions(N)
    digits = jax.random.randint(k1, (B, N), 0, MOD)
    ops = jax.random.randint(k2, (B, N), PLUS, TIMES + 1)
    x = jnp.where(pos % 2 == 0, digits, ops)

    def step(carry, k):  # left to right with precedence: acc + term, term absorbs '*'
        acc, term = carry
        op, d = x[:, 2 * k - 1], x[:, 2 * k]
        live = 2 * k < L
        new_acc = jnp.where(op == TIMES, acc, acc + term) % MOD
        new_term = jnp.where(op == TIMES, term * d, jnp.where(op == PLUS, d, MOD - d)) % MOD
        return (jnp.where(live, new_acc, acc), jnp.where(live, new_term, term)), None

    (acc, term), _ = jax.lax.scan(step, (jnp.zeros(B, x.dtype), x[:, 0]), jnp.arange(1, N // 2 + 1))
    return x, ((acc + term) % MOD)[:, None]


def _parity_draw(key, n, B, N):
    x = _rand_bits(key, B, N)
    return x, (jnp.sum(x * (_positions(N) < n), 1) % 2)[:, None]


def _cycle_draw(key, n, B, N):
    x = _rand_bits(key, B, N, 3)
    return x, (jnp.sum((x - 1) * (_positions(N) < n), 1) % MOD)[:, None]


def _reverse_draw(key, n, B, N):
    x = _rand_bits(key, B, N)
    return x, _gather(x, n - 1 - _positions(N))


def _stack_draw(key, n, B, N):
    k1, k2, k3 = jax.random.split(key, 3)
    size = jnp.where(n == 1, 1, jax.random.randint(k1, (B,), 1, jnp.maximum(n, 2)))
    pos = _positions(N)
    x = jnp.where(pos < size[:, None], _rand_bits(k2, B, N), jax.random.randint(k3, (B, N), 2, 5))

    def step(carry, p):
        stack, top = carry  # stack [B, N + 1] bottom-up, top = its size
        t = x[:, p]
        push = (p < size) | ((p < n) & (t >= 3))
        pop = (p >= size) & (p < n) & (t == 2) & (top > 0)
        value = jnp.where(p < size, t, t - 3)
        stack = jnp.where(
            push[:, None] & (jnp.arange(N + 1) == top[:, None]), value[:, None], stack
        )
        return (stack, top + push - pop), None

    init = (jnp.zeros((B, N + 1), x.dtype), jnp.zeros(B, x.dtype))
    (stack, top), _ = jax.lax.scan(step, init, pos)
    j = _positions(N + 1)
    y = jnp.where(j < top[:, None], _gather(stack, top[:, None] - 1 - j), 0)
    return x, jnp.where(j == top[:, None], 2, y)


def _duplicate_draw(key, n, B, N):
    x = _rand_bits(key, B, N)
    j = _positions(2 * N)
    return x, _gather(x, jnp.where(j < n, j, j - n))


def _missing_draw(key, n, B, N):
    k1, k2 = jax.random.split(key)
    h = n // 2
    pos = _positions(N)
    half = _rand_bits(k1, B, N)
    doubled = _gather(half, jnp.where(pos < h, pos, pos - h))
    blank = jax.random.randint(k2, (B,), 0, jnp.maximum(2 * h, 1))
    answer = jnp.take_along_axis(doubled, blank[:, None], 1)
    x = jnp.where(pos == blank[:, None], 2, doubled)
    x = jnp.where(pos >= 2 * h, 3, x)
    return jnp.where(n == 1, 1, x), jnp.where(n == 1, 1, answer)


def _odds_first_draw(key, n, B, N):
    x = _rand_bits(key, B, N)
    j = _positions(N)
    first = n // 2  # the reference code: 0-indexed odd positions first, x[1::2] + x[::2]
    return x, _gather(x, jnp.where(j < first, 2 * j + 1, 2 * (j - first)))


def _nonzero_bits(key, B, N, width):
    """Little-endian bits, uniform over [1, 2^width - 1] (rejection over 8 candidates)."""
    cands = jax.random.randint(key, (8, B, N), 0, 2) * (_positions(N) < width[:, None])
    first = jnp.argmax(jnp.any(cands > 0, -1), 0)  # first nonzero candidate (0 if none)
    bits = jnp.take_along_axis(cands, first[None, :, None], 0)[0]
    return bits.at[:, 0].set(jnp.where(jnp.any(bits > 0, 1), bits[:, 0], 1))


def _carry(digit_sums):
    """Little-endian bits of sum_i digit_sums[:, i] 2^i (a ripple of carries)."""

    def step(carry, s):
        total = carry + s
        return total // 2, total % 2

    _, bits = jax.lax.scan(step, jnp.zeros(digit_sums.shape[0], digit_sums.dtype), digit_sums.T)
    return bits.T


def _two_numbers_draw(key, n, B, N):
    """``(x, a, b)``: x = a 2 b (widths summing to n - 1), a and b little-endian [B, N]."""
    k1, k2, k3 = jax.random.split(key, 3)
    width_a = jax.random.randint(k1, (B,), 1, jnp.maximum(n - 1, 2))
    a = _nonzero_bits(k2, B, N, width_a)
    b = _nonzero_bits(k3, B, N, n - 1 - width_a)
    pos = _positions(N)
    x = jnp.where(pos < width_a[:, None], a, _gather(b, pos - width_a[:, None] - 1))
    return jnp.where(pos == width_a[:, None], 2, x), a, b


def _with_end(bits, length, M):
    """Minimal little-endian ``bits`` then the end token 2, then zeros, to width M."""
    j = _positions(M)
    top = jnp.max(jnp.where(bits > 0, _positions(bits.shape[1]), 0), 1) + 1
    top = top if length is None else length
    y = jnp.where(j < top[:, None], _gather(bits, jnp.broadcast_to(j, bits.shape[:1] + j.shape)), 0)
    return jnp.where(j == top[:, None], 2, y)


def _small_number_draw(key, n, B, N):  # n <= 2: the bits of a value in [0, 2^n - 2]
    value = jax.random.randint(key, (B,), 0, 2 ** jnp.clip(n, 1, 2) - 1)
    return (value[:, None] >> _positions(N)) % 2 * (_positions(N) < n)


def _addition_draw(key, n, B, N):
    k1, k2 = jax.random.split(key)
    x, a, b = _two_numbers_draw(k1, n, B, N)
    small = _small_number_draw(k2, n, B, N)
    total = _carry(jnp.pad(jnp.where(n <= 2, small, a + b), ((0, 0), (0, 1))))
    return jnp.where(n <= 2, small, x), _with_end(total, None, N + 1)


def _multiplication_draw(key, n, B, N):
    k1, k2 = jax.random.split(key)
    x, a, b = _two_numbers_draw(k1, n, B, N)
    sums = jax.vmap(lambda u, v: jnp.convolve(u, v)[: N + 1])(a, b).astype(x.dtype)
    product = _carry(sums)
    small = _small_number_draw(k2, n, B, N)
    y_small = _with_end(jnp.zeros((B, N + 1), x.dtype), jnp.full((B,), n - 1), N)
    return jnp.where(n <= 2, small, x), jnp.where(n <= 2, y_small, _with_end(product, None, N))


def _bucket_sort_draw(key, n, B, N):
    x = _rand_bits(key, B, N, 5)
    pos = _positions(N)
    y = jnp.sort(jnp.where(pos < n, x, 5), axis=1)  # padding sorts last ...
    return x, jnp.where(pos < n, y, 0)  # ... and is then replaced by a valid class


# ---------------------------------------------------------------------------------------------
# the suite


def _one(n):
    return 1 + 0 * n


def _symbols(k):
    return lambda rng, n: [int(a) for a in rng.integers(0, k, n)]


def _self(n):
    return n


def _even_pairs_solve(x):
    return [sum(a != b for a, b in zip(x, x[1:])) % 2]


def _half(n):
    return (n + 1) // 2


def _plus_one(n):
    return n + 1


def _twice(n):
    return 2 * n


def _odd(n):
    return n - (1 - n % 2)


# fmt: off
TASKS: dict[str, Task] = {t.name: t for t in [
    # name, level, |V|, |C|, |y|(n), generate, solve, draw
    Task("even_pairs", "R", 2, 2, _one, _bits, _even_pairs_solve, _even_pairs_draw),
    Task("modular_arithmetic", "R", 9, MOD, _one, _arith_gen, _arith_solve, _arith_draw,
         in_len=_odd),
    Task("parity_check", "R", 2, 2, _one, _bits, lambda x: [sum(x) % 2], _parity_draw),
    Task("cycle_navigation", "R", 3, MOD, _one, _symbols(3),
         lambda x: [sum(a - 1 for a in x) % MOD], _cycle_draw),
    Task("reverse_string", "DCF", 2, 2, _self, _bits, lambda x: x[::-1], _reverse_draw),
    Task("stack_manipulation", "DCF", 5, 3, _plus_one, _stack_gen, _stack_solve, _stack_draw,
         terminated=True),
    Task("modular_arithmetic_brackets", "DCF", 11, MOD, _one, _brackets_gen, _brackets_solve, None),
    Task("solve_equation", "DCF", 11, MOD, _one, _equation_gen, _equation_solve, None),
    Task("duplicate_string", "CS", 2, 2, _twice, _bits, lambda x: x + x, _duplicate_draw),
    Task("missing_duplicate", "CS", 4, 2, _one, _missing_gen, _missing_solve, _missing_draw),
    Task("odds_first", "CS", 2, 2, _self, _bits, lambda x: x[1::2] + x[::2], _odds_first_draw),
    Task("binary_addition", "CS", 3, 3, _plus_one, _addition_gen, _addition_solve,
         _addition_draw, terminated=True),
    Task("binary_multiplication", "CS", 3, 3, _self, _addition_gen, _multiplication_solve,
         _multiplication_draw, terminated=True),
    Task("compute_sqrt", "CS", 2, 2, _half, _sqrt_gen, _sqrt_solve, None),
    Task("bucket_sort", "CS", 5, 5, _self, _symbols(5), sorted, _bucket_sort_draw),
]}
# fmt: on


def get(name: str) -> Task:
    """The task called ``name``; ``ValueError`` listing the tasks if there is none."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {list(TASKS)}")
    return TASKS[name]


# ---------------------------------------------------------------------------------------------
# batches in the model's layout


@dataclasses.dataclass(frozen=True)
class Batch:
    """A padded batch: ``tape [B, T]`` tokens the model reads; ``start [B]`` where the outputs
    begin on the tape; ``y [B, M]`` targets; ``loss_mask``/``acc_mask [B, M]``."""

    tape: Array
    start: Array
    y: Array
    loss_mask: Array
    acc_mask: Array


jax.tree_util.register_dataclass(
    Batch, data_fields=["tape", "start", "y", "loss_mask", "acc_mask"], meta_fields=[]
)


def layout(task: Task, x: Array, y: Array, n) -> Batch:
    """Put inputs ``x [B, N]`` (valid below ``task.in_len(n)``) and targets ``y [B, M]`` (valid
    below ``task.out_len(n)``) on the tape ``x, blank x |y|, padding``."""
    B, N = x.shape
    M = y.shape[1]
    n = jnp.broadcast_to(jnp.asarray(n), (B,))
    L, m = task.in_len(n), task.out_len(n)
    p = _positions(N + M)
    blank = task.vocab
    tape = jnp.where(p < L[:, None], jnp.pad(x, ((0, 0), (0, M))), blank)
    j = _positions(M)
    loss_mask = j < m[:, None]
    y = jnp.where(loss_mask, y, 0)  # a valid class in the padding: no out-of-range lookups
    acc_mask = loss_mask
    if task.terminated:  # score up to and including the first end token
        end = jnp.argmax(y == 2, axis=1)
        acc_mask = loss_mask & (j <= end[:, None])
    return Batch(tape, L, y, loss_mask, acc_mask)


def sample(task: Task, key: Array, n, batch: int, N: int, pool: Batch | None = None) -> Batch:
    """A training batch at length ``n`` (traced or not) padded to ``N``."""
    if task.draw is None:
        if pool is None:
            raise ValueError(f"{task.name} samples from a pool: build one with make_pool")
        return pool_draw(pool, key, n, batch)
    x, y = task.draw(key, n, batch, N)
    return layout(task, x, y, n)


def reference(task: Task, lengths: Sequence[int], per_length: int, seed: int) -> Batch:
    """``per_length`` inputs at every length from the plain-Python definition, padded to the
    longest, in length order (``[len(lengths) * per_length, ...]``)."""
    rng = np.random.default_rng(seed)
    N = max(lengths)
    M = max(int(task.out_len(n)) for n in lengths)
    xs = np.zeros((len(lengths) * per_length, N), np.int32)
    ys = np.zeros((len(lengths) * per_length, M), np.int32)
    ns = np.repeat(np.asarray(lengths), per_length)
    for i, n in enumerate(ns):
        x = task.generate(rng, int(n))
        y = task.solve(x)
        xs[i, : len(x)], ys[i, : len(y)] = x, y
    return layout(task, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(ns))


def make_pool(task: Task, max_len: int, per_length: int, seed: int) -> Batch:
    """Host-drawn training pool: ``per_length`` examples at each length 1..max_len,
    leaves shaped ``[max_len, per_length, ...]``."""
    flat = reference(task, range(1, max_len + 1), per_length, seed)
    return jax.tree.map(lambda v: v.reshape((max_len, per_length) + v.shape[1:]), flat)


def pool_draw(pool: Batch, key: Array, n, batch: int) -> Batch:
    """``batch`` rows of the pool at length ``n`` (traced or not), chosen by ``key``."""
    rows = jax.random.randint(key, (batch,), 0, pool.tape.shape[1])
    return jax.tree.map(lambda v: v[n - 1][rows], pool)


# ---------------------------------------------------------------------------------------------
# training and scoring


def outputs(model, params, batch: Batch) -> Array:
    """Logits on the output positions, ``[B, M, C]``.

    The reference's head (``models/rnn.py``): a linear layer on ``relu`` of the last layer's
    outputs, so this runs the model's layers and applies ``params["readout"]`` itself."""
    xs = jax.nn.one_hot(batch.tape, model.input_size)
    hs = stack(model.cells, params["layers"], xs)[0]
    logits = jax.nn.relu(hs) @ params["readout"]["W"] + params["readout"]["b"]
    idx = batch.start[:, None] + _positions(batch.y.shape[1])
    return _gather_rows(logits, idx)


def _gather_rows(logits, idx):
    idx = jnp.clip(idx, 0, logits.shape[1] - 1)
    return jnp.take_along_axis(logits, idx[..., None], axis=1)


def loss(model, params, batch: Batch) -> Array:
    """Cross-entropy per output token, averaged over the valid ones (every output position,
    the padding after a termination token included, as in the reference)."""
    logp = jax.nn.log_softmax(outputs(model, params, batch))
    nll = -jnp.take_along_axis(logp, batch.y[..., None], -1)[..., 0]
    return jnp.sum(jnp.where(batch.loss_mask, nll, 0.0)) / jnp.sum(batch.loss_mask)


def hits(logits: Array, batch: Batch) -> tuple[Array, Array]:
    """Scoring from logits ``[B, M, C]``: ``(right [B], scored [B])``, the number of
    arg-max-correct tokens and of scored tokens (``acc_mask``) in each sequence."""
    right = (jnp.argmax(logits, -1) == batch.y) & batch.acc_mask
    return jnp.sum(right, 1), jnp.sum(batch.acc_mask, 1)


def accuracy(model, params, batch: Batch) -> Array:
    """Per-token accuracy of each sequence on its scored positions, ``[B]``."""
    right, scored = hits(outputs(model, params, batch), batch)
    return right / jnp.maximum(scored, 1)


def by_length(right: Array, scored: Array, n_lengths: int) -> Array:
    """Accuracy at each length, ``[..., n_lengths]``, from ``right, scored [..., L * K]`` (K
    strings per length, in length order): correct over scored tokens pooled over the K strings,
    like the reference's ``accuracy_fn`` on a batch of one length (a string with a longer
    output weighs more; for fixed-length outputs this is the mean per-string accuracy)."""
    shape = right.shape[:-1] + (n_lengths, -1)
    total = np.asarray(scored).reshape(shape).sum(-1)
    return np.asarray(right).reshape(shape).sum(-1) / np.maximum(total, 1)


def reference_init(model, key: Array) -> Any:
    """Params initialized like the reference's Haiku model: for ``LSTM`` (forget gate, no
    peepholes or projection) and ``RNN`` layers, weights ~ N(0, 1/fan_in) truncated at 2 std
    (``hk.Linear``; the LSTM's fan-in is ``input + hidden``, one linear map on ``[x, h]``),
    zero biases, and ``hk.LSTM``'s forget bias of +1 put in ``b_f`` (the cell's
    ``forget_bias``); the readout likewise. Other cells keep ``model.init``'s values."""
    params = model.init(key)
    keys = iter(jax.random.split(key, 2 * len(model.cells) + 1))

    def normal(k, fan_in, shape):
        return jax.random.truncated_normal(k, -2.0, 2.0, shape) / math.sqrt(fan_in)

    layers = []
    for cell, p, size in zip(model.cells, params["layers"], model.layer_input_sizes):
        k1, k2 = next(keys), next(keys)
        H = cell.hidden_size
        if isinstance(cell, LSTM) and cell.forget_gate and not cell.peephole and not cell.proj_size:
            fan = size + H
            b = jnp.zeros(4 * H).at[H : 2 * H].set(cell.forget_bias)
            p = dict(p, W_ih=normal(k1, fan, (size, 4 * H)), W_hh=normal(k2, fan, (H, 4 * H)), b=b)
        elif isinstance(cell, RNN):
            p = dict(p, W_ih=normal(k1, size, (size, H)), W_hh=normal(k2, H, (H, H)), b=0 * p["b"])
        layers.append(p)
    W = params["readout"]["W"]
    readout = {"W": normal(next(keys), W.shape[0], W.shape), "b": 0 * params["readout"]["b"]}
    return dict(params, layers=layers, readout=readout)


def problem(task: Task, model, *, batch: int, optimizer, train_max: int, seed: int = 0):
    """The engine's Problem: each step draws one length ``n ~ U(1, train_max)`` and a batch of
    that length (like the paper's curriculum); ``optimizer`` a recipe from
    :mod:`recurrax.optim` (the paper: Adam, constant rate, global-norm clipping); a
    ``forget_bias`` hyperparameter, when the members have one, sets the LSTM forget-gate bias
    at init. ``evaluate`` gives
    ``train_acc``: accuracy over fixed reference strings at every training length (16 each)."""
    from recurrax.problem import Problem, stateless

    pool = None if task.draw is not None else make_pool(task, train_max, 2048, seed)
    check = reference(task, range(1, train_max + 1), 16, seed + 1)

    def draw(key, hp):
        k1, k2 = jax.random.split(key)
        n = jax.random.randint(k1, (), 1, train_max + 1)
        return sample(task, k2, n, batch, train_max, pool)

    return Problem(
        init=lambda key, hp: (
            model.with_forget_bias(reference_init(model, key), hp["forget_bias"])
            if "forget_bias" in hp
            else reference_init(model, key)
        ),
        sample=draw,
        loss=stateless(lambda params, b, hp: loss(model, params, b)),
        evaluate=lambda params, hp: {"train_acc": jnp.mean(accuracy(model, params, check))},
        optimizer=optimizer,
    )


def generalization(
    task: Task,
    model,
    params,
    lengths: Sequence[int],
    per_length: int,
    seed: int = 1,
    bucket: int = 50,
) -> np.ndarray:
    """Accuracy at every test length, ``[M, len(lengths)]`` for params with a leading member
    axis ``M``: ``per_length`` reference strings per length, scored in buckets of ``bucket``
    lengths (one padded program per bucket)."""
    lengths = list(lengths)
    # members one after another (lax.map): memory stays that of one member on long tapes
    run = jax.jit(lambda ps, b: jax.lax.map(lambda p: hits(outputs(model, p, b), b), ps))
    scores = []
    for i in range(0, len(lengths), bucket):
        part = lengths[i : i + bucket]
        right, scored = run(params, reference(task, part, per_length, seed + i))
        scores.append(by_length(right, scored, len(part)))
    return np.concatenate(scores, 1)
