"""`python -m knowrl.cli`: the `knowrl` command without its console script (tests and subprocesses use it)."""

import sys

from knowrl.cli import main

sys.exit(main())
