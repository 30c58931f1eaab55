"""``python -m alma_store``: the ``alma`` command line."""

import sys

from .cli import main

sys.exit(main())
