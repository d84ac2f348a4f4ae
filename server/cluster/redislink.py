"""The bus's two hot Redis connections: one that publishes, one that is subscribed.

Both speak raw RESP2 (``resp.py``) over an asyncio protocol: a publish is one write of every
batch of a flush, with no reply to wait for, and a pushed message reaches the bus straight
from ``data_received``. That is what redis-py's pipeline and pubsub did
for us, at a fraction of their Python per batch (see ``resp.py`` for why that matters).

What redis-py also did, and is kept: a connect timeout, ``AUTH`` from the URL, TLS for
``rediss://``, a health ping on the idle subscription, and reconnecting (the subscriber by
itself, with back-off; the publisher on its next flush). Losses while reconnecting are
what the per-link sequence numbers are for.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio.connection import SSLConnection, parse_url

from tickrelay.server.cluster.resp import (
    ProtocolViolation,
    RespError,
    RespReader,
    command,
    publish_commands,
)

log = logging.getLogger("tickrelay.cluster")

RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
PING = command("PING")
REPLY_OFF = command("CLIENT", "REPLY", "OFF")

OnReply = Callable[[Any], None]


@dataclass(frozen=True)
class Endpoint:
    """Where a Redis URL points, and how to log in there."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    timeout: float = 2.0

    @classmethod
    def from_url(cls, url: str, timeout: float = 2.0) -> Endpoint:
        """The URL forms redis-py accepts (``redis://``, ``rediss://``, ``unix://``)."""
        options = parse_url(url)
        tls = _tls_context(options) if options.get("connection_class") is SSLConnection else None
        return cls(
            host=options.get("host", "127.0.0.1"),
            port=int(options.get("port", 6379)),
            path=options.get("path"),
            username=options.get("username"),
            password=options.get("password"),
            tls=tls,
            timeout=timeout,
        )

    async def connect(self, on_push: OnReply | None = None) -> RespConnection:
        """A logged-in connection that answered a ``PING``, within ``timeout``; replies
        nobody waits for go to ``on_push``. Refusals (``NOAUTH``, ``WRONGPASS``, a full
        server) raise ``RespError`` here, not later as silence."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            if self.path is not None:
                _, connection = await loop.create_unix_connection(
                    lambda: RespConnection(on_push), self.path, ssl=self.tls
                )
            else:
                _, connection = await loop.create_connection(
                    lambda: RespConnection(on_push), self.host, self.port, ssl=self.tls
                )
            try:
                await self._check(connection)
            except BaseException:
                connection.abort()
                raise
        return connection

    async def _check(self, connection: RespConnection) -> None:
        hello = [PING]
        if self.password is not None:
            login = (self.username, self.password) if self.username else (self.password,)
            hello.insert(0, command("AUTH", *login))
        for answer in await connection.request(b"".join(hello), len(hello)):
            if isinstance(answer, RespError):
                raise answer


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS options of a ``rediss://`` URL that redis-py's own client honours too, so
    the bus and the rest of the cluster's Redis traffic trust the same server."""
    tls = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        tls.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    requirement = str(options.get("ssl_cert_reqs", "required")).lower()
    check_hostname = str(options.get("ssl_check_hostname", "true")).lower() not in ("false", "0")
    if requirement in ("none", str(ssl.CERT_NONE)) or not check_hostname:
        tls.check_hostname = False
    if requirement in ("none", str(ssl.CERT_NONE)):
        tls.verify_mode = ssl.CERT_NONE
    elif requirement in ("optional", str(ssl.CERT_OPTIONAL)):
        tls.verify_mode = ssl.CERT_OPTIONAL
    return tls


class RespConnection(asyncio.Protocol):
    """One connection: each reply answers the oldest request, or goes to ``on_push``."""

    def __init__(self, on_push: OnReply | None) -> None:
        self._on_push = on_push
        self._reader = RespReader()
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[tuple[asyncio.Future[list[Any]], list[Any], int]] = deque()
        loop = asyncio.get_running_loop()
        self._time = loop.time
        self.last_received = self._time()
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        error = ConnectionError(f"connection to Redis lost: {exc or 'closed by Redis'}")
        while self._waiting:
            future, _, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if not self.lost.done():
            self.lost.set_exception(error)
            self.lost.exception()  # retrieved: whoever cares awaits it, nobody has to

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the socket."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def write(self, data: bytes) -> None:
        if self._transport is None:
            raise ConnectionError("not connected to Redis")
        self._transport.write(data)

    def request(self, data: bytes, replies: int) -> asyncio.Future[list[Any]]:
        """Write commands; the future gets their ``replies`` replies, in order."""
        self.write(data)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((future, [], replies))
        return future

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self.last_received = self._time()
        try:
            replies = self._reader.feed(data)
        except ProtocolViolation:
            self.abort()
            return
        for reply in replies:
            self._answer(reply)

    def _answer(self, reply: Any) -> None:
        if not self._waiting:
            if self._on_push is not None:
                self._on_push(reply)
            return
        future, got, expected = self._waiting[0]
        got.append(reply)
        if len(got) == expected:
            self._waiting.popleft()
            if not future.done():
                future.set_result(got)


