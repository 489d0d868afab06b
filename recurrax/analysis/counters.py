"""Which running symbol count does each memory cell hold?

For a string, the running counts ``#s`` of each symbol s up to position t give candidate
features: single counts and every difference ``#s - #s'``. Each cell's state along the string is
fitted by least squares to ``w * feature + b`` for every candidate; the report names the best
feature per cell, its slope and R² (1.0: the cell is an exact linear counter).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np


class CounterFit(NamedTuple):
    cell: int
    feature: str
    slope: float
    intercept: float
    r2: float


def count_features(text: str, alphabet: str) -> dict[str, np.ndarray]:
    """Running counts after each position of ``text`` (``[len(text)]`` per feature)."""
    counts = {s: np.cumsum([ch == s for ch in text]).astype(float) for s in alphabet}
    feats = {f"#{s}": v for s, v in counts.items()}
    for a, b in itertools.combinations(alphabet, 2):
        feats[f"#{a}-#{b}"] = counts[a] - counts[b]
    return feats


def fit_counters(states: np.ndarray, text: str, alphabet: str) -> list[CounterFit]:
    """Best linear count feature for each cell. ``states [T, H]`` along ``text`` (length T)."""
    feats = {k: v for k, v in count_features(text, alphabet).items() if np.ptp(v) > 0}
    fits = []
    for h in range(states.shape[1]):
        y = states[:, h]
        best = CounterFit(h, "-", 0.0, float(y.mean()), 0.0)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        for name, x in feats.items():
            A = np.stack([x, np.ones_like(x)], 1)
            (w, b), *_ = np.linalg.lstsq(A, y, rcond=None)
            ss_res = float(np.sum((A @ [w, b] - y) ** 2))
            r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
            if r2 > best.r2:
                best = CounterFit(h, name, float(w), float(b), r2)
        fits.append(best)
    return fits


def report(fits: list[CounterFit], threshold: float = 0.9) -> str:
    """One line per cell, e.g. ``cell 0: counts #a-#b (c = 0.31 * (#a-#b) + 0.02, R² 0.998)``."""
    lines = []
    for f in fits:
        verb = "counts" if f.r2 >= threshold else "best fit"
        lines.append(
            f"cell {f.cell}: {verb} {f.feature} (c = {f.slope:+.3f} * ({f.feature}) "
            f"{f.intercept:+.3f}, R² {f.r2:.3f})"
        )
    return "\n".join(lines)
