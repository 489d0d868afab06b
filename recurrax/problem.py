"""The interface between tasks and the training engine (kept at the bottom layer).

A :class:`Problem` is a small immutable record of pure functions of a member's
hyperparameters ``hp`` (a dict of scalars: ``lr``, ``clip``, ``forget_bias`` ...), like
optax's ``GradientTransformation(init, update)``. Its ``loss`` has one signature and always
carries the problem's step-to-step state; :func:`stateless` adapts a plain loss, as
``optax.stateless`` adapts a plain update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import optax

Array = jax.Array
HParams = Mapping[str, Array]


class Problem(NamedTuple):
    """What is trained, as pure functions of a member's hyperparameters ``hp``.

    - ``init(key, hp) -> params``
    - ``sample(key, hp) -> batch``                      (jit-able, key-driven)
    - ``loss(params, batch, hp, state) -> (scalar, state)``
    - ``evaluate(params, hp) -> {name: scalar}``       (compiled, every ``eval_every`` steps)
    - ``optimizer(hp) -> optax.GradientTransformation`` (hp values may be traced: lr, clip, ...;
      the recipes are in :mod:`recurrax.optim`)
    - ``init_state(hp) -> state``: what one step hands to the next. Stateless problems keep
      ``()``; stateful ones, like truncated BPTT over text streams where each step continues
      where the last one stopped, keep their carry here, and the engine keeps it per member
      (and in checkpoints).
    """

    init: Callable[[Array, HParams], Any]
    sample: Callable[[Array, HParams], Any]
    loss: Callable[[Any, Any, HParams, Any], tuple[Array, Any]]
    evaluate: Callable[[Any, HParams], dict[str, Array]]
    optimizer: Callable[[HParams], optax.GradientTransformation]
    init_state: Callable[[HParams], Any] = lambda hp: ()


def stateless(
    loss: Callable[[Any, Any, HParams], Array],
) -> Callable[[Any, Any, HParams, Any], tuple[Array, Any]]:
    """``loss(params, batch, hp) -> scalar`` as a :class:`Problem` loss that passes its state
    through unchanged."""

    def with_state(params: Any, batch: Any, hp: HParams, state: Any) -> tuple[Array, Any]:
        return loss(params, batch, hp), state

    return with_state
