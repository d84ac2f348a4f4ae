"""Reference relay servers the bench compares tickrelay against.

Each one is the simplest honest implementation of a known pattern and speaks just enough of
the tickrelay protocol (welcome, snap with acks) for the same driver to measure it:

- `tutorial`: the FastAPI WebSocket tutorial's ConnectionManager, every input broadcast at
  once with a sequential ``for ws in active: await ws.send_bytes(...)``.
- `tutorial_ticked`: the same stack with a 20 Hz tick loop per room.
- `floor`: `websockets` on uvloop, state encoded once per tick, `websockets.broadcast()`.
"""
