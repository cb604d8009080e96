"""``python -m driftline`` runs the command line."""

import sys

from driftline.cli import main

sys.exit(main())
