"""The interface between tasks and the training engine (kept at the bottom layer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

Array = jax.Array
HParams = Mapping[str, Array]


@dataclasses.dataclass(frozen=True)
class Problem:
    """What is trained, as five pure functions of a member's hyperparameters ``hp``.

    - ``init(key, hp) -> params``
    - ``sample(key, hp) -> batch``                       (jit-able, key-driven)
    - ``loss(params, batch, hp) -> scalar``
    - ``evaluate(params, hp) -> {name: scalar}``        (compiled, every ``eval_every`` steps)
    - ``optimizer(hp) -> optax.GradientTransformation``  (hp values may be traced: lr, clip, ...)

    Stateful problems (truncated BPTT over streams, where each step continues where the last
    one stopped) also give ``init_carry(hp) -> carry``; their loss is then
    ``loss(params, batch, hp, carry) -> (scalar, new_carry)`` and the engine keeps the carry
    per member (and in checkpoints) between steps.
    """

    init: Callable[[Array, HParams], Any]
    sample: Callable[[Array, HParams], Any]
    loss: Callable[[Any, Any, HParams], Array]
    evaluate: Callable[[Any, HParams], dict[str, Array]]
    optimizer: Callable[[HParams], optax.GradientTransformation]
    init_carry: Callable[[HParams], Any] | None = None
