"""The run manager: a training run as a folder you can stop, resume, reload and compare.

:func:`train` drives the compiled engine (:mod:`recurrax.engine`) chunk by chunk and does the
host work between chunks. With ``out``, the run folder holds, from the moment it starts:

- ``config.json``: the caller's run description (``run``), the engine config (``engine``) and
  the model description (``model``, enough to rebuild it: :meth:`recurrax.Model.to_dict`);
- ``members.csv``: the member table (seed and hyperparameters, one row per member);

and, as training goes on, ``metrics.jsonl`` (one row per evaluation and member, carrying the
member's seed and hyperparameters), ``checkpoints/`` (orbax, the whole per-member state every
``checkpoint_every`` chunks), then ``summary.json`` and ``learning_curves.png`` (median and
25-75% band over seeds, one line per grid point). A run killed at any moment continues with
``resume=True`` from its last readable checkpoint to the same numbers as an uninterrupted one
(step ``t`` of a member always uses the key ``fold_in(member_key, t)``).

:func:`load` reads a run folder back for analysis without the script that made it: members,
model, history with hyperparameter columns, and the params of any checkpoint.

Several processes (``jax.distributed``, see docs/hardware.md): every process calls
:func:`train` with the same arguments and the same ``out`` (a folder all of them see); only
process 0 writes the run's files, while orbax writes each process's part of a checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from recurrax import engine
from recurrax.engine import Config, State
from recurrax.models import Model
from recurrax.problem import Problem

Callback = Callable[[int, list[dict[str, Any]]], None]


class Result(NamedTuple):
    """What :func:`train` returns (and writes to its run folder)."""

    table: list[dict[str, float]]  # the members: seed and hyperparameters
    state: State  # final state, leaves ``[M, ...]`` (several processes: engine.to_host reads it)
    history: dict[str, np.ndarray]  # every evaluation that ran: ``[n_evals, M]`` per metric
    summary: list[dict[str, Any]]  # per member: reach/diverge steps and final metrics


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(value, indent=2) + "\n")


def _is_writer() -> bool:
    return jax.process_index() == 0


def _sync(name: str) -> None:
    """With several processes, wait until every process gets here (no-op with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


class _Checkpoints:
    """Orbax checkpoints of the state, one per saved chunk; falls back past unreadable ones."""

    def __init__(self, path: Path, keep: int | None):
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

    def restore(self, chunk: int | None = None, like: State | None = None) -> tuple[int, Any]:
        """The state at ``chunk`` (default: the latest readable one), as ``like`` or, without
        it, as stored (dicts of arrays) on this process's first device, whatever devices and
        processes saved it. ``ValueError`` if none can be read."""
        chunks = sorted(self.manager.all_steps(), reverse=True)
        if chunk is not None:
            if chunk not in chunks:
                raise ValueError(f"no checkpoint {chunk}; saved: {sorted(chunks)}")
            chunks = [chunk]
        for c in chunks:
            try:
                target = like if like is not None else self._stored(c)
                state = self.manager.restore(c, args=self._ocp.args.StandardRestore(target))
                return c, (State(*state) if like is not None else state)
            except Exception as err:  # noqa: BLE001 - any failure means: unreadable
                msg = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                print(f"warning: checkpoint {c} is unreadable ({msg})", file=sys.stderr)
        raise ValueError(f"no readable checkpoint in {self.manager.directory}")

    def _stored(self, chunk: int) -> Any:
        """Shapes and dtypes of checkpoint ``chunk`` placed on one local device: a restore
        target for a checkpoint saved over other devices (orbax refuses to restore a sharded
        checkpoint onto a different set of devices without one)."""
        reader = self._ocp.CheckpointManager(
            self.manager.directory,
            item_handlers=self._ocp.StandardCheckpointHandler(),
            options=self._ocp.CheckpointManagerOptions(create=False),
        )
        try:
            stored = reader.item_metadata(chunk)
        finally:
            reader.close()
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), stored
        )


def _check_folder(out: Path, config_json: dict, resume: bool) -> bool:
    """Whether to resume the run in ``out``; refuses what would overwrite or mix runs."""
    stored = out / "config.json"
    if not stored.exists():
        if not resume and out.exists() and any(out.iterdir()):
            raise FileExistsError(f"{out} is not empty and holds no run; choose another --out")
        return False  # resume of a run killed before it started: start it
    if not resume:
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    try:
        old = json.loads(stored.read_text())
    except (OSError, ValueError):
        raise ValueError(f"cannot resume {out}: its config.json is unreadable") from None
    if not isinstance(old, dict) or "engine" not in old:
        raise ValueError(f"cannot resume {out}: it is not a recurrax run folder")
    if old != config_json:
        flat_old, flat_new = _flatten(old), _flatten(config_json)
        diff = sorted(
            k for k in set(flat_old) | set(flat_new) if flat_old.get(k) != flat_new.get(k)
        )
        k = diff[0]
        raise ValueError(
            f"cannot resume {out}: it was made with a different config "
            f"({k}: {flat_old.get(k)!r} there, {flat_new.get(k)!r} now)"
        )
    return True


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _rows(history: dict[str, np.ndarray], evals: np.ndarray, table: list[dict]) -> list[dict]:
    """metrics.jsonl rows, one per evaluation ``evals [n]`` and member, with the member's seed
    and hyperparameters; ``history[name]`` is ``[n, M]``."""
    return [
        {"eval": int(e), "member": m, **table[m]}
        | {k: (int(v[i, m]) if k == "step" else float(v[i, m])) for k, v in history.items()}
        for i, e in enumerate(evals)
        for m in range(len(table))
    ]


