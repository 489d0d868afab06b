"""Long-memory toy tasks with their standard definitions, metrics and chance baselines.

- **copy** (Arjovsky, Shah & Bengio 2016): 10 symbols from an alphabet of 8, then T−1 blanks,
  a delimiter and 10 blanks (length T + 20); the target is blanks, then the 10 symbols.
  Cross-entropy over all steps; the memoryless baseline (blanks, then uniform guesses)
  is ``10 ln 8 / (T + 20)``. Tokens: 0 blank, 1..8 symbols, 9 delimiter.
- **copy-vector** (teaching variant): step 0 holds a random vector v ~ N(0, I₄), every other
  step noise N(0, 0.1²); predict v at the end. MSE; baseline 1 (predict 0).
- **adding** (Le et al. 2015 / Arjovsky et al. form): channels value ~ U[0, 1] and marker, with
  one 1 in each half; the target is the sum of the two marked values. MSE; baseline 1/6 ≈ 0.167
  (predict 1). ``hs1997=True`` gives Hochreiter & Schmidhuber's form: values in [−1, 1],
  target 0.5 + (x₁ + x₂)/4, a sequence solved when |error| < 0.04, baseline 1/24 (predict 0.5).
- **xor** (sequential XOR): random bits; at every step output XOR of the current and the
  previous bit. Binary cross-entropy; baseline ln 2 (accuracy 0.5). ``parity=True``: the
  parity of all bits so far (temporal parity), much harder.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
BLANK, DELIM, ALPHABET, RECALL = 0, 9, 8, 10


@dataclasses.dataclass(frozen=True)
class Task:
    """A memory task at delay ``T``: sampler, loss, metrics and baseline.

    Attributes:
      name: ``copy``, ``copy-vector``, ``adding`` or ``xor``.
      T: the delay / sequence length parameter (its meaning per task is in the module doc).
      hs1997: adding problem in Hochreiter & Schmidhuber's 1997 form.
      parity: xor as temporal parity.
    """

    name: str
    T: int
    hs1997: bool = False
    parity: bool = False

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; choose from {list(TASKS)}")
        minimum = {"copy": 1, "copy-vector": 2, "adding": 2, "xor": 2}[self.name]
        if not isinstance(self.T, int) or self.T < minimum:
            raise ValueError(f"T must be an int >= {minimum} for {self.name}, got {self.T!r}")

    # --- shapes the model needs ------------------------------------------------------------
    @property
    def length(self) -> int:
        return self.T + 20 if self.name == "copy" else self.T

    @property
    def io(self) -> dict:
        """Keyword arguments for :class:`recurrax.Model` (input, output, many-to-one)."""
        return {
            "copy": {"vocab_size": 10, "embed_size": 10, "output_size": 10},
            "copy-vector": {"input_size": 4, "output_size": 4, "many_to_one": True},
            "adding": {"input_size": 2, "output_size": 1, "many_to_one": True},
            "xor": {"input_size": 1, "output_size": 1},
        }[self.name]

    @property
    def baseline(self) -> float:
        """The loss of the best memoryless predictor."""
        if self.name == "copy":
            return RECALL * math.log(ALPHABET) / (self.T + 20)
        if self.name == "adding":
            return 1 / 24 if self.hs1997 else 1 / 6
        return {"copy-vector": 1.0, "xor": math.log(2)}[self.name]

    # --- data ------------------------------------------------------------------------------
    def sample(self, key: Array, batch: int) -> tuple[Array, Array]:
        """``(inputs, targets)`` for a batch; shapes per task in :attr:`io`."""
        return getattr(self, "_" + self.name.replace("-", "_"))(key, batch)

    def _copy(self, key, batch):
        symbols = jax.random.randint(key, (batch, RECALL), 1, ALPHABET + 1)
        blanks = jnp.zeros((batch, self.T - 1), jnp.int32)
        tail = jnp.zeros((batch, RECALL), jnp.int32)
        inputs = jnp.concatenate([symbols, blanks, jnp.full((batch, 1), DELIM), tail], 1)
        targets = jnp.concatenate([jnp.zeros((batch, self.T + 10), jnp.int32), symbols], 1)
        return inputs, targets

    def _copy_vector(self, key, batch):
        k1, k2 = jax.random.split(key)
        v = jax.random.normal(k1, (batch, 4))
        noise = 0.1 * jax.random.normal(k2, (batch, self.T - 1, 4))
        return jnp.concatenate([v[:, None], noise], 1), v

    def _adding(self, key, batch):
        k1, k2, k3 = jax.random.split(key, 3)
        lo, hi = (-1.0, 1.0) if self.hs1997 else (0.0, 1.0)
        values = jax.random.uniform(k1, (batch, self.T), minval=lo, maxval=hi)
        half = self.T // 2
        first = jax.random.randint(k2, (batch,), 0, half)
        second = jax.random.randint(k3, (batch,), half, self.T)
        t = jnp.arange(self.T)
        marker = ((t == first[:, None]) | (t == second[:, None])).astype(values.dtype)
        total = jnp.sum(values * marker, 1, keepdims=True)
        target = 0.5 + total / 4 if self.hs1997 else total
        return jnp.stack([values, marker], -1), target

    def _xor(self, key, batch):
        bits = jax.random.bernoulli(key, 0.5, (batch, self.T)).astype(jnp.int32)
        if self.parity:
            target = jnp.cumsum(bits, 1) % 2
        else:
            target = bits ^ jnp.pad(bits, ((0, 0), (1, 0)))[:, :-1]
        return bits[..., None].astype(jnp.float32), target[..., None].astype(jnp.float32)

    # --- loss and metrics ------------------------------------------------------------------
    def loss(self, outputs: Array, targets: Array) -> Array:
        if self.name == "copy":
            return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
        if self.name == "xor":
            return optax.sigmoid_binary_cross_entropy(outputs, targets).mean()
        return jnp.mean(jnp.sum((outputs - targets) ** 2, -1)) / outputs.shape[-1]

    def metrics(self, outputs: Array, targets: Array) -> dict[str, Array]:
        """The loss, its ratio to the baseline, and the task's accuracy."""
        loss = self.loss(outputs, targets)
        out = {"loss": loss, "vs_baseline": loss / self.baseline}
        if self.name == "copy":
            recalled = jnp.argmax(outputs[:, -RECALL:], -1) == targets[:, -RECALL:]
            out["recall_acc"] = recalled.mean()
        elif self.name == "xor":
            out["acc"] = jnp.mean((outputs > 0) == (targets > 0.5))
        elif self.name == "adding" and self.hs1997:
            out["solved_frac"] = jnp.mean(jnp.abs(outputs - targets) < 0.04)
        return out


TASKS = ("copy", "copy-vector", "adding", "xor")


def problem(
    task: Task, model, *, batch: int, optimizer, eval_batch: int = 1000, chrono: bool = False
):
    """The engine's Problem: ``optimizer`` a recipe from :mod:`recurrax.optim` (the study:
    Adam with cosine decay to 0.1 x and global-norm clipping), evaluation on a fixed batch of
    ``eval_batch`` fresh sequences.
    ``chrono``: LSTM layers start from chrono initialization with ``t_max`` = the sequence
    length (:meth:`recurrax.cells.LSTM.chrono`)."""
    from recurrax.cells import LSTM
    from recurrax.problem import Problem, stateless

    eval_inputs, eval_targets = task.sample(jax.random.key(2**31 - 1), eval_batch)

    def loss(params, batch_, hp):
        inputs, targets = batch_
        return task.loss(model.apply(params, inputs)[0], targets)

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
        loss=stateless(loss),
        evaluate=lambda params, hp: task.metrics(model.apply(params, eval_inputs)[0], eval_targets),
        optimizer=optimizer,
    )
