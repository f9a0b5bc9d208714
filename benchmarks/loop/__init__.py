"""Event-loop benchmarks: asyncio, uvloop, rloop and PyLoop on the same cases."""
