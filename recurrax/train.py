"""The training engine: whole optax loops compiled, vmapped over members (seed x hparams).

A :class:`recurrax.problem.Problem` is five pure functions of a member's hyperparameters
``hp`` (a dict of scalars): ``init``, ``sample``, ``loss``, ``evaluate`` and ``optimizer``.

:func:`train` runs ``M`` members in one program (``jit(vmap(...))``): the steps between two
evaluations are a ``lax.scan``, a host *chunk* is ``chunk_evals`` of those, and host work
(progress bar, metrics, checkpoints) happens only between chunks. Per member:

- **early stop**: when ``evaluate(...)[target_metric] >= target`` the member's reach step is
  recorded and, with ``stop_on_target``, its params freeze;
- **NaN guard**: a step whose loss or gradients are not finite freezes the member, which is
  reported as diverged with that step; the others go on.

**Several devices**: ``Config.shard`` splits the member axis (sweeps) or each batch (large
single runs) over all local devices with ``jax.sharding``. On CPU, expose one device per core
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before jax is imported).
**Several hosts**: start the same script on every host and call
``jax.distributed.initialize()`` first; ``jax.devices()`` then spans all hosts and the same
shardings apply (the meshes here use local devices; multi-host runs were not tested on the
single machine this was built on).

The program ends when every member is done or at ``steps``. Step ``t`` of a member uses the key
``fold_in(member_key, t)``, so a run resumed from a checkpoint, a lone member and the same
member inside a sweep all see the same batches and give the same numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
      checkpoint_every: save a checkpoint every this many chunks (0: never).
      keep: checkpoints kept.
      shard: how to use several devices: ``"members"`` (sweeps: the member axis is split over
        all local devices when they divide it), ``"batch"`` (large single runs: every sampled
        batch is split on its leading axis, params replicated) or ``"none"``.
    """

    steps: int
    eval_every: int = 50
    chunk_evals: int = 4
    target_metric: str | None = None
    target: float = math.inf
    stop_on_target: bool = True
    checkpoint_every: int = 1
    keep: int = 3
    shard: str = "members"

    def __post_init__(self) -> None:
        if self.shard not in ("members", "batch", "none"):
            raise ValueError(f"shard must be 'members', 'batch' or 'none', got {self.shard!r}")
        for name in ("steps", "eval_every", "chunk_evals", "keep"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")

    @property
    def n_evals(self) -> int:
        return -(-self.steps // self.eval_every)


class State(NamedTuple):
    """Per-member training state (every leaf has a leading member axis ``[M, ...]``)."""

    params: Any
    opt_state: Any
    key: Array  # raw uint32 key data (checkpointable)
    step: Array  # steps taken so far
    reached: Array  # step at which the target was first reached, -1 if not (yet)
    diverged: Array  # step at which loss/grads went non-finite, -1 if never
    done: Array  # frozen: stopped on target or diverged
    carry: Any  # the problem's step-to-step state (stateful problems), else a placeholder


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


def _stack(table: list[dict[str, float]]) -> tuple[Array, dict[str, Array]]:
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
    carry = problem.init_carry(hp) if problem.init_carry else jnp.zeros(())
    step, done = jnp.asarray(0, jnp.int32), jnp.asarray(False)
    return State(params, opt_state, key, step, minus1, minus1, done, carry)


def _interval(problem: Problem, config: Config, state: State, hp) -> tuple[State, dict]:
    """``eval_every`` training steps then one evaluation, for one member."""
    opt = problem.optimizer(hp)
    key = jax.random.wrap_key_data(state.key)

    def one_step(state: State, _):
        active = ~state.done & (state.step < config.steps)
        batch = problem.sample(jax.random.fold_in(key, state.step), hp)
        if config.shard == "batch":
            batch = _shard_batch(batch)
        if problem.init_carry is None:
            loss, grads = jax.value_and_grad(problem.loss)(state.params, batch, hp)
            carry = state.carry
        else:
            (loss, carry), grads = jax.value_and_grad(problem.loss, has_aux=True)(
                state.params, batch, hp, state.carry
            )
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & _finite(grads)
        ok = active & finite
        blew_up = active & ~finite
        state = state._replace(
            params=_select(ok, params, state.params),
            opt_state=_select(ok, opt_state, state.opt_state),
            carry=_select(ok, carry, state.carry),
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
    """``(states, hps) -> (states, history)``: ``chunk_evals`` intervals of every member.

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


# ---------------------------------------------------------------------------------------------
# the host loop


class Result(NamedTuple):
    """What :func:`train` returns (and writes to its run folder)."""

    table: list[dict[str, float]]  # the members: seed and hyperparameters
    state: State  # final state, leaves ``[M, ...]``
    history: dict[str, np.ndarray]  # every evaluation: ``[n_evals_run, M]`` per metric
    summary: list[dict[str, Any]]  # per member: reach/diverge steps and final metrics


def member_mesh(n_members: int) -> jax.sharding.Mesh | None:
    """A 1-D mesh over all local devices for the member axis, if they divide it evenly."""
    n = jax.local_device_count()
    if n < 2 or n_members % n:
        return None
    return jax.make_mesh((n,), ("members",), axis_types=(jax.sharding.AxisType.Auto,))


def _shard_batch(batch: Any) -> Any:
    """Constrain every batch leaf whose leading axis the devices divide to be split on it."""
    n = jax.local_device_count()
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


def _shard(tree: Any, mesh: jax.sharding.Mesh | None) -> Any:
    if mesh is None:
        return tree
    return jax.device_put(tree, jax.NamedSharding(mesh, jax.P("members")))


class _Checkpoints:
    """Orbax checkpoints of the state, one per saved chunk; falls back past unreadable ones."""

    def __init__(self, path: Path, keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.manager = ocp.CheckpointManager(
            path.resolve(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False
            ),
        )

    def save(self, chunk: int, state: State) -> None:
        self.manager.save(chunk, args=self._ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def restore_latest(self, like: State) -> tuple[int, State] | None:
        for chunk in sorted(self.manager.all_steps(), reverse=True):
            try:
                abstract = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), like)
                state = self.manager.restore(chunk, args=self._ocp.args.StandardRestore(abstract))
                return chunk, State(*state)
            except Exception as err:  # noqa: BLE001 - any failure means: unreadable
                msg = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                print(
                    f"warning: checkpoint {chunk} is unreadable ({msg}); trying an older one",
                    file=sys.stderr,
                )
        return None


def _check_run_folder(out: Path, run_config: dict, resume: bool) -> None:
    stored = out / "config.json"
    if not resume:
        if stored.exists():
            raise FileExistsError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        return
    if not stored.exists():
        raise FileNotFoundError(f"cannot resume: {out} holds no config.json")
    old = json.loads(stored.read_text())
    if old != run_config:
        diff = sorted(k for k in set(old) | set(run_config) if old.get(k) != run_config.get(k))
        k = diff[0]
        raise ValueError(
            f"cannot resume {out}: it was made with a different config "
            f"({k}: {old.get(k)!r} there, {run_config.get(k)!r} now)"
        )


def _rows(history: dict[str, np.ndarray], first_eval: int) -> list[dict]:
    """metrics.jsonl rows (one per evaluation and member) of the intervals that ran."""
    rows = []
    n, M = history["step"].shape
    for e in range(n):
        if np.all(np.isnan(history["train_loss"][e])):
            continue  # skipped: every member was already done
        for m in range(M):
            row = {"eval": first_eval + e, "member": m}
            row |= {
                k: (int(v[e, m]) if k == "step" else float(v[e, m])) for k, v in history.items()
            }
            rows.append(row)
    return rows


def train(
    problem: Problem,
    config: Config,
    table: list[dict[str, float]],
    *,
    out: str | os.PathLike | None = None,
    run_config: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> Result:
    """Train every member of ``table`` (from :func:`members`) in one compiled program.

    With ``out``, the run folder receives ``config.json`` (``run_config``), ``metrics.jsonl``
    (one row per evaluation and member), ``summary.json``, ``checkpoints/`` and
    ``learning_curves.png``; ``resume=True`` continues from its last good checkpoint to the same
    final numbers as an uninterrupted run. Members are sharded over all local devices when
    their number divides evenly.
    """
    from tqdm.auto import tqdm

    from recurrax import plots

    keys, hps = _stack(table)
    M = len(table)
    mesh = member_mesh(M) if config.shard == "members" else None
    keys, hps = _shard((keys, hps), mesh)
    states = jax.jit(jax.vmap(lambda k, hp: _init_member(problem, k, hp)))(keys, hps)
    chunk = jax.jit(_chunk_fn(problem, config), donate_argnums=0)
    n_chunks = -(-config.n_evals // config.chunk_evals)
    start, ckpt, rows = 0, None, []
    if out is not None:
        out = Path(out)
        run_config = {**(run_config or {}), "engine": dataclasses.asdict(config)}
        _check_run_folder(out, run_config, resume)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(run_config, indent=2))
        if config.checkpoint_every:
            ckpt = _Checkpoints(out / "checkpoints", config.keep)
        if resume and ckpt is not None:
            restored = ckpt.restore_latest(states)
            if restored is not None:
                start, states = restored[0], _shard(restored[1], mesh)
                print(
                    f"resuming {out} from chunk {start} (step {int(states.step.max())})",
                    file=sys.stderr,
                )
        if resume and (out / "metrics.jsonl").exists():
            keep_below = start * config.chunk_evals
            rows = [
                r
                for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                if r["eval"] < keep_below
            ]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    history: list[dict[str, np.ndarray]] = []
    bar = tqdm(
        total=config.steps,
        initial=int(states.step.max()),
        unit="step",
        desc=desc,
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    for c in range(start, n_chunks):
        states, hist = chunk(states, hps)
        hist = jax.tree.map(np.asarray, hist)
        history.append(hist)
        new_rows = _rows(hist, c * config.chunk_evals)
        rows += new_rows
        if out is not None:
            with open(out / "metrics.jsonl", "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new_rows)
        step, done = np.asarray(states.step), np.asarray(states.done)
        finished = done | (step >= config.steps)
        bar.update(int(step.max()) - bar.n)
        bar.set_postfix(
            done=f"{int(finished.sum())}/{M}",
            diverged=int((np.asarray(states.diverged) >= 0).sum()),
        )
        if ckpt is not None and (
            (c + 1) % config.checkpoint_every == 0 or finished.all() or c + 1 == n_chunks
        ):
            ckpt.save(c + 1, states)
        if finished.all():
            break
    bar.close()

    summary = _summary(table, states, rows)
    history_arrays = _history_from_rows(rows, M)
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        plots.learning_curves(
            history_arrays,
            out / "learning_curves.png",
            target=(config.target_metric, config.target),
        )
    return Result(table, states, history_arrays, summary)


def restore(problem: Problem, table: list[dict[str, float]], out: str | os.PathLike) -> State:
    """The latest readable checkpoint of the run in ``out`` (leaves ``[M, ...]``)."""
    keys, hps = _stack(table)
    like = jax.eval_shape(jax.vmap(lambda k, hp: _init_member(problem, k, hp)), keys, hps)
    like = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), like)
    path = Path(out) / "checkpoints"
    if not path.is_dir():
        raise FileNotFoundError(f"{out} holds no checkpoints")
    restored = _Checkpoints(path, keep=1_000_000).restore_latest(like)
    if restored is None:
        raise ValueError(f"no readable checkpoint in {path}")
    return restored[1]


def _history_from_rows(rows: list[dict], M: int) -> dict[str, np.ndarray]:
    if not rows:
        return {}
    evals = sorted({r["eval"] for r in rows})
    index = {e: i for i, e in enumerate(evals)}
    names = [k for k in rows[0] if k not in ("eval", "member")]
    hist = {k: np.full((len(evals), M), np.nan) for k in names}
    for r in rows:
        for k in names:
            hist[k][index[r["eval"]], r["member"]] = r[k]
    return hist


def _summary(table, states: State, rows: list[dict]) -> list[dict[str, Any]]:
    last: dict[int, dict] = {}
    for r in rows:
        if not math.isnan(r["train_loss"]):
            last[r["member"]] = r
    out = []
    for m, member in enumerate(table):
        reached, diverged = int(states.reached[m]), int(states.diverged[m])
        final = {k: v for k, v in last.get(m, {}).items() if k not in ("eval", "member", "step")}
        out.append(
            {
                "member": m,
                **member,
                "steps": int(states.step[m]),
                "reached": reached if reached >= 0 else None,
                "diverged": diverged if diverged >= 0 else None,
                "final": final,
            }
        )
    return out
