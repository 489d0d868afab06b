"""Long-memory toy tasks with their standard definitions, metrics and chance baselines.

Each task is built by a constructor that returns a :class:`Task`, a small immutable record of
the task's values and pure functions; :data:`TASKS` maps the CLI names to the constructors.

- :func:`copy` (Arjovsky, Shah & Bengio 2016): 10 symbols from an alphabet of 8, then T−1
  blanks, a delimiter and 10 blanks (length T + 20); the target is blanks, then the 10 symbols.
  Cross-entropy over all steps; the memoryless baseline (blanks, then uniform guesses) is
  ``10 ln 8 / (T + 20)``. Tokens: 0 blank, 1..8 symbols, 9 delimiter.
- :func:`copy_vector` (teaching variant): step 0 holds a random vector v ~ N(0, I₄), every other
  step noise N(0, 0.1²); predict v at the end. MSE; baseline 1 (predict 0).
- :func:`adding`, ``form="le2015"`` (Le et al. 2015 / Arjovsky et al. 2016): channels
  value ~ U[0, 1] and marker, with one 1 in each half; the target is the sum of the two marked
  values. MSE; baseline 1/6 ≈ 0.167 (predict 1).
- :func:`adding`, ``form="hs1997"`` (Hochreiter & Schmidhuber 1997, Experiment 4): pairs
  (value ~ U[−1, 1], marker); each sequence's length is drawn from {T, ..., T + T//10} (padded
  to T + T//10, real lengths in ``Batch.lengths``); one of the first 10 pairs is marked (1),
  its value is X₁; then one of the first T/2 − 1 pairs still unmarked, its value X₂; the first
  and the last pair carry marker −1 unless marked; if the first pair is marked (as X₁ or X₂),
  X₁ is set to 0 (in the input too, so the target is always 0.5 + (sum of marked values)/4).
  Target at the sequence end 0.5 + (X₁ + X₂)/4; a sequence is correct when |error| < 0.04.
  MSE; baseline = the target's variance (the best constant predicts its mean, 0.5):
  ``(2 − q) / 48`` with q = P(first pair marked) = 1/10 + 9/10 · 1/(T//2 − 2). Needs T >= 22,
  so that all of the first 10 pairs lie within the first T/2 − 1.
- :func:`xor` (sequential XOR): random bits; at every step output XOR of the current and the
  previous bit. Binary cross-entropy; baseline ln 2 (accuracy 0.5). ``parity=True``: the
  parity of all bits so far (temporal parity), much harder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
BLANK, DELIM, ALPHABET, RECALL = 0, 9, 8, 10
HS1997_TOLERANCE = 0.04  # Hochreiter & Schmidhuber (1997): correct when |error| < 0.04


class Batch(NamedTuple):
    """A batch of sequences: ``inputs [B, T, F]`` (or tokens ``[B, T]``), ``targets`` (per
    step ``[B, T, O]`` / ``[B, T]``, or at the end ``[B, O]``) and, for tasks with variable
    lengths, ``lengths [B]`` (``None`` otherwise)."""

    inputs: Array
    targets: Array
    lengths: Array | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A memory task at delay ``T``, as values and pure functions (built by the constructors).

    Attributes:
      name: the CLI name (a key of :data:`TASKS`).
      title: what it is, with its source, for table headers.
      T: the delay / minimal length parameter (its meaning per task is in the module doc).
      length: the (padded) sequence length of a batch.
      io: keyword arguments for :class:`recurrax.Model` (input, output, many-to-one).
      baseline: the loss of the best memoryless predictor.
      sample: ``(key, batch) -> Batch``.
      loss: ``(outputs, targets) -> scalar``.
      metrics: ``(outputs, targets) -> {name: scalar}``: the loss, its ratio to the baseline,
        and the task's accuracy if it has one.
      accuracy: the name of that accuracy in ``metrics`` (``None``: no accuracy).
    """

    name: str
    title: str
    T: int
    length: int
    io: Mapping[str, Any]
    baseline: float
    sample: Callable[[Array, int], Batch]
    loss: Callable[[Array, Array], Array]
    metrics: Callable[[Array, Array], dict[str, Array]]
    accuracy: str | None = None


def _check_length(name: str, T: int, minimum: int) -> None:
    if not isinstance(T, int) or T < minimum:
        raise ValueError(f"T must be an int >= {minimum} for {name}, got {T!r}")


def _mse(outputs: Array, targets: Array) -> Array:
    return jnp.mean(jnp.sum((outputs - targets) ** 2, -1)) / outputs.shape[-1]


def _metrics(loss, baseline: float, accuracy: Callable | None = None, name: str | None = None):
    def metrics(outputs: Array, targets: Array) -> dict[str, Array]:
        value = loss(outputs, targets)
        out = {"loss": value, "vs_baseline": value / baseline}
        if accuracy is not None:
            out[name] = accuracy(outputs, targets)
        return out

    return metrics


