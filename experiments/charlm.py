"""``recurrax charlm``: the study lives in :mod:`recurrax.cli.charlm` (``--help`` explains it);
this script runs it from a checkout: ``python experiments/charlm.py [flags]``."""

import sys

from recurrax import cli
from recurrax.cli import charlm

if __name__ == "__main__":
    cli.use_all_cores()
    sys.exit(cli.run(charlm.main))
