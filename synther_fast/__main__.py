"""``python -m synther_fast`` (and ``torchrun ... -m synther_fast``): the synther-fast CLI."""

import sys

from synther_fast.cli import main

sys.exit(main())
