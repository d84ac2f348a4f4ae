"""HTTP request bodies are bounded: a big body is refused before it is read, never echoed."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx

LIMIT = 32 * 1024  # the default max_body_size


def exchange_blocking(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading (or closed): its answer is what counts
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass  # a reset after the answer: what arrived before it still counts
        return answer


async def exchange(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a raw request (head, then the chunks as the server takes them); the answer."""
    return await asyncio.to_thread(exchange_blocking, port, head, chunks)


def post_head(path: str, port: int, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


async def test_a_declared_body_over_the_bound_is_refused_413_before_it_is_sent(server):
    head = post_head("/matchmake", server.port, f"Content-Length: {64 * 1024 * 1024}\r\n")
    answer = await exchange(server.port, head, [])  # not one byte of the body
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_a_chunked_body_is_refused_413_once_it_passes_the_bound(server):
    head = post_head("/matchmake", server.port, "Transfer-Encoding: chunked\r\n")
    pieces = [b'{"meta": {"k": "'] + [b"x" * 8192] * 64 + [b'"}}']
    body = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces]
    body.append(b"0\r\n\r\n")
    answer = await exchange(server.port, head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_a_body_within_the_bound_is_served(server):
    meta = {"note": "y" * (LIMIT // 2)}
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/matchmake", json={"meta": meta})
    assert response.status_code == 422  # meta's own 4 KiB bound answers, not the body's
    assert "meta must encode" in response.text


async def test_a_validation_error_does_not_echo_large_input(server):
    junk = "z" * 10_000
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/matchmake", json={"meta": junk})
    assert response.status_code == 422
    assert junk[:200] not in response.text
    assert len(response.content) < 2048
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "meta"]


async def test_a_validation_error_does_not_quote_a_long_value_in_its_message(server):
    name = "L" * 10_000
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/matchmake", json={"logic": name})
    assert response.status_code == 422
    assert name[:300] not in response.text
    assert "unknown logic" in response.text
    assert len(response.content) < 2048


async def test_a_validation_error_keeps_small_input(server):
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/matchmake", json={"meta": 7})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["input"] == 7
    assert json.dumps(error)  # a plain JSON answer
