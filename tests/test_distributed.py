"""A sweep over several processes (``jax.distributed`` on localhost CPU) gives the numbers and
the run folder of the same sweep in one process, and only process 0 writes the folder."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from recurrax import runs

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 120  # seconds for all workers together; they normally finish in about 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_workers(commands: list[list[str]], logs: Path) -> None:
    """Run the commands at once; on the first failure stop the others and fail with its log."""
    # this checkout's recurrax first, whatever recurrax is installed
    path = [str(WORKER.parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    logs.mkdir()
    procs = []
    for i, cmd in enumerate(commands):
        log = open(logs / f"{i}.log", "w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p, _ in procs):
            failed = [i for i, (p, _) in enumerate(procs) if p.returncode not in (None, 0)]
            assert not failed and time.monotonic() < deadline, (
                (logs / f"{failed[0]}.log").read_text()[-3000:] if failed else "timed out"
            )
            time.sleep(0.05)
        for i, (p, _) in enumerate(procs):
            assert p.returncode == 0, (logs / f"{i}.log").read_text()[-3000:]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()


def test_two_processes_equal_one(tmp_path):
    multi, single = tmp_path / "multi", tmp_path / "single"
    multi.mkdir()
    single.mkdir()
    port = free_port()
    worker = [sys.executable, str(WORKER)]
    run_workers(
        [
            # both processes get the same run folder, as on hosts sharing a filesystem
            [*worker, str(multi / "run"), "--processes", "2", "--process-id", str(i)]
            + ["--port", str(port)]
            for i in range(2)
        ]
        # the reference: one process with 2 CPU devices, so the member mesh has the same shape
        + [[*worker, str(single / "run"), "--devices", "2"]],
        tmp_path / "logs",
    )
    p0, p1 = (json.loads((multi / f"result-{i}.json").read_text()) for i in range(2))
    ref = json.loads((single / "result-0.json").read_text())
    assert (p0["processes"], p0["devices"], p1["process"]) == (2, 2, 1)
    assert (ref["processes"], ref["devices"]) == (1, 2)
    # the member mesh spans both processes: each holds its half of the members
    assert (p0["held"], p1["held"], ref["held"]) == ([[0, 1]], [[2, 3]], [[0, 1], [2, 3]])

    # Bit-identical, not just close: each device runs the same partitioned program on the same
    # two members whether its peer device is in this process or another one; the member axis
    # needs no cross-device reduction, so no summation order changes. (float32 -> JSON float
    # is exact, so == on the lists compares every bit.) Against one unsharded device the
    # numbers agree only to rounding (test_train's sharded test): the compiled program then
    # works on 4 members at once and XLA may order its float work differently; hence the
    # reference runs on 2 devices, the mesh the 2 processes form.
    assert p0["params"] == ref["params"] and p1["params"] == ref["params"]
    assert p0["summary"] == ref["summary"] and p1["summary"] == ref["summary"]
    assert all(m["final"] for m in ref["summary"])  # every member trained and was evaluated

    # the run folder: same files, same text (config.json, members.csv, metrics.jsonl, ...)
    names = sorted(p.name for p in (multi / "run").iterdir())
    assert names == sorted(p.name for p in (single / "run").iterdir())
    for name in ("config.json", "members.csv", "metrics.jsonl", "summary.json"):
        assert (multi / "run" / name).read_text() == (single / "run" / name).read_text(), name
    # the checkpoint both processes wrote (each its members) reads back whole in this one
    run = runs.load(multi / "run")
    assert run.checkpoints == runs.load(single / "run").checkpoints == [1, 2]
    is_array = lambda v: isinstance(v, list) and not isinstance(v[0], dict)  # noqa: E731
    want = jax.tree.leaves(ref["params"], is_leaf=is_array)
    got = jax.tree.leaves(run.params())
    assert len(got) == len(want)
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x, np.asarray(y, np.float32))

    # only process 0 writes the folder's files; process 1 touches nothing outside orbax's
    # checkpoints (where it writes its own members' part). The audit sees process 0's writes,
    # so it would see process 1's.
    top = lambda touched: {t.split(" ", 1)[1].split("/")[0] for t in touched}  # noqa: E731
    assert {"members.csv.tmp", "config.json.tmp", "metrics.jsonl", "summary.json.tmp"} <= top(
        p0["touched"]
    )
    assert top(p1["touched"]) <= {"checkpoints"}, p1["touched"]
