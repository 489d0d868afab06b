"""Reading learning curves: summaries the studies and notebooks share."""

from __future__ import annotations

import numpy as np


def first_median_below(steps: np.ndarray, values: np.ndarray, level: float) -> int | None:
    """The first evaluation step at which the median over members of ``values [n_evals, M]``
    is ``<= level`` (e.g. 10% of a task's memoryless baseline), or None if it never is;
    ``steps [n_evals]``."""
    with np.errstate(all="ignore"):
        median = np.nanmedian(values, axis=1)
    hit = np.nonzero(median <= level)[0]
    return int(steps[hit[0]]) if hit.size else None


def spread(values: np.ndarray) -> dict[str, float]:
    """Mean, std, min, median and max of per-member final values ``[M]``."""
    v = np.asarray(values, np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "median": float(np.median(v)),
        "max": float(v.max()),
    }
