"""One process of the multi-process sweep test (``tests/test_distributed.py``).

``python tests/distributed_worker.py OUT --processes N --process-id I --port P`` joins a
``jax.distributed`` group of N processes on localhost (one CPU device each) and runs a small
sweep with ``shard="members"``; ``--processes 1 --devices 2`` runs the same sweep in one
process over 2 CPU devices. Every process writes ``OUT/../result-I.json`` (written outside
the run folder, so the folder holds only what :func:`recurrax.runs.train` wrote): the final
params gathered to the host, the summary, which members this process's devices held, and
every path under OUT that this process opened for writing, created, renamed or removed from
Python (seen through ``sys.addaudithook``; orbax's array data, written by tensorstore in C++,
is not seen).
"""

import argparse
import json
import os
import sys
from pathlib import Path

# Same compile setting as tests/conftest.py (set before jax is imported).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from recurrax import LSTM, Model, engine, optim, runs  # noqa: E402
from recurrax.tasks import memory  # noqa: E402

TABLE = engine.members(2, {"lr": [0.01, 0.03]}, {"lr": 0.01, "clip": 1.0})  # 4 members
CONFIG = dict(steps=40, eval_every=10, chunk_evals=2)  # engine.Config, with --shard


def problem():
    """The adding problem at length 8 for a small LSTM (built after jax is configured: it
    samples its held-out batch)."""
    task = memory.adding(8)
    model = Model((LSTM(8),), **task.io)
    return memory.problem(task, model, batch=8, optimizer=optim.adam(clip=True), eval_batch=32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--process-id", type=int, default=0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--devices", type=int, default=1, help="CPU devices of this process")
    ap.add_argument("--shard", default="members", help="engine.Config.shard")
    args = ap.parse_args()
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", args.devices)
    if args.processes > 1:
        # CPU collectives across processes: gloo, the default of this jax
        # (jax_cpu_collectives_implementation); short timeouts so that a failed peer ends the
        # test quickly instead of leaving the other process waiting for minutes
        jax.distributed.initialize(
            coordinator_address=f"localhost:{args.port}",
            num_processes=args.processes,
            process_id=args.process_id,
            initialization_timeout=60,
            heartbeat_timeout_seconds=10,
            shutdown_timeout_seconds=10,
        )
    out = args.out.resolve()
    touched = []

    def audit(event: str, event_args: tuple) -> None:
        if event == "open":
            path, mode, flags = event_args
            writes = (mode and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            paths = [path] if writes else []
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            paths = [event_args[0]]
        elif event == "os.rename":
            paths = list(event_args[:2])
        else:
            return
        for p in paths:
            if isinstance(p, (str, bytes, os.PathLike)):
                p = Path(os.path.realpath(os.fsdecode(p)))
                if p == out or out in p.parents:
                    touched.append(f"{event} {p.relative_to(out)}")

    sys.addaudithook(audit)
    result = runs.train(
        problem(),
        engine.Config(**CONFIG, shard=args.shard),
        TABLE,
        out=out,
        progress=False,
        run={"test": 1},
    )
    params = engine.to_host(result.state.params)
    members = np.arange(len(TABLE))
    held = [members[s.index[0]].tolist() for s in result.state.step.addressable_shards]
    report = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "params": jax.tree.map(lambda v: v.tolist(), params),
        "summary": result.summary,
        "held": held,  # members on each local device, e.g. [[0, 1], [2, 3]]
        "touched": sorted(set(touched)),
    }
    (out.parent / f"result-{args.process_id}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
