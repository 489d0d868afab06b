"""Optimizer recipes for :class:`recurrax.problem.Problem`: ``hp -> optax.GradientTransformation``.

A recipe reads the member's (possibly traced) hyperparameters ``hp["lr"]`` and, with
``clip=True``, ``hp["clip"]``, so learning rates and clip norms can be swept as members. The
tasks do not choose optimizers; the studies pass one of these to the task's ``problem(...)``:

>>> opt = adam(steps=2000, decay="linear", end=0.2)   # Adam, lr decaying linearly to 0.2 x lr
>>> opt({"lr": 0.05})                                 # an optax.GradientTransformation
"""

from __future__ import annotations

from collections.abc import Callable

import optax

from recurrax.problem import HParams

DECAYS = ("constant", "linear", "cosine")


def schedule(
    lr, *, steps: int = 1, decay: str = "constant", end: float = 1.0, warmup: int = 0
) -> optax.ScalarOrSchedule:
    """Learning rate ``lr`` after a linear warm-up from 0 over ``warmup`` steps, then
    ``decay``: ``"constant"``, ``"linear"`` or ``"cosine"`` to ``end x lr`` at ``steps``."""
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
    if not 0.0 <= end <= 1.0:
        raise ValueError(f"end must be in [0, 1], got {end}")
    if warmup < 0 or steps < 1:
        raise ValueError(f"need warmup >= 0 and steps >= 1, got {warmup} and {steps}")
    if decay == "constant" and not warmup:
        return lr
    rest = max(steps - warmup, 1)
    tail = {
        "constant": lambda: optax.constant_schedule(lr),
        "linear": lambda: optax.linear_schedule(lr, end * lr, rest),
        "cosine": lambda: optax.cosine_decay_schedule(lr, rest, alpha=end),
    }[decay]()
    if not warmup:
        return tail
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), tail], [warmup])


def adam(
    *,
    steps: int = 1,
    decay: str = "constant",
    end: float = 1.0,
    warmup: int = 0,
    clip: bool = False,
) -> Callable[[HParams], optax.GradientTransformation]:
    """Adam at ``hp["lr"]`` on :func:`schedule`; with ``clip``, gradients are first clipped
    to global norm ``hp["clip"]`` (Pascanu et al. 2013)."""
    schedule(1.0, steps=steps, decay=decay, end=end, warmup=warmup)  # validate now

    def make(hp: HParams) -> optax.GradientTransformation:
        rate = schedule(hp["lr"], steps=steps, decay=decay, end=end, warmup=warmup)
        opt = optax.adam(rate)
        return optax.chain(optax.clip_by_global_norm(hp["clip"]), opt) if clip else opt

    return make
