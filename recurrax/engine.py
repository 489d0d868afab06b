"""The compiled training engine: whole optax loops, vmapped over members (seed x hparams).

Pure functions, no file I/O (like purejaxrl's ``make_train``): :func:`init` builds the
per-member :class:`State` of ``M`` members, :func:`make_chunk` compiles one program that
advances all of them by ``chunk_evals`` evaluation intervals (``jit(vmap(...))``; the steps
between two evaluations are a ``lax.scan``). The run manager (:mod:`recurrax.runs`) calls the
chunk in a host loop and does the host work between chunks: progress bar, metrics files,
checkpoints, resume, plots. A :class:`recurrax.problem.Problem` says what is trained. Per
member:

- **early stop**: when ``evaluate(...)[target_metric] >= target`` the member's reach step is
  recorded and, with ``stop_on_target``, its params freeze;
- **NaN guard**: a step whose loss or gradients are not finite freezes the member, which is
  reported as diverged with that step; the others go on.

**Several devices**: ``Config.shard`` splits the member axis (sweeps) or each batch (large
single runs) over all devices with ``jax.sharding``. On CPU, one device per core is exposed by
``jax.config.update("jax_num_cpu_devices", N)`` before the first computation; the study entry
points do that (:func:`recurrax.cli.use_all_cores`). **Several processes** (hosts): after
``jax.distributed.initialize(...)`` in every process, the meshes span the global device list
and every process runs the same calls; :func:`to_host` reads a result whole on each of them.

The program ends when every member is done or at ``steps``. Step ``t`` of a member uses the key
``fold_in(member_key, t)``, so a run resumed from a checkpoint, a lone member and the same
member inside a sweep all see the same batches and give the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from recurrax.problem import Problem

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Config:
    """How long to train and what to do along the way.

    Attributes:
      steps: maximum training steps per member.
      eval_every: steps between evaluations (also the early-stop check).
      chunk_evals: evaluations per compiled host chunk (progress/checkpoint granularity).
      target_metric, target: a member reaches its target when ``metric >= target``.
      stop_on_target: freeze a member once it reaches its target (else record and go on).
      shard: how to use several devices: ``"members"`` (sweeps: the member axis is split over
        all devices, those of every process, when they divide it), ``"batch"`` (large single
        runs: every sampled batch is split on its leading axis, params replicated) or
        ``"none"``.
    """

    steps: int
    eval_every: int = 50
    chunk_evals: int = 4
    target_metric: str | None = None
    target: float = math.inf
    stop_on_target: bool = True
    shard: str = "members"

    def __post_init__(self) -> None:
        if self.shard not in ("members", "batch", "none"):
            raise ValueError(f"shard must be 'members', 'batch' or 'none', got {self.shard!r}")
        for name in ("steps", "eval_every", "chunk_evals"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

    @property
    def n_evals(self) -> int:
        return -(-self.steps // self.eval_every)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_evals // self.chunk_evals)


class State(NamedTuple):
    """Per-member training state (every leaf has a leading member axis ``[M, ...]``)."""

    params: Any
    opt_state: Any
    key: Array  # raw uint32 key data (checkpointable)
    step: Array  # steps taken so far
    reached: Array  # step at which the target was first reached, -1 if not (yet)
    diverged: Array  # step at which loss/grads went non-finite, -1 if never
    done: Array  # frozen: stopped on target or diverged
    problem_state: Any  # the problem's step-to-step state (``Problem.init_state``)


# ---------------------------------------------------------------------------------------------
# members


def members(
    seeds: int | Sequence[int], grid: Mapping[str, Sequence[float]], defaults: Mapping[str, float]
) -> list[dict[str, float]]:
    """Every (grid point x seed) as a dict ``{"seed": s, **hparams}``, grid-major.

    ``defaults`` names every hyperparameter the problem knows; ``grid`` overrides some of them
    with lists of values (those must not change array shapes: lr, forget bias, clip, ...).
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("need at least one seed")
    unknown = sorted(set(grid) - set(defaults))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; known: {sorted(defaults)}")
    for name, values in grid.items():
        if len(values) == 0:
            raise ValueError(f"grid for {name!r} is empty")
    names = list(grid)
    out = []
    for point in itertools.product(*(grid[n] for n in names)):
        hp = dict(defaults) | dict(zip(names, point))
        out.extend({"seed": int(s), **{k: float(v) for k, v in hp.items()}} for s in seeds)
    return out