# ---------------------------------------------------------------------------------------------
# the tasks


def copy(T: int) -> Task:
    """Copy memory (Arjovsky, Shah & Bengio 2016) at delay ``T`` (length T + 20)."""
    _check_length("copy", T, 1)

    def sample(key: Array, batch: int) -> Batch:
        symbols = jax.random.randint(key, (batch, RECALL), 1, ALPHABET + 1)
        blanks = jnp.zeros((batch, T - 1), jnp.int32)
        tail = jnp.zeros((batch, RECALL), jnp.int32)
        inputs = jnp.concatenate([symbols, blanks, jnp.full((batch, 1), DELIM), tail], 1)
        targets = jnp.concatenate([jnp.zeros((batch, T + 10), jnp.int32), symbols], 1)
        return Batch(inputs, targets)

    def loss(outputs: Array, targets: Array) -> Array:
        return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()

    def recall(outputs: Array, targets: Array) -> Array:
        return jnp.mean(jnp.argmax(outputs[:, -RECALL:], -1) == targets[:, -RECALL:])

    baseline = RECALL * math.log(ALPHABET) / (T + 20)
    return Task(
        name="copy",
        title="copy (Arjovsky et al. 2016)",
        T=T,
        length=T + 20,
        io={"vocab_size": 10, "embed_size": 10, "output_size": 10},
        baseline=baseline,
        sample=sample,
        loss=loss,
        metrics=_metrics(loss, baseline, recall, "recall_acc"),
        accuracy="recall_acc",
    )


def copy_vector(T: int) -> Task:
    """Teaching variant: remember the vector of step 0 for ``T`` steps (many-to-one, MSE)."""
    _check_length("copy-vector", T, 2)

    def sample(key: Array, batch: int) -> Batch:
        k1, k2 = jax.random.split(key)
        v = jax.random.normal(k1, (batch, 4))
        noise = 0.1 * jax.random.normal(k2, (batch, T - 1, 4))
        return Batch(jnp.concatenate([v[:, None], noise], 1), v)

    return Task(
        name="copy-vector",
        title="copy-vector (teaching variant)",
        T=T,
        length=T,
        io={"input_size": 4, "output_size": 4, "many_to_one": True},
        baseline=1.0,
        sample=sample,
        loss=_mse,
        metrics=_metrics(_mse, 1.0),
    )


def adding(T: int, form: str = "le2015") -> Task:
    """The adding problem at length ``T``: ``form="le2015"`` (Le et al. 2015 / Arjovsky et al.
    2016) or ``"hs1997"`` (Hochreiter & Schmidhuber 1997, Experiment 4); both in the module
    docstring."""
    if form == "le2015":
        _check_length("adding", T, 2)
        return _adding_le2015(T)
    if form == "hs1997":
        _check_length("adding (hs1997)", T, 22)
        return _adding_hs1997(T)
    raise ValueError(f"unknown adding form {form!r}; choose 'le2015' or 'hs1997'")


def _adding_le2015(T: int) -> Task:
    def sample(key: Array, batch: int) -> Batch:
        k1, k2, k3 = jax.random.split(key, 3)
        values = jax.random.uniform(k1, (batch, T))
        half = T // 2
        first = jax.random.randint(k2, (batch,), 0, half)
        second = jax.random.randint(k3, (batch,), half, T)
        t = jnp.arange(T)
        marker = ((t == first[:, None]) | (t == second[:, None])).astype(values.dtype)
        total = jnp.sum(values * marker, 1, keepdims=True)
        return Batch(jnp.stack([values, marker], -1), total)

    return Task(
        name="adding",
        title="adding (Le et al. 2015 form)",
        T=T,
        length=T,
        io={"input_size": 2, "output_size": 1, "many_to_one": True},
        baseline=1 / 6,
        sample=sample,
        loss=_mse,
        metrics=_metrics(_mse, 1 / 6),
    )


