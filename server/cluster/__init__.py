"""What workers need to share rooms through Redis, each piece with one job.

- ``envelope``: the batch that carries a loop turn's messages from one worker to another
  (sans-I/O).
- ``sequence``: per-link sequence numbers, so a receiver sees what it lost as a gap: the bus
  reconnects and resubscribes silently, and what was published meanwhile is gone.
- ``batcher``: one publish per destination per event-loop turn, never one awaited command
  per message.
- ``resp`` and ``redislink``: the bus's two raw RESP2 connections (publish with no replies,
  subscribe), a fraction of redis-py's Python per batch.
- ``lease``: worker leases and room ownership with a fencing epoch (Lua compare-and-set), so
  a worker that paused past its lease can never act for a room it lost.

Nothing here is imported by the single-process path.
"""