def member_arrays(table: list[dict[str, float]]) -> tuple[Array, dict[str, Array]]:
    """The members as arrays: raw keys ``[M, 2]`` (uint32) and hyperparameters ``{name: [M]}``."""
    keys = jnp.stack([jax.random.key_data(jax.random.key(m["seed"])) for m in table])
    hps = {k: jnp.asarray([m[k] for m in table], jnp.float32) for k in table[0] if k != "seed"}
    return keys, hps


# ---------------------------------------------------------------------------------------------
# the compiled program


def _finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _select(pred: Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _init_member(problem: Problem, key: Array, hp: Mapping[str, Array]) -> State:
    k = jax.random.wrap_key_data(key)
    params = problem.init(jax.random.fold_in(k, -1 % 2**31), hp)
    opt_state = problem.optimizer(hp).init(params)
    minus1 = jnp.asarray(-1, jnp.int32)
    step, done = jnp.asarray(0, jnp.int32), jnp.asarray(False)
    return State(params, opt_state, key, step, minus1, minus1, done, problem.init_state(hp))


def _interval(problem: Problem, config: Config, state: State, hp) -> tuple[State, dict]:
    """``eval_every`` training steps then one evaluation, for one member."""
    opt = problem.optimizer(hp)
    key = jax.random.wrap_key_data(state.key)

    def one_step(state: State, _):
        active = ~state.done & (state.step < config.steps)
        batch = problem.sample(jax.random.fold_in(key, state.step), hp)
        if config.shard == "batch":
            batch = _shard_batch(batch)
        (loss, problem_state), grads = jax.value_and_grad(problem.loss, has_aux=True)(
            state.params, batch, hp, state.problem_state
        )
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & _finite(grads)
        ok = active & finite
        blew_up = active & ~finite
        state = state._replace(
            params=_select(ok, params, state.params),
            opt_state=_select(ok, opt_state, state.opt_state),
            problem_state=_select(ok, problem_state, state.problem_state),
            step=state.step + active.astype(jnp.int32),
            diverged=jnp.where(blew_up, state.step, state.diverged),
            done=state.done | blew_up,
        )
        return state, (jnp.where(ok, loss, jnp.nan), ok)

    state, (losses, oks) = jax.lax.scan(one_step, state, length=config.eval_every)
    metrics = {
        k: jnp.asarray(v, jnp.float32) for k, v in problem.evaluate(state.params, hp).items()
    }
    mean_loss = jnp.sum(jnp.where(oks, losses, 0)) / jnp.maximum(oks.sum(), 1)
    metrics["train_loss"] = jnp.where(oks.any(), mean_loss, jnp.nan)  # NaN: member was frozen
    if config.target_metric is not None:
        if config.target_metric not in metrics:
            raise ValueError(
                f"target_metric {config.target_metric!r} is not among the "
                f"evaluated metrics {sorted(metrics)}"
            )
        hit = (metrics[config.target_metric] >= config.target) & (state.reached < 0)
        hit &= state.diverged < 0
        state = state._replace(reached=jnp.where(hit, state.step, state.reached))
        if config.stop_on_target:
            state = state._replace(done=state.done | hit)
    metrics["step"] = state.step
    return state, metrics


def _chunk_fn(problem: Problem, config: Config):
    """``(states, hps) -> (states, history)``: ``chunk_evals`` intervals of every member;
    ``history[name]`` is ``[chunk_evals, M]``.

    The member vmap sits inside the interval loop so that the loop skips whole intervals once
    every member is done (a ``cond`` on an unbatched predicate); skipped rows are NaN.
    """
    interval = jax.vmap(lambda s, hp: _interval(problem, config, s, hp))

    def chunk(states: State, hps):
        shapes = jax.eval_shape(interval, states, hps)[1]

        def skip(states):
            return states, {
                k: states.step if k == "step" else jnp.full(v.shape, jnp.nan, v.dtype)
                for k, v in shapes.items()
            }

        def body(states, _):
            finished = jnp.all(states.done | (states.step >= config.steps))
            return jax.lax.cond(finished, skip, lambda s: interval(s, hps), states)

        return jax.lax.scan(body, states, length=config.chunk_evals)

    return chunk


def member_mesh(n_members: int) -> jax.sharding.Mesh | None:
    """A 1-D mesh over all devices for the member axis, if they divide it evenly."""
    n = jax.device_count()
    if n < 2 or n_members % n:
        return None
    return jax.make_mesh((n,), ("members",), axis_types=(jax.sharding.AxisType.Auto,))


def _shard_batch(batch: Any) -> Any:
    """Constrain every batch leaf whose leading axis the devices divide to be split on it."""
    n = jax.device_count()
    if n < 2:
        return batch
    mesh = jax.make_mesh((n,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    spec = jax.NamedSharding(mesh, jax.P("batch"))
    return jax.tree.map(
        lambda v: (
            jax.lax.with_sharding_constraint(v, spec) if v.ndim and v.shape[0] % n == 0 else v
        ),
        batch,
    )


def shard(tree: Any, n_members: int, config: Config) -> Any:
    """``tree`` (leaves ``[M, ...]``) placed for ``config.shard``: split over the member mesh
    when it applies, else as it is."""
    mesh = member_mesh(n_members) if config.shard == "members" else None
    if mesh is None:
        return tree
    return jax.device_put(tree, jax.NamedSharding(mesh, jax.P("members")))


def init(problem: Problem, config: Config, table: list[dict[str, float]]) -> tuple[State, dict]:
    """``(states, hps)`` of the members of ``table``: every leaf ``[M, ...]``, sharded."""
    keys, hps = shard(member_arrays(table), len(table), config)
    # placed as the chunk returns them, so that its second call does not compile again
    return shard(_compiled_init(problem)(keys, hps), len(table), config), hps


@functools.lru_cache(maxsize=8)
def _compiled_init(problem: Problem):
    return jax.jit(jax.vmap(lambda k, hp: _init_member(problem, k, hp)))


def abstract_state(problem: Problem, table: list[dict[str, float]]) -> State:
    """The shapes and dtypes of :func:`init`'s states (nothing computed): restore targets."""
    keys, hps = member_arrays(table)
    return jax.eval_shape(jax.vmap(lambda k, hp: _init_member(problem, k, hp)), keys, hps)


@functools.lru_cache(maxsize=8)
def make_chunk(problem: Problem, config: Config):
    """The compiled ``chunk(states, hps) -> (states, history)`` (states donated): every member
    advanced by ``config.chunk_evals`` evaluation intervals; ``history[name]`` is
    ``[chunk_evals, M]``, NaN for intervals skipped because every member was done.

    Cached per ``(problem, config)`` (like :func:`init`'s program; the 8 most recent), so
    training the same ``Problem`` object again (a second ``runs.train`` call, a benchmark's
    timed run) does not compile again. The cache holds those problems and whatever they
    capture; ``make_chunk.cache_clear()`` frees them. The same object is not traced again (edit a
    helper it calls and rebuild the problem); a rebuilt problem is a new key and compiles."""
    return jax.jit(_chunk_fn(problem, config), donate_argnums=0)


def to_host(tree: Any) -> Any:
    """``tree`` as numpy arrays of the same shapes, whole on every process.

    With one process this is ``np.asarray`` per leaf. With several (``jax.distributed``), a
    leaf split over devices of other processes (the member axis of a sweep over hosts) is
    gathered with ``multihost_utils.process_allgather`` (a collective: every process must call
    this with the same tree); leaves each process holds whole are read as they are.
    """
    return jax.tree.map(_host_array, tree)


def _host_array(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)


def finished(states: State, config: Config) -> np.ndarray:
    """``[M]`` bool: members frozen (target reached, diverged) or at ``config.steps``."""
    done, step = to_host((states.done, states.step))
    return done | (step >= config.steps)
