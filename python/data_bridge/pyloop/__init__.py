"""PyLoop: an asyncio event loop implemented on Tokio.

Adopt it with one line::

    import data_bridge.pyloop
    data_bridge.pyloop.run(main())            # like asyncio.run(main())

or make it the default for everything that uses asyncio::

    data_bridge.pyloop.install()
"""

from __future__ import annotations

from data_bridge.pyloop.loop import Loop
from data_bridge.pyloop.policy import EventLoopPolicy, install, new_event_loop, run

__all__ = ["EventLoopPolicy", "Loop", "install", "new_event_loop", "run"]
