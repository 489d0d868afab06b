"""The studies as commands: ``recurrax STUDY [flags]`` (installed by ``pip install``), and the
pieces every study shares: one-line errors, flag types, the study folder and finished parts.

Studies: ``anbncn`` (the main job), ``memory``, ``chomsky``, ``charlm``, ``gradflow``;
``experiments/STUDY.py`` runs the same code. One flag vocabulary, documented in docs/cli.md:
``--cells`` the cells compared, ``--hidden``/``--lr``/``--forget-bias`` values swept (several
values make a grid), ``--seeds`` seeds per grid point, ``--steps``, ``--batch``, ``--out`` the
study folder, ``--resume`` to continue it, ``--no-progress``.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

STUDIES = ("anbncn", "memory", "chomsky", "charlm", "gradflow")
RESUME_HINT = "interrupted: continue with --resume --out STUDY_FOLDER"


class Parser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line ``error: ...`` and exit status 2."""

    def error(self, message: str):  # noqa: D102
        raise SystemExit(_fail(f"{self.prog.split()[-1]}: {message}"))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(
    main: Callable[[Sequence[str] | None], None],
    argv: Sequence[str] | None = None,
    resumable: bool = True,
) -> int:
    """Run a study's ``main``: bad input (``ValueError``, a missing or existing file) prints
    one line ``error: ...`` and returns 2, no traceback; Ctrl-C returns 130, with the hint to
    ``--resume`` for ``resumable`` studies. Scripts pass the status to ``sys.exit``."""
    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print(RESUME_HINT if resumable else "interrupted", file=sys.stderr)
        return 130
    return 0


def use_all_cores() -> None:
    """One JAX host device per CPU core (``RECURRAX_CPU_DEVICES`` overrides), so the studies'
    member and batch sharding use the whole machine, and :func:`keep_freed_memory`. The device
    count is a no-op once JAX has computed anything (in-process callers, tests) or when set
    to 1."""
    import jax

    keep_freed_memory()

    n = int(os.environ.get("RECURRAX_CPU_DEVICES", os.cpu_count() or 1))
    try:
        jax.config.update("jax_num_cpu_devices", max(n, 1))
    except RuntimeError:  # backends already initialized
        pass


def keep_freed_memory() -> bool:
    """Let glibc's ``malloc`` keep freed memory mapped for reuse; returns whether it took
    (False off Linux/glibc, e.g. macOS, Windows, musl, where nothing changes).

    XLA:CPU allocates every execution's buffers anew. Above glibc's mmap threshold (128 KiB,
    rising to at most 32 MiB) each is a fresh ``mmap`` whose pages fault in, zero-filled, on
    first touch and go back to the kernel when freed: measured here, ~19,000 page faults
    (74 MB) per char-LM training step, 91 ms a step instead of 61 ms. ``mallopt`` raises the
    threshold (``M_MMAP_THRESHOLD``: 1 GiB, or glibc's maximum of 32 MiB where 1 GiB is
    refused) and keeps up to 256 MiB of free space at the heap's top (``M_TOP_PAD``), so those
    buffers come back from the heap already mapped; the process holds up to that much more
    resident memory. Requests of 64 MiB or more from threads other than the main one are still
    fresh mappings. Process-wide, so only entry points call it (through :func:`use_all_cores`),
    never a library import. PyTorch in the same process gains too.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_top_pad, m_mmap_threshold = -2, -3  # glibc's malloc.h
    took = bool(mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20))
    return bool(mallopt(m_top_pad, 256 << 20)) and took


# --- flag types: the domain of every flag is checked before anything runs -------------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    value = _number(text, float)
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None


def add_run_flags(ap: argparse.ArgumentParser, study: str) -> None:
    """``--out``, ``--resume``, ``--no-progress``: the same in every study."""
    ap.add_argument("--out", type=Path, help=f"study folder (default runs/{study}/TIME)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the study in --out: finished parts are kept, the unfinished ones "
        "continue from their last checkpoints, to the numbers of an uninterrupted run",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")


# --- the study folder ---------------------------------------------------------------------------


def study_folder(args: argparse.Namespace, study: str) -> Path:
    """The folder of this invocation. A new one must not hold anything; with ``--resume`` it
    must hold this study, made with the same flags (``study.json``, written first)."""
    import time

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the folder of the study to continue")
    out = args.out or Path("runs") / study / time.strftime("%Y%m%d-%H%M%S")
    record = {"study": study, "flags": flags(args)}
    path = out / "study.json"
    if not args.resume:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(
                f"{out} already holds files; pass --resume to continue a study there or "
                "choose another --out"
            )
        out.mkdir(parents=True, exist_ok=True)
        _write_json(path, record)
        return out
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"cannot resume: {out} holds no {study} study (no study.json)") from None
    except ValueError:
        raise ValueError(f"cannot resume: {path} is unreadable") from None
    if not isinstance(old, dict) or old.get("study") != study:
        raise ValueError(f"cannot resume: {out} holds a {old.get('study')!r} study, not {study}")
    new = record["flags"]
    if old["flags"] != new:
        k = sorted(k for k in set(old["flags"]) | set(new) if old["flags"].get(k) != new.get(k))[0]
        raise ValueError(
            f"cannot resume {out}: it was made with other flags "
            f"(--{k.replace('_', '-')}: {old['flags'].get(k)!r} there, {new.get(k)!r} now)"
        )
    return out


def flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that define a study's results (not --out, --resume, --no-progress, --inspect),
    JSON-able: stored in study.json and in every run folder's config."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if k not in ("out", "resume", "no_progress", "inspect")
    }


def finished(path: Path, compute: Callable[[], Any]) -> Any:
    """A study's part that ends in a JSON result: read from ``path`` if it was finished
    before (a resumed study), else computed and written atomically."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    _write_json(path, value)
    return json.loads(json.dumps(value))  # the same types as when read back


def _write_json(path: Path, value: Any) -> None:
    from recurrax.runs import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, value)


# --- the console script ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """``recurrax STUDY [flags]``: run one study (``recurrax STUDY --help`` for its flags)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STUDIES:
        print(
            f"usage: recurrax {{{','.join(STUDIES)}}} [flags]\n\n"
            "Run a recurrax study; `recurrax STUDY --help` explains its flags.",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(_fail(f"unknown study {argv[0]!r}; choose from {list(STUDIES)}"))
        raise SystemExit(0 if argv else 2)
    module = importlib.import_module(f"recurrax.cli.{argv[0]}")
    use_all_cores()
    raise SystemExit(run(module.main, argv[1:], resumable=getattr(module, "RESUMABLE", True)))
