"""``recurrax memory``: the study lives in :mod:`recurrax.cli.memory` (``--help`` explains it);
this script runs it from a checkout: ``python experiments/memory.py [flags]``."""

import sys

from recurrax import cli
from recurrax.cli import memory

if __name__ == "__main__":
    cli.use_all_cores()
    sys.exit(cli.run(memory.main))