class PublishLink:
    """The batcher's way out: ``write`` puts a flush's batches on the wire at once.

    The connection asks Redis for no replies (``CLIENT REPLY OFF``): a reply per publish
    would wake this worker once more per batch, only to say how many subscribers got it,
    which nobody reads. Losses are the receivers' sequence gaps. A broken connection shows
    on the next write; a Redis that stops answering shows on the bus's subscription, which
    then ``drop``s this connection too (nothing comes back here to notice it by); a send
    buffer past ``max_buffered`` drops it as well. Its batches are then lost, and the next
    flush reconnects."""

    def __init__(self, endpoint: Endpoint, max_buffered: int = 8 * 1024 * 1024) -> None:
        self._endpoint = endpoint
        self._max_buffered = max_buffered
        self._connection: RespConnection | None = None
        self._closed = False
        self.error_replies = 0  # publishes Redis refused (it kept replying): /stats

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.is_open

    def write(self, batches: list[tuple[str, bytes]]) -> bool:
        """Publish now; False (nothing written) when not connected."""
        connection = self._connection
        if connection is None or not connection.is_open:
            return False
        connection.write(publish_commands(batches))
        if connection.buffered > self._max_buffered:
            connection.abort()
        return True

    async def connect(self) -> None:
        """Raises (``OSError``, ``TimeoutError``, ``RespError``) when Redis is not there,
        refuses us, or this link is closed."""
        if self._closed:
            raise ConnectionError("the publishing link is closed")
        if self.connected:
            return
        connection = await self._endpoint.connect(self._replied)
        if self._closed:  # closed while connecting
            connection.abort()
            raise ConnectionError("the publishing link is closed")
        connection.write(REPLY_OFF)
        self._connection = connection

    def _replied(self, reply: Any) -> None:
        """Only a Redis that kept replying gets here. An error (a publish refused) makes
        the connection useless: drop it, so the next flush connects and says why."""
        if isinstance(reply, RespError):
            self.error_replies += 1
            self.drop()

    def drop(self) -> None:
        """Abort the connection; the next flush opens a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()

    def close(self) -> None:
        self._closed = True
        self.drop()


class SubscribeLink:
    """Stays subscribed to ``channels``: reconnects with back-off, pings when idle.

    ``on_message(data)`` gets each message's payload; ``on_up()`` follows every
    (re)subscription, ``on_down(exc)`` every lost or failed connection. The back-off
    grows until a subscription is confirmed, so a Redis that refuses us (no password, a
    full server) is asked less and less often."""

    def __init__(
        self,
        endpoint: Endpoint,
        channels: list[str],
        on_message: Callable[[bytes], None],
        on_up: Callable[[], None],
        on_down: Callable[[BaseException], None],
        ping_interval: float = 1.0,
    ) -> None:
        self._endpoint = endpoint
        self._channels = channels
        self._on_message = on_message
        self._on_up = on_up
        self._on_down = on_down
        self._ping_interval = ping_interval
        self._connection: RespConnection | None = None
        self._refused: RespError | None = None
        self._failures = 0

    async def run(self) -> None:
        """Until cancelled: the bus's reader task."""
        while True:
            try:
                connection = await self._endpoint.connect(self._pushed)
            except (OSError, TimeoutError, RespError) as exc:
                self._on_down(exc)
            else:
                self._connection, self._refused = connection, None
                try:
                    connection.write(command("SUBSCRIBE", *self._channels))
                    await self._watch(connection)
                except (OSError, TimeoutError) as exc:
                    self._on_down(self._refused or exc)
                finally:
                    connection.abort()
                    self._connection = None
            await asyncio.sleep(RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS) - 1)])
            self._failures += 1

    async def _watch(self, connection: RespConnection) -> None:
        """Returns never: raises when the connection is lost or a ping stays unanswered
        for ``timeout``. Only an unanswered ping counts: a loop that stalled (and so sent
        no ping) must not take a healthy subscription for a dead one."""
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while True:
            await asyncio.wait([connection.lost], timeout=self._ping_interval)
            if connection.lost.done():
                connection.lost.result()  # raises the ConnectionError it ended with
            now = loop.time()
            if ping_sent is not None and connection.last_received < ping_sent:
                if now - ping_sent > self._endpoint.timeout:
                    raise TimeoutError("Redis stopped answering the subscription's pings")
                continue  # the ping is still on its way
            connection.write(PING)
            ping_sent = now

    def _pushed(self, reply: Any) -> None:
        if isinstance(reply, RespError):  # refused (ACL, a replica in a bad state): retry
            self._refused = reply
            if self._connection is not None:
                self._connection.abort()
            return
        if not isinstance(reply, list) or not reply:
            return  # a stray status line (cannot happen while subscribed)
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            try:
                self._on_message(reply[2])
            except Exception:  # one bad batch must not cost the others of this read
                log.exception("handling a batch from Redis failed")
        elif kind == b"subscribe":
            self._failures = 0
            self._on_up()
