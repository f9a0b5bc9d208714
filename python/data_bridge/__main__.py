"""``python -m data_bridge``: the ``data-bridge`` command."""

from __future__ import annotations

import sys

from data_bridge.serve.cli import main

sys.exit(main())