def hs1997_first_marked(T: int) -> float:
    """q = P(the first pair is marked) in Hochreiter & Schmidhuber's adding problem: as X₁
    (1/10), or else as X₂ (1 of the T//2 − 2 unmarked pairs among the first T//2 − 1)."""
    return 1 / 10 + 9 / 10 / (T // 2 - 2)


def _adding_hs1997(T: int) -> Task:
    longest, K = T + T // 10, T // 2 - 1  # X₂ is one of the first K pairs

    def sample(key: Array, batch: int) -> Batch:
        k_val, k_len, k1, k2 = jax.random.split(key, 4)
        values = jax.random.uniform(k_val, (batch, longest), minval=-1.0, maxval=1.0)
        lengths = jax.random.randint(k_len, (batch,), T, longest + 1)
        p1 = jax.random.randint(k1, (batch,), 0, 10)
        r = jax.random.randint(k2, (batch,), 0, K - 1)  # among the K - 1 still unmarked
        p2 = r + (r >= p1)
        t = jnp.arange(longest)
        real = t < lengths[:, None]
        is1, is2 = t == p1[:, None], t == p2[:, None]
        first_marked = (p1 == 0) | (p2 == 0)
        values = jnp.where(is1 & first_marked[:, None], 0.0, values)  # X₁ := 0
        ends = (t == 0) | (t == lengths[:, None] - 1)
        marker = jnp.where(is1 | is2, 1.0, jnp.where(ends, -1.0, 0.0))
        values, marker = jnp.where(real, values, 0.0), jnp.where(real, marker, 0.0)
        x1, x2 = jnp.sum(values * is1, 1), jnp.sum(values * is2, 1)
        target = (0.5 + (x1 + x2) / 4)[:, None]
        return Batch(jnp.stack([values, marker], -1), target, lengths)

    def correct(outputs: Array, targets: Array) -> Array:
        return jnp.mean(jnp.abs(outputs - targets)[..., 0] < HS1997_TOLERANCE)

    baseline = (2 - hs1997_first_marked(T)) / 48
    return Task(
        name="adding",
        title="adding (Hochreiter & Schmidhuber 1997, Experiment 4)",
        T=T,
        length=longest,
        io={"input_size": 2, "output_size": 1, "many_to_one": True},
        baseline=baseline,
        sample=sample,
        loss=_mse,
        metrics=_metrics(_mse, baseline, correct, "correct_frac"),
        accuracy="correct_frac",
    )


def xor(T: int, parity: bool = False) -> Task:
    """Sequential XOR of the current and the previous bit over ``T`` steps; ``parity``: the
    parity of all bits so far (temporal parity)."""
    _check_length("xor", T, 2)

    def sample(key: Array, batch: int) -> Batch:
        bits = jax.random.bernoulli(key, 0.5, (batch, T)).astype(jnp.int32)
        if parity:
            target = jnp.cumsum(bits, 1) % 2
        else:
            target = bits ^ jnp.pad(bits, ((0, 0), (1, 0)))[:, :-1]
        return Batch(bits[..., None].astype(jnp.float32), target[..., None].astype(jnp.float32))

    def loss(outputs: Array, targets: Array) -> Array:
        return optax.sigmoid_binary_cross_entropy(outputs, targets).mean()

    def acc(outputs: Array, targets: Array) -> Array:
        return jnp.mean((outputs > 0) == (targets > 0.5))

    return Task(
        name="xor",
        title="temporal parity" if parity else "sequential xor",
        T=T,
        length=T,
        io={"input_size": 1, "output_size": 1},
        baseline=math.log(2),
        sample=sample,
        loss=loss,
        metrics=_metrics(loss, math.log(2), acc, "acc"),
        accuracy="acc",
    )


TASKS: dict[str, Callable[..., Task]] = {
    "copy": copy,
    "copy-vector": copy_vector,
    "adding": adding,
    "xor": xor,
}


def problem(
    task: Task, model, *, batch: int, optimizer, eval_batch: int = 1000, chrono: bool = False
):
    """The engine's Problem: ``optimizer`` a recipe from :mod:`recurrax.optim` (the study:
    Adam with cosine decay to 0.1 x and global-norm clipping), evaluation on a fixed batch of
    ``eval_batch`` fresh sequences.
    ``chrono``: LSTM layers start from chrono initialization with ``t_max`` = the sequence
    length (:meth:`recurrax.cells.LSTM.chrono`). Variable lengths reach the model as
    ``Model.apply(..., lengths=...)``."""
    from recurrax.cells import LSTM
    from recurrax.problem import Problem, stateless

    # numpy, not jax arrays: Model.apply checks concrete lengths with np.min, which a jax array
    # closed over by the compiled evaluation would turn into a tracer
    held_out = jax.tree.map(np.asarray, task.sample(jax.random.key(2**31 - 1), eval_batch))

    def outputs(params, b: Batch) -> Array:
        return model.apply(params, b.inputs, lengths=b.lengths)[0]

    def init(key, hp):
        params = model.init(key)
        if chrono:
            keys = jax.random.split(jax.random.fold_in(key, 1), len(model.cells))
            params["layers"] = [
                cell.chrono(p, k, task.length) if isinstance(cell, LSTM) else p
                for cell, p, k in zip(model.cells, params["layers"], keys)
            ]
        return params

    return Problem(
        init=init,
        sample=lambda key, hp: task.sample(key, batch),
        loss=stateless(lambda params, b, hp: task.loss(outputs(params, b), b.targets)),
        evaluate=lambda params, hp: task.metrics(outputs(params, held_out), held_out.targets),
        optimizer=optimizer,
    )
