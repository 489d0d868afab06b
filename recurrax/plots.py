"""Matplotlib figures written as PNG (headless, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(
    history: dict[str, np.ndarray],
    path: str | os.PathLike,
    target: tuple[str | None, float] = (None, np.inf),
) -> None:
    """One panel per metric: every member thin, the median over members bold.

    ``history[name]`` is ``[n_evals, M]``; ``history["step"]`` gives the x axis.
    """
    names = [k for k in history if k != "step"]
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    steps = np.nanmax(history["step"], axis=1)
    for ax, name in zip(axes[0], names):
        values = history[name]
        ax.plot(steps, values, color="tab:blue", alpha=max(0.08, 1 / values.shape[1]), lw=0.8)
        with np.errstate(all="ignore"):
            ax.plot(steps, np.nanmedian(values, axis=1), color="black", lw=2, label="median")
        if target[0] == name and np.isfinite(target[1]):
            ax.axhline(target[1], color="tab:red", ls="--", lw=1, label="target")
        if name.endswith("loss") and np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
