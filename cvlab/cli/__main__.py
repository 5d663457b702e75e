"""`python -m cvlab.cli ...` runs the `cvlab` command (as `python -m cvlab` does)."""

import sys

from cvlab.cli import main

sys.exit(main())
