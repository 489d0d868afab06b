"""Formal languages: samplers, legal sets (vs a brute-force reference), the range test sets,
both acceptance criteria, chance predictors that must fail, and a small fixed-seed training
that learns aⁿbⁿ."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

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