def _members_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["member", *table[0]], lineterminator="\n")
    w.writeheader()
    w.writerows({"member": m, **row} for m, row in enumerate(table))
    return buf.getvalue()


def train(
    problem: Problem,
    config: Config,
    table: list[dict[str, float]],
    *,
    out: str | os.PathLike | None = None,
    run: dict | None = None,
    model: Model | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
    callback: Callback | None = None,
    checkpoint_every: int = 1,
    keep: int | None = 3,
) -> Result:
    """Train every member of ``table`` (from :func:`recurrax.engine.members`) in one compiled
    program, with a progress bar, and with ``out`` a run folder (see the module docstring).

    Args:
      run: JSON-able description of the run (the study's flags); a resumed run must match it.
      model: the :class:`recurrax.Model` trained, described in ``config.json`` for :func:`load`.
      resume: continue the run in ``out`` from its last readable checkpoint (a folder without
        a run yet is started); without it, a folder that holds a run is refused.
      callback: called after every chunk as ``callback(step, rows)`` with the new
        ``metrics.jsonl`` rows (each with the member's seed and hyperparameters): send them to
        TensorBoard, W&B or any tracker (see docs/runs.md). With several processes it is
        called on each; guard it with ``jax.process_index() == 0`` to log once.
      checkpoint_every: chunks between checkpoints (0: none); ``keep``: how many are kept
        (``None``: all).
    """
    from tqdm.auto import tqdm

    M = len(table)
    states, hps = engine.init(problem, config, table)
    chunk = engine.make_chunk(problem, config)
    start, ckpt, parts = 0, None, []  # parts: history arrays, one per chunk that ran
    writer = out is not None and _is_writer()
    if out is not None:
        out = Path(out)
        config_json = {
            "run": run or {},
            "engine": dataclasses.asdict(config),
            "model": model.to_dict() if model is not None else None,
        }
        resuming = _check_folder(out, config_json, resume)
        _sync("recurrax.runs: folder checked")  # by every process, before process 0 writes
        if writer:
            out.mkdir(parents=True, exist_ok=True)
            if not resuming:
                write_text(out / "members.csv", _members_csv(table))
                write_json(out / "config.json", config_json)
        if checkpoint_every:
            ckpt = _Checkpoints(out / "checkpoints", keep)
        if resuming and ckpt is not None and ckpt.manager.all_steps():
            like = jax.tree.map(lambda v: v, states)
            start, restored = ckpt.restore(like=like)
            states = engine.shard(restored, M, config)
            step = int(states.step.max())
            if writer:
                print(f"resuming {out} from chunk {start} (step {step})", file=sys.stderr)
        rows = []
        if resuming and (out / "metrics.jsonl").exists():
            keep_below = start * config.chunk_evals
            rows = [
                r
                for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                if r["eval"] < keep_below
            ]
            if rows:
                parts.append(history_arrays(rows, table))
        _sync("recurrax.runs: metrics read")  # by every process, before process 0 rewrites
        if writer:
            write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    bar = tqdm(
        total=config.steps,
        initial=int(states.step.max()),
        unit="step",
        desc=desc,
        disable=not progress or not _is_writer(),
        dynamic_ncols=True,
        file=sys.stderr,
    )
    finished = engine.finished(states, config)
    for c in range(start, config.n_chunks):
        if finished.all():
            break
        states, hist = chunk(states, hps)
        hist = engine.to_host(hist)  # gathered from every process
        ran = ~np.all(np.isnan(hist["train_loss"]), axis=1)  # skipped: all done
        hist = {k: v[ran] for k, v in hist.items()}
        parts.append(hist)
        new_rows = _rows(hist, c * config.chunk_evals + np.flatnonzero(ran), table)
        if writer:
            with open(out / "metrics.jsonl", "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new_rows)
        finished = engine.finished(states, config)
        steps, diverged = engine.to_host((states.step, states.diverged))
        step = int(steps.max())
        bar.update(step - bar.n)
        bar.set_postfix(done=f"{int(finished.sum())}/{M}", diverged=int((diverged >= 0).sum()))
        if callback is not None:
            callback(step, new_rows)
        if ckpt is not None and (
            (c + 1) % checkpoint_every == 0 or finished.all() or c + 1 == config.n_chunks
        ):
            ckpt.save(c + 1, states)
    bar.close()

    history = {k: np.concatenate([h[k] for h in parts]) for k in parts[0]} if parts else {}
    summary = _summary(table, states, history)
    if writer:
        write_json(out / "summary.json", summary)
        from recurrax import plots

        target = (config.target_metric, config.target)
        plots.learning_curves(history, table, target, path=out / "learning_curves.png")
    return Result(table, states, history, summary)


def history_arrays(rows: list[dict], table: list[dict]) -> dict[str, np.ndarray]:
    """metrics rows as ``{metric: [n_evals, M]}`` (NaN where a member was not evaluated);
    ``step`` is among them."""
    if not rows:
        return {}
    evals = sorted({r["eval"] for r in rows})
    index = {e: i for i, e in enumerate(evals)}
    names = [k for k in rows[0] if k not in ("eval", "member", *table[0])]
    hist = {k: np.full((len(evals), len(table)), np.nan) for k in names}
    for r in rows:
        for k in names:
            hist[k][index[r["eval"]], r["member"]] = r[k]
    return hist


def _summary(table, states: State, history: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per member: reach and divergence steps, and the metrics of its last evaluation in which
    it trained (``final``)."""
    reached_at, diverged_at, steps = engine.to_host((states.reached, states.diverged, states.step))
    out = []
    for m, member in enumerate(table):
        reached, diverged = int(reached_at[m]), int(diverged_at[m])
        trained = np.flatnonzero(~np.isnan(history["train_loss"][:, m])) if history else []
        final = {}
        if len(trained):
            last = trained[-1]
            final = {k: float(v[last, m]) for k, v in history.items() if k != "step"}
        out.append(
            {
                "member": m,
                **member,
                "steps": int(steps[m]),
                "reached": reached if reached >= 0 else None,
                "diverged": diverged if diverged >= 0 else None,
                "final": final,
            }
        )
    return out


class RunData(NamedTuple):
    """A run folder read back by :func:`load`."""

    folder: Path
    table: list[dict[str, float]]  # members: seed and hyperparameters
    config: dict  # config.json: ``run`` (the study's flags), ``engine``, ``model``
    model: Model | None  # rebuilt from its description
    history: dict[str, np.ndarray]  # long format: one entry per evaluation and member
    summary: list[dict] | None  # summary.json (None while the run is unfinished)
    checkpoints: list[int]  # the saved chunks

    def params(self, checkpoint: int | None = None) -> Any:
        """Params of every member (leaves ``[M, ...]``) at ``checkpoint`` (a chunk number
        from :attr:`checkpoints`; default the latest readable one)."""
        return self.state(checkpoint)["params"]

    def state(self, checkpoint: int | None = None) -> dict:
        """The whole engine state at ``checkpoint`` as stored (a dict of arrays)."""
        if not self.checkpoints:
            raise ValueError(f"{self.folder} holds no checkpoints")
        return _Checkpoints(self.folder / "checkpoints", None).restore(checkpoint)[1]

    def member_params(self, member: int, checkpoint: int | None = None) -> Any:
        """Params of one member, ready for ``model.apply``."""
        return jax.tree.map(lambda v: v[member], self.params(checkpoint))


def load(folder: str | os.PathLike) -> RunData:
    """Read the run in ``folder`` (made by :func:`train`); ``ValueError`` naming the problem
    for a folder that is missing, foreign or broken.

    ``history`` has one entry per evaluation and member: ``eval``, ``member``, ``seed``, every
    hyperparameter and every metric (``step``, ``train_loss``, ...), each a ``[N]`` array.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    try:
        config = json.loads((folder / "config.json").read_text())
        with open(folder / "members.csv", newline="") as f:
            table = [
                {k: (int(v) if k == "seed" else float(v)) for k, v in row.items() if k != "member"}
                for row in csv.DictReader(f)
            ]
    except FileNotFoundError as err:
        raise ValueError(
            f"{folder} is not a recurrax run folder (no {Path(err.filename).name})"
        ) from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{folder} is not a readable recurrax run folder ({err})") from None
    if not isinstance(config, dict) or "engine" not in config or not table:
        raise ValueError(f"{folder} is not a recurrax run folder")
    model = Model.from_dict(config["model"]) if config.get("model") else None
    rows = []
    if (folder / "metrics.jsonl").exists():
        for line in (folder / "metrics.jsonl").read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break  # a line cut by a kill: the rows before it are good
    history = {k: np.asarray([r[k] for r in rows]) for k in (rows[0] if rows else {})}
    summary = None
    if (folder / "summary.json").exists():
        summary = json.loads((folder / "summary.json").read_text())
    ckpt_dir = folder / "checkpoints"
    checkpoints = (
        sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
        if ckpt_dir.is_dir()
        else []
    )
    return RunData(folder, table, config, model, history, summary, checkpoints)
