"""What workers need to share rooms through Redis, each piece with one job.

- ``envelope``: the batch that carries a loop turn's messages from one worker to another
  (sans-I/O).
- ``sequence``: per-link sequence numbers, so a receiver sees what it lost as a gap: redis-py
  reconnects and resubscribes silently, and what was published meanwhile is gone.
- ``batcher``: one publish per destination per event-loop turn, never one awaited command
  per message.
- ``lease``: worker leases and room ownership with a fencing epoch (Lua compare-and-set), so
  a worker that paused past its lease can never act for a room it lost.

Nothing here is imported by the single-process path.
"""
