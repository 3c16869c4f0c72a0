"""`python -m coordinator.tools.cli`: the `pcpsim` command."""

import sys

from coordinator.tools.cli import main

sys.exit(main())
