"""`python -m cvlab ...`: the `cvlab` command."""

import sys

from cvlab.cli import main

sys.exit(main())
