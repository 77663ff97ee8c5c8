"""`python -m kws` is the `kws` command (and `torchrun -m kws` runs it on every rank)."""

import sys

from kws.cli import main

sys.exit(main())
