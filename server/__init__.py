"""tickrelay server: FastAPI app, rooms and their tick loops, per-client outboxes."""
