"""``python -m rmlite.cli``: the same as the ``rmlite`` command."""

from __future__ import annotations

import sys

from rmlite.cli.main import main

sys.exit(main())
