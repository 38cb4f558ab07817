"""``python -m descend``: the same as the ``descend`` command."""

import sys

from descend.cli.main import main

sys.exit(main())
