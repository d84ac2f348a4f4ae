"""Request heads are bounded in time and size, whatever sits in front of the server."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

TIMEOUT = 1.0


@pytest.fixture
def strict(servers):
    return servers.get(handshake_timeout=TIMEOUT)


def wait_for_close(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``limit`` passes), and when."""
    started = time.monotonic()
    sock.settimeout(limit)
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except TimeoutError:
        return answer, float("inf")
    except OSError:
        pass
    return answer, time.monotonic() - started


def half_a_request_line(port: int) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HT")
        return wait_for_close(sock, TIMEOUT + 5)


def a_silent_connection(port: int) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        return wait_for_close(sock, TIMEOUT + 5)


def send_oversized_head(port: int, head_start: bytes, filler: bytes) -> tuple[int, bytes]:
    """Send ``head_start`` then 32 MiB of ``filler`` (never a head's end); bytes sent, answer."""
    total = 32 * 1024 * 1024
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        sock.sendall(head_start)
        piece = filler * (65536 // len(filler))
        try:
            while sent < total:
                sent += sock.send(piece)
        except OSError:
            pass  # refused: reset, or the server stopped reading and our buffers filled
        answer, _ = wait_for_close(sock, 5)
    return sent, answer


async def test_a_request_line_left_half_sent_is_closed_after_the_timeout(strict):
    answer, after = await asyncio.to_thread(half_a_request_line, strict.port)
    assert after < TIMEOUT + 4
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


async def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(strict):
    _, after = await asyncio.to_thread(a_silent_connection, strict.port)
    assert after < TIMEOUT + 4


async def test_a_huge_request_line_is_refused_without_being_buffered(server):
    sent, answer = await asyncio.to_thread(send_oversized_head, server.port, b"GET /", b"a")
    assert sent < 16 * 1024 * 1024  # cut off long before the 32 MiB were all taken
    assert answer == b"" or answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400"))


async def test_huge_headers_are_refused_without_being_buffered(server):
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: "
    sent, answer = await asyncio.to_thread(send_oversized_head, server.port, start, b"b")
    assert sent < 16 * 1024 * 1024
    assert answer == b"" or answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400"))


async def test_an_ordinary_request_is_served_on_a_strict_server(strict):
    async with httpx.AsyncClient(base_url=strict.http) as http:
        first = await http.get("/healthz")
        await asyncio.sleep(TIMEOUT + 0.5)  # idle keep-alive time is not head time
        second = await http.get("/healthz")
    assert first.status_code == second.status_code == 200
