"""What every experiment script shares at its entry point."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(main: Callable[[], None]) -> None:
    """Run a script's ``main``: bad input (``ValueError``, a missing or existing file) prints
    one line ``error: ...`` and exits 2, no traceback; Ctrl-C exits 130 with a hint to resume."""
    try:
        main()
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "interrupted: runs with checkpoints continue with --resume --out RUN_FOLDER",
            file=sys.stderr,
        )
        sys.exit(130)
