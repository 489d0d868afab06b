"""``recurrax chomsky``: the study lives in :mod:`recurrax.cli.chomsky` (``--help`` explains it);
this script runs it from a checkout: ``python experiments/chomsky.py [flags]``."""

import sys

from recurrax import cli
from recurrax.cli import chomsky

if __name__ == "__main__":
    cli.use_all_cores()
    sys.exit(cli.run(chomsky.main))
