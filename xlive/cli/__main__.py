"""``python -m xlive.cli``."""

import sys

from .main import main

sys.exit(main())
