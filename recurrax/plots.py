"""Figures of the studies, built with matplotlib's object API.

Every function builds a :class:`matplotlib.figure.Figure`, saves it as PNG when given a
``path`` and returns it. Nothing here touches pyplot's global state or the backend, so the
figures display inline in Jupyter (a returned figure shows as the cell's result) and work
headless in scripts alike.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from matplotlib.figure import Figure

PathOrNone = str | os.PathLike | None


def _subplots(nrows: int = 1, ncols: int = 1, **kw):
    fig = Figure(figsize=kw.pop("figsize", None))
    axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def _finish(fig: Figure, path: PathOrNone) -> Figure:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def learning_curves(
    history: dict[str, np.ndarray],
    table: list[dict] | None = None,
    target: tuple[str | None, float] = (None, np.inf),
    path: PathOrNone = None,
) -> Figure | None:
    """One panel per metric; one line per grid point of ``table`` (its members' median over
    seeds) with the 25-75% band; a dashed line at the target.

    ``history[name]`` is ``[n_evals, M]``; ``history["step"]`` gives the x axis; ``table``
    (seed and hyperparameters per member) groups the members (default: one group).
    """
    names = [k for k in history if k != "step"]
    if not names:
        return None
    M = history["step"].shape[1]
    groups: dict[str, list[int]] = {}
    for m in range(M):
        hp = {k: v for k, v in (table[m] if table else {}).items() if k != "seed"}
        varying = {k: v for k, v in hp.items() if len({row.get(k) for row in table}) > 1}
        label = " ".join(f"{k}={v:g}" for k, v in varying.items()) or "all members"
        groups.setdefault(label, []).append(m)
    fig, axes = _subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    steps = np.nanmax(history["step"], axis=1)
    for ax, name in zip(axes[0], names):
        values = history[name]
        for label, members in groups.items():
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                v = values[:, members]
                med = np.nanmedian(v, axis=1)
                lo, hi = np.nanpercentile(v, [25, 75], axis=1)
            (line,) = ax.plot(steps, med, lw=1.6, label=f"{label} ({len(members)})")
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        if target[0] == name and np.isfinite(target[1]):
            ax.axhline(target[1], color="tab:red", ls="--", lw=1, label="target")
        if name.endswith("loss") and np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.legend(loc="best", fontsize=7)
    return _finish(fig, path)


def mechanics(
    text: str,
    internals: dict[str, np.ndarray],
    probs: np.ndarray,
    legal: np.ndarray,
    vocab: tuple[str, ...],
    path: PathOrNone = None,
    title: str = "",
) -> Figure:
    """The classic picture of an LSTM reading one string: gates, cell states, outputs and the
    predicted next-symbol probabilities (legal symbols outlined), all over time.

    ``internals[name]`` is ``[T, H]`` for each gate/state, ``probs`` and ``legal`` ``[T, V]``.
    """
    panels = [k for k in ("i", "f", "o", "r", "z", "c", "h") if k in internals]
    fig, axes = _subplots(
        len(panels) + 1,
        1,
        figsize=(max(6, 0.22 * len(text) + 2), 1.6 * (len(panels) + 1) + 0.6),
        sharex=True,
    )
    names = {
        "i": "input gate",
        "f": "forget gate",
        "o": "output gate",
        "r": "reset gate",
        "z": "update gate",
        "c": "cell state c",
        "h": "output h",
    }
    t = np.arange(len(text))
    for ax, k in zip(axes, panels):
        for j in range(internals[k].shape[1]):
            ax.plot(t, internals[k][:, j], marker=".", lw=1, label=f"cell {j}")
        ax.set_ylabel(names[k], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    ax = axes[-1]
    ax.imshow(probs.T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ys, xs = np.nonzero(legal.T)
    ax.scatter(xs, ys, s=14, facecolors="none", edgecolors="red", linewidths=0.8)
    ax.set_yticks(range(len(vocab)), [repr(v)[1:-1] for v in vocab], fontsize=7)
    ax.set_ylabel("P(next)", fontsize=8)
    ax.set_xticks(t, list(text), fontsize=7)
    ax.set_xlabel("input symbol (red circles: legal next symbols)")
    fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def states_by_length(
    curves: list[tuple[int, np.ndarray]], path: PathOrNone = None, title: str = ""
) -> Figure:
    """Cell states along strings of several n: ``curves = [(n, c [T, H]), ...]``; one panel
    per cell, position on x scaled to [0, 1] so that counters line up."""
    H = curves[0][1].shape[1]
    fig, axes = _subplots(1, H, figsize=(4 * H, 3.2), squeeze=False)
    for n, c in curves:
        x = np.linspace(0, 1, len(c))
        for j in range(H):
            axes[0, j].plot(x, c[:, j], lw=1.2, label=f"n={n}")
    for j in range(H):
        axes[0, j].set_title(f"cell {j}", fontsize=9)
        axes[0, j].set_xlabel("position / length")
        axes[0, j].grid(alpha=0.3)
    axes[0, 0].set_ylabel("cell state c")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def ranges(groups: dict[str, np.ndarray], n_train: int, path: PathOrNone = None) -> Figure:
    """Generalization range of every member, sorted, one line per configuration (log scale)."""
    fig, ax = _subplots(figsize=(7, 4))
    for name, r in groups.items():
        ax.plot(np.sort(r)[::-1], lw=1.5, label=name)
    ax.axhline(n_train, color="gray", ls="--", lw=1, label="training max")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("member (sorted)")
    ax.set_ylabel("generalization range N")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def flow_curves(
    curves: dict[str, np.ndarray],
    bands: dict[str, tuple[np.ndarray, np.ndarray]],
    ylabel: str,
    title: str = "",
    path: PathOrNone = None,
) -> Figure:
    """log10 gradient norms against the horizon T (T = 1..), one line per cell, with an
    optional shaded band (e.g. the 25-75% spread over seeds)."""
    fig, ax = _subplots(figsize=(7, 4.2))
    for name, y in curves.items():
        t = np.arange(1, len(y) + 1)
        (line,) = ax.plot(t, y, lw=1.8, label=name)
        if name in bands:
            ax.fill_between(t, *bands[name], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("T (steps between h0 or x0 and the loss)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def band_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    baseline: float | None = None,
    ylabel: str = "loss",
    title: str = "",
    path: PathOrNone = None,
) -> Figure:
    """Learning curves per group: ``curves[name] = (steps [n], values [n, seeds])``; the median
    line and the 25-75% band over seeds; an optional dashed baseline; log y."""
    fig, ax = _subplots(figsize=(7, 4.2))
    for name, (steps, values) in curves.items():
        with np.errstate(all="ignore"):
            med = np.nanmedian(values, 1)
            lo, hi = np.nanpercentile(values, [25, 75], axis=1)
        (line,) = ax.plot(steps, med, lw=1.8, label=name)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if baseline is not None:
        ax.axhline(baseline, color="black", ls="--", lw=1, label="memoryless baseline")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def length_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    chance: float,
    train_max: int,
    title: str = "",
    path: PathOrNone = None,
) -> Figure:
    """Accuracy against string length per cell: ``curves[name] = (lengths [n], acc [M, n])``;
    the best member (highest mean) as a line, the range over members shaded, chance dashed and
    the longest training length marked."""
    fig, ax = _subplots(figsize=(7, 4.2))
    for name, (lengths, acc) in curves.items():
        best = acc[int(np.argmax(acc.mean(1)))]
        (line,) = ax.plot(lengths, best, lw=1.5, label=f"{name} (best member)")
        ax.fill_between(lengths, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.15, lw=0)
    ax.axhline(chance, color="black", ls="--", lw=1, label="chance")
    ax.axvline(train_max, color="grey", ls=":", lw=1, label="longest training length")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("string length")
    ax.set_ylabel("per-token accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)
