"""Query values never reach the log.

A client may put its JWT (``?token=``) or its resume token (``?resume=``) in the URL, and
uvicorn logs every request's path with its query at the default level: whoever reads the
log could take that player's seat. A filter on each logger that writes request lines
replaces every query value with ``[redacted]`` and keeps the parameter names, which is
what an operator needs to read a line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
# A parameter after '?' or '&': its name is kept, its value (up to the next separator,
# quote or space of the log line) is replaced.
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'#?]+)=[^&\s\"'#]*")
_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def redact(text: str) -> str:
    return _QUERY_VALUE.sub(rf"\1={REDACTED}", text) if "=" in text else text


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactQueryValues(logging.Filter):
    """Rewrites a record's message and arguments in place; never drops a record.

    The arguments keep their shape: uvicorn's access formatter unpacks them by position.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in args)
        elif isinstance(args, dict):
            record.args = {key: _redact_arg(value) for key, value in args.items()}
        return True


def install() -> None:
    """Put one filter on uvicorn's loggers and on every tickrelay logger; idempotent.

    A filter on a logger sees only the records logged to that very logger, so each
    tickrelay module's logger gets it too (they all exist once the app is imported).
    """
    names = [*_LOGGERS, "tickrelay"]
    names += [name for name in logging.root.manager.loggerDict if name.startswith("tickrelay.")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryValues) for f in logger.filters):
            logger.addFilter(RedactQueryValues())
