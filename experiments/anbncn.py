"""``recurrax anbncn``: the study lives in :mod:`recurrax.cli.anbncn` (``--help`` explains it);
this script runs it from a checkout: ``python experiments/anbncn.py [flags]``."""

import sys

from recurrax import cli
from recurrax.cli import anbncn

if __name__ == "__main__":
    cli.use_all_cores()
    sys.exit(cli.run(anbncn.main))
