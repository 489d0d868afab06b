"""``recurrax gradflow``: the study lives in :mod:`recurrax.cli.gradflow` (``--help`` explains it);
this script runs it from a checkout: ``python experiments/gradflow.py [flags]``."""

import sys

from recurrax import cli
from recurrax.cli import gradflow

if __name__ == "__main__":
    cli.use_all_cores()
    sys.exit(cli.run(gradflow.main, resumable=gradflow.RESUMABLE))
